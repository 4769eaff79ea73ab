//! The records of the books: a trade, its pay, refunds, cancel and notifications, with the
//! running refund totals that the money invariant is checked against.
//!
//! The totals are kept as the refunds and the cancel are recorded (never re-summed), so a
//! refund costs the same whatever came before it; every change goes through a method here that
//! `assert!`s the invariant.

use alipay::{
    Amount, CancelAction, Currency, ExtendInfo, ResultCode, TradeStatus, TradeStatusSync,
};

use crate::config::Rules;
use crate::dials::CancelFaultMode;
use crate::money::Rate;

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
    /// Refunds, in request order (at most `refunds_per_trade_max`); add with
    /// [`Trade::push_refund`].
    pub(crate) refunds: Vec<Refund>,
    /// The successful cancel; set with [`Trade::record_cancel`].
    pub(crate) cancel: Option<CancelRecord>,
    /// Notifications.
    pub notifications: Vec<Notification>,
    /// Remaining misbehaving cancels.
    pub cancel_faults: Option<(CancelFaultMode, u32)>,
    /// The next refund is answered UNKNOWN.
    pub refund_unknown_once: bool,
    /// Running total of refunds (done or pending) and the cancel's refund.
    refunded: Amount,
    /// Running total of what of that took effect (pending refunds excluded).
    refunded_done: Amount,
}

/// `total + amount`, starting from zero in the amount's currency; stops the process if the sum
/// breaks (it cannot while refunded stays within paid).
fn sum(total: Amount, amount: Amount, trade: &str) -> Amount {
    let base = if total.is_zero() {
        Amount::zero(amount.currency())
    } else {
        total
    };
    match base.checked_add(amount) {
        Ok(t) => t,
        Err(e) => panic!("refund total of {trade} broke: {e}"),
    }
}

impl Trade {
    /// A new trade waiting for its pay.
    pub fn new(
        seq: u64,
        partner: &str,
        partner_trans_id: &str,
        alipay_trans_id: String,
        created_ms: i64,
    ) -> Trade {
        Trade {
            seq,
            partner: partner.to_owned(),
            partner_trans_id: partner_trans_id.to_owned(),
            alipay_trans_id,
            pay: None,
            status: TradeStatus::WaitBuyerPay,
            created_ms,
            paid_ms: None,
            closed_ms: None,
            close_reason: None,
            refunds: Vec::new(),
            cancel: None,
            notifications: Vec::new(),
            cancel_faults: None,
            refund_unknown_once: false,
            refunded: Amount::zero(Currency::CNY),
            refunded_done: Amount::zero(Currency::CNY),
        }
    }

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

    /// The paid amount (None when unpaid).
    pub fn paid_amount(&self) -> Option<Amount> {
        self.paid_ms.and(self.pay.as_ref().map(|p| p.amount))
    }

    /// The refunds, in request order.
    pub fn refunds(&self) -> &[Refund] {
        &self.refunds
    }

    /// The successful cancel, if any.
    pub fn cancel(&self) -> Option<CancelRecord> {
        self.cancel
    }

    /// Everything refunded or being refunded: refunds (done or pending) and a cancel's refund,
    /// in the pay's currency.
    pub fn refunded_total(&self) -> Amount {
        self.in_pay_currency(self.refunded)
    }

    /// What of [`Trade::refunded_total`] took effect (pending refunds excluded).
    pub fn refunded_done(&self) -> Amount {
        self.in_pay_currency(self.refunded_done)
    }

    /// A zero total in the pay's currency (the totals start before the pay is known).
    fn in_pay_currency(&self, total: Amount) -> Amount {
        match &self.pay {
            Some(p) if total.is_zero() => Amount::zero(p.amount.currency()),
            _ => total,
        }
    }

    /// Records a refund (done or pending) and adds it to the totals.
    pub(crate) fn push_refund(&mut self, refund: Refund) {
        self.refunded = sum(self.refunded, refund.amount, &self.alipay_trans_id);
        if refund.completed_ms.is_some() {
            self.refunded_done = sum(self.refunded_done, refund.amount, &self.alipay_trans_id);
        }
        self.refunds.push(refund);
        self.assert_conservation();
    }

    /// A pending refund takes effect at `now_ms`; returns it, or None if there is no such
    /// pending refund.
    pub(crate) fn complete_refund(
        &mut self,
        partner_refund_id: &str,
        now_ms: i64,
    ) -> Option<Refund> {
        let refund = self
            .refunds
            .iter_mut()
            .find(|r| r.partner_refund_id == partner_refund_id && r.completed_ms.is_none())?;
        refund.completed_ms = Some(now_ms);
        let refund = refund.clone();
        self.refunded_done = sum(self.refunded_done, refund.amount, &self.alipay_trans_id);
        self.assert_conservation();
        Some(refund)
    }

    /// Records the successful cancel and adds what it refunded to the totals.
    pub(crate) fn record_cancel(&mut self, record: CancelRecord) {
        assert!(
            self.cancel.is_none(),
            "trade {} cancelled twice",
            self.alipay_trans_id
        );
        if let Some(amount) = record.refunded {
            self.refunded = sum(self.refunded, amount, &self.alipay_trans_id);
            self.refunded_done = sum(self.refunded_done, amount, &self.alipay_trans_id);
        }
        self.cancel = Some(record);
        self.assert_conservation();
    }

    /// The money invariant: refunded never exceeds paid, and what took effect never exceeds
    /// what was refunded. Stops the process if broken.
    pub fn assert_conservation(&self) {
        let refunded = self.refunded;
        assert!(
            self.refunded_done.minor() <= refunded.minor(),
            "trade {}: refunds done {} exceed refunds {}",
            self.alipay_trans_id,
            self.refunded_done,
            refunded
        );
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
