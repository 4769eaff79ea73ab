//! Settlement: what a Beijing day's movements mean for each merchant, per currency.
//!
//! For every (merchant, currency) with rows on the day: how many payments, refunds, reversals
//! and closing cancels; the gross paid; what was refunded and reversed; the fees Alipay charged
//! on the payments and returned on the refunds and reversals; and the net,
//! `gross − refunded − reversed − (fees charged − fees returned)`. These are the same rows, with
//! the same fees, as the `alipay-settlement` export, so summed over merchants they tie out to
//! it: gross = Σ `Amount` of `P` rows, refunded + reversed = Σ `Amount` of `R` rows, fees =
//! Σ `Fee` of `P` − Σ `Fee` of `R`, net = Σ `Settlement` of `P` − Σ `Settlement` of `R`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::day::BeijingDay;
use crate::finance::amount::{format_minor, format_signed};
use crate::finance::rows::{FeeSource, FinanceRow, RowType};

/// One merchant's day in one currency. Amounts are minor units.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settlement {
    /// The merchant.
    pub merchant: String,
    /// ISO 4217.
    pub currency: String,
    /// PAYMENT rows.
    pub payments: u64,
    /// REFUND rows.
    pub refunds: u64,
    /// REVERSAL rows.
    pub reversals: u64,
    /// CANCEL rows (closing cancels move no money).
    pub cancels: u64,
    /// Σ PAYMENT amounts.
    pub gross_minor: u64,
    /// Σ REFUND amounts.
    pub refunded_minor: u64,
    /// Σ REVERSAL amounts.
    pub reversed_minor: u64,
    /// Σ fees charged on payments.
    pub fees_charged_minor: u64,
    /// Σ fees returned by refunds and reversals.
    pub fees_returned_minor: u64,
    /// Rows whose fee is not known (counted as zero).
    pub unknown_fees: u64,
}

impl Settlement {
    /// Fees charged less fees returned.
    pub fn fees_minor(&self) -> i128 {
        i128::from(self.fees_charged_minor) - i128::from(self.fees_returned_minor)
    }

    /// gross − refunded − reversed − fees.
    pub fn net_minor(&self) -> i128 {
        i128::from(self.gross_minor)
            - i128::from(self.refunded_minor)
            - i128::from(self.reversed_minor)
            - self.fees_minor()
    }

    fn add(&mut self, row: &FinanceRow) {
        let amount = row.amount.minor;
        let fee = row.fee.minor;
        let add = |total: &mut u64, n: u64| *total = total.saturating_add(n);
        match row.row_type {
            RowType::Payment => {
                add(&mut self.payments, 1);
                add(&mut self.gross_minor, amount);
                add(&mut self.fees_charged_minor, fee);
            }
            RowType::Refund => {
                add(&mut self.refunds, 1);
                add(&mut self.refunded_minor, amount);
                add(&mut self.fees_returned_minor, fee);
            }
            RowType::Reversal => {
                add(&mut self.reversals, 1);
                add(&mut self.reversed_minor, amount);
                add(&mut self.fees_returned_minor, fee);
            }
            RowType::Cancel => add(&mut self.cancels, 1),
        }
        if row.fee_source == FeeSource::Unknown && row.row_type != RowType::Cancel {
            add(&mut self.unknown_fees, 1);
        }
    }

    fn absorb(&mut self, other: &Settlement) {
        let pairs = [
            (&mut self.payments, other.payments),
            (&mut self.refunds, other.refunds),
            (&mut self.reversals, other.reversals),
            (&mut self.cancels, other.cancels),
            (&mut self.gross_minor, other.gross_minor),
            (&mut self.refunded_minor, other.refunded_minor),
            (&mut self.reversed_minor, other.reversed_minor),
            (&mut self.fees_charged_minor, other.fees_charged_minor),
            (&mut self.fees_returned_minor, other.fees_returned_minor),
            (&mut self.unknown_fees, other.unknown_fees),
        ];
        for (total, n) in pairs {
            *total = total.saturating_add(n);
        }
    }
}

/// The settlement of `day` from the journal's rows (of any days): one entry per merchant and
/// currency, sorted. Unconfirmed CANCEL rows count like the others (they move no money).
pub fn settle(rows: &[FinanceRow], day: BeijingDay) -> Vec<Settlement> {
    let mut by: BTreeMap<(String, String), Settlement> = BTreeMap::new();
    for row in rows.iter().filter(|r| r.day() == day) {
        let currency = row.amount.currency_code().to_owned();
        let key = (row.txn.merchant.clone(), currency.clone());
        by.entry(key)
            .or_insert_with(|| Settlement {
                merchant: row.txn.merchant.clone(),
                currency,
                ..Settlement::default()
            })
            .add(row);
    }
    by.into_values().collect()
}

/// The totals over merchants, per currency (`merchant` is empty).
pub fn totals(settlements: &[Settlement]) -> Vec<Settlement> {
    let mut by: BTreeMap<String, Settlement> = BTreeMap::new();
    for s in settlements {
        by.entry(s.currency.clone())
            .or_insert_with(|| Settlement {
                currency: s.currency.clone(),
                ..Settlement::default()
            })
            .absorb(s);
    }
    by.into_values().collect()
}

fn code(currency: &str) -> [u8; 3] {
    currency.as_bytes().try_into().unwrap_or(*b"???")
}

/// A human table of the settlement and its totals.
pub fn settlement_text(day: BeijingDay, settlements: &[Settlement]) -> String {
    let mut out = format!("Settlement of {day} (Beijing)\n");
    let _ = writeln!(
        out,
        "{:<24} {:<4} {:>5} {:>14} {:>5} {:>14} {:>5} {:>14} {:>5} {:>12} {:>15}",
        "merchant",
        "ccy",
        "pays",
        "gross",
        "refs",
        "refunded",
        "revs",
        "reversed",
        "canc",
        "fees",
        "net"
    );
    let line = |out: &mut String, name: &str, s: &Settlement| {
        let c = code(&s.currency);
        let _ = writeln!(
            out,
            "{:<24} {:<4} {:>5} {:>14} {:>5} {:>14} {:>5} {:>14} {:>5} {:>12} {:>15}",
            name,
            s.currency,
            s.payments,
            format_minor(s.gross_minor, c),
            s.refunds,
            format_minor(s.refunded_minor, c),
            s.reversals,
            format_minor(s.reversed_minor, c),
            s.cancels,
            format_signed(s.fees_minor(), c),
            format_signed(s.net_minor(), c),
        );
    };
    for s in settlements {
        line(&mut out, &s.merchant, s);
    }
    for t in totals(settlements) {
        line(&mut out, "TOTAL", &t);
    }
    let unknown = settlements
        .iter()
        .fold(0_u64, |n, s| n.saturating_add(s.unknown_fees));
    if unknown > 0 {
        let _ = writeln!(
            out,
            "{unknown} rows have no known fee (counted as 0): give --fee-rate PARTNER=BPS"
        );
    }
    out
}
