//! Integration tests of the `ledger` journal.
//!
//! One test binary (one link of RocksDB, shared fixtures); each module proves one property:
//!
//! * [`records`]: every record round-trips; random bytes never panic a decoder; an unknown
//!   format version is a clear error.
//! * [`state`]: the pure fold's transitions and refund conservation (INV-5).
//! * [`journal`]: appends, every read, group-commit semantics, reopen, format check.
//! * [`model`]: random operation sequences against an in-memory model, with reopen.
//! * [`crash`]: SIGKILL during appends loses nothing acknowledged (INV-1).
//! * [`writer_panic`]: a panic in the writer aborts the process and loses nothing acknowledged.
//! * [`diskfull`]: a full disk fails closed and loses nothing (INV-8).
//! * [`tamper`]: a changed, removed or reordered record is found at its seq (INV-7).
//!
//! Run with `cargo test -p ledger`.

// clippy.toml lets `#[test]` functions unwrap; the helpers they call here do the same, and a
// panic in them is a failed test just the same.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(dead_code)]

mod common;
mod crash;
mod diskfull;
mod journal;
mod model;
mod records;
mod state;
mod tamper;
mod writer_panic;
