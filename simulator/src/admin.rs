//! The admin API under `/admin/`: the ledger of truth for end-to-end checks, counters, dials,
//! the simulated clock, resets, and the reconciliation files — JSON (or the files' text) over the
//! same listeners as the gateway, so tests check the simulator the way a real client would.
//!
//! Routes: `GET /admin/trades[?partner=P][&after=CURSOR][&limit=N]` (one page in creation order,
//! with `next_after` to continue from, or `complete: true`),
//! `GET /admin/trades/{partner}/{partner_trans_id}`,
//! `GET /admin/counters`, `POST /admin/reset`, `GET|PUT /admin/dials` (PUT takes any subset of
//! the dials), `GET|POST /admin/clock` (`{"advance_ms": N}` or `{"set": "yyyy-MM-dd HH:mm:ss"}`),
//! `GET /admin/files/transactions?partner=P&day=YYYY-MM-DD`, `GET /admin/files/settlement?...`.
//! The buyer code is never shown: it is never stored.
//!
//! Listings and files copy what they need under the state lock and build the answer on the
//! blocking pool after releasing it, so a large read never holds the gateway up for long.

use alipay::{Amount, BeijingDay, BeijingTime};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_DISPOSITION};
use hyper::{Method, Request, Response, StatusCode};
use percent_encoding::percent_decode_str;
use serde::Serialize;
use serde_json::{json, Value};

use crate::clock::{beijing, ClockError, CLOCK_MS_MAX};
use crate::config::Rules;
use crate::dials::Dials;
use crate::files;
use crate::ledger::{Notification, Trade};
use crate::server::{body_timed_out, respond, RespBody};
use crate::state::Shared;

/// Largest admin request body, bytes.
pub const ADMIN_BODY_BYTES_MAX: usize = 64 * 1024;
/// Largest page of `GET /admin/trades` (also the default `limit`).
pub const TRADES_PAGE_MAX: usize = 100_000;

/// Money as the wire string, the minor units and the currency.
#[derive(Debug, Serialize)]
pub struct MoneyView {
    value: String,
    minor: u64,
    currency: &'static str,
}

impl From<Amount> for MoneyView {
    fn from(a: Amount) -> MoneyView {
        MoneyView {
            value: a.to_string(),
            minor: a.minor(),
            currency: a.currency().code(),
        }
    }
}

fn time(ms: i64) -> String {
    beijing(ms).dashed().to_string()
}

fn notification_view(n: &Notification) -> Value {
    let m = &n.message;
    json!({
        "notify_id": m.notify_id,
        "url": n.url,
        "trade_status": m.trade_status.as_str(),
        "partner_refund_id": m.refund.as_ref().map(|r| r.partner_refund_id.clone()),
        "acked": n.acked,
        "next_due_at": n.next_due_ms.map(time),
        "attempts": n.attempts,
    })
}

/// The admin view of a trade.
pub fn trade_view(t: &Trade, now_ms: i64, rules: &Rules) -> Value {
    let pay = t.pay.as_ref();
    let refunds: Vec<Value> = t
        .refunds
        .iter()
        .map(|r| {
            json!({
                "partner_refund_id": r.partner_refund_id,
                "amount": MoneyView::from(r.amount),
                "requested_at": time(r.requested_ms),
                "completed_at": r.completed_ms.map(time),
                "is_sync": r.is_sync,
                "reason": r.reason,
            })
        })
        .collect();
    let cancel = t.cancel.map(|c| {
        json!({
            "at": time(c.at_ms),
            "action": c.action.as_str(),
            "effect": c.effect,
            "refunded": c.refunded.map(MoneyView::from),
        })
    });
    json!({
        "partner": t.partner,
        "partner_trans_id": t.partner_trans_id,
        "alipay_trans_id": t.alipay_trans_id,
        "status": t.status_at(now_ms, rules).as_str(),
        "created_at": time(t.created_ms),
        "paid_at": t.paid_ms.map(time),
        "closed_at": t.closed_ms.map(time),
        "close_reason": t.close_reason,
        "amount": pay.map(|p| MoneyView::from(p.amount)),
        "refunded": pay.map(|_| MoneyView::from(t.refunded_total())),
        "trans_name": pay.map(|p| p.trans_name.clone()),
        "trans_currency": pay.and_then(|p| p.trans_currency).map(|c| c.code()),
        "trans_create_time": pay.map(|p| p.trans_create_time.clone()),
        "exchange_rate": pay.map(|p| p.rate_to_cny.to_string()),
        "buyer_login_id": pay.map(|p| p.buyer.login_id.clone()),
        "buyer_user_id": pay.map(|p| p.buyer.user_id.clone()),
        "extend_info": pay.and_then(|p| p.extend_info.clone()),
        "notify_url": pay.and_then(|p| p.notify_url.clone()),
        "first_answer": pay.map(|p| json!({
            "result_code": p.first_answer.0.as_str(),
            "error": p.first_answer.1,
        })),
        "refunds": refunds,
        "cancel": cancel,
        "notifications": t.notifications.iter().map(notification_view).collect::<Vec<_>>(),
    })
}

fn json_response(status: StatusCode, value: &Value) -> Response<RespBody> {
    let body = serde_json::to_vec_pretty(value).unwrap_or_default();
    respond(status, "application/json", body)
}

fn error(status: StatusCode, message: &str) -> Response<RespBody> {
    json_response(status, &json!({ "error": message }))
}

/// The decoded value of `name` in a query string.
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
        (n == name).then(|| {
            percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

/// The JSON body, read within the body read timeout; else the error response to send.
async fn read_json(req: Request<Incoming>, shared: &Shared) -> Result<Value, Response<RespBody>> {
    let limited = http_body_util::Limited::new(req.into_body(), ADMIN_BODY_BYTES_MAX).collect();
    let body = match tokio::time::timeout(shared.body_read_timeout, limited).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) => {
            let message = format!("cannot read the body: {e}");
            return Err(error(StatusCode::BAD_REQUEST, &message));
        }
        Err(_) => return Err(body_timed_out()),
    };
    serde_json::from_slice(&body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, &format!("not JSON: {e}")))
}

/// Routes an admin request.
pub async fn handle(req: Request<Incoming>, shared: &Shared) -> Response<RespBody> {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let method = req.method().clone();
    let segments: Vec<String> = path
        .trim_start_matches(crate::server::ADMIN_PREFIX)
        .split('/')
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (method, segs.as_slice()) {
        (Method::GET, ["trades"]) => trades(shared, &query).await,
        (Method::GET, ["trades", partner, id]) => one_trade(shared, partner, id),
        (Method::GET, ["counters"]) => {
            let counters = shared.lock().counters.clone();
            json_response(StatusCode::OK, &json!(counters))
        }
        (Method::POST, ["reset"]) => {
            shared.lock().reset();
            tracing::info!("The admin API reset trades, counters and the schedule.");
            json_response(StatusCode::OK, &json!({ "reset": true }))
        }
        (Method::GET, ["dials"]) => {
            let dials = shared.lock().dials.clone();
            json_response(StatusCode::OK, &json!(dials))
        }
        (Method::PUT, ["dials"]) => match read_json(req, shared).await {
            Ok(patch) => put_dials(shared, &patch),
            Err(response) => response,
        },
        (Method::GET, ["clock"]) => clock(shared),
        (Method::POST, ["clock"]) => match read_json(req, shared).await {
            Ok(body) => set_clock(shared, &body),
            Err(response) => response,
        },
        (Method::GET, ["files", kind @ ("transactions" | "settlement")]) => {
            file(shared, kind, &query).await
        }
        _ => error(StatusCode::NOT_FOUND, "no such admin route"),
    }
}

/// Parses `name` from the query: absent → `default`, else a number in `range`.
fn number_param(
    query: &str,
    name: &str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, String> {
    let Some(text) = query_param(query, name) else {
        return Ok(default);
    };
    match text.parse::<u64>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => {
            let (low, high) = (range.start(), range.end());
            Err(format!("{name} must be a number in {low}..={high}"))
        }
    }
}

/// `GET /admin/trades?partner=P&after=CURSOR&limit=N`: one page, in creation order. The page is
/// copied under the lock; the JSON is built off the runtime's workers, without the lock.
async fn trades(shared: &Shared, query: &str) -> Response<RespBody> {
    let page_max = u64::try_from(TRADES_PAGE_MAX).unwrap_or(u64::MAX);
    let after = match number_param(query, "after", 0, 0..=u64::MAX) {
        Ok(n) => n,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    let limit = match number_param(query, "limit", page_max, 1..=page_max) {
        Ok(n) => usize::try_from(n).unwrap_or(TRADES_PAGE_MAX),
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    let partner = query_param(query, "partner");
    let now = shared.clock.now_ms();
    let rules = shared.config.rules.clone();
    let (page, more) = shared.lock().ledger.page(partner.as_deref(), after, limit);
    off_the_runtime(move || {
        let next_after = page.last().filter(|_| more).map(|t| t.seq);
        let list: Vec<Value> = page.iter().map(|t| trade_view(t, now, &rules)).collect();
        json_response(
            StatusCode::OK,
            &json!({
                "count": list.len(),
                "trades": list,
                "next_after": next_after,
                "complete": !more,
            }),
        )
    })
    .await
}

/// Runs `build` on the blocking pool (serializing large answers must not stall the workers).
async fn off_the_runtime(
    build: impl FnOnce() -> Response<RespBody> + Send + 'static,
) -> Response<RespBody> {
    match tokio::task::spawn_blocking(build).await {
        Ok(response) => response,
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the answer could not be built",
        ),
    }
}

fn one_trade(shared: &Shared, partner: &str, id: &str) -> Response<RespBody> {
    let now = shared.clock.now_ms();
    let trade = shared.lock().ledger.trade(partner, id).cloned();
    match trade {
        Some(t) => json_response(StatusCode::OK, &trade_view(&t, now, &shared.config.rules)),
        None => error(StatusCode::NOT_FOUND, "no such trade"),
    }
}

fn put_dials(shared: &Shared, patch: &Value) -> Response<RespBody> {
    let Some(patch) = patch.as_object() else {
        return error(
            StatusCode::BAD_REQUEST,
            "the body must be a JSON object of dials",
        );
    };
    let mut core = shared.lock();
    let mut merged = json!(core.dials);
    if let Some(obj) = merged.as_object_mut() {
        for (k, v) in patch {
            obj.insert(k.clone(), v.clone());
        }
    }
    let dials: Dials = match serde_json::from_value(merged) {
        Ok(d) => d,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    if let Err((name, message)) = dials.validate() {
        return error(StatusCode::BAD_REQUEST, &format!("{name}: {message}"));
    }
    core.dials = dials;
    tracing::info!("The admin API changed the dials.");
    json_response(StatusCode::OK, &json!(core.dials))
}

fn clock(shared: &Shared) -> Response<RespBody> {
    let now = shared.clock.now_ms();
    let scheduled = shared.lock().ledger.scheduled();
    json_response(
        StatusCode::OK,
        &json!({
            "now": time(now),
            "unix_ms": now,
            "time_scale": shared.clock.scale(),
            "scheduled_events": scheduled,
        }),
    )
}

fn set_clock(shared: &Shared, body: &Value) -> Response<RespBody> {
    let moved = if let Some(ms) = body.get("advance_ms").and_then(Value::as_u64) {
        shared.clock.advance(ms)
    } else if let Some(text) = body.get("set").and_then(Value::as_str) {
        let Some(target) = BeijingTime::parse_dashed(text) else {
            return error(StatusCode::BAD_REQUEST, "set must be yyyy-MM-dd HH:mm:ss");
        };
        shared.clock.set(target.unix_ms())
    } else {
        return error(StatusCode::BAD_REQUEST, "give advance_ms or set");
    };
    match moved {
        Ok(_) => {}
        Err(ClockError::Backwards { .. }) => {
            return error(
                StatusCode::CONFLICT,
                "the simulated clock never goes backwards",
            )
        }
        Err(ClockError::TooLate { .. }) => {
            let latest = time(CLOCK_MS_MAX);
            let message = format!("the simulated clock cannot go past {latest}");
            return error(StatusCode::BAD_REQUEST, &message);
        }
    }
    tracing::info!("The admin API moved the simulated clock.");
    clock(shared)
}

/// A reconciliation file: the trades touching the day are copied under the lock, the text is
/// built off the runtime's workers, without the lock.
async fn file(shared: &Shared, kind: &str, query: &str) -> Response<RespBody> {
    let Some(partner) = query_param(query, "partner") else {
        return error(StatusCode::BAD_REQUEST, "partner is required");
    };
    let Some(day) = query_param(query, "day").and_then(|d| BeijingDay::parse(&d)) else {
        return error(StatusCode::BAD_REQUEST, "day must be YYYY-MM-DD");
    };
    let Some(account) = shared.config.accounts.get(&partner) else {
        return error(StatusCode::NOT_FOUND, "no such partner");
    };
    let bps = account.fee_rate_bps;
    let transactions = kind == "transactions";
    let trades: Vec<Trade> = shared
        .lock()
        .ledger
        .trades_after(0)
        .filter(|t| t.partner == partner && files::touches_day(t, day))
        .cloned()
        .collect();
    off_the_runtime(move || {
        let refs: Vec<&Trade> = trades.iter().collect();
        let (name, text) = if transactions {
            let name = files::transactions_file_name(&partner, day);
            (name, files::transactions_file(&partner, day, bps, &refs))
        } else {
            let name = files::settlement_file_name(&partner, day);
            (name, files::settlement_file(day, bps, &refs))
        };
        let mut r = respond(StatusCode::OK, "text/csv; charset=UTF-8", text);
        if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
            r.headers_mut().insert(CONTENT_DISPOSITION, v);
        }
        r
    })
    .await
}
