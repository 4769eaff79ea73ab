//! The bounded schedule of due events, in simulated time.
//!
//! Trade timeouts, buyer confirmations, asynchronous refunds and notification resends are all
//! entries here, keyed by (due time, insertion sequence) so events due at the same millisecond
//! fire in the order they were scheduled: deterministic. One background ticker pops what is due.

use std::collections::BTreeMap;

use super::TradeKey;

/// A timed event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The buyer of an UNKNOWN pay confirms (`paid`) or declines.
    Resolve { key: TradeKey, paid: bool },
    /// The unpaid trade times out.
    Timeout { key: TradeKey },
    /// An asynchronous refund completes.
    RefundDone {
        key: TradeKey,
        partner_refund_id: String,
    },
    /// A notification attempt is due.
    Notify { key: TradeKey, index: usize },
}

/// The schedule is full: nothing was added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// Due events ordered by time, bounded.
#[derive(Debug)]
pub struct Schedule {
    events: BTreeMap<(i64, u64), Event>,
    next_seq: u64,
    max: usize,
}

impl Schedule {
    /// An empty schedule holding at most `max` events.
    pub fn new(max: usize) -> Schedule {
        Schedule {
            events: BTreeMap::new(),
            next_seq: 0,
            max,
        }
    }

    /// Pending events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Room for `n` more events.
    pub fn has_room(&self, n: usize) -> bool {
        self.events.len().saturating_add(n) <= self.max
    }

    /// Schedules `event` at `due_ms`.
    pub fn push(&mut self, due_ms: i64, event: Event) -> Result<(), Full> {
        if !self.has_room(1) {
            return Err(Full);
        }
        self.events.insert((due_ms, self.next_seq), event);
        self.next_seq += 1;
        Ok(())
    }

    /// Removes and returns the earliest event due at or before `now_ms`.
    pub fn pop_due(&mut self, now_ms: i64) -> Option<(i64, Event)> {
        let first = self.events.first_key_value()?;
        if first.0 .0 > now_ms {
            return None;
        }
        self.events.pop_first().map(|((due, _), e)| (due, e))
    }

    /// The earliest due time.
    pub fn next_due_ms(&self) -> Option<i64> {
        self.events.first_key_value().map(|((due, _), _)| *due)
    }
}
