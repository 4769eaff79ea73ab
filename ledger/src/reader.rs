//! Reads: straight to RocksDB, concurrently with the writer.
//!
//! A [`Reader`] is shared by the writing [`crate::Journal`] and by the [`crate::ReadOnlyJournal`]
//! that tools open beside a running switch. Point reads need no coordination with the writer:
//! every append lands in one atomic batch, so a read sees all of it or none of it. Walks that
//! must see one consistent picture (`verify`) use a RocksDB snapshot on the primary; a
//! secondary only changes when its owner calls `catch_up`, which needs `&mut`.
//!
//! Every event read is checked against its own sealed hash, and every snapshot read is checked
//! against the money invariant, before it is returned (house style rule 7). A snapshot or a
//! history entry filed under another transaction's key is [`Error::Inconsistent`]: the chain
//! covers events, not the tables that index them.

use std::sync::Arc;

use rocksdb::{ColumnFamily, Direction, IteratorMode, ReadOptions, DB};

use crate::chain::{unseal, verify_walk_with_progress, VerifyReport};
use crate::day::BeijingDay;
use crate::error::{Error, Result};
use crate::record::{Event, RefundKey, TxnKey};
use crate::state::{TxnState, EVENTS_PER_TXN_MAX};
use crate::tables::{
    ByDay, ChainHead, Events, Meta, MetaKey, MetaValue, Pending, Refunds, Table, TxnEvents, Txns,
    UpstreamIds,
};

/// The most events one [`Reader::events_since`] call returns.
pub const EVENTS_PAGE_MAX: usize = 10_000;

/// Read access to a journal.
pub struct Reader {
    pub(crate) db: Arc<DB>,
    /// True on a primary, where the writer moves on under a walk.
    pub(crate) snapshots: bool,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("path", &self.db.path())
            .finish()
    }
}

fn storage(context: &'static str) -> impl Fn(rocksdb::Error) -> Error {
    move |e| Error::Storage {
        context,
        message: e.into_string(),
    }
}

fn codec<T: Table>(e: crate::CodecError) -> Error {
    Error::Codec {
        table: T::NAME,
        source: e,
    }
}

impl Reader {
    fn cf<T: Table>(&self) -> Result<&ColumnFamily> {
        self.db
            .cf_handle(T::NAME)
            .ok_or_else(|| Error::NotAJournal(format!("table {} missing", T::NAME)))
    }

    /// One value of a table.
    pub(crate) fn get<T: Table>(&self, key: &T::Key) -> Result<Option<T::Value>> {
        self.get_opt::<T>(key, ReadOptions::default())
    }

    fn get_opt<T: Table>(&self, key: &T::Key, opts: ReadOptions) -> Result<Option<T::Value>> {
        let key = T::encode_key(key).map_err(codec::<T>)?;
        let bytes = self
            .db
            .get_pinned_cf_opt(self.cf::<T>()?, key, &opts)
            .map_err(storage("get"))?;
        bytes
            .map(|b| T::decode_value(&b).map_err(codec::<T>))
            .transpose()
    }

    /// The transaction's current state.
    pub fn txn(&self, key: &TxnKey) -> Result<Option<TxnState>> {
        let state = self.get::<Txns>(key)?;
        if let Some(s) = &state {
            s.assert_invariants();
            // The chain does not cover snapshots: one filed under another key would answer a
            // query about this transaction with another's money. The writer asserts the same.
            if &s.txn != key {
                return Err(Error::Inconsistent(format!(
                    "txns holds the snapshot of {:?} under {key:?}",
                    s.txn
                )));
            }
        }
        Ok(state)
    }

    fn txn_indexed(&self, key: Option<TxnKey>, index: &str) -> Result<Option<TxnState>> {
        let Some(key) = key else {
            return Ok(None);
        };
        match self.txn(&key)? {
            Some(s) => Ok(Some(s)),
            None => Err(Error::Inconsistent(format!(
                "{index} points at a transaction that is not in txns"
            ))),
        }
    }

    /// The transaction that has this refund.
    pub fn by_refund(&self, key: &RefundKey) -> Result<Option<TxnState>> {
        let txn = self.get::<Refunds>(key)?;
        self.txn_indexed(txn, Refunds::NAME)
    }

    /// The transaction sent upstream under this partner and upstream id.
    pub fn by_upstream_id(&self, partner: &str, upstream_id: &str) -> Result<Option<TxnState>> {
        let txn = self.get::<UpstreamIds>(&(partner.to_owned(), upstream_id.to_owned()))?;
        self.txn_indexed(txn, UpstreamIds::NAME)
    }

    /// Every transaction that is not final (outcome unknown or a refund in flight), in key
    /// order: the resolver's work after a restart. Streams; holds no more than one at a time.
    pub fn pending(&self) -> Result<impl Iterator<Item = Result<TxnState>> + '_> {
        let iter = self
            .db
            .iterator_cf(self.cf::<Pending>()?, IteratorMode::Start);
        Ok(iter.map(move |item| {
            let (key, _) = item.map_err(storage("pending scan"))?;
            let txn = Pending::decode_key(&key).map_err(codec::<Pending>)?;
            self.txn_indexed(Some(txn), Pending::NAME)?
                .ok_or_else(|| Error::Inconsistent("pending entry vanished".into()))
        }))
    }

    /// The event at `seq`, hash-checked.
    pub fn event(&self, seq: u64) -> Result<Option<Event>> {
        let cf = self.cf::<Events>()?;
        let bytes = self
            .db
            .get_pinned_cf(cf, Events::encode_key(&seq).map_err(codec::<Events>)?)
            .map_err(storage("get event"))?;
        match bytes {
            None => Ok(None),
            Some(b) => Ok(Some(unseal(seq, &b)?.event)),
        }
    }

    /// Up to `limit` events with seq greater than `after_seq`, in order (`after_seq = 0` starts
    /// at the first event; pass the last seq seen to page on). `limit` is capped at
    /// [`EVENTS_PAGE_MAX`].
    pub fn events_since(&self, after_seq: u64, limit: usize) -> Result<Vec<Event>> {
        let limit = limit.min(EVENTS_PAGE_MAX);
        let from = Events::encode_key(&after_seq.saturating_add(1)).map_err(codec::<Events>)?;
        let iter = self.db.iterator_cf(
            self.cf::<Events>()?,
            IteratorMode::From(&from, Direction::Forward),
        );
        let mut out = Vec::with_capacity(limit.min(1024));
        for item in iter.take(limit) {
            let (key, value) = item.map_err(storage("events scan"))?;
            let seq = Events::decode_key(&key).map_err(codec::<Events>)?;
            out.push(unseal(seq, &value)?.event);
        }
        Ok(out)
    }

    /// A transaction's whole history, in order (at most [`EVENTS_PER_TXN_MAX`] events).
    pub fn events_of(&self, key: &TxnKey) -> Result<Vec<Event>> {
        let prefix = crate::codec::txn_key(key).map_err(codec::<TxnEvents>)?;
        let iter = self.db.iterator_cf(
            self.cf::<TxnEvents>()?,
            IteratorMode::From(&prefix, Direction::Forward),
        );
        let cap = usize::try_from(EVENTS_PER_TXN_MAX).unwrap_or(usize::MAX);
        let mut out = Vec::new();
        for item in iter {
            let (k, _) = item.map_err(storage("txn_events scan"))?;
            if !k.starts_with(&prefix) {
                break;
            }
            let (_, seq) = TxnEvents::decode_key(&k).map_err(codec::<TxnEvents>)?;
            let event = self.event(seq)?.ok_or_else(|| {
                Error::Inconsistent(format!("txn_events names event {seq}, which is absent"))
            })?;
            if &event.txn != key {
                return Err(Error::Inconsistent(format!(
                    "txn_events lists event {seq}, of {:?}, under {key:?}",
                    event.txn
                )));
            }
            out.push(event);
            if out.len() >= cap {
                break;
            }
        }
        Ok(out)
    }

    /// The money-moving events of one Beijing day (pay successes, refund successes, cancels),
    /// in seq order. Streams: a busy day is large. An invalid date is an empty day.
    pub fn day(
        &self,
        year: u16,
        month: u8,
        day: u8,
    ) -> Result<impl Iterator<Item = Result<Event>> + '_> {
        let day = BeijingDay::from_ymd(year, month, day).map(BeijingDay::yyyymmdd);
        let start = ByDay::encode_key(&(day.unwrap_or(0), 0)).map_err(codec::<ByDay>)?;
        let iter = self.db.iterator_cf(
            self.cf::<ByDay>()?,
            IteratorMode::From(&start, Direction::Forward),
        );
        let wanted = day;
        Ok(iter
            .map(move |item| {
                let (key, _) = item.map_err(storage("by_day scan"))?;
                ByDay::decode_key(&key).map_err(codec::<ByDay>)
            })
            .take_while(move |k| match k {
                Ok((d, _)) => Some(*d) == wanted,
                Err(_) => true,
            })
            .map(move |k| {
                let (_, seq) = k?;
                self.event(seq)?.ok_or_else(|| {
                    Error::Inconsistent(format!("by_day names event {seq}, which is absent"))
                })
            }))
    }

    /// A RocksDB property (e.g. `rocksdb.dbstats`, `rocksdb.estimate-num-keys`), for operators
    /// and for tests that check what RocksDB itself did (every WAL write synced).
    pub fn rocksdb_property(&self, name: &str) -> Result<Option<String>> {
        self.db.property_value(name).map_err(storage("property"))
    }

    /// The journal layout's format version, `None` for a journal not yet initialised.
    pub(crate) fn format(&self) -> Result<Option<u32>> {
        match self.get::<Meta>(&MetaKey::Format)? {
            None => Ok(None),
            Some(MetaValue::Format(v)) => Ok(Some(v)),
            Some(_) => Err(Error::Inconsistent(
                "meta format holds another value".into(),
            )),
        }
    }

    fn head_opt(&self, opts: ReadOptions) -> Result<ChainHead> {
        match self.get_opt::<Meta>(&MetaKey::Head, opts)? {
            None => Ok(ChainHead::GENESIS),
            Some(MetaValue::Head(h)) => Ok(h),
            Some(_) => Err(Error::Inconsistent("meta head holds another value".into())),
        }
    }

    /// The chain head: last seq and its hash (0 and zeros when empty). Anchor it elsewhere (a
    /// log line, a finance export) to detect a rewrite of the whole chain.
    pub fn chain_head(&self) -> Result<ChainHead> {
        self.head_opt(ReadOptions::default())
    }

    /// Walks the whole chain and reports the first break, with counts.
    pub fn verify(&self) -> Result<VerifyReport> {
        self.verify_from(None, 0, |_| {})
    }

    /// [`Reader::verify`], calling `progress` with the count of events verified so far every
    /// `progress_every` events (0 never calls it): for tools walking a long journal.
    pub fn verify_with_progress(
        &self,
        progress_every: u64,
        progress: impl FnMut(u64),
    ) -> Result<VerifyReport> {
        self.verify_from(None, progress_every, progress)
    }

    /// Verifies the last `n` events and the meta head (what open does).
    pub fn verify_tail(&self, n: u64) -> Result<VerifyReport> {
        self.verify_from(Some(n), 0, |_| {})
    }

    fn verify_from(
        &self,
        tail: Option<u64>,
        progress_every: u64,
        progress: impl FnMut(u64),
    ) -> Result<VerifyReport> {
        let snapshot = self.snapshots.then(|| self.db.snapshot());
        let opts = || {
            let mut o = ReadOptions::default();
            if let Some(s) = &snapshot {
                o.set_snapshot(s);
            }
            o
        };
        let meta_head = self.head_opt(opts())?;
        let start_seq = tail.map_or(0, |n| meta_head.seq.saturating_sub(n));
        let start = if start_seq == 0 {
            ChainHead::GENESIS
        } else {
            let key = Events::encode_key(&start_seq).map_err(codec::<Events>)?;
            let bytes = self
                .db
                .get_pinned_cf_opt(self.cf::<Events>()?, key, &opts())
                .map_err(storage("get event"))?
                .ok_or(crate::ChainBreak::Missing {
                    seq: start_seq,
                    found: 0,
                })?;
            let sealed = unseal(start_seq, &bytes)?;
            ChainHead {
                seq: start_seq,
                hash: sealed.hash,
            }
        };
        let from = Events::encode_key(&start.seq.saturating_add(1)).map_err(codec::<Events>)?;
        let iter = self.db.iterator_cf_opt(
            self.cf::<Events>()?,
            opts(),
            IteratorMode::From(&from, Direction::Forward),
        );
        let mut failure = None;
        let records = iter.map_while(|item| match item {
            Ok((k, v)) => Some((k.into_vec(), v.into_vec())),
            Err(e) => {
                failure = Some(e);
                None
            }
        });
        let report = verify_walk_with_progress(start, records, meta_head, progress_every, progress);
        match failure {
            Some(e) => Err(storage("verify scan")(e)),
            None => Ok(report),
        }
    }
}
