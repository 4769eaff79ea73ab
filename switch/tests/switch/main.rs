//! Integration tests of the switch over real sockets, real TLS to the simulator and a real
//! RocksDB journal.
//!
//! * [`services`]: each service end to end in acquirer mode, direct mode and through an SI; MD5
//!   and RSA2 callers; extend_info filled from the merchant's record.
//! * [`idempotency`]: 50 concurrent identical pays, a changed resubmission, 16 concurrent
//!   refunds over the paid amount, refund replays.
//! * [`isolation`]: cross-merchant and cross-SI access.
//! * [`faults`]: a hanging upstream, an upstream answer with a bad signature.
//! * [`bad_input`]: the bad-input table; nothing journaled, nothing sent.
//! * [`crash`]: the `switch` binary killed with SIGKILL and restarted; SIGTERM stops it cleanly.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bad_input;
mod common;
mod crash;
mod faults;
mod idempotency;
mod isolation;
mod services;
