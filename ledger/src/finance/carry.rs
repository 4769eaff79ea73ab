//! The items reconciliation compares, and the carry-over state that keeps the ones that may
//! straddle midnight for the next day.
//!
//! An [`Item`] is one row of either side (a journal [`FinanceRow`] or an Alipay [`AlipayRow`])
//! in the shape they share. Reconciling day D writes the items it carries into D+1 to
//! `{state_dir}/carry-{yyyyMMdd of D}.json` ([`CarryFile`], one section per upstream partner,
//! rewritten atomically through a temporary file and a rename); reconciling D+1 reads them back
//! first. The file is JSON so an operator can read it; amounts are decimal strings.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::day::BeijingDay;
use crate::finance::alipay_file::AlipayRow;
use crate::finance::amount::{format_money, parse_currency, parse_money};
use crate::finance::rows::{FeeSource, FinanceRow, RowType};
use crate::finance::time::{compact, format_beijing, parse_day};
use crate::finance::FinanceError;
use crate::record::Money;

/// The carry-over file format version.
pub const CARRY_VERSION: u32 = 1;

/// The largest carry-over file read back, in bytes.
pub const CARRY_FILE_BYTES_MAX: u64 = 256 * 1024 * 1024;

/// Which side an item comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A journal row.
    Journal {
        /// The merchant.
        merchant: String,
        /// The merchant's order number.
        partner_trans_id: String,
        /// The merchant's refund number (REFUND).
        partner_refund_id: Option<String>,
        /// The journal event.
        seq: u64,
        /// False for a CANCEL of a trade Alipay may never have seen.
        confirmed: bool,
    },
    /// A row of Alipay's file.
    Alipay {
        /// Its line in the file of its day.
        line: usize,
    },
}

/// One row of either side, as reconciliation compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// `Transaction_type`.
    pub row_type: RowType,
    /// `Partner_transaction_id`: the upstream trade id, or the upstream refund id of a REFUND.
    pub id: String,
    /// Alipay's trade number; empty when not known.
    pub transaction_id: String,
    /// The amount.
    pub amount: Money,
    /// The fee; `None` when the journal does not know it.
    pub fee: Option<Money>,
    /// When it happened on its side, UTC ms.
    pub at_ms: i64,
    /// The day whose data it came from.
    pub day: BeijingDay,
    /// Where it comes from.
    pub origin: Origin,
}

impl Item {
    /// The journal's row as an item.
    pub fn of_row(row: &FinanceRow) -> Item {
        Item {
            row_type: row.row_type,
            id: row.alipay_id().to_owned(),
            transaction_id: row.alipay_trans_id.clone().unwrap_or_default(),
            amount: row.amount,
            fee: (row.fee_source != FeeSource::Unknown).then_some(row.fee),
            at_ms: row.at_ms,
            day: row.day(),
            origin: Origin::Journal {
                merchant: row.txn.merchant.clone(),
                partner_trans_id: row.txn.partner_trans_id.clone(),
                partner_refund_id: row.partner_refund_id.clone(),
                seq: row.seq,
                confirmed: row.confirmed,
            },
        }
    }

    /// Alipay's row of the file of `day` as an item.
    pub fn of_alipay(row: &AlipayRow, day: BeijingDay) -> Item {
        Item {
            row_type: row.row_type,
            id: row.partner_transaction_id.clone(),
            transaction_id: row.transaction_id.clone(),
            amount: row.amount,
            fee: Some(row.charge),
            at_ms: row.time_ms,
            day,
            origin: Origin::Alipay { line: row.line },
        }
    }

    /// The key both sides are matched on.
    pub fn key(&self) -> (RowType, &str) {
        (self.row_type, &self.id)
    }

    /// False only for a journal CANCEL of a trade Alipay may never have seen.
    pub fn confirmed(&self) -> bool {
        match self.origin {
            Origin::Journal { confirmed, .. } => confirmed,
            Origin::Alipay { .. } => true,
        }
    }
}

/// An item as JSON (the reconciliation report and the carry-over file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemView {
    /// `PAYMENT`, `REFUND`, `REVERSAL` or `CANCEL`.
    #[serde(rename = "type")]
    pub row_type: String,
    /// `Partner_transaction_id`.
    pub partner_transaction_id: String,
    /// Alipay's trade number, empty when not known.
    pub transaction_id: String,
    /// The amount, decimal.
    pub amount: String,
    /// ISO 4217.
    pub currency: String,
    /// The fee, decimal; null when the journal does not know it.
    pub fee: Option<String>,
    /// `yyyy-MM-dd HH:mm:ss` Beijing.
    pub time: String,
    /// The same, UTC ms.
    pub at_ms: i64,
    /// The day whose data it came from, `yyyy-MM-dd`.
    pub day: String,
    /// `journal` or `alipay`.
    pub side: String,
    /// Journal: the merchant.
    pub merchant: Option<String>,
    /// Journal: the merchant's order number.
    pub partner_trans_id: Option<String>,
    /// Journal: the merchant's refund number.
    pub partner_refund_id: Option<String>,
    /// Journal: the event.
    pub seq: Option<u64>,
    /// Alipay: the line in that day's file.
    pub line: Option<usize>,
    /// False for a journal CANCEL of a trade Alipay may never have seen.
    pub confirmed: bool,
}

impl ItemView {
    /// The view of an item.
    pub fn of(item: &Item) -> ItemView {
        let (side, merchant, ptid, prid, seq, line) = match &item.origin {
            Origin::Journal {
                merchant,
                partner_trans_id,
                partner_refund_id,
                seq,
                ..
            } => (
                "journal",
                Some(merchant.clone()),
                Some(partner_trans_id.clone()),
                partner_refund_id.clone(),
                Some(*seq),
                None,
            ),
            Origin::Alipay { line } => ("alipay", None, None, None, None, Some(*line)),
        };
        ItemView {
            row_type: item.row_type.name().to_owned(),
            partner_transaction_id: item.id.clone(),
            transaction_id: item.transaction_id.clone(),
            amount: format_money(item.amount),
            currency: item.amount.currency_code().to_owned(),
            fee: item.fee.map(format_money),
            time: format_beijing(item.at_ms),
            at_ms: item.at_ms,
            day: item.day.to_string(),
            side: side.to_owned(),
            merchant,
            partner_trans_id: ptid,
            partner_refund_id: prid,
            seq,
            line,
            confirmed: item.confirmed(),
        }
    }

    /// The item back, or why the view is not one.
    pub fn to_item(&self) -> Result<Item, String> {
        let row_type = RowType::parse(&self.row_type)
            .ok_or_else(|| format!("unknown type `{}`", self.row_type))?;
        let currency = parse_currency(&self.currency)
            .ok_or_else(|| format!("unknown currency `{}`", self.currency))?;
        let amount = parse_money(&self.amount, currency).map_err(|e| e.to_string())?;
        let fee = match &self.fee {
            Some(fee) => Some(parse_money(fee, currency).map_err(|e| e.to_string())?),
            None => None,
        };
        let day = parse_day(&self.day).ok_or_else(|| format!("bad day `{}`", self.day))?;
        let origin = match (self.side.as_str(), &self.merchant, &self.partner_trans_id) {
            ("journal", Some(merchant), Some(ptid)) => Origin::Journal {
                merchant: merchant.clone(),
                partner_trans_id: ptid.clone(),
                partner_refund_id: self.partner_refund_id.clone(),
                seq: self.seq.unwrap_or(0),
                confirmed: self.confirmed,
            },
            ("alipay", _, _) => Origin::Alipay {
                line: self.line.unwrap_or(0),
            },
            _ => return Err(format!("bad side `{}` or missing merchant", self.side)),
        };
        Ok(Item {
            row_type,
            id: self.partner_transaction_id.clone(),
            transaction_id: self.transaction_id.clone(),
            amount,
            fee,
            at_ms: self.at_ms,
            day,
            origin,
        })
    }
}

/// Items carried from one day into the next.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Carry {
    /// Journal rows not matched yet.
    pub journal: Vec<Item>,
    /// Alipay rows not matched yet.
    pub alipay: Vec<Item>,
}

/// One partner's carried items, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarryView {
    /// Journal rows.
    pub journal: Vec<ItemView>,
    /// Alipay rows.
    pub alipay: Vec<ItemView>,
}

/// The carry-over file of one reconciled day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarryFile {
    /// [`CARRY_VERSION`].
    pub version: u32,
    /// The day reconciled, `yyyy-MM-dd`; the items are carried into the day after.
    pub day: String,
    /// By upstream partner.
    pub partners: BTreeMap<String, CarryView>,
}

/// `{dir}/carry-{yyyyMMdd}.json`.
pub fn carry_path(dir: &Path, day: BeijingDay) -> PathBuf {
    dir.join(format!("carry-{}.json", compact(day)))
}

fn read_file(path: &Path) -> Result<Option<CarryFile>, FinanceError> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(FinanceError::io(path, &e)),
    };
    let mut bytes = Vec::new();
    file.take(CARRY_FILE_BYTES_MAX.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| FinanceError::io(path, &e))?;
    let bad = |reason: String| FinanceError::CarryState {
        path: path.to_owned(),
        reason,
    };
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > CARRY_FILE_BYTES_MAX {
        return Err(bad(format!("larger than {CARRY_FILE_BYTES_MAX} bytes")));
    }
    let file: CarryFile = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    if file.version != CARRY_VERSION {
        return Err(bad(format!(
            "version {} (this build reads {CARRY_VERSION})",
            file.version
        )));
    }
    Ok(Some(file))
}

/// The items `partner` carried out of `day` (nothing when the file or section is absent).
pub fn load_carry(dir: &Path, day: BeijingDay, partner: &str) -> Result<Carry, FinanceError> {
    let path = carry_path(dir, day);
    let Some(file) = read_file(&path)? else {
        return Ok(Carry::default());
    };
    let Some(view) = file.partners.get(partner) else {
        return Ok(Carry::default());
    };
    let items = |views: &[ItemView]| -> Result<Vec<Item>, FinanceError> {
        views
            .iter()
            .map(|v| {
                v.to_item().map_err(|reason| FinanceError::CarryState {
                    path: path.clone(),
                    reason,
                })
            })
            .collect()
    };
    Ok(Carry {
        journal: items(&view.journal)?,
        alipay: items(&view.alipay)?,
    })
}

/// Records what `partner` carries out of `day`, keeping the other partners' sections.
pub fn save_carry(
    dir: &Path,
    day: BeijingDay,
    partner: &str,
    carry: &Carry,
) -> Result<PathBuf, FinanceError> {
    std::fs::create_dir_all(dir).map_err(|e| FinanceError::io(dir, &e))?;
    let path = carry_path(dir, day);
    let mut file = read_file(&path)?.unwrap_or_else(|| CarryFile {
        version: CARRY_VERSION,
        day: day.to_string(),
        partners: BTreeMap::new(),
    });
    let view = CarryView {
        journal: carry.journal.iter().map(ItemView::of).collect(),
        alipay: carry.alipay.iter().map(ItemView::of).collect(),
    };
    file.partners.insert(partner.to_owned(), view);
    let text = serde_json::to_string_pretty(&file).map_err(|e| FinanceError::CarryState {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).map_err(|e| FinanceError::io(&tmp, &e))?;
    std::fs::rename(&tmp, &path).map_err(|e| FinanceError::io(&path, &e))?;
    Ok(path)
}
