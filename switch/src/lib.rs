//! `switch`: the acquirer's transaction switch for Alipay barcode payments.
//!
//! Cashier systems send Alipay MAPI requests to [`gateway`] exactly as they would to Alipay. The
//! gateway authenticates the caller against [`tenants`], the [`engine`] journals the intent in
//! the `ledger`, sends it upstream through a pooled TLS [`upstream`] client, journals the outcome
//! and answers. [`server`] owns the listeners and the HTTP transport; [`telemetry`] the metric
//! names and the Prometheus endpoint; [`config`] the one TOML file; [`app`] wires them together.
//!
//! **Architecture Invariant:** only [`gateway`] knows the merchant-facing wire format and only
//! [`upstream`] knows Alipay's endpoints; the engine's decisions ([`engine::decide`]) are pure
//! functions of state, event and time.

pub mod admin;
pub mod admission;
pub mod app;
pub mod config;
pub mod engine;
pub mod gateway;
pub mod notify;
pub mod resolver;
pub mod server;
pub mod telemetry;
pub mod tenants;
pub mod upstream;
