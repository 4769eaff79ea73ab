//! `loadtest smoke`: one of each service against a gateway, each checked.
//!
//! A pay, a query of it (`TRADE_SUCCESS`), a partial refund, a query after the refund, a second
//! pay, its cancel, and a query of the cancelled one (`TRADE_CLOSED`). Every answer must be a
//! signed success; the run prints one line per step and passes only if every step did.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use alipay_sim::client::HttpClient;

use crate::fleet::Fleet;
use crate::runner::{deliver, prepare, wall_clock};
use crate::told::Answer;
use crate::workload::{OpKind, OrderSpec};

/// One step's result.
#[derive(Debug, Clone)]
pub struct Step {
    /// What was asked (`pay`, `query after refund`, ...).
    pub what: String,
    /// What was expected.
    pub expected: String,
    /// The answer.
    pub answer: Answer,
    /// Whether it was the expected one.
    pub ok: bool,
    /// Round trip.
    pub elapsed: Duration,
}

async fn send(
    client: &HttpClient,
    fleet: &Fleet,
    spec: &OrderSpec,
    kind: &OpKind,
) -> (Answer, Duration) {
    let started = std::time::Instant::now();
    let signed = prepare(fleet, spec, kind);
    let answer = deliver(client, fleet, spec, kind.service(), signed).await;
    (answer, started.elapsed())
}

/// Runs the smoke test with the fleet's caller `caller` (index) against `client`.
pub async fn smoke(client: &HttpClient, fleet: Arc<Fleet>, caller: usize) -> Vec<Step> {
    let tag = wall_clock()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let merchant = fleet
        .callers
        .get(caller)
        .and_then(|c| c.merchants.first().cloned())
        .unwrap_or_default();
    let order = |n: u32, amount_minor: u64| OrderSpec {
        caller,
        merchant: merchant.clone(),
        partner_trans_id: format!("smoke{tag}-{n}"),
        amount_minor,
        buyer_code: format!("2812{:014}", tag % 100_000_000_000_000),
    };
    let first = order(1, 1_000);
    let second = order(2, 500);
    let refund = OpKind::Refund {
        partner_refund_id: format!("smoke{tag}-1-r1"),
        amount_minor: 250,
    };
    let plan: Vec<(&str, &OrderSpec, OpKind, Option<&str>)> = vec![
        ("pay 10.00", &first, OpKind::Pay, None),
        ("query", &first, OpKind::Query, Some("TRADE_SUCCESS")),
        ("refund 2.50", &first, refund, None),
        (
            "query after the refund",
            &first,
            OpKind::Query,
            Some("TRADE_SUCCESS"),
        ),
        ("pay 5.00", &second, OpKind::Pay, None),
        ("cancel", &second, OpKind::Cancel, None),
        (
            "query after the cancel",
            &second,
            OpKind::Query,
            Some("TRADE_CLOSED"),
        ),
    ];
    let mut steps = Vec::new();
    for (what, spec, kind, status) in plan {
        let (answer, elapsed) = send(client, &fleet, spec, &kind).await;
        let ok = match (&answer, status) {
            (Answer::Success { trade_status }, Some(want)) => trade_status.as_deref() == Some(want),
            (Answer::Success { .. }, None) => true,
            _ => false,
        };
        steps.push(Step {
            what: what.to_owned(),
            expected: match status {
                Some(s) => format!("SUCCESS, {s}"),
                None => "SUCCESS".to_owned(),
            },
            answer,
            ok,
            elapsed,
        });
    }
    steps
}
