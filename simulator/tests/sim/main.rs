//! Integration tests of `alipay-sim`: the simulator in-process on loopback port 0, spoken to over
//! real TLS (trusting its generated certificate) and real signatures, and checked through its
//! admin API like a real client would.
//!
//! * [`admin`]: the admin API itself: the clock's limits, paging through the trades.
//! * [`services`]: the four services for MD5, RSA2 and RSA accounts; GET, POST, GBK, plain HTTP.
//! * [`magic`]: every magic buyer code, each shown happening.
//! * [`dials`]: random rates under a seed, latency, the token bucket, runtime dial changes.
//! * [`notify`]: notifications to a local receiver, resent until it answers `success`.
//! * [`bad_input`]: each bad request (pay, refund, cancel, oversize query, stalled body) gets
//!   its documented answer and changes nothing.
//! * [`files`]: the reconciliation files after pays, a refund and cancels.
//!
//! Run with `cargo test -p alipay-sim`; the whole run takes a few seconds. Simulated time is
//! moved with `POST /admin/clock` rather than raced at a big time scale, and timing assertions
//! are lower bounds only (a slow machine must not fail a test).

// Helpers outside #[test] functions panic on purpose: a panic there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod bad_input;
mod common;
mod dials;
mod files;
mod magic;
mod notify;
mod services;
