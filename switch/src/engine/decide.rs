//! The engine's decisions as pure functions: what to do with a request given the journal's
//! state, and which journal event an upstream answer becomes. No I/O, no clock: `now` is an
//! argument, so every rule here is tested without sockets or a database.

use alipay::message::GatewayErrorCode;
use alipay::xml::ResponseDoc;
use alipay::{
    Amount, BeijingTime, CancelResponse, Currency, PayResponse, QueryResponse, RefundResponse,
    ResultCode,
};
use ledger::{
    CancelAction, EventBody, Hash, Money, Outcome, RefundStatus, TradeStatus, TxnState, TxnStatus,
};

/// What to do with a pay, given what the journal has under its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayStep {
    /// Nothing journaled: journal the intent and send it.
    Start,
    /// The same request again: answer from the journal (never a second upstream pay).
    Replay,
    /// Same key, other parameters: `CONTEXT_INCONSISTENT`, nothing sent.
    Conflict,
}

/// Decides a pay from the state under its key and the request's fingerprint.
pub fn pay_step(existing: Option<&TxnState>, fingerprint: &Hash) -> PayStep {
    match existing {
        None => PayStep::Start,
        Some(s) if s.fingerprint == *fingerprint => PayStep::Replay,
        Some(_) => PayStep::Conflict,
    }
}

/// What to do with a refund, given the payment's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundStep {
    /// New refund id: journal the intent (which reserves the amount) and send it.
    Start,
    /// The same refund again: answer from the journal.
    Replay,
    /// Same refund id, other parameters.
    Conflict,
}

/// Decides a refund from the payment's state, the refund id and the refund's fingerprint.
pub fn refund_step(state: &TxnState, partner_refund_id: &str, fingerprint: &Hash) -> RefundStep {
    match state.refunds.get(partner_refund_id) {
        None => RefundStep::Start,
        Some(r) if r.fingerprint == *fingerprint => RefundStep::Replay,
        Some(_) => RefundStep::Conflict,
    }
}

/// True when a merchant's query can be answered from the journal alone: the outcome is final.
pub fn query_from_journal(state: &TxnState) -> bool {
    state.status.is_final()
}

/// Converts a wire amount to the journal's money.
pub fn money(amount: Amount) -> Money {
    let code = amount.currency().code().as_bytes();
    let mut currency = [0u8; 3];
    if code.len() == 3 {
        currency.copy_from_slice(code);
    }
    Money::new(amount.minor(), currency)
}

/// Converts the journal's money back to a wire amount (`None` for an unknown currency, which a
/// journal written by this switch never holds).
pub fn amount(money: Money) -> Option<Amount> {
    let currency: Currency = money.currency_code().parse().ok()?;
    Some(Amount::from_minor(money.minor, currency))
}

fn trade_status(s: alipay::TradeStatus) -> TradeStatus {
    match s {
        alipay::TradeStatus::WaitBuyerPay => TradeStatus::WaitBuyerPay,
        alipay::TradeStatus::TradeSuccess => TradeStatus::TradeSuccess,
        alipay::TradeStatus::TradeClosed => TradeStatus::TradeClosed,
        alipay::TradeStatus::TradeFinished => TradeStatus::TradeFinished,
    }
}

fn cancel_action(a: alipay::CancelAction) -> CancelAction {
    match a {
        alipay::CancelAction::Close => CancelAction::Close,
        alipay::CancelAction::Refund => CancelAction::Refund,
    }
}

fn text(v: Option<std::borrow::Cow<'_, str>>) -> Option<String> {
    v.map(|c| clip(&c))
}

/// Error codes and ids from upstream are kept at most this long in the journal.
const UPSTREAM_TEXT_MAX: usize = 128;

fn clip(s: &str) -> String {
    s.chars().take(UPSTREAM_TEXT_MAX).collect()
}

/// An answer that is not a usable business answer: the gateway's own error, if any.
fn gateway_error(doc: &ResponseDoc<'_>) -> Option<GatewayErrorCode> {
    doc.gateway_error()
}

/// What a gateway rejection means for a request that changes a trade: `SYSTEM_ERROR` is
/// unknown; every other code is a definite refusal (nothing happened). `None`: no rejection.
fn gateway_verdict(doc: &ResponseDoc<'_>) -> Option<(Outcome, String)> {
    let code = gateway_error(doc)?;
    let outcome = match code {
        GatewayErrorCode::SystemError => Outcome::Unknown,
        _ => Outcome::Fail,
    };
    Some((outcome, code.as_str().to_owned()))
}

/// Pay FAIL codes that do not mean "not paid": `SYSTEM_ERROR` is unknown; `TRADE_HAS_SUCCESS`
/// and `CONTEXT_INCONSISTENT` say a trade with this upstream id already exists at Alipay
/// (possibly paid), which only a query can settle.
const PAY_FAIL_NOT_FINAL: [&str; 3] = ["SYSTEM_ERROR", "TRADE_HAS_SUCCESS", "CONTEXT_INCONSISTENT"];

/// The journal event for a pay's upstream answer. A gateway rejection other than
/// `SYSTEM_ERROR` is definite (the pay was refused, nothing charged); `SYSTEM_ERROR`, an
/// `UNKNOWN`, or a body that does not parse as a pay answer is unknown.
pub fn pay_outcome(doc: Option<&ResponseDoc<'_>>, asked: Money) -> EventBody {
    let unknown = |code: Option<String>| EventBody::PayOutcome {
        result: Outcome::Unknown,
        alipay_trans_id: None,
        amount: None,
        paid_at_ms: None,
        fee: None,
        error_code: code,
    };
    let Some(doc) = doc else {
        return unknown(None);
    };
    if let Some((result, code)) = gateway_verdict(doc) {
        return EventBody::PayOutcome {
            result,
            alipay_trans_id: None,
            amount: None,
            paid_at_ms: None,
            fee: None,
            error_code: Some(code),
        };
    }
    let Ok(r) = doc.parse::<PayResponse<'_>>() else {
        return unknown(None);
    };
    let result = match r.result_code {
        ResultCode::Success => Outcome::Success,
        ResultCode::Fail
            if r.error
                .as_deref()
                .is_some_and(|e| PAY_FAIL_NOT_FINAL.contains(&e)) =>
        {
            Outcome::Unknown
        }
        ResultCode::Fail => Outcome::Fail,
        ResultCode::Unknown => Outcome::Unknown,
    };
    // The amount paid is the one Alipay reports, if it reports one in the asked currency.
    let paid = r
        .trans_amount
        .map(money)
        .filter(|m| result == Outcome::Success && m.currency == asked.currency);
    EventBody::PayOutcome {
        result,
        alipay_trans_id: text(r.alipay_trans_id),
        amount: paid,
        paid_at_ms: r.alipay_pay_time.map(BeijingTime::unix_ms),
        fee: None,
        error_code: text(r.error),
    }
}

/// The journal event for a query's upstream answer, or `None` when the answer says nothing
/// about the trade (a gateway error, a failed query other than `TRADE_NOT_EXIST`).
pub fn query_result(doc: &ResponseDoc<'_>) -> Option<EventBody> {
    if gateway_error(doc).is_some() {
        return None;
    }
    let r = doc.parse::<QueryResponse<'_>>().ok()?;
    let status = match r.result_code {
        ResultCode::Success => trade_status(r.alipay_trans_status?),
        ResultCode::Fail if r.error.as_deref() == Some("TRADE_NOT_EXIST") => TradeStatus::NotExist,
        _ => return None,
    };
    let paid = matches!(
        status,
        TradeStatus::TradeSuccess | TradeStatus::TradeFinished
    );
    Some(EventBody::QueryResult {
        status,
        alipay_trans_id: text(r.alipay_trans_id),
        paid_at_ms: r.alipay_pay_time.map(BeijingTime::unix_ms),
        amount: if paid {
            r.trans_amount.map(money)
        } else {
            None
        },
        fee: None,
    })
}

/// The journal event for a cancel's upstream answer (`None`: no answer at all, unknown).
pub fn cancel_result(doc: Option<&ResponseDoc<'_>>) -> EventBody {
    let unknown = |code: Option<String>| EventBody::CancelResult {
        result: Outcome::Unknown,
        action: None,
        retry: true,
        error_code: code,
    };
    let Some(doc) = doc else {
        return unknown(None);
    };
    if let Some((result, code)) = gateway_verdict(doc) {
        return EventBody::CancelResult {
            result,
            action: None,
            retry: result == Outcome::Unknown,
            error_code: Some(code),
        };
    }
    let Ok(r) = doc.parse::<CancelResponse<'_>>() else {
        return unknown(None);
    };
    let result = match r.result_code {
        ResultCode::Success => Outcome::Success,
        ResultCode::Fail => Outcome::Fail,
        ResultCode::Unknown => Outcome::Unknown,
    };
    EventBody::CancelResult {
        result,
        action: r.action.map(cancel_action),
        retry: r.retry_flag.unwrap_or(result == Outcome::Unknown),
        error_code: text(r.detail_error_code),
    }
}

/// The journal event for a refund's upstream answer (`None`: no answer at all, unknown).
pub fn refund_result(doc: Option<&ResponseDoc<'_>>, refund: ledger::RefundKey) -> EventBody {
    let (result, error_code) = match doc {
        None => (Outcome::Unknown, None),
        Some(doc) => match gateway_verdict(doc) {
            Some((result, code)) => (result, Some(code)),
            None => match doc.parse::<RefundResponse<'_>>() {
                Err(_) => (Outcome::Unknown, None),
                Ok(r) => {
                    let result = match r.result_code {
                        ResultCode::Success => Outcome::Success,
                        ResultCode::Fail if r.error.as_deref() == Some("SYSTEM_ERROR") => {
                            Outcome::Unknown
                        }
                        ResultCode::Fail => Outcome::Fail,
                        ResultCode::Unknown => Outcome::Unknown,
                    };
                    (result, text(r.error))
                }
            },
        },
    };
    EventBody::RefundResult {
        refund,
        result,
        fee: None,
        error_code,
    }
}

/// The status a merchant is shown for this state. A trade the resolver is reversing with a full
/// refund (found paid past its cancel window, after the cashier gave up on it) is never shown
/// paid: it reads as undecided while the refund is in flight, and as reversed once it is done,
/// so a replayed pay can never tell the cashier SUCCESS for money already on its way back.
pub fn merchant_status(state: &TxnState) -> TxnStatus {
    let reversal = state
        .refunds
        .iter()
        .find(|(id, _)| crate::resolver::plan::is_reversal(id))
        .map(|(_, r)| r.status);
    match reversal {
        Some(RefundStatus::Reserved | RefundStatus::Unknown) => TxnStatus::Unknown,
        Some(RefundStatus::Succeeded) => TxnStatus::Reversed,
        Some(RefundStatus::Failed) | None => state.status,
    }
}

/// The merchant-facing result code of a pay in this state.
pub fn pay_result_code(state: &TxnState) -> ResultCode {
    match merchant_status(state) {
        // Paid; refunds made since are the merchant's own doing.
        TxnStatus::Paid | TxnStatus::Refunded => ResultCode::Success,
        TxnStatus::Failed => ResultCode::Fail,
        // Closed before it was paid, or reversed by a cancel: a late or repeated pay is told
        // the trade is closed (`TRADE_HAS_CLOSE`), never SUCCESS for money already returned.
        TxnStatus::Closed | TxnStatus::Reversed => ResultCode::Fail,
        TxnStatus::Received | TxnStatus::Sent | TxnStatus::Unknown => ResultCode::Unknown,
    }
}

/// The trade status a merchant's query sees for this state. A failed pay reads as closed: it
/// was never paid and never will be.
pub fn merchant_trade_status(state: &TxnState) -> alipay::TradeStatus {
    match merchant_status(state) {
        TxnStatus::Paid => match state.last_query {
            Some(TradeStatus::TradeFinished) => alipay::TradeStatus::TradeFinished,
            _ => alipay::TradeStatus::TradeSuccess,
        },
        TxnStatus::Closed | TxnStatus::Reversed | TxnStatus::Refunded | TxnStatus::Failed => {
            alipay::TradeStatus::TradeClosed
        }
        TxnStatus::Received | TxnStatus::Sent | TxnStatus::Unknown => {
            alipay::TradeStatus::WaitBuyerPay
        }
    }
}

/// Milliseconds since the epoch as a Beijing time, for answers (`None` when out of range).
pub fn beijing(ms: Option<i64>) -> Option<BeijingTime> {
    ms.and_then(BeijingTime::from_unix_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alipay::xml::read_response;
    use alipay::{Charset, ResponseWriter, Signer};
    use ledger::{Event, TxnKey};

    fn signer() -> Signer {
        Signer::md5("0123456789abcdef0123456789abcdef").unwrap()
    }

    fn doc_of<'r, R: alipay::BusinessResponse<'r>>(r: &R) -> Vec<u8> {
        let mut w = ResponseWriter::new();
        w.write(Charset::Utf8, &[], r, &signer()).unwrap().to_vec()
    }

    fn gw_error(code: GatewayErrorCode) -> Vec<u8> {
        let mut w = ResponseWriter::new();
        w.write_gateway_error(Charset::Utf8, code, None)
            .unwrap()
            .to_vec()
    }

    fn with_doc<T>(body: &[u8], f: impl FnOnce(&ResponseDoc<'_>) -> T) -> T {
        let mut scratch = String::new();
        let doc = read_response(body, &mut scratch, 64 * 1024).unwrap();
        f(&doc)
    }

    const USD: Money = Money::new(1000, *b"USD");

    fn received() -> TxnState {
        let event = Event {
            seq: 1,
            prev_hash: [0; 32],
            at_ms: 1_700_000_000_000,
            txn: TxnKey::new("2088000000000001", "T1"),
            body: EventBody::PayReceived {
                upstream_partner: "2088101122136241".into(),
                upstream_trans_id: "sw1abc".into(),
                fingerprint: [7; 32],
                amount: USD,
                trans_create_time: "20261127120000".into(),
                secondary_merchant_id: None,
                store_id: None,
                notify_url: None,
            },
        };
        TxnState::start(&event).unwrap()
    }

    #[test]
    fn pay_step_by_fingerprint() {
        let s = received();
        assert_eq!(pay_step(None, &[7; 32]), PayStep::Start);
        assert_eq!(pay_step(Some(&s), &[7; 32]), PayStep::Replay);
        assert_eq!(pay_step(Some(&s), &[8; 32]), PayStep::Conflict);
    }

    #[test]
    fn pay_answers_become_events() {
        let usd = |t: &str| Amount::parse(t, "USD".parse().unwrap()).unwrap();
        let mut ok = PayResponse::bare(ResultCode::Success, None);
        ok.alipay_trans_id = Some("2026112700000001".into());
        ok.trans_amount = Some(usd("10.00"));
        ok.currency = Some("USD".parse().unwrap());
        let body = doc_of(&ok);
        let e = with_doc(&body, |d| pay_outcome(Some(d), USD));
        assert!(matches!(
            e,
            EventBody::PayOutcome { result: Outcome::Success, amount: Some(m), .. } if m == USD
        ));

        let fail = PayResponse::bare(ResultCode::Fail, Some("BUYER_BALANCE_NOT_ENOUGH"));
        let body = doc_of(&fail);
        let e = with_doc(&body, |d| pay_outcome(Some(d), USD));
        assert!(
            matches!(e, EventBody::PayOutcome { result: Outcome::Fail, error_code: Some(c), .. } if c == "BUYER_BALANCE_NOT_ENOUGH")
        );

        // FAIL with SYSTEM_ERROR is unknown, not a definite failure.
        let sys = PayResponse::bare(ResultCode::Fail, Some("SYSTEM_ERROR"));
        let body = doc_of(&sys);
        let e = with_doc(&body, |d| pay_outcome(Some(d), USD));
        assert!(matches!(
            e,
            EventBody::PayOutcome {
                result: Outcome::Unknown,
                ..
            }
        ));

        let body = gw_error(GatewayErrorCode::SystemError);
        let e = with_doc(&body, |d| pay_outcome(Some(d), USD));
        assert!(matches!(
            e,
            EventBody::PayOutcome {
                result: Outcome::Unknown,
                ..
            }
        ));
        let body = gw_error(GatewayErrorCode::IllegalSign);
        let e = with_doc(&body, |d| pay_outcome(Some(d), USD));
        assert!(matches!(
            e,
            EventBody::PayOutcome {
                result: Outcome::Fail,
                ..
            }
        ));
        assert!(matches!(
            pay_outcome(None, USD),
            EventBody::PayOutcome {
                result: Outcome::Unknown,
                ..
            }
        ));
    }

    #[test]
    fn query_and_cancel_answers_become_events() {
        let mut q = QueryResponse::bare(ResultCode::Success, None);
        q.alipay_trans_status = Some(alipay::TradeStatus::TradeClosed);
        let body = doc_of(&q);
        let e = with_doc(&body, query_result).unwrap();
        assert!(matches!(
            e,
            EventBody::QueryResult {
                status: TradeStatus::TradeClosed,
                ..
            }
        ));
        let q = QueryResponse::bare(ResultCode::Fail, Some("TRADE_NOT_EXIST"));
        let body = doc_of(&q);
        let e = with_doc(&body, query_result).unwrap();
        assert!(matches!(
            e,
            EventBody::QueryResult {
                status: TradeStatus::NotExist,
                ..
            }
        ));
        let body = gw_error(GatewayErrorCode::SystemError);
        assert!(with_doc(&body, query_result).is_none());

        let mut c = CancelResponse::bare(ResultCode::Fail);
        c.retry_flag = Some(true);
        let body = doc_of(&c);
        let e = with_doc(&body, |d| cancel_result(Some(d)));
        assert!(matches!(
            e,
            EventBody::CancelResult {
                result: Outcome::Fail,
                retry: true,
                ..
            }
        ));
        assert!(matches!(
            cancel_result(None),
            EventBody::CancelResult {
                result: Outcome::Unknown,
                retry: true,
                ..
            }
        ));
    }

    #[test]
    fn merchant_view_of_states() {
        let mut s = received();
        assert_eq!(pay_result_code(&s), ResultCode::Unknown);
        assert_eq!(merchant_trade_status(&s), alipay::TradeStatus::WaitBuyerPay);
        s.status = TxnStatus::Paid;
        assert_eq!(pay_result_code(&s), ResultCode::Success);
        s.status = TxnStatus::Failed;
        assert_eq!(pay_result_code(&s), ResultCode::Fail);
        assert_eq!(merchant_trade_status(&s), alipay::TradeStatus::TradeClosed);
        s.status = TxnStatus::Reversed;
        assert_eq!(merchant_trade_status(&s), alipay::TradeStatus::TradeClosed);
        assert!(query_from_journal(&s));
    }

    #[test]
    fn money_round_trips() {
        let a = Amount::parse("12.34", "EUR".parse().unwrap()).unwrap();
        assert_eq!(amount(money(a)), Some(a));
    }
}
