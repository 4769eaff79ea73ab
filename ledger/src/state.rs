//! A transaction's current state, as a pure fold of its events.
//!
//! [`TxnState::apply`] is the only place where the rules of a transaction's life live: which
//! event may follow which, and the money rules (a refund reserves part of the paid amount; the
//! reservations plus what was refunded never exceed what was paid, INV-5). It does no I/O and
//! reads no clock, so the writer, the model test and any tool get the same answer from the same
//! events. The snapshot stored in the `txns` table is only a cache of this fold.
//!
//! Money is checked arithmetic throughout, and the conservation invariant is asserted after every
//! change: a broken invariant on the money path stops the process (house style rule 7).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::day::{AT_MS_MAX, AT_MS_MIN};
use crate::error::Rejected;
use crate::record::{
    CancelAction, Event, EventBody, Hash, Money, NotifyResult, Outcome, RefundKey, TradeStatus,
    TxnKey, FIELD_BYTES_MAX, KEY_FIELD_BYTES_MAX,
};

/// The most refunds one transaction may have (of any status). Bounds the snapshot's size.
pub const REFUNDS_PER_TXN_MAX: usize = 256;

/// The most events one transaction may have: every refund's intent and result, and generous
/// room for sends, queries, cancels, notifications and operator notes. Bounds a history read.
pub const EVENTS_PER_TXN_MAX: u32 = 4096;

const _: () = assert!(2 * REFUNDS_PER_TXN_MAX < 4096);

/// Where a transaction is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TxnStatus {
    /// Journaled, not sent yet.
    Received,
    /// A pay request may have left.
    Sent,
    /// The outcome is unknown: the resolver queries, cancels or refunds.
    Unknown,
    /// Paid (final); refunds may follow.
    Paid,
    /// Definitely not paid (final).
    Failed,
    /// Closed unpaid, by a cancel or at Alipay (final).
    Closed,
    /// Paid, then reversed in full by a cancel (final).
    Reversed,
    /// Paid, then refunded in full by refunds (final).
    Refunded,
}

impl TxnStatus {
    /// True when no further pay, query or cancel can change the outcome.
    pub const fn is_final(self) -> bool {
        matches!(
            self,
            TxnStatus::Paid
                | TxnStatus::Failed
                | TxnStatus::Closed
                | TxnStatus::Reversed
                | TxnStatus::Refunded
        )
    }
}

/// Where a refund is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RefundStatus {
    /// Journaled, amount reserved, no result yet.
    Reserved,
    /// The call's outcome is unknown; the amount stays reserved.
    Unknown,
    /// Refunded (final).
    Succeeded,
    /// Not refunded; the reservation was released (final).
    Failed,
}

impl RefundStatus {
    /// True while the refund holds a reservation.
    pub const fn in_flight(self) -> bool {
        matches!(self, RefundStatus::Reserved | RefundStatus::Unknown)
    }
}

/// One refund of a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundState {
    /// The refund id sent upstream.
    pub upstream_refund_id: String,
    /// The amount asked for.
    pub amount: Money,
    /// Hash of the refund request's parameters.
    pub fingerprint: Hash,
    /// The merchant's reason.
    pub reason: Option<String>,
    /// Where it is.
    pub status: RefundStatus,
    /// Fee returned, if reported.
    pub fee: Option<Money>,
    /// Alipay's last error code.
    pub error_code: Option<String>,
    /// When the intent was journaled.
    pub requested_at_ms: i64,
    /// When the last result was journaled.
    pub result_at_ms: Option<i64>,
}

/// The cancels sent for a transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelState {
    /// Cancel requests journaled.
    pub attempts: u32,
    /// The last result, if any.
    pub last_result: Option<Outcome>,
    /// What the successful cancel did.
    pub action: Option<CancelAction>,
    /// Alipay said the cancel may be retried.
    pub retry: bool,
    /// Alipay's last error code.
    pub error_code: Option<String>,
    /// `attempts` when an operator last took the transaction in hand: the attempts since
    /// then are the ones a limit counts.
    pub attempts_before_operator: u32,
}

impl CancelState {
    /// Cancels sent since an operator last took the transaction in hand.
    pub fn attempts_since_operator(&self) -> u32 {
        self.attempts.saturating_sub(self.attempts_before_operator)
    }

    /// True when a cancel was sent and has no definite answer yet: it answered `UNKNOWN`,
    /// failed with `retry_flag=Y`, or its result was never journaled. It must be sent again
    /// with the same parameters until it gets one (spec §6.3).
    pub fn in_flight(&self) -> bool {
        if self.attempts == 0 || self.action.is_some() {
            return false;
        }
        match self.last_result {
            None | Some(Outcome::Unknown) => true,
            Some(Outcome::Fail) => self.retry,
            Some(Outcome::Success) => false,
        }
    }
}

/// The notifications sent to the merchant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyState {
    /// Attempts journaled.
    pub attempts: u32,
    /// The merchant acknowledged one.
    pub delivered: bool,
    /// The last failure's text.
    pub last_error: Option<String>,
    /// When the last attempt was journaled.
    pub last_at_ms: Option<i64>,
    /// The notification owed now, until it is delivered.
    pub due: Option<NotifyDue>,
    /// Notifications owed after it, in order: the refund each is about (`None`: the trade's
    /// status). Each subject at most once, so at most one per refund plus one.
    pub queued: Vec<Option<String>>,
}

/// A notification the merchant is owed ([`EventBody::NotifyDue`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyDue {
    /// The seq of the `NotifyDue` event: with the transaction it names the notification, so
    /// its `notify_id` stays the same across resends and differs from any later one's.
    pub seq: u64,
    /// The refund it is about (`None`: the trade's status).
    pub refund: Option<String>,
    /// Attempts journaled for this notification.
    pub attempts: u32,
    /// When it became due.
    pub since_ms: i64,
}

/// Why the resolver or the notifier gave up on a transaction ([`EventBody::Exception`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExceptionState {
    /// What was given up, and why.
    pub reason: String,
    /// When.
    pub at_ms: i64,
}

/// The per-transaction snapshot: everything the switch needs to answer a merchant and to
/// resolve the transaction, derived from its events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnState {
    /// The idempotency key.
    pub txn: TxnKey,
    /// Where the transaction is.
    pub status: TxnStatus,
    /// The partner account upstream.
    pub upstream_partner: String,
    /// The id sent upstream.
    pub upstream_trans_id: String,
    /// Hash of the pay request's canonical parameters.
    pub fingerprint: Hash,
    /// The amount asked for.
    pub amount: Money,
    /// The merchant's `trans_create_time`.
    pub trans_create_time: String,
    /// Secondary merchant, if any.
    pub secondary_merchant_id: Option<String>,
    /// Store id, if any.
    pub store_id: Option<String>,
    /// Where to notify the merchant.
    pub notify_url: Option<String>,
    /// When the pay request was journaled.
    pub received_at_ms: i64,
    /// When the last event was journaled.
    pub updated_at_ms: i64,
    /// Pay sends journaled.
    pub pay_attempts: u32,
    /// The endpoint of the last send.
    pub last_endpoint: Option<String>,
    /// Alipay's trade number.
    pub alipay_trans_id: Option<String>,
    /// The amount paid, once known.
    pub paid: Option<Money>,
    /// When it was paid, per Alipay.
    pub paid_at_ms: Option<i64>,
    /// Alipay's fee.
    pub fee: Option<Money>,
    /// Alipay's last error code on the pay.
    pub error_code: Option<String>,
    /// The last query's answer.
    pub last_query: Option<TradeStatus>,
    /// Cancels.
    pub cancel: CancelState,
    /// Refunded in total, minor units of the paid currency.
    pub refunded_minor: u64,
    /// Reserved by refunds in flight, minor units.
    pub reserved_minor: u64,
    /// Refunds by `partner_refund_id` (the merchant is the transaction's).
    pub refunds: BTreeMap<String, RefundState>,
    /// Notifications.
    pub notify: NotifyState,
    /// Operator actions journaled.
    pub operator_actions: u32,
    /// Set while the switch has given up on this transaction and waits for an operator.
    pub exception: Option<ExceptionState>,
    /// Seq of the last event applied.
    pub last_seq: u64,
    /// Events applied, the first included.
    pub event_count: u32,
}

/// The result of applying an event to a possibly absent state: the new state.
pub fn fold(state: Option<&TxnState>, event: &Event) -> Result<TxnState, Rejected> {
    match state {
        None => TxnState::start(event),
        Some(s) => {
            let mut next = s.clone();
            next.apply(event)?;
            Ok(next)
        }
    }
}

/// True when going from `before` to `after` moved money, so the event belongs in the `by_day`
/// settlement index: a payment became paid, a refund succeeded, a cancel closed or reversed.
pub fn moves_money(before: Option<&TxnState>, after: &TxnState) -> bool {
    let Some(before) = before else {
        return false;
    };
    let paid = before.paid != after.paid;
    let refunded = before.refunded_minor != after.refunded_minor;
    let cancelled = before.cancel.action != after.cancel.action;
    paid || refunded || cancelled
}

impl TxnState {
    /// The state a `PayReceived` event starts. Any other event is `Rejected::UnknownTxn`.
    pub fn start(event: &Event) -> Result<TxnState, Rejected> {
        check_event(event)?;
        let EventBody::PayReceived {
            upstream_partner,
            upstream_trans_id,
            fingerprint,
            amount,
            trans_create_time,
            secondary_merchant_id,
            store_id,
            notify_url,
        } = &event.body
        else {
            return Err(Rejected::UnknownTxn {
                event: event.body.kind(),
            });
        };
        if amount.minor == 0 {
            return Err(Rejected::ZeroAmount);
        }
        let state = TxnState {
            txn: event.txn.clone(),
            status: TxnStatus::Received,
            upstream_partner: upstream_partner.clone(),
            upstream_trans_id: upstream_trans_id.clone(),
            fingerprint: *fingerprint,
            amount: *amount,
            trans_create_time: trans_create_time.clone(),
            secondary_merchant_id: secondary_merchant_id.clone(),
            store_id: store_id.clone(),
            notify_url: notify_url.clone(),
            received_at_ms: event.at_ms,
            updated_at_ms: event.at_ms,
            pay_attempts: 0,
            last_endpoint: None,
            alipay_trans_id: None,
            paid: None,
            paid_at_ms: None,
            fee: None,
            error_code: None,
            last_query: None,
            cancel: CancelState::default(),
            refunded_minor: 0,
            reserved_minor: 0,
            refunds: BTreeMap::new(),
            notify: NotifyState::default(),
            operator_actions: 0,
            exception: None,
            last_seq: event.seq,
            event_count: 1,
        };
        state.assert_invariants();
        Ok(state)
    }

    /// Replays a transaction's events from the first.
    pub fn replay<'a>(events: impl IntoIterator<Item = &'a Event>) -> Result<TxnState, Rejected> {
        let mut state: Option<TxnState> = None;
        for event in events {
            state = Some(fold(state.as_ref(), event)?);
        }
        state.ok_or(Rejected::UnknownTxn { event: "nothing" })
    }

    /// Applies one event, or rejects it and leaves the state unchanged.
    ///
    /// # Panics
    /// If the event's seq is not after the last one applied, or if the money invariant
    /// (refunded + reserved ≤ paid) breaks: both mean the journal or this code is wrong, and
    /// carrying on could move money wrongly.
    pub fn apply(&mut self, event: &Event) -> Result<(), Rejected> {
        check_event(event)?;
        if event.txn != self.txn {
            return Err(Rejected::WrongTxn);
        }
        assert!(event.seq > self.last_seq, "events applied out of order");
        if self.event_count >= EVENTS_PER_TXN_MAX {
            return Err(Rejected::TooManyEvents {
                max: EVENTS_PER_TXN_MAX,
            });
        }
        let mut next = self.clone();
        next.apply_body(event)?;
        next.last_seq = event.seq;
        next.event_count = bump(next.event_count)?;
        next.updated_at_ms = event.at_ms;
        next.assert_invariants();
        *self = next;
        Ok(())
    }

    fn apply_body(&mut self, event: &Event) -> Result<(), Rejected> {
        let at_ms = event.at_ms;
        match &event.body {
            EventBody::PayReceived { fingerprint, .. } => Err(Rejected::AlreadyReceived {
                same_fingerprint: *fingerprint == self.fingerprint,
            }),
            EventBody::PaySent { endpoint, .. } => self.pay_sent(endpoint, event),
            EventBody::PayOutcome {
                result,
                alipay_trans_id,
                amount,
                paid_at_ms,
                fee,
                error_code,
            } => self.pay_outcome(
                event,
                *result,
                alipay_trans_id,
                *amount,
                *paid_at_ms,
                *fee,
                error_code,
            ),
            EventBody::QueryResult {
                status,
                alipay_trans_id,
                paid_at_ms,
                amount,
                fee,
            } => self.query_result(*status, alipay_trans_id, *paid_at_ms, *amount, *fee),
            EventBody::CancelAttempt { .. } => {
                self.require_cancellable(event)?;
                self.cancel.attempts = bump(self.cancel.attempts)?;
                // This attempt has no answer yet.
                self.cancel.last_result = None;
                Ok(())
            }
            EventBody::CancelResult {
                result,
                action,
                retry,
                error_code,
            } => self.cancel_result(event, *result, *action, *retry, error_code),
            EventBody::RefundIntent {
                refund,
                upstream_refund_id,
                amount,
                fingerprint,
                reason,
            } => self.refund_intent(
                refund,
                upstream_refund_id,
                *amount,
                fingerprint,
                reason,
                at_ms,
            ),
            EventBody::RefundResult {
                refund,
                result,
                fee,
                error_code,
            } => self.refund_result(refund, *result, *fee, error_code, at_ms),
            EventBody::NotifyAttempt { result, .. } => {
                self.notify_attempt(result, event.seq, at_ms)
            }
            EventBody::OperatorAction { .. } => {
                self.operator_actions = bump(self.operator_actions)?;
                // An operator took the transaction in hand: the switch tries again, with its
                // limits counted afresh.
                self.exception = None;
                self.cancel.attempts_before_operator = self.cancel.attempts;
                Ok(())
            }
            EventBody::NotifyDue { refund } => {
                if let Some(r) = refund {
                    if r.merchant != self.txn.merchant {
                        return Err(Rejected::RefundMerchantMismatch);
                    }
                    if !self.refunds.contains_key(&r.partner_refund_id) {
                        return Err(Rejected::UnknownRefund);
                    }
                }
                let subject = refund.as_ref().map(|r| r.partner_refund_id.clone());
                match &self.notify.due {
                    // A newer notification about the same subject supersedes the undelivered
                    // one: it says the same thing, up to date.
                    Some(due) if due.refund != subject => {
                        // Another subject waits its turn: one refund's result never hides
                        // another's.
                        if !self.notify.queued.contains(&subject)
                            && self.notify.queued.len() <= REFUNDS_PER_TXN_MAX
                        {
                            self.notify.queued.push(subject);
                        }
                    }
                    _ => {
                        self.notify.due = Some(NotifyDue {
                            seq: event.seq,
                            refund: subject,
                            attempts: 0,
                            since_ms: at_ms,
                        });
                    }
                }
                self.notify.delivered = false;
                Ok(())
            }
            EventBody::Exception { reason } => {
                self.exception = Some(ExceptionState {
                    reason: reason.clone(),
                    at_ms,
                });
                Ok(())
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn pay_outcome(
        &mut self,
        event: &Event,
        result: Outcome,
        alipay_trans_id: &Option<String>,
        amount: Option<Money>,
        paid_at_ms: Option<i64>,
        fee: Option<Money>,
        error_code: &Option<String>,
    ) -> Result<(), Rejected> {
        let allowed = [TxnStatus::Received, TxnStatus::Sent, TxnStatus::Unknown];
        self.require_status(event, &allowed)?;
        self.status = match result {
            Outcome::Success => {
                self.mark_paid(amount)?;
                TxnStatus::Paid
            }
            Outcome::Fail => TxnStatus::Failed,
            Outcome::Unknown => TxnStatus::Unknown,
        };
        self.take_upstream_facts(alipay_trans_id, paid_at_ms, fee);
        self.error_code.clone_from(error_code);
        Ok(())
    }

    fn notify_attempt(
        &mut self,
        result: &NotifyResult,
        seq: u64,
        at_ms: i64,
    ) -> Result<(), Rejected> {
        self.notify.attempts = bump(self.notify.attempts)?;
        self.notify.last_at_ms = Some(at_ms);
        if let Some(due) = self.notify.due.as_mut() {
            due.attempts = bump(due.attempts)?;
        }
        match result {
            NotifyResult::Delivered => {
                // The next owed one, if any, is due from now; this event's seq names it.
                self.notify.due = (!self.notify.queued.is_empty()).then(|| NotifyDue {
                    seq,
                    refund: self.notify.queued.remove(0),
                    attempts: 0,
                    since_ms: at_ms,
                });
                self.notify.delivered = self.notify.due.is_none();
            }
            NotifyResult::Failed(text) => self.notify.last_error = Some(text.clone()),
        }
        Ok(())
    }

    fn pay_sent(&mut self, endpoint: &str, event: &Event) -> Result<(), Rejected> {
        // A resend is only a failover before the request was written (still Sent); after an
        // Unknown outcome pay is never sent again (INV-2): the resolver queries and cancels.
        self.require_status(event, &[TxnStatus::Received, TxnStatus::Sent])?;
        self.pay_attempts = bump(self.pay_attempts)?;
        self.last_endpoint = Some(endpoint.to_owned());
        self.status = TxnStatus::Sent;
        Ok(())
    }

    fn query_result(
        &mut self,
        status: TradeStatus,
        alipay_trans_id: &Option<String>,
        paid_at_ms: Option<i64>,
        amount: Option<Money>,
        fee: Option<Money>,
    ) -> Result<(), Rejected> {
        self.last_query = Some(status);
        if self.status.is_final() {
            // A final state is not reopened by a query; the answer is kept (last_query and the
            // event itself) for reconciliation to compare.
            return Ok(());
        }
        match status {
            TradeStatus::TradeSuccess | TradeStatus::TradeFinished => {
                self.mark_paid(amount)?;
                self.status = TxnStatus::Paid;
            }
            TradeStatus::TradeClosed => self.status = TxnStatus::Closed,
            TradeStatus::WaitBuyerPay | TradeStatus::NotExist => self.status = TxnStatus::Unknown,
        }
        self.take_upstream_facts(alipay_trans_id, paid_at_ms, fee);
        Ok(())
    }

    fn cancel_result(
        &mut self,
        event: &Event,
        result: Outcome,
        action: Option<CancelAction>,
        retry: bool,
        error_code: &Option<String>,
    ) -> Result<(), Rejected> {
        self.require_cancellable(event)?;
        if result == Outcome::Success {
            let has_refunds = self.refunded_minor != 0 || self.reserved_minor != 0;
            let status = match action.unwrap_or(CancelAction::Close) {
                // Closing a trade known to be paid would lose the payment from the books.
                CancelAction::Close if self.paid.is_some() => None,
                CancelAction::Close => Some((TxnStatus::Closed, CancelAction::Close)),
                // Alipay refuses to cancel a trade that already has refunds.
                CancelAction::Refund if has_refunds => None,
                CancelAction::Refund => Some((TxnStatus::Reversed, CancelAction::Refund)),
            };
            let Some((status, action)) = status else {
                return Err(Rejected::InvalidTransition {
                    status: self.status,
                    event: "CancelResult",
                });
            };
            self.status = status;
            self.cancel.action = Some(action);
        }
        self.cancel.last_result = Some(result);
        self.cancel.retry = retry;
        self.cancel.error_code.clone_from(error_code);
        Ok(())
    }

    fn refund_intent(
        &mut self,
        refund: &RefundKey,
        upstream_refund_id: &str,
        amount: Money,
        fingerprint: &Hash,
        reason: &Option<String>,
        at_ms: i64,
    ) -> Result<(), Rejected> {
        if refund.merchant != self.txn.merchant {
            return Err(Rejected::RefundMerchantMismatch);
        }
        if let Some(existing) = self.refunds.get(&refund.partner_refund_id) {
            return Err(if existing.fingerprint == *fingerprint {
                Rejected::RefundExists
            } else {
                Rejected::RefundIdConflict
            });
        }
        if amount.minor == 0 {
            return Err(Rejected::ZeroAmount);
        }
        let refundable = matches!(self.status, TxnStatus::Paid | TxnStatus::Refunded);
        let paid = self.paid.filter(|_| refundable);
        if let Some(paid) = paid {
            if paid.currency != amount.currency {
                return Err(Rejected::CurrencyMismatch {
                    expected: paid.currency,
                    found: amount.currency,
                });
            }
        }
        if self.refunds.len() >= REFUNDS_PER_TXN_MAX {
            return Err(Rejected::TooManyRefunds {
                max: REFUNDS_PER_TXN_MAX,
            });
        }
        let paid_minor = paid.map_or(0, |m| m.minor);
        self.check_refund_room(paid_minor, amount.minor)?;
        // check_refund_room proved reserved + amount cannot overflow.
        self.reserved_minor = self.reserved_minor.saturating_add(amount.minor);
        self.refunds.insert(
            refund.partner_refund_id.clone(),
            RefundState {
                upstream_refund_id: upstream_refund_id.to_owned(),
                amount,
                fingerprint: *fingerprint,
                reason: reason.clone(),
                status: RefundStatus::Reserved,
                fee: None,
                error_code: None,
                requested_at_ms: at_ms,
                result_at_ms: None,
            },
        );
        Ok(())
    }

    /// Rejects a refund of `requested` unless refunded + reserved + requested ≤ paid.
    fn check_refund_room(&self, paid_minor: u64, requested: u64) -> Result<(), Rejected> {
        let total = self
            .refunded_minor
            .checked_add(self.reserved_minor)
            .and_then(|t| t.checked_add(requested));
        match total {
            Some(total) if total <= paid_minor => Ok(()),
            _ => Err(Rejected::RefundExceedsPaid {
                paid_minor,
                refunded_minor: self.refunded_minor,
                reserved_minor: self.reserved_minor,
                requested_minor: requested,
            }),
        }
    }

    fn refund_result(
        &mut self,
        refund: &RefundKey,
        result: Outcome,
        fee: Option<Money>,
        error_code: &Option<String>,
        at_ms: i64,
    ) -> Result<(), Rejected> {
        if refund.merchant != self.txn.merchant {
            return Err(Rejected::RefundMerchantMismatch);
        }
        let paid_minor = self.paid.map_or(0, |m| m.minor);
        let Some(entry) = self.refunds.get_mut(&refund.partner_refund_id) else {
            return Err(Rejected::UnknownRefund);
        };
        if !entry.status.in_flight() {
            return Err(Rejected::RefundAlreadyFinal);
        }
        let amount = entry.amount.minor;
        entry.result_at_ms = Some(at_ms);
        entry.error_code.clone_from(error_code);
        if fee.is_some() {
            entry.fee = fee;
        }
        entry.status = match result {
            Outcome::Success => RefundStatus::Succeeded,
            Outcome::Fail => RefundStatus::Failed,
            Outcome::Unknown => RefundStatus::Unknown,
        };
        if result != Outcome::Unknown {
            // The reservation was counted in on intent; releasing it cannot underflow unless the
            // snapshot is corrupt.
            let released = self.reserved_minor.checked_sub(amount);
            assert!(released.is_some(), "reservation released twice");
            self.reserved_minor = released.unwrap_or(0);
        }
        if result == Outcome::Success {
            let refunded = self.refunded_minor.checked_add(amount);
            assert!(refunded.is_some(), "refunded total overflows");
            self.refunded_minor = refunded.unwrap_or(u64::MAX);
            if self.refunded_minor == paid_minor {
                self.status = TxnStatus::Refunded;
            }
        }
        Ok(())
    }

    fn mark_paid(&mut self, amount: Option<Money>) -> Result<(), Rejected> {
        let paid = amount.unwrap_or(self.amount);
        if paid.currency != self.amount.currency {
            return Err(Rejected::CurrencyMismatch {
                expected: self.amount.currency,
                found: paid.currency,
            });
        }
        if paid.minor == 0 {
            return Err(Rejected::ZeroAmount);
        }
        self.paid = Some(paid);
        Ok(())
    }

    fn take_upstream_facts(
        &mut self,
        alipay_trans_id: &Option<String>,
        paid_at_ms: Option<i64>,
        fee: Option<Money>,
    ) {
        if alipay_trans_id.is_some() {
            self.alipay_trans_id.clone_from(alipay_trans_id);
        }
        if paid_at_ms.is_some() {
            self.paid_at_ms = paid_at_ms;
        }
        if fee.is_some() {
            self.fee = fee;
        }
    }

    fn require_status(&self, event: &Event, allowed: &[TxnStatus]) -> Result<(), Rejected> {
        if allowed.contains(&self.status) {
            Ok(())
        } else {
            Err(Rejected::InvalidTransition {
                status: self.status,
                event: event.body.kind(),
            })
        }
    }

    fn require_cancellable(&self, event: &Event) -> Result<(), Rejected> {
        let allowed = [
            TxnStatus::Received,
            TxnStatus::Sent,
            TxnStatus::Unknown,
            TxnStatus::Paid,
        ];
        self.require_status(event, &allowed)
    }

    /// True when the transaction is final, no refund is in flight, and no cancel of a paid
    /// trade awaits a definite answer.
    pub fn is_final(&self) -> bool {
        let cancel_open = self.status == TxnStatus::Paid && self.cancel.in_flight();
        self.status.is_final()
            && self.reserved_minor == 0
            && !self.has_refund_in_flight()
            && !cancel_open
    }

    /// True when the switch has work left: the outcome is unknown, a refund is in flight, or a
    /// notification is owed. These transactions are in the `pending` table.
    pub fn is_pending(&self) -> bool {
        !self.is_final() || self.notify.due.is_some()
    }

    fn has_refund_in_flight(&self) -> bool {
        self.refunds.values().any(|r| r.status.in_flight())
    }

    /// The refund with this key, if the transaction has it.
    pub fn refund(&self, key: &RefundKey) -> Option<&RefundState> {
        if key.merchant != self.txn.merchant {
            return None;
        }
        self.refunds.get(&key.partner_refund_id)
    }

    /// What may still be refunded: paid − refunded − reserved (0 when not paid).
    pub fn refundable_minor(&self) -> u64 {
        let paid = match self.status {
            TxnStatus::Paid | TxnStatus::Refunded => self.paid.map_or(0, |m| m.minor),
            _ => 0,
        };
        paid.saturating_sub(self.refunded_minor)
            .saturating_sub(self.reserved_minor)
    }

    /// Asserts the money invariants; called after every change and after every read.
    ///
    /// # Panics
    /// When refunded + reserved > paid, or the totals disagree with the refunds they sum.
    pub fn assert_invariants(&self) {
        let paid = self.paid.map_or(0, |m| m.minor);
        let total = self.refunded_minor.checked_add(self.reserved_minor);
        assert!(total.is_some(), "refunded + reserved overflows");
        assert!(
            total.unwrap_or(u64::MAX) <= paid,
            "refunded + reserved exceeds paid"
        );
        let mut reserved: u64 = 0;
        let mut refunded: u64 = 0;
        for r in self.refunds.values() {
            let sum = match r.status {
                RefundStatus::Reserved | RefundStatus::Unknown => &mut reserved,
                RefundStatus::Succeeded => &mut refunded,
                RefundStatus::Failed => continue,
            };
            *sum = sum.saturating_add(r.amount.minor);
        }
        assert_eq!(
            reserved, self.reserved_minor,
            "reserved total disagrees with refunds"
        );
        assert_eq!(
            refunded, self.refunded_minor,
            "refunded total disagrees with refunds"
        );
        assert!(
            self.refunds.len() <= REFUNDS_PER_TXN_MAX,
            "too many refunds"
        );
    }
}

fn bump(counter: u32) -> Result<u32, Rejected> {
    counter.checked_add(1).ok_or(Rejected::CounterOverflow)
}

/// Body fields that end up in index keys.
const UPSTREAM_KEY_FIELDS: [&str; 3] = [
    "upstream_partner",
    "upstream_trans_id",
    "upstream_refund_id",
];

/// The checks every event passes whatever its kind: time range and field lengths.
fn check_event(event: &Event) -> Result<(), Rejected> {
    if !(AT_MS_MIN..=AT_MS_MAX).contains(&event.at_ms) {
        return Err(Rejected::TimeOutOfRange { at_ms: event.at_ms });
    }
    let keys = [
        ("merchant", event.txn.merchant.as_str()),
        ("partner_trans_id", event.txn.partner_trans_id.as_str()),
    ];
    let refund = event.body.refund_key().map(|r| {
        [
            ("refund.merchant", r.merchant.as_str()),
            ("partner_refund_id", r.partner_refund_id.as_str()),
        ]
    });
    for (field, text) in keys.into_iter().chain(refund.into_iter().flatten()) {
        if text.len() > KEY_FIELD_BYTES_MAX {
            return Err(Rejected::FieldTooLong {
                field,
                max_bytes: KEY_FIELD_BYTES_MAX,
            });
        }
    }
    for (field, text) in event.body.text_fields() {
        // Upstream ids are keys of the `upstream_ids` index, so they get the key limit.
        let max_bytes = if UPSTREAM_KEY_FIELDS.contains(&field) {
            KEY_FIELD_BYTES_MAX
        } else {
            FIELD_BYTES_MAX
        };
        if text.len() > max_bytes {
            return Err(Rejected::FieldTooLong { field, max_bytes });
        }
    }
    Ok(())
}
