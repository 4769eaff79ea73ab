//! Finance rows: the money movements of the journal, one row per movement, as Alipay lists them.
//!
//! [`RowBuilder`] folds the journal's events in seq order with the same pure fold the writer
//! uses ([`crate::state::fold`]) and compares each transaction's state before and after every
//! event. A difference in money is a row, dated by the Beijing day of that event:
//!
//! | row | the event that made it |
//! |---|---|
//! | `PAYMENT` | the one that made the trade paid: `PayOutcome` Success, or a `QueryResult` `TradeSuccess`/`TradeFinished` |
//! | `REFUND` | a `RefundResult` Success |
//! | `REVERSAL` | a `CancelResult` Success whose action was `Refund` (a paid trade reversed in full) |
//! | `CANCEL` | a `CancelResult` Success whose action was `Close`, of a trade Alipay saw |
//!
//! Fees: the fee an event reported ([`FeeSource::Reported`]); else the fee computed from the
//! upstream partner's rate in [`Pricing`], with refunds and reversals returning fees cumulatively
//! as Alipay does ([`FeeSource::Computed`]); else unknown, written as zero
//! ([`FeeSource::Unknown`]). A REVERSAL returns what is left of the payment's fee; a CANCEL has
//! no fee.
//!
//! Whether Alipay saw a trade is what its answers said last: an `alipay_trans_id` or a query
//! status other than `NotExist` means yes, a query `NotExist` means no, no answer means not
//! known. A CANCEL row is `confirmed` only when Alipay is known to have seen the trade; an
//! unconfirmed one is listed in the plain exports but not in the Alipay-format ones, and
//! reconciliation never calls it missing (Alipay lists no row for closing a trade it never had).

use std::collections::BTreeMap;

use crate::day::BeijingDay;
use crate::finance::amount::{fee_minor, refund_fee_minor};
use crate::finance::pricing::Pricing;
use crate::finance::FinanceError;
use crate::record::{CancelAction, Event, EventBody, Money, TradeStatus, TxnKey};
use crate::state::{fold, RefundStatus, TxnState};

/// What a row is, in the order rows of the same instant are listed (as Alipay's file does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RowType {
    /// A trade became paid.
    Payment,
    /// A refund succeeded.
    Refund,
    /// A cancel refunded a paid trade in full.
    Reversal,
    /// A cancel closed an unpaid trade.
    Cancel,
}

impl RowType {
    /// Every type, in listing order.
    pub const ALL: [RowType; 4] = [
        RowType::Payment,
        RowType::Refund,
        RowType::Reversal,
        RowType::Cancel,
    ];

    /// The `Transaction_type` of Alipay's transaction file.
    pub const fn name(self) -> &'static str {
        match self {
            RowType::Payment => "PAYMENT",
            RowType::Refund => "REFUND",
            RowType::Reversal => "REVERSAL",
            RowType::Cancel => "CANCEL",
        }
    }

    /// The type of a `Transaction_type`.
    pub fn parse(text: &str) -> Option<RowType> {
        RowType::ALL.into_iter().find(|t| t.name() == text)
    }
}

/// Where a row's fee comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeeSource {
    /// An event reported it.
    Reported,
    /// Computed from the partner's fee rate (or, for reversals and cancels, from the rules).
    Computed,
    /// Not known: no event reported it and no fee rate was given. Written as zero; reconciliation
    /// does not compare it.
    Unknown,
}

impl FeeSource {
    /// The name used in the plain exports.
    pub const fn name(self) -> &'static str {
        match self {
            FeeSource::Reported => "reported",
            FeeSource::Computed => "computed",
            FeeSource::Unknown => "unknown",
        }
    }
}

/// One money movement of the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinanceRow {
    /// What moved.
    pub row_type: RowType,
    /// The partner account at Alipay.
    pub upstream_partner: String,
    /// The merchant, and its order number.
    pub txn: TxnKey,
    /// The merchant's refund number (REFUND rows).
    pub partner_refund_id: Option<String>,
    /// The trade's id at Alipay (its `partner_trans_id` there).
    pub upstream_trans_id: String,
    /// The refund's id at Alipay (REFUND rows; its `partner_refund_id` there).
    pub upstream_refund_id: Option<String>,
    /// Alipay's trade number, when known.
    pub alipay_trans_id: Option<String>,
    /// The secondary merchant the trade was sent for, if any.
    pub secondary_merchant_id: Option<String>,
    /// The amount moved (always positive; the direction is the type).
    pub amount: Money,
    /// Alipay's fee: charged on a PAYMENT, returned on a REFUND or REVERSAL, zero on a CANCEL.
    pub fee: Money,
    /// Where the fee comes from.
    pub fee_source: FeeSource,
    /// When the journal recorded the movement, UTC ms; its Beijing day is the row's day.
    pub at_ms: i64,
    /// When Alipay says it happened (the pay time of a PAYMENT), if it said.
    pub upstream_at_ms: Option<i64>,
    /// The journal event that moved the money.
    pub seq: u64,
    /// The refund reason on REFUND rows, empty elsewhere.
    pub remark: String,
    /// False only for a CANCEL of a trade Alipay may never have seen (see the module doc).
    pub confirmed: bool,
}

impl FinanceRow {
    /// The row's Beijing day.
    pub fn day(&self) -> BeijingDay {
        BeijingDay::of_ms(self.at_ms)
    }

    /// The id Alipay's file lists the row under (`Partner_transaction_id`): the upstream refund
    /// id of a REFUND, the upstream trade id otherwise.
    pub fn alipay_id(&self) -> &str {
        match (&self.row_type, &self.upstream_refund_id) {
            (RowType::Refund, Some(id)) => id,
            _ => &self.upstream_trans_id,
        }
    }

    /// The key reconciliation matches on.
    pub fn match_key(&self) -> (RowType, String) {
        (self.row_type, self.alipay_id().to_owned())
    }
}

/// Sorts rows as Alipay's file lists them: by time, then type, then `Partner_transaction_id`.
pub fn sort_rows(rows: &mut [FinanceRow]) {
    rows.sort_by(|a, b| {
        (a.at_ms, a.row_type, a.alipay_id()).cmp(&(b.at_ms, b.row_type, b.alipay_id()))
    });
}

/// The fee a transaction's payment was charged, and what its returns have given back so far.
#[derive(Debug, Clone)]
struct Track {
    state: TxnState,
    /// Alipay's last word on whether the trade exists there.
    seen_upstream: Option<bool>,
    /// The payment's fee, once paid, unless unknown.
    charged: Option<(u64, FeeSource)>,
    /// Refunded so far (for the cumulative fee rule).
    refunded_minor: u64,
    /// Fees returned so far.
    returned_minor: u64,
}

/// Folds events in seq order into transaction states and emits their finance rows.
#[derive(Debug)]
pub struct RowBuilder<'p> {
    pricing: &'p Pricing,
    txns: BTreeMap<TxnKey, Track>,
}

impl<'p> RowBuilder<'p> {
    /// An empty builder.
    pub fn new(pricing: &'p Pricing) -> RowBuilder<'p> {
        RowBuilder {
            pricing,
            txns: BTreeMap::new(),
        }
    }

    /// Applies the next event of the journal and appends the rows it makes to `out`.
    ///
    /// Each transaction's events must come in increasing seq order, from its `PayReceived` on
    /// (transactions may interleave in any way). An event the fold rejects means the events do
    /// not come from a valid journal.
    pub fn push(&mut self, event: &Event, out: &mut Vec<FinanceRow>) -> Result<(), FinanceError> {
        if let Some(track) = self.txns.get(&event.txn) {
            if event.seq <= track.state.last_seq {
                return Err(FinanceError::OutOfOrder {
                    seq: event.seq,
                    after: track.state.last_seq,
                });
            }
        }
        let fold_error = |source| FinanceError::Fold {
            seq: event.seq,
            source,
        };
        let Some(track) = self.txns.get_mut(&event.txn) else {
            let state = fold(None, event).map_err(fold_error)?;
            let track = Track {
                state,
                seen_upstream: None,
                charged: None,
                refunded_minor: 0,
                returned_minor: 0,
            };
            self.txns.insert(event.txn.clone(), track);
            return Ok(());
        };
        let after = fold(Some(&track.state), event).map_err(fold_error)?;
        let before = std::mem::replace(&mut track.state, after);
        note_upstream(track, &event.body);
        emit(self.pricing, track, &before, event, out);
        Ok(())
    }

    /// Applies every event of `events` and returns the rows, in event order.
    pub fn push_all<'e>(
        &mut self,
        events: impl IntoIterator<Item = &'e Event>,
    ) -> Result<Vec<FinanceRow>, FinanceError> {
        let mut out = Vec::new();
        for event in events {
            self.push(event, &mut out)?;
        }
        Ok(out)
    }

    /// The current state of every transaction seen, by key.
    pub fn states(&self) -> impl Iterator<Item = &TxnState> {
        self.txns.values().map(|t| &t.state)
    }

    /// The current state of one transaction.
    pub fn state(&self, key: &TxnKey) -> Option<&TxnState> {
        self.txns.get(key).map(|t| &t.state)
    }
}

/// Every row of `events` (a journal's events in seq order), in event order.
pub fn rows_of_events(
    events: &[Event],
    pricing: &Pricing,
) -> Result<Vec<FinanceRow>, FinanceError> {
    RowBuilder::new(pricing).push_all(events)
}

/// The rows of `day`, sorted as Alipay lists them.
pub fn rows_of_day(rows: &[FinanceRow], day: BeijingDay) -> Vec<FinanceRow> {
    let mut out: Vec<FinanceRow> = rows.iter().filter(|r| r.day() == day).cloned().collect();
    sort_rows(&mut out);
    out
}

fn note_upstream(track: &mut Track, body: &EventBody) {
    match body {
        EventBody::PayOutcome {
            alipay_trans_id: Some(_),
            ..
        } => track.seen_upstream = Some(true),
        EventBody::QueryResult { status, .. } => {
            track.seen_upstream = Some(*status != TradeStatus::NotExist);
        }
        _ => {}
    }
    if track.state.alipay_trans_id.is_some() {
        track.seen_upstream = Some(true);
    }
}

/// The rows one event makes, from the state before it to the state after it.
fn emit(
    pricing: &Pricing,
    track: &mut Track,
    before: &TxnState,
    event: &Event,
    out: &mut Vec<FinanceRow>,
) {
    let bps = pricing.fee_rate_bps(&track.state.upstream_partner);
    let after = &track.state;
    if before.paid.is_none() {
        if let Some(paid) = after.paid {
            let charged = match (after.fee, bps) {
                (Some(fee), _) => Some((fee.minor, FeeSource::Reported)),
                (None, Some(bps)) => Some((fee_minor(paid.minor, bps), FeeSource::Computed)),
                (None, None) => None,
            };
            track.charged = charged;
            out.push(payment_row(track, event, paid, charged));
        }
    }
    if let EventBody::RefundResult { refund, .. } = &event.body {
        let id = &refund.partner_refund_id;
        let was = before.refunds.get(id).map(|r| r.status);
        let now = track.state.refunds.get(id).map(|r| r.status);
        if now == Some(RefundStatus::Succeeded) && was != Some(RefundStatus::Succeeded) {
            out.extend(refund_row(track, event, id, bps));
        }
    }
    if before.cancel.action.is_none() {
        match track.state.cancel.action {
            Some(CancelAction::Refund) => out.push(reversal_row(track, event)),
            Some(CancelAction::Close) => out.push(cancel_row(track, event)),
            None => {}
        }
    }
}

fn base_row(
    track: &Track,
    event: &Event,
    row_type: RowType,
    amount: Money,
    fee: (u64, FeeSource),
) -> FinanceRow {
    let s = &track.state;
    FinanceRow {
        row_type,
        upstream_partner: s.upstream_partner.clone(),
        txn: s.txn.clone(),
        partner_refund_id: None,
        upstream_trans_id: s.upstream_trans_id.clone(),
        upstream_refund_id: None,
        alipay_trans_id: s.alipay_trans_id.clone(),
        secondary_merchant_id: s.secondary_merchant_id.clone(),
        amount,
        fee: Money::new(fee.0, amount.currency),
        fee_source: fee.1,
        at_ms: event.at_ms,
        upstream_at_ms: None,
        seq: event.seq,
        remark: String::new(),
        confirmed: true,
    }
}

fn payment_row(
    track: &Track,
    event: &Event,
    paid: Money,
    charged: Option<(u64, FeeSource)>,
) -> FinanceRow {
    let fee = charged.unwrap_or((0, FeeSource::Unknown));
    let mut row = base_row(track, event, RowType::Payment, paid, fee);
    row.upstream_at_ms = track.state.paid_at_ms;
    row
}

fn refund_row(
    track: &mut Track,
    event: &Event,
    partner_refund_id: &str,
    bps: Option<u32>,
) -> Option<FinanceRow> {
    let refund = track.state.refunds.get(partner_refund_id)?.clone();
    let paid_minor = track.state.paid.map_or(0, |m| m.minor);
    let refunded_after = track.refunded_minor.saturating_add(refund.amount.minor);
    let fee = match (refund.fee, track.charged, bps) {
        (Some(fee), _, _) => (fee.minor, FeeSource::Reported),
        (None, Some((charged, _)), Some(bps)) => (
            refund_fee_minor(charged, refunded_after, track.returned_minor, bps),
            FeeSource::Computed,
        ),
        // Without a rate the cumulative rule still fixes the last refund: the rest of the fee.
        (None, Some((charged, _)), None) if refunded_after == paid_minor => (
            charged.saturating_sub(track.returned_minor),
            FeeSource::Computed,
        ),
        _ => (0, FeeSource::Unknown),
    };
    track.refunded_minor = refunded_after;
    track.returned_minor = track.returned_minor.saturating_add(fee.0);
    let mut row = base_row(track, event, RowType::Refund, refund.amount, fee);
    row.partner_refund_id = Some(partner_refund_id.to_owned());
    row.upstream_refund_id = Some(refund.upstream_refund_id);
    row.remark = refund.reason.unwrap_or_default();
    Some(row)
}

fn reversal_row(track: &mut Track, event: &Event) -> FinanceRow {
    let paid = track.state.paid.unwrap_or(track.state.amount);
    let amount = Money::new(
        paid.minor.saturating_sub(track.refunded_minor),
        paid.currency,
    );
    let fee = match track.charged {
        Some((charged, _)) => (
            charged.saturating_sub(track.returned_minor),
            FeeSource::Computed,
        ),
        None => (0, FeeSource::Unknown),
    };
    track.refunded_minor = paid.minor;
    track.returned_minor = track.returned_minor.saturating_add(fee.0);
    base_row(track, event, RowType::Reversal, amount, fee)
}

fn cancel_row(track: &Track, event: &Event) -> FinanceRow {
    let amount = track.state.amount;
    let mut row = base_row(
        track,
        event,
        RowType::Cancel,
        amount,
        (0, FeeSource::Computed),
    );
    row.confirmed = track.seen_upstream == Some(true);
    row
}
