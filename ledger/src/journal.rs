//! Opening the journal, appending to it, and the read-only handle for tools.
//!
//! [`Journal::open`] opens (or creates) the RocksDB database with the options of
//! [`crate::options`], checks the journal format, verifies the tail of the hash chain and the
//! head in `meta`, and starts the writer thread ([`crate::writer`]). [`Journal::append`] hands a
//! transaction's events to the writer and returns an [`Appending`] the caller awaits (async) or
//! waits on (blocking). Reads are the [`Reader`] methods, reached through `Deref`.

use std::future::Future;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::JoinHandle;

use crossbeam_channel::{Sender, TrySendError};
use rocksdb::{ColumnFamilyDescriptor, WriteBatch, WriteOptions, DB};
use tokio::sync::oneshot;

use crate::error::{AppendError, Error, Result};
use crate::options::{self, JournalOptions};
use crate::reader::Reader;
use crate::record::{Draft, TxnKey};
use crate::tables::{ChainHead, Events, Meta, MetaKey, MetaValue, Table, COLUMN_FAMILIES};
use crate::telemetry::{StatsSnapshot, WriterStats};
use crate::writer::{Appended, Health, HealthStatus, Submission, Writer};

/// The journal layout's format version, stored in `meta` at creation. A journal with another
/// one fails to open with [`Error::Incompatible`]. Format 2 added the snapshot's owed
/// notification and exception, format 3 the queue of owed notifications (development journals
/// of earlier formats are not read).
pub const JOURNAL_FORMAT: u32 = 3;

/// The most events one append may carry.
pub const APPEND_EVENTS_MAX: usize = 64;

/// The writer thread's name.
const WRITER_THREAD: &str = "ledger-writer";

/// The durable journal: one writer thread, reads from any thread.
pub struct Journal {
    reader: Reader,
    tx: Option<Sender<Submission>>,
    writer: Option<JoinHandle<()>>,
    health: Arc<Health>,
    stats: Arc<WriterStats>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("path", &self.reader.db.path())
            .field("health", &self.health.status())
            .finish()
    }
}

impl Deref for Journal {
    type Target = Reader;
    fn deref(&self) -> &Reader {
        &self.reader
    }
}

/// An append on its way: `.await` it, or call [`Appending::wait`] outside async code.
#[derive(Debug)]
pub struct Appending {
    state: AppendingState,
}

#[derive(Debug)]
enum AppendingState {
    // Boxed: an `Appended` carries a whole snapshot; the waiting variant is one pointer.
    Done(Option<Box<Result<Appended, AppendError>>>),
    Waiting(oneshot::Receiver<Result<Appended, AppendError>>),
}

fn writer_gone() -> AppendError {
    AppendError::Failed("the journal's writer has stopped".into())
}

impl Appending {
    fn done(result: Result<Appended, AppendError>) -> Appending {
        Appending {
            state: AppendingState::Done(Some(Box::new(result))),
        }
    }

    /// Blocks until the append is acknowledged (durable) or refused.
    ///
    /// # Panics
    /// When called from inside an async runtime (use `.await` there).
    pub fn wait(self) -> Result<Appended, AppendError> {
        match self.state {
            AppendingState::Done(r) => r.map_or_else(|| Err(writer_gone()), |r| *r),
            AppendingState::Waiting(rx) => {
                rx.blocking_recv().unwrap_or_else(|_| Err(writer_gone()))
            }
        }
    }
}

impl Future for Appending {
    type Output = Result<Appended, AppendError>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().state {
            AppendingState::Done(r) => {
                Poll::Ready(r.take().map_or_else(|| Err(writer_gone()), |r| *r))
            }
            AppendingState::Waiting(rx) => Pin::new(rx)
                .poll(cx)
                .map(|r| r.unwrap_or_else(|_| Err(writer_gone()))),
        }
    }
}

fn storage(context: &'static str) -> impl Fn(rocksdb::Error) -> Error {
    move |e| Error::Storage {
        context,
        message: e.into_string(),
    }
}

fn descriptors(opts: &JournalOptions, cache: &rocksdb::Cache) -> Vec<ColumnFamilyDescriptor> {
    COLUMN_FAMILIES
        .iter()
        .map(|name| ColumnFamilyDescriptor::new(*name, options::cf_options(opts, cache)))
        .collect()
}

/// Checks that an existing database has exactly the journal's tables. Returns false for a
/// creation cut short by a crash, which open completes: RocksDB creates the database, then the
/// column families one at a time in the order of [`COLUMN_FAMILIES`], whose last is `meta`; the
/// format marker is written to `meta` only after every table exists. So a database whose tables
/// are all the journal's but lack `meta` was never initialised and holds nothing acknowledged.
/// A journal table missing while `meta` exists is damage, and is refused.
fn check_tables(path: &Path) -> Result<bool> {
    let found = DB::list_cf(&rocksdb::Options::default(), path).map_err(storage("list tables"))?;
    let is_known = |f: &String| f == "default" || COLUMN_FAMILIES.contains(&f.as_str());
    if found.iter().all(is_known) && !found.iter().any(|f| f == Meta::NAME) {
        return Ok(false);
    }
    let missing: Vec<&str> = COLUMN_FAMILIES
        .iter()
        .copied()
        .filter(|t| !found.iter().any(|f| f == t))
        .collect();
    let unknown: Vec<&String> = found
        .iter()
        .filter(|f| f.as_str() != "default" && !COLUMN_FAMILIES.contains(&f.as_str()))
        .collect();
    if missing.is_empty() && unknown.is_empty() {
        return Ok(true);
    }
    Err(Error::NotAJournal(format!(
        "{}: tables missing {missing:?}, unknown {unknown:?}",
        path.display()
    )))
}

/// Refuses a database that holds data but lacks the journal's `meta` table: not a creation cut
/// short (which holds nothing, since every write comes after the format marker) but another
/// program's RocksDB at a mistaken path. Checked read-only, before open would add the
/// journal's tables to it.
fn check_unwritten(path: &Path) -> Result<()> {
    let found = DB::list_cf(&rocksdb::Options::default(), path).map_err(storage("list tables"))?;
    let db = DB::open_cf_for_read_only(&rocksdb::Options::default(), path, &found, false)
        .map_err(storage("open to check"))?;
    for name in &found {
        let cf = db.cf_handle(name).ok_or_else(|| {
            Error::NotAJournal(format!("{}: table {name} vanished", path.display()))
        })?;
        if let Some(first) = db.iterator_cf(cf, rocksdb::IteratorMode::Start).next() {
            first.map_err(storage("check tables"))?;
            return Err(Error::NotAJournal(format!(
                "{}: a database with data in table {name} but no journal format",
                path.display()
            )));
        }
    }
    Ok(())
}

impl Journal {
    /// Opens the journal at `path`, creating it if the directory holds no database.
    pub fn open(path: impl AsRef<Path>, opts: JournalOptions) -> Result<Journal> {
        let path = path.as_ref();
        let opts = opts.normalized();
        let exists = options::exists(path);
        let complete = exists && check_tables(path)?;
        if exists && !complete {
            check_unwritten(path)?;
        }
        let cache = options::block_cache();
        let mut db_options = options::db_options(&opts, &cache);
        // Tables are created with a new journal only; an existing one must have them all.
        db_options.create_missing_column_families(!complete);
        let db = DB::open_cf_descriptors(&db_options, path, descriptors(&opts, &cache))
            .map_err(storage("open"))?;
        let reader = Reader {
            db: Arc::new(db),
            snapshots: true,
        };
        initialise_or_check_format(&reader)?;
        let head = reader.chain_head()?;
        let report = reader.verify_tail(opts.tail_verify_events)?;
        if let Some(brk) = report.broken {
            return Err(Error::Chain(brk));
        }
        assert_eq!(report.last, head, "a verified tail ends at the meta head");
        let health = Arc::new(Health::default());
        let stats = Arc::new(WriterStats::default());
        let (tx, rx) = crossbeam_channel::bounded(opts.queue_capacity);
        let writer = Writer::new(
            Arc::clone(&reader.db),
            rx,
            Arc::clone(&health),
            Arc::clone(&stats),
            head,
            &opts,
        );
        let stop = StopOnPanic(Arc::clone(&health));
        let handle = std::thread::Builder::new()
            .name(WRITER_THREAD.into())
            .spawn(move || {
                let _stop = stop;
                writer.run();
            })
            .map_err(|e| Error::Failed(format!("cannot start the writer thread: {e}")))?;
        metrics::gauge!(crate::telemetry::FAILED).set(0.0);
        Ok(Journal {
            reader,
            tx: Some(tx),
            writer: Some(handle),
            health,
            stats,
        })
    }

    /// Opens a journal for reading beside a running switch; see [`ReadOnlyJournal`].
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<ReadOnlyJournal> {
        ReadOnlyJournal::open(path.as_ref())
    }

    /// Appends `drafts` (in order) to the transaction `txn`. Blocks only while the writer's
    /// queue is full (backpressure); the returned [`Appending`] resolves once the events are
    /// durable (synced) or refused. Refusals change nothing; [`AppendError::Failed`] means the
    /// journal has failed closed.
    pub fn append(&self, txn: TxnKey, drafts: Vec<Draft>) -> Appending {
        self.submit(txn, drafts, true)
    }

    /// Like [`Journal::append`], but refuses with [`AppendError::QueueFull`] instead of blocking.
    pub fn try_append(&self, txn: TxnKey, drafts: Vec<Draft>) -> Appending {
        self.submit(txn, drafts, false)
    }

    fn submit(&self, txn: TxnKey, drafts: Vec<Draft>, block: bool) -> Appending {
        if let Some(reason) = self.health.failure() {
            return Appending::done(Err(AppendError::Failed(reason)));
        }
        if drafts.is_empty() || drafts.len() > APPEND_EVENTS_MAX {
            let msg = format!(
                "{} events; an append carries 1..={APPEND_EVENTS_MAX}",
                drafts.len()
            );
            return Appending::done(Err(AppendError::Invalid(msg)));
        }
        if let Err(e) = crate::codec::txn_key(&txn) {
            return Appending::done(Err(AppendError::Invalid(e.to_string())));
        }
        let Some(tx) = &self.tx else {
            return Appending::done(Err(writer_gone()));
        };
        let (reply, rx) = oneshot::channel();
        let sub = Submission { txn, drafts, reply };
        let sent = if block {
            tx.send(sub).map_err(|_| writer_gone())
        } else {
            tx.try_send(sub).map_err(|e| match e {
                TrySendError::Full(_) => AppendError::QueueFull,
                TrySendError::Disconnected(_) => writer_gone(),
            })
        };
        match sent {
            Ok(()) => Appending {
                state: AppendingState::Waiting(rx),
            },
            Err(e) => Appending::done(Err(e)),
        }
    }

    /// Ok, or Failed with the reason: for readiness checks. A failed journal stays failed.
    pub fn health(&self) -> HealthStatus {
        self.health.status()
    }

    /// The writer's counters since open (groups = syncs, appends, events, time in sync).
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// Where the journal lives.
    pub fn path(&self) -> &Path {
        self.reader.db.path()
    }

    /// Bytes held by the memtables of all tables, active and not yet flushed (RocksDB's
    /// `rocksdb.cur-size-all-mem-tables`, summed); bounded by `memtables_bytes_max`.
    pub fn memtables_bytes(&self) -> Result<u64> {
        let db = &self.reader.db;
        let mut total = 0u64;
        for name in COLUMN_FAMILIES {
            let cf = db.cf_handle(name).ok_or_else(|| Error::Storage {
                context: "memtables size",
                message: format!("table {name} is missing"),
            })?;
            let bytes = db
                .property_int_value_cf(&cf, "rocksdb.cur-size-all-mem-tables")
                .map_err(storage("memtables size"))?;
            total = total.saturating_add(bytes.unwrap_or(0));
        }
        Ok(total)
    }
}

/// Held by the writer thread: if it unwinds (a broken invariant asserted on the money path),
/// the journal is marked failed and the process stops (house style rule 7). The panic message
/// has been printed by the panic hook by then.
struct StopOnPanic(Arc<Health>);

impl Drop for StopOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0
                .fail("the journal writer panicked on a broken invariant".into());
            std::process::abort();
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        // Closing the channel lets the writer finish what is queued and stop.
        self.tx = None;
        if let Some(handle) = self.writer.take() {
            let _ = handle.join();
        }
    }
}

/// Writes the format and an empty head to a new journal, or checks an existing one's format.
fn initialise_or_check_format(reader: &Reader) -> Result<()> {
    match reader.format()? {
        Some(JOURNAL_FORMAT) => Ok(()),
        Some(found) => Err(Error::Incompatible {
            found,
            supported: JOURNAL_FORMAT,
        }),
        None => {
            let db = &reader.db;
            let events = db
                .cf_handle(Events::NAME)
                .ok_or_else(|| Error::NotAJournal("events table missing".into()))?;
            if db
                .iterator_cf(events, rocksdb::IteratorMode::Start)
                .next()
                .is_some()
            {
                return Err(Error::NotAJournal(
                    "events present but no format in meta".into(),
                ));
            }
            let meta = db
                .cf_handle(Meta::NAME)
                .ok_or_else(|| Error::NotAJournal("meta table missing".into()))?;
            let codec = |e| Error::Codec {
                table: Meta::NAME,
                source: e,
            };
            let mut batch = WriteBatch::default();
            let format = MetaValue::Format(JOURNAL_FORMAT);
            let head = MetaValue::Head(ChainHead::GENESIS);
            for (k, v) in [(MetaKey::Format, format), (MetaKey::Head, head)] {
                batch.put_cf(
                    meta,
                    Meta::encode_key(&k).map_err(codec)?,
                    Meta::encode_value(&v).map_err(codec)?,
                );
            }
            let mut sync = WriteOptions::default();
            sync.set_sync(true);
            db.write_opt(batch, &sync).map_err(storage("initialise"))
        }
    }
}

/// A journal opened as a RocksDB *secondary* instance, for tools beside a running switch
/// (verify, export, reconcile).
///
/// Why secondary and not read-only: RocksDB's read-only mode sees the database as of open and
/// is not meant to run while a primary writes (the primary may delete files it relies on); a
/// secondary is the supported way to read a live primary: it keeps every file it uses open,
/// replays the primary's MANIFEST and WAL on [`ReadOnlyJournal::catch_up`], and never writes
/// the primary's files. It needs a private directory for its own info log, made under the
/// system temp directory and removed on drop.
pub struct ReadOnlyJournal {
    reader: Reader,
    secondary_dir: PathBuf,
}

impl std::fmt::Debug for ReadOnlyJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadOnlyJournal")
            .field("path", &self.reader.db.path())
            .finish()
    }
}

impl Deref for ReadOnlyJournal {
    type Target = Reader;
    fn deref(&self) -> &Reader {
        &self.reader
    }
}

static SECONDARY_COUNTER: AtomicU64 = AtomicU64::new(0);

impl ReadOnlyJournal {
    fn open(path: &Path) -> Result<ReadOnlyJournal> {
        if !options::exists(path) {
            return Err(Error::NotAJournal(format!(
                "{}: no database",
                path.display()
            )));
        }
        if !check_tables(path)? {
            return Err(Error::NotAJournal(format!(
                "{}: not initialised",
                path.display()
            )));
        }
        let n = SECONDARY_COUNTER.fetch_add(1, Ordering::Relaxed);
        let secondary_dir =
            std::env::temp_dir().join(format!("ledger-secondary-{}-{n}", std::process::id()));
        let opts = JournalOptions::default();
        let cache = options::block_cache();
        let db = DB::open_cf_descriptors_as_secondary(
            &options::secondary_options(&opts, &cache),
            path,
            &secondary_dir,
            descriptors(&opts, &cache),
        )
        .map_err(storage("open secondary"))?;
        let journal = ReadOnlyJournal {
            reader: Reader {
                db: Arc::new(db),
                snapshots: false,
            },
            secondary_dir,
        };
        match journal.reader.format()? {
            Some(JOURNAL_FORMAT) => Ok(journal),
            found => Err(Error::Incompatible {
                found: found.unwrap_or(0),
                supported: JOURNAL_FORMAT,
            }),
        }
    }

    /// Catches up with the primary: everything it had written when this returns is visible.
    pub fn catch_up(&mut self) -> Result<()> {
        self.reader
            .db
            .try_catch_up_with_primary()
            .map_err(storage("catch up"))
    }
}

impl Drop for ReadOnlyJournal {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.secondary_dir);
    }
}
