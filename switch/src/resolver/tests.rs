//! The resolver's plan under simulated time: the schedule of spec §6, the cancel ladder, the
//! Beijing-day cutoff, and wall clocks that jump forward and back across midnight GMT+8.

use ledger::{Event, EventBody, Money, Outcome, RefundKey, TradeStatus, TxnKey, TxnState};

use super::plan::{cancel_deadline_ms, plan, Memory, Phase, Schedule, Step};

/// 2026-11-27 12:00:00 Beijing (04:00 UTC).
const NOON: i64 = 1_795_752_000_000;
const HOUR: i64 = 3_600_000;

fn schedule() -> Schedule {
    Schedule {
        first_query_after_ms: 5_000,
        query_interval_ms: 5_000,
        query_window_ms: 30_000,
        retry_ms: vec![1_000, 2_000, 5_000],
        cancel_attempts_max: 5,
        cancel_grace_ms: 15 * 60_000,
        refund_attempts_max: 3,
    }
}

fn key() -> TxnKey {
    TxnKey::new("2088000000000001", "T1")
}

struct Txn {
    events: Vec<Event>,
}

impl Txn {
    fn new(at_ms: i64) -> Txn {
        let mut t = Txn { events: Vec::new() };
        t.add(
            at_ms,
            EventBody::PayReceived {
                upstream_partner: "2088101122136241".into(),
                upstream_trans_id: "sw1Pabc".into(),
                fingerprint: [1; 32],
                amount: Money::new(1_000, *b"USD"),
                trans_create_time: "20261127120000".into(),
                secondary_merchant_id: None,
                store_id: None,
                notify_url: Some("http://127.0.0.1:1/n".into()),
            },
        );
        t.add(
            at_ms,
            EventBody::PayOutcome {
                result: Outcome::Unknown,
                alipay_trans_id: None,
                amount: None,
                paid_at_ms: None,
                fee: None,
                error_code: None,
            },
        );
        t
    }

    fn add(&mut self, at_ms: i64, body: EventBody) -> &mut Txn {
        let seq = u64::try_from(self.events.len()).unwrap() + 1;
        self.events.push(Event {
            seq,
            prev_hash: [0; 32],
            at_ms,
            txn: key(),
            body,
        });
        self
    }

    fn state(&self) -> TxnState {
        TxnState::replay(&self.events).unwrap()
    }
}

fn cancel_result(result: Outcome, retry: bool, code: Option<&str>) -> EventBody {
    EventBody::CancelResult {
        result,
        action: None,
        retry,
        error_code: code.map(str::to_owned),
    }
}

/// Runs the plan from `start_wall`, the monotonic clock starting at 0, acting on every
/// non-wait step by recording a call, until `until_mono`. `wall_of(mono)` gives the wall clock
/// at each moment (so tests can make it jump). Returns the steps with their monotonic time.
fn simulate(state: &TxnState, wall_of: impl Fn(i64) -> i64, until_mono: i64) -> Vec<(i64, Step)> {
    let s = schedule();
    let mut memory = Memory::seen(state, wall_of(0), 0);
    let mut mono = 0;
    let mut out = Vec::new();
    while mono <= until_mono {
        let step = plan(state, &memory, wall_of(mono), mono, &s);
        match step {
            Step::Wait { at_mono_ms } => {
                assert!(
                    at_mono_ms > mono,
                    "a wait is in the future: {at_mono_ms} at {mono}"
                );
                mono = at_mono_ms;
            }
            Step::Done | Step::Parked | Step::GiveUp { .. } => {
                out.push((mono, step));
                break;
            }
            step => {
                memory.called(step.phase().unwrap(), mono);
                out.push((mono, step));
            }
        }
    }
    out
}

#[test]
fn an_unknown_pay_is_queried_at_5s_then_every_5s_then_cancelled_at_the_window() {
    let state = Txn::new(NOON).state();
    let steps = simulate(&state, |m| NOON + m, 30_000);
    let times: Vec<(i64, &Step)> = steps.iter().map(|(t, s)| (*t, s)).collect();
    assert_eq!(
        times,
        vec![
            (5_000, &Step::Query),
            (10_000, &Step::Query),
            (15_000, &Step::Query),
            (20_000, &Step::Query),
            (25_000, &Step::Query),
            (30_000, &Step::Cancel),
        ]
    );
}

#[test]
fn a_transaction_found_late_is_cancelled_at_once_and_one_found_early_waits() {
    let state = Txn::new(NOON).state();
    let s = schedule();
    let late = Memory::seen(&state, NOON + 40_000, 0);
    assert_eq!(plan(&state, &late, NOON + 40_000, 0, &s), Step::Cancel);
    let early = Memory::seen(&state, NOON + 1_000, 0);
    assert_eq!(
        plan(&state, &early, NOON + 1_000, 0, &s),
        Step::Wait { at_mono_ms: 4_000 }
    );
}

#[test]
fn a_cancel_without_a_definite_answer_is_resent_on_the_ladder_then_given_up() {
    let mut t = Txn::new(NOON);
    t.add(NOON + 30_000, EventBody::CancelAttempt { attempt: 1 });
    t.add(
        NOON + 30_000,
        cancel_result(Outcome::Fail, true, Some("SYSTEM_ERROR")),
    );
    let s = schedule();
    let state = t.state();
    let mut memory = Memory::seen(&state, NOON + 30_000, 0);
    // Nothing sent by this process yet: resend now.
    assert_eq!(plan(&state, &memory, NOON + 30_000, 0, &s), Step::Cancel);
    memory.called(Phase::Cancel, 0);
    assert_eq!(
        plan(&state, &memory, NOON + 30_000, 0, &s),
        Step::Wait { at_mono_ms: 1_000 }
    );
    memory.called(Phase::Cancel, 1_000);
    assert_eq!(
        plan(&state, &memory, NOON + 31_000, 1_000, &s),
        Step::Wait { at_mono_ms: 3_000 }
    );
    memory.called(Phase::Cancel, 3_000);
    memory.called(Phase::Cancel, 8_000);
    // The last rung repeats.
    assert_eq!(
        plan(&state, &memory, NOON + 38_000, 8_000, &s),
        Step::Wait { at_mono_ms: 13_000 }
    );
    // An UNKNOWN answer is just as undecided.
    let mut t2 = Txn::new(NOON);
    t2.add(NOON, EventBody::CancelAttempt { attempt: 1 });
    t2.add(NOON, cancel_result(Outcome::Unknown, true, None));
    let m2 = Memory::seen(&t2.state(), NOON, 0);
    assert_eq!(plan(&t2.state(), &m2, NOON, 0, &s), Step::Cancel);
    // At cancel_attempts_max the resolver gives up.
    for a in 2..=5 {
        t.add(NOON + 40_000, EventBody::CancelAttempt { attempt: a });
        t.add(
            NOON + 40_000,
            cancel_result(Outcome::Fail, true, Some("SYSTEM_ERROR")),
        );
    }
    let state = t.state();
    let step = plan(&state, &memory, NOON + 60_000, 30_000, &s);
    assert!(
        matches!(&step, Step::GiveUp { reason } if reason.contains("5 attempts") && reason.contains("SYSTEM_ERROR")),
        "{step:?}"
    );
}

#[test]
fn a_cancel_of_a_paid_trade_awaiting_an_answer_is_resent() {
    let mut t = Txn::new(NOON);
    t.add(
        NOON + 1,
        EventBody::QueryResult {
            status: TradeStatus::TradeSuccess,
            alipay_trans_id: Some("2026".into()),
            paid_at_ms: Some(NOON),
            amount: None,
            fee: None,
        },
    );
    let s = schedule();
    assert_eq!(
        plan(&t.state(), &Memory::seen(&t.state(), NOON, 0), NOON, 0, &s),
        Step::Done
    );
    t.add(NOON + 2, EventBody::CancelAttempt { attempt: 1 });
    let state = t.state();
    assert_eq!(
        plan(&state, &Memory::seen(&state, NOON, 0), NOON + 3, 0, &s),
        Step::Cancel
    );
}

#[test]
fn past_the_beijing_day_cutoff_the_resolver_reverses_instead_of_cancelling() {
    // Paid (unknown to us) at 23:59:50 Beijing; the window ends after midnight.
    let before_midnight = NOON + 12 * HOUR - 10_000;
    let state = Txn::new(before_midnight).state();
    let deadline = cancel_deadline_ms(before_midnight, 15 * 60_000);
    assert_eq!(deadline, NOON + 12 * HOUR + 15 * 60_000);
    // At the window's end (00:00:20) the grace still allows a cancel.
    let s = schedule();
    let m = Memory::seen(&state, before_midnight + 30_000, 0);
    assert_eq!(
        plan(&state, &m, before_midnight + 30_000, 0, &s),
        Step::Cancel
    );
    // Found only at 00:20 (a restart, or a long outage): reverse (query, refund if paid).
    let late = deadline + 5 * 60_000;
    let m = Memory::seen(&state, late, 0);
    assert_eq!(plan(&state, &m, late, 0, &s), Step::Reverse);
    // A cancel Alipay refused as expired leads to the same.
    let mut t = Txn::new(before_midnight);
    t.add(deadline, EventBody::CancelAttempt { attempt: 1 });
    t.add(
        deadline,
        cancel_result(Outcome::Fail, false, Some("REASON_TRADE_CANCEL_EXPIRED")),
    );
    let state = t.state();
    let m = Memory::seen(&state, deadline, 0);
    assert_eq!(plan(&state, &m, deadline, 0, &s), Step::Reverse);
    // Reversal queries come every interval, and give up after refund_attempts_max once ten
    // minutes have passed.
    let steps = simulate(&state, |m| deadline + m, 11 * 60_000);
    let kinds: Vec<&Step> = steps.iter().map(|(_, s)| s).collect();
    assert_eq!(kinds[..3], [&Step::Reverse, &Step::Reverse, &Step::Reverse]);
    assert_eq!(
        steps.iter().map(|(t, _)| *t).collect::<Vec<_>>()[..3],
        [0, 5_000, 10_000]
    );
    let (at, last) = steps.last().unwrap();
    assert!(matches!(last, Step::GiveUp { .. }), "{last:?}");
    assert_eq!(*at, 10 * 60_000);
}

#[test]
fn a_wall_clock_jumping_back_across_midnight_neither_stalls_nor_delays_the_cancel() {
    let start = NOON + 12 * HOUR - 10_000; // 23:59:50 Beijing
    let state = Txn::new(start).state();
    // The wall clock jumps back two hours five seconds in, then forward again at 20 s.
    let wall = |m: i64| {
        if (5_000..20_000).contains(&m) {
            start + m - 2 * HOUR
        } else {
            start + m
        }
    };
    let steps = simulate(&state, wall, 30_000);
    let times: Vec<i64> = steps.iter().map(|(t, _)| *t).collect();
    assert_eq!(times, vec![5_000, 10_000, 15_000, 20_000, 25_000, 30_000]);
    assert_eq!(steps.last().unwrap().1, Step::Cancel);
}

#[test]
fn a_wall_clock_jumping_forward_past_the_cutoff_turns_the_cancel_into_a_reversal() {
    let start = NOON + 12 * HOUR - 10_000;
    let state = Txn::new(start).state();
    // Ten seconds in, the wall jumps a whole hour forward (past 00:15 Beijing).
    let wall = |m: i64| {
        if m < 10_000 {
            start + m
        } else {
            start + m + HOUR
        }
    };
    let steps = simulate(&state, wall, 10_000);
    assert_eq!(steps[0], (5_000, Step::Query));
    // Alipay's trade is more than the window old by the wall: no cancel is possible.
    assert_eq!(steps[1], (10_000, Step::Reverse));
}

#[test]
fn a_refund_in_flight_is_resent_with_its_own_id_then_given_up() {
    let mut t = Txn::new(NOON);
    t.add(
        NOON + 1,
        EventBody::QueryResult {
            status: TradeStatus::TradeSuccess,
            alipay_trans_id: Some("2026".into()),
            paid_at_ms: Some(NOON),
            amount: None,
            fee: None,
        },
    );
    t.add(
        NOON + 2,
        EventBody::RefundIntent {
            refund: RefundKey::new("2088000000000001", "R1"),
            upstream_refund_id: "sw1Rabc".into(),
            amount: Money::new(400, *b"USD"),
            fingerprint: [2; 32],
            reason: None,
        },
    );
    t.add(
        NOON + 3,
        EventBody::RefundResult {
            refund: RefundKey::new("2088000000000001", "R1"),
            result: Outcome::Unknown,
            fee: None,
            error_code: Some("SYSTEM_ERROR".into()),
        },
    );
    let state = t.state();
    let steps = simulate(&state, |m| NOON + m, 60_000);
    let r1 = Step::Refund {
        partner_refund_id: "R1".into(),
    };
    assert_eq!(
        steps,
        vec![
            (0, r1.clone()),
            (1_000, r1.clone()),
            (3_000, r1),
            // Given up as soon as the last resend's answer is undecided too.
            (3_000, steps[3].1.clone()),
        ]
    );
    assert!(matches!(&steps[3].1, Step::GiveUp { reason } if reason.contains("R1")));
}

#[test]
fn exceptions_park_and_final_transactions_are_done() {
    let mut t = Txn::new(NOON);
    t.add(NOON, EventBody::Exception { reason: "x".into() });
    let s = schedule();
    let state = t.state();
    let m = Memory::seen(&state, NOON, 0);
    assert_eq!(plan(&state, &m, NOON + 60_000, 0, &s), Step::Parked);
    let mut closed = Txn::new(NOON);
    closed.add(
        NOON,
        EventBody::QueryResult {
            status: TradeStatus::TradeClosed,
            alipay_trans_id: None,
            paid_at_ms: None,
            amount: None,
            fee: None,
        },
    );
    let state = closed.state();
    assert_eq!(plan(&state, &m, NOON, 0, &s), Step::Done);
}

#[test]
fn an_operator_action_rearms_the_cancel_limit() {
    let mut t = Txn::new(NOON);
    for a in 1..=5 {
        t.add(NOON + 40_000, EventBody::CancelAttempt { attempt: a });
        t.add(NOON + 40_000, cancel_result(Outcome::Unknown, true, None));
    }
    t.add(
        NOON + 41_000,
        EventBody::Exception {
            reason: "cancel".into(),
        },
    );
    let s = schedule();
    let state = t.state();
    let m = Memory::seen(&state, NOON + 50_000, 0);
    assert_eq!(plan(&state, &m, NOON + 50_000, 0, &s), Step::Parked);
    t.add(
        NOON + 60_000,
        EventBody::OperatorAction {
            who: "alice".into(),
            why: "ticket 9".into(),
            action: "resolve now".into(),
        },
    );
    let state = t.state();
    assert_eq!(
        plan(&state, &m, NOON + 60_000, 0, &s),
        Step::Cancel,
        "five more cancels after the operator's action"
    );
}

#[test]
fn a_first_cancel_that_never_gets_journaled_is_given_up_after_the_limit() {
    let state = Txn::new(NOON).state();
    let s = schedule();
    let mut m = Memory::seen(&state, NOON + 40_000, 0);
    let mut mono = 0;
    for _ in 0..s.cancel_attempts_max {
        assert_eq!(
            plan(&state, &m, NOON + 40_000 + mono, mono, &s),
            Step::Cancel
        );
        m.called(Phase::Cancel, mono);
        mono += 60_000;
    }
    assert!(matches!(
        plan(&state, &m, NOON + 40_000 + mono, mono, &s),
        Step::GiveUp { .. }
    ));
}

#[test]
fn past_the_cutoff_a_trade_waiting_for_its_buyer_is_asked_about_past_alipays_timeout() {
    // Found just past the cutoff, only 16 minutes old: the query budget alone does not end it.
    let received = NOON + 12 * HOUR - 60_000;
    let state = Txn::new(received).state();
    let s = schedule();
    let now = cancel_deadline_ms(received, s.cancel_grace_ms) + 1;
    let mut m = Memory::seen(&state, now, 0);
    for i in 0..s.refund_attempts_max {
        m.called(Phase::Reverse, i64::from(i) * 5_000);
    }
    let mono = 20_000;
    assert_eq!(plan(&state, &m, now + mono, mono, &s), Step::Reverse);
    // Ten minutes on it gives up.
    let mono = 11 * 60_000;
    assert!(matches!(
        plan(&state, &m, now + mono, mono, &s),
        Step::GiveUp { .. }
    ));
}

#[test]
fn a_trade_being_reversed_is_never_shown_paid_to_the_merchant() {
    use crate::engine::decide::{merchant_status, merchant_trade_status, pay_result_code};
    let mut t = Txn::new(NOON);
    t.add(
        NOON + 1,
        EventBody::QueryResult {
            status: TradeStatus::TradeSuccess,
            alipay_trans_id: Some("2026".into()),
            paid_at_ms: Some(NOON),
            amount: None,
            fee: None,
        },
    );
    let refund = RefundKey::new("2088000000000001", "#reversal/sw1Pabc");
    t.add(
        NOON + 1,
        EventBody::RefundIntent {
            refund: refund.clone(),
            upstream_refund_id: "sw1Rxyz".into(),
            amount: Money::new(1_000, *b"USD"),
            fingerprint: [3; 32],
            reason: None,
        },
    );
    let s = t.state();
    assert_eq!(s.status, ledger::TxnStatus::Paid);
    assert_eq!(merchant_status(&s), ledger::TxnStatus::Unknown);
    assert_eq!(pay_result_code(&s), alipay::ResultCode::Unknown);
    assert_eq!(merchant_trade_status(&s), alipay::TradeStatus::WaitBuyerPay);
    t.add(
        NOON + 2,
        EventBody::RefundResult {
            refund,
            result: Outcome::Success,
            fee: None,
            error_code: None,
        },
    );
    let s = t.state();
    assert_eq!(s.status, ledger::TxnStatus::Refunded);
    assert_eq!(merchant_status(&s), ledger::TxnStatus::Reversed);
    assert_eq!(pay_result_code(&s), alipay::ResultCode::Fail);
    assert_eq!(merchant_trade_status(&s), alipay::TradeStatus::TradeClosed);
}

#[test]
fn of_the_work_due_cancels_start_first_then_refunds_then_queries() {
    let mut inner = super::Inner::default();
    let k = |n: &str| TxnKey::new("m", n);
    inner.push(&k("query"), 10, 2);
    inner.push(&k("refund"), 20, 1);
    inner.push(&k("cancel"), 30, 0);
    inner.push(&k("later-cancel"), 500, 0);
    // Rescheduled: the older entry is stale and skipped.
    inner.push(&k("query"), 40, 2);
    assert_eq!(inner.pop_due(100), Ok(k("cancel")));
    assert_eq!(inner.pop_due(100), Ok(k("refund")));
    assert_eq!(inner.pop_due(100), Ok(k("query")));
    assert_eq!(
        inner.pop_due(100),
        Err(Some(500)),
        "nothing else due before 500"
    );
    assert!(inner.running.contains(&k("query")));
    assert_eq!(inner.pop_due(500), Ok(k("later-cancel")));
    assert_eq!(inner.pop_due(1_000), Err(None));
}
