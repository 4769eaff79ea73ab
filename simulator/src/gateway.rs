//! `/gateway.do`: Alipay's checks in Alipay's order, then the dials, then the ledger, then the
//! signed XML answer — everything but the transport.
//!
//! The checks, each answered `is_success=F` with its code and changing nothing (a rejection
//! counter aside): form parse errors (`alipay::Error::gateway_code`, e.g. `ILLEGAL_ARGUMENT`,
//! `ILLEGAL_CHARSET`); missing or unknown partner `ILLEGAL_PARTNER`; a sign_type other than the
//! registered one `ILLEGAL_SIGN_TYPE`; a bad signature `ILLEGAL_SIGN`; an unknown service
//! `ILLEGAL_SERVICE`; a service the account may not call `ILLEGAL_PARTNER_EXTERFACE`; validation
//! (`Request::from_form`, and `extend_info` for acquirer accounts) `ILLEGAL_ARGUMENT`. Once the
//! partner is known, the rejection is signed over `error=CODE` with the account's signer.
//!
//! Then the per-partner token bucket (`throttle_rps`, HTTP 429), then one set of RNG draws and
//! the dials' decision, then the ledger, all under the state lock; signing happens after it.

use std::time::{Duration, Instant};

use alipay::message::GatewayErrorCode;
use alipay::{
    BusinessResponse, Charset, Form, FormLimits, Request, ResponseWriter, ResultCode, Service,
};

use crate::config::Account;
use crate::dials::{decide, Draws, PayPlan, Scenario, TransportFault};
use crate::ledger::pay::{fnv1a, PayInput};
use crate::ledger::Ledger;
use crate::state::Shared;

/// Largest request body, bytes; a larger one is refused with `ILLEGAL_ARGUMENT` unprocessed.
pub const BODY_BYTES_MAX: usize = 64 * 1024;
/// Largest URL query, bytes (hyper bounds the whole head separately).
pub const QUERY_BYTES_MAX: usize = 16 * 1024;
/// Limits of one form: the body and query limits above bind first.
pub const FORM_LIMITS: FormLimits = FormLimits {
    bytes_max: BODY_BYTES_MAX + QUERY_BYTES_MAX,
    params_max: 32,
    name_bytes_max: 64,
    value_bytes_max: 8 * 1024,
};

/// How the transport must answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `200 text/xml` with this body.
    Xml(Vec<u8>),
    /// A load balancer's `502` HTML page.
    Http502,
    /// `429` with `Retry-After`.
    Throttled { retry_after_s: u32 },
    /// No answer for `ms`, then close the connection.
    Hang { ms: u64 },
    /// A TCP reset.
    Reset,
    /// `200 text/xml`, the body trickled over `over_ms`.
    SlowBody { xml: Vec<u8>, over_ms: u64 },
}

/// A reply and the latency to wait before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// Wait this long (real time) first.
    pub latency: Duration,
    /// Then answer so.
    pub reply: Reply,
}

impl Planned {
    fn now(reply: Reply) -> Planned {
        Planned {
            latency: Duration::ZERO,
            reply,
        }
    }
}

/// A business answer, owned so that it can be signed after the lock is released.
enum Answer {
    Pay(alipay::PayResponse<'static>),
    Query(alipay::QueryResponse<'static>),
    Cancel(alipay::CancelResponse<'static>),
    Refund(alipay::RefundResponse<'static>),
    /// Capacity exhausted: gateway SYSTEM_ERROR, nothing processed.
    Full,
}

impl Answer {
    fn outcome(&self) -> &'static str {
        let code = match self {
            Answer::Pay(r) => r.result_code,
            Answer::Query(r) => r.result_code,
            Answer::Cancel(r) => r.result_code,
            Answer::Refund(r) => r.result_code,
            Answer::Full => return "SYSTEM_ERROR",
        };
        ResultCode::as_str(code)
    }
}

/// Writes a gateway rejection, signed when the account is known.
fn rejection(shared: &Shared, code: GatewayErrorCode, account: Option<&Account>) -> Vec<u8> {
    let mut writer = ResponseWriter::new();
    let encoding = shared.config.response_encoding;
    let signer = account.map(|a| &a.signer);
    match writer.write_gateway_error(encoding, code, signer) {
        Ok(xml) => xml.to_vec(),
        // Signing failed (it cannot for loaded keys): answer unsigned rather than not at all.
        Err(_) => writer
            .write_gateway_error(encoding, code, None)
            .map(<[u8]>::to_vec)
            .unwrap_or_default(),
    }
}

fn reject(shared: &Shared, code: GatewayErrorCode, account: Option<&Account>) -> Planned {
    shared.lock().counters.rejection(code.as_str());
    Planned::now(Reply::Xml(rejection(shared, code, account)))
}

/// The canonical fingerprint of a pay: every parameter but `sign`, `sign_type`, `notify_url` and
/// `_input_charset`, as decoded text, in name order (the form is sorted).
pub fn fingerprint(form: &Form<'_>) -> u64 {
    const SKIPPED: [&str; 4] = ["sign", "sign_type", "notify_url", "_input_charset"];
    let mut parts: Vec<&[u8]> = Vec::with_capacity(form.params().len() * 2);
    for p in form.params() {
        if !SKIPPED.contains(&p.name()) && !p.value().is_empty() {
            parts.push(p.name().as_bytes());
            parts.push(p.value().as_bytes());
        }
    }
    fnv1a(&parts)
}

/// Handles one gateway request (URL query and form body, already size-checked).
pub fn process(shared: &Shared, query: &[u8], body: &[u8]) -> Planned {
    let form = match Form::parse(query, body, &FORM_LIMITS) {
        Ok(form) => form,
        Err(e) => return reject(shared, e.gateway_code(), None),
    };
    let account = form
        .get_nonempty("partner")
        .and_then(|p| shared.config.accounts.get(p));
    let Some(account) = account else {
        return reject(shared, GatewayErrorCode::IllegalPartner, None);
    };
    let mut scratch = Vec::with_capacity(512);
    if let Err(e) = form.verify(&account.verifier, &mut scratch) {
        return reject(shared, e.gateway_code(), Some(account));
    }
    let Some(service) = form.get("service").and_then(Service::from_name) else {
        return reject(shared, GatewayErrorCode::IllegalService, Some(account));
    };
    if !account.services.contains(&service) {
        return reject(
            shared,
            GatewayErrorCode::IllegalPartnerExterface,
            Some(account),
        );
    }
    let request = match Request::from_form(&form) {
        Ok(r) => r,
        Err(e) => return reject(shared, e.gateway_code(), Some(account)),
    };
    if let Request::Pay(p) = &request {
        if account.require_extend_info && p.extend_info.is_none() {
            return reject(shared, GatewayErrorCode::IllegalArgument, Some(account));
        }
    }
    let fingerprint = fingerprint(&form);
    let echo = form.echo();
    apply(shared, account, &request, fingerprint, &echo)
}

/// Real-time lengths of the faults, from the dials at decision time.
#[derive(Debug, Clone, Copy)]
struct FaultTimes {
    hang_ms: u64,
    slow_body_ms: u64,
    retry_after_s: u32,
}

/// The reply of a fault that replaces the answer (every fault but the slow body).
fn fault_reply(shared: &Shared, account: &Account, fault: TransportFault, t: FaultTimes) -> Reply {
    match fault {
        TransportFault::SystemError { .. } => Reply::Xml(rejection(
            shared,
            GatewayErrorCode::SystemError,
            Some(account),
        )),
        TransportFault::Hang { .. } => Reply::Hang { ms: t.hang_ms },
        TransportFault::Reset => Reply::Reset,
        TransportFault::Http502 | TransportFault::SlowBody => Reply::Http502,
        TransportFault::Throttle => Reply::Throttled {
            retry_after_s: t.retry_after_s,
        },
    }
}

/// Runs the request against the ledger.
fn run_ledger(
    ledger: &mut Ledger,
    request: &Request<'_>,
    fingerprint: u64,
    plan: PayPlan,
    now_ms: i64,
) -> Answer {
    match request {
        Request::Pay(p) => {
            let input = PayInput {
                request: p,
                fingerprint,
                plan,
            };
            ledger.pay(&input, now_ms).map_or(Answer::Full, Answer::Pay)
        }
        Request::Query(q) => {
            Answer::Query(ledger.query(q.partner, q.partner_trans_id, q.alipay_trans_id, now_ms))
        }
        Request::Cancel(c) => ledger
            .cancel(c.partner, c.out_trade_no, c.trade_no, c.notify_url, now_ms)
            .map_or(Answer::Full, Answer::Cancel),
        Request::Refund(r) => ledger
            .refund(r, now_ms)
            .map_or(Answer::Full, Answer::Refund),
    }
}

/// Decides the dials and runs the ledger under the lock, then writes the answer.
fn apply(
    shared: &Shared,
    account: &Account,
    request: &Request<'_>,
    fingerprint: u64,
    echo: &[(&str, &str)],
) -> Planned {
    let service = request.service().label();
    let mut core = shared.lock();
    let times = FaultTimes {
        hang_ms: core.dials.hang_ms,
        slow_body_ms: core.dials.slow_body_ms,
        retry_after_s: core.dials.retry_after_s,
    };
    if !core.admit(&account.partner, Instant::now()) {
        core.counters.fault("throttle_rps");
        core.counters.request(service, "throttle_rps");
        let retry_after_s = times.retry_after_s;
        return Planned::now(Reply::Throttled { retry_after_s });
    }
    let draws = Draws::draw(&mut core.rng);
    let scenario = match request {
        Request::Pay(p) => Scenario::of_buyer_code(p.buyer_identity_code.expose()),
        _ => Scenario::Random,
    };
    let decision = decide(&core.dials, scenario, &draws);
    let latency = decision.latency;
    if let Some(fault) = decision.fault {
        core.counters.fault(fault.label());
        core.counters.request(service, fault.label());
        if !fault.processed() {
            drop(core);
            let reply = fault_reply(shared, account, fault, times);
            return Planned { latency, reply };
        }
    }
    let now_ms = shared.clock.now_ms();
    let answer = run_ledger(
        &mut core.ledger,
        request,
        fingerprint,
        decision.plan,
        now_ms,
    );
    if decision.fault.is_none() {
        core.counters.request(service, answer.outcome());
    }
    drop(core);
    if matches!(answer, Answer::Full) {
        tracing::warn!(
            "The ledger is full (trades_max or scheduled_events_max): answering SYSTEM_ERROR. \
             POST /admin/reset or raise the limits."
        );
    }
    let reply = match decision.fault {
        None => Reply::Xml(write_answer(shared, account, echo, &answer)),
        Some(TransportFault::SlowBody) => Reply::SlowBody {
            xml: write_answer(shared, account, echo, &answer),
            over_ms: times.slow_body_ms,
        },
        Some(fault) => fault_reply(shared, account, fault, times),
    };
    Planned { latency, reply }
}

fn write_answer(
    shared: &Shared,
    account: &Account,
    echo: &[(&str, &str)],
    answer: &Answer,
) -> Vec<u8> {
    fn write<'r, R: BusinessResponse<'r>>(
        encoding: Charset,
        echo: &[(&str, &str)],
        r: &R,
        account: &Account,
    ) -> Option<Vec<u8>> {
        let mut writer = ResponseWriter::new();
        writer
            .write(encoding, echo, r, &account.signer)
            .ok()
            .map(<[u8]>::to_vec)
    }
    let encoding = shared.config.response_encoding;
    let written = match answer {
        Answer::Pay(r) => write(encoding, echo, r, account),
        Answer::Query(r) => write(encoding, echo, r, account),
        Answer::Cancel(r) => write(encoding, echo, r, account),
        Answer::Refund(r) => write(encoding, echo, r, account),
        Answer::Full => None,
    };
    written.unwrap_or_else(|| rejection(shared, GatewayErrorCode::SystemError, Some(account)))
}
