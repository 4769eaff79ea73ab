//! Builders of realistic events shared by the integration tests.

use ledger::{
    CancelAction, Draft, Event, EventBody, Money, NotifyResult, Outcome, RefundKey, TradeStatus,
    TxnKey,
};

pub const USD: [u8; 3] = *b"USD";
pub const T0_MS: i64 = 1_718_000_000_000;

pub fn usd(minor: u64) -> Money {
    Money::new(minor, USD)
}

pub fn pay_received(txn: &TxnKey, minor: u64) -> EventBody {
    EventBody::PayReceived {
        upstream_partner: "2088000000000001".into(),
        upstream_trans_id: format!("SW-{}-{}", txn.merchant, txn.partner_trans_id),
        fingerprint: fingerprint(&txn.partner_trans_id),
        amount: usd(minor),
        trans_create_time: "20240610153000".into(),
        secondary_merchant_id: Some("SM-1".into()),
        store_id: Some("store-7".into()),
        notify_url: Some("https://merchant.example/notify".into()),
    }
}

pub fn pay_outcome(result: Outcome, minor: Option<u64>) -> EventBody {
    EventBody::PayOutcome {
        result,
        alipay_trans_id: Some("2024061022001".into()),
        amount: minor.map(usd),
        paid_at_ms: Some(T0_MS + 900),
        fee: Some(usd(3)),
        error_code: (result != Outcome::Success).then(|| "SYSTEM_ERROR".into()),
    }
}

pub fn refund_intent(merchant: &str, id: &str, minor: u64, fp: u8) -> EventBody {
    EventBody::RefundIntent {
        refund: RefundKey::new(merchant, id),
        upstream_refund_id: format!("SWR-{id}"),
        amount: usd(minor),
        fingerprint: [fp; 32],
        reason: Some("customer returned goods".into()),
    }
}

pub fn refund_result(merchant: &str, id: &str, result: Outcome) -> EventBody {
    EventBody::RefundResult {
        refund: RefundKey::new(merchant, id),
        result,
        fee: Some(usd(1)),
        error_code: None,
    }
}

pub fn fingerprint(s: &str) -> [u8; 32] {
    let mut fp = [0u8; 32];
    for (i, b) in s.bytes().enumerate() {
        fp[i % 32] ^= b;
    }
    fp
}

/// One of every body variant.
pub fn every_body(txn: &TxnKey) -> Vec<EventBody> {
    vec![
        pay_received(txn, 12_345),
        EventBody::PaySent {
            attempt: 1,
            endpoint: "primary".into(),
        },
        pay_outcome(Outcome::Success, Some(12_345)),
        EventBody::QueryResult {
            status: TradeStatus::TradeSuccess,
            alipay_trans_id: Some("2024061022001".into()),
            paid_at_ms: Some(T0_MS),
            amount: Some(usd(12_345)),
            fee: None,
        },
        EventBody::CancelAttempt { attempt: 2 },
        EventBody::CancelResult {
            result: Outcome::Fail,
            action: Some(CancelAction::Refund),
            retry: true,
            error_code: Some("SYSTEM_ERROR".into()),
        },
        refund_intent(&txn.merchant, "r1", 100, 7),
        refund_result(&txn.merchant, "r1", Outcome::Unknown),
        EventBody::NotifyAttempt {
            attempt: 1,
            url: "https://merchant.example/notify".into(),
            result: NotifyResult::Failed("HTTP 500".into()),
        },
        EventBody::OperatorAction {
            who: "ops-1".into(),
            why: "ticket 42".into(),
            action: "marked reviewed".into(),
        },
        EventBody::NotifyDue {
            refund: Some(RefundKey::new(&txn.merchant, "r1")),
        },
        EventBody::Exception {
            reason: "cancel undecided after 20 attempts".into(),
        },
    ]
}

pub fn draft(i: i64, body: EventBody) -> Draft {
    Draft::new(T0_MS + i, body)
}

/// Events numbered from `first_seq`, chained with a dummy hash (tests of the fold only).
pub fn sealed(txn: &TxnKey, first_seq: u64, bodies: Vec<EventBody>) -> Vec<Event> {
    bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| Event {
            seq: first_seq + u64::try_from(i).unwrap(),
            prev_hash: [0; 32],
            at_ms: T0_MS + i64::try_from(i).unwrap(),
            txn: txn.clone(),
            body,
        })
        .collect()
}

/// A journal in a fresh temporary directory.
pub fn temp_journal() -> (tempfile::TempDir, ledger::Journal) {
    let dir = tempfile::tempdir().unwrap();
    let journal = ledger::Journal::open(dir.path(), ledger::JournalOptions::default()).unwrap();
    (dir, journal)
}

/// PayReceived + PaySent + PayOutcome(Success): a realistic paid transaction in one append.
pub fn paid_drafts(txn: &TxnKey, minor: u64, t_ms: i64) -> Vec<Draft> {
    vec![
        Draft::new(t_ms, pay_received(txn, minor)),
        Draft::new(
            t_ms + 1,
            EventBody::PaySent {
                attempt: 1,
                endpoint: "primary".into(),
            },
        ),
        Draft::new(t_ms + 2, pay_outcome(Outcome::Success, None)),
    ]
}
