//! Finance on a known scenario, through the pure fold: rows, exports, reconciliation with
//! planted differences and the midnight carry-over, settlement by hand.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "fixtures/finance/scenario.rs"]
mod scenario;

use std::path::{Path, PathBuf};

use ledger::finance::alipay_file::{parse_transactions, AlipayFile};
use ledger::finance::amount::Rate;
use ledger::finance::carry::{load_carry, save_carry, Carry};
use ledger::finance::export::{export, ExportFile, ExportFormat, MerchantDay, CSV_COLUMNS};
use ledger::finance::reconcile::{
    reconcile, DifferenceKind, JournalFacts, ReconcileInput, Reconciliation,
    DEFAULT_CARRY_WINDOW_MS,
};
use ledger::finance::report::{summary_text, ReportJson};
use ledger::finance::rows::{rows_of_events, FeeSource, FinanceRow, RowBuilder, RowType};
use ledger::finance::settle::{settle, totals, Settlement};
use ledger::finance::time::parse_day;
use ledger::BeijingDay;
use scenario::{pricing, scenario, P1, P2};

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/finance")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn day(text: &str) -> BeijingDay {
    parse_day(text).unwrap()
}

fn rows() -> Vec<FinanceRow> {
    rows_of_events(&scenario().events(), &pricing()).unwrap()
}

/// (type, Alipay id, amount minor, fee minor, day) of each row, in event order.
fn summary(rows: &[FinanceRow]) -> Vec<(RowType, String, u64, u64, String)> {
    rows.iter()
        .map(|r| {
            let id = r.alipay_id().to_owned();
            (
                r.row_type,
                id,
                r.amount.minor,
                r.fee.minor,
                r.day().to_string(),
            )
        })
        .collect()
}

#[test]
fn rows_are_the_money_movements_with_their_fees_and_days() {
    use RowType::*;
    let rows = rows();
    let d = "2026-01-02".to_owned();
    let d1 = "2026-01-03".to_owned();
    let want = vec![
        (Payment, "U-T1".into(), 10_000, 180, d.clone()),
        (Payment, "U-T2".into(), 1_000, 18, d.clone()),
        (Reversal, "U-T2".into(), 1_000, 18, d.clone()),
        (Cancel, "U-T3".into(), 500, 0, d.clone()),
        // 2500 * 180 bps = 45.
        (Refund, "UR-R1".into(), 2_500, 45, d.clone()),
        // Reported by the query.
        (Payment, "U-T4".into(), 5_000, 100, d.clone()),
        // JPY 1000 * 200 bps = 20.
        (Payment, "U-T5".into(), 1_000, 20, d.clone()),
        // A full refund returns the whole fee charged.
        (Refund, "UR-R2".into(), 5_000, 100, d.clone()),
        (Payment, "U-T7".into(), 3_000, 54, d.clone()),
        (Payment, "U-T8".into(), 4_000, 72, d.clone()),
        (Payment, "U-T9".into(), 6_000, 108, d.clone()),
        (Cancel, "U-T10".into(), 1_500, 0, d.clone()),
        (Payment, "U-T6".into(), 2_000, 40, d.clone()),
        // 800 * 180 bps = 14.4 -> 14.
        (Payment, "U-T11".into(), 800, 14, d1.clone()),
        // Cumulative: fee(2500 + 500) = 54, less the 45 returned = 9.
        (Refund, "UR-R3".into(), 500, 9, d1),
    ];
    assert_eq!(summary(&rows), want);
    let by_id = |id: &str, t: RowType| {
        rows.iter()
            .find(|r| r.alipay_id() == id && r.row_type == t)
            .unwrap()
    };
    assert_eq!(by_id("U-T4", Payment).fee_source, FeeSource::Reported);
    assert_eq!(by_id("U-T1", Payment).fee_source, FeeSource::Computed);
    assert!(
        by_id("U-T3", Cancel).confirmed,
        "Alipay gave T3 a trade number"
    );
    assert!(!by_id("U-T10", Cancel).confirmed, "Alipay never named T10");
    let r1 = by_id("UR-R1", Refund);
    assert_eq!(r1.partner_refund_id.as_deref(), Some("R1"));
    assert_eq!(r1.txn.partner_trans_id, "T1");
    assert_eq!(r1.alipay_trans_id.as_deref(), Some("A-T1"));
    assert_eq!(r1.remark, "damaged");
}

#[test]
fn without_a_fee_rate_fees_are_unknown_except_what_events_report() {
    let rows = rows_of_events(
        &scenario().events(),
        &ledger::finance::pricing::Pricing::new(),
    )
    .unwrap();
    for r in &rows {
        let want = match (r.row_type, r.alipay_id()) {
            (RowType::Cancel, _) => FeeSource::Computed,
            (_, "U-T4") => FeeSource::Reported,
            // The full refund of T4 returns the rest of its reported fee.
            (_, "UR-R2") => FeeSource::Computed,
            _ => FeeSource::Unknown,
        };
        assert_eq!(r.fee_source, want, "{:?} {}", r.row_type, r.alipay_id());
        if want == FeeSource::Unknown {
            assert_eq!(r.fee.minor, 0);
        }
    }
}

#[test]
fn events_out_of_seq_order_or_that_do_not_fold_are_errors() {
    let mut events = scenario().events();
    events[5].seq = events[4].seq;
    let pricing = pricing();
    let err = rows_of_events(&events, &pricing).unwrap_err();
    assert!(err.to_string().contains("seq order"), "{err}");
    let mut events = scenario().events();
    events.remove(0); // T1's PayReceived: its PaySent starts nothing.
    let err = rows_of_events(&events, &pricing).unwrap_err();
    assert!(err.to_string().contains("does not apply"), "{err}");
}

fn export_of(format: ExportFormat, d: &str) -> Vec<ExportFile> {
    let pricing = pricing().with_rate(*b"USD", Rate::parse("7.10650000").unwrap());
    export(format, day(d), &rows(), &pricing)
}

#[test]
fn alipay_transactions_export_equals_the_expected_files() {
    let files = export_of(ExportFormat::AlipayTransactions, "2026-01-02");
    let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "2088101122136241_fptrade_20260102.csv",
            "2088202233347352_fptrade_20260102.csv"
        ]
    );
    for f in &files {
        assert_eq!(
            f.contents,
            fixture(&format!("expected_{}", f.name)),
            "{}",
            f.name
        );
        // And it parses with the parser reconciliation uses.
        let parsed = parse_transactions(f.contents.as_bytes()).unwrap();
        assert_eq!(parsed.day, day("2026-01-02"));
    }
}

#[test]
fn alipay_settlement_export_equals_the_expected_files() {
    let files = export_of(ExportFormat::AlipaySettlement, "2026-01-02");
    let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "2088101122136241_settle_20260102.csv",
            "2088202233347352_settle_20260102.csv"
        ]
    );
    for f in &files {
        assert_eq!(
            f.contents,
            fixture(&format!("expected_{}", f.name)),
            "{}",
            f.name
        );
    }
}

/// A strict RFC 4180 reader (CRLF line ends), independent of the writer.
fn read_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                c => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => quoted = true,
            ',' => record.push(std::mem::take(&mut field)),
            '\r' => {
                assert_eq!(chars.next(), Some('\n'), "CR without LF");
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            '\n' => panic!("bare LF"),
            c => field.push(c),
        }
    }
    assert!(
        field.is_empty() && record.is_empty(),
        "last record not terminated"
    );
    records
}

#[test]
fn csv_and_json_exports_parse_back_to_the_rows() {
    let rows = rows();
    let csv = export_of(ExportFormat::Csv, "2026-01-02");
    let names: Vec<&str> = csv.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        ["M1_20260102.csv", "M2_20260102.csv", "M3_20260102.csv"]
    );
    let mut seen = 0;
    for f in &csv {
        let records = read_csv(&f.contents);
        assert_eq!(records[0], CSV_COLUMNS);
        for rec in &records[1..] {
            assert_eq!(rec.len(), CSV_COLUMNS.len());
            let col = |name: &str| &rec[CSV_COLUMNS.iter().position(|c| *c == name).unwrap()];
            let seq: u64 = col("seq").parse().unwrap();
            let row = rows.iter().find(|r| r.seq == seq).unwrap();
            assert_eq!(col("merchant"), &row.txn.merchant);
            assert_eq!(col("type"), row.row_type.name());
            assert_eq!(
                col("amount").replace('.', "").parse::<u64>().unwrap(),
                row.amount.minor
            );
            assert_eq!(
                col("fee").replace('.', "").parse::<u64>().unwrap(),
                row.fee.minor
            );
            assert_eq!(col("upstream_trans_id"), &row.upstream_trans_id);
            assert_eq!(col("remark"), &row.remark);
            seen += 1;
        }
    }
    assert_eq!(
        seen, 13,
        "every row of 2026-01-02, unconfirmed cancel included"
    );
    let json = export_of(ExportFormat::Json, "2026-01-02");
    let mut seen = 0;
    for f in &json {
        let doc: MerchantDay = serde_json::from_str(&f.contents).unwrap();
        assert_eq!(doc.version, 1);
        assert_eq!(doc.day, "2026-01-02");
        assert_eq!(f.name, format!("{}_20260102.json", doc.merchant));
        for v in &doc.rows {
            let row = rows.iter().find(|r| r.seq == v.seq).unwrap();
            assert_eq!(doc.merchant, row.txn.merchant);
            assert_eq!(v.amount_minor, row.amount.minor);
            assert_eq!(v.fee_minor, row.fee.minor);
            assert_eq!(v.row_type, row.row_type.name());
            assert_eq!(v.confirmed, row.confirmed);
            seen += 1;
        }
    }
    assert_eq!(seen, 13);
}

#[test]
fn csv_quotes_and_defuses_free_text() {
    let mut s = scenario::Scenario::default();
    let t = scenario::key("M,1", "T\"1");
    s.pay(
        &t,
        P1,
        scenario::usd(100),
        scenario::bj("2026-01-02 10:00:00"),
    );
    s.refund(
        &t,
        "R1",
        scenario::usd(100),
        Some("=HYPERLINK(\"x\")"),
        scenario::bj("2026-01-02 11:00:00"),
    );
    let rows = rows_of_events(&s.events(), &pricing()).unwrap();
    let files = export(ExportFormat::Csv, day("2026-01-02"), &rows, &pricing());
    assert_eq!(files[0].name, "M%2C1_20260102.csv");
    let records = read_csv(&files[0].contents);
    assert_eq!(records[1][1], "M,1");
    assert_eq!(records[1][2], "T\"1");
    assert_eq!(records[2][19], "'=HYPERLINK(\"x\")");
}

struct Books {
    rows: Vec<FinanceRow>,
    facts_p1: JournalFacts,
    facts_p2: JournalFacts,
}

fn books() -> Books {
    let pricing = pricing();
    let mut builder = RowBuilder::new(&pricing);
    let rows = builder.push_all(&scenario().events()).unwrap();
    let facts_p1 = JournalFacts::build(P1, builder.states(), &rows);
    let facts_p2 = JournalFacts::build(P2, builder.states(), &rows);
    Books {
        rows,
        facts_p1,
        facts_p2,
    }
}

fn alipay(partner: &str, d: &str) -> AlipayFile {
    let name = format!("alipay_{partner}_fptrade_{}.csv", d.replace('-', ""));
    parse_transactions(fixture(&name).as_bytes()).unwrap()
}

fn run(books: &Books, partner: &str, d: &str, carried_in: Carry) -> Reconciliation {
    let file = alipay(partner, d);
    let facts = if partner == P1 {
        &books.facts_p1
    } else {
        &books.facts_p2
    };
    reconcile(ReconcileInput {
        day: day(d),
        journal_rows: &books.rows,
        alipay: &file,
        carried_in,
        facts,
        carry_window_ms: DEFAULT_CARRY_WINDOW_MS,
        carry_out: true,
    })
}

/// (kind, Partner_transaction_id, type) of each difference.
fn found(rec: &Reconciliation) -> Vec<(DifferenceKind, String, RowType)> {
    rec.differences
        .iter()
        .map(|d| {
            let item = d.item().unwrap();
            (d.kind, item.id.clone(), item.row_type)
        })
        .collect()
}

#[test]
fn reconcile_finds_exactly_the_planted_differences_and_carries_the_midnight_pay() {
    use DifferenceKind::*;
    let books = books();
    let p1 = run(&books, P1, "2026-01-02", Carry::default());
    assert_eq!(
        found(&p1),
        vec![
            (MissingAtAlipay, "U-T7".into(), RowType::Payment),
            (MissingInJournal, "X-EXTRA".into(), RowType::Payment),
            (AmountMismatch, "U-T8".into(), RowType::Payment),
            (FeeMismatch, "U-T9".into(), RowType::Payment),
        ]
    );
    // T1, T2, T2's reversal, T3's cancel, R1, T8, T9.
    assert_eq!(p1.matched, 7);
    assert_eq!(p1.unconfirmed_cancels.len(), 1, "T10 is not a difference");
    assert_eq!(p1.carried_out, Carry::default());
    let p2 = run(&books, P2, "2026-01-02", Carry::default());
    assert_eq!(
        found(&p2),
        vec![(StatusMismatch, "U-T5".into(), RowType::Reversal)]
    );
    assert!(
        p2.differences[0].detail.contains("Paid"),
        "{}",
        p2.differences[0].detail
    );
    // The pay at 23:59:58 whose Alipay row is on the next day is carried, not missing.
    let carried: Vec<&str> = p2
        .carried_out
        .journal
        .iter()
        .map(|i| i.id.as_str())
        .collect();
    assert_eq!(carried, ["U-T6"]);
    assert!(p2.carried_out.alipay.is_empty());
    // D+1: the carried pay matches Alipay's row; both partners are clean.
    let p2_next = run(&books, P2, "2026-01-03", p2.carried_out.clone());
    assert!(p2_next.is_clean(), "{}", summary_text(&p2_next));
    assert_eq!(p2_next.matched, 1);
    assert_eq!(p2_next.carried_out, Carry::default());
    let p1_next = run(&books, P1, "2026-01-03", p1.carried_out.clone());
    assert!(p1_next.is_clean(), "{}", summary_text(&p1_next));
    assert_eq!(p1_next.matched, 2);
    // Without the carry, D+1 would report Alipay's row of the pay as unexplained.
    let no_carry = run(&books, P2, "2026-01-03", Carry::default());
    assert_eq!(
        found(&no_carry),
        vec![(StatusMismatch, "U-T6".into(), RowType::Payment)]
    );
}

#[test]
fn without_carrying_out_the_midnight_pay_is_reported_at_once() {
    let books = books();
    let file = alipay(P2, "2026-01-02");
    let rec = reconcile(ReconcileInput {
        day: day("2026-01-02"),
        journal_rows: &books.rows,
        alipay: &file,
        carried_in: Carry::default(),
        facts: &books.facts_p2,
        carry_window_ms: DEFAULT_CARRY_WINDOW_MS,
        carry_out: false,
    });
    assert_eq!(
        found(&rec),
        vec![
            (
                DifferenceKind::MissingAtAlipay,
                "U-T6".into(),
                RowType::Payment
            ),
            (
                DifferenceKind::StatusMismatch,
                "U-T5".into(),
                RowType::Reversal
            ),
        ]
    );
    assert_eq!(rec.carried_out, Carry::default());
}

#[test]
fn the_amount_mismatch_names_both_amounts_and_the_fee_mismatch_both_fees() {
    let books = books();
    let p1 = run(&books, P1, "2026-01-02", Carry::default());
    let detail = |kind| &p1.of_kind(kind).next().unwrap().detail;
    assert_eq!(
        detail(DifferenceKind::AmountMismatch),
        "amount: journal 40.00 USD, Alipay 41.00 USD; fee: journal 0.72, Alipay 0.74"
    );
    assert_eq!(
        detail(DifferenceKind::FeeMismatch),
        "fee: journal 1.08, Alipay 1.00"
    );
}

/// A fresh folder under the system's temporary folder, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path =
            std::env::temp_dir().join(format!("ledger-finance-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn carried_items_survive_the_state_file_and_match_the_next_day() {
    let dir = TempDir::new("carry");
    let books = books();
    for partner in [P1, P2] {
        let before = load_carry(&dir.0, day("2026-01-01"), partner).unwrap();
        assert_eq!(before, Carry::default(), "no file yet: nothing carried");
        let rec = run(&books, partner, "2026-01-02", before);
        save_carry(&dir.0, day("2026-01-02"), partner, &rec.carried_out).unwrap();
    }
    let path = dir.0.join("carry-20260102.json");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"U-T6\""), "{text}");
    for partner in [P1, P2] {
        let carried = load_carry(&dir.0, day("2026-01-02"), partner).unwrap();
        let rec = run(&books, partner, "2026-01-03", carried);
        assert!(rec.is_clean(), "{}", summary_text(&rec));
    }
    std::fs::write(&path, "{\"version\":9,\"day\":\"x\",\"partners\":{}}").unwrap();
    let err = load_carry(&dir.0, day("2026-01-02"), P2).unwrap_err();
    assert!(err.to_string().contains("version 9"), "{err}");
}

#[test]
fn the_json_report_counts_and_totals_by_kind() {
    let books = books();
    let p1 = run(&books, P1, "2026-01-02", Carry::default());
    let json = serde_json::to_string(&ReportJson::of(&p1)).unwrap();
    let back: ReportJson = serde_json::from_str(&json).unwrap();
    assert!(!back.clean);
    assert_eq!(back.counts.differences, 4);
    assert_eq!(back.counts.journal_rows, 9);
    assert_eq!(back.counts.alipay_rows, 8);
    let s = &back.summary[&DifferenceKind::AmountMismatch];
    assert_eq!((s.count, s.totals["USD"].as_str()), (1, "40.00"));
    let s = &back.summary[&DifferenceKind::MissingInJournal];
    assert_eq!((s.count, s.totals["USD"].as_str()), (1, "12.00"));
    assert_eq!(back.summary[&DifferenceKind::TradeIdMismatch].count, 0);
    let text = summary_text(&p1);
    assert!(
        text.starts_with("Reconciliation of 2026-01-02 for partner 2088101122136241: DIFFERENCES")
    );
}

#[test]
fn settlement_by_hand() {
    let s = settle(&rows(), day("2026-01-02"));
    let get = |m: &str, c: &str| {
        s.iter()
            .find(|x| x.merchant == m && x.currency == c)
            .unwrap()
    };
    // M1 USD: payments T1 100.00, T2 10.00, T7 30.00, T9 60.00 = 200.00; fees 1.80 + 0.18 +
    // 0.54 + 1.08 = 3.60. Refund R1 25.00 returns 0.45; reversal T2 10.00 returns 0.18.
    // Net = 200.00 - 25.00 - 10.00 - (3.60 - 0.63) = 162.03.
    let m1 = get("M1", "USD");
    assert_eq!(
        (m1.payments, m1.refunds, m1.reversals, m1.cancels),
        (4, 1, 1, 0)
    );
    assert_eq!(m1.gross_minor, 10_000 + 1_000 + 3_000 + 6_000);
    assert_eq!(m1.fees_charged_minor, 180 + 18 + 54 + 108);
    assert_eq!(m1.fees_returned_minor, 45 + 18);
    assert_eq!((m1.refunded_minor, m1.reversed_minor), (2_500, 1_000));
    assert_eq!(m1.net_minor(), 16_203);
    // M2 USD: payments T4 50.00 (1.00), T8 40.00 (0.72) = 90.00; refund R2 50.00 returns 1.00;
    // cancels T3 and T10. Net = 90.00 - 50.00 - (1.72 - 1.00) = 39.28.
    let m2 = get("M2", "USD");
    assert_eq!((m2.payments, m2.refunds, m2.cancels), (2, 1, 2));
    assert_eq!(m2.net_minor(), 3_928);
    // M3 JPY: T5 1000 less fee 20 = 980. M3 USD: T6 20.00 less 0.40 = 19.60.
    assert_eq!(get("M3", "JPY").net_minor(), 980);
    assert_eq!(get("M3", "USD").net_minor(), 1_960);
    let t = totals(&s);
    let usd = t.iter().find(|x| x.currency == "USD").unwrap();
    assert_eq!(usd.net_minor(), 16_203 + 3_928 + 1_960);
    assert_eq!(usd.gross_minor, 20_000 + 9_000 + 2_000);
}

/// Σ of a column of the settlement export's rows of type `kind`, per currency, minor units.
fn column_total(files: &[ExportFile], column: &str, kind: &str, currency: &str) -> u64 {
    let mut total = 0;
    for f in files {
        let mut lines = f.contents.lines();
        let header: Vec<&str> = lines.next().unwrap().split('|').collect();
        let at = |name: &str| header.iter().position(|h| *h == name).unwrap();
        for line in lines {
            let v: Vec<&str> = line.split('|').collect();
            if v[at("Type")] == kind && v[at("Currency")] == currency {
                total += v[at(column)].replace('.', "").parse::<u64>().unwrap();
            }
        }
    }
    total
}

#[test]
fn settlement_ties_out_to_the_settlement_export() {
    let files = export_of(ExportFormat::AlipaySettlement, "2026-01-02");
    let t: Vec<Settlement> = totals(&settle(&rows(), day("2026-01-02")));
    assert_eq!(t.len(), 2);
    for s in &t {
        let c = s.currency.as_str();
        let sum = |col, kind| column_total(&files, col, kind, c);
        assert_eq!(s.gross_minor, sum("Amount", "P"), "{c}");
        assert_eq!(
            s.refunded_minor + s.reversed_minor,
            sum("Amount", "R"),
            "{c}"
        );
        let fees = i128::from(sum("Fee", "P")) - i128::from(sum("Fee", "R"));
        assert_eq!(s.fees_minor(), fees, "{c}");
        let net = i128::from(sum("Settlement", "P")) - i128::from(sum("Settlement", "R"));
        assert_eq!(s.net_minor(), net, "{c}");
    }
}

#[test]
fn rows_follow_the_fold_through_unknown_and_failed_results() {
    use ledger::{CancelAction, EventBody, Outcome, RefundKey, TradeStatus};
    use scenario::{bj, key, usd, Scenario};
    let mut s = Scenario::default();
    // A refund answered UNKNOWN, then SUCCESS on retry: one REFUND, at the success.
    let t = key("M1", "U1");
    s.pay(&t, P1, usd(1_000), bj("2026-01-02 09:00:00"));
    s.refund(&t, "R-ok", usd(400), None, bj("2026-01-02 09:10:00"));
    let unknown_then_ok = [Outcome::Unknown, Outcome::Success];
    let k = RefundKey::new("M1", "R-late");
    s.drafts.push((
        t.clone(),
        ledger::Draft::new(
            bj("2026-01-02 09:19:00"),
            EventBody::RefundIntent {
                refund: k.clone(),
                upstream_refund_id: "UR-late".into(),
                amount: usd(100),
                fingerprint: [3; 32],
                reason: None,
            },
        ),
    ));
    for (i, result) in unknown_then_ok.into_iter().enumerate() {
        let at = bj("2026-01-02 09:20:00") + i64::try_from(i).unwrap() * 60_000;
        let body = EventBody::RefundResult {
            refund: k.clone(),
            result,
            fee: None,
            error_code: None,
        };
        s.drafts.push((t.clone(), ledger::Draft::new(at, body)));
    }
    // A pay resolved as closed by a query moves nothing; a cancel after a query that found no
    // trade is an unconfirmed CANCEL.
    let closed = key("M1", "U2");
    s.receive(&closed, P1, usd(700), bj("2026-01-02 10:00:00"));
    s.outcome(&closed, Outcome::Unknown, None, bj("2026-01-02 10:00:05"));
    s.query(
        &closed,
        TradeStatus::TradeClosed,
        None,
        None,
        bj("2026-01-02 10:00:10"),
    );
    let never = key("M1", "U3");
    s.receive(&never, P1, usd(900), bj("2026-01-02 11:00:00"));
    s.outcome(&never, Outcome::Unknown, None, bj("2026-01-02 11:00:05"));
    s.query(
        &never,
        TradeStatus::NotExist,
        None,
        None,
        bj("2026-01-02 11:00:10"),
    );
    s.cancel(&never, CancelAction::Close, bj("2026-01-02 11:01:00"));
    let rows = rows_of_events(&s.events(), &pricing()).unwrap();
    let got: Vec<(RowType, &str, String)> = rows
        .iter()
        .map(|r| {
            let t = ledger::finance::time::format_beijing(r.at_ms);
            (r.row_type, r.alipay_id(), t)
        })
        .collect();
    assert_eq!(
        got,
        [
            (RowType::Payment, "U-U1", "2026-01-02 09:00:00".to_owned()),
            (RowType::Refund, "UR-R-ok", "2026-01-02 09:10:00".to_owned()),
            (RowType::Refund, "UR-late", "2026-01-02 09:21:00".to_owned()),
            (RowType::Cancel, "U-U3", "2026-01-02 11:01:00".to_owned()),
        ]
    );
    assert!(!rows[3].confirmed);
    // Cumulative fees: fee(400) = 7.2 -> 7; fee(500) = 9 less 7 = 2.
    assert_eq!((rows[1].fee.minor, rows[2].fee.minor), (7, 2));
}
