//! The `ledger` binary against a real journal in a temporary folder: the finance scenario is
//! appended through `Journal::append`, then every subcommand is run as a process and judged by
//! its exit code, its output and the files it writes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "fixtures/finance/scenario.rs"]
mod scenario;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ledger::finance::report::ReportJson;
use ledger::finance::rows::rows_of_events;
use ledger::finance::scan::scan;
use ledger::finance::time::parse_day;
use ledger::{Journal, JournalOptions};
use scenario::{pricing, scenario, P1, P2};

/// A fresh folder under the system's temporary folder, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("ledger-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A journal holding the scenario, one append per event (so seqs are the scenario's).
fn journal(dir: &TempDir) -> PathBuf {
    let path = dir.path("journal");
    let journal = Journal::open(&path, JournalOptions::default()).unwrap();
    for (txn, draft) in scenario().drafts {
        journal.append(txn, vec![draft]).wait().unwrap();
    }
    drop(journal);
    path
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/finance")
        .join(name)
}

fn ledger(journal: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ledger"))
        .arg("--journal")
        .arg(journal)
        .args(args)
        .output()
        .unwrap()
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const FEES: [&str; 4] = [
    "--fee-rate",
    "2088101122136241=180",
    "--fee-rate",
    "2088202233347352=200",
];

#[test]
fn the_journal_gives_the_same_rows_as_the_pure_fold() {
    let dir = TempDir::new("rows");
    let path = journal(&dir);
    let ro = Journal::open_read_only(&path).unwrap();
    let pricing = pricing();
    let from = parse_day("2026-01-01").unwrap();
    let mut ticks = Vec::new();
    let scanned = scan(&ro, &pricing, from, 10, |n| ticks.push(n)).unwrap();
    assert_eq!(
        ticks,
        [10, 20, 30, 40],
        "a progress call every 10 of 47 events"
    );
    let want = rows_of_events(&scenario().events(), &pricing).unwrap();
    assert_eq!(scanned.rows, want);
    // Rows before `from_day` are not kept.
    let later = scan(&ro, &pricing, parse_day("2026-01-03").unwrap(), 0, |_| {}).unwrap();
    assert_eq!(later.rows.len(), 2);
    assert_eq!(
        scanned.events,
        u64::try_from(scenario().drafts.len()).unwrap()
    );
}

#[test]
fn verify_reports_progress_as_it_walks() {
    let dir = TempDir::new("verify-progress");
    let path = journal(&dir);
    let ro = Journal::open_read_only(&path).unwrap();
    let mut ticks = Vec::new();
    let report = ro.verify_with_progress(10, |n| ticks.push(n)).unwrap();
    assert_eq!(
        ticks,
        [10, 20, 30, 40],
        "a progress call every 10 of 47 events"
    );
    assert_eq!(report, ro.verify().unwrap(), "the same walk as verify");
    assert_eq!(report.checked, 47);
}

#[test]
fn verify_show_export_and_settle() {
    let dir = TempDir::new("commands");
    let path = journal(&dir);
    let out = ledger(&path, &["verify"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let n = scenario().drafts.len();
    let head = Journal::open_read_only(&path)
        .unwrap()
        .chain_head()
        .unwrap();
    assert_eq!(
        text(&out.stdout),
        format!(
            "chain verifies: {n} events, last good seq {n}, head hash {}\n",
            ledger::error::hex(&head.hash)
        ),
        "the head's hash is printed for anchoring"
    );

    let out = ledger(&path, &["show", "M1", "T1"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(shown.contains("M1 / T1: Paid"), "{shown}");
    assert!(
        shown.contains("REFUND UR-R1 25.00 USD fee 0.00 USD (unknown)"),
        "{shown}"
    );
    assert!(
        shown.contains("RefundIntent R1 25.00 USD upstream UR-R1"),
        "{shown}"
    );
    let out = ledger(&path, &["show", "M1", "nope"]);
    assert_eq!(code(&out), 8);

    let exports = dir.path("out");
    for format in ["alipay-transactions", "alipay-settlement"] {
        let mut args = vec!["export", "--day", "2026-01-02", "--format", format];
        args.extend([
            "--out",
            exports.to_str().unwrap(),
            "--rate",
            "USD=7.10650000",
        ]);
        args.extend(FEES);
        let out = ledger(&path, &args);
        assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    }
    for name in [
        "2088101122136241_fptrade_20260102.csv",
        "2088202233347352_fptrade_20260102.csv",
        "2088101122136241_settle_20260102.csv",
        "2088202233347352_settle_20260102.csv",
    ] {
        let got = std::fs::read_to_string(exports.join(name)).unwrap();
        let want = std::fs::read_to_string(fixture(&format!("expected_{name}"))).unwrap();
        assert_eq!(got, want, "{name}");
    }
    let mut args = vec!["settle", "--day", "2026-01-02"];
    args.extend(FEES);
    let out = ledger(&path, &args);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let settled = text(&out.stdout);
    // M1 USD net 162.03 (see the settlement test in finance.rs).
    let m1 = settled.lines().find(|l| l.starts_with("M1 ")).unwrap();
    assert!(m1.ends_with("162.03"), "{settled}");
}

fn reconcile(path: &Path, day: &str, file: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "reconcile",
        "--day",
        day,
        "--alipay-file",
        file.to_str().unwrap(),
    ];
    args.extend(FEES);
    args.extend(extra);
    ledger(path, &args)
}

#[test]
fn reconcile_exits_non_zero_with_the_planted_differences_and_zero_once_they_are_explained() {
    let dir = TempDir::new("reconcile");
    let path = journal(&dir);
    let state = dir.path("state");
    let state_arg = state.to_str().unwrap().to_owned();
    let report = dir.path("report.json");
    let report_arg = report.to_str().unwrap().to_owned();
    let d = |p: &str, day: &str| fixture(&format!("alipay_{p}_fptrade_{day}.csv"));

    let extra = ["--state-dir", &state_arg, "--json", &report_arg];
    let out = reconcile(&path, "2026-01-02", &d(P1, "20260102"), &extra);
    assert_eq!(code(&out), 1, "{}", text(&out.stderr));
    let json: ReportJson =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let kinds: Vec<String> = json
        .differences
        .iter()
        .map(|d| format!("{:?} {}", d.kind, d.partner_transaction_id))
        .collect();
    assert_eq!(
        kinds,
        [
            "MissingAtAlipay U-T7",
            "MissingInJournal X-EXTRA",
            "AmountMismatch U-T8",
            "FeeMismatch U-T9"
        ]
    );
    assert!(text(&out.stdout).contains("DIFFERENCES"));

    let out = reconcile(&path, "2026-01-02", &d(P2, "20260102"), &extra);
    assert_eq!(code(&out), 1, "{}", text(&out.stderr));
    let json: ReportJson =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(json.counts.differences, 1);
    assert_eq!(json.carried_out.journal[0].partner_transaction_id, "U-T6");

    // The next day: the carried pay matches; both partners are clean.
    for p in [P2, P1] {
        let out = reconcile(&path, "2026-01-03", &d(p, "20260103"), &extra);
        assert_eq!(code(&out), 0, "{}{}", text(&out.stdout), text(&out.stderr));
        assert!(text(&out.stdout).contains("CLEAN"));
    }

    // Our own export of the day reconciles clean (no state folder: nothing carried).
    let clean = fixture(&format!("expected_{P1}_fptrade_20260102.csv"));
    let out = reconcile(&path, "2026-01-02", &clean, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out.stdout));
}

#[test]
fn wrong_paths_and_malformed_files_have_their_own_exit_codes() {
    let dir = TempDir::new("errors");
    let path = journal(&dir);
    let out = ledger(&dir.path("nowhere"), &["verify"]);
    assert_eq!(code(&out), 3);
    assert!(
        text(&out.stderr).contains("no journal folder"),
        "{}",
        text(&out.stderr)
    );
    let empty = dir.path("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = ledger(&empty, &["verify"]);
    assert_eq!(code(&out), 3, "{}", text(&out.stderr));

    let bad = dir.path("bad.csv");
    let good =
        std::fs::read_to_string(fixture(&format!("alipay_{P1}_fptrade_20260102.csv"))).unwrap();
    std::fs::write(&bad, good.replacen("|PAYMENT|", "|PAID|", 1)).unwrap();
    let out = reconcile(&path, "2026-01-02", &bad, &[]);
    assert_eq!(code(&out), 5);
    assert!(
        text(&out.stderr).contains("line 3: unknown Transaction_type `PAID`"),
        "{}",
        text(&out.stderr)
    );
    let other_day = fixture(&format!("alipay_{P1}_fptrade_20260103.csv"));
    let out = reconcile(&path, "2026-01-02", &other_day, &[]);
    assert_eq!(code(&out), 5);
    let out = reconcile(&path, "2026-01-02", &dir.path("absent.csv"), &[]);
    assert_eq!(code(&out), 7);
    let out = ledger(&path, &["export", "--day", "2026-02-30", "--format", "csv"]);
    assert_eq!(code(&out), 2);
    let out = ledger(&path, &["settle", "--day", "2026-01-02", "--fee-rate", "x"]);
    assert_eq!(code(&out), 2);
}

/// Opens the journal's RocksDB directly, as an attacker or a broken disk would change it.
fn raw_db(path: &Path) -> rocksdb::DB {
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(false);
    rocksdb::DB::open_cf(&opts, path, ledger::tables::COLUMN_FAMILIES).unwrap()
}

#[test]
fn a_damaged_or_incompatible_journal_has_its_own_exit_code() {
    let dir = TempDir::new("damaged");
    let path = journal(&dir);
    {
        let db = raw_db(&path);
        let events = db.cf_handle("events").unwrap();
        let key = 3_u64.to_be_bytes();
        let mut value = db.get_cf(events, key).unwrap().unwrap();
        let middle = value.len() / 2;
        value[middle] ^= 0x01;
        db.put_cf(events, key, value).unwrap();
    }
    let out = ledger(&path, &["verify"]);
    assert_eq!(code(&out), 6, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("event 3"),
        "{}",
        text(&out.stderr)
    );
    let out = ledger(&path, &["settle", "--day", "2026-01-02"]);
    assert_eq!(code(&out), 6, "{}", text(&out.stderr));
    {
        let db = raw_db(&path);
        let meta = db.cf_handle("meta").unwrap();
        let value = ledger::codec::encode_value(&ledger::tables::MetaValue::Format(99)).unwrap();
        db.put_cf(meta, b"format", value).unwrap();
    }
    let out = ledger(&path, &["verify"]);
    assert_eq!(code(&out), 4, "{}", text(&out.stderr));
}
