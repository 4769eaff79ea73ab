//! `alipay-sim`: a faithful, stateful, deterministic simulator of Alipay's legacy MAPI
//! barcode-payment gateway, the test double for the switch and the load generator.
pub mod clock;
pub mod config;
pub mod dials;
pub mod error;
pub mod ledger;
pub mod money;
