//! Notifications in the books: adding a `trade_status_sync` about a trade's new state,
//! handing due attempts to the sender, recording their results, and Alipay's resend ladder
//! (spec §7). The sender itself (I/O) is `crate::notify`.
//!
//! A trade is notified whenever it reaches a final state or a refund of it takes effect, if a
//! `notify_url` is known: a pay answered SUCCESS, a buyer's confirmation or refusal, the
//! timeout, a cancel that closed or refunded it, a synchronous refund, an asynchronous refund's
//! completion. The URL is the one of the request that caused the change, else the pay's. Each
//! notification has its own `notify_id` (the trade number and a 4-digit index), kept across its
//! resends.

use alipay::notify::RefundNotice;
use alipay::TradeStatusSync;

use super::{Attempt, Event, Ledger, Notification, NotifyJob, TradeKey};
use crate::clock::beijing;

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

impl Ledger {
    /// Adds a notification about the trade's current state (and `refund`, if about one) and
    /// schedules its first attempt now, to `url` (the causing request's `notify_url`) or else
    /// the pay's. Without either nothing is sent.
    pub(super) fn notify(
        &mut self,
        key: &TradeKey,
        url: Option<&str>,
        refund: Option<RefundNotice>,
        now_ms: i64,
    ) {
        let Some(trade) = self.trades.get_mut(key) else {
            return;
        };
        let Some(pay) = &trade.pay else {
            return;
        };
        let Some(url) = url.map(str::to_owned).or_else(|| pay.notify_url.clone()) else {
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
            refund,
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

    pub(super) fn notify_job(
        &mut self,
        key: &TradeKey,
        index: usize,
        now_ms: i64,
    ) -> Option<NotifyJob> {
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
