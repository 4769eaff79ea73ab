//! The crate's errors, by what the caller can do about them.
//!
//! - [`Rejected`]: the events broke a rule of the transaction's life (a refund over the paid
//!   amount, a result for an unknown refund, ...). Nothing was written; the caller answers the
//!   merchant with the matching business error.
//! - [`CodecError`]: stored bytes or a key could not be encoded or decoded. On read this means
//!   corruption or a journal written by another format version.
//! - [`AppendError`]: why an append was not acknowledged, and whether anything may have been
//!   written (never, for every variant but `Failed`, whose events were not acknowledged and are
//!   absent or present as a whole after restart).
//! - [`Error`]: opening, reading and verifying the journal.

use crate::record::Hash;
use crate::state::TxnStatus;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why [`crate::state::TxnState::apply`] refused an event. The state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejected {
    /// The first event of a transaction must be `PayReceived`.
    #[error("no transaction with this key was received, and a {event} cannot start one")]
    UnknownTxn {
        /// The event's kind.
        event: &'static str,
    },
    /// `PayReceived` for a key that already has a transaction.
    #[error("the transaction was already received (same fingerprint: {same_fingerprint})")]
    AlreadyReceived {
        /// True when the request is the same one again (replay), false for a conflicting one.
        same_fingerprint: bool,
    },
    /// The event names another transaction than the state it is applied to.
    #[error("the event belongs to another transaction")]
    WrongTxn,
    /// The event is not allowed in the transaction's current status.
    #[error("a {event} is not allowed when the transaction is {status:?}")]
    InvalidTransition {
        /// The status the transaction is in.
        status: TxnStatus,
        /// The event's kind.
        event: &'static str,
    },
    /// An amount in another currency than the transaction's.
    #[error("amount in {found:?}, the transaction is in {expected:?}")]
    CurrencyMismatch {
        /// The transaction's currency.
        expected: [u8; 3],
        /// The event's currency.
        found: [u8; 3],
    },
    /// A pay or refund of zero.
    #[error("the amount is zero")]
    ZeroAmount,
    /// reserved + refunded + requested would exceed the paid amount (paid is 0 when the trade is
    /// not paid).
    #[error("refund of {requested_minor} exceeds what is left: paid {paid_minor}, refunded {refunded_minor}, reserved {reserved_minor}")]
    RefundExceedsPaid {
        /// Paid amount, minor units (0 if not paid).
        paid_minor: u64,
        /// Already refunded.
        refunded_minor: u64,
        /// Reserved by refunds in flight.
        reserved_minor: u64,
        /// Asked for.
        requested_minor: u64,
    },
    /// The refund id was used before with other parameters.
    #[error("refund id already used with different parameters")]
    RefundIdConflict,
    /// The refund id was used before with the same parameters: replay its stored state.
    #[error("refund id already used with the same parameters")]
    RefundExists,
    /// The refund key's merchant is not the transaction's merchant.
    #[error("the refund's merchant is not the transaction's merchant")]
    RefundMerchantMismatch,
    /// A refund id that another transaction already uses (checked by the journal's index).
    #[error("the refund id belongs to another transaction")]
    RefundOfOtherTxn,
    /// A result for a refund this transaction never had.
    #[error("no refund with this id on the transaction")]
    UnknownRefund,
    /// A result for a refund that already has a final result.
    #[error("the refund already has a final result")]
    RefundAlreadyFinal,
    /// The transaction already has the most refunds one transaction may have.
    #[error("more than {max} refunds on one transaction")]
    TooManyRefunds {
        /// [`crate::state::REFUNDS_PER_TXN_MAX`].
        max: usize,
    },
    /// The upstream id is already used by another transaction (checked by the journal's index).
    #[error("the upstream id is already used by another transaction")]
    UpstreamIdTaken,
    /// A text field over its limit.
    #[error("field `{field}` is longer than {max_bytes} bytes")]
    FieldTooLong {
        /// The field's name.
        field: &'static str,
        /// The limit.
        max_bytes: usize,
    },
    /// A time outside [`crate::day::AT_MS_MIN`]..=[`crate::day::AT_MS_MAX`].
    #[error("time {at_ms} ms is outside the years 1970..=9999")]
    TimeOutOfRange {
        /// The time given.
        at_ms: i64,
    },
    /// The transaction already has the most events one transaction may have.
    #[error("more than {max} events on one transaction")]
    TooManyEvents {
        /// [`crate::state::EVENTS_PER_TXN_MAX`].
        max: u32,
    },
    /// An attempt counter would overflow.
    #[error("counter overflow")]
    CounterOverflow,
}

/// Bytes that are not a valid record or key of this format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// An empty value (every value starts with its format version).
    #[error("empty value: no format version byte")]
    Empty,
    /// A value written by a format version this build does not read.
    #[error("format version {found} is not supported (this build reads {supported})")]
    UnknownVersion {
        /// The version byte found.
        found: u8,
        /// The version this build reads.
        supported: u8,
    },
    /// A value or key over the size limit.
    #[error("{len_bytes} bytes, over the limit of {max_bytes}")]
    TooLarge {
        /// The size.
        len_bytes: usize,
        /// The limit.
        max_bytes: usize,
    },
    /// Bytes that postcard cannot decode as the expected type.
    #[error("malformed record: {0}")]
    Malformed(String),
    /// Bytes left over after the record.
    #[error("{0} unexpected bytes after the record")]
    TrailingBytes(usize),
    /// A key that is not of its table's layout.
    #[error("malformed key: {0}")]
    BadKey(&'static str),
    /// A key field over [`crate::record::KEY_FIELD_BYTES_MAX`].
    #[error("key field `{field}` is {len_bytes} bytes, over the limit of {max_bytes}")]
    KeyFieldTooLong {
        /// The field's name.
        field: &'static str,
        /// Its length.
        len_bytes: usize,
        /// The limit.
        max_bytes: usize,
    },
}

/// Where the hash chain first breaks; see [`crate::chain`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainBreak {
    /// The record at `seq` cannot be decoded (a changed byte, or a foreign value).
    #[error("event {seq} cannot be decoded: {reason}")]
    Undecodable {
        /// Where.
        seq: u64,
        /// What the decoder said.
        reason: String,
    },
    /// The record at `seq` decodes but its bytes do not hash to the hash sealed with it.
    #[error("event {seq}: content does not match its hash (a changed byte)")]
    HashMismatch {
        /// Where.
        seq: u64,
    },
    /// The record at `seq` does not link to the hash of the record before it.
    #[error("event {seq}: prev_hash does not match the hash of event {}", seq.saturating_sub(1))]
    BrokenLink {
        /// Where.
        seq: u64,
    },
    /// Event `seq` is missing: the next key is `found`.
    #[error("event {seq} is missing (next present: {found})")]
    Missing {
        /// The first missing seq.
        seq: u64,
        /// The next seq present.
        found: u64,
    },
    /// The record stored under key `seq` says it is event `found` (moved or swapped).
    #[error("the record stored as event {seq} is event {found} (reordered)")]
    Misplaced {
        /// The key.
        seq: u64,
        /// The seq inside the record.
        found: u64,
    },
    /// A key in the events table that is not an 8-byte seq.
    #[error("a key in the events table after event {after} is not a seq")]
    BadKey {
        /// The last good seq before it.
        after: u64,
    },
    /// The chain head recorded in `meta` does not match the last event.
    #[error("meta head is ({head_seq}, {head_hash_hex}) but the last event is {last_seq}")]
    HeadMismatch {
        /// Seq in meta.
        head_seq: u64,
        /// Hash in meta, hex.
        head_hash_hex: String,
        /// Last event present.
        last_seq: u64,
    },
}

/// Opening, reading and verifying the journal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// RocksDB returned an error.
    #[error("rocksdb {context}: {message}")]
    Storage {
        /// What the journal was doing.
        context: &'static str,
        /// RocksDB's message.
        message: String,
    },
    /// A stored value or key could not be decoded, or a key could not be encoded.
    #[error("{table}: {source}")]
    Codec {
        /// The table.
        table: &'static str,
        /// What was wrong.
        #[source]
        source: CodecError,
    },
    /// The journal on disk was written by another journal format version.
    #[error("journal format {found} cannot be opened by this build (format {supported})")]
    Incompatible {
        /// The version on disk.
        found: u32,
        /// The version this build writes.
        supported: u32,
    },
    /// The hash chain is broken (found while opening or verifying).
    #[error("hash chain broken: {0}")]
    Chain(#[from] ChainBreak),
    /// The journal has failed closed and must be reopened by a restarted process.
    #[error("journal failed: {0}")]
    Failed(String),
    /// The directory holds a RocksDB database that is not a journal (tables missing or unknown).
    #[error("not a journal: {0}")]
    NotAJournal(String),
    /// An index points at a record that is absent: the tables disagree.
    #[error("inconsistent journal: {0}")]
    Inconsistent(String),
}

/// Why an append was not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// The events broke a rule; nothing was written.
    #[error("rejected: {0}")]
    Rejected(#[from] Rejected),
    /// The append is malformed (no events, too many, a key over its limit); nothing was written.
    #[error("invalid append: {0}")]
    Invalid(String),
    /// The queue to the writer is full ([`crate::Journal::try_append`] only); nothing was
    /// written. Shed load or retry later.
    #[error("the journal's queue is full")]
    QueueFull,
    /// The journal has failed closed (a write or sync error, now or before). The events were not
    /// acknowledged; after a restart they are either all present or all absent. Stop sending new
    /// work upstream (INV-8).
    #[error("journal failed: {0}")]
    Failed(String),
}

/// Renders a hash as lower-case hex (for messages and tools).
pub fn hex(hash: &Hash) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(64);
    for b in hash {
        let _ = write!(s, "{b:02x}");
    }
    s
}
