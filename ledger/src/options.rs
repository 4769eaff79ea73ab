//! Every RocksDB option that matters for durability, written out with the reason for it.
//!
//! RocksDB's defaults are tuned for throughput with a tolerable loss window; a payment journal
//! wants the opposite: an acknowledged write survives any crash (INV-1), and any damage is
//! reported, not repaired silently. Each setting below says which of those it serves. The
//! journal's own limits (queue capacity, group size, cache size) are in [`JournalOptions`], each
//! with a named default.

use std::path::Path;
use std::time::Duration;

use rocksdb::{BlockBasedOptions, Cache, ChecksumType, DBCompressionType, DBRecoveryMode, Options};

/// Capacity of the bounded queue between appenders and the writer thread. When it is full,
/// [`crate::Journal::append`] blocks (backpressure) and [`crate::Journal::try_append`] refuses.
/// Size the switch's in-flight request limit at or below it so it never fills in practice.
pub const DEFAULT_QUEUE_CAPACITY: usize = 4096;

/// The most submissions merged into one write (one WAL append, one sync).
pub const DEFAULT_GROUP_SIZE_MAX: usize = 512;

/// The longest the writer waits for a group to fill when appenders are concurrent; see
/// [`JournalOptions::group_linger`].
pub const DEFAULT_GROUP_LINGER: Duration = Duration::from_millis(2);

/// Sync pacing is off by default: measured side by side, it cost throughput at every
/// concurrency (benches/README.md) while the adaptive linger already keeps syncs near 400/s at
/// 64 appenders. Set [`JournalOptions::sync_interval_min`] (e.g. 2.5 ms: at most 400 syncs a
/// second) where the device's sync rate must be capped.
pub const DEFAULT_SYNC_INTERVAL_MIN: Duration = Duration::ZERO;

/// The previous group must have had at least this many submissions for the writer to linger.
pub const DEFAULT_GROUP_LINGER_SIBLINGS: usize = 4;

/// Transaction snapshots the writer keeps in memory (evicted oldest first). Misses read `txns`
/// (recent ones from the memtable). 16,384 cover the last 8 s at 2,000 payments a second, far
/// longer than a pay's intent and outcome are apart; each is a snapshot with a dozen strings, so
/// the cache is a large part of the switch's memory under load.
pub const DEFAULT_STATE_CACHE_ENTRIES_MAX: usize = 65_536;

/// Events whose chain links are verified when the journal opens (the tail; `verify` walks all).
pub const DEFAULT_TAIL_VERIFY_EVENTS: u64 = 4096;

/// Upper bound on the WAL: past it RocksDB flushes the column families that pin the oldest WAL
/// file, so crash recovery replays at most this much.
pub const DEFAULT_MAX_TOTAL_WAL_BYTES: u64 = 256 * 1024 * 1024;

/// Memtable size per column family before a flush to an SST file.
pub const DEFAULT_WRITE_BUFFER_BYTES: usize = 64 * 1024 * 1024;

/// Memtables of all column families together (RocksDB's `db_write_buffer_size`): past it the
/// journal flushes. Without this bound every table could grow to [`DEFAULT_WRITE_BUFFER_BYTES`]
/// before any flush, several hundred MB of RSS under a sustained load (measured: 413 MB after
/// 64,000 payments, `loadtest compare`).
pub const DEFAULT_MEMTABLES_BYTES_MAX: usize = 64 * 1024 * 1024;

/// The one block cache all column families share. Without it RocksDB gives every table its
/// own default cache, a bound that grows with the number of tables.
pub const BLOCK_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// Background writeback granularity for SST and WAL files (see `bytes_per_sync` below).
pub const SYNC_RANGE_BYTES: u64 = 1024 * 1024;

/// Most SST files RocksDB keeps open (a primary; a secondary must keep all open).
pub const MAX_OPEN_FILES: i32 = 4096;

/// RocksDB info-log files kept, and the size of each.
pub const INFO_LOG_FILES_KEPT: usize = 10;
/// See [`INFO_LOG_FILES_KEPT`].
pub const INFO_LOG_FILE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// The longest commit delay accepted (a typo must not stall every append).
pub const GROUP_LINGER_LIMIT: Duration = Duration::from_millis(50);

/// Most submissions one group may hold; the channel is at least this big.
pub const GROUP_SIZE_LIMIT: usize = 65_536;
const _: () = assert!(DEFAULT_GROUP_SIZE_MAX <= DEFAULT_QUEUE_CAPACITY);
const _: () = assert!(DEFAULT_QUEUE_CAPACITY <= GROUP_SIZE_LIMIT);

/// How RocksDB treats a damaged WAL when the journal opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WalRecovery {
    /// `AbsoluteConsistency`: any damage in the WAL, even a torn last record, fails the open.
    /// The default: nothing is ever dropped without an operator deciding so.
    #[default]
    Strict,
    /// `PointInTime`: replay stops at the first damaged record and drops it and what follows.
    /// For an operator, after a `Strict` open failed: with `sync=true` on every write, a torn
    /// record at the very end of the last WAL is a write that was never acknowledged, so
    /// dropping it loses nothing acknowledged. Check the result with `verify` and against the
    /// last chain head anchored elsewhere.
    TornTailTolerated,
}

/// The journal's own settings.
#[derive(Debug, Clone)]
pub struct JournalOptions {
    /// [`DEFAULT_QUEUE_CAPACITY`].
    pub queue_capacity: usize,
    /// [`DEFAULT_GROUP_SIZE_MAX`].
    pub group_size_max: usize,
    /// Commit delay: with concurrent appenders (the previous group had at least
    /// `group_linger_siblings` submissions), the writer waits up to this long for as many
    /// submissions as the previous group had before it writes and syncs. Trades at most this
    /// much latency for far fewer syncs (IOPS) under load; a lone appender never waits. Zero
    /// turns it off. [`DEFAULT_GROUP_LINGER`].
    pub group_linger: Duration,
    /// [`DEFAULT_GROUP_LINGER_SIBLINGS`].
    pub group_linger_siblings: usize,
    /// Sync pacing: with concurrent appenders (as for `group_linger`), a write starts no sooner
    /// than this after the previous one started, and takes everything that arrived meanwhile.
    /// Bounds the sync rate (IOPS, device wear) at `1 / sync_interval_min` under any load, and
    /// makes groups grow with the load instead of the sync rate; costs each concurrent append
    /// up to this much latency. A lone appender is never delayed. Zero turns it off.
    /// [`DEFAULT_SYNC_INTERVAL_MIN`].
    pub sync_interval_min: Duration,
    /// [`DEFAULT_STATE_CACHE_ENTRIES_MAX`].
    pub state_cache_entries_max: usize,
    /// [`DEFAULT_TAIL_VERIFY_EVENTS`].
    pub tail_verify_events: u64,
    /// [`DEFAULT_MAX_TOTAL_WAL_BYTES`].
    pub max_total_wal_bytes: u64,
    /// [`DEFAULT_WRITE_BUFFER_BYTES`].
    pub write_buffer_bytes: usize,
    /// [`DEFAULT_MEMTABLES_BYTES_MAX`].
    pub memtables_bytes_max: usize,
    /// [`WalRecovery::Strict`] unless an operator says otherwise.
    pub wal_recovery: WalRecovery,
}

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions {
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            group_size_max: DEFAULT_GROUP_SIZE_MAX,
            group_linger: DEFAULT_GROUP_LINGER,
            group_linger_siblings: DEFAULT_GROUP_LINGER_SIBLINGS,
            sync_interval_min: DEFAULT_SYNC_INTERVAL_MIN,
            state_cache_entries_max: DEFAULT_STATE_CACHE_ENTRIES_MAX,
            tail_verify_events: DEFAULT_TAIL_VERIFY_EVENTS,
            max_total_wal_bytes: DEFAULT_MAX_TOTAL_WAL_BYTES,
            write_buffer_bytes: DEFAULT_WRITE_BUFFER_BYTES,
            memtables_bytes_max: DEFAULT_MEMTABLES_BYTES_MAX,
            wal_recovery: WalRecovery::Strict,
        }
    }
}

impl JournalOptions {
    /// The limits clamped into their sane ranges (a zero capacity or group would deadlock).
    pub(crate) fn normalized(&self) -> JournalOptions {
        let mut o = self.clone();
        o.queue_capacity = o.queue_capacity.clamp(1, GROUP_SIZE_LIMIT);
        o.group_size_max = o.group_size_max.clamp(1, o.queue_capacity);
        o.state_cache_entries_max = o.state_cache_entries_max.max(1);
        o.group_linger = o.group_linger.min(GROUP_LINGER_LIMIT);
        o.sync_interval_min = o.sync_interval_min.min(GROUP_LINGER_LIMIT);
        o.group_linger_siblings = o.group_linger_siblings.max(2);
        o
    }
}

/// Database-wide options of the writing (primary) instance.
pub(crate) fn db_options(opts: &JournalOptions, cache: &Cache) -> Options {
    let mut o = Options::default();
    // A new journal is created on first open, with every table; an existing one keeps its data.
    o.create_if_missing(true);
    o.create_missing_column_families(true);
    // Check every file and block checksum RocksDB touches and fail on any inconsistency instead
    // of trying to carry on (house style rule 7, applied to the store).
    o.set_paranoid_checks(true);
    // See `WalRecovery`: fail the open on any WAL damage unless an operator chose otherwise.
    o.set_wal_recovery_mode(match opts.wal_recovery {
        WalRecovery::Strict => DBRecoveryMode::AbsoluteConsistency,
        WalRecovery::TornTailTolerated => DBRecoveryMode::PointInTime,
    });
    // Record WAL files and their synced sizes in the MANIFEST, so a missing or truncated WAL
    // file (deleted, lost by a copy) is detected at open instead of silently skipped.
    o.set_track_and_verify_wals_in_manifest(true);
    // Every write goes to the WAL file at once (never buffered in the process waiting for a
    // manual flush); with `sync=true` it is then fsynced before the write returns.
    o.set_manual_wal_flush(false);
    // Flush all column families together: the tables written by one batch always reach SST
    // files together, so no crash or WAL loss can leave an event without its snapshot or index.
    o.set_atomic_flush(true);
    // Bound the WAL, hence the replay time after a crash.
    o.set_max_total_wal_size(opts.max_total_wal_bytes);
    // Recycled WAL files make a torn tail look like old valid records; never recycle.
    o.set_recycle_log_file_num(0);
    // Ask the kernel to write back SST and WAL data in the background every MiB, so the fsync
    // at the end of each group finds little dirty data and its latency stays flat.
    o.set_bytes_per_sync(SYNC_RANGE_BYTES);
    o.set_wal_bytes_per_sync(SYNC_RANGE_BYTES);
    // fdatasync is enough: it persists the data and the metadata needed to read it back (file
    // size); full fsync adds timestamps we do not need.
    o.set_use_fsync(false);
    // One writer thread writes one batch at a time: RocksDB's own write grouping and pipelining
    // add nothing, and `unordered_write` would break snapshot consistency, so both stay off.
    o.set_enable_pipelined_write(false);
    o.set_unordered_write(false);
    o.set_max_open_files(MAX_OPEN_FILES);
    o.set_keep_log_file_num(INFO_LOG_FILES_KEPT);
    o.set_max_log_file_size(INFO_LOG_FILE_BYTES_MAX);
    // Bound the memtables of all tables together (memory), not only each one's.
    o.set_db_write_buffer_size(opts.memtables_bytes_max);
    apply_table_options(&mut o, opts, cache);
    o
}

/// Options of every column family: block checksums, compression, memtable size, the shared
/// block cache.
pub(crate) fn cf_options(opts: &JournalOptions, cache: &Cache) -> Options {
    let mut o = Options::default();
    apply_table_options(&mut o, opts, cache);
    o
}

/// The block cache every table of one open journal shares ([`BLOCK_CACHE_BYTES`]).
pub(crate) fn block_cache() -> Cache {
    Cache::new_lru_cache(BLOCK_CACHE_BYTES)
}

fn apply_table_options(o: &mut Options, opts: &JournalOptions, cache: &Cache) {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    // Every SST block carries an XXH3 checksum, verified on every read (ReadOptions default).
    table.set_checksum_type(ChecksumType::XXH3);
    o.set_block_based_table_factory(&table);
    // Records are postcard (compact already) but keys and ids repeat; LZ4 is cheap to decode.
    o.set_compression_type(DBCompressionType::Lz4);
    o.set_write_buffer_size(opts.write_buffer_bytes);
}

/// Options of a secondary (read-only, catching up) instance beside a running primary.
pub(crate) fn secondary_options(opts: &JournalOptions, cache: &Cache) -> Options {
    let mut o = Options::default();
    o.set_paranoid_checks(true);
    // A secondary must keep every SST file open: the primary may delete one after a compaction
    // while the secondary still has it in its view.
    o.set_max_open_files(-1);
    o.set_keep_log_file_num(INFO_LOG_FILES_KEPT);
    o.set_max_log_file_size(INFO_LOG_FILE_BYTES_MAX);
    apply_table_options(&mut o, opts, cache);
    o
}

/// True when `path` holds a RocksDB database already.
pub(crate) fn exists(path: &Path) -> bool {
    path.join("CURRENT").is_file()
}
