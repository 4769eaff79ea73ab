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
pub mod pay;
pub mod refund;
pub mod schedule;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use alipay::notify::RefundNotice;
use alipay::{
    Amount, CancelAction, Currency, ExtendInfo, ResultCode, TradeStatus, TradeStatusSync,
};

use crate::clock::beijing;
use crate::config::Rules;
use crate::dials::CancelFaultMode;
use crate::money::Rate;
pub use schedule::{Event, Schedule};

/// A trade's identity: (partner, partner_trans_id).
pub type TradeKey = (String, String);

/// The resend ladder of notifications after the first attempt, simulated ms (spec §7).
pub const NOTIFY_LADDER_MS: [i64; 7] = [
    2 * 60_000,
    10 * 60_000,
    10 * 60_000,
    3_600_000,
    2 * 3_600_000,
    6 * 3_600_000,
    15 * 3_600_000,
];

/// The ledger, or its schedule, is full: the request was not processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity;

/// The buyer of a trade, derived from the buyer code (which is never stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buyer {
    /// Masked login, like `186****1234`.
    pub login_id: String,
    /// `2088` + 12 digits.
    pub user_id: String,
}

/// What the pay request said, kept for answers, files and resubmission checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayInfo {
    /// Hash of the canonical request parameters (see `gateway::fingerprint`).
    pub fingerprint: u64,
    /// The amount in the settlement currency.
    pub amount: Amount,
    /// `trans_name`.
    pub trans_name: String,
    /// The pricing currency, when given.
    pub trans_currency: Option<Currency>,
    /// Settlement currency to CNY at the time of the pay.
    pub rate_to_cny: Rate,
    /// Pricing currency to settlement currency, when a pricing currency was given.
    pub forex_rate: Option<Rate>,
    /// `trans_create_time`.
    pub trans_create_time: String,
    /// The buyer.
    pub buyer: Buyer,
    /// Secondary merchant and store.
    pub extend_info: Option<ExtendInfo>,
    /// Where to notify.
    pub notify_url: Option<String>,
    /// The first answer: result code and error.
    pub first_answer: (ResultCode, Option<&'static str>),
}

/// Why a trade is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "reason", content = "code")]
pub enum CloseReason {
    /// The pay failed with this code.
    PayFailed(&'static str),
    /// The buyer declined on the phone.
    BuyerDeclined,
    /// Unpaid at `trade_timeout_s`.
    Timeout,
    /// Closed by a cancel (unpaid or never created).
    Cancelled,
    /// Refunded in full by a cancel.
    CancelRefunded,
    /// Refunded in full by refunds.
    FullyRefunded,
}

/// One refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    /// The merchant's id of this refund.
    pub partner_refund_id: String,
    /// The amount.
    pub amount: Amount,
    /// When it was requested.
    pub requested_ms: i64,
    /// When it took effect (None while an asynchronous refund is pending).
    pub completed_ms: Option<i64>,
    /// `is_sync=Y`.
    pub is_sync: bool,
    /// `refund_reason`.
    pub reason: Option<String>,
    /// Where to notify when an asynchronous refund completes.
    pub notify_url: Option<String>,
}

/// What a cancel did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelEffect {
    /// It closed an unpaid trade (or one never created).
    Closed,
    /// The trade was already closed; nothing changed.
    AlreadyClosed,
    /// It refunded a paid trade in full.
    Refunded,
}

/// A successful cancel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CancelRecord {
    /// When.
    pub at_ms: i64,
    /// The wire action.
    pub action: CancelAction,
    /// What it did.
    pub effect: CancelEffect,
    /// For `Refunded`: the amount returned.
    pub refunded: Option<Amount>,
}

/// One delivery attempt of a notification.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Attempt {
    /// Simulated time of the attempt, `yyyy-MM-dd HH:mm:ss`.
    pub at: String,
    /// `acked`, or what went wrong (`status 500`, `body "fail"`, `connect error ...`).
    pub result: String,
}

/// An asynchronous notification and its delivery history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The message (its `notify_time` is refreshed on each attempt).
    pub message: TradeStatusSync,
    /// Where it goes.
    pub url: String,
    /// Every attempt so far.
    pub attempts: Vec<Attempt>,
    /// Answered with exactly `success`.
    pub acked: bool,
    /// When the next attempt is due, if any.
    pub next_due_ms: Option<i64>,
}

/// A trade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trade {
    /// Creation order.
    pub seq: u64,
    /// The account.
    pub partner: String,
    /// The merchant's order number.
    pub partner_trans_id: String,
    /// Alipay's trade number: `yyyyMMdd` + 20 digits.
    pub alipay_trans_id: String,
    /// The pay, or None for a trade that a cancel closed before any pay arrived.
    pub pay: Option<PayInfo>,
    /// Stored status (`TRADE_FINISHED` is derived from the refund period, see [`Trade::status_at`]).
    pub status: TradeStatus,
    /// Created, simulated Unix ms.
    pub created_ms: i64,
    /// Paid.
    pub paid_ms: Option<i64>,
    /// Closed.
    pub closed_ms: Option<i64>,
    /// Why closed.
    pub close_reason: Option<CloseReason>,
    /// Refunds, in request order.
    pub refunds: Vec<Refund>,
    /// The successful cancel.
    pub cancel: Option<CancelRecord>,
    /// Notifications.
    pub notifications: Vec<Notification>,
    /// Remaining misbehaving cancels.
    pub cancel_faults: Option<(CancelFaultMode, u32)>,
    /// The next refund is answered UNKNOWN.
    pub refund_unknown_once: bool,
}

impl Trade {
    /// The status at `now_ms`: a paid trade becomes `TRADE_FINISHED` after the refund period.
    pub fn status_at(&self, now_ms: i64, rules: &Rules) -> TradeStatus {
        match (self.status, self.paid_ms) {
            (TradeStatus::TradeSuccess, Some(paid))
                if now_ms >= paid.saturating_add(rules.refund_period_ms) =>
            {
                TradeStatus::TradeFinished
            }
            (status, _) => status,
        }
    }

    /// The paid amount (zero when unpaid).
    pub fn paid_amount(&self) -> Option<Amount> {
        self.paid_ms.and(self.pay.as_ref().map(|p| p.amount))
    }

    /// Everything refunded or being refunded: refunds (done or pending) and a cancel's refund.
    pub fn refunded_total(&self) -> Amount {
        let currency = self
            .pay
            .as_ref()
            .map_or(Currency::CNY, |p| p.amount.currency());
        let mut total = Amount::zero(currency);
        let amounts = self.refunds.iter().map(|r| r.amount);
        for a in amounts.chain(self.cancel.and_then(|c| c.refunded)) {
            total = match total.checked_add(a) {
                Ok(t) => t,
                Err(e) => panic!("refund total of {} broke: {e}", self.alipay_trans_id),
            };
        }
        total
    }

    /// Refunds that took effect, excluding pending ones.
    fn refunded_done(&self) -> Amount {
        let currency = self
            .pay
            .as_ref()
            .map_or(Currency::CNY, |p| p.amount.currency());
        let done = self.refunds.iter().filter(|r| r.completed_ms.is_some());
        let cancel = self.cancel.and_then(|c| c.refunded);
        done.map(|r| r.amount)
            .chain(cancel)
            .fold(Amount::zero(currency), |acc, a| {
                acc.checked_add(a).unwrap_or(acc)
            })
    }

    /// The money invariant: refunded never exceeds paid. Stops the process if broken.
    pub fn assert_conservation(&self) {
        let refunded = self.refunded_total();
        if refunded.is_zero() {
            return;
        }
        let paid = self.paid_amount();
        assert!(
            paid.is_some(),
            "trade {} has refunds but was never paid",
            self.alipay_trans_id
        );
        let paid = paid.unwrap_or(refunded);
        assert_eq!(paid.currency(), refunded.currency());
        assert!(
            refunded.minor() <= paid.minor(),
            "trade {}: refunded {} exceeds paid {}",
            self.alipay_trans_id,
            refunded,
            paid
        );
    }
}

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

    /// Every trade, in creation order.
    pub fn trades(&self) -> Vec<&Trade> {
        let mut all: Vec<&Trade> = self.trades.values().collect();
        all.sort_by_key(|t| t.seq);
        all
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
        let trade = Trade {
            seq,
            partner: partner.to_owned(),
            partner_trans_id: partner_trans_id.to_owned(),
            alipay_trans_id: alipay_trans_id.clone(),
            pay: None,
            status: TradeStatus::WaitBuyerPay,
            created_ms: now_ms,
            paid_ms: None,
            closed_ms: None,
            close_reason: None,
            refunds: Vec::new(),
            cancel: None,
            notifications: Vec::new(),
            cancel_faults: None,
            refund_unknown_once: false,
        };
        self.by_alipay_id.insert(alipay_trans_id, key.clone());
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
        self.notify(key, None, now_ms);
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
        self.notify(key, None, now_ms);
    }

    /// Adds a notification about the trade's current state (and `refund`, if about one) and
    /// schedules its first attempt now. Without a URL nothing is sent.
    fn notify(
        &mut self,
        key: &TradeKey,
        refund: Option<(RefundNotice, Option<String>)>,
        now_ms: i64,
    ) {
        let Some(trade) = self.trades.get_mut(key) else {
            return;
        };
        let Some(pay) = &trade.pay else {
            return;
        };
        let refund_url = refund.as_ref().and_then(|(_, url)| url.clone());
        let Some(url) = refund_url.or_else(|| pay.notify_url.clone()) else {
            return;
        };
        let index = trade.notifications.len();
        let message = TradeStatusSync {
            notify_time: beijing(now_ms),
            notify_id: format!("{}{:04}", trade.alipay_trans_id, index + 1),
            out_trade_no: trade.partner_trans_id.clone(),
            trade_no: trade.alipay_trans_id.clone(),
            trade_status: trade.status,
            total_fee: pay.amount,
            gmt_payment: trade.paid_ms.map(beijing),
            refund: refund.map(|(notice, _)| notice),
        };
        let due = self.schedule.push(
            now_ms,
            Event::Notify {
                key: key.clone(),
                index,
            },
        );
        let mut n = Notification {
            message,
            url,
            attempts: Vec::new(),
            acked: false,
            next_due_ms: Some(now_ms),
        };
        if due.is_err() {
            n.next_due_ms = None;
            n.attempts.push(Attempt {
                at: beijing(now_ms).dashed().to_string(),
                result: "dropped: the schedule is full".to_owned(),
            });
        }
        trade.notifications.push(n);
    }

    fn notify_job(&mut self, key: &TradeKey, index: usize, now_ms: i64) -> Option<NotifyJob> {
        let trade = self.trades.get_mut(key)?;
        let n = trade.notifications.get_mut(index)?;
        if n.acked {
            return None;
        }
        n.next_due_ms = None;
        n.message.notify_time = beijing(now_ms);
        Some(NotifyJob {
            key: key.clone(),
            index,
            url: n.url.clone(),
            message: n.message.clone(),
        })
    }

    /// Records a delivery attempt and schedules the next one on the ladder unless acked.
    pub fn record_attempt(
        &mut self,
        key: &TradeKey,
        index: usize,
        acked: bool,
        result: String,
        now_ms: i64,
    ) {
        let Some(n) = self
            .trades
            .get_mut(key)
            .and_then(|t| t.notifications.get_mut(index))
        else {
            return; // reset meanwhile
        };
        n.attempts.push(Attempt {
            at: beijing(now_ms).dashed().to_string(),
            result,
        });
        n.acked |= acked;
        if n.acked {
            return;
        }
        let Some(wait) = NOTIFY_LADDER_MS.get(n.attempts.len() - 1) else {
            return; // the ladder is exhausted
        };
        let due = now_ms.saturating_add(*wait);
        if self
            .schedule
            .push(
                due,
                Event::Notify {
                    key: key.clone(),
                    index,
                },
            )
            .is_ok()
        {
            n.next_due_ms = Some(due);
        }
    }

    /// Puts a due notification back when the sender queue is full.
    pub fn requeue(&mut self, job: &NotifyJob, due_ms: i64) {
        let event = Event::Notify {
            key: job.key.clone(),
            index: job.index,
        };
        if self.schedule.push(due_ms, event).is_ok() {
            if let Some(n) = self
                .trades
                .get_mut(&job.key)
                .and_then(|t| t.notifications.get_mut(job.index))
            {
                n.next_due_ms = Some(due_ms);
            }
        }
    }
}
