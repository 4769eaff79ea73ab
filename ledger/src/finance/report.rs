//! The reconciliation report: a human summary and a machine-readable JSON document.
//!
//! JSON schema ([`ReportJson`], version 1):
//!
//! ```text
//! { "version": 1, "day": "yyyy-MM-dd", "partner": "...", "clean": bool,
//!   "counts": { "journal_rows", "alipay_rows", "carried_in_journal", "carried_in_alipay",
//!               "matched", "differences", "carried_out_journal", "carried_out_alipay",
//!               "unconfirmed_cancels" },
//!   "summary": { "<kind>": { "count": n, "totals": { "<currency>": "decimal" } } },
//!   "differences": [ { "kind", "type", "partner_transaction_id", "detail",
//!                      "journal": item | null, "alipay": item | null } ],
//!   "carried_out": { "journal": [item], "alipay": [item] },
//!   "unconfirmed_cancels": [item] }
//! ```
//!
//! An item is [`ItemView`]: `type`, `partner_transaction_id`, `transaction_id`, `amount`,
//! `currency`, `fee` (null when unknown), `time`, `at_ms`, `day`, `side` (`journal` or
//! `alipay`), `merchant`, `partner_trans_id`, `partner_refund_id`, `seq` (journal), `line`
//! (Alipay), `confirmed`. Kinds are `MissingAtAlipay`, `MissingInJournal`, `AmountMismatch`,
//! `StatusMismatch`, `FeeMismatch`, `TradeIdMismatch`; every kind is present in `summary`, with
//! count 0 when it did not occur. A kind's totals add the amounts of its items per currency
//! (the journal's amount when both sides have one).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::finance::amount::format_signed;
use crate::finance::carry::{CarryView, ItemView};
use crate::finance::reconcile::{DifferenceKind, DifferenceView, Reconciliation};

/// The report's schema version.
pub const REPORT_VERSION: u32 = 1;

/// Counts of a reconciliation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Journal rows of the day.
    pub journal_rows: usize,
    /// Alipay rows of the day.
    pub alipay_rows: usize,
    /// Journal items carried in from the day before.
    pub carried_in_journal: usize,
    /// Alipay items carried in from the day before.
    pub carried_in_alipay: usize,
    /// Matched pairs.
    pub matched: usize,
    /// Differences.
    pub differences: usize,
    /// Journal items carried into the next day.
    pub carried_out_journal: usize,
    /// Alipay items carried into the next day.
    pub carried_out_alipay: usize,
    /// Unconfirmed cancels Alipay does not list.
    pub unconfirmed_cancels: usize,
}

/// One kind's count and totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindSummary {
    /// How many.
    pub count: usize,
    /// Amounts per currency, decimal.
    pub totals: BTreeMap<String, String>,
}

/// The JSON report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportJson {
    /// [`REPORT_VERSION`].
    pub version: u32,
    /// `yyyy-MM-dd`.
    pub day: String,
    /// The upstream partner.
    pub partner: String,
    /// True when there is no difference.
    pub clean: bool,
    /// Counts.
    pub counts: Counts,
    /// By kind.
    pub summary: BTreeMap<DifferenceKind, KindSummary>,
    /// Every difference.
    pub differences: Vec<DifferenceView>,
    /// Carried into the next day.
    pub carried_out: CarryView,
    /// Unconfirmed cancels Alipay does not list.
    pub unconfirmed_cancels: Vec<ItemView>,
}

fn summary(rec: &Reconciliation) -> BTreeMap<DifferenceKind, KindSummary> {
    let mut minor: BTreeMap<DifferenceKind, (usize, BTreeMap<[u8; 3], i128>)> = DifferenceKind::ALL
        .into_iter()
        .map(|k| (k, (0, BTreeMap::new())))
        .collect();
    for d in &rec.differences {
        let entry = minor.entry(d.kind).or_default();
        entry.0 = entry.0.saturating_add(1);
        if let Some(item) = d.item() {
            let total = entry.1.entry(item.amount.currency).or_insert(0);
            *total = total.saturating_add(i128::from(item.amount.minor));
        }
    }
    minor
        .into_iter()
        .map(|(kind, (count, totals))| {
            let totals = totals
                .into_iter()
                .map(|(c, m)| {
                    (
                        String::from_utf8_lossy(&c).into_owned(),
                        format_signed(m, c),
                    )
                })
                .collect();
            (kind, KindSummary { count, totals })
        })
        .collect()
}

impl ReportJson {
    /// The report of a reconciliation.
    pub fn of(rec: &Reconciliation) -> ReportJson {
        ReportJson {
            version: REPORT_VERSION,
            day: rec.day.to_string(),
            partner: rec.partner.clone(),
            clean: rec.is_clean(),
            counts: Counts {
                journal_rows: rec.journal_rows,
                alipay_rows: rec.alipay_rows,
                carried_in_journal: rec.carried_in.journal.len(),
                carried_in_alipay: rec.carried_in.alipay.len(),
                matched: rec.matched,
                differences: rec.differences.len(),
                carried_out_journal: rec.carried_out.journal.len(),
                carried_out_alipay: rec.carried_out.alipay.len(),
                unconfirmed_cancels: rec.unconfirmed_cancels.len(),
            },
            summary: summary(rec),
            differences: rec.differences.iter().map(DifferenceView::of).collect(),
            carried_out: CarryView {
                journal: rec.carried_out.journal.iter().map(ItemView::of).collect(),
                alipay: rec.carried_out.alipay.iter().map(ItemView::of).collect(),
            },
            unconfirmed_cancels: rec.unconfirmed_cancels.iter().map(ItemView::of).collect(),
        }
    }
}

/// The human summary: counts, then each kind's count and totals, then each difference.
pub fn summary_text(rec: &Reconciliation) -> String {
    let report = ReportJson::of(rec);
    let c = &report.counts;
    let mut out = format!(
        "Reconciliation of {} for partner {}: {}\n",
        report.day,
        report.partner,
        if report.clean { "CLEAN" } else { "DIFFERENCES" }
    );
    let _ = writeln!(
        out,
        "journal rows {}, Alipay rows {}, carried in {}+{}, matched {}, carried out {}+{} (journal+Alipay), unconfirmed cancels {}",
        c.journal_rows,
        c.alipay_rows,
        c.carried_in_journal,
        c.carried_in_alipay,
        c.matched,
        c.carried_out_journal,
        c.carried_out_alipay,
        c.unconfirmed_cancels
    );
    for (kind, s) in &report.summary {
        let totals: Vec<String> = s.totals.iter().map(|(c, t)| format!("{t} {c}")).collect();
        let _ = writeln!(
            out,
            "  {:<18} {:>6}  {}",
            format!("{kind:?}"),
            s.count,
            totals.join(", ")
        );
    }
    for d in &report.differences {
        let _ = writeln!(
            out,
            "  - {:?} {} {}: {}",
            d.kind, d.row_type, d.partner_transaction_id, d.detail
        );
    }
    out
}
