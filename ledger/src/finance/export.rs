//! A day's finance rows as files: Alipay's two formats per upstream partner, and plain CSV and
//! JSON per merchant.
//!
//! - `alipay-transactions`: `{partner}_fptrade_{yyyyMMdd}.csv`, exactly spec §8's transaction
//!   file and the simulator's conventions (`simulator/src/files.rs`): header, column line, rows
//!   sorted by time, then PAYMENT, REFUND, REVERSAL, CANCEL, then id; `Partner_transaction_id`
//!   is the id Alipay knows (the upstream trade id, or the upstream refund id on REFUND rows);
//!   `Charge_amount` is the fee charged or returned; `Order_scene` `paymentQrCode`; times
//!   `yyyy-MM-dd HH:mm:ss` GMT+8. Unconfirmed CANCEL rows are left out.
//! - `alipay-settlement`: `{partner}_settle_{yyyyMMdd}.csv`: no header line, the column line,
//!   then the PAYMENT rows as `P` and the REFUND and REVERSAL rows as `R`, `Status` `L`,
//!   `Settlement` = `Amount` − `Fee`, `Settlement_time` the end of the day. `Rate` (8 decimals)
//!   and `Rmb_amount`, `Rmb_settlement` come from the rates in [`Pricing`]; without a rate for
//!   the currency they are empty.
//! - Both: the journal does not hold the secondary merchant's industry and name, the operator
//!   or a pricing currency, so those columns are empty and `Trans_currency|Trans_amount|
//!   Trans_forex_rate` repeat the currency and amount with rate `1.00000000`. Free text has `|`,
//!   CR and LF replaced by spaces.
//! - `csv`: `{merchant}_{yyyyMMdd}.csv`, RFC 4180 with the header [`CSV_COLUMNS`].
//! - `json`: `{merchant}_{yyyyMMdd}.json`, one [`MerchantDay`] document.
//!
//! Merchant ids go into file names with every byte outside `[A-Za-z0-9_-]` written `%XX`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::day::BeijingDay;
use crate::finance::alipay_file::{ORDER_SCENE, SETTLEMENT_COLUMNS, TRANSACTION_COLUMNS};
use crate::finance::amount::{convert, format_money, Rate, CNY};
use crate::finance::pricing::Pricing;
use crate::finance::rows::{rows_of_day, FinanceRow, RowType};
use crate::finance::time::{compact, format_beijing};
use crate::record::Money;

/// The export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// Alipay's transaction file, per upstream partner.
    AlipayTransactions,
    /// Alipay's settlement file, per upstream partner.
    AlipaySettlement,
    /// Plain CSV, per merchant.
    Csv,
    /// JSON, per merchant.
    Json,
}

impl ExportFormat {
    /// The name on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            ExportFormat::AlipayTransactions => "alipay-transactions",
            ExportFormat::AlipaySettlement => "alipay-settlement",
            ExportFormat::Csv => "csv",
            ExportFormat::Json => "json",
        }
    }
}

/// One exported file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportFile {
    /// The file name (no folder).
    pub name: String,
    /// The contents.
    pub contents: String,
}

/// The files of `day` in `format`, from the journal's rows (of any days), sorted by name.
pub fn export(
    format: ExportFormat,
    day: BeijingDay,
    rows: &[FinanceRow],
    pricing: &Pricing,
) -> Vec<ExportFile> {
    let day_rows = rows_of_day(rows, day);
    match format {
        ExportFormat::AlipayTransactions => by_partner(&day_rows)
            .into_iter()
            .map(|(partner, rows)| ExportFile {
                name: format!("{partner}_fptrade_{}.csv", compact(day)),
                contents: transactions_file(partner, day, &rows),
            })
            .collect(),
        ExportFormat::AlipaySettlement => by_partner(&day_rows)
            .into_iter()
            .map(|(partner, rows)| ExportFile {
                name: format!("{partner}_settle_{}.csv", compact(day)),
                contents: settlement_file(day, &rows, pricing),
            })
            .collect(),
        ExportFormat::Csv => by_merchant(&day_rows)
            .into_iter()
            .map(|(merchant, rows)| ExportFile {
                name: format!("{}_{}.csv", file_safe(merchant), compact(day)),
                contents: csv_file(&rows),
            })
            .collect(),
        ExportFormat::Json => by_merchant(&day_rows)
            .into_iter()
            .map(|(merchant, rows)| ExportFile {
                name: format!("{}_{}.json", file_safe(merchant), compact(day)),
                contents: json_file(merchant, day, &rows),
            })
            .collect(),
    }
}

fn by_partner(rows: &[FinanceRow]) -> BTreeMap<&str, Vec<&FinanceRow>> {
    let mut out: BTreeMap<&str, Vec<&FinanceRow>> = BTreeMap::new();
    for row in rows {
        out.entry(row.upstream_partner.as_str())
            .or_default()
            .push(row);
    }
    out
}

fn by_merchant(rows: &[FinanceRow]) -> BTreeMap<&str, Vec<&FinanceRow>> {
    let mut out: BTreeMap<&str, Vec<&FinanceRow>> = BTreeMap::new();
    for row in rows {
        out.entry(row.txn.merchant.as_str()).or_default().push(row);
    }
    out
}

/// `text` with every byte outside `[A-Za-z0-9_-]` written `%XX`: a file name that cannot
/// climb out of its folder, and two ids never share one.
pub fn file_safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Replaces the file's separators in free text.
fn clean(text: &str) -> String {
    text.replace(['|', '\r', '\n'], " ")
}

/// `Trans_currency|Trans_amount|Trans_forex_rate`: the journal has no pricing currency.
fn pricing_columns(amount: Money) -> String {
    format!(
        "{}|{}|{}",
        amount.currency_code(),
        format_money(amount),
        Rate::ONE
    )
}

/// Alipay's transaction file of `partner` for `day` (rows already of that day and partner,
/// sorted).
pub fn transactions_file(partner: &str, day: BeijingDay, rows: &[&FinanceRow]) -> String {
    let rows: Vec<&&FinanceRow> = rows.iter().filter(|r| r.confirmed).collect();
    let mut out = String::with_capacity(256 + rows.len() * 200);
    let _ = writeln!(
        out,
        "Partner:{}|Payment_time:{day}|Total_count:{}",
        clean(partner),
        rows.len()
    );
    out.push_str(TRANSACTION_COLUMNS);
    out.push('\n');
    for r in rows {
        // After `Remark`: empty industry, name and operator, then the scene.
        let _ = writeln!(
            out,
            "{}|{}|{}|{}|{}|{}|{}|{}||||{ORDER_SCENE}|{}",
            clean(r.alipay_id()),
            clean(r.alipay_trans_id.as_deref().unwrap_or("")),
            format_money(r.amount),
            format_money(r.fee),
            r.amount.currency_code(),
            format_beijing(r.at_ms),
            r.row_type.name(),
            clean(&r.remark),
            pricing_columns(r.amount),
        );
    }
    out
}

/// Alipay's settlement file for `day` (rows already of that day and one partner, sorted).
pub fn settlement_file(day: BeijingDay, rows: &[&FinanceRow], pricing: &Pricing) -> String {
    let mut out = String::with_capacity(256 + rows.len() * 220);
    out.push_str(SETTLEMENT_COLUMNS);
    out.push('\n');
    for r in rows.iter().filter(|r| r.row_type != RowType::Cancel) {
        let settlement = Money::new(
            r.amount.minor.saturating_sub(r.fee.minor),
            r.amount.currency,
        );
        let rate = pricing.rate_to_cny(r.amount.currency);
        let rmb = |m: Money| {
            rate.and_then(|rate| convert(m, rate, CNY))
                .map(format_money)
                .unwrap_or_default()
        };
        let kind = if r.row_type == RowType::Payment {
            "P"
        } else {
            "R"
        };
        let _ = writeln!(
            out,
            "{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{day} 23:59:59|{kind}|L|{}||||{ORDER_SCENE}|{}",
            clean(r.alipay_id()),
            clean(r.alipay_trans_id.as_deref().unwrap_or("")),
            format_money(r.amount),
            rmb(r.amount),
            format_money(r.fee),
            format_money(settlement),
            rmb(settlement),
            r.amount.currency_code(),
            rate.map(|r| r.to_string()).unwrap_or_default(),
            format_beijing(r.at_ms),
            clean(&r.remark),
            pricing_columns(r.amount),
        );
    }
    out
}

/// The plain CSV export's columns.
pub const CSV_COLUMNS: [&str; 20] = [
    "day",
    "merchant",
    "partner_trans_id",
    "partner_refund_id",
    "type",
    "amount",
    "fee",
    "fee_source",
    "currency",
    "time",
    "upstream_time",
    "upstream_partner",
    "upstream_trans_id",
    "upstream_refund_id",
    "alipay_trans_id",
    "secondary_merchant_id",
    "confirmed",
    "seq",
    "at_ms",
    "remark",
];

/// One row of the plain exports (CSV columns in [`CSV_COLUMNS`] order; JSON fields by name).
/// Amounts are decimal strings in major units of `currency`, as Alipay writes them, with the
/// same in minor units beside them in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowView {
    /// `PAYMENT`, `REFUND`, `REVERSAL` or `CANCEL`.
    #[serde(rename = "type")]
    pub row_type: String,
    /// The merchant's order number.
    pub partner_trans_id: String,
    /// The merchant's refund number (REFUND only).
    pub partner_refund_id: Option<String>,
    /// The amount, e.g. `12.30`.
    pub amount: String,
    /// The amount in minor units.
    pub amount_minor: u64,
    /// The fee, charged (PAYMENT) or returned (REFUND, REVERSAL).
    pub fee: String,
    /// The fee in minor units.
    pub fee_minor: u64,
    /// `reported`, `computed` or `unknown`.
    pub fee_source: String,
    /// ISO 4217.
    pub currency: String,
    /// When the journal recorded it, `yyyy-MM-dd HH:mm:ss` Beijing.
    pub time: String,
    /// When Alipay says it happened, if it said.
    pub upstream_time: Option<String>,
    /// The partner account at Alipay.
    pub upstream_partner: String,
    /// The trade's id at Alipay.
    pub upstream_trans_id: String,
    /// The refund's id at Alipay (REFUND only).
    pub upstream_refund_id: Option<String>,
    /// Alipay's trade number.
    pub alipay_trans_id: Option<String>,
    /// The secondary merchant.
    pub secondary_merchant_id: Option<String>,
    /// False for a CANCEL of a trade Alipay may never have seen.
    pub confirmed: bool,
    /// The journal event.
    pub seq: u64,
    /// The journal event's time, UTC ms.
    pub at_ms: i64,
    /// The refund reason.
    pub remark: String,
}

impl RowView {
    /// The view of a row.
    pub fn of(r: &FinanceRow) -> RowView {
        RowView {
            row_type: r.row_type.name().to_owned(),
            partner_trans_id: r.txn.partner_trans_id.clone(),
            partner_refund_id: r.partner_refund_id.clone(),
            amount: format_money(r.amount),
            amount_minor: r.amount.minor,
            fee: format_money(r.fee),
            fee_minor: r.fee.minor,
            fee_source: r.fee_source.name().to_owned(),
            currency: r.amount.currency_code().to_owned(),
            time: format_beijing(r.at_ms),
            upstream_time: r.upstream_at_ms.map(format_beijing),
            upstream_partner: r.upstream_partner.clone(),
            upstream_trans_id: r.upstream_trans_id.clone(),
            upstream_refund_id: r.upstream_refund_id.clone(),
            alipay_trans_id: r.alipay_trans_id.clone(),
            secondary_merchant_id: r.secondary_merchant_id.clone(),
            confirmed: r.confirmed,
            seq: r.seq,
            at_ms: r.at_ms,
            remark: r.remark.clone(),
        }
    }
}

/// The JSON export of one merchant's day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MerchantDay {
    /// Schema version, 1.
    pub version: u32,
    /// The merchant.
    pub merchant: String,
    /// The Beijing day, `yyyy-MM-dd`.
    pub day: String,
    /// The rows, sorted by time, type and id.
    pub rows: Vec<RowView>,
}

/// The version of [`MerchantDay`].
pub const JSON_VERSION: u32 = 1;

fn json_file(merchant: &str, day: BeijingDay, rows: &[&FinanceRow]) -> String {
    let doc = MerchantDay {
        version: JSON_VERSION,
        merchant: merchant.to_owned(),
        day: day.to_string(),
        rows: rows.iter().map(|r| RowView::of(r)).collect(),
    };
    // Serializing plain strings, numbers and options cannot fail.
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}

/// A CSV field, quoted when it holds a comma, quote, CR or LF (RFC 4180). Free text that a
/// spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab) gets a leading `'`.
fn csv_field(out: &mut String, text: &str, free_text: bool) {
    let guard = free_text && text.starts_with(['=', '+', '-', '@', '\t']);
    let text = if guard {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([',', '"', '\r', '\n']) {
        out.push('"');
        out.push_str(&text.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(&text);
    }
}

fn csv_file(rows: &[&FinanceRow]) -> String {
    let mut out = CSV_COLUMNS.join(",");
    out.push_str("\r\n");
    for r in rows {
        let v = RowView::of(r);
        let opt = |o: &Option<String>| o.clone().unwrap_or_default();
        let fields: [(String, bool); 20] = [
            (r.day().to_string(), false),
            (r.txn.merchant.clone(), true),
            (v.partner_trans_id, true),
            (opt(&v.partner_refund_id), true),
            (v.row_type, false),
            (v.amount, false),
            (v.fee, false),
            (v.fee_source, false),
            (v.currency, false),
            (v.time, false),
            (opt(&v.upstream_time), false),
            (v.upstream_partner, true),
            (v.upstream_trans_id, true),
            (opt(&v.upstream_refund_id), true),
            (opt(&v.alipay_trans_id), true),
            (opt(&v.secondary_merchant_id), true),
            (v.confirmed.to_string(), false),
            (v.seq.to_string(), false),
            (v.at_ms.to_string(), false),
            (v.remark, true),
        ];
        for (i, (text, free)) in fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            csv_field(&mut out, text, *free);
        }
        out.push_str("\r\n");
    }
    out
}
