//! `/gateway.do`: the merchant-facing side of the switch, exactly Alipay's MAPI contract.
//!
//! The checks, in Alipay's order, each answered `is_success=F` with its code and changing
//! nothing: the form (`ILLEGAL_ARGUMENT`, `ILLEGAL_CHARSET`, a repeated parameter included);
//! the caller by `partner` (`ILLEGAL_PARTNER`, unsigned: we do not know whose key to use); the
//! signature with the caller's registered sign type only (`ILLEGAL_SIGN_TYPE`, `ILLEGAL_SIGN`);
//! the service (`ILLEGAL_SERVICE`); validation of every field (`ILLEGAL_ARGUMENT`); for a pay,
//! whether the caller may act for the merchant named in `alipay_seller_id`
//! (`HAS_NO_PRIVILEGE`, the same for an unknown merchant and another's, so ids cannot be
//! probed). Once the caller is known, rejections are signed with its key.
//!
//! Then admission ([`crate::admission`]): the in-flight limits (in total and per caller, each
//! with a lane that new pays may not overrun, so queries and cancels always find a slot) and,
//! for pays and refunds, the caller's rate; then the engine. Business answers are rendered from
//! the journaled state ([`crate::engine`]), signed with the caller's key, with the request
//! echoed as Alipay does (every parameter but `sign` and `sign_type`).
//!
//! Answers the switch adds to Alipay's vocabulary:
//! - `result_code=UNKNOWN` with `error=SYSTEM_BUSY` ([`engine::BUSY_CODE`]; a cancel:
//!   `UNKNOWN`, `retry_flag=Y`, `detail_error_code=SYSTEM_BUSY`): this request was not
//!   processed — nothing journaled, nothing sent (in-flight limits, the caller's rate, another
//!   request on the same transaction for too long, a full journal queue, a failed journal, no
//!   usable upstream endpoint). Send the same request again later. It reads UNKNOWN, not FAIL,
//!   because a duplicate of a request still in flight elsewhere must not be told "not paid"; a
//!   query of an order number that was never processed answers `TRADE_NOT_EXIST`. For a query
//!   it reads `FAIL` `SYSTEM_ERROR` (try again).
//! - `FAIL` with `UPSTREAM_UNREACHABLE` ([`engine::NOT_SENT_CODE`]): journaled, but no endpoint
//!   could be reached, so Alipay never saw it: definitely not done.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use alipay::message::GatewayErrorCode;
use alipay::{
    BusinessResponse, CancelResponse, Charset, Form, FormLimits, PayResponse, QueryResponse,
    RefundResponse, Request, ResponseWriter, ResultCode, SellerRule, Service, Signer,
};
use ledger::{RefundStatus, TxnState, TxnStatus};

use crate::admission::{self, Class, RateLimit, RateLimits, Refusal};
use crate::engine::{self, decide, usize_f64, Answer, Engine};
use crate::telemetry;
use crate::tenants::{self, Caller, Tenants};

/// Limits of one request's form.
pub const FORM_LIMITS: FormLimits = FormLimits {
    bytes_max: 80 * 1024,
    params_max: 32,
    name_bytes_max: 64,
    value_bytes_max: 8 * 1024,
};

/// The merchant gateway.
pub struct Gateway {
    tenants: Arc<Tenants>,
    engine: Arc<Engine>,
    encoding: Charset,
    in_flight: Lanes,
    per_caller: HashMap<String, Lanes>,
    rates: RateLimits,
}

/// One in-flight bound and its pay lane: every request counts in `all`, a pay also in `pays`.
#[derive(Debug)]
struct Lanes {
    all: AtomicUsize,
    all_max: usize,
    pays: AtomicUsize,
    pays_max: usize,
}

impl Lanes {
    fn new(max: usize, pay_share_percent: u8) -> Lanes {
        Lanes {
            all: AtomicUsize::new(0),
            all_max: max,
            pays: AtomicUsize::new(0),
            pays_max: admission::share_of(max, pay_share_percent),
        }
    }

    /// Slots for a request of `class`, released on drop; None when its lane is full.
    fn take(&self, class: Class) -> Option<LaneSlots<'_>> {
        let pay = match class {
            Class::Pay => Some(Slot::take(&self.pays, self.pays_max)?),
            Class::Refund | Class::Finish => None,
        };
        let all = Slot::take(&self.all, self.all_max)?;
        Some(LaneSlots {
            _all: all,
            _pay: pay,
        })
    }
}

/// What one request holds of one [`Lanes`].
struct LaneSlots<'a> {
    _all: Slot<'a>,
    _pay: Option<Slot<'a>>,
}

/// What one request holds while it is processed: its slots in the gateway's lanes and in its
/// caller's.
struct Admitted<'a> {
    _total: LaneSlots<'a>,
    _own: Option<LaneSlots<'a>>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("in_flight", &self.in_flight.all.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Counts one request in flight against a limit; released on drop.
struct Slot<'a>(&'a AtomicUsize);

impl<'a> Slot<'a> {
    fn take(counter: &'a AtomicUsize, max: usize) -> Option<Slot<'a>> {
        let prev = counter.fetch_add(1, Ordering::AcqRel);
        if prev >= max {
            counter.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Slot(counter))
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What one request came to, for metrics and logs.
struct Rendered {
    service: &'static str,
    result: &'static str,
    body: Vec<u8>,
}

impl Gateway {
    /// A gateway over the routing table and the engine, at most `in_flight_max` requests in
    /// flight; new pays get the default share of it and of each caller's bound
    /// ([`Gateway::with_pay_share_percent`]); no caller is rate-limited
    /// ([`Gateway::with_rate_limits`]).
    pub fn new(
        tenants: Arc<Tenants>,
        engine: Arc<Engine>,
        encoding: Charset,
        in_flight_max: usize,
    ) -> Gateway {
        let share = crate::config::DEFAULT_PAY_SHARE_PERCENT;
        let per_caller = per_caller_lanes(&tenants, share);
        Gateway {
            tenants,
            engine,
            encoding,
            in_flight: Lanes::new(in_flight_max, share),
            per_caller,
            rates: RateLimits::default(),
        }
    }

    /// New pays may hold `percent` of the gateway's in-flight bound and of each caller's (the
    /// engine's `limits.pay_share_percent`, so both bounds keep the same room for the work that
    /// finishes transactions).
    pub fn with_pay_share_percent(mut self, percent: u8) -> Gateway {
        self.in_flight = Lanes::new(self.in_flight.all_max, percent);
        self.per_caller = per_caller_lanes(&self.tenants, percent);
        self
    }

    /// Limits the pays and refunds of these callers (by caller id) to their rates.
    pub fn with_rate_limits(
        mut self,
        limits: impl IntoIterator<Item = (String, RateLimit)>,
    ) -> Gateway {
        self.rates = RateLimits::new(limits);
        self
    }

    /// The `Content-Type` of the answers.
    pub fn content_type(&self) -> &'static str {
        match self.encoding {
            Charset::Utf8 => "text/xml; charset=UTF-8",
            Charset::Gbk => "text/xml; charset=GBK",
            Charset::Gb2312 => "text/xml; charset=GB2312",
        }
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The XML answer for a transport-level refusal (body too large, too slow): `ILLEGAL_ARGUMENT`,
    /// unsigned (the caller is not known yet).
    pub fn transport_error(&self, code: GatewayErrorCode) -> Vec<u8> {
        metrics::counter!(telemetry::REQUESTS, "service" => "unknown", "result" => code.as_str())
            .increment(1);
        self.gateway_error(code, None)
    }

    fn gateway_error(&self, code: GatewayErrorCode, signer: Option<&Signer>) -> Vec<u8> {
        let mut w = ResponseWriter::new();
        match w.write_gateway_error(self.encoding, code, signer) {
            Ok(xml) => xml.to_vec(),
            Err(_) => w
                .write_gateway_error(self.encoding, code, None)
                .map(<[u8]>::to_vec)
                .unwrap_or_default(),
        }
    }

    /// Handles one `/gateway.do` request: the URL query and the (size-checked) body. Returns the
    /// XML answer; never panics on any input.
    pub async fn handle(&self, query: &[u8], body: &[u8]) -> Vec<u8> {
        let started = Instant::now();
        let r = self.process(query, body).await;
        metrics::counter!(telemetry::REQUESTS, "service" => r.service, "result" => r.result)
            .increment(1);
        let elapsed = started.elapsed();
        metrics::histogram!(telemetry::REQUEST_SECONDS, "service" => r.service)
            .record(elapsed.as_secs_f64());
        // Never the form: it holds the buyer's code and the signature.
        tracing::debug!(
            service = r.service,
            result = r.result,
            micros = elapsed.as_micros(),
            "answered"
        );
        r.body
    }

    fn reject(&self, code: GatewayErrorCode, caller: Option<&Caller>) -> Rendered {
        Rendered {
            service: "unknown",
            result: code.as_str(),
            body: self.gateway_error(code, caller.map(|c| &c.signer)),
        }
    }

    async fn process(&self, query: &[u8], body: &[u8]) -> Rendered {
        let form = match Form::parse(query, body, &FORM_LIMITS) {
            Ok(f) => f,
            Err(e) => return self.reject(e.gateway_code(), None),
        };
        let Some(caller) = form
            .get_nonempty("partner")
            .and_then(|p| self.tenants.caller(p))
        else {
            return self.reject(GatewayErrorCode::IllegalPartner, None);
        };
        let caller = Arc::clone(caller);
        let mut scratch = Vec::with_capacity(512);
        if let Err(e) = form.verify(&caller.verifier, &mut scratch) {
            return self.reject(e.gateway_code(), Some(&caller));
        }
        if form.get("service").and_then(Service::from_name).is_none() {
            return self.reject(GatewayErrorCode::IllegalService, Some(&caller));
        }
        let request = match Request::from_form_with(&form, SellerRule::AnyPartnerId) {
            Ok(r) => r,
            Err(e) => return self.reject(e.gateway_code(), Some(&caller)),
        };
        let service = request.service();
        let class = Class::of(service);
        let echo = form.echo();
        let refuse = |why: Refusal| self.refuse(why, service, &caller, &echo, &request);
        let _admitted = match self.admit(class, &caller) {
            Ok(a) => a,
            Err(why) => return refuse(why),
        };
        // Only pays and refunds spend a token, and only once they are about to reach the
        // engine: a pay refused for its merchant does not spend one.
        let over_rate = || class.is_rated() && !self.rates.admit(&caller.id);
        let answer = match &request {
            Request::Pay(req) => {
                let seller = form.get("alipay_seller_id").unwrap_or_default();
                let route = match self.tenants.route(&caller, seller) {
                    Ok(r) => r,
                    Err(_) => {
                        return self.reject(GatewayErrorCode::HasNoPrivilege, Some(&caller));
                    }
                };
                let ext = match tenants::extend_info(&route, req.extend_info.as_ref()) {
                    Ok(e) => e,
                    Err(_) => {
                        return self.reject(GatewayErrorCode::IllegalArgument, Some(&caller));
                    }
                };
                if over_rate() {
                    return refuse(Refusal::CallerRate);
                }
                let fp = engine::fingerprint(&form);
                self.engine.pay(&caller, &route, req, ext, fp).await
            }
            Request::Query(req) => match req.partner_trans_id {
                Some(ptid) => self.engine.query(&caller, ptid, req.alipay_trans_id).await,
                // The switch finds transactions by the merchant's order number only.
                None => Answer::NotFound,
            },
            Request::Cancel(req) => match req.out_trade_no {
                Some(ptid) => self.engine.cancel(&caller, ptid, req.trade_no).await,
                None => Answer::NotFound,
            },
            Request::Refund(req) => {
                if over_rate() {
                    return refuse(Refusal::CallerRate);
                }
                let fp = engine::fingerprint(&form);
                self.engine.refund(&caller, req, fp).await
            }
        };
        self.render(service, &caller, &echo, &request, answer)
    }

    fn write<'r, R: BusinessResponse<'r>>(
        &self,
        caller: &Caller,
        echo: &[(&str, &str)],
        response: &R,
    ) -> Vec<u8> {
        let mut w = ResponseWriter::new();
        match w.write(self.encoding, echo, response, &caller.signer) {
            Ok(xml) => xml.to_vec(),
            Err(_) => self.gateway_error(GatewayErrorCode::SystemError, None),
        }
    }

    /// Slots in the in-flight lanes for a request of `class` by `caller`.
    fn admit(&self, class: Class, caller: &Caller) -> Result<Admitted<'_>, Refusal> {
        let total = self.in_flight.take(class).ok_or(Refusal::GatewayInFlight)?;
        let own = match self.per_caller.get(&caller.id) {
            Some(lanes) => Some(lanes.take(class).ok_or(Refusal::CallerInFlight)?),
            None => None,
        };
        metrics::gauge!(telemetry::IN_FLIGHT)
            .set(usize_f64(self.in_flight.all.load(Ordering::Relaxed)));
        Ok(Admitted {
            _total: total,
            _own: own,
        })
    }

    /// The "not processed" answer for a request admission refused (nothing journaled, nothing
    /// sent).
    fn refuse(
        &self,
        why: Refusal,
        service: Service,
        caller: &Caller,
        echo: &[(&str, &str)],
        request: &Request<'_>,
    ) -> Rendered {
        let label = service_label(service);
        metrics::counter!(telemetry::ADMISSION_REFUSALS, "service" => label, "reason" => why.as_str())
            .increment(1);
        match why {
            // Policy, not a fault: the counter shows it, and a flood must not flood the log.
            Refusal::CallerRate => tracing::debug!(
                caller = %caller.id,
                service = service.name(),
                reason = why.as_str(),
                "not processed"
            ),
            Refusal::GatewayInFlight | Refusal::CallerInFlight => tracing::warn!(
                caller = %caller.id,
                service = service.name(),
                reason = why.as_str(),
                "not processed"
            ),
        }
        // Rendered as every Busy is; which Busy does not show in the answer.
        self.render_body(
            service,
            caller,
            echo,
            request,
            Answer::Busy(engine::Busy::InFlight),
        )
    }

    fn render(
        &self,
        service: Service,
        caller: &Caller,
        echo: &[(&str, &str)],
        request: &Request<'_>,
        answer: Answer,
    ) -> Rendered {
        if let Answer::Busy(b) = &answer {
            metrics::counter!(
                telemetry::ADMISSION_REFUSALS,
                "service" => service_label(service),
                "reason" => b.as_str()
            )
            .increment(1);
            tracing::warn!(caller = %caller.id, service = service.name(), reason = b.as_str(), "not processed");
        }
        self.render_body(service, caller, echo, request, answer)
    }

    fn render_body(
        &self,
        service: Service,
        caller: &Caller,
        echo: &[(&str, &str)],
        request: &Request<'_>,
        answer: Answer,
    ) -> Rendered {
        let (result, body) = match request {
            Request::Pay(req) => {
                let r = pay_response(req.partner_trans_id, answer);
                (result_name(r.result_code), self.write(caller, echo, &r))
            }
            Request::Query(_) => {
                let r = query_response(answer);
                (result_name(r.result_code), self.write(caller, echo, &r))
            }
            Request::Cancel(req) => {
                let r = cancel_response(req.out_trade_no, answer);
                (result_name(r.result_code), self.write(caller, echo, &r))
            }
            Request::Refund(req) => {
                let r = refund_response(req, answer);
                (result_name(r.result_code), self.write(caller, echo, &r))
            }
        };
        Rendered {
            service: service_label(service),
            result,
            body,
        }
    }
}

fn per_caller_lanes(tenants: &Tenants, pay_share_percent: u8) -> HashMap<String, Lanes> {
    tenants
        .callers()
        .map(|c| (c.id.clone(), Lanes::new(c.in_flight_max, pay_share_percent)))
        .collect()
}

fn service_label(s: Service) -> &'static str {
    match s {
        Service::Pay => "pay",
        Service::Query => "query",
        Service::Cancel => "cancel",
        Service::Refund => "refund",
    }
}

fn result_name(r: ResultCode) -> &'static str {
    r.as_str()
}

fn owned(s: &str) -> Option<std::borrow::Cow<'static, str>> {
    Some(std::borrow::Cow::Owned(s.to_owned()))
}

/// The pay answer for an engine answer.
fn pay_response(ptid: &str, answer: Answer) -> PayResponse<'static> {
    match answer {
        Answer::State(s) => {
            let code = decide::pay_result_code(&s);
            let mut r = PayResponse::bare(code, None);
            if matches!(
                decide::merchant_status(&s),
                TxnStatus::Closed | TxnStatus::Reversed
            ) {
                r.error = owned("TRADE_HAS_CLOSE");
            } else if code != ResultCode::Success {
                r.error = s.error_code.as_deref().and_then(owned);
            }
            r.partner_trans_id = owned(ptid);
            r.alipay_trans_id = s.alipay_trans_id.as_deref().and_then(owned);
            let money = s.paid.unwrap_or(s.amount);
            r.trans_amount = decide::amount(money);
            r.currency = r.trans_amount.map(alipay::Amount::currency);
            if code == ResultCode::Success {
                r.alipay_pay_time = decide::beijing(s.paid_at_ms);
            }
            r
        }
        Answer::Conflict => with_ptid(
            PayResponse::bare(ResultCode::Fail, Some("CONTEXT_INCONSISTENT")),
            ptid,
        ),
        Answer::Refused(code, _) => {
            with_ptid(PayResponse::bare(ResultCode::Fail, Some(code)), ptid)
        }
        Answer::NotFound => with_ptid(
            PayResponse::bare(ResultCode::Fail, Some("TRADE_NOT_EXIST")),
            ptid,
        ),
        Answer::Busy(_) => with_ptid(
            PayResponse::bare(ResultCode::Unknown, Some(engine::BUSY_CODE)),
            ptid,
        ),
    }
}

fn with_ptid(mut r: PayResponse<'static>, ptid: &str) -> PayResponse<'static> {
    r.partner_trans_id = owned(ptid);
    r
}

/// The query answer for an engine answer.
fn query_response(answer: Answer) -> QueryResponse<'static> {
    match answer {
        Answer::State(s) => {
            let mut r = QueryResponse::bare(ResultCode::Success, None);
            r.alipay_trans_status = Some(decide::merchant_trade_status(&s));
            r.partner_trans_id = owned(&s.txn.partner_trans_id);
            r.out_trade_no = owned(&s.txn.partner_trans_id);
            r.alipay_trans_id = s.alipay_trans_id.as_deref().and_then(owned);
            r.trans_amount = decide::amount(s.paid.unwrap_or(s.amount));
            r.currency = r.trans_amount.map(alipay::Amount::currency);
            if s.paid.is_some() {
                r.alipay_pay_time = decide::beijing(s.paid_at_ms);
            }
            r
        }
        Answer::NotFound | Answer::Conflict | Answer::Refused(..) => {
            QueryResponse::bare(ResultCode::Fail, Some("TRADE_NOT_EXIST"))
        }
        Answer::Busy(_) => QueryResponse::bare(ResultCode::Fail, Some("SYSTEM_ERROR")),
    }
}

/// The cancel answer for an engine answer.
fn cancel_response(out_trade_no: Option<&str>, answer: Answer) -> CancelResponse<'static> {
    let mut r = match &answer {
        Answer::State(s) => cancel_from_state(s),
        Answer::NotFound => failed_cancel("TRADE_NOT_EXIST", false),
        Answer::Refused(code, _) => failed_cancel(code, false),
        Answer::Conflict => failed_cancel("CONTEXT_INCONSISTENT", false),
        Answer::Busy(_) => {
            let mut r = CancelResponse::bare(ResultCode::Unknown);
            r.retry_flag = Some(true);
            r.detail_error_code = owned(engine::BUSY_CODE);
            r
        }
    };
    r.out_trade_no = out_trade_no.and_then(owned);
    if let Answer::State(s) | Answer::Refused(_, Some(s)) = &answer {
        r.trade_no = s.alipay_trans_id.as_deref().and_then(owned);
    }
    r
}

fn failed_cancel(code: &str, retry: bool) -> CancelResponse<'static> {
    let mut r = CancelResponse::bare(ResultCode::Fail);
    r.retry_flag = Some(retry);
    r.detail_error_code = owned(code);
    r
}

fn cancel_from_state(s: &TxnState) -> CancelResponse<'static> {
    match s.status {
        // A failed pay left no paid trade: cancelling it closes it, as at Alipay.
        TxnStatus::Closed | TxnStatus::Reversed | TxnStatus::Failed => {
            let mut r = CancelResponse::bare(ResultCode::Success);
            r.retry_flag = Some(false);
            r.action = Some(match s.cancel.action {
                Some(ledger::CancelAction::Refund) => alipay::CancelAction::Refund,
                _ => alipay::CancelAction::Close,
            });
            r
        }
        _ => match s.cancel.last_result {
            Some(ledger::Outcome::Fail) => failed_cancel(
                s.cancel.error_code.as_deref().unwrap_or("SYSTEM_ERROR"),
                s.cancel.retry,
            ),
            _ => {
                let mut r = CancelResponse::bare(ResultCode::Unknown);
                r.retry_flag = Some(true);
                r.detail_error_code = s.cancel.error_code.as_deref().and_then(owned);
                r
            }
        },
    }
}

/// The refund answer for an engine answer.
fn refund_response(req: &alipay::RefundRequest<'_>, answer: Answer) -> RefundResponse<'static> {
    let mut r = match &answer {
        Answer::State(s) => match s.refunds.get(req.partner_refund_id) {
            Some(refund) => {
                let (code, error) = match refund.status {
                    RefundStatus::Succeeded => (ResultCode::Success, None),
                    RefundStatus::Failed => (
                        ResultCode::Fail,
                        refund.error_code.as_deref().and_then(owned),
                    ),
                    RefundStatus::Reserved | RefundStatus::Unknown => (
                        ResultCode::Unknown,
                        refund.error_code.as_deref().and_then(owned),
                    ),
                };
                let mut r = RefundResponse::bare(code, None);
                r.error = error;
                r.refund_amount = decide::amount(refund.amount);
                r.currency = r.refund_amount.map(alipay::Amount::currency);
                r
            }
            None => RefundResponse::bare(ResultCode::Unknown, None),
        },
        Answer::NotFound => RefundResponse::bare(ResultCode::Fail, Some("TRADE_NOT_EXIST")),
        Answer::Conflict => RefundResponse::bare(ResultCode::Fail, Some("CONTEXT_INCONSISTENT")),
        Answer::Refused(code, _) => RefundResponse::bare(ResultCode::Fail, Some(*code)),
        Answer::Busy(_) => RefundResponse::bare(ResultCode::Unknown, Some(engine::BUSY_CODE)),
    };
    r.partner_trans_id = owned(req.partner_trans_id);
    r.partner_refund_id = owned(req.partner_refund_id);
    if let Answer::State(s) | Answer::Refused(_, Some(s)) = &answer {
        r.alipay_trans_id = s.alipay_trans_id.as_deref().and_then(owned);
    }
    r
}
