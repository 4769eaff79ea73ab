//! Finance's errors, by what the operator can do about them.
//!
//! A journal whose events do not fold is not something finance can repair (it reports the seq);
//! a malformed Alipay file is reported with its line and reason ([`ParseError`]); I/O and the
//! carry-over state file name their path. The CLI maps each to its own exit code.

use std::path::PathBuf;

use crate::error::Rejected;
use crate::finance::alipay_file::ParseError;

/// Everything finance can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FinanceError {
    /// An event the fold rejects: the events are not a valid journal's.
    #[error("event {seq} does not apply to its transaction: {source}")]
    Fold {
        /// The event.
        seq: u64,
        /// Why the fold rejected it.
        #[source]
        source: Rejected,
    },
    /// A transaction's events not in increasing seq order.
    #[error(
        "event {seq} comes after event {after} of its transaction: events must be in seq order"
    )]
    OutOfOrder {
        /// The event.
        seq: u64,
        /// The seq before it.
        after: u64,
    },
    /// Reading the journal failed (not a journal, another format, a broken chain, storage).
    #[error("journal: {0}")]
    Journal(#[source] crate::error::Error),
    /// A malformed Alipay file.
    #[error("{path}: {source}")]
    AlipayFile {
        /// The file.
        path: PathBuf,
        /// Line and reason.
        #[source]
        source: ParseError,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {message}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the system said.
        message: String,
    },
    /// A carry-over state file that cannot be read back.
    #[error("carry-over state {path}: {reason}")]
    CarryState {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The Alipay file is for another day than the one reconciled.
    #[error("the Alipay file is for {found}, not {expected}")]
    WrongDay {
        /// The day asked for.
        expected: String,
        /// The day in the file's header.
        found: String,
    },
}

impl FinanceError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, error: &std::io::Error) -> FinanceError {
        FinanceError::Io {
            path: path.into(),
            message: error.to_string(),
        }
    }
}
