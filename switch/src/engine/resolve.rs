//! The engine's side of the resolver, the notifier and the admin API: the same upstream calls
//! and journal writes as a merchant's requests, addressed by transaction key instead of by
//! caller, under the same per-transaction locks (so a resolver step and a merchant's request
//! never interleave), in the lane that is never starved by new pays.

use alipay::Amount;
use ledger::{AppendError, Draft, Event, EventBody, RefundKey, TradeStatus, TxnKey, TxnState};

use super::decide;
use super::locks::{Held, Lane};
use super::{upstream_id, Answer, Busy, Engine};
use crate::resolver::plan::{is_reversal, reversal_refund_id};

/// A refund to send: a new one (with `intent`, the request's fingerprint) or a resend of one in
/// flight (`intent: None`).
#[derive(Debug, Clone)]
pub struct RefundSend {
    /// The refund's key.
    pub refund: RefundKey,
    /// The id sent upstream.
    pub upstream_refund_id: String,
    /// The amount.
    pub amount: Amount,
    /// The merchant's reason.
    pub reason: Option<String>,
    /// For a new refund, the fingerprint its intent is journaled with.
    pub intent: Option<ledger::Hash>,
}

impl RefundSend {
    /// The resend of `refund` when it is in flight: same upstream id, amount and reason.
    pub fn resend(state: &TxnState, refund: &RefundKey) -> Option<RefundSend> {
        let r = state.refund(refund)?;
        if !r.status.in_flight() {
            return None;
        }
        Some(RefundSend {
            refund: refund.clone(),
            upstream_refund_id: r.upstream_refund_id.clone(),
            amount: decide::amount(r.amount)?,
            reason: r.reason.clone(),
            intent: None,
        })
    }
}

/// What a resolver step did.
#[derive(Debug)]
pub enum Acted {
    /// It ran; the transaction's state after it.
    Done(Box<TxnState>),
    /// The transaction is busy (a merchant's request holds it) or the engine is full: try
    /// again later; nothing was done.
    Busy(Busy),
    /// No such transaction.
    Gone,
}

impl From<Answer> for Acted {
    fn from(a: Answer) -> Acted {
        match a {
            Answer::State(s) | Answer::Refused(_, Some(s)) => Acted::Done(s),
            Answer::Busy(b) => Acted::Busy(b),
            Answer::NotFound => Acted::Gone,
            Answer::Conflict | Answer::Refused(_, None) => Acted::Busy(Busy::Build),
        }
    }
}

/// Applies `bodies` to a copy of `before` as the journal will: the state after them, or `None`
/// when the fold would refuse one.
fn predict(before: &TxnState, bodies: &[EventBody], at_ms: i64) -> Option<TxnState> {
    let mut state = before.clone();
    for (i, body) in bodies.iter().enumerate() {
        let event = Event {
            seq: before
                .last_seq
                .saturating_add(u64::try_from(i).ok()?)
                .saturating_add(1),
            prev_hash: [0; 32],
            at_ms,
            txn: before.txn.clone(),
            body: body.clone(),
        };
        state.apply(&event).ok()?;
    }
    Some(state)
}

impl Engine {
    /// Adds a [`EventBody::NotifyDue`] to `events` when they finish something the merchant was
    /// not told in an answer (the resolver's work): the transaction becoming final, or one of
    /// the merchant's refunds getting its result. Only for transactions with a `notify_url`.
    pub(super) fn with_notice(
        &self,
        key: &TxnKey,
        before: &TxnState,
        mut events: Vec<EventBody>,
    ) -> Vec<EventBody> {
        if before.notify_url.is_none() {
            return events;
        }
        let Some(after) = predict(before, &events, self.now()) else {
            return events;
        };
        let refund_done = after.refunds.iter().find(|(id, r)| {
            !is_reversal(id)
                && !r.status.in_flight()
                && before
                    .refunds
                    .get(*id)
                    .is_some_and(|b| b.status.in_flight())
        });
        if let Some((id, _)) = refund_done {
            events.push(EventBody::NotifyDue {
                refund: Some(RefundKey::new(key.merchant.as_str(), id.as_str())),
            });
        } else if !before.is_final() && after.is_final() {
            events.push(EventBody::NotifyDue { refund: None });
        }
        events
    }

    /// Locks `key` in the finishing lane and reads its state: for the resolver and operators.
    pub async fn hold(&self, key: &TxnKey) -> Result<(Held<'_>, TxnState), Acted> {
        let held = self.lock(key, Lane::Finish).await.map_err(Acted::Busy)?;
        match self.read(key) {
            Ok(Some(s)) => Ok((held, s)),
            Ok(None) => Err(Acted::Gone),
            Err(b) => Err(Acted::Busy(b)),
        }
    }

    /// Reads `key`'s state without locking it.
    pub fn peek(&self, key: &TxnKey) -> Result<Option<TxnState>, Busy> {
        self.read(key)
    }

    /// The resolver's query (the key held): journals what it learns, and the notice when that
    /// finishes the transaction.
    pub async fn resolve_query(&self, key: &TxnKey, state: TxnState) -> Acted {
        let (state, _) = self.query_upstream(key, state, true).await;
        Acted::Done(Box::new(state))
    }

    /// The resolver's cancel (the key held): sent again with the same parameters until it gets
    /// a definite answer.
    pub async fn resolve_cancel(&self, key: &TxnKey, state: TxnState) -> Acted {
        self.send_cancel(key, state, true).await.into()
    }

    /// The resolver's resend of a refund in flight (the key held).
    pub async fn resolve_refund(
        &self,
        key: &TxnKey,
        state: TxnState,
        partner_refund_id: &str,
    ) -> Acted {
        let refund = RefundKey::new(key.merchant.as_str(), partner_refund_id);
        match RefundSend::resend(&state, &refund) {
            Some(send) => self.send_refund(key, state, send, true).await.into(),
            None => Acted::Done(Box::new(state)),
        }
    }

    /// Past the cancel window (the key held): queries the trade; a paid one is reversed by a
    /// full refund, journaled in the same write as the query's answer, so the transaction is
    /// never seen paid and finished in between; anything else is journaled as learnt.
    pub async fn resolve_reverse(&self, key: &TxnKey, state: TxnState) -> Acted {
        let Some(event) = self.ask(key, &state).await else {
            return Acted::Done(Box::new(state));
        };
        let paid = matches!(
            &event,
            EventBody::QueryResult {
                status: TradeStatus::TradeSuccess | TradeStatus::TradeFinished,
                ..
            }
        );
        if !paid {
            let mut events = vec![event];
            if let Some(EventBody::QueryResult { status, .. }) = events.first() {
                let age = self.now().saturating_sub(state.received_at_ms);
                if *status == TradeStatus::NotExist && age >= NOT_EXIST_FINAL_AFTER_MS {
                    // Past its cancel window and Alipay's trade timeout and still unknown to
                    // Alipay: the pay never arrived and never will; it failed.
                    events.push(EventBody::PayOutcome {
                        result: ledger::Outcome::Fail,
                        alipay_trans_id: None,
                        amount: None,
                        paid_at_ms: None,
                        fee: None,
                        error_code: Some("TRADE_NOT_EXIST".to_owned()),
                    });
                } else if state.last_query == Some(*status) {
                    // Nothing new: a long reversal must not fill the history.
                    return Acted::Done(Box::new(state));
                }
            }
            let events = self.with_notice(key, &state, events);
            return self.finish_or_unknown(key, events, state).await.into();
        }
        let Some(after) = predict(&state, std::slice::from_ref(&event), self.now()) else {
            // The answer contradicts the journal: recorded as unknown, tried again later.
            return self.finish_or_unknown(key, vec![event], state).await.into();
        };
        let Some(amount) = after.paid.and_then(decide::amount) else {
            return Acted::Done(Box::new(state));
        };
        let id = reversal_refund_id(&state.upstream_trans_id);
        let refund = RefundKey::new(key.merchant.as_str(), id.as_str());
        let send = RefundSend {
            upstream_refund_id: upstream_id(&self.node, 'R', &key.merchant, &id),
            refund: refund.clone(),
            amount,
            reason: Some("reversal: unresolved past the cancel window".to_owned()),
            intent: None,
        };
        let intent = EventBody::RefundIntent {
            refund,
            upstream_refund_id: send.upstream_refund_id.clone(),
            amount: decide::money(amount),
            fingerprint: reversal_fingerprint(&send.upstream_refund_id),
            reason: send.reason.clone(),
        };
        let now = self.now();
        let drafts = vec![Draft::new(now, event), Draft::new(now, intent)];
        let state = match self.intent(key, drafts).await {
            Ok(a) => a.state,
            Err(AppendError::QueueFull) => return Acted::Busy(Busy::JournalQueue),
            Err(e) => {
                tracing::error!(error = %e, "reversal refund not journaled");
                return Acted::Busy(Busy::Journal);
            }
        };
        tracing::warn!(
            merchant = %key.merchant,
            partner_trans_id = %key.partner_trans_id,
            "trade found paid past its cancel window: refunding it in full"
        );
        self.send_refund(key, state, send, true).await.into()
    }

    /// Journals that the switch gives up on `key` (the key held): it stays pending and in the
    /// exceptions list until an operator acts.
    pub async fn give_up(&self, key: &TxnKey, reason: String) -> Acted {
        let draft = Draft::new(self.now(), EventBody::Exception { reason });
        match self.outcome(key, vec![draft]).await {
            Ok(a) => Acted::Done(Box::new(a.state)),
            Err(e) => {
                tracing::error!(error = %e, "exception not journaled");
                Acted::Busy(Busy::Journal)
            }
        }
    }

    /// Journals an operator's action on `key` (the key held); it clears an exception.
    pub async fn operator_action(
        &self,
        key: &TxnKey,
        who: String,
        why: String,
        action: String,
    ) -> Acted {
        let body = EventBody::OperatorAction { who, why, action };
        match self.outcome(key, vec![Draft::new(self.now(), body)]).await {
            Ok(a) => Acted::Done(Box::new(a.state)),
            Err(AppendError::Rejected(r)) => {
                tracing::warn!(rejected = %r, "operator action refused");
                Acted::Busy(Busy::Build)
            }
            Err(e) => {
                tracing::error!(error = %e, "operator action not journaled");
                Acted::Busy(Busy::Journal)
            }
        }
    }

    /// Journals one notification attempt (the key held).
    pub async fn notify_attempt(
        &self,
        key: &TxnKey,
        attempt: u32,
        url: String,
        result: ledger::NotifyResult,
    ) -> Acted {
        let body = EventBody::NotifyAttempt {
            attempt,
            url,
            result,
        };
        match self.outcome(key, vec![Draft::new(self.now(), body)]).await {
            Ok(a) => Acted::Done(Box::new(a.state)),
            Err(e) => {
                tracing::error!(error = %e, "notification attempt not journaled");
                Acted::Busy(Busy::Journal)
            }
        }
    }

    /// True when the operator may cancel `state` by hand: a pay whose outcome is unknown, or a
    /// paid trade without refunds (Alipay refuses to cancel one with refunds).
    pub fn cancellable(state: &TxnState) -> bool {
        use ledger::TxnStatus as S;
        match state.status {
            S::Received | S::Sent | S::Unknown => true,
            S::Paid => state.refunded_minor == 0 && state.reserved_minor == 0,
            _ => false,
        }
    }
}

/// How old a pay must be before "no such trade" past its cancel window makes it failed: past
/// any delay a request could have in flight and Alipay's trade timeout.
const NOT_EXIST_FINAL_AFTER_MS: i64 = 30 * 60 * 1000;

/// The fingerprint of the resolver's reversal refund: derived from its upstream id, so it is
/// the same on every attempt.
fn reversal_fingerprint(upstream_refund_id: &str) -> ledger::Hash {
    let d = ring::digest::digest(&ring::digest::SHA256, upstream_refund_id.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}
