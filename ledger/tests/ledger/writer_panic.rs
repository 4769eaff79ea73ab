//! A panic in the writer thread (a money invariant asserted on the write path) marks the journal
//! failed and aborts the process (house style rule 7), and nothing acknowledged before is lost.
//!
//! The panic is provoked through a real assertion, not a test hook: the parent swaps two
//! transactions' stored snapshots with raw RocksDB, so the writer, reading one back for the next
//! append, finds a snapshot stored under another key. Since the process aborts, the appending
//! side runs in a child: this test binary run again with [`CHILD_ENV`] set, filtered to
//! [`writer_panic_child_process`] (as in [`crate::crash`]). Several threads append and print
//! each acknowledgement while the child appends to the damaged transaction; the parent checks
//! the child died of SIGABRT from the writer's assertion, then reopens with strict WAL recovery
//! and finds every acknowledged append, and nothing of the append that panicked.

use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::crash::{ack, parse_ack};
use ledger::tables::{Table, Txns};
use ledger::{EventBody, Journal, JournalOptions, TxnKey, TxnState};

const CHILD_ENV: &str = "LEDGER_WRITER_PANIC_CHILD_DIR";
/// Appending threads in the child, still appending when the writer panics.
const CHILD_THREADS: u64 = 4;
/// Acknowledgements the child waits for before it appends to the damaged transaction.
const ACKS_BEFORE_PANIC: u64 = 20;
/// Bound on that wait, and on how long the child lives if the writer does not abort it.
const CHILD_WAIT: Duration = Duration::from_secs(10);
/// What `abort()` kills the process with (Linux and every other Unix).
const SIGABRT: i32 = 6;
/// What the writer asserts about a snapshot it reads back (`writer.rs`).
const ASSERTION: &str = "snapshot stored under another key";

fn victim() -> TxnKey {
    TxnKey::new("m", "victim")
}

fn other() -> TxnKey {
    TxnKey::new("m", "other")
}

/// What a child thread appends for (thread, n).
fn child_txn(t: u64, n: u64) -> (TxnKey, u64) {
    (TxnKey::new(format!("a{t}"), n.to_string()), 100 + n)
}

#[test]
fn writer_panic_child_process() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return; // Only does something when the parent runs it.
    };
    let journal = Arc::new(Journal::open(&dir, JournalOptions::default()).unwrap());
    let acked = Arc::new(AtomicU64::new(0));
    for t in 0..CHILD_THREADS {
        let journal = Arc::clone(&journal);
        let acked = Arc::clone(&acked);
        std::thread::spawn(move || {
            for n in 0.. {
                let (txn, minor) = child_txn(t, n);
                // An error means the writer is gone: stop quietly, the abort is on its way.
                let Ok(a) = journal
                    .append(txn.clone(), paid_drafts(&txn, minor, T0_MS))
                    .wait()
                else {
                    return;
                };
                ack(&txn, "pay", &a.seqs);
                acked.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
    let started = Instant::now();
    while acked.load(Ordering::SeqCst) < ACKS_BEFORE_PANIC && started.elapsed() < CHILD_WAIT {
        std::thread::sleep(Duration::from_millis(1));
    }
    let note = EventBody::OperatorAction {
        who: "ops-1".into(),
        why: "provoke the writer's assertion".into(),
        action: "note".into(),
    };
    let result = journal.append(victim(), vec![draft(100, note)]).wait();
    // The writer aborts the process; still being here after the wait is the failure.
    std::thread::sleep(CHILD_WAIT);
    eprintln!("not aborted: {result:?}");
}

/// Appends the victim and another transaction, then swaps their stored snapshots.
fn damaged_journal() -> tempfile::TempDir {
    let (dir, journal) = temp_journal();
    for txn in [victim(), other()] {
        journal
            .append(txn.clone(), paid_drafts(&txn, 500, T0_MS))
            .wait()
            .unwrap();
    }
    drop(journal);
    let db = rocksdb::DB::open_cf(
        &rocksdb::Options::default(),
        dir.path(),
        ledger::tables::COLUMN_FAMILIES,
    )
    .unwrap();
    let cf = db.cf_handle(Txns::NAME).unwrap();
    let (a, b) = (
        Txns::encode_key(&victim()).unwrap(),
        Txns::encode_key(&other()).unwrap(),
    );
    let (va, vb) = (
        db.get_cf(cf, &a).unwrap().unwrap(),
        db.get_cf(cf, &b).unwrap().unwrap(),
    );
    db.put_cf(cf, &a, vb).unwrap();
    db.put_cf(cf, &b, va).unwrap();
    dir
}

#[test]
fn a_writer_panic_aborts_the_process_and_loses_nothing_acknowledged() {
    let dir = damaged_journal();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "writer_panic::writer_panic_child_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        // A core file, where the system writes one, lands in the temporary folder.
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.signal(),
        Some(SIGABRT),
        "the child must die by abort(); status {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    assert!(
        stderr.contains("'ledger-writer'") && stderr.contains(ASSERTION),
        "the abort must come from the writer's assertion:\n{stderr}"
    );
    let acks: Vec<_> = stdout.lines().filter_map(parse_ack).collect();
    assert!(
        u64::try_from(acks.len()).unwrap() >= ACKS_BEFORE_PANIC,
        "{} acknowledgements",
        acks.len()
    );

    // No torn write to forgive: the writer panicked before writing its group.
    let journal = Journal::open(dir.path(), JournalOptions::default()).unwrap();
    let report = journal.verify().unwrap();
    assert!(report.is_ok(), "{report:?}");
    for a in &acks {
        let history = journal.events_of(&a.txn).unwrap();
        let seqs: Vec<u64> = history.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, a.seqs, "acknowledged append of {:?} lost", a.txn);
        let (t, n) = (
            a.txn.merchant.trim_start_matches('a').parse().unwrap(),
            a.txn.partner_trans_id.parse().unwrap(),
        );
        let (txn, minor) = child_txn(t, n);
        let bodies: Vec<_> = history.iter().map(|e| (e.at_ms, &e.body)).collect();
        let want = paid_drafts(&txn, minor, T0_MS);
        let want: Vec<_> = want.iter().map(|d| (d.at_ms, &d.body)).collect();
        assert_eq!(bodies, want, "acknowledged events of {txn:?} changed");
        let folded = TxnState::replay(&history).unwrap();
        assert_eq!(journal.txn(&a.txn).unwrap(), Some(folded));
    }
    assert_eq!(
        journal.events_of(&victim()).unwrap().len(),
        3,
        "nothing of the append that panicked was written"
    );
}
