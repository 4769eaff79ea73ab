//! Refund (spec §5.4): partial and multiple refunds up to the paid amount, one refund per
//! `partner_refund_id`, synchronous or accepted now and completed later.
//!
//! Assumed where the spec is silent:
//! * a `partner_refund_id` already used (by this partner) for a different trade or a different
//!   amount is FAIL [`REFUND_ID_REUSED`]; the same id for the same trade and amount replays
//!   SUCCESS without refunding twice (also while an asynchronous refund is still pending);
//! * a refund of a `TRADE_FINISHED` trade is FAIL `TRADE_STATUS_ERROR`;
//! * an `alipay_trans_id` that is not the trade's is FAIL `TRADE_NOT_EXIST`;
//! * a refund of a trade with the 280050 behaviour is applied but answered UNKNOWN (error
//!   `SYSTEM_ERROR`), once;
//! * `is_sync=N` answers SUCCESS at once (accepted); the refund completes `async_refund_delay_s`
//!   later and is notified to the refund's `notify_url`, or else the pay's; a synchronous refund
//!   is notified the same way at once (a replay is not notified again);
//! * a trade takes at most `refunds_per_trade_max` refunds (pending ones included); one more is
//!   FAIL [`REFUNDS_EXHAUSTED`] (a retry of an existing `partner_refund_id` still replays).

use std::borrow::Cow;

use alipay::notify::RefundNotice;
use alipay::{RefundRequest, RefundResponse, ResultCode, TradeStatus};

use super::pay::cny;
use super::{Capacity, CloseReason, Event, Ledger, Refund, Trade, TradeKey};

/// Error of a reused `partner_refund_id` with different content (assumed, by analogy with pay).
pub const REFUND_ID_REUSED: &str = "CONTEXT_INCONSISTENT";
/// `refund_status` of a refund that took effect (assumed, spec §7).
pub const REFUND_SUCCESS: &str = "REFUND_SUCCESS";
/// Error of a refund beyond `refunds_per_trade_max` (assumed: Alipay's refund-restriction code).
pub const REFUNDS_EXHAUSTED: &str = "REFUND_AMT_RESTRICTION";

fn owned(s: &str) -> Option<Cow<'static, str>> {
    Some(Cow::Owned(s.to_owned()))
}

fn fail(req: &RefundRequest<'_>, code: &'static str) -> RefundResponse<'static> {
    let mut r = RefundResponse::bare(ResultCode::Fail, Some(code));
    r.partner_trans_id = owned(req.partner_trans_id);
    r.partner_refund_id = owned(req.partner_refund_id);
    r
}

/// The SUCCESS (or UNKNOWN) answer for `refund` of `trade`.
fn refunded(trade: &Trade, refund: &Refund, code: ResultCode) -> RefundResponse<'static> {
    let mut r = RefundResponse::bare(
        code,
        (code == ResultCode::Unknown).then_some("SYSTEM_ERROR"),
    );
    r.partner_trans_id = owned(&trade.partner_trans_id);
    r.partner_refund_id = owned(&refund.partner_refund_id);
    r.alipay_trans_id = owned(&trade.alipay_trans_id);
    r.currency = Some(refund.amount.currency());
    r.refund_amount = Some(refund.amount);
    if let Some(pay) = &trade.pay {
        r.exchange_rate = owned(&pay.rate_to_cny.to_string());
        r.refund_amount_cny = cny(refund.amount, pay.rate_to_cny);
    }
    r
}

impl Ledger {
    /// Handles a refund at `now_ms`.
    pub fn refund(
        &mut self,
        req: &RefundRequest<'_>,
        now_ms: i64,
    ) -> Result<RefundResponse<'static>, Capacity> {
        let Some(key) = self.find_key(req.partner, None, Some(req.partner_trans_id)) else {
            return Ok(fail(req, "TRADE_NOT_EXIST"));
        };
        let Some(trade) = self.trades.get(&key) else {
            return Ok(fail(req, "TRADE_NOT_EXIST"));
        };
        if req
            .alipay_trans_id
            .is_some_and(|id| id != trade.alipay_trans_id)
        {
            return Ok(fail(req, "TRADE_NOT_EXIST"));
        }
        let id_key = (req.partner.to_owned(), req.partner_refund_id.to_owned());
        if let Some(owner) = self.refund_ids.get(&id_key) {
            let same = trade
                .refunds()
                .iter()
                .find(|r| r.partner_refund_id == req.partner_refund_id)
                .filter(|r| *owner == key && r.amount == req.refund_amount);
            return Ok(match same {
                Some(r) => refunded(trade, r, ResultCode::Success),
                None => fail(req, REFUND_ID_REUSED),
            });
        }
        let Some(pay) = &trade.pay else {
            return Ok(fail(req, "TRADE_HAS_CLOSE"));
        };
        match trade.status_at(now_ms, &self.rules) {
            TradeStatus::TradeSuccess => {}
            TradeStatus::TradeClosed => return Ok(fail(req, "TRADE_HAS_CLOSE")),
            TradeStatus::WaitBuyerPay | TradeStatus::TradeFinished => {
                return Ok(fail(req, "TRADE_STATUS_ERROR"))
            }
        }
        if pay.amount.currency() != req.refund_amount.currency() {
            return Ok(fail(req, "CURRENCY_NOT_SAME"));
        }
        if trade.refunds().len() >= self.rules.refunds_per_trade_max {
            return Ok(fail(req, REFUNDS_EXHAUSTED));
        }
        let total = trade.refunded_total().checked_add(req.refund_amount);
        if total.map_or(true, |t| t.minor() > pay.amount.minor()) {
            return Ok(fail(req, "RETURN_AMOUNT_EXCEED"));
        }
        // An asynchronous refund needs its completion event; a synchronous one its notification.
        let notified = req.notify_url.is_some() || pay.notify_url.is_some();
        if (!req.is_sync || notified) && !self.schedule.has_room(1) {
            return Err(Capacity);
        }
        Ok(self.apply_refund(&key, req, now_ms))
    }

    fn apply_refund(
        &mut self,
        key: &TradeKey,
        req: &RefundRequest<'_>,
        now_ms: i64,
    ) -> RefundResponse<'static> {
        let refund = Refund {
            partner_refund_id: req.partner_refund_id.to_owned(),
            amount: req.refund_amount,
            requested_ms: now_ms,
            completed_ms: req.is_sync.then_some(now_ms),
            is_sync: req.is_sync,
            reason: req.refund_reason.map(str::to_owned),
            notify_url: req.notify_url.map(str::to_owned),
        };
        if !req.is_sync {
            let event = Event::RefundDone {
                key: key.clone(),
                partner_refund_id: refund.partner_refund_id.clone(),
            };
            let due = now_ms.saturating_add(self.rules.async_refund_delay_ms);
            let pushed = self.schedule.push(due, event);
            assert!(
                pushed.is_ok(),
                "the schedule filled up between check and push"
            );
        }
        self.refund_ids.insert(
            (req.partner.to_owned(), req.partner_refund_id.to_owned()),
            key.clone(),
        );
        let Some(trade) = self.trades.get_mut(key) else {
            unreachable!("the trade was found above");
        };
        trade.push_refund(refund.clone());
        close_if_fully_refunded(trade, now_ms);
        let code = if std::mem::take(&mut trade.refund_unknown_once) {
            ResultCode::Unknown
        } else {
            ResultCode::Success
        };
        let answer = refunded(trade, &refund, code);
        if refund.is_sync {
            let notice = refund_notice(&refund);
            self.notify(key, refund.notify_url.as_deref(), Some(notice), now_ms);
        }
        answer
    }

    /// An asynchronous refund takes effect; notified.
    pub(super) fn complete_refund(&mut self, key: &TradeKey, partner_refund_id: &str, now_ms: i64) {
        let Some(trade) = self.trades.get_mut(key) else {
            return;
        };
        let Some(refund) = trade.complete_refund(partner_refund_id, now_ms) else {
            return;
        };
        close_if_fully_refunded(trade, now_ms);
        let notice = refund_notice(&refund);
        self.notify(key, refund.notify_url.as_deref(), Some(notice), now_ms);
    }
}

/// The refund part of a notification about a refund that took effect.
fn refund_notice(refund: &Refund) -> RefundNotice {
    RefundNotice {
        partner_refund_id: refund.partner_refund_id.clone(),
        refund_amount: refund.amount,
        refund_status: REFUND_SUCCESS.to_owned(),
    }
}

/// A paid trade whose completed refunds add up to the payment is closed.
fn close_if_fully_refunded(trade: &mut Trade, now_ms: i64) {
    let Some(paid) = trade.paid_amount() else {
        return;
    };
    if trade.status == TradeStatus::TradeSuccess && trade.refunded_done() == paid {
        trade.status = TradeStatus::TradeClosed;
        trade.closed_ms = Some(now_ms);
        trade.close_reason = Some(CloseReason::FullyRefunded);
    }
}
