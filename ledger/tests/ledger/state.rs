//! The pure fold: the lifecycle's transitions and the money rules of refunds (INV-5).

use crate::common::*;
use ledger::{
    CancelAction, EventBody, Outcome, RefundStatus, Rejected, TradeStatus, TxnKey, TxnState,
    TxnStatus,
};

fn key() -> TxnKey {
    TxnKey::new("m", "o-1")
}

fn paid(minor: u64) -> TxnState {
    let k = key();
    TxnState::replay(&sealed(
        &k,
        1,
        vec![pay_received(&k, minor), pay_outcome(Outcome::Success, None)],
    ))
    .unwrap()
}

fn apply(state: &mut TxnState, body: EventBody) -> Result<(), Rejected> {
    let seq = state.last_seq + 1;
    let event = sealed(&key(), seq, vec![body]).remove(0);
    state.apply(&event)
}

#[test]
fn only_pay_received_starts_a_transaction() {
    let k = key();
    let ev = sealed(&k, 1, vec![pay_outcome(Outcome::Success, None)]).remove(0);
    assert_eq!(
        TxnState::start(&ev),
        Err(Rejected::UnknownTxn {
            event: "PayOutcome"
        })
    );
    let mut s = paid(100);
    assert_eq!(
        apply(&mut s, pay_received(&k, 100)),
        Err(Rejected::AlreadyReceived {
            same_fingerprint: true
        })
    );
}

#[test]
fn refunds_reserve_and_never_exceed_paid() {
    let mut s = paid(1_000);
    apply(&mut s, refund_intent("m", "r1", 600, 1)).unwrap();
    assert_eq!(s.reserved_minor, 600);
    assert!(s.is_pending(), "a refund in flight needs the resolver");
    let before = s.clone();
    assert!(matches!(
        apply(&mut s, refund_intent("m", "r2", 401, 2)),
        Err(Rejected::RefundExceedsPaid {
            paid_minor: 1_000,
            reserved_minor: 600,
            requested_minor: 401,
            ..
        })
    ));
    assert_eq!(s, before, "a rejected event changes nothing");
    apply(&mut s, refund_intent("m", "r2", 400, 2)).unwrap();
    assert_eq!(
        apply(&mut s, refund_intent("m", "r2", 1, 3)),
        Err(Rejected::RefundIdConflict)
    );
    assert_eq!(
        apply(&mut s, refund_intent("m", "r2", 400, 2)),
        Err(Rejected::RefundExists)
    );
    // Fail releases, Unknown keeps, Success converts.
    apply(&mut s, refund_result("m", "r1", Outcome::Unknown)).unwrap();
    assert_eq!(s.reserved_minor, 1_000);
    apply(&mut s, refund_result("m", "r1", Outcome::Fail)).unwrap();
    assert_eq!((s.reserved_minor, s.refunded_minor), (400, 0));
    assert_eq!(
        apply(&mut s, refund_result("m", "r1", Outcome::Success)),
        Err(Rejected::RefundAlreadyFinal)
    );
    apply(&mut s, refund_result("m", "r2", Outcome::Success)).unwrap();
    assert_eq!((s.reserved_minor, s.refunded_minor), (0, 400));
    assert_eq!(s.status, TxnStatus::Paid);
    apply(&mut s, refund_intent("m", "r3", 600, 4)).unwrap();
    apply(&mut s, refund_result("m", "r3", Outcome::Success)).unwrap();
    assert_eq!(s.status, TxnStatus::Refunded);
    assert!(!s.is_pending());
    assert_eq!(
        s.refund(&ledger::RefundKey::new("m", "r3"))
            .map(|r| r.status),
        Some(RefundStatus::Succeeded)
    );
    assert_eq!(
        apply(&mut s, refund_result("m", "r9", Outcome::Success)),
        Err(Rejected::UnknownRefund)
    );
}

#[test]
fn refunds_need_a_paid_trade_in_its_currency() {
    let k = key();
    let mut s = TxnState::replay(&sealed(&k, 1, vec![pay_received(&k, 500)])).unwrap();
    assert!(matches!(
        apply(&mut s, refund_intent("m", "r1", 1, 1)),
        Err(Rejected::RefundExceedsPaid { paid_minor: 0, .. })
    ));
    let mut s = paid(500);
    let mut body = refund_intent("m", "r1", 1, 1);
    if let EventBody::RefundIntent { amount, .. } = &mut body {
        amount.currency = *b"EUR";
    }
    assert!(matches!(
        apply(&mut s, body),
        Err(Rejected::CurrencyMismatch { .. })
    ));
    assert_eq!(
        apply(&mut s, refund_intent("x", "r1", 1, 1)),
        Err(Rejected::RefundMerchantMismatch)
    );
    assert_eq!(
        apply(&mut s, refund_intent("m", "r1", 0, 1)),
        Err(Rejected::ZeroAmount)
    );
}

#[test]
fn unknown_outcomes_resolve_by_query_or_cancel() {
    let k = key();
    let start = vec![
        pay_received(&k, 700),
        EventBody::PaySent {
            attempt: 1,
            endpoint: "primary".into(),
        },
        pay_outcome(Outcome::Unknown, None),
    ];
    let mut s = TxnState::replay(&sealed(&k, 1, start.clone())).unwrap();
    assert_eq!(s.status, TxnStatus::Unknown);
    assert!(s.is_pending());
    // Pay is never resent after an unknown outcome (INV-2).
    assert!(matches!(
        apply(
            &mut s,
            EventBody::PaySent {
                attempt: 2,
                endpoint: "backup".into()
            }
        ),
        Err(Rejected::InvalidTransition {
            status: TxnStatus::Unknown,
            ..
        })
    ));
    let query = |status| EventBody::QueryResult {
        status,
        alipay_trans_id: Some("A1".into()),
        paid_at_ms: Some(T0_MS),
        amount: None,
        fee: None,
    };
    let mut q = s.clone();
    apply(&mut q, query(TradeStatus::TradeSuccess)).unwrap();
    assert_eq!(
        (q.status, q.paid.map(|m| m.minor)),
        (TxnStatus::Paid, Some(700))
    );
    apply(&mut s, query(TradeStatus::NotExist)).unwrap();
    apply(&mut s, EventBody::CancelAttempt { attempt: 1 }).unwrap();
    let cancel = |result, action| EventBody::CancelResult {
        result,
        action,
        retry: true,
        error_code: None,
    };
    apply(&mut s, cancel(Outcome::Fail, None)).unwrap();
    assert_eq!(s.status, TxnStatus::Unknown);
    apply(&mut s, cancel(Outcome::Success, Some(CancelAction::Close))).unwrap();
    assert_eq!(s.status, TxnStatus::Closed);
    assert!(!s.is_pending());
    assert!(apply(&mut s, EventBody::CancelAttempt { attempt: 2 }).is_err());
}

#[test]
fn oversized_fields_and_times_are_rejected() {
    let mut s = paid(100);
    let long = "x".repeat(ledger::record::FIELD_BYTES_MAX + 1);
    assert!(matches!(
        apply(
            &mut s,
            EventBody::OperatorAction {
                who: long,
                why: "w".into(),
                action: "a".into()
            }
        ),
        Err(Rejected::FieldTooLong { field: "who", .. })
    ));
    let mut ev = sealed(&key(), 10, vec![EventBody::CancelAttempt { attempt: 1 }]).remove(0);
    ev.at_ms = -1;
    assert_eq!(s.apply(&ev), Err(Rejected::TimeOutOfRange { at_ms: -1 }));
}

#[test]
fn an_owed_notification_keeps_a_final_transaction_pending_until_delivered() {
    use ledger::NotifyResult;
    let mut s = paid(500);
    assert!(!s.is_pending());
    apply(&mut s, EventBody::NotifyDue { refund: None }).unwrap();
    let due = s.notify.due.clone().unwrap();
    assert_eq!((due.seq, due.attempts, due.refund), (s.last_seq, 0, None));
    assert!(s.is_pending(), "an owed notification is work left");
    let failed = EventBody::NotifyAttempt {
        attempt: 1,
        url: "http://m/n".into(),
        result: NotifyResult::Failed("HTTP 500".into()),
    };
    apply(&mut s, failed).unwrap();
    assert_eq!(s.notify.due.as_ref().map(|d| d.attempts), Some(1));
    assert!(s.is_pending());
    let delivered = EventBody::NotifyAttempt {
        attempt: 2,
        url: "http://m/n".into(),
        result: NotifyResult::Delivered,
    };
    apply(&mut s, delivered).unwrap();
    assert!(s.notify.delivered && s.notify.due.is_none());
    assert!(!s.is_pending());
}

#[test]
fn a_refund_notification_names_a_refund_of_this_transaction() {
    let mut s = paid(500);
    let other = ledger::RefundKey::new("m", "nope");
    assert_eq!(
        apply(
            &mut s,
            EventBody::NotifyDue {
                refund: Some(other)
            }
        ),
        Err(Rejected::UnknownRefund)
    );
    let foreign = ledger::RefundKey::new("x", "r1");
    apply(&mut s, refund_intent("m", "r1", 100, 1)).unwrap();
    assert_eq!(
        apply(
            &mut s,
            EventBody::NotifyDue {
                refund: Some(foreign)
            }
        ),
        Err(Rejected::RefundMerchantMismatch)
    );
    let mine = ledger::RefundKey::new("m", "r1");
    apply(&mut s, EventBody::NotifyDue { refund: Some(mine) }).unwrap();
    assert_eq!(s.notify.due.unwrap().refund.as_deref(), Some("r1"));
}

#[test]
fn an_exception_stays_until_an_operator_acts() {
    let k = key();
    let mut s = TxnState::replay(&sealed(
        &k,
        1,
        vec![pay_received(&k, 100), pay_outcome(Outcome::Unknown, None)],
    ))
    .unwrap();
    apply(
        &mut s,
        EventBody::Exception {
            reason: "cancel gave no definite answer after 20 attempts".into(),
        },
    )
    .unwrap();
    assert!(s.exception.is_some() && s.is_pending());
    let op = EventBody::OperatorAction {
        who: "alice".into(),
        why: "ticket 7".into(),
        action: "resolve".into(),
    };
    apply(&mut s, op).unwrap();
    assert!(
        s.exception.is_none(),
        "the operator's action re-arms the resolver"
    );
    assert_eq!(s.operator_actions, 1);
}

#[test]
fn a_cancel_of_a_paid_trade_without_a_definite_answer_keeps_it_pending() {
    let mut s = paid(500);
    apply(&mut s, EventBody::CancelAttempt { attempt: 1 }).unwrap();
    assert!(s.is_pending(), "sent, no answer journaled: in flight");
    let retry = EventBody::CancelResult {
        result: Outcome::Fail,
        action: None,
        retry: true,
        error_code: Some("SYSTEM_ERROR".into()),
    };
    apply(&mut s, retry).unwrap();
    assert!(s.is_pending(), "retry_flag=Y: must be sent again");
    apply(&mut s, EventBody::CancelAttempt { attempt: 2 }).unwrap();
    let refused = EventBody::CancelResult {
        result: Outcome::Fail,
        action: None,
        retry: false,
        error_code: Some("REASON_TRADE_CANCEL_EXPIRED".into()),
    };
    apply(&mut s, refused).unwrap();
    assert!(!s.is_pending(), "a definite refusal leaves the trade paid");
    apply(&mut s, EventBody::CancelAttempt { attempt: 3 }).unwrap();
    assert_eq!(
        s.cancel.last_result, None,
        "a new attempt has no answer yet"
    );
    assert!(s.is_pending());
}

#[test]
fn one_refunds_notification_never_hides_anothers() {
    use ledger::NotifyResult;
    let mut s = paid(1_000);
    apply(&mut s, refund_intent("m", "r1", 100, 1)).unwrap();
    apply(&mut s, refund_intent("m", "r2", 100, 2)).unwrap();
    let due = |r: &str| EventBody::NotifyDue {
        refund: Some(ledger::RefundKey::new("m", r)),
    };
    apply(&mut s, due("r1")).unwrap();
    apply(&mut s, due("r2")).unwrap();
    apply(&mut s, due("r2")).unwrap();
    assert_eq!(s.notify.due.as_ref().unwrap().refund.as_deref(), Some("r1"));
    assert_eq!(
        s.notify.queued,
        vec![Some("r2".to_owned())],
        "each subject once"
    );
    let delivered = EventBody::NotifyAttempt {
        attempt: 1,
        url: "http://m/n".into(),
        result: NotifyResult::Delivered,
    };
    apply(&mut s, delivered.clone()).unwrap();
    let next = s.notify.due.clone().unwrap();
    assert_eq!(next.refund.as_deref(), Some("r2"));
    assert_eq!(
        (next.seq, next.attempts),
        (s.last_seq, 0),
        "a new notification"
    );
    assert!(s.is_pending() && !s.notify.delivered);
    apply(&mut s, delivered).unwrap();
    assert!(s.notify.due.is_none() && s.notify.queued.is_empty() && s.notify.delivered);
}
