//! Group commit: one writer thread owns the write path and the chain head.
//!
//! Appenders hand [`Submission`]s to the writer over a bounded channel and wait on a oneshot
//! completion. The writer blocks for the first submission, drains whatever else is waiting (up
//! to the group size limit), and for each submission in order: folds its events into the
//! transaction's state (so two submissions for one transaction in one group see each other),
//! assigns seqs and chain links, and stages the events, the new snapshot and the index entries.
//! A submission whose events are rejected is completed with the rejection and stages nothing.
//! Everything staged goes into ONE `WriteBatch` with the new chain head, written once with
//! `sync=true`; only then is every submitter completed. One fsync acknowledges the whole group.
//!
//! Fail closed (INV-8): any write, sync or read error on this path marks the shared [`Health`]
//! failed; from then on every waiting and later submission completes at once with
//! [`AppendError::Failed`]. Nothing is retried in place: the process must restart and reopen.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use rocksdb::{WriteBatch, WriteOptions, DB};
use tokio::sync::oneshot;

use crate::chain::seal;
use crate::day::BeijingDay;
use crate::error::{AppendError, Rejected};
use crate::options::JournalOptions;
use crate::record::{Draft, Event, EventBody, RefundKey, TxnKey};
use crate::state::{fold, moves_money, TxnState};
use crate::tables::{
    ByDay, ChainHead, Events, Meta, MetaKey, MetaValue, Pending, Refunds, Table, TxnEvents, Txns,
    UpstreamIds,
};
use crate::telemetry::{self, WriterStats};

/// What an acknowledged append wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The seqs given to the submitted events, in order (consecutive).
    pub seqs: Vec<u64>,
    /// The transaction's state after them.
    pub state: TxnState,
}

/// The completion of one append.
pub(crate) type Reply = oneshot::Sender<Result<Appended, AppendError>>;

/// One append on its way to the writer.
#[derive(Debug)]
pub(crate) struct Submission {
    pub txn: TxnKey,
    pub drafts: Vec<Draft>,
    pub reply: Reply,
}

/// Whether the journal can still write; shared by the writer, the journal and its clones.
#[derive(Debug, Default)]
pub struct Health {
    failed: AtomicBool,
    reason: Mutex<Option<String>>,
}

/// The journal's health, for readiness checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthStatus {
    /// Writing.
    Ok,
    /// Failed closed; the text says why. Restart the process.
    Failed(String),
}

impl Health {
    /// Marks the journal failed (the first reason is kept).
    pub(crate) fn fail(&self, reason: String) {
        let mut slot = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(reason);
        }
        self.failed.store(true, Ordering::SeqCst);
        metrics::gauge!(telemetry::FAILED).set(1.0);
    }

    /// The failure reason, if failed.
    pub fn failure(&self) -> Option<String> {
        if !self.failed.load(Ordering::SeqCst) {
            return None;
        }
        let slot = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        Some(slot.clone().unwrap_or_default())
    }

    /// Ok or Failed.
    pub fn status(&self) -> HealthStatus {
        match self.failure() {
            None => HealthStatus::Ok,
            Some(reason) => HealthStatus::Failed(reason),
        }
    }
}

/// Transaction snapshots the writer has written or read, evicted oldest first.
#[derive(Debug)]
struct StateCache {
    map: HashMap<TxnKey, TxnState>,
    order: VecDeque<TxnKey>,
    max: usize,
}

impl StateCache {
    fn insert(&mut self, key: TxnKey, state: TxnState) {
        if self.map.insert(key.clone(), state).is_none() {
            self.order.push_back(key);
        }
        while self.map.len() > self.max {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            self.map.remove(&old);
        }
    }
}

/// What one group stages before its single write.
#[derive(Default)]
struct Overlay {
    states: HashMap<TxnKey, TxnState>,
    upstream: HashMap<(String, String), TxnKey>,
    refunds: HashMap<RefundKey, TxnKey>,
}

/// Why a submission could not be staged.
enum StageError {
    /// The submitter gets this error; the group goes on.
    Refuse(AppendError),
    /// The journal fails closed.
    Fatal(String),
}

/// One put (`Some` value) or delete (`None`) in a column family.
type Op = (&'static str, Vec<u8>, Option<Vec<u8>>);

/// One submission's staged writes, before they join the group's batch.
struct Staged {
    state: Option<TxnState>,
    ops: Vec<Op>,
    seqs: Vec<u64>,
    upstream: Option<(String, String)>,
    refunds: Vec<RefundKey>,
    link: ChainHead,
}

/// The writer thread's state.
pub(crate) struct Writer {
    pub db: Arc<DB>,
    pub rx: Receiver<Submission>,
    pub health: Arc<Health>,
    pub stats: Arc<WriterStats>,
    pub head: ChainHead,
    group_size_max: usize,
    linger: Duration,
    linger_siblings: usize,
    sync_interval_min: Duration,
    last_write_at: Instant,
    last_group_len: usize,
    cache: StateCache,
}

impl Writer {
    pub(crate) fn new(
        db: Arc<DB>,
        rx: Receiver<Submission>,
        health: Arc<Health>,
        stats: Arc<WriterStats>,
        head: ChainHead,
        opts: &JournalOptions,
    ) -> Writer {
        Writer {
            db,
            rx,
            health,
            stats,
            head,
            group_size_max: opts.group_size_max,
            linger: opts.group_linger,
            linger_siblings: opts.group_linger_siblings,
            sync_interval_min: opts.sync_interval_min,
            last_write_at: Instant::now(),
            last_group_len: 0,
            cache: StateCache {
                map: HashMap::new(),
                order: VecDeque::new(),
                max: opts.state_cache_entries_max,
            },
        }
    }

    /// Runs until every sender is gone.
    pub(crate) fn run(mut self) {
        while let Ok(first) = self.rx.recv() {
            let group = self.collect(first);
            let depth = u32::try_from(self.rx.len()).unwrap_or(u32::MAX);
            metrics::gauge!(telemetry::QUEUE_DEPTH).set(f64::from(depth));
            if let Some(reason) = self.health.failure() {
                for sub in group {
                    complete(sub.reply, Err(AppendError::Failed(reason.clone())));
                }
                continue;
            }
            self.write_group(group);
        }
    }

    /// Takes what is waiting behind `first`, up to the group size limit. When the previous
    /// group showed concurrent appenders (at least `linger_siblings` submissions), it lingers up
    /// to `linger` for as many submissions as the previous group had: appenders completed
    /// together come back together, and one sync then serves them all instead of a trickle of
    /// small groups (PostgreSQL's `commit_delay`/`commit_siblings`, made adaptive). A lone
    /// appender never waits.
    fn collect(&mut self, first: Submission) -> Vec<Submission> {
        let mut group = Vec::with_capacity(self.group_size_max.min(self.last_group_len.max(1)));
        group.push(first);
        self.drain(&mut group);
        let target = self.last_group_len.min(self.group_size_max);
        let linger = self.last_group_len >= self.linger_siblings && !self.linger.is_zero();
        if linger && group.len() < target {
            let deadline = Instant::now() + self.linger;
            while group.len() < target {
                let left = deadline.saturating_duration_since(Instant::now());
                match self.rx.recv_timeout(left) {
                    Ok(sub) => {
                        group.push(sub);
                        self.drain(&mut group);
                    }
                    Err(_) => break,
                }
            }
        }
        // Sync pacing: under concurrency, no write starts sooner than `sync_interval_min` after
        // the previous one; whatever arrives meanwhile joins this group.
        if linger && !self.sync_interval_min.is_zero() {
            let not_before = self.last_write_at + self.sync_interval_min;
            while group.len() < self.group_size_max {
                let left = not_before.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                match self.rx.recv_timeout(left) {
                    Ok(sub) => {
                        group.push(sub);
                        self.drain(&mut group);
                    }
                    Err(_) => break,
                }
            }
        }
        self.last_write_at = Instant::now();
        self.last_group_len = group.len();
        group
    }

    fn drain(&self, group: &mut Vec<Submission>) {
        while group.len() < self.group_size_max {
            match self.rx.try_recv() {
                Ok(sub) => group.push(sub),
                Err(_) => break,
            }
        }
    }

    fn write_group(&mut self, group: Vec<Submission>) {
        let mut batch = WriteBatch::default();
        let mut overlay = Overlay::default();
        let mut head = self.head;
        let mut accepted: Vec<(Reply, Appended)> = Vec::with_capacity(group.len());
        let mut events: u64 = 0;
        let mut rest = group.into_iter();
        while let Some(sub) = rest.next() {
            match self.stage(&sub, &mut overlay, &mut head, &mut batch) {
                Ok(appended) => {
                    events = events.saturating_add(u64::try_from(appended.seqs.len()).unwrap_or(0));
                    accepted.push((sub.reply, appended));
                }
                Err(StageError::Refuse(err)) => {
                    let label = match err {
                        AppendError::Rejected(_) => telemetry::RESULT_REJECTED,
                        _ => telemetry::RESULT_INVALID,
                    };
                    metrics::counter!(telemetry::APPENDS_TOTAL, "result" => label).increment(1);
                    complete(sub.reply, Err(err));
                }
                Err(StageError::Fatal(reason)) => {
                    let replies = accepted.into_iter().map(|(r, _)| r);
                    let others = std::iter::once(sub.reply).chain(rest.map(|s| s.reply));
                    return self.fail_closed(reason, replies.chain(others));
                }
            }
        }
        if accepted.is_empty() {
            return;
        }
        if let Err(reason) = put_head(&self.db, &mut batch, head) {
            return self.fail_closed(reason, accepted.into_iter().map(|(r, _)| r));
        }
        let mut sync = WriteOptions::default();
        // Durable before acknowledged: the WAL is fsynced before `write_opt` returns.
        sync.set_sync(true);
        sync.disable_wal(false);
        let started = Instant::now();
        let written = self.db.write_opt(batch, &sync);
        let elapsed = started.elapsed();
        if let Err(e) = written {
            let reason = format!("write of {} appends failed: {e}", accepted.len());
            return self.fail_closed(reason, accepted.into_iter().map(|(r, _)| r));
        }
        assert!(
            head.seq > self.head.seq,
            "a written group advances the chain"
        );
        self.head = head;
        for (key, state) in overlay.states {
            self.cache.insert(key, state);
        }
        let appends = u64::try_from(accepted.len()).unwrap_or(u64::MAX);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.stats.record_group(appends, events, nanos);
        metrics::histogram!(telemetry::GROUP_SIZE)
            .record(f64::from(u32::try_from(appends).unwrap_or(u32::MAX)));
        metrics::histogram!(telemetry::SYNC_SECONDS).record(elapsed.as_secs_f64());
        metrics::counter!(telemetry::EVENTS_TOTAL).increment(events);
        metrics::counter!(telemetry::APPENDS_TOTAL, "result" => telemetry::RESULT_OK)
            .increment(appends);
        for (reply, appended) in accepted {
            complete(reply, Ok(appended));
        }
    }

    fn fail_closed(&mut self, reason: String, replies: impl Iterator<Item = Reply>) {
        self.health.fail(reason);
        let reason = self.health.failure().unwrap_or_default();
        for reply in replies {
            metrics::counter!(telemetry::APPENDS_TOTAL, "result" => telemetry::RESULT_FAILED)
                .increment(1);
            complete(reply, Err(AppendError::Failed(reason.clone())));
        }
    }

    /// Folds one submission and stages its writes; on error nothing of it is staged.
    fn stage(
        &mut self,
        sub: &Submission,
        overlay: &mut Overlay,
        head: &mut ChainHead,
        batch: &mut WriteBatch,
    ) -> Result<Appended, StageError> {
        let mut staged = Staged {
            state: self.current_state(&sub.txn, overlay)?,
            ops: Vec::with_capacity(sub.drafts.len() * 3 + 2),
            seqs: Vec::with_capacity(sub.drafts.len()),
            upstream: None,
            refunds: Vec::new(),
            link: *head,
        };
        for draft in &sub.drafts {
            self.stage_event(&sub.txn, draft, overlay, &mut staged)?;
        }
        let Some(state) = staged.state else {
            return Err(StageError::Refuse(AppendError::Invalid("no events".into())));
        };
        let txn = &sub.txn;
        staged.ops.push(op(
            Txns::NAME,
            Txns::encode_key(txn),
            Some(Txns::encode_value(&state)),
        )?);
        let pending = state.is_pending().then(|| Pending::encode_value(&()));
        staged
            .ops
            .push(op(Pending::NAME, Pending::encode_key(txn), pending)?);
        for (cf, key, value) in staged.ops {
            match value {
                Some(value) => put(&self.db, batch, cf, &key, &value),
                None => delete(&self.db, batch, cf, &key),
            }
            .map_err(StageError::Fatal)?;
        }
        if let Some(id) = staged.upstream {
            overlay.upstream.insert(id, txn.clone());
        }
        for refund in staged.refunds {
            overlay.refunds.insert(refund, txn.clone());
        }
        overlay.states.insert(txn.clone(), state.clone());
        *head = staged.link;
        Ok(Appended {
            seqs: staged.seqs,
            state,
        })
    }

    /// Folds one event into `staged` and stages its event, history and index entries.
    fn stage_event(
        &self,
        txn: &TxnKey,
        draft: &Draft,
        overlay: &Overlay,
        staged: &mut Staged,
    ) -> Result<(), StageError> {
        let seq = staged.link.seq.checked_add(1);
        let seq = seq.ok_or_else(|| StageError::Fatal("seq overflow".into()))?;
        let event = Event {
            seq,
            prev_hash: staged.link.hash,
            at_ms: draft.at_ms,
            txn: txn.clone(),
            body: draft.body.clone(),
        };
        let next = fold(staged.state.as_ref(), &event).map_err(refuse)?;
        self.stage_indexes(&event, overlay, staged)?;
        let (value, hash) = seal(&event).map_err(invalid)?;
        staged
            .ops
            .push(op(Events::NAME, Events::encode_key(&seq), Some(Ok(value)))?);
        let history = TxnEvents::encode_key(&(txn.clone(), seq));
        staged.ops.push(op(
            TxnEvents::NAME,
            history,
            Some(TxnEvents::encode_value(&())),
        )?);
        if moves_money(staged.state.as_ref(), &next) {
            let day = BeijingDay::of_ms(event.at_ms).yyyymmdd();
            let key = ByDay::encode_key(&(day, seq));
            staged
                .ops
                .push(op(ByDay::NAME, key, Some(ByDay::encode_value(&())))?);
        }
        staged.state = Some(next);
        staged.link = ChainHead { seq, hash };
        staged.seqs.push(seq);
        Ok(())
    }

    /// The unique indexes an event claims: its upstream id, its refund id.
    fn stage_indexes(
        &self,
        event: &Event,
        overlay: &Overlay,
        staged: &mut Staged,
    ) -> Result<(), StageError> {
        let txn = &event.txn;
        match &event.body {
            EventBody::PayReceived {
                upstream_partner,
                upstream_trans_id,
                ..
            } => {
                let id = (upstream_partner.clone(), upstream_trans_id.clone());
                self.check_free_upstream(&id, overlay)?;
                let value = Some(UpstreamIds::encode_value(txn));
                staged
                    .ops
                    .push(op(UpstreamIds::NAME, UpstreamIds::encode_key(&id), value)?);
                staged.upstream = Some(id);
            }
            EventBody::RefundIntent { refund, .. } => {
                self.check_refund_owner(refund, txn, overlay)?;
                let value = Some(Refunds::encode_value(txn));
                staged
                    .ops
                    .push(op(Refunds::NAME, Refunds::encode_key(refund), value)?);
                staged.refunds.push(refund.clone());
            }
            _ => {}
        }
        Ok(())
    }

    /// The transaction's state as of everything staged so far: this group, the cache, the table.
    fn current_state(
        &mut self,
        txn: &TxnKey,
        overlay: &Overlay,
    ) -> Result<Option<TxnState>, StageError> {
        if let Some(s) = overlay.states.get(txn) {
            return Ok(Some(s.clone()));
        }
        if let Some(s) = self.cache.map.get(txn) {
            return Ok(Some(s.clone()));
        }
        let stored = self.get::<Txns>(txn)?;
        if let Some(state) = &stored {
            // Asserted after reading back as well as before writing (house style rule 7).
            state.assert_invariants();
            assert_eq!(&state.txn, txn, "snapshot stored under another key");
            self.cache.insert(txn.clone(), state.clone());
        }
        Ok(stored)
    }

    fn check_free_upstream(
        &self,
        id: &(String, String),
        overlay: &Overlay,
    ) -> Result<(), StageError> {
        let taken = overlay.upstream.contains_key(id) || self.get::<UpstreamIds>(id)?.is_some();
        if taken {
            return Err(StageError::Refuse(AppendError::Rejected(
                Rejected::UpstreamIdTaken,
            )));
        }
        Ok(())
    }

    fn check_refund_owner(
        &self,
        refund: &RefundKey,
        txn: &TxnKey,
        overlay: &Overlay,
    ) -> Result<(), StageError> {
        let owner = match overlay.refunds.get(refund) {
            Some(owner) => Some(owner.clone()),
            None => self.get::<Refunds>(refund)?,
        };
        match owner {
            Some(owner) if &owner != txn => Err(StageError::Refuse(AppendError::Rejected(
                Rejected::RefundOfOtherTxn,
            ))),
            _ => Ok(()),
        }
    }

    fn get<T: Table>(&self, key: &T::Key) -> Result<Option<T::Value>, StageError> {
        let cf = self
            .db
            .cf_handle(T::NAME)
            .ok_or_else(|| StageError::Fatal(format!("no column family {}", T::NAME)))?;
        let key = T::encode_key(key)
            .map_err(|e| StageError::Refuse(AppendError::Invalid(e.to_string())))?;
        let bytes = self
            .db
            .get_pinned_cf(cf, key)
            .map_err(|e| StageError::Fatal(format!("read of {} failed: {e}", T::NAME)))?;
        match bytes {
            None => Ok(None),
            Some(bytes) => T::decode_value(&bytes).map(Some).map_err(|e| {
                StageError::Fatal(format!("{} holds an undecodable value: {e}", T::NAME))
            }),
        }
    }
}

fn refuse(r: Rejected) -> StageError {
    StageError::Refuse(AppendError::Rejected(r))
}

fn invalid(e: crate::CodecError) -> StageError {
    StageError::Refuse(AppendError::Invalid(e.to_string()))
}

fn op(
    cf: &'static str,
    key: Result<Vec<u8>, crate::CodecError>,
    value: Option<Result<Vec<u8>, crate::CodecError>>,
) -> Result<Op, StageError> {
    let key = key.map_err(invalid)?;
    let value = value.transpose().map_err(invalid)?;
    Ok((cf, key, value))
}

fn put(db: &DB, batch: &mut WriteBatch, cf: &str, key: &[u8], value: &[u8]) -> Result<(), String> {
    let cf_handle = db
        .cf_handle(cf)
        .ok_or_else(|| format!("no column family {cf}"))?;
    batch.put_cf(cf_handle, key, value);
    Ok(())
}

/// Stages the new chain head in `meta`.
fn put_head(db: &DB, batch: &mut WriteBatch, head: ChainHead) -> Result<(), String> {
    let key = Meta::encode_key(&MetaKey::Head).map_err(|e| e.to_string())?;
    let value = Meta::encode_value(&MetaValue::Head(head)).map_err(|e| e.to_string())?;
    put(db, batch, Meta::NAME, &key, &value)
}

fn delete(db: &DB, batch: &mut WriteBatch, cf: &str, key: &[u8]) -> Result<(), String> {
    let cf_handle = db
        .cf_handle(cf)
        .ok_or_else(|| format!("no column family {cf}"))?;
    batch.delete_cf(cf_handle, key);
    Ok(())
}

/// Completes one submitter; a submitter that stopped waiting is not an error.
fn complete(reply: Reply, result: Result<Appended, AppendError>) {
    let _ = reply.send(result);
}
