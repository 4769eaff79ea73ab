//! Reconciliation: the journal's rows of a Beijing day against Alipay's transaction file of the
//! same day, for one upstream partner.
//!
//! Matching rules, in order:
//! 1. The pool of each side is the items carried out of the day before (see
//!    [`crate::finance::carry`]) plus the day's own rows.
//! 2. Items match by (`Transaction_type`, `Partner_transaction_id`). A matched pair is one
//!    difference at most, of the most serious kind that applies: [`DifferenceKind::AmountMismatch`]
//!    (amount or currency), then [`DifferenceKind::FeeMismatch`] (only when the journal knows
//!    the fee), then [`DifferenceKind::TradeIdMismatch`] (both know Alipay's trade number and
//!    they differ); the detail names every disagreeing field.
//! 3. An unmatched item of the day itself (not one carried in) is carried into the next day
//!    rather than reported, when it may straddle midnight: its time is within the carry window
//!    of the day's end; or, for an Alipay row, the journal's transaction or refund is still
//!    pending, or the journal has a row with the same key on a later day.
//! 4. What is left is final. A journal item and an Alipay item with the same id but different
//!    types are one [`DifferenceKind::StatusMismatch`] (e.g. the journal says paid, Alipay lists
//!    a reversal). An Alipay item whose id the journal knows (a trade or refund in another
//!    state, or a row on another day) is a `StatusMismatch` too; one the journal does not know
//!    is [`DifferenceKind::MissingInJournal`]. A journal item is
//!    [`DifferenceKind::MissingAtAlipay`], except an unconfirmed CANCEL (Alipay may never have
//!    had the trade, and lists no row for closing one it never had), which is only counted.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::day::BeijingDay;
use crate::finance::alipay_file::AlipayFile;
use crate::finance::amount::format_signed;
use crate::finance::carry::{Carry, Item, ItemView};
use crate::finance::rows::{FinanceRow, RowType};
use crate::finance::time::day_end_ms;
use crate::state::TxnState;

/// The default carry window: items this close to the end of a day may straddle midnight. Alipay's
/// cancel window has a 15-minute grace after midnight and the resolver finishes a trade within
/// minutes, so a switch record and Alipay's can fall on either side of midnight within it.
pub const DEFAULT_CARRY_WINDOW_MS: i64 = 15 * 60 * 1_000;

/// The kinds of difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DifferenceKind {
    /// The journal moved money that Alipay's file does not list.
    MissingAtAlipay,
    /// Alipay's file lists a movement the journal has no trace of.
    MissingInJournal,
    /// Both list it, with different amounts or currencies.
    AmountMismatch,
    /// The same id in a different type or state on each side.
    StatusMismatch,
    /// Both list it with the same amount, different fees.
    FeeMismatch,
    /// Both list it, under different Alipay trade numbers.
    TradeIdMismatch,
}

impl DifferenceKind {
    /// Every kind, in report order.
    pub const ALL: [DifferenceKind; 6] = [
        DifferenceKind::MissingAtAlipay,
        DifferenceKind::MissingInJournal,
        DifferenceKind::AmountMismatch,
        DifferenceKind::StatusMismatch,
        DifferenceKind::FeeMismatch,
        DifferenceKind::TradeIdMismatch,
    ];
}

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// Its kind.
    pub kind: DifferenceKind,
    /// The journal's side, if it has one.
    pub journal: Option<Item>,
    /// Alipay's side, if it has one.
    pub alipay: Option<Item>,
    /// What disagrees, in words.
    pub detail: String,
}

impl Difference {
    /// The item the difference is about (the journal's when both).
    pub fn item(&self) -> Option<&Item> {
        self.journal.as_ref().or(self.alipay.as_ref())
    }
}

/// What the journal knows about an id Alipay uses, for classifying Alipay rows it did not match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    /// The transaction's (or refund's) status, in words.
    pub status: String,
    /// The outcome is not final yet: the resolver is still working on it.
    pub pending: bool,
    /// The journal's rows under this id: type and day.
    pub rows: Vec<(RowType, BeijingDay)>,
}

/// The journal's facts by Alipay id, for one upstream partner.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalFacts {
    by_id: HashMap<String, Fact>,
}

impl JournalFacts {
    /// The facts of `partner` from the journal's transaction states and rows.
    pub fn build<'a>(
        partner: &str,
        states: impl IntoIterator<Item = &'a TxnState>,
        rows: &[FinanceRow],
    ) -> JournalFacts {
        let mut by_id: HashMap<String, Fact> = HashMap::new();
        for s in states.into_iter().filter(|s| s.upstream_partner == partner) {
            let fact = Fact {
                status: format!("{:?}", s.status),
                pending: !s.status.is_final(),
                rows: Vec::new(),
            };
            by_id.insert(s.upstream_trans_id.clone(), fact);
            for r in s.refunds.values() {
                let fact = Fact {
                    status: format!("refund {:?}", r.status),
                    pending: r.status.in_flight(),
                    rows: Vec::new(),
                };
                by_id.insert(r.upstream_refund_id.clone(), fact);
            }
        }
        for row in rows.iter().filter(|r| r.upstream_partner == partner) {
            if let Some(fact) = by_id.get_mut(row.alipay_id()) {
                fact.rows.push((row.row_type, row.day()));
            }
        }
        JournalFacts { by_id }
    }

    /// What the journal knows about `id`.
    pub fn get(&self, id: &str) -> Option<&Fact> {
        self.by_id.get(id)
    }
}

/// Everything one reconciliation compares.
#[derive(Debug)]
pub struct ReconcileInput<'a> {
    /// The day.
    pub day: BeijingDay,
    /// The journal's rows of the day for the file's partner (other partners' rows are ignored).
    pub journal_rows: &'a [FinanceRow],
    /// Alipay's file of the day.
    pub alipay: &'a AlipayFile,
    /// Items carried out of the day before.
    pub carried_in: Carry,
    /// The journal's facts for the partner.
    pub facts: &'a JournalFacts,
    /// See [`DEFAULT_CARRY_WINDOW_MS`].
    pub carry_window_ms: i64,
    /// Carry items into the next day (rule 3). Without a place to keep them (no state folder),
    /// false: every unmatched item is reported at once rather than dropped.
    pub carry_out: bool,
}

/// The outcome of a reconciliation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciliation {
    /// The day.
    pub day: BeijingDay,
    /// The upstream partner.
    pub partner: String,
    /// Journal rows of the day.
    pub journal_rows: usize,
    /// Alipay rows of the day.
    pub alipay_rows: usize,
    /// Items carried in from the day before.
    pub carried_in: Carry,
    /// Pairs that matched (with or without a difference).
    pub matched: usize,
    /// The differences.
    pub differences: Vec<Difference>,
    /// Items carried into the next day.
    pub carried_out: Carry,
    /// Unconfirmed journal CANCELs that Alipay does not list (not differences).
    pub unconfirmed_cancels: Vec<Item>,
}

impl Reconciliation {
    /// True when nothing differs.
    pub fn is_clean(&self) -> bool {
        self.differences.is_empty()
    }

    /// The differences of `kind`.
    pub fn of_kind(&self, kind: DifferenceKind) -> impl Iterator<Item = &Difference> {
        self.differences.iter().filter(move |d| d.kind == kind)
    }
}

struct Pool {
    items: Vec<Item>,
    carried: Vec<bool>,
}

impl Pool {
    fn new(carried: Vec<Item>, today: Vec<Item>) -> Pool {
        let flags = carried
            .iter()
            .map(|_| true)
            .chain(today.iter().map(|_| false));
        let carried_flags: Vec<bool> = flags.collect();
        let mut items = carried;
        items.extend(today);
        Pool {
            items,
            carried: carried_flags,
        }
    }
}

/// Reconciles one day of one partner.
pub fn reconcile(input: ReconcileInput<'_>) -> Reconciliation {
    let partner = input.alipay.partner.clone();
    let day_rows: Vec<Item> = input
        .journal_rows
        .iter()
        .filter(|r| r.upstream_partner == partner && r.day() == input.day)
        .map(Item::of_row)
        .collect();
    let alipay_rows: Vec<Item> = input
        .alipay
        .rows
        .iter()
        .map(|r| Item::of_alipay(r, input.alipay.day))
        .collect();
    let mut out = Reconciliation {
        day: input.day,
        partner,
        journal_rows: day_rows.len(),
        alipay_rows: alipay_rows.len(),
        carried_in: input.carried_in.clone(),
        matched: 0,
        differences: Vec::new(),
        carried_out: Carry::default(),
        unconfirmed_cancels: Vec::new(),
    };
    let journal = Pool::new(input.carried_in.journal, day_rows);
    let alipay = Pool::new(input.carried_in.alipay, alipay_rows);
    let (left_j, left_a) = match_pairs(&journal, &alipay, &mut out);
    let window_start = day_end_ms(input.day).saturating_sub(input.carry_window_ms);
    let mut final_j: Vec<Item> = Vec::new();
    for i in left_j {
        let item = &journal.items[i];
        if input.carry_out && !journal.carried[i] && item.at_ms >= window_start {
            out.carried_out.journal.push(item.clone());
        } else {
            final_j.push(item.clone());
        }
    }
    let mut final_a: Vec<Item> = Vec::new();
    for i in left_a {
        let item = &alipay.items[i];
        let later = input.facts.get(&item.id).is_some_and(|f| {
            f.pending
                || f.rows
                    .iter()
                    .any(|&(t, d)| t == item.row_type && d > input.day)
        });
        if input.carry_out && !alipay.carried[i] && (item.at_ms >= window_start || later) {
            out.carried_out.alipay.push(item.clone());
        } else {
            final_a.push(item.clone());
        }
    }
    classify(final_j, final_a, input.facts, &mut out);
    out
}

/// Matches the pools by key; returns the indexes left unmatched on each side.
fn match_pairs(
    journal: &Pool,
    alipay: &Pool,
    out: &mut Reconciliation,
) -> (Vec<usize>, Vec<usize>) {
    let mut by_key: HashMap<(RowType, &str), Vec<usize>> = HashMap::new();
    for (i, item) in alipay.items.iter().enumerate().rev() {
        by_key.entry(item.key()).or_default().push(i);
    }
    let mut left_j = Vec::new();
    for (i, j) in journal.items.iter().enumerate() {
        match by_key.get_mut(&j.key()).and_then(Vec::pop) {
            Some(a) => {
                out.matched += 1;
                out.differences.extend(compare(j, &alipay.items[a]));
            }
            None => left_j.push(i),
        }
    }
    let mut left_a: Vec<usize> = by_key.into_values().flatten().collect();
    left_a.sort_unstable();
    (left_j, left_a)
}

/// The difference of a matched pair, if any.
fn compare(journal: &Item, alipay: &Item) -> Option<Difference> {
    let mut kinds = Vec::new();
    let mut detail = Vec::new();
    if journal.amount != alipay.amount {
        kinds.push(DifferenceKind::AmountMismatch);
        detail.push(format!(
            "amount: journal {} {}, Alipay {} {}",
            money_text(journal),
            journal.amount.currency_code(),
            money_text(alipay),
            alipay.amount.currency_code()
        ));
    }
    if let (Some(jf), Some(af)) = (journal.fee, alipay.fee) {
        if jf != af {
            kinds.push(DifferenceKind::FeeMismatch);
            detail.push(format!(
                "fee: journal {}, Alipay {}",
                format_signed(i128::from(jf.minor), jf.currency),
                format_signed(i128::from(af.minor), af.currency)
            ));
        }
    }
    let both_known = !journal.transaction_id.is_empty() && !alipay.transaction_id.is_empty();
    if both_known && journal.transaction_id != alipay.transaction_id {
        kinds.push(DifferenceKind::TradeIdMismatch);
        detail.push(format!(
            "Transaction_id: journal {}, Alipay {}",
            journal.transaction_id, alipay.transaction_id
        ));
    }
    let kind = kinds.into_iter().min()?;
    Some(Difference {
        kind,
        journal: Some(journal.clone()),
        alipay: Some(alipay.clone()),
        detail: detail.join("; "),
    })
}

fn money_text(item: &Item) -> String {
    format_signed(i128::from(item.amount.minor), item.amount.currency)
}

/// Turns the final unmatched items into differences (rule 4).
fn classify(
    final_j: Vec<Item>,
    final_a: Vec<Item>,
    facts: &JournalFacts,
    out: &mut Reconciliation,
) {
    let mut alipay_by_id: BTreeMap<String, Vec<Item>> = BTreeMap::new();
    for a in final_a {
        alipay_by_id.entry(a.id.clone()).or_default().push(a);
    }
    for j in final_j {
        let paired = alipay_by_id.get_mut(&j.id).and_then(|v| v.pop());
        if let Some(a) = paired {
            let detail = format!(
                "journal has {} of {}, Alipay has {}",
                j.row_type.name(),
                j.id,
                a.row_type.name()
            );
            out.differences.push(Difference {
                kind: DifferenceKind::StatusMismatch,
                journal: Some(j),
                alipay: Some(a),
                detail,
            });
        } else if !j.confirmed() {
            out.unconfirmed_cancels.push(j);
        } else {
            let detail = format!("Alipay's file does not list {} {}", j.row_type.name(), j.id);
            out.differences.push(Difference {
                kind: DifferenceKind::MissingAtAlipay,
                journal: Some(j),
                alipay: None,
                detail,
            });
        }
    }
    for a in alipay_by_id.into_values().flatten() {
        out.differences.push(alipay_difference(a, facts));
    }
    out.differences.sort_by(|x, y| {
        let key = |d: &Difference| d.item().map(|i| (i.at_ms, i.row_type, i.id.clone()));
        (x.kind, key(x)).cmp(&(y.kind, key(y)))
    });
}

/// The difference of an Alipay item left unmatched: the journal knows its id in another state,
/// or not at all.
fn alipay_difference(a: Item, facts: &JournalFacts) -> Difference {
    let (kind, detail) = match facts.get(&a.id) {
        Some(fact) => {
            let rows: Vec<String> = fact
                .rows
                .iter()
                .map(|(t, d)| format!("{} on {d}", t.name()))
                .collect();
            let rows = if rows.is_empty() {
                "no rows".to_owned()
            } else {
                rows.join(", ")
            };
            let detail = format!(
                "Alipay lists {} {}; the journal has it {} with {rows}",
                a.row_type.name(),
                a.id,
                fact.status
            );
            (DifferenceKind::StatusMismatch, detail)
        }
        None => {
            let detail = format!(
                "the journal has no trade or refund {} (Alipay lists {})",
                a.id,
                a.row_type.name()
            );
            (DifferenceKind::MissingInJournal, detail)
        }
    };
    Difference {
        kind,
        journal: None,
        alipay: Some(a),
        detail,
    }
}

/// The JSON form of a difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DifferenceView {
    /// The kind, e.g. `AmountMismatch`.
    pub kind: DifferenceKind,
    /// `Transaction_type` (the journal's when both sides have one).
    #[serde(rename = "type")]
    pub row_type: String,
    /// `Partner_transaction_id`.
    pub partner_transaction_id: String,
    /// What disagrees.
    pub detail: String,
    /// The journal's side, or null.
    pub journal: Option<ItemView>,
    /// Alipay's side, or null.
    pub alipay: Option<ItemView>,
}

impl DifferenceView {
    /// The view of a difference.
    pub fn of(d: &Difference) -> DifferenceView {
        let (row_type, id) = d
            .item()
            .map(|i| (i.row_type.name().to_owned(), i.id.clone()))
            .unwrap_or_default();
        DifferenceView {
            kind: d.kind,
            row_type,
            partner_transaction_id: id,
            detail: d.detail.clone(),
            journal: d.journal.as_ref().map(ItemView::of),
            alipay: d.alipay.as_ref().map(ItemView::of),
        }
    }
}
