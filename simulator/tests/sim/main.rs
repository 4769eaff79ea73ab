//! Integration tests: the simulator in-process on loopback, over real TLS and real signatures,
//! checked through its admin API like a real client would.

mod bad_input;
mod common;
mod dials;
mod files;
mod magic;
mod notify;
mod services;
