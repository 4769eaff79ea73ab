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
//! * [`notify`]: merchant notifications: the final status after an unknown pay, resends with one
//!   `notify_id` until acknowledged, giving up after the ladder, a hanging merchant endpoint.
//! * [`resolver`]: unknown pays resolved on Alipay's schedule (query, cancel, refund past the
//!   Beijing-day cutoff, with moved clocks), cancels resent until definite, polls coalesced.
//! * [`crash`]: the `switch` binary killed with SIGKILL and restarted; SIGTERM stops it cleanly.
//! * [`chaos`]: the binary SIGKILLed at random points of faulty traffic, round after round, then
//!   left to finish: journal, simulator and what the cashiers were told agree exactly.
//! * [`overload`]: a flood of pays is refused in part, with nothing journaled or sent for the
//!   refused ones, while queries and cancels keep completing.
//! * [`admin`]: the operators' admin API: lookup, the pending and exceptions lists, "resolve
//!   now" and "cancel" journaled with who and why, and the refusals that journal nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod bad_input;
mod chaos;
mod common;
mod crash;
mod faults;
mod idempotency;
mod isolation;
mod notify;
mod overload;
mod resolver;
mod services;
