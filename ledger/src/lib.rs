//! The switch's durable transaction journal.
//!
//! Every state change of a payment is an [`Event`] appended to a hash-chained, append-only
//! journal in RocksDB, together with the transaction's new [`TxnState`] snapshot and the
//! indexes that find it, in one synced write. The rules of a transaction's life (which event may
//! follow which, and refund conservation) are the pure fold [`TxnState::apply`], so current
//! state is always derivable from the events.
//!
//! Module map: [`record`] (the event types), [`state`] (the fold), [`codec`] (value and key
//! layouts), [`day`] (Beijing settlement days), [`error`] (the error taxonomy).
//!
//! **Architecture Invariant:** this crate knows nothing of HTTP, TLS or XML, and depends on
//! neither `alipay` nor `switch`: it stores its own versioned types.

pub mod codec;
pub mod day;
pub mod error;
pub mod finance;
pub mod record;
pub mod state;

pub use day::BeijingDay;
pub use error::{AppendError, ChainBreak, CodecError, Error, Rejected, Result};
pub use record::{
    CancelAction, Draft, Event, EventBody, Hash, Money, NotifyResult, Outcome, RefundKey,
    TradeStatus, TxnKey,
};
pub use state::{
    fold, moves_money, CancelState, NotifyState, RefundState, RefundStatus, TxnState, TxnStatus,
};
