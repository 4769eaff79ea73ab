//! Tamper evidence (INV-7): edit the `events` table behind the journal's back with raw RocksDB
//! and check `verify` reports the first break at the right seq, and that open refuses a journal
//! whose tail is broken.

use crate::common::*;
use ledger::{ChainBreak, Error, Journal, JournalOptions, TxnKey};

const TXNS: u64 = 4;

/// A journal with 12 events (4 paid transactions of 3 events), closed.
fn journal_with_events() -> tempfile::TempDir {
    let (dir, journal) = temp_journal();
    for i in 0..TXNS {
        let k = TxnKey::new("m", format!("o{i}"));
        journal
            .append(k.clone(), paid_drafts(&k, 100 + i, T0_MS))
            .wait()
            .unwrap();
    }
    assert!(journal.verify().unwrap().is_ok());
    dir
}

/// Edits the raw database.
fn tamper(dir: &tempfile::TempDir, edit: impl FnOnce(&rocksdb::DB, &rocksdb::ColumnFamily)) {
    let db = rocksdb::DB::open_cf(
        &rocksdb::Options::default(),
        dir.path(),
        ledger::tables::COLUMN_FAMILIES,
    )
    .unwrap();
    let events = db.cf_handle("events").unwrap();
    edit(&db, events);
}

fn first_break(dir: &tempfile::TempDir) -> ChainBreak {
    let ro = Journal::open_read_only(dir.path()).unwrap();
    let report = ro.verify().unwrap();
    let brk = report.broken.clone().expect("verify must find the break");
    // Open verifies the tail, which here is the whole chain: it must refuse.
    match Journal::open(dir.path(), JournalOptions::default()) {
        Err(Error::Chain(b)) => assert_eq!(b, brk),
        other => panic!("open must refuse a broken chain, got {other:?}"),
    }
    brk
}

#[test]
fn a_changed_byte_is_found_at_its_seq() {
    let dir = journal_with_events();
    tamper(&dir, |db, cf| {
        let mut v = db.get_cf(cf, 5u64.to_be_bytes()).unwrap().unwrap();
        // Inside the prev_hash field: still decodes, so only the hash can tell.
        v[12] ^= 0x01;
        db.put_cf(cf, 5u64.to_be_bytes(), v).unwrap();
    });
    assert_eq!(first_break(&dir), ChainBreak::HashMismatch { seq: 5 });
}

#[test]
fn a_changed_amount_is_found_at_its_seq() {
    let dir = journal_with_events();
    tamper(&dir, |db, cf| {
        let mut v = db.get_cf(cf, 7u64.to_be_bytes()).unwrap().unwrap();
        // Near the end of the body (before the 32-byte hash): the outcome's fields.
        let at = v.len() - 40;
        v[at] ^= 0x01;
        db.put_cf(cf, 7u64.to_be_bytes(), v).unwrap();
    });
    let brk = first_break(&dir);
    assert!(
        matches!(
            brk,
            ChainBreak::HashMismatch { seq: 7 } | ChainBreak::Undecodable { seq: 7, .. }
        ),
        "{brk:?}"
    );
}

#[test]
fn a_deleted_event_is_found_at_its_seq() {
    let dir = journal_with_events();
    tamper(&dir, |db, cf| db.delete_cf(cf, 7u64.to_be_bytes()).unwrap());
    assert_eq!(first_break(&dir), ChainBreak::Missing { seq: 7, found: 8 });
}

#[test]
fn swapped_events_are_found_at_the_first_of_them() {
    let dir = journal_with_events();
    tamper(&dir, |db, cf| {
        let a = db.get_cf(cf, 3u64.to_be_bytes()).unwrap().unwrap();
        let b = db.get_cf(cf, 9u64.to_be_bytes()).unwrap().unwrap();
        db.put_cf(cf, 3u64.to_be_bytes(), b).unwrap();
        db.put_cf(cf, 9u64.to_be_bytes(), a).unwrap();
    });
    assert_eq!(
        first_break(&dir),
        ChainBreak::Misplaced { seq: 3, found: 9 }
    );
}

#[test]
fn a_relinked_chain_is_found_where_the_link_breaks() {
    // A forger who re-seals an edited event with a correct own hash still breaks the next link.
    let dir = journal_with_events();
    tamper(&dir, |db, cf| {
        let v = db.get_cf(cf, 4u64.to_be_bytes()).unwrap().unwrap();
        let sealed: ledger::tables::SealedEvent = ledger::codec::decode_value(&v).unwrap();
        let mut event = sealed.event;
        event.at_ms += 1;
        let (forged, _) = ledger::chain::seal(&event).unwrap();
        db.put_cf(cf, 4u64.to_be_bytes(), forged).unwrap();
    });
    assert_eq!(first_break(&dir), ChainBreak::BrokenLink { seq: 5 });
}

#[test]
fn a_truncated_tail_is_found_by_the_meta_head() {
    let dir = journal_with_events();
    tamper(&dir, |db, cf| {
        db.delete_cf(cf, 12u64.to_be_bytes()).unwrap()
    });
    let brk = first_break(&dir);
    assert!(
        matches!(
            brk,
            ChainBreak::HeadMismatch {
                head_seq: 12,
                last_seq: 11,
                ..
            }
        ),
        "{brk:?}"
    );
}
