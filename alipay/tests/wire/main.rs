//! Integration tests of the `alipay` wire-format crate.
//!
//! One test binary (one link, shared fixtures); each module covers one boundary:
//!
//! * [`openssl`]: signatures and MD5 digests cross-checked against the openssl CLI.
//! * [`response_props`]: every response the writer emits reads back and verifies.
//! * [`form_props`]: signed requests round-trip, and any change to them fails verification.
//! * [`no_panic`]: decoding arbitrary input never panics.
//! * [`amount_props`]: amounts parse, format and add exactly.
//! * [`validation`]: one table row per validation rule of forms and requests.
//! * [`xml_hostile`]: the XML reader against hostile and odd documents.
//! * [`notify`]: the `trade_status_sync` notification.
//!
//! Run with `cargo test -p alipay`; fixtures are regenerated with
//! `tests/fixtures/make-fixtures.sh`.

// clippy.toml lets `#[test]` functions unwrap; the helpers they call here do the same, and a
// panic in them is a failed test just the same.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod amount_props;
mod common;
mod form_props;
mod no_panic;
mod notify;
mod openssl;
mod response_props;
mod validation;
mod xml_hostile;
