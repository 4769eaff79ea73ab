//! Integration tests of the switch over real sockets, real TLS to the simulator and a real
//! RocksDB journal.

mod bad_input;
mod common;
mod crash;
mod faults;
mod idempotency;
mod isolation;
mod services;
