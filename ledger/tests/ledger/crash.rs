//! Crash test (INV-1): a child process appends and prints each acknowledgement the moment
//! `append` completes; the parent kills it with SIGKILL at a seeded random moment, reopens, and
//! checks that every acknowledged append is present with its events, the chain verifies, and
//! each stored state equals the fold of its events.
//!
//! The child is this test binary run again with `LEDGER_CRASH_CHILD_DIR` set, filtered to
//! [`crash_child_process`]. Rounds reuse one journal, so later rounds also crash a journal that
//! has been recovered many times. Normal run: [`ROUNDS_DEFAULT`] rounds; long mode:
//! `LEDGER_CRASH_ROUNDS=2000 cargo test -p ledger --release crash -- --nocapture`
//! (`LEDGER_CRASH_SEED` picks another schedule).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use ledger::{
    Draft, Error, Event, Journal, JournalOptions, Outcome, TxnKey, TxnState, WalRecovery,
};

const ROUNDS_DEFAULT: u64 = 100;
const CHILD_ENV: &str = "LEDGER_CRASH_CHILD_DIR";
const ROUND_ENV: &str = "LEDGER_CRASH_CHILD_ROUND";
const CHILD_THREADS: u64 = 4;
/// The child stops by itself after this long if nobody kills it.
const CHILD_LIFETIME: Duration = Duration::from_secs(5);
/// The kill comes this long after spawn (even rounds: covers open and recovery too) or after the
/// first acknowledgement (odd rounds: among appends), uniformly at random.
const KILL_AFTER_MS: std::ops::Range<u64> = 1..100;

/// splitmix64: a tiny seeded generator (no dependency, same schedule on every machine).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn range(&mut self, r: std::ops::Range<u64>) -> u64 {
        r.start + self.next() % (r.end - r.start)
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What the child appends for (round, thread, n): a deterministic function, so the parent can
/// check content, not only presence. Every third transaction gets a refund append next.
fn child_drafts(txn: &TxnKey, n: u64) -> Vec<Draft> {
    let minor = 100 + n % 1000;
    paid_drafts(txn, minor, T0_MS + i64::try_from(n).unwrap() * 1000)
}

fn child_refund(txn: &TxnKey, n: u64) -> Vec<Draft> {
    vec![
        draft(
            5,
            refund_intent(&txn.merchant, &format!("r{}", txn.partner_trans_id), 50, 1),
        ),
        draft(
            6,
            refund_result(
                &txn.merchant,
                &format!("r{}", txn.partner_trans_id),
                if n % 2 == 0 {
                    Outcome::Success
                } else {
                    Outcome::Unknown
                },
            ),
        ),
    ]
}

#[test]
fn crash_child_process() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return; // Only does something when the parent runs it.
    };
    let round = env_u64(ROUND_ENV, 0);
    let journal = Arc::new(Journal::open(&dir, JournalOptions::default()).unwrap());
    let started = Instant::now();
    let threads: Vec<_> = (0..CHILD_THREADS)
        .map(|t| {
            let journal = Arc::clone(&journal);
            std::thread::spawn(move || {
                let mut n = 0u64;
                while started.elapsed() < CHILD_LIFETIME {
                    let txn = TxnKey::new(format!("m{t}"), format!("{round}-{n}"));
                    let a = journal
                        .append(txn.clone(), child_drafts(&txn, n))
                        .wait()
                        .unwrap();
                    ack(&txn, "pay", &a.seqs);
                    if n % 3 == 0 {
                        let r = journal
                            .append(txn.clone(), child_refund(&txn, n))
                            .wait()
                            .unwrap();
                        ack(&txn, "refund", &r.seqs);
                    }
                    n += 1;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

pub(crate) fn ack(txn: &TxnKey, what: &str, seqs: &[u64]) {
    let seqs: Vec<String> = seqs.iter().map(u64::to_string).collect();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "ACK {} {} {what} {}",
        txn.merchant,
        txn.partner_trans_id,
        seqs.join(",")
    )
    .unwrap();
    out.flush().unwrap();
}

/// One acknowledged append as the parent read it.
pub(crate) struct Ack {
    pub txn: TxnKey,
    pub what: String,
    pub seqs: Vec<u64>,
}

/// Finds the acknowledgement anywhere in the line: the child's first one follows libtest's
/// `test crash::crash_child_process ... ` on the same line.
pub(crate) fn parse_ack(line: &str) -> Option<Ack> {
    let at = line.find("ACK ")?;
    let mut parts = line.get(at..)?.strip_prefix("ACK ")?.split(' ');
    let merchant = parts.next()?;
    let id = parts.next()?;
    let what = parts.next()?.to_owned();
    let seqs = parts
        .next()?
        .split(',')
        .map(|s| s.parse().ok())
        .collect::<Option<Vec<u64>>>()?;
    Some(Ack {
        txn: TxnKey::new(merchant, id),
        what,
        seqs,
    })
}

/// When the kill's delay starts counting.
enum Kill {
    /// From spawn: the kill often lands while the child opens and recovers the journal.
    AfterSpawn,
    /// From the child's first acknowledgement: the kill lands among appends.
    AfterFirstAck,
}

/// Runs one child and kills it `kill_after` after `when`; returns the acknowledgements it
/// printed.
fn run_child(exe: &Path, dir: &Path, round: u64, when: Kill, kill_after: Duration) -> Vec<Ack> {
    let mut child = Command::new(exe)
        .args([
            "crash::crash_child_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir)
        .env(ROUND_ENV, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (first_ack_tx, first_ack) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut acks = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(ack) = parse_ack(&line) {
                if acks.is_empty() {
                    let _ = first_ack_tx.send(());
                }
                acks.push(ack);
            }
        }
        acks
    });
    if let Kill::AfterFirstAck = when {
        // Bounded: a child that never acknowledges is killed after its lifetime anyway.
        let _ = first_ack.recv_timeout(CHILD_LIFETIME);
    }
    std::thread::sleep(kill_after);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    reader.join().unwrap()
}

/// Opens after a crash. Strict recovery refuses a WAL whose last record is torn (a write cut by
/// the kill, which was never acknowledged); then an operator reopens tolerating the torn tail,
/// which is what this does, and counts it.
fn reopen(dir: &Path, torn: &mut u64) -> Journal {
    match Journal::open(dir, JournalOptions::default()) {
        Ok(j) => j,
        Err(Error::Storage { message, .. }) if message.contains("orrupt") => {
            *torn += 1;
            let opts = JournalOptions {
                wal_recovery: WalRecovery::TornTailTolerated,
                ..JournalOptions::default()
            };
            Journal::open(dir, opts).unwrap()
        }
        Err(e) => panic!("reopen after crash failed: {e}"),
    }
}

fn check_ack(journal: &Journal, ack: &Ack, round: u64) {
    let history: Vec<Event> = journal.events_of(&ack.txn).unwrap();
    let by_seq: BTreeMap<u64, &Event> = history.iter().map(|e| (e.seq, e)).collect();
    let n: u64 = ack
        .txn
        .partner_trans_id
        .split('-')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let expected = if ack.what == "pay" {
        child_drafts(&ack.txn, n)
    } else {
        child_refund(&ack.txn, n)
    };
    assert_eq!(ack.seqs.len(), expected.len());
    for (seq, d) in ack.seqs.iter().zip(&expected) {
        let e = by_seq.get(seq).unwrap_or_else(|| {
            panic!(
                "round {round}: acknowledged event {seq} of {:?} lost",
                ack.txn
            )
        });
        assert_eq!(
            (e.at_ms, &e.body),
            (d.at_ms, &d.body),
            "event {seq} changed"
        );
    }
    let folded = TxnState::replay(&history).unwrap();
    assert_eq!(
        journal.txn(&ack.txn).unwrap(),
        Some(folded),
        "snapshot is not the fold of its events"
    );
}

#[test]
fn acknowledged_appends_survive_sigkill() {
    let rounds = env_u64("LEDGER_CRASH_ROUNDS", ROUNDS_DEFAULT);
    let seed = env_u64("LEDGER_CRASH_SEED", 0x1ED6_E500);
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    // Resolved once: if cargo relinks the test binary during a long run, /proc/self/exe turns
    // into "... (deleted)" while this path names the new binary.
    let exe = std::env::current_exe().unwrap();
    let mut torn = 0u64;
    let mut acked = 0u64;
    let mut last_head = 0u64;
    for round in 0..rounds {
        let when = if round % 2 == 0 {
            Kill::AfterSpawn
        } else {
            Kill::AfterFirstAck
        };
        let kill_after = Duration::from_millis(rng.range(KILL_AFTER_MS));
        let acks = run_child(&exe, dir.path(), round, when, kill_after);
        let journal = reopen(dir.path(), &mut torn);
        let head = journal.chain_head().unwrap();
        let report = journal.verify_tail(head.seq - last_head + 1).unwrap();
        assert!(report.is_ok(), "round {round}: {report:?}");
        for ack in &acks {
            check_ack(&journal, ack, round);
        }
        let max_acked = acks
            .iter()
            .flat_map(|a| a.seqs.iter().copied())
            .max()
            .unwrap_or(0);
        assert!(
            head.seq >= max_acked,
            "round {round}: head {} below acknowledged {max_acked}",
            head.seq
        );
        acked += u64::try_from(acks.len()).unwrap();
        last_head = head.seq;
    }
    let journal = reopen(dir.path(), &mut torn);
    let report = journal.verify().unwrap();
    assert!(report.is_ok(), "{report:?}");
    for state in journal.pending().unwrap() {
        let state = state.unwrap();
        assert!(state.is_pending());
        assert_eq!(
            TxnState::replay(&journal.events_of(&state.txn).unwrap()).unwrap(),
            state
        );
    }
    eprintln!(
        "crash test: {rounds} rounds (seed {seed:#x}), {acked} acknowledged appends checked, \
         {} events, {torn} reopen(s) needed the torn-tail recovery",
        report.checked
    );
}
