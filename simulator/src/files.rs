//! Reconciliation files (spec §8): the day's transaction file and settlement file of a partner,
//! as plain functions from trades to text so they are unit-testable.
//!
//! Every choice the spec leaves open, **assumed** here:
//! * Rows are the day's (Beijing calendar day) events, sorted by time, then PAYMENT, REFUND,
//!   REVERSAL, CANCEL, then id: PAYMENT at the pay time of every paid trade; REFUND at the
//!   completion time of every completed refund (`Partner_transaction_id` = `partner_refund_id`;
//!   pending asynchronous refunds are not listed yet); REVERSAL at the cancel time of a cancel
//!   that refunded a paid trade (amount = what the cancel returned); CANCEL at the cancel time
//!   of a cancel that closed an unpaid trade (amount = the trade amount, charge 0). A cancel of a
//!   trade Alipay never saw has no amount and no row.
//! * `Charge_amount` is Alipay's fee at the account's `fee_rate_bps`, rounded half up. On REFUND
//!   and REVERSAL rows it is the fee returned: the fee on everything refunded so far (this row
//!   included, in the order the refunds took effect) less the fee already returned, capped at
//!   the payment's fee ([`money::refund_fee`]), so the returns of a fully refunded payment add
//!   up to exactly its fee however it was split.
//! * `Remark` is the refund reason on REFUND rows, empty elsewhere; `Operator_name` is empty;
//!   secondary merchant industry and name come from `extend_info`.
//! * `Trans_currency`, `Trans_amount` and `Trans_forex_rate` are the pricing currency, the amount
//!   in it and the pricing-to-settlement rate; without a pricing currency they repeat the
//!   settlement currency and amount with rate `1.00000000`.
//! * Amounts are unsigned; the direction is in `Transaction_type` / `Type`.
//! * The settlement file has no header line (spec §8 defines one only for the transaction
//!   file): its first line is the column line. It lists the day's PAYMENT rows as `P` and REFUND and REVERSAL rows as `R` (CANCEL moves no
//!   money), all `Status` `L`; `Settlement` = `Amount` − `Fee`; `Rmb_amount` and
//!   `Rmb_settlement` convert at the trade's rate to CNY (`Rate`, 8 decimals);
//!   `Settlement_time` is the end of the day, `yyyy-MM-dd 23:59:59`.
//! * Text fields have `|`, CR and LF replaced by spaces; lines end with `\n`.

use std::fmt::Write as _;

use alipay::{Amount, BeijingDay};

use crate::clock::beijing;
use crate::ledger::{CancelEffect, Trade};
use crate::money::{self, Rate};

/// The transaction file's column line.
pub const TRANSACTION_COLUMNS: &str = "Partner_transaction_id|Transaction_id|Transaction_amount|Charge_amount|Currency|Payment_time|Transaction_type|Remark|Secondary_merchant_industry|Secondary_merchant_name|Operator_name|Order_scene|Trans_currency|Trans_amount|Trans_forex_rate";
/// The settlement file's column line.
pub const SETTLEMENT_COLUMNS: &str = "Partner_transaction_id|Transaction_id|Amount|Rmb_amount|Fee|Settlement|Rmb_settlement|Currency|Rate|Payment_time|Settlement_time|Type|Status|Remarks|Secondary_merchant_industry|Secondary_merchant_name|Operator_name|Order_scene|Trans_currency|Trans_amount|Trans_forex_rate";
/// `Order_scene` of barcode payments.
pub const ORDER_SCENE: &str = "paymentQrCode";

/// The transaction file's name.
pub fn transactions_file_name(partner: &str, day: BeijingDay) -> String {
    format!("{partner}_fptrade_{}.csv", day.compact())
}

/// The settlement file's name.
pub fn settlement_file_name(partner: &str, day: BeijingDay) -> String {
    format!("{partner}_settle_{}.csv", day.compact())
}

/// A row's kind, in the order rows of the same instant are listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Payment,
    Refund,
    Reversal,
    Cancel,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Payment => "PAYMENT",
            Kind::Refund => "REFUND",
            Kind::Reversal => "REVERSAL",
            Kind::Cancel => "CANCEL",
        }
    }
}

#[derive(Debug)]
struct Row<'t> {
    time_ms: i64,
    kind: Kind,
    id: &'t str,
    trade: &'t Trade,
    amount: Amount,
    fee: Amount,
    rate_to_cny: Rate,
    remark: &'t str,
}

/// True when `trade` has a row on `day`: paid, a refund completed, or cancelled that day.
pub fn touches_day(trade: &Trade, day: BeijingDay) -> bool {
    let start = day.start_unix_ms();
    let end = day.next().map_or(i64::MAX, BeijingDay::start_unix_ms);
    let on_day = |ms: i64| (start..end).contains(&ms);
    trade.paid_ms.is_some_and(on_day)
        || trade.cancel.is_some_and(|c| on_day(c.at_ms))
        || trade
            .refunds
            .iter()
            .any(|r| r.completed_ms.is_some_and(on_day))
}

/// A refund or a cancel's reversal: money going back to the buyer.
#[derive(Debug)]
struct Return<'t> {
    time_ms: i64,
    kind: Kind,
    id: &'t str,
    amount: Amount,
    remark: &'t str,
}

/// Every refund that took effect and the cancel's reversal of `trade`, in the order they took
/// effect (the rows' order), each with the fee it returns: see [`money::refund_fee`].
fn returns_with_fees<'t>(
    trade: &'t Trade,
    paid: Amount,
    fee_rate_bps: u32,
) -> Vec<(Return<'t>, Amount)> {
    let mut returns: Vec<Return<'t>> = trade
        .refunds
        .iter()
        .filter_map(|r| {
            Some(Return {
                time_ms: r.completed_ms?,
                kind: Kind::Refund,
                id: &r.partner_refund_id,
                amount: r.amount,
                remark: r.reason.as_deref().unwrap_or(""),
            })
        })
        .collect();
    if let Some(c) = trade.cancel.filter(|c| c.effect == CancelEffect::Refunded) {
        if let Some(amount) = c.refunded.filter(|a| !a.is_zero()) {
            returns.push(Return {
                time_ms: c.at_ms,
                kind: Kind::Reversal,
                id: &trade.partner_trans_id,
                amount,
                remark: "",
            });
        }
    }
    returns.sort_by(|a, b| (a.time_ms, a.kind, a.id).cmp(&(b.time_ms, b.kind, b.id)));
    let (mut refunded, mut returned) =
        (Amount::zero(paid.currency()), Amount::zero(paid.currency()));
    let mut out = Vec::with_capacity(returns.len());
    for r in returns {
        refunded = refunded.checked_add(r.amount).unwrap_or(paid);
        let fee = money::refund_fee(paid, refunded, returned, fee_rate_bps);
        returned = returned.checked_add(fee).unwrap_or(returned);
        out.push((r, fee));
    }
    out
}

/// The day's rows of `trades` (of one partner).
fn rows<'t>(trades: &[&'t Trade], day: BeijingDay, fee_rate_bps: u32) -> Vec<Row<'t>> {
    let start = day.start_unix_ms();
    let end = day.next().map_or(i64::MAX, BeijingDay::start_unix_ms);
    let on_day = |ms: i64| (start..end).contains(&ms);
    let mut out = Vec::new();
    for &trade in trades {
        let Some(pay) = &trade.pay else {
            continue;
        };
        let row = |time_ms, kind, id, amount: Amount, fee, remark| Row {
            time_ms,
            kind,
            id,
            trade,
            amount,
            fee,
            rate_to_cny: pay.rate_to_cny,
            remark,
        };
        let id = trade.partner_trans_id.as_str();
        if let Some(paid) = trade.paid_ms.filter(|&t| on_day(t)) {
            let fee = money::fee(pay.amount, fee_rate_bps);
            out.push(row(paid, Kind::Payment, id, pay.amount, fee, ""));
        }
        for (r, fee) in returns_with_fees(trade, pay.amount, fee_rate_bps) {
            if on_day(r.time_ms) {
                out.push(row(r.time_ms, r.kind, r.id, r.amount, fee, r.remark));
            }
        }
        if let Some(c) = trade.cancel.filter(|c| on_day(c.at_ms)) {
            if c.effect == CancelEffect::Closed {
                let zero = Amount::zero(pay.amount.currency());
                out.push(row(c.at_ms, Kind::Cancel, id, pay.amount, zero, ""));
            }
        }
    }
    out.sort_by(|a, b| (a.time_ms, a.kind, a.id).cmp(&(b.time_ms, b.kind, b.id)));
    out
}

/// Replaces the file's separators in free text.
fn clean(text: &str) -> String {
    text.replace(['|', '\r', '\n'], " ")
}

/// `Trans_currency|Trans_amount|Trans_forex_rate` for `amount` of `trade`.
fn pricing(trade: &Trade, amount: Amount) -> String {
    let pay = trade.pay.as_ref();
    match pay.and_then(|p| p.trans_currency.zip(p.forex_rate)) {
        Some((currency, rate)) => {
            let inverse = money::cross_rate(Rate::ONE, rate);
            let priced = inverse.and_then(|inv| money::convert(amount, inv, currency));
            let priced = priced.map(|a| a.to_string()).unwrap_or_default();
            format!("{currency}|{priced}|{rate}")
        }
        None => format!("{}|{amount}|{}", amount.currency(), Rate::ONE),
    }
}

fn merchant(trade: &Trade) -> (String, String) {
    let info = trade.pay.as_ref().and_then(|p| p.extend_info.as_ref());
    info.map_or((String::new(), String::new()), |i| {
        (
            clean(&i.secondary_merchant_industry),
            clean(&i.secondary_merchant_name),
        )
    })
}

/// The transaction file of `partner` for `day`: header, columns, rows.
pub fn transactions_file(
    partner: &str,
    day: BeijingDay,
    fee_rate_bps: u32,
    trades: &[&Trade],
) -> String {
    let rows = rows(trades, day, fee_rate_bps);
    let mut out = String::with_capacity(256 + rows.len() * 200);
    let _ = writeln!(
        out,
        "Partner:{partner}|Payment_time:{day}|Total_count:{}",
        rows.len()
    );
    out.push_str(TRANSACTION_COLUMNS);
    out.push('\n');
    for r in &rows {
        let (industry, name) = merchant(r.trade);
        let _ = writeln!(
            out,
            "{}|{}|{}|{}|{}|{}|{}|{}|{industry}|{name}||{ORDER_SCENE}|{}",
            clean(r.id),
            r.trade.alipay_trans_id,
            r.amount,
            r.fee,
            r.amount.currency(),
            beijing(r.time_ms).dashed(),
            r.kind.name(),
            clean(r.remark),
            pricing(r.trade, r.amount),
        );
    }
    out
}

/// The settlement file of a partner's `trades` for `day`: the column line, then rows (no header
/// line: spec §8 defines one only for the transaction file).
pub fn settlement_file(day: BeijingDay, fee_rate_bps: u32, trades: &[&Trade]) -> String {
    let rows: Vec<Row<'_>> = rows(trades, day, fee_rate_bps)
        .into_iter()
        .filter(|r| r.kind != Kind::Cancel)
        .collect();
    let mut out = String::with_capacity(256 + rows.len() * 220);
    out.push_str(SETTLEMENT_COLUMNS);
    out.push('\n');
    for r in &rows {
        let (industry, name) = merchant(r.trade);
        let settlement = r.amount.checked_sub(r.fee).unwrap_or(r.amount);
        let rmb = |a: Amount| {
            money::convert(a, r.rate_to_cny, alipay::Currency::CNY)
                .map(|c| c.to_string())
                .unwrap_or_default()
        };
        let kind = if r.kind == Kind::Payment { "P" } else { "R" };
        let _ = writeln!(
            out,
            "{}|{}|{}|{}|{}|{settlement}|{}|{}|{}|{}|{day} 23:59:59|{kind}|L|{}|{industry}|{name}||{ORDER_SCENE}|{}",
            clean(r.id),
            r.trade.alipay_trans_id,
            r.amount,
            rmb(r.amount),
            r.fee,
            rmb(settlement),
            r.amount.currency(),
            r.rate_to_cny,
            beijing(r.time_ms).dashed(),
            clean(r.remark),
            pricing(r.trade, r.amount),
        );
    }
    out
}

#[cfg(test)]
mod tests {

    use alipay::{BeijingTime, CancelAction, Currency, ExtendInfo, ResultCode, TradeStatus};

    use super::*;
    use crate::ledger::{Buyer, CancelRecord, PayInfo, Refund};

    fn ms(text: &str) -> i64 {
        BeijingTime::parse_dashed(text).unwrap().unix_ms()
    }

    fn trade(seq: u64, id: &str, minor: u64, paid: Option<&str>) -> Trade {
        let alipay_trans_id = format!("20260102{seq:020}");
        let created = ms("2026-01-02 10:00:00");
        let mut t = Trade::new(seq, "2088101122136241", id, alipay_trans_id, created);
        t.pay = Some(PayInfo {
            fingerprint: 0,
            amount: Amount::from_minor(minor, Currency::USD),
            trans_name: "x".into(),
            trans_currency: None,
            rate_to_cny: Rate::parse("7.10650000").unwrap(),
            forex_rate: None,
            trans_create_time: "20260102100000".into(),
            buyer: Buyer {
                login_id: "186****1234".into(),
                user_id: "2088000000000001".into(),
            },
            extend_info: Some(ExtendInfo {
                secondary_merchant_id: "S1".into(),
                secondary_merchant_name: "Cafe|Bar".into(),
                secondary_merchant_industry: "5812".into(),
                store_id: "ST1".into(),
                ..ExtendInfo::default()
            }),
            notify_url: None,
            first_answer: (ResultCode::Success, None),
        });
        t.status = TradeStatus::TradeSuccess;
        t.paid_ms = paid.map(ms);
        t
    }

    fn fixture() -> Vec<Trade> {
        let mut paid = trade(1, "T1", 10_000, Some("2026-01-02 10:00:05"));
        paid.push_refund(Refund {
            partner_refund_id: "R1".into(),
            amount: Amount::from_minor(2_500, Currency::USD),
            requested_ms: ms("2026-01-02 12:00:00"),
            completed_ms: Some(ms("2026-01-02 12:00:00")),
            is_sync: true,
            reason: Some("damaged".into()),
            notify_url: None,
        });
        let mut reversed = trade(2, "T2", 1_000, Some("2026-01-02 11:00:00"));
        reversed.record_cancel(CancelRecord {
            at_ms: ms("2026-01-02 11:00:30"),
            action: CancelAction::Refund,
            effect: CancelEffect::Refunded,
            refunded: Some(Amount::from_minor(1_000, Currency::USD)),
        });
        let mut cancelled = trade(3, "T3", 500, None);
        cancelled.record_cancel(CancelRecord {
            at_ms: ms("2026-01-02 11:30:00"),
            action: CancelAction::Close,
            effect: CancelEffect::Closed,
            refunded: None,
        });
        let yesterday = trade(4, "T4", 700, Some("2026-01-01 23:59:59"));
        vec![paid, reversed, cancelled, yesterday]
    }

    #[test]
    fn transaction_file_of_a_day() {
        let trades = fixture();
        let refs: Vec<&Trade> = trades.iter().collect();
        let day = BeijingDay::parse("2026-01-02").unwrap();
        let got = transactions_file("2088101122136241", day, 180, &refs);
        let want = "\
Partner:2088101122136241|Payment_time:2026-01-02|Total_count:5
Partner_transaction_id|Transaction_id|Transaction_amount|Charge_amount|Currency|Payment_time|Transaction_type|Remark|Secondary_merchant_industry|Secondary_merchant_name|Operator_name|Order_scene|Trans_currency|Trans_amount|Trans_forex_rate
T1|2026010200000000000000000001|100.00|1.80|USD|2026-01-02 10:00:05|PAYMENT||5812|Cafe Bar||paymentQrCode|USD|100.00|1.00000000
T2|2026010200000000000000000002|10.00|0.18|USD|2026-01-02 11:00:00|PAYMENT||5812|Cafe Bar||paymentQrCode|USD|10.00|1.00000000
T2|2026010200000000000000000002|10.00|0.18|USD|2026-01-02 11:00:30|REVERSAL||5812|Cafe Bar||paymentQrCode|USD|10.00|1.00000000
T3|2026010200000000000000000003|5.00|0.00|USD|2026-01-02 11:30:00|CANCEL||5812|Cafe Bar||paymentQrCode|USD|5.00|1.00000000
R1|2026010200000000000000000001|25.00|0.45|USD|2026-01-02 12:00:00|REFUND|damaged|5812|Cafe Bar||paymentQrCode|USD|25.00|1.00000000
";
        assert_eq!(got, want);
        assert_eq!(
            transactions_file_name("2088101122136241", day),
            "2088101122136241_fptrade_20260102.csv"
        );
    }

    fn refund(id: &str, minor: u64, at: &str) -> Refund {
        Refund {
            partner_refund_id: id.into(),
            amount: Amount::from_minor(minor, Currency::USD),
            requested_ms: ms(at),
            completed_ms: Some(ms(at)),
            is_sync: true,
            reason: None,
            notify_url: None,
        }
    }

    /// (Transaction_type, Charge_amount) of each row of the day's transaction file.
    fn charges(trade: &Trade) -> Vec<(String, String)> {
        let day = BeijingDay::parse("2026-01-02").unwrap();
        transactions_file("2088101122136241", day, 180, &[trade])
            .lines()
            .skip(2)
            .map(|l| {
                let f: Vec<&str> = l.split('|').collect();
                (f[6].to_owned(), f[3].to_owned())
            })
            .collect()
    }

    #[test]
    fn refund_fees_add_up_to_the_payment_fee() {
        // 0.84 at 180 bps is charged 0.02; three refunds of 0.28 must return 0.02 in all.
        let mut t = trade(1, "T1", 84, Some("2026-01-02 10:00:05"));
        t.push_refund(refund("R1", 28, "2026-01-02 11:00:00"));
        t.push_refund(refund("R2", 28, "2026-01-02 12:00:00"));
        t.push_refund(refund("R3", 28, "2026-01-02 13:00:00"));
        let want = [
            ("PAYMENT", "0.02"),
            ("REFUND", "0.01"),
            ("REFUND", "0.00"),
            ("REFUND", "0.01"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(k, f)| ((*k).to_owned(), (*f).to_owned()))
            .collect();
        assert_eq!(charges(&t), want);
        // The same with a cancel's reversal returning the rest.
        let mut t = trade(2, "T2", 84, Some("2026-01-02 10:00:05"));
        t.push_refund(refund("R4", 28, "2026-01-02 11:00:00"));
        t.record_cancel(CancelRecord {
            at_ms: ms("2026-01-02 11:30:00"),
            action: CancelAction::Refund,
            effect: CancelEffect::Refunded,
            refunded: Some(Amount::from_minor(56, Currency::USD)),
        });
        let got = charges(&t);
        assert_eq!(got[1], ("REFUND".to_owned(), "0.01".to_owned()));
        assert_eq!(got[2], ("REVERSAL".to_owned(), "0.01".to_owned()));
    }

    #[test]
    fn settlement_file_of_a_day() {
        let trades = fixture();
        let refs: Vec<&Trade> = trades.iter().collect();
        let day = BeijingDay::parse("2026-01-02").unwrap();
        let got = settlement_file(day, 180, &refs);
        let want = "\
Partner_transaction_id|Transaction_id|Amount|Rmb_amount|Fee|Settlement|Rmb_settlement|Currency|Rate|Payment_time|Settlement_time|Type|Status|Remarks|Secondary_merchant_industry|Secondary_merchant_name|Operator_name|Order_scene|Trans_currency|Trans_amount|Trans_forex_rate
T1|2026010200000000000000000001|100.00|710.65|1.80|98.20|697.86|USD|7.10650000|2026-01-02 10:00:05|2026-01-02 23:59:59|P|L||5812|Cafe Bar||paymentQrCode|USD|100.00|1.00000000
T2|2026010200000000000000000002|10.00|71.07|0.18|9.82|69.79|USD|7.10650000|2026-01-02 11:00:00|2026-01-02 23:59:59|P|L||5812|Cafe Bar||paymentQrCode|USD|10.00|1.00000000
T2|2026010200000000000000000002|10.00|71.07|0.18|9.82|69.79|USD|7.10650000|2026-01-02 11:00:30|2026-01-02 23:59:59|R|L||5812|Cafe Bar||paymentQrCode|USD|10.00|1.00000000
R1|2026010200000000000000000001|25.00|177.66|0.45|24.55|174.46|USD|7.10650000|2026-01-02 12:00:00|2026-01-02 23:59:59|R|L|damaged|5812|Cafe Bar||paymentQrCode|USD|25.00|1.00000000
";
        assert_eq!(got, want);
    }
}
