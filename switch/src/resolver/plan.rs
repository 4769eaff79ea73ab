//! The resolver's decisions as one pure function: given a pending transaction's journaled
//! state, what the resolver remembers about it, and the clocks, what to do next (spec §6).
//!
//! Two clocks, on purpose. The *wall* clock (UTC ms, as journaled) places a trade in its Beijing
//! day, which decides whether a cancel is still possible. The *monotonic* clock measures the
//! waits between calls and the query window, so a wall clock that jumps back neither delays the
//! cancel nor stalls the ladder, and one that jumps forward at most brings the cancel earlier.
//! A backward jump across midnight may make the resolver believe a cancel is still possible:
//! Alipay then refuses it (`REASON_TRADE_CANCEL_EXPIRED`, its own clock decides) and the
//! resolver goes on to a refund, so the outcome is the same.
//!
//! The journal is the durable part of the resolver's state (cancels sent, refunds in flight,
//! exceptions); [`Memory`] only holds timings and counts since this process took the
//! transaction up. After a restart the schedule starts again from the journal, which at worst
//! sends a query or a resend a little early — each of them is safe to repeat.

use alipay::BeijingTime;
use ledger::{Outcome, RefundStatus, TxnState, TxnStatus};

/// The refund id the resolver gives the full refund that reverses a trade found paid after its
/// cancel window: this prefix and the trade's upstream id, which is unique, ASCII and at most
/// 40 characters (the engine refuses a merchant's `partner_refund_id` with this prefix, so it
/// never collides with one).
pub const REVERSAL_PREFIX: &str = "#reversal/";

/// The reversal refund id of the trade sent upstream as `upstream_trans_id`.
pub fn reversal_refund_id(upstream_trans_id: &str) -> String {
    format!("{REVERSAL_PREFIX}{upstream_trans_id}")
}

/// True for the resolver's own reversal refunds.
pub fn is_reversal(partner_refund_id: &str) -> bool {
    partner_refund_id.starts_with(REVERSAL_PREFIX)
}

/// How long past the query window the resolver keeps asking about a trade it can no longer
/// cancel: longer than Alipay's trade timeout (3 minutes), after which an unpaid trade is closed
/// and one that never reached Alipay is known never to exist.
pub const TRADE_TIMEOUT_MARGIN_MS: i64 = 10 * 60 * 1000;

/// The resolver's schedule, from `[resolver]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// First query this long after the pay.
    pub first_query_after_ms: i64,
    /// Then every this long…
    pub query_interval_ms: i64,
    /// …until this long after the pay; then cancel.
    pub query_window_ms: i64,
    /// Waits between cancel (and refund) resends; the last repeats.
    pub retry_ms: Vec<i64>,
    /// Most cancels of one transaction.
    pub cancel_attempts_max: u32,
    /// Cancels of the previous Beijing day's trade are accepted this long after midnight.
    pub cancel_grace_ms: i64,
    /// Most resends of one refund, and most queries once no cancel is possible.
    pub refund_attempts_max: u32,
}

/// What the resolver remembers about a transaction since it took it up (lost on restart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// The transaction's age (wall) when it was taken up, at least 0.
    pub age_when_seen_ms: i64,
    /// The monotonic clock then.
    pub seen_mono_ms: i64,
    /// The monotonic clock at the resolver's last upstream call, if any.
    pub last_call_mono_ms: Option<i64>,
    /// Calls made in the current phase (queries, cancels or refund resends).
    pub calls: u32,
    /// The phase those calls belong to.
    pub phase: Option<Phase>,
}

impl Memory {
    /// What the resolver knows when it takes up `state` at these clocks.
    pub fn seen(state: &TxnState, now_wall_ms: i64, now_mono_ms: i64) -> Memory {
        Memory {
            age_when_seen_ms: now_wall_ms.saturating_sub(state.received_at_ms).max(0),
            seen_mono_ms: now_mono_ms,
            last_call_mono_ms: None,
            calls: 0,
            phase: None,
        }
    }

    /// Records a call of `phase` made at `now_mono_ms`; the count starts again with a new
    /// phase.
    pub fn called(&mut self, phase: Phase, now_mono_ms: i64) {
        if self.phase != Some(phase) {
            self.phase = Some(phase);
            self.calls = 0;
        }
        self.calls = self.calls.saturating_add(1);
        self.last_call_mono_ms = Some(now_mono_ms);
    }

    fn calls_in(&self, phase: Phase) -> u32 {
        if self.phase == Some(phase) {
            self.calls
        } else {
            0
        }
    }
}

/// A kind of work, for counting calls and for priority (cancels first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// Cancelling (store-and-forward).
    Cancel,
    /// Resending a refund whose outcome is unknown.
    Refund,
    /// Past the cancel window: querying, to refund in full if paid.
    Reverse,
    /// Inside the query window.
    Query,
}

/// The next thing to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing left to resolve (a notification may still be owed: the notifier's business).
    Done,
    /// An operator must act first (an exception is journaled).
    Parked,
    /// Nothing to do before this monotonic time.
    Wait {
        /// When to look again.
        at_mono_ms: i64,
    },
    /// Query the trade.
    Query,
    /// Send (or resend) the cancel, with the same parameters.
    Cancel,
    /// Resend this refund with the same `partner_refund_id`.
    Refund {
        /// The merchant's refund id (the key in `TxnState::refunds`).
        partner_refund_id: String,
    },
    /// Past the cancel window: query, and if the trade is paid refund it in full.
    Reverse,
    /// Stop trying: journal an exception and raise the alarm.
    GiveUp {
        /// Why, for the exceptions list and the log.
        reason: String,
    },
}

impl Step {
    /// The phase the step's call counts in, if it makes one.
    pub fn phase(&self) -> Option<Phase> {
        match self {
            Step::Query => Some(Phase::Query),
            Step::Cancel => Some(Phase::Cancel),
            Step::Refund { .. } => Some(Phase::Refund),
            Step::Reverse => Some(Phase::Reverse),
            _ => None,
        }
    }
}

/// The wall time (UTC ms) after which Alipay no longer cancels a trade created at
/// `created_ms`: the next Beijing midnight plus the grace.
pub fn cancel_deadline_ms(created_ms: i64, grace_ms: i64) -> i64 {
    let next = BeijingTime::from_unix_ms(created_ms).and_then(|t| t.day().next());
    match next {
        Some(day) => day.start_unix_ms().saturating_add(grace_ms),
        None => i64::MAX,
    }
}

/// Decides the next step for `state`.
pub fn plan(
    state: &TxnState,
    memory: &Memory,
    now_wall_ms: i64,
    now_mono_ms: i64,
    schedule: &Schedule,
) -> Step {
    if state.is_final() {
        return Step::Done;
    }
    if state.exception.is_some() {
        return Step::Parked;
    }
    let ladder = |calls: u32| -> i64 {
        let i = usize::try_from(calls.saturating_sub(1)).unwrap_or(usize::MAX);
        let last = schedule.retry_ms.last().copied().unwrap_or(1_000);
        schedule.retry_ms.get(i).copied().unwrap_or(last)
    };
    // When a step may go: `wait` after the last call, or now when none was made.
    let after_last = |wait: i64| -> Option<i64> {
        memory
            .last_call_mono_ms
            .map(|t| t.saturating_add(wait))
            .filter(|at| *at > now_mono_ms)
    };
    let go = |step: Step, wait: i64| match after_last(wait) {
        Some(at_mono_ms) => Step::Wait { at_mono_ms },
        None => step,
    };
    // A cancel without a definite answer is resent first, whatever the trade's status.
    if state.cancel.in_flight() {
        let attempts = state.cancel.attempts_since_operator();
        if attempts >= schedule.cancel_attempts_max {
            return Step::GiveUp {
                reason: format!(
                    "cancel has no definite answer after {attempts} attempts (last: {})",
                    state.cancel.error_code.as_deref().unwrap_or("no answer")
                ),
            };
        }
        return go(Step::Cancel, ladder(memory.calls_in(Phase::Cancel).max(1)));
    }
    // A refund whose outcome is unknown (or never journaled) is resent with its own id.
    let in_flight = state
        .refunds
        .iter()
        .find(|(_, r)| matches!(r.status, RefundStatus::Reserved | RefundStatus::Unknown));
    if let Some((id, r)) = in_flight {
        let calls = memory.calls_in(Phase::Refund);
        if calls >= schedule.refund_attempts_max {
            return Step::GiveUp {
                reason: format!(
                    "refund {id} has no definite answer after {calls} resends (last: {})",
                    r.error_code.as_deref().unwrap_or("no answer")
                ),
            };
        }
        let step = Step::Refund {
            partner_refund_id: id.clone(),
        };
        return go(step, ladder(calls.max(1)));
    }
    if !matches!(
        state.status,
        TxnStatus::Received | TxnStatus::Sent | TxnStatus::Unknown
    ) {
        // Final status with nothing in flight is `is_final`; nothing else is left.
        return Step::Done;
    }
    // The pay's outcome is unknown.
    let age = now_wall_ms.saturating_sub(state.received_at_ms).max(
        memory
            .age_when_seen_ms
            .saturating_add(now_mono_ms.saturating_sub(memory.seen_mono_ms)),
    );
    let cancel_refused = state.cancel.attempts > 0
        && state.cancel.last_result == Some(Outcome::Fail)
        && !state.cancel.retry;
    let deadline = cancel_deadline_ms(state.received_at_ms, schedule.cancel_grace_ms);
    if cancel_refused || (age >= schedule.query_window_ms && now_wall_ms >= deadline) {
        // No cancel is possible: find out, and reverse a paid trade by a full refund.
        // Alipay closes a trade nobody paid within minutes: ask at least that long (measured
        // here, on the monotonic clock, whatever the wall says) before giving up on one still
        // waiting for its buyer.
        let calls = memory.calls_in(Phase::Reverse);
        let asked_for = now_mono_ms.saturating_sub(memory.seen_mono_ms);
        if calls >= schedule.refund_attempts_max && asked_for >= TRADE_TIMEOUT_MARGIN_MS {
            return Step::GiveUp {
                reason: format!(
                    "trade still unresolved after {calls} queries past its cancel window (last \
                     cancel: {})",
                    state.cancel.error_code.as_deref().unwrap_or("none sent")
                ),
            };
        }
        return go(Step::Reverse, schedule.query_interval_ms);
    }
    if age >= schedule.query_window_ms {
        // The first cancel; until its attempt is journaled (a busy engine, an unusable
        // upstream) it is tried again on the ladder, as often as a cancel may be.
        let calls = memory.calls_in(Phase::Cancel);
        if calls >= schedule.cancel_attempts_max {
            return Step::GiveUp {
                reason: format!("the cancel could not be sent in {calls} tries"),
            };
        }
        return go(Step::Cancel, ladder(calls.max(1)));
    }
    if age < schedule.first_query_after_ms {
        let wait = schedule.first_query_after_ms.saturating_sub(age);
        return Step::Wait {
            at_mono_ms: now_mono_ms.saturating_add(wait),
        };
    }
    // Inside the window: query every interval, but never past the window's end.
    let window_end = now_mono_ms.saturating_add(schedule.query_window_ms.saturating_sub(age));
    match after_last(schedule.query_interval_ms) {
        Some(at) => Step::Wait {
            at_mono_ms: at.min(window_end),
        },
        None => Step::Query,
    }
}
