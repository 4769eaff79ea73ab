//! The switch's durable transaction journal.
//!
//! Every state change of a payment is an [`Event`] appended to a hash-chained, append-only
//! journal in RocksDB, together with the transaction's new [`TxnState`] snapshot and the
//! indexes that find it, in one synced write shared by every appender waiting at that moment
//! (group commit). The rules of a transaction's life (which event may follow which, and refund
//! conservation) are the pure fold [`TxnState::apply`], so current state is always derivable
//! from the events.
//!
//! Module map: [`record`] (the event types), [`state`] (the fold), [`codec`] (value and key
//! layouts), [`tables`] (column families as typed tables), [`chain`] (the hash chain and its
//! verification), [`options`] (every RocksDB option and why), [`writer`] (group commit, fail
//! closed), [`journal`] (open, append, the read-only handle), [`reader`] (reads), [`day`]
//! (Beijing settlement days), [`telemetry`] (metric names), [`error`] (the error taxonomy).
//!
//! **Architecture Invariant:** this crate knows nothing of HTTP, TLS or XML, and depends on
//! neither `alipay` nor `switch`: it stores its own versioned types.
//!
//! **Architecture Invariant:** every write to the database is one `WriteBatch` with the WAL on
//! and `sync=true`, made by the writer thread (or once at creation); nothing acknowledges an
//! append before its batch is synced.

pub mod chain;
pub mod codec;
pub mod day;
pub mod error;
pub mod finance;
pub mod journal;
pub mod options;
pub mod reader;
pub mod record;
pub mod state;
pub mod tables;
pub mod telemetry;
pub mod writer;

pub use chain::VerifyReport;
pub use day::BeijingDay;
pub use error::{AppendError, ChainBreak, CodecError, Error, Rejected, Result};
pub use journal::{Appending, Journal, ReadOnlyJournal, APPEND_EVENTS_MAX, JOURNAL_FORMAT};
pub use options::{JournalOptions, WalRecovery};
pub use reader::Reader;
pub use record::{
    CancelAction, Draft, Event, EventBody, Hash, Money, NotifyResult, Outcome, RefundKey,
    TradeStatus, TxnKey,
};
pub use state::{
    fold, moves_money, CancelState, ExceptionState, NotifyDue, NotifyState, RefundState,
    RefundStatus, TxnState, TxnStatus,
};
pub use tables::ChainHead;
pub use telemetry::StatsSnapshot;
pub use writer::{Appended, HealthStatus};
