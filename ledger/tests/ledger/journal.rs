//! The journal's API end to end: appends, every read, group commit semantics, reopen, and the
//! format check.

use std::collections::BTreeSet;

use crate::common::*;
use ledger::{
    AppendError, Draft, Error, EventBody, HealthStatus, Journal, JournalOptions, Outcome,
    RefundKey, Rejected, TxnKey, TxnStatus,
};

#[test]
fn append_then_read_every_way() {
    let (dir, journal) = temp_journal();
    let k = TxnKey::new("m1", "order-1");
    let a = journal
        .append(k.clone(), paid_drafts(&k, 1_000, T0_MS))
        .wait()
        .unwrap();
    assert_eq!(a.seqs, vec![1, 2, 3]);
    assert_eq!(a.state.status, TxnStatus::Paid);
    assert_eq!(journal.txn(&k).unwrap(), Some(a.state.clone()));
    let upstream = a.state.upstream_trans_id.clone();
    assert_eq!(
        journal
            .by_upstream_id("2088000000000001", &upstream)
            .unwrap(),
        Some(a.state.clone())
    );
    assert_eq!(
        journal.by_upstream_id("2088000000000001", "nope").unwrap(),
        None
    );
    assert_eq!(journal.pending().unwrap().count(), 0);

    let r = journal
        .append(
            k.clone(),
            vec![draft(10, refund_intent("m1", "r1", 400, 1))],
        )
        .wait()
        .unwrap();
    assert_eq!(r.seqs, vec![4]);
    let by_refund = journal
        .by_refund(&RefundKey::new("m1", "r1"))
        .unwrap()
        .unwrap();
    assert_eq!(by_refund.reserved_minor, 400);
    let pending: Vec<_> = journal.pending().unwrap().map(Result::unwrap).collect();
    assert_eq!(pending.len(), 1, "a refund in flight is pending");

    journal
        .append(
            k.clone(),
            vec![draft(20, refund_result("m1", "r1", Outcome::Success))],
        )
        .wait()
        .unwrap();
    assert_eq!(journal.pending().unwrap().count(), 0);
    let history = journal.events_of(&k).unwrap();
    assert_eq!(
        history.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    assert_eq!(
        journal
            .events_since(2, 2)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect::<Vec<_>>(),
        vec![3, 4]
    );
    let day = ledger::BeijingDay::of_ms(T0_MS);
    let money: Vec<u64> = journal
        .day(day.year(), day.month(), day.day())
        .unwrap()
        .map(|e| e.unwrap().seq)
        .collect();
    assert_eq!(
        money,
        vec![3, 5],
        "pay success and refund success are money-moving"
    );
    let head = journal.chain_head().unwrap();
    assert_eq!(head.seq, 5);
    let report = journal.verify().unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.checked, 5);

    drop(journal);
    let journal = Journal::open(dir.path(), JournalOptions::default()).unwrap();
    assert_eq!(journal.chain_head().unwrap(), head);
    let next = journal
        .append(
            TxnKey::new("m1", "order-2"),
            paid_drafts(&TxnKey::new("m1", "order-2"), 5, T0_MS),
        )
        .wait()
        .unwrap();
    assert_eq!(next.seqs, vec![6, 7, 8], "seqs continue after reopen");
    assert!(journal.verify().unwrap().is_ok());
}

#[test]
fn rejections_write_nothing_and_the_group_goes_on() {
    let (_dir, journal) = temp_journal();
    let k = TxnKey::new("m", "o");
    let other = TxnKey::new("m", "p");
    // Submitted back to back, so they usually share groups; order is submission order.
    let pending = vec![
        journal.append(k.clone(), paid_drafts(&k, 100, T0_MS)),
        journal.append(k.clone(), vec![draft(5, refund_intent("m", "r1", 101, 1))]),
        journal.append(k.clone(), vec![draft(6, refund_intent("m", "r1", 60, 1))]),
        journal.append(k.clone(), vec![draft(7, refund_intent("m", "r2", 41, 2))]),
        journal.append(
            other.clone(),
            vec![draft(8, refund_intent("m", "r1", 1, 1))],
        ),
        journal.append(other.clone(), paid_drafts(&other, 50, T0_MS)),
        journal.append(
            other.clone(),
            vec![draft(9, refund_intent("m", "r1", 1, 1))],
        ),
        journal.append(k.clone(), vec![]),
    ];
    let results: Vec<_> = pending.into_iter().map(|p| p.wait()).collect();
    assert!(results[0].is_ok());
    assert!(matches!(
        results[1],
        Err(AppendError::Rejected(Rejected::RefundExceedsPaid { .. }))
    ));
    assert_eq!(results[2].as_ref().unwrap().state.reserved_minor, 60);
    assert!(matches!(
        results[3],
        Err(AppendError::Rejected(Rejected::RefundExceedsPaid {
            reserved_minor: 60,
            ..
        }))
    ));
    assert!(matches!(
        results[4],
        Err(AppendError::Rejected(Rejected::UnknownTxn { .. }))
    ));
    assert!(results[5].is_ok());
    assert_eq!(
        results[6],
        Err(AppendError::Rejected(Rejected::RefundOfOtherTxn))
    );
    assert!(matches!(results[7], Err(AppendError::Invalid(_))));
    let seqs: BTreeSet<u64> = results
        .iter()
        .flatten()
        .flat_map(|a| a.seqs.clone())
        .collect();
    assert_eq!(seqs, (1..=7).collect(), "rejected appends consume no seq");
    assert!(journal.verify().unwrap().is_ok());
    assert_eq!(journal.health(), HealthStatus::Ok);
}

#[test]
fn upstream_ids_are_unique_across_transactions() {
    let (_dir, journal) = temp_journal();
    let a = TxnKey::new("m", "a");
    journal
        .append(a.clone(), paid_drafts(&a, 100, T0_MS))
        .wait()
        .unwrap();
    let b = TxnKey::new("m", "b");
    let mut body = pay_received(&b, 100);
    if let EventBody::PayReceived {
        upstream_trans_id, ..
    } = &mut body
    {
        *upstream_trans_id = "SW-m-a".into();
    }
    let r = journal
        .append(b.clone(), vec![Draft::new(T0_MS, body)])
        .wait();
    assert_eq!(r, Err(AppendError::Rejected(Rejected::UpstreamIdTaken)));
    assert_eq!(journal.txn(&b).unwrap(), None);
}

#[test]
fn appends_can_be_awaited_from_async_code() {
    let (_dir, journal) = temp_journal();
    let journal = std::sync::Arc::new(journal);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let seqs = rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..32 {
            let j = std::sync::Arc::clone(&journal);
            tasks.push(tokio::spawn(async move {
                let k = TxnKey::new("m", format!("o{i}"));
                j.append(k.clone(), paid_drafts(&k, 10, T0_MS))
                    .await
                    .unwrap()
                    .seqs
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all
    });
    let unique: BTreeSet<u64> = seqs.into_iter().collect();
    assert_eq!(unique, (1..=96).collect());
    let stats = journal.stats();
    assert_eq!(stats.appends, 32);
    assert!(stats.groups <= 32);
    assert!(journal.verify().unwrap().is_ok());
}

#[test]
fn another_format_is_incompatible() {
    let dir = tempfile::tempdir().unwrap();
    drop(Journal::open(dir.path(), JournalOptions::default()).unwrap());
    {
        let names = ledger::tables::COLUMN_FAMILIES;
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(false);
        let db = rocksdb::DB::open_cf(&opts, dir.path(), names).unwrap();
        let meta = db.cf_handle("meta").unwrap();
        let value = ledger::codec::encode_value(&ledger::tables::MetaValue::Format(99)).unwrap();
        db.put_cf(meta, b"format", value).unwrap();
    }
    let err = Journal::open(dir.path(), JournalOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Incompatible {
                found: 99,
                supported: ledger::JOURNAL_FORMAT
            }
        ),
        "{err}"
    );
    let err = Journal::open_read_only(dir.path()).unwrap_err();
    assert!(
        matches!(err, Error::Incompatible { found: 99, .. }),
        "{err}"
    );
}

/// A raw RocksDB database with the tables `names` (besides `default`).
fn raw_db(path: &std::path::Path, names: &[&str]) -> rocksdb::DB {
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    rocksdb::DB::open_cf(&opts, path, names).unwrap()
}

fn tables(path: &std::path::Path) -> Vec<String> {
    rocksdb::DB::list_cf(&rocksdb::Options::default(), path).unwrap()
}

#[test]
fn a_creation_cut_short_is_completed() {
    // A crash while RocksDB created the tables (one at a time, meta last): nothing written.
    let dir = tempfile::tempdir().unwrap();
    let some = &ledger::tables::COLUMN_FAMILIES[..3];
    drop(raw_db(dir.path(), some));
    let journal = Journal::open(dir.path(), JournalOptions::default()).unwrap();
    let k = TxnKey::new("m", "o");
    journal
        .append(k.clone(), paid_drafts(&k, 100, T0_MS))
        .wait()
        .unwrap();
    assert!(journal.verify().unwrap().is_ok());
}

#[test]
fn another_programs_database_is_not_adopted() {
    // A mistaken path: some other RocksDB database, with data, without the journal's meta.
    for names in [&[][..], &ledger::tables::COLUMN_FAMILIES[..2]] {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = raw_db(dir.path(), names);
            db.put(b"their-key", b"their value").unwrap();
        }
        let before = tables(dir.path());
        let err = Journal::open(dir.path(), JournalOptions::default()).unwrap_err();
        assert!(matches!(err, Error::NotAJournal(_)), "{err}");
        assert!(err.to_string().contains("table default"), "{err}");
        assert_eq!(tables(dir.path()), before, "open added nothing to it");
        let err = Journal::open_read_only(dir.path()).unwrap_err();
        assert!(matches!(err, Error::NotAJournal(_)), "{err}");
    }
}

#[test]
fn reads_refuse_records_filed_under_another_transaction() {
    let (dir, journal) = temp_journal();
    let (a, b) = (TxnKey::new("m", "a"), TxnKey::new("m", "b"));
    for k in [&a, &b] {
        journal
            .append(k.clone(), paid_drafts(k, 100, T0_MS))
            .wait()
            .unwrap();
    }
    drop(journal);
    {
        use ledger::tables::{Table, TxnEvents, Txns};
        let db = raw_db(dir.path(), &ledger::tables::COLUMN_FAMILIES);
        let txns = db.cf_handle(Txns::NAME).unwrap();
        let b_state = db
            .get_cf(txns, Txns::encode_key(&b).unwrap())
            .unwrap()
            .unwrap();
        db.put_cf(txns, Txns::encode_key(&a).unwrap(), b_state)
            .unwrap();
        // b's first event (seq 4) listed in a's history as well.
        let history = db.cf_handle(TxnEvents::NAME).unwrap();
        let wrong = TxnEvents::encode_key(&(a.clone(), 4)).unwrap();
        db.put_cf(history, wrong, TxnEvents::encode_value(&()).unwrap())
            .unwrap();
    }
    let ro = Journal::open_read_only(dir.path()).unwrap();
    let err = ro.txn(&a).unwrap_err();
    assert!(matches!(err, Error::Inconsistent(_)), "{err}");
    let upstream = format!("SW-{}-{}", a.merchant, a.partner_trans_id);
    let err = ro
        .by_upstream_id("2088000000000001", &upstream)
        .unwrap_err();
    assert!(matches!(err, Error::Inconsistent(_)), "{err}");
    let err = ro.events_of(&a).unwrap_err();
    assert!(matches!(err, Error::Inconsistent(_)), "{err}");
    assert!(ro.txn(&b).unwrap().is_some(), "b's own records still read");
    assert_eq!(ro.events_of(&b).unwrap().len(), 3);
}

#[test]
fn read_only_handle_follows_a_running_journal() {
    let (dir, journal) = temp_journal();
    let k = TxnKey::new("m", "o");
    journal
        .append(k.clone(), paid_drafts(&k, 100, T0_MS))
        .wait()
        .unwrap();
    let mut ro = Journal::open_read_only(dir.path()).unwrap();
    assert_eq!(ro.txn(&k).unwrap().map(|s| s.status), Some(TxnStatus::Paid));
    let k2 = TxnKey::new("m", "o2");
    journal
        .append(k2.clone(), paid_drafts(&k2, 100, T0_MS))
        .wait()
        .unwrap();
    ro.catch_up().unwrap();
    assert!(ro.txn(&k2).unwrap().is_some());
    let report = ro.verify().unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.last, journal.chain_head().unwrap());
}

/// RocksDB's own count: "Cumulative WAL: N writes, M syncs, ...".
fn wal_writes_and_syncs(journal: &Journal) -> (u64, u64) {
    let stats = journal
        .rocksdb_property("rocksdb.dbstats")
        .unwrap()
        .unwrap();
    let line = stats
        .lines()
        .find(|l| l.starts_with("Cumulative WAL:"))
        .unwrap();
    let nums: Vec<u64> = line
        .split([' ', ','])
        .filter_map(|w| w.parse().ok())
        .collect();
    (nums[0], nums[1])
}

#[test]
fn every_group_is_one_synced_wal_write() {
    // A SIGKILL keeps the page cache, so the crash test cannot see a missing fsync; RocksDB's
    // own counters can: every WAL write of the journal must have been synced.
    let (_dir, journal) = temp_journal();
    let journal = std::sync::Arc::new(journal);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let j = std::sync::Arc::clone(&journal);
            std::thread::spawn(move || {
                for i in 0..20 {
                    let k = TxnKey::new(format!("m{t}"), format!("o{i}"));
                    j.append(k.clone(), paid_drafts(&k, 10, T0_MS))
                        .wait()
                        .unwrap();
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    let (writes, syncs) = wal_writes_and_syncs(&journal);
    let stats = journal.stats();
    assert_eq!(stats.appends, 160);
    assert!(
        writes >= stats.groups,
        "{writes} WAL writes for {} groups",
        stats.groups
    );
    assert_eq!(writes, syncs, "every WAL write is synced");
}

/// Appends about `bytes` of fat transactions (a pay and a long operator note each), 256 at a
/// time so they group.
fn append_fat(journal: &Journal, bytes: usize) {
    let note = "x".repeat(ledger::record::FIELD_BYTES_MAX);
    let per_txn = 3 * note.len();
    let txns = bytes / per_txn;
    let keys: Vec<TxnKey> = (0..txns)
        .map(|i| TxnKey::new("m", format!("fat{i}")))
        .collect();
    for chunk in keys.chunks(256) {
        let waiting: Vec<_> = chunk
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let mut drafts = paid_drafts(k, 100 + u64::try_from(i).unwrap(), T0_MS);
                drafts.push(Draft::new(
                    T0_MS + 3,
                    EventBody::OperatorAction {
                        who: note.clone(),
                        why: note.clone(),
                        action: note.clone(),
                    },
                ));
                journal.append(k.clone(), drafts)
            })
            .collect();
        for w in waiting {
            w.wait().unwrap();
        }
    }
}

/// The memtables of all tables together stay within `memtables_bytes_max` (RocksDB flushes
/// past it), although each table alone may grow to `write_buffer_bytes`; without the bound
/// the same appends stay in memory.
#[test]
fn memtables_are_bounded_across_tables() {
    const MIB: usize = 1024 * 1024;
    let written = 24 * MIB;
    let measure = |memtables_bytes_max: usize| -> u64 {
        let dir = tempfile::tempdir().unwrap();
        let opts = JournalOptions {
            write_buffer_bytes: 64 * MIB,
            memtables_bytes_max,
            ..JournalOptions::default()
        };
        let journal = Journal::open(dir.path(), opts).unwrap();
        append_fat(&journal, written);
        // Flushes run in the background: wait (bounded) for the last to finish.
        let mut bytes = journal.memtables_bytes().unwrap();
        for _ in 0..100 {
            if bytes <= u64::try_from(memtables_bytes_max * 2).unwrap() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
            bytes = journal.memtables_bytes().unwrap();
        }
        bytes
    };
    let bounded = measure(4 * MIB);
    assert!(
        bounded <= u64::try_from(8 * MIB).unwrap(),
        "memtables hold {bounded} bytes with a 4 MiB bound"
    );
    let unbounded = measure(256 * MIB);
    assert!(
        unbounded > u64::try_from(16 * MIB).unwrap(),
        "without a bound the memtables should hold most of the {written} bytes written, hold {unbounded}"
    );
}
