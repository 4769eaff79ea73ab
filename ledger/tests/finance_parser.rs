//! Alipay's transaction file parser: a table of malformed files with the exact line and reason,
//! and random input that must never panic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ledger::finance::alipay_file::{
    parse_transactions, ParseReason, LINE_BYTES_MAX, TRANSACTION_COLUMNS,
};
use ledger::finance::amount::AmountError;
use ledger::finance::rows::RowType;
use proptest::prelude::*;

const HEADER: &str = "Partner:2088101122136241|Payment_time:2026-01-02|Total_count:2";
const ROW1: &str = "U-T1|A-T1|100.00|1.80|USD|2026-01-02 10:00:05|PAYMENT||5812|Cafe||paymentQrCode|USD|100.00|1.00000000";
const ROW2: &str = "UR-R1|A-T1|25.00|0.45|USD|2026-01-02 12:00:00|REFUND|damaged|5812|Cafe||paymentQrCode|USD|25.00|1.00000000";

fn file(lines: &[&str]) -> String {
    let mut s = lines.join("\n");
    s.push('\n');
    s
}

fn good() -> String {
    file(&[HEADER, TRANSACTION_COLUMNS, ROW1, ROW2])
}

/// The file with `row` in place of the first row (and the count still 2).
fn with_row(row: &str) -> String {
    file(&[HEADER, TRANSACTION_COLUMNS, row, ROW2])
}

fn check(text: &str, line: usize, reason: ParseReason) {
    let err = parse_transactions(text.as_bytes()).unwrap_err();
    assert_eq!((err.line, &err.reason), (line, &reason), "{text}");
}

#[test]
fn a_good_file_parses_field_by_field() {
    let f = parse_transactions(good().as_bytes()).unwrap();
    assert_eq!(f.partner, "2088101122136241");
    assert_eq!(f.day.to_string(), "2026-01-02");
    assert_eq!(f.rows.len(), 2);
    let r = &f.rows[1];
    assert_eq!(r.line, 4);
    assert_eq!(r.row_type, RowType::Refund);
    assert_eq!(r.partner_transaction_id, "UR-R1");
    assert_eq!((r.amount.minor, r.charge.minor), (2_500, 45));
    assert_eq!(r.remark, "damaged");
    assert_eq!(r.order_scene, "paymentQrCode");
    // CRLF line ends, a BOM, trailing empty lines and no final newline are all fine.
    let crlf = format!(
        "\u{feff}{}\r\n\r\n",
        good().trim_end().replace('\n', "\r\n")
    );
    assert_eq!(parse_transactions(crlf.as_bytes()).unwrap(), f);
    assert_eq!(parse_transactions(good().trim_end().as_bytes()).unwrap(), f);
    // A header with no rows.
    let empty = file(&[&HEADER.replace(":2", ":0"), TRANSACTION_COLUMNS]);
    assert!(parse_transactions(empty.as_bytes())
        .unwrap()
        .rows
        .is_empty());
}

#[test]
fn malformed_files_name_the_line_and_the_reason() {
    use ParseReason::*;
    let header = |why: &str| {
        Header(format!(
            "{why}; expected `Partner:{{pid}}|Payment_time:{{yyyy-MM-dd}}|Total_count:{{n}}`"
        ))
    };
    check("", 1, Empty);
    check(
        &good().replacen("Partner:", "Partner=", 1),
        1,
        header("no `Partner:` with a partner id"),
    );
    check(
        &good().replacen("Partner:2088101122136241", "Partner:", 1),
        1,
        header("no `Partner:` with a partner id"),
    );
    check(
        &good().replacen("2026-01-02|", "2026-02-30|", 1),
        1,
        header("no `Payment_time:` with a real date"),
    );
    check(
        &good().replacen("Total_count:2", "Total_count:two", 1),
        1,
        header("no `Total_count:` with a count"),
    );
    check(
        &good().replacen("|Total_count:2", "", 1),
        1,
        header("2 fields instead of 3"),
    );
    check(&file(&[HEADER]), 2, ColumnLine);
    check(&good().replacen("Order_scene", "Scene", 1), 2, ColumnLine);
    check(
        &file(&[HEADER, TRANSACTION_COLUMNS, ROW1]),
        1,
        Count { header: 2, rows: 1 },
    );
    check(
        &file(&[
            HEADER,
            TRANSACTION_COLUMNS,
            ROW1,
            ROW2,
            &ROW2.replace("UR-R1", "UR-R9"),
        ]),
        1,
        Count { header: 2, rows: 3 },
    );
    check(
        &with_row(&format!("{ROW1}|extra")),
        3,
        FieldCount { found: 16 },
    );
    check(&with_row("U-T1|A-T1|100.00"), 3, FieldCount { found: 3 });
    check(&with_row(&ROW1.replacen("U-T1", "", 1)), 3, EmptyId);
    check(
        &with_row(&ROW1.replacen("|USD|2026", "|XXX|2026", 1)),
        3,
        Currency("XXX".into()),
    );
    check(
        &with_row(&ROW1.replacen("100.00|1.80", "100.0|1.80", 1)),
        3,
        Amount {
            column: "Transaction_amount",
            source: AmountError::Decimals {
                text: "100.0".into(),
                want: 2,
                currency: "USD".into(),
            },
        },
    );
    check(
        &with_row(&ROW1.replacen("100.00|1.80", "100.00|-1.80", 1)),
        3,
        Amount {
            column: "Charge_amount",
            source: AmountError::NotDecimal("-1.80".into()),
        },
    );
    check(
        &with_row(&ROW1.replacen("100.00|1.80", "|1.80", 1)),
        3,
        Amount {
            column: "Transaction_amount",
            source: AmountError::Empty,
        },
    );
    check(
        &with_row(&ROW1.replacen("2026-01-02 10:00:05", "2026/01/02 10:00:05", 1)),
        3,
        Time("2026/01/02 10:00:05".into()),
    );
    check(
        &with_row(&ROW1.replacen("10:00:05", "25:00:05", 1)),
        3,
        Time("2026-01-02 25:00:05".into()),
    );
    check(
        &with_row(&ROW1.replacen("PAYMENT", "PAY", 1)),
        3,
        Type("PAY".into()),
    );
    check(
        &file(&[HEADER, TRANSACTION_COLUMNS, ROW1, ROW1]),
        4,
        Duplicate {
            row_type: "PAYMENT",
            id: "U-T1".into(),
            first_line: 3,
        },
    );
    check(
        &file(&[HEADER, TRANSACTION_COLUMNS, ROW1, "", ROW2]),
        4,
        EmptyLine,
    );
    let mut bad_utf8 = file(&[HEADER, TRANSACTION_COLUMNS, ROW1]).into_bytes();
    bad_utf8.extend_from_slice(b"U-\xff\xfe|x\n");
    let err = parse_transactions(&bad_utf8).unwrap_err();
    assert_eq!((err.line, err.reason), (4, NotUtf8));
    let long = format!("{ROW1}{}", " ".repeat(LINE_BYTES_MAX));
    check(
        &with_row(&long),
        3,
        LineTooLong {
            max: LINE_BYTES_MAX,
        },
    );
}

#[test]
fn errors_read_as_line_and_reason() {
    let err = parse_transactions(with_row(&ROW1.replacen("PAYMENT", "REFUNDED", 1)).as_bytes())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 3: unknown Transaction_type `REFUNDED`"
    );
}

/// A valid file's lines with one line replaced, dropped, duplicated or cut short.
fn mutated() -> impl Strategy<Value = String> {
    let lines: Vec<String> = good().lines().map(str::to_owned).collect();
    let n = lines.len();
    (0..n, 0..4_u8, "[ -~|\u{80}-\u{10ff}]{0,40}", 0..200_usize).prop_map(
        move |(at, how, text, cut)| {
            let mut l = lines.clone();
            match how {
                0 => l[at] = text,
                1 => {
                    l.remove(at);
                }
                2 => l.insert(at, l[at].clone()),
                _ => {
                    let line = &l[at];
                    let mut end = cut.min(line.len());
                    while !line.is_char_boundary(end) {
                        end -= 1;
                    }
                    l[at] = line[..end].to_owned();
                }
            }
            l.join("\n")
        },
    )
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse_transactions(&bytes);
    }

    #[test]
    fn random_lines_never_panic(lines in proptest::collection::vec("[ -~]{0,120}", 0..20)) {
        let mut text = String::from(HEADER);
        text.push('\n');
        text.push_str(TRANSACTION_COLUMNS);
        for l in &lines {
            text.push('\n');
            text.push_str(l);
        }
        let _ = parse_transactions(text.as_bytes());
    }

    #[test]
    fn mutated_files_never_panic_and_errors_name_a_real_line(text in mutated()) {
        match parse_transactions(text.as_bytes()) {
            Ok(f) => prop_assert!(f.rows.len() <= 3),
            Err(e) => prop_assert!(e.line >= 1 && e.line <= text.lines().count().max(1) + 1),
        }
    }
}
