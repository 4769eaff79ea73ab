//! The operators' admin API: look a transaction up with its whole history, list what is pending
//! and what waits for an operator (the exceptions list), and act on one transaction — "resolve
//! now" or "cancel" — through the [`Resolver`], which journals each action as an
//! `OperatorAction` with who did it and why.
//!
//! It exists so an operator never has to touch the journal by hand: every change goes through
//! the same locks and the same journal path as the switch's own work, and leaves a record.
//!
//! Plain HTTP/1.1 with JSON bodies on its own listener (`listen.admin_api`), separate from the
//! gateway and from the operations endpoints so neither a merchant flood nor a scraper shares its
//! limits. It is not authenticated: bind it to loopback or a management network only
//! (`switch/README.md` documents the endpoints).
//!
//! # Limits (every one named below)
//!
//! Connections ([`ADMIN_CONNECTIONS_MAX`]; one more is closed at once), request head
//! ([`ADMIN_HEAD_BYTES_MAX`], within [`ADMIN_HEADER_READ_TIMEOUT`], which also ends an idle
//! keep-alive connection), body ([`ADMIN_BODY_BYTES_MAX`], within [`ADMIN_BODY_READ_TIMEOUT`]),
//! path segments (a journal key field, [`ledger::record::KEY_FIELD_BYTES_MAX`], after
//! percent-decoding), `who` and `why` ([`OPERATOR_TEXT_CHARS_MAX`]), list pages
//! ([`LIST_LIMIT_MAX`]) and work in progress ([`ADMIN_WORK_MAX`]: journal reads and operator
//! actions at once, counting those whose client has gone).
//!
//! # Actions run to completion
//!
//! An operator action runs in its own task: a client that disconnects does not cancel it halfway
//! (a cancel whose attempt is journaled must get its result journaled too). Journal reads run on
//! the blocking pool. At shutdown the listener closes, open connections finish, and the server
//! waits for work in progress, up to [`ADMIN_DRAIN_TIMEOUT`].

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use ledger::record::{FIELD_BYTES_MAX, KEY_FIELD_BYTES_MAX};
use ledger::{Event, Journal, TxnKey, TxnState};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tracing::Instrument;

use crate::resolver::{OperatorError, Resolver};

/// Open connections to the admin API at once.
pub const ADMIN_CONNECTIONS_MAX: usize = 16;
/// Requests being worked on at once (journal reads and operator actions), including those whose
/// client has gone; one more is answered 503 at once.
pub const ADMIN_WORK_MAX: usize = 8;
/// Largest request head (request line and headers), bytes.
pub const ADMIN_HEAD_BYTES_MAX: usize = 16 * 1024;
/// Largest request body, bytes.
pub const ADMIN_BODY_BYTES_MAX: usize = 16 * 1024;
/// Time for a request head (and the longest a keep-alive connection may sit idle).
pub const ADMIN_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for a request body from the end of its head.
pub const ADMIN_BODY_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long shutdown waits for open connections and work in progress.
pub const ADMIN_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Items in a list when the request does not say (`?limit=`).
pub const LIST_LIMIT_DEFAULT: usize = 100;
/// Most items in one list.
pub const LIST_LIMIT_MAX: usize = 1000;
/// Longest `who` or `why`, in characters.
pub const OPERATOR_TEXT_CHARS_MAX: usize = 128;
/// Pause after a failed `accept` (out of descriptors, say) before the next.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);
/// hyper's smallest read buffer.
const HYPER_BUF_BYTES_MIN: usize = 8192;

const _: () = assert!(ADMIN_HEAD_BYTES_MAX >= HYPER_BUF_BYTES_MIN);
// A character is at most 4 bytes of UTF-8: `who` and `why` always fit a journal text field.
const _: () = assert!(OPERATOR_TEXT_CHARS_MAX * 4 <= FIELD_BYTES_MAX);
const _: () = assert!(LIST_LIMIT_DEFAULT <= LIST_LIMIT_MAX);
const _: () = assert!(ADMIN_WORK_MAX <= ADMIN_CONNECTIONS_MAX);

/// Why a request got an error instead of its answer. Each variant is one HTTP status; the body
/// is `{"error": code, "message": sentence}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// The request is malformed (path segment, query, body): 400. Nothing was done.
    #[error("{0}")]
    BadRequest(String),
    /// No such transaction: 404.
    #[error("no such transaction")]
    NotFound,
    /// No such path: 404.
    #[error("no such path")]
    NoRoute,
    /// The path exists with other methods (the `Allow` header): 405.
    #[error("method not allowed; use {0}")]
    Method(&'static str),
    /// The body did not arrive within [`ADMIN_BODY_READ_TIMEOUT`]: 408. Nothing was done.
    #[error("the body did not arrive in time")]
    BodyTimeout,
    /// The body is over [`ADMIN_BODY_BYTES_MAX`]: 413. Nothing was done.
    #[error("the body is over {ADMIN_BODY_BYTES_MAX} bytes")]
    BodyTooLarge,
    /// The transaction's state does not allow the action (final, or not cancellable): 409.
    #[error("{0}")]
    Conflict(String),
    /// Not done now (the transaction or the switch is busy, no upstream is usable, the journal
    /// is down, or too much admin work is in progress): 503. Look the transaction up and retry.
    #[error("{0}")]
    Busy(String),
    /// The journal could not be read, or the answer not built: 500.
    #[error("{0}")]
    Internal(String),
}

impl AdminError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            AdminError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AdminError::NotFound | AdminError::NoRoute => StatusCode::NOT_FOUND,
            AdminError::Method(_) => StatusCode::METHOD_NOT_ALLOWED,
            AdminError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            AdminError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AdminError::Conflict(_) => StatusCode::CONFLICT,
            AdminError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            AdminError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `error` field of the body: a small closed set, for scripts.
    pub fn code(&self) -> &'static str {
        match self {
            AdminError::BadRequest(_) => "bad_request",
            AdminError::NotFound => "not_found",
            AdminError::NoRoute => "no_route",
            AdminError::Method(_) => "method_not_allowed",
            AdminError::BodyTimeout => "body_timeout",
            AdminError::BodyTooLarge => "body_too_large",
            AdminError::Conflict(_) => "conflict",
            AdminError::Busy(_) => "busy",
            AdminError::Internal(_) => "internal",
        }
    }
}

impl From<OperatorError> for AdminError {
    fn from(e: OperatorError) -> AdminError {
        match e {
            OperatorError::NotFound => AdminError::NotFound,
            OperatorError::Final | OperatorError::NotCancellable(_) => {
                AdminError::Conflict(e.to_string())
            }
            OperatorError::Busy(_) => AdminError::Busy(e.to_string()),
        }
    }
}

/// An operator's action on one transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Clear an exception and start the resolver's schedule again, now.
    Resolve,
    /// Cancel the trade at Alipay; the resolver resends until the answer is definite.
    Cancel,
}

impl Action {
    /// The action's name, as in the path.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Resolve => "resolve",
            Action::Cancel => "cancel",
        }
    }
}

/// Which list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    /// Every transaction in the journal's `pending` table.
    Pending,
    /// Those of them with an exception: waiting for an operator.
    Exceptions,
}

/// What a request asks for, once its method and path are understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /txns/{caller}/{partner_trans_id}`.
    Txn(TxnKey),
    /// `POST /txns/{caller}/{partner_trans_id}/{resolve|cancel}`.
    Act(TxnKey, Action),
    /// `GET /pending` or `GET /exceptions`, with the most items to list.
    List(List, usize),
}

/// Understands a request's method, path and query. Segments are percent-decoded after the path
/// is split, so an order number may hold an encoded `/` (`%2F`).
pub fn route(method: &Method, path: &str, query: Option<&str>) -> Result<Route, AdminError> {
    let segments: Vec<&str> = match path.strip_prefix('/') {
        Some(rest) => rest.split('/').take(5).collect(),
        None => return Err(AdminError::NoRoute),
    };
    let want = |allowed: Method, name: &'static str| {
        if *method == allowed {
            Ok(())
        } else {
            Err(AdminError::Method(name))
        }
    };
    match segments.as_slice() {
        ["txns", caller, ptid] => {
            want(Method::GET, "GET")?;
            Ok(Route::Txn(txn_key(caller, ptid)?))
        }
        ["txns", caller, ptid, action] => {
            let action = match *action {
                "resolve" => Action::Resolve,
                "cancel" => Action::Cancel,
                _ => return Err(AdminError::NoRoute),
            };
            want(Method::POST, "POST")?;
            Ok(Route::Act(txn_key(caller, ptid)?, action))
        }
        ["pending"] => {
            want(Method::GET, "GET")?;
            Ok(Route::List(List::Pending, list_limit(query)?))
        }
        ["exceptions"] => {
            want(Method::GET, "GET")?;
            Ok(Route::List(List::Exceptions, list_limit(query)?))
        }
        _ => Err(AdminError::NoRoute),
    }
}

fn txn_key(caller: &str, ptid: &str) -> Result<TxnKey, AdminError> {
    Ok(TxnKey::new(
        segment("caller", caller)?,
        segment("partner_trans_id", ptid)?,
    ))
}

/// A path segment, percent-decoded: non-empty UTF-8 without control characters, at most a
/// journal key field long.
pub fn segment(name: &str, raw: &str) -> Result<String, AdminError> {
    let bad = |why: &str| AdminError::BadRequest(format!("path segment `{name}`: {why}"));
    // Each decoded byte takes at most three raw ones: longer is over the limit whatever it holds.
    if raw.len() > KEY_FIELD_BYTES_MAX.saturating_mul(3) {
        return Err(bad("too long"));
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.bytes();
    while let Some(b) = bytes.next() {
        if b != b'%' {
            out.push(b);
            continue;
        }
        match (
            bytes.next().and_then(hex_digit),
            bytes.next().and_then(hex_digit),
        ) {
            (Some(hi), Some(lo)) => out.push(hi * 16 + lo),
            _ => return Err(bad("a `%` not followed by two hex digits")),
        }
    }
    let text = String::from_utf8(out).map_err(|_| bad("not UTF-8 once decoded"))?;
    if text.is_empty() {
        return Err(bad("empty"));
    }
    if text.len() > KEY_FIELD_BYTES_MAX {
        return Err(bad(&format!("over {KEY_FIELD_BYTES_MAX} bytes")));
    }
    if text.chars().any(char::is_control) {
        return Err(bad("a control character"));
    }
    Ok(text)
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `limit=N` (1 to [`LIST_LIMIT_MAX`], default [`LIST_LIMIT_DEFAULT`]); any other parameter is
/// refused, so a misspelt one is not silently ignored.
pub fn list_limit(query: Option<&str>) -> Result<usize, AdminError> {
    let mut limit = LIST_LIMIT_DEFAULT;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name != "limit" {
            return Err(AdminError::BadRequest(
                "unknown query parameter (only `limit`)".to_owned(),
            ));
        }
        limit = value
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=LIST_LIMIT_MAX).contains(n))
            .ok_or_else(|| {
                AdminError::BadRequest(format!("`limit` must be 1 to {LIST_LIMIT_MAX}"))
            })?;
    }
    Ok(limit)
}

/// The body of `resolve` and `cancel`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OperatorBody {
    who: String,
    why: String,
}

/// Who acts and why, from a `resolve` or `cancel` body: `{"who": "...", "why": "..."}`, both
/// required, trimmed, non-empty, at most [`OPERATOR_TEXT_CHARS_MAX`] characters, no control
/// characters.
pub fn operator_body(body: &[u8]) -> Result<(String, String), AdminError> {
    let b: OperatorBody = serde_json::from_slice(body).map_err(|e| {
        AdminError::BadRequest(format!(
            "the body must be {{\"who\": \"...\", \"why\": \"...\"}}: {e}"
        ))
    })?;
    Ok((operator_text("who", &b.who)?, operator_text("why", &b.why)?))
}

fn operator_text(name: &str, value: &str) -> Result<String, AdminError> {
    let value = value.trim();
    let bad = |why: String| AdminError::BadRequest(format!("`{name}` {why}"));
    if value.is_empty() {
        return Err(bad("is empty".to_owned()));
    }
    if value.chars().count() > OPERATOR_TEXT_CHARS_MAX {
        return Err(bad(format!("is over {OPERATOR_TEXT_CHARS_MAX} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(bad("has a control character".to_owned()));
    }
    Ok(value.to_owned())
}

// ---------------------------------------------------------------------------------------------
// Views: what the answers say.

/// The journal's own serde shape of a value, made readable: a money amount's currency as its
/// code (`"USD"`, not three numbers) and hashes as hex.
fn tidy(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            if let Some(money) = money_view(&map) {
                return money;
            }
            Value::Object(
                map.into_iter()
                    .map(|(k, v)| {
                        let v = if k == "fingerprint" || k.ends_with("hash") {
                            hex_view(v)
                        } else {
                            tidy(v)
                        };
                        (k, v)
                    })
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(tidy).collect()),
        other => other,
    }
}

/// `{"minor": n, "currency": [85, 83, 68]}` as `{"minor": n, "currency": "USD"}`.
fn money_view(map: &Map<String, Value>) -> Option<Value> {
    if map.len() != 2 {
        return None;
    }
    let minor = map.get("minor")?.as_u64()?;
    let code: String = map
        .get("currency")?
        .as_array()?
        .iter()
        .map(|b| {
            let b = u8::try_from(b.as_u64()?).ok()?;
            b.is_ascii_uppercase().then_some(char::from(b))
        })
        .collect::<Option<String>>()?;
    (code.len() == 3).then(|| json!({ "minor": minor, "currency": code }))
}

/// An array of bytes as lower-case hex (anything else as it is).
fn hex_view(value: Value) -> Value {
    let Some(items) = value.as_array() else {
        return value;
    };
    let hex: Option<String> = items
        .iter()
        .map(|b| {
            let b = u8::try_from(b.as_u64()?).ok()?;
            Some(format!("{b:02x}"))
        })
        .collect();
    hex.map_or(value, Value::String)
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Value, AdminError> {
    serde_json::to_value(v)
        .map(tidy)
        .map_err(|e| AdminError::Internal(format!("answer not built: {e}")))
}

/// A transaction's state as the journal holds it.
pub fn state_view(state: &TxnState) -> Result<Value, AdminError> {
    to_json(state)
}

/// One event: `seq`, `at_ms`, `kind` and the fields of its body.
pub fn event_view(event: &Event) -> Result<Value, AdminError> {
    // The body's serde shape is `{"Kind": {fields}}`; the kind is said once, beside.
    let body = match to_json(&event.body)? {
        Value::Object(map) if map.len() == 1 => map.into_iter().next().map(|(_, v)| v),
        other => Some(other),
    };
    Ok(json!({
        "seq": event.seq,
        "at_ms": event.at_ms,
        "kind": event.body.kind(),
        "body": body.unwrap_or(Value::Null),
    }))
}

/// One line of a list.
fn item_view(state: &TxnState) -> Result<Value, AdminError> {
    let mut item = json!({
        "merchant": state.txn.merchant,
        "partner_trans_id": state.txn.partner_trans_id,
        "status": to_json(&state.status)?,
        "amount": to_json(&state.amount)?,
        "received_at_ms": state.received_at_ms,
        "updated_at_ms": state.updated_at_ms,
    });
    if let (Some(e), Some(map)) = (&state.exception, item.as_object_mut()) {
        map.insert("reason".to_owned(), Value::String(e.reason.clone()));
        map.insert("exception_at_ms".to_owned(), json!(e.at_ms));
    }
    Ok(item)
}

fn journal_error(e: &ledger::Error) -> AdminError {
    tracing::error!(error = %e, "admin API: the journal could not be read");
    AdminError::Internal(format!("journal: {e}"))
}

/// `GET /txns/...`: the state and every event (blocking: RocksDB reads).
fn read_txn(journal: &Journal, key: &TxnKey) -> Result<Value, AdminError> {
    let state = journal
        .txn(key)
        .map_err(|e| journal_error(&e))?
        .ok_or(AdminError::NotFound)?;
    let events = journal.events_of(key).map_err(|e| journal_error(&e))?;
    let events = events
        .iter()
        .map(event_view)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(json!({ "state": state_view(&state)?, "events": events }))
}

/// `GET /pending` and `GET /exceptions` (blocking): the first `limit` in key order, and how many
/// there are in all — which takes a scan of the whole `pending` table.
fn read_list(journal: &Journal, list: List, limit: usize) -> Result<Value, AdminError> {
    let mut total = 0usize;
    let mut unreadable = 0usize;
    let mut items = Vec::with_capacity(limit.min(LIST_LIMIT_DEFAULT));
    for entry in journal.pending().map_err(|e| journal_error(&e))? {
        let state = match entry {
            Ok(s) => s,
            Err(e) => {
                // One bad entry must not hide the others from the operator.
                tracing::error!(error = %e, "admin API: a pending entry is unreadable");
                unreadable = unreadable.saturating_add(1);
                continue;
            }
        };
        if list == List::Exceptions && state.exception.is_none() {
            continue;
        }
        total = total.saturating_add(1);
        if items.len() < limit {
            items.push(item_view(&state)?);
        }
    }
    Ok(json!({
        "total": total,
        "count": items.len(),
        "unreadable": unreadable,
        "items": items,
    }))
}

// ---------------------------------------------------------------------------------------------
// The server.

/// What every connection shares.
#[derive(Debug)]
struct AdminApi {
    resolver: Arc<Resolver>,
    journal: Arc<Journal>,
    /// One permit per request being worked on ([`ADMIN_WORK_MAX`]); the drain takes them all.
    work: Arc<Semaphore>,
}

type Reply = Response<Full<Bytes>>;

fn json_reply(status: StatusCode, value: &Value) -> Reply {
    let mut body = serde_json::to_vec_pretty(value).unwrap_or_default();
    body.push(b'\n');
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn error_reply(e: &AdminError) -> Reply {
    let mut r = json_reply(
        e.status(),
        &json!({ "error": e.code(), "message": e.to_string() }),
    );
    if let AdminError::Method(allowed) = e {
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static(allowed));
    }
    r
}

impl AdminApi {
    async fn respond(&self, req: Request<Incoming>, peer: SocketAddr) -> Reply {
        match self.answer(req, peer).await {
            Ok(v) => json_reply(StatusCode::OK, &v),
            Err(e) => error_reply(&e),
        }
    }

    async fn answer(&self, req: Request<Incoming>, peer: SocketAddr) -> Result<Value, AdminError> {
        let done = match route(req.method(), req.uri().path(), req.uri().query())? {
            Route::Act(key, action) => {
                let (who, why) = operator_body(&read_body(req).await?)?;
                let permit = self.permit()?;
                let resolver = Arc::clone(&self.resolver);
                // Its own task: a client that goes away does not cancel an action halfway.
                tokio::spawn(async move {
                    let result = act(&resolver, &key, action, who, why, peer).await;
                    drop(permit);
                    result
                })
                .await
            }
            Route::Txn(key) => self.read(move |j| read_txn(j, &key)).await,
            Route::List(list, limit) => self.read(move |j| read_list(j, list, limit)).await,
        };
        done.map_err(|e| {
            tracing::error!(error = %e, "admin API: a request's task failed");
            AdminError::Internal("the request's task failed".to_owned())
        })?
    }

    /// A slot under [`ADMIN_WORK_MAX`], or 503 at once.
    fn permit(&self) -> Result<OwnedSemaphorePermit, AdminError> {
        Arc::clone(&self.work).try_acquire_owned().map_err(|_| {
            AdminError::Busy(format!(
                "{ADMIN_WORK_MAX} admin requests are in progress; try again"
            ))
        })
    }

    /// Runs a journal read on the blocking pool (RocksDB reads block), under a work slot.
    async fn read(
        &self,
        f: impl FnOnce(&Journal) -> Result<Value, AdminError> + Send + 'static,
    ) -> Result<Result<Value, AdminError>, tokio::task::JoinError> {
        let permit = match self.permit() {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        let journal = Arc::clone(&self.journal);
        tokio::task::spawn_blocking(move || {
            let result = f(&journal);
            drop(permit);
            result
        })
        .await
    }
}

/// Carries out one operator action through the resolver, with an INFO line before and after.
async fn act(
    resolver: &Resolver,
    key: &TxnKey,
    action: Action,
    who: String,
    why: String,
    peer: SocketAddr,
) -> Result<Value, AdminError> {
    // Every line of the action carries who, why and the key.
    let span = tracing::info_span!(
        "operator_action",
        merchant = %key.merchant,
        partner_trans_id = %key.partner_trans_id,
        action = action.as_str(),
        %who,
        %why,
        %peer,
    );
    async move {
        tracing::info!("operator action requested");
        let result = match action {
            Action::Resolve => resolver.resolve_now(key, who, why).await,
            Action::Cancel => resolver.operator_cancel(key, who, why).await,
        };
        match result {
            Ok(state) => {
                tracing::info!(status = ?state.status, "operator action done");
                Ok(json!({ "action": action.as_str(), "state": state_view(&state)? }))
            }
            Err(e) => {
                tracing::info!(error = %e, "operator action not done");
                Err(e.into())
            }
        }
    }
    .instrument(span)
    .await
}

/// The whole body, within [`ADMIN_BODY_BYTES_MAX`] and [`ADMIN_BODY_READ_TIMEOUT`]; a declared
/// length over the limit is refused before anything is read.
async fn read_body(req: Request<Incoming>) -> Result<Bytes, AdminError> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let max = u64::try_from(ADMIN_BODY_BYTES_MAX).unwrap_or(u64::MAX);
    if declared.is_some_and(|n| n > max) {
        return Err(AdminError::BodyTooLarge);
    }
    let collect = Limited::new(req.into_body(), ADMIN_BODY_BYTES_MAX).collect();
    match tokio::time::timeout(ADMIN_BODY_READ_TIMEOUT, collect).await {
        Err(_) => Err(AdminError::BodyTimeout),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(AdminError::BodyTooLarge)
        }
        Ok(Err(e)) => Err(AdminError::BadRequest(format!(
            "the body is unreadable: {e}"
        ))),
        Ok(Ok(c)) => Ok(c.to_bytes()),
    }
}

/// The running admin API, or nothing when it is not configured.
#[derive(Debug)]
pub struct AdminServer {
    addr: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl AdminServer {
    /// The address it listens on (`None` when not configured).
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// Stops accepting, lets open connections and work in progress finish (at most
    /// [`ADMIN_DRAIN_TIMEOUT`]) and returns. Dropping the server stops it too, without waiting.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// Binds `addr` (port 0 picks one; read it from [`AdminServer::addr`]) and serves the admin API
/// until [`AdminServer::stop`]. With `addr` `None`, serves nothing.
pub async fn start(
    addr: Option<SocketAddr>,
    resolver: Arc<Resolver>,
    journal: Arc<Journal>,
) -> io::Result<AdminServer> {
    let Some(addr) = addr else {
        return Ok(AdminServer {
            addr: None,
            stop: None,
            task: None,
        });
    };
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        io::Error::new(e.kind(), format!("admin API: cannot listen on {addr}: {e}"))
    })?;
    let local = listener.local_addr()?;
    tracing::info!(addr = %local, "admin API listening (not authenticated: loopback or a management network only)");
    let api = Arc::new(AdminApi {
        resolver,
        journal,
        work: Arc::new(Semaphore::new(ADMIN_WORK_MAX)),
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, api, async move {
        let _ = stopped.await;
    }));
    Ok(AdminServer {
        addr: Some(local),
        stop: Some(stop),
        task: Some(task),
    })
}

async fn serve(
    listener: TcpListener,
    api: Arc<AdminApi>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let connections_max = Arc::new(Semaphore::new(ADMIN_CONNECTIONS_MAX));
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "admin API: accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            },
        };
        let Ok(slot) = Arc::clone(&connections_max).try_acquire_owned() else {
            tracing::debug!(%peer, "admin API: too many connections; closing this one");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let api = Arc::clone(&api);
        let service = service_fn(move |req| {
            let api = Arc::clone(&api);
            async move { Ok::<_, Infallible>(api.respond(req, peer).await) }
        });
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(ADMIN_HEADER_READ_TIMEOUT)
            .keep_alive(true)
            .max_buf_size(ADMIN_HEAD_BYTES_MAX);
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        connections.spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "admin API: connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    let work_max = u32::try_from(ADMIN_WORK_MAX).unwrap_or(u32::MAX);
    let drained = tokio::time::timeout(ADMIN_DRAIN_TIMEOUT, async {
        graceful.shutdown().await;
        // Every permit back: no read or action is left running.
        let _ = api.work.acquire_many(work_max).await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!("admin API: drain timeout; closing the remaining connections");
    }
    connections.shutdown().await;
    tracing::info!("admin API stopped");
}
