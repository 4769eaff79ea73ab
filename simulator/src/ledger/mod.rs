//! The simulated Alipay's books: trades, refunds, cancels and notifications, and the rules that
//! change them, as plain functions of (state, request, now).
//!
//! Nothing here does I/O or reads a clock: the gateway passes the simulated "now" in, and the
//! notification sender reports attempts back. That makes every rule — the status machine, the
//! cancel window across Beijing midnight, refunds limited to the paid amount, idempotency by
//! (partner, partner_trans_id) — testable in microseconds (see `tests.rs`).
//!
//! **Invariant:** for every trade, refunded (synchronous, asynchronous pending or done, and a
//! cancel's full refund) never exceeds the paid amount; it is `assert!`ed on every change.

pub mod cancel;
pub mod notices;
pub mod pay;
pub mod refund;
pub mod schedule;
#[cfg(test)]
mod tests;
pub mod trade;

use std::collections::{BTreeMap, HashMap};

use alipay::{TradeStatus, TradeStatusSync};

use crate::clock::beijing;
use crate::config::Rules;
pub use notices::NOTIFY_LADDER_MS;
pub use schedule::{Event, Schedule};
pub use trade::{
    Attempt, Buyer, CancelEffect, CancelRecord, CloseReason, Notification, PayInfo, Refund, Trade,
};

/// A trade's identity: (partner, partner_trans_id).
pub type TradeKey = (String, String);

/// The ledger, or its schedule, is full: the request was not processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity;

/// A notification ready to be sent: the sender signs `message` and POSTs it to `url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyJob {
    /// The trade.
    pub key: TradeKey,
    /// Which of its notifications.
    pub index: usize,
    /// Where.
    pub url: String,
    /// What (with `notify_time` set to now).
    pub message: TradeStatusSync,
}

/// All trades and the schedule.
#[derive(Debug)]
pub struct Ledger {
    rules: Rules,
    trades: HashMap<TradeKey, Trade>,
    /// Creation sequence → trade, for listings in creation order without sorting.
    by_seq: BTreeMap<u64, TradeKey>,
    by_alipay_id: HashMap<String, TradeKey>,
    refund_ids: HashMap<(String, String), TradeKey>,
    schedule: Schedule,
    next_seq: u64,
}

impl Ledger {
    /// An empty ledger.
    pub fn new(rules: Rules) -> Ledger {
        let schedule = Schedule::new(rules.scheduled_events_max);
        Ledger {
            rules,
            trades: HashMap::new(),
            by_seq: BTreeMap::new(),
            by_alipay_id: HashMap::new(),
            refund_ids: HashMap::new(),
            schedule,
            next_seq: 1,
        }
    }

    /// The rules.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// How many trades there are.
    pub fn len(&self) -> usize {
        self.trades.len()
    }

    /// True when there are no trades.
    pub fn is_empty(&self) -> bool {
        self.trades.is_empty()
    }

    /// Trades created after sequence `after`, in creation order.
    pub fn trades_after(&self, after: u64) -> impl Iterator<Item = &Trade> + '_ {
        let from = after.saturating_add(1);
        self.by_seq
            .range(from..)
            .filter_map(|(_, key)| self.trades.get(key))
    }

    /// A page of copies: up to `limit` trades created after `after`, of `partner` if given, in
    /// creation order; and whether more follow.
    pub fn page(&self, partner: Option<&str>, after: u64, limit: usize) -> (Vec<Trade>, bool) {
        let mut matching = self
            .trades_after(after)
            .filter(|t| partner.is_none_or(|p| t.partner == p));
        let page: Vec<Trade> = matching.by_ref().take(limit).cloned().collect();
        let more = matching.next().is_some();
        (page, more)
    }

    /// One trade.
    pub fn trade(&self, partner: &str, partner_trans_id: &str) -> Option<&Trade> {
        self.trades
            .get(&(partner.to_owned(), partner_trans_id.to_owned()))
    }

    /// Pending scheduled events.
    pub fn scheduled(&self) -> usize {
        self.schedule.len()
    }

    /// Looks a trade up by Alipay's number (must belong to `partner`) or else by the merchant's.
    fn find_key(
        &self,
        partner: &str,
        alipay_id: Option<&str>,
        trans_id: Option<&str>,
    ) -> Option<TradeKey> {
        let key = match alipay_id {
            Some(id) => self.by_alipay_id.get(id)?.clone(),
            None => (partner.to_owned(), trans_id?.to_owned()),
        };
        (key.0 == partner && self.trades.contains_key(&key)).then_some(key)
    }

    fn has_room(&self, events: usize) -> bool {
        self.trades.len() < self.rules.trades_max && self.schedule.has_room(events)
    }

    /// Creates a trade record (no pay info yet), indexed by both numbers.
    fn insert(&mut self, partner: &str, partner_trans_id: &str, now_ms: i64) -> TradeKey {
        let seq = self.next_seq;
        self.next_seq += 1;
        let alipay_trans_id = format!("{}{seq:020}", beijing(now_ms).day().compact());
        let key = (partner.to_owned(), partner_trans_id.to_owned());
        let trade = Trade::new(
            seq,
            partner,
            partner_trans_id,
            alipay_trans_id.clone(),
            now_ms,
        );
        self.by_alipay_id.insert(alipay_trans_id, key.clone());
        self.by_seq.insert(seq, key.clone());
        self.trades.insert(key.clone(), trade);
        key
    }

    fn trade_mut(&mut self, key: &TradeKey) -> Option<&mut Trade> {
        self.trades.get_mut(key)
    }

    /// Pops and applies every event due at `now_ms`; returns the notifications to send.
    pub fn fire_due(&mut self, now_ms: i64) -> Vec<NotifyJob> {
        let mut jobs = Vec::new();
        while let Some((_, event)) = self.schedule.pop_due(now_ms) {
            match event {
                Event::Resolve { key, paid } => self.resolve(&key, paid, now_ms),
                Event::Timeout { key } => self.time_out(&key, now_ms),
                Event::RefundDone {
                    key,
                    partner_refund_id,
                } => self.complete_refund(&key, &partner_refund_id, now_ms),
                Event::Notify { key, index } => jobs.extend(self.notify_job(&key, index, now_ms)),
            }
        }
        jobs
    }

    /// The buyer of an UNKNOWN pay acts.
    fn resolve(&mut self, key: &TradeKey, paid: bool, now_ms: i64) {
        let Some(trade) = self.trade_mut(key) else {
            return;
        };
        if trade.status != TradeStatus::WaitBuyerPay {
            return; // cancelled or timed out first
        }
        if paid {
            trade.status = TradeStatus::TradeSuccess;
            trade.paid_ms = Some(now_ms);
        } else {
            trade.status = TradeStatus::TradeClosed;
            trade.closed_ms = Some(now_ms);
            trade.close_reason = Some(CloseReason::BuyerDeclined);
        }
        self.notify(key, None, None, now_ms);
    }

    /// An unpaid trade reaches `trade_timeout_s`.
    fn time_out(&mut self, key: &TradeKey, now_ms: i64) {
        let Some(trade) = self.trade_mut(key) else {
            return;
        };
        if trade.status != TradeStatus::WaitBuyerPay {
            return;
        }
        trade.status = TradeStatus::TradeClosed;
        trade.closed_ms = Some(now_ms);
        trade.close_reason = Some(CloseReason::Timeout);
        self.notify(key, None, None, now_ms);
    }
}
