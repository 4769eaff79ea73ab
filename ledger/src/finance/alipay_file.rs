//! Alipay's transaction file (`{partner}_fptrade_{yyyyMMdd}.csv`, spec §8), parsed strictly.
//!
//! The file is a header line `Partner:{pid}|Payment_time:{yyyy-MM-dd}|Total_count:{n}`, the
//! column line [`TRANSACTION_COLUMNS`], then `n` pipe-separated rows of 15 fields. Lines end with
//! `\n` (a `\r` before it is dropped); a UTF-8 byte-order mark before the header is skipped;
//! empty lines are allowed only at the end. Every row is checked field by field, and the first
//! problem stops the parse with a [`ParseError`] naming the 1-based line and the reason: the
//! file is money, so a row that cannot be read is never skipped.
//!
//! The parser never panics and bounds what it holds: lines of at most [`LINE_BYTES_MAX`] bytes,
//! at most [`ROWS_MAX`] rows, files of at most [`FILE_BYTES_MAX`] bytes.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::Path;

use crate::day::BeijingDay;
use crate::finance::amount::{parse_currency, parse_money, AmountError};
use crate::finance::rows::RowType;
use crate::finance::time::{parse_beijing, parse_day};
use crate::finance::FinanceError;
use crate::record::Money;

/// The transaction file's column line.
pub const TRANSACTION_COLUMNS: &str = "Partner_transaction_id|Transaction_id|Transaction_amount|Charge_amount|Currency|Payment_time|Transaction_type|Remark|Secondary_merchant_industry|Secondary_merchant_name|Operator_name|Order_scene|Trans_currency|Trans_amount|Trans_forex_rate";

/// The settlement file's column line (its first line: the settlement file has no header).
pub const SETTLEMENT_COLUMNS: &str = "Partner_transaction_id|Transaction_id|Amount|Rmb_amount|Fee|Settlement|Rmb_settlement|Currency|Rate|Payment_time|Settlement_time|Type|Status|Remarks|Secondary_merchant_industry|Secondary_merchant_name|Operator_name|Order_scene|Trans_currency|Trans_amount|Trans_forex_rate";

/// Fields in a transaction file row.
pub const TRANSACTION_FIELDS: usize = 15;

/// `Order_scene` of barcode payments.
pub const ORDER_SCENE: &str = "paymentQrCode";

/// The longest line accepted, in bytes (a row of Alipay's file is a few hundred).
pub const LINE_BYTES_MAX: usize = 16 * 1024;

/// The most rows one file may have.
pub const ROWS_MAX: usize = 5_000_000;

/// The largest file read, in bytes.
pub const FILE_BYTES_MAX: u64 = 2 * 1024 * 1024 * 1024;

/// One row of the transaction file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlipayRow {
    /// The row's line in the file, from 1.
    pub line: usize,
    /// The id the partner sent: the trade's for PAYMENT/REVERSAL/CANCEL, the refund's for REFUND.
    pub partner_transaction_id: String,
    /// Alipay's trade number.
    pub transaction_id: String,
    /// `Transaction_amount`.
    pub amount: Money,
    /// `Charge_amount`: the fee charged (PAYMENT) or returned (REFUND, REVERSAL).
    pub charge: Money,
    /// `Payment_time`, UTC ms.
    pub time_ms: i64,
    /// `Transaction_type`.
    pub row_type: RowType,
    /// `Remark`.
    pub remark: String,
    /// `Secondary_merchant_industry`.
    pub secondary_merchant_industry: String,
    /// `Secondary_merchant_name`.
    pub secondary_merchant_name: String,
    /// `Operator_name`.
    pub operator_name: String,
    /// `Order_scene`.
    pub order_scene: String,
    /// `Trans_currency`, as written.
    pub trans_currency: String,
    /// `Trans_amount`, as written.
    pub trans_amount: String,
    /// `Trans_forex_rate`, as written.
    pub trans_forex_rate: String,
}

/// A parsed transaction file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlipayFile {
    /// `Partner:` of the header.
    pub partner: String,
    /// `Payment_time:` of the header.
    pub day: BeijingDay,
    /// The rows, in file order.
    pub rows: Vec<AlipayRow>,
}

/// What is wrong with a line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseReason {
    /// The file is empty.
    #[error("the file is empty: expected the header `Partner:{{pid}}|Payment_time:{{yyyy-MM-dd}}|Total_count:{{n}}`")]
    Empty,
    /// Bytes that are not UTF-8.
    #[error("not UTF-8 text")]
    NotUtf8,
    /// A line over [`LINE_BYTES_MAX`].
    #[error("line longer than {max} bytes")]
    LineTooLong {
        /// The limit.
        max: usize,
    },
    /// More rows than [`ROWS_MAX`].
    #[error("more than {max} rows")]
    TooManyRows {
        /// The limit.
        max: usize,
    },
    /// The header line is not `Partner:{pid}|Payment_time:{yyyy-MM-dd}|Total_count:{n}`.
    #[error("wrong header: {0}")]
    Header(String),
    /// The second line is not the column line.
    #[error("wrong column line: expected `{TRANSACTION_COLUMNS}`")]
    ColumnLine,
    /// A row with the wrong number of fields.
    #[error("{found} fields, expected {TRANSACTION_FIELDS}")]
    FieldCount {
        /// Fields found.
        found: usize,
    },
    /// An empty `Partner_transaction_id`.
    #[error("empty Partner_transaction_id")]
    EmptyId,
    /// A currency that is not one of spec §9's.
    #[error("unknown currency `{0}`")]
    Currency(String),
    /// An amount that is not a decimal of the currency's precision.
    #[error("bad {column}: {source}")]
    Amount {
        /// The column.
        column: &'static str,
        /// Why.
        #[source]
        source: AmountError,
    },
    /// A time that is not `yyyy-MM-dd HH:mm:ss`.
    #[error("bad Payment_time `{0}`: expected yyyy-MM-dd HH:mm:ss")]
    Time(String),
    /// A `Transaction_type` that is not PAYMENT, REFUND, REVERSAL or CANCEL.
    #[error("unknown Transaction_type `{0}`")]
    Type(String),
    /// The same (type, id) twice.
    #[error("second {row_type} row for `{id}` (first on line {first_line})")]
    Duplicate {
        /// The type.
        row_type: &'static str,
        /// The id.
        id: String,
        /// Where it was first.
        first_line: usize,
    },
    /// An empty line before the end of the file.
    #[error("empty line inside the file")]
    EmptyLine,
    /// `Total_count` in the header is not the number of rows.
    #[error("header says Total_count:{header} but the file has {rows} rows")]
    Count {
        /// The header's count.
        header: u64,
        /// Rows found.
        rows: usize,
    },
}

/// A line of the file and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: ParseReason,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

fn fail<T>(line: usize, reason: ParseReason) -> Result<T, ParseError> {
    Err(ParseError { line, reason })
}

/// Reads and parses the transaction file at `path`.
pub fn read_transactions(path: &Path) -> Result<AlipayFile, FinanceError> {
    let file = std::fs::File::open(path).map_err(|e| FinanceError::io(path, &e))?;
    let mut bytes = Vec::new();
    file.take(FILE_BYTES_MAX.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| FinanceError::io(path, &e))?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > FILE_BYTES_MAX {
        return Err(FinanceError::Io {
            path: path.to_owned(),
            message: format!("larger than {FILE_BYTES_MAX} bytes"),
        });
    }
    parse_transactions(&bytes).map_err(|source| FinanceError::AlipayFile {
        path: path.to_owned(),
        source,
    })
}

/// The lines of `bytes`: split on `\n`, a trailing `\r` dropped, a leading BOM skipped, the
/// empty remainder after a final `\n` not a line.
fn lines(bytes: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let mut split = body.split(|&b| b == b'\n');
    if bytes.is_empty() {
        // `split` yields one empty piece for empty input; an empty file has no lines.
        split.next();
    }
    split
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .enumerate()
        .map(|(i, l)| (i.saturating_add(1), l))
}

fn text(line: usize, bytes: &[u8]) -> Result<&str, ParseError> {
    if bytes.len() > LINE_BYTES_MAX {
        return fail(
            line,
            ParseReason::LineTooLong {
                max: LINE_BYTES_MAX,
            },
        );
    }
    std::str::from_utf8(bytes).map_err(|_| ParseError {
        line,
        reason: ParseReason::NotUtf8,
    })
}

/// Parses a transaction file.
pub fn parse_transactions(bytes: &[u8]) -> Result<AlipayFile, ParseError> {
    let mut lines = lines(bytes);
    let Some((_, header)) = lines.next() else {
        return fail(1, ParseReason::Empty);
    };
    let (partner, day, count) = parse_header(text(1, header)?)?;
    match lines.next() {
        Some((n, columns)) if text(n, columns)? == TRANSACTION_COLUMNS => {}
        Some((n, _)) => return fail(n, ParseReason::ColumnLine),
        None => return fail(2, ParseReason::ColumnLine),
    }
    let mut rows: Vec<AlipayRow> = Vec::new();
    let mut seen: HashMap<(RowType, String), usize> = HashMap::new();
    let mut empty_at: Option<usize> = None;
    for (n, bytes) in lines {
        let line = text(n, bytes)?;
        if line.is_empty() {
            empty_at = empty_at.or(Some(n));
            continue;
        }
        if let Some(empty) = empty_at {
            return fail(empty, ParseReason::EmptyLine);
        }
        if rows.len() >= ROWS_MAX {
            return fail(n, ParseReason::TooManyRows { max: ROWS_MAX });
        }
        let row = parse_row(n, line)?;
        let key = (row.row_type, row.partner_transaction_id.clone());
        if let Some(&first_line) = seen.get(&key) {
            let reason = ParseReason::Duplicate {
                row_type: row.row_type.name(),
                id: row.partner_transaction_id,
                first_line,
            };
            return fail(n, reason);
        }
        seen.insert(key, n);
        rows.push(row);
    }
    if u64::try_from(rows.len()).ok() != Some(count) {
        let rows = rows.len();
        return fail(
            1,
            ParseReason::Count {
                header: count,
                rows,
            },
        );
    }
    Ok(AlipayFile { partner, day, rows })
}

fn parse_header(line: &str) -> Result<(String, BeijingDay, u64), ParseError> {
    let header = |why: &str| ParseError {
        line: 1,
        reason: ParseReason::Header(format!(
            "{why}; expected `Partner:{{pid}}|Payment_time:{{yyyy-MM-dd}}|Total_count:{{n}}`"
        )),
    };
    let parts: Vec<&str> = line.split('|').collect();
    let [partner, day, count] = parts.as_slice() else {
        return Err(header(&format!("{} fields instead of 3", parts.len())));
    };
    let partner = partner
        .strip_prefix("Partner:")
        .filter(|p| !p.is_empty())
        .ok_or_else(|| header("no `Partner:` with a partner id"))?;
    let day = day
        .strip_prefix("Payment_time:")
        .and_then(parse_day)
        .ok_or_else(|| header("no `Payment_time:` with a real date"))?;
    let count = count
        .strip_prefix("Total_count:")
        .filter(|c| !c.is_empty() && c.len() <= 12 && c.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|c| c.parse::<u64>().ok())
        .ok_or_else(|| header("no `Total_count:` with a count"))?;
    Ok((partner.to_owned(), day, count))
}

fn parse_row(n: usize, line: &str) -> Result<AlipayRow, ParseError> {
    let fields: Vec<&str> = line.split('|').collect();
    let Ok(f) = <[&str; TRANSACTION_FIELDS]>::try_from(fields.as_slice()) else {
        return fail(
            n,
            ParseReason::FieldCount {
                found: fields.len(),
            },
        );
    };
    if f[0].is_empty() {
        return fail(n, ParseReason::EmptyId);
    }
    let Some(currency) = parse_currency(f[4]) else {
        return fail(n, ParseReason::Currency(f[4].to_owned()));
    };
    let money = |column: &'static str, text: &str| {
        parse_money(text, currency).map_err(|source| ParseError {
            line: n,
            reason: ParseReason::Amount { column, source },
        })
    };
    let amount = money("Transaction_amount", f[2])?;
    let charge = money("Charge_amount", f[3])?;
    let Some(time_ms) = parse_beijing(f[5]) else {
        return fail(n, ParseReason::Time(f[5].to_owned()));
    };
    let Some(row_type) = RowType::parse(f[6]) else {
        return fail(n, ParseReason::Type(f[6].to_owned()));
    };
    Ok(AlipayRow {
        line: n,
        partner_transaction_id: f[0].to_owned(),
        transaction_id: f[1].to_owned(),
        amount,
        charge,
        time_ms,
        row_type,
        remark: f[7].to_owned(),
        secondary_merchant_industry: f[8].to_owned(),
        secondary_merchant_name: f[9].to_owned(),
        operator_name: f[10].to_owned(),
        order_scene: f[11].to_owned(),
        trans_currency: f[12].to_owned(),
        trans_amount: f[13].to_owned(),
        trans_forex_rate: f[14].to_owned(),
    })
}
