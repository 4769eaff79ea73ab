//! Cancel (reversal, spec §5.3): close an unpaid or never-created trade, refund a paid one in
//! full, only within the trade's Beijing calendar day plus `cancel_grace_minutes`.
//!
//! Assumed where the spec is silent:
//! * outside the window the answer is FAIL, `retry_flag=N`, `detail_error_code`
//!   [`CANCEL_EXPIRED`];
//! * a `trade_no` that names no trade of the partner is FAIL, `retry_flag=N`, `TRADE_NOT_EXIST`
//!   (a never-created trade can only be closed by its `out_trade_no`);
//! * a trade already closed (timeout, failed pay, declined, fully refunded) is answered SUCCESS
//!   `action=close` and nothing changes;
//! * a repeated cancel of a cancelled trade answers SUCCESS with the same action, even after the
//!   window (cancel is idempotent);
//! * the status is the one as of now: a `TRADE_FINISHED` trade (refund period over) is FAIL,
//!   `retry_flag=N`, `detail_error_code` [`CANCEL_FINISHED`], and is not refunded;
//! * a paid trade whose pending asynchronous refunds already cover the payment is closed
//!   (`action=refund`) with nothing more returned, so no 0.00 reversal is recorded;
//! * a cancel that closes or refunds a trade is notified (`trade_status_sync`, `TRADE_CLOSED`)
//!   to the cancel's `notify_url`, else the pay's; without a refund part, which names a
//!   `partner_refund_id` that a cancel does not have;
//! * a trade's misbehaving cancels (magic codes 280040/280041, `cancel_retry_rate`) answer
//!   FAIL `retry_flag=Y` `SYSTEM_ERROR` or UNKNOWN with no effect, before anything else is
//!   checked.

use std::borrow::Cow;

use alipay::{Amount, CancelAction, CancelResponse, ResultCode, TradeStatus};

use super::{CancelEffect, CancelRecord, Capacity, CloseReason, Ledger, Trade};
use crate::clock::beijing;
use crate::dials::CancelFaultMode;

/// `detail_error_code` of a cancel outside the window (assumed).
pub const CANCEL_EXPIRED: &str = "REASON_TRADE_CANCEL_EXPIRED";
/// `detail_error_code` of a cancel of a `TRADE_FINISHED` trade (assumed: the code a refund of
/// such a trade gets); `retry_flag=N`.
pub const CANCEL_FINISHED: &str = "TRADE_STATUS_ERROR";

fn answer(code: ResultCode, out_trade_no: &str, trade_no: Option<&str>) -> CancelResponse<'static> {
    CancelResponse {
        result_code: code,
        out_trade_no: Some(Cow::Owned(out_trade_no.to_owned())),
        trade_no: trade_no.map(|t| Cow::Owned(t.to_owned())),
        retry_flag: None,
        action: None,
        detail_error_code: None,
        detail_error_des: None,
    }
}

fn failure(
    mut r: CancelResponse<'static>,
    retry: bool,
    code: &'static str,
    des: &'static str,
) -> CancelResponse<'static> {
    r.result_code = ResultCode::Fail;
    r.retry_flag = Some(retry);
    r.detail_error_code = Some(Cow::Borrowed(code));
    r.detail_error_des = Some(Cow::Borrowed(des));
    r
}

/// True when a cancel at `now_ms` is inside the window of a trade created at `created_ms`:
/// before the Beijing midnight that ends the creation day, plus `grace_ms`.
pub fn in_cancel_window(created_ms: i64, now_ms: i64, grace_ms: i64) -> bool {
    let day = beijing(created_ms).day();
    match day.next() {
        Some(next) => now_ms < next.start_unix_ms().saturating_add(grace_ms),
        None => true,
    }
}

impl Ledger {
    /// Handles a cancel at `now_ms` (`trade_no` wins when both are given); a trade it closes or
    /// refunds is notified to `notify_url`, else to the pay's.
    pub fn cancel(
        &mut self,
        partner: &str,
        out_trade_no: Option<&str>,
        trade_no: Option<&str>,
        notify_url: Option<&str>,
        now_ms: i64,
    ) -> Result<CancelResponse<'static>, Capacity> {
        let echo_out = out_trade_no.unwrap_or("");
        let Some(key) = self.find_key(partner, trade_no, out_trade_no) else {
            let r = answer(ResultCode::Fail, echo_out, trade_no);
            return match (trade_no, out_trade_no) {
                (None, Some(id)) => self.close_unborn(partner, id, now_ms),
                _ => Ok(failure(r, false, "TRADE_NOT_EXIST", "trade not exist")),
            };
        };
        let grace_ms = self.rules.cancel_grace_ms;
        let room = self.schedule.has_room(1);
        let Some(trade) = self.trades.get_mut(&key) else {
            return Err(Capacity);
        };
        let mut r = answer(
            ResultCode::Success,
            &trade.partner_trans_id,
            Some(&trade.alipay_trans_id),
        );
        r.retry_flag = Some(false);
        if let Some(done) = trade.cancel {
            r.action = Some(done.action);
            return Ok(r);
        }
        if let Some((mode, left)) = trade.cancel_faults {
            trade.cancel_faults = (left > 1).then_some((mode, left - 1));
            return Ok(match mode {
                CancelFaultMode::FailRetry => failure(r, true, "SYSTEM_ERROR", "system error"),
                CancelFaultMode::Unknown => {
                    r.result_code = ResultCode::Unknown;
                    r.retry_flag = None;
                    r
                }
            });
        }
        if !in_cancel_window(trade.created_ms, now_ms, grace_ms) {
            let des = "cancel window expired, refund instead";
            return Ok(failure(r, false, CANCEL_EXPIRED, des));
        }
        let status = trade.status_at(now_ms, &self.rules);
        if status == TradeStatus::TradeFinished {
            let des = "trade finished, the refund period is over";
            return Ok(failure(r, false, CANCEL_FINISHED, des));
        }
        let notified =
            notify_url.is_some() || trade.pay.as_ref().is_some_and(|p| p.notify_url.is_some());
        let changes = matches!(
            status,
            TradeStatus::TradeSuccess | TradeStatus::WaitBuyerPay
        );
        if changes && notified && !room {
            return Err(Capacity);
        }
        let record = apply_cancel(trade, status, now_ms);
        if record.effect != CancelEffect::AlreadyClosed {
            self.notify(&key, notify_url, None, now_ms);
        }
        r.action = Some(record.action);
        Ok(r)
    }

    /// Cancel of a partner_trans_id Alipay never saw: record it closed, so a late pay with that
    /// id gets `TRADE_HAS_CLOSE`.
    fn close_unborn(
        &mut self,
        partner: &str,
        partner_trans_id: &str,
        now_ms: i64,
    ) -> Result<CancelResponse<'static>, Capacity> {
        if !self.has_room(0) {
            return Err(Capacity);
        }
        let key = self.insert(partner, partner_trans_id, now_ms);
        let Some(trade) = self.trades.get_mut(&key) else {
            return Err(Capacity);
        };
        trade.status = TradeStatus::TradeClosed;
        trade.closed_ms = Some(now_ms);
        trade.close_reason = Some(CloseReason::Cancelled);
        trade.record_cancel(CancelRecord {
            at_ms: now_ms,
            action: CancelAction::Close,
            effect: CancelEffect::Closed,
            refunded: None,
        });
        let mut r = answer(
            ResultCode::Success,
            partner_trans_id,
            Some(&trade.alipay_trans_id),
        );
        r.retry_flag = Some(false);
        r.action = Some(CancelAction::Close);
        Ok(r)
    }
}

/// Closes (unpaid), refunds the rest of (paid) or merely records (already closed) the cancel of
/// `trade`, whose status as of now is `status`; returns what was recorded.
fn apply_cancel(trade: &mut Trade, status: TradeStatus, now_ms: i64) -> CancelRecord {
    let (action, effect, refunded, reason) = match status {
        TradeStatus::TradeSuccess => {
            let paid = trade
                .paid_amount()
                .unwrap_or(Amount::zero(alipay::Currency::CNY));
            let rest = paid
                .checked_sub(trade.refunded_total())
                .unwrap_or_else(|e| {
                    panic!(
                        "trade {} refunds exceed payment: {e}",
                        trade.alipay_trans_id
                    )
                });
            // Pending asynchronous refunds may already cover the payment: then nothing is left
            // to return and no 0.00 reversal is recorded.
            let refunded = (!rest.is_zero()).then_some(rest);
            let reason = Some(CloseReason::CancelRefunded);
            (
                CancelAction::Refund,
                CancelEffect::Refunded,
                refunded,
                reason,
            )
        }
        TradeStatus::WaitBuyerPay => {
            let reason = Some(CloseReason::Cancelled);
            (CancelAction::Close, CancelEffect::Closed, None, reason)
        }
        TradeStatus::TradeClosed | TradeStatus::TradeFinished => {
            (CancelAction::Close, CancelEffect::AlreadyClosed, None, None)
        }
    };
    if let Some(reason) = reason {
        trade.status = TradeStatus::TradeClosed;
        trade.closed_ms = Some(now_ms);
        trade.close_reason = Some(reason);
    }
    let record = CancelRecord {
        at_ms: now_ms,
        action,
        effect,
        refunded,
    };
    trade.record_cancel(record);
    record
}
