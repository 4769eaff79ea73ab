//! Metric names (one place, so dashboards and code agree) and the Prometheus recorder.
//!
//! Labels come from small closed sets: service names, result codes, configured endpoint and
//! account names. Never a merchant order number, a caller-supplied string or a buyer code.

/// Requests answered by the gateway, by `service` and `result` (a result or gateway error code).
pub const REQUESTS: &str = "switch_requests_total";
/// Whole-request latency at the gateway, seconds, by `service`.
pub const REQUEST_SECONDS: &str = "switch_request_seconds";
/// Requests in flight at the gateway.
pub const IN_FLIGHT: &str = "switch_in_flight";
/// Transactions being processed by the engine (the bounded in-flight table).
pub const ENGINE_IN_FLIGHT: &str = "switch_engine_in_flight";
/// Duplicate requests that waited for an in-flight original instead of calling upstream.
pub const COALESCED: &str = "switch_coalesced_total";
/// Upstream calls, by `endpoint` and `outcome` (`answered`, `not_sent`, `unknown`).
pub const UPSTREAM_CALLS: &str = "switch_upstream_calls_total";
/// Upstream call latency, seconds, by `endpoint`.
pub const UPSTREAM_SECONDS: &str = "switch_upstream_seconds";
/// Alarm: answers from Alipay whose signature did not verify, by `account`.
pub const UPSTREAM_BAD_SIGNATURE: &str = "switch_upstream_bad_signature_total";
/// Failovers to a backup endpoint, by `account`.
pub const UPSTREAM_FAILOVERS: &str = "switch_upstream_failovers_total";
/// Circuit breaker state per `endpoint`: 0 closed, 1 half-open, 2 open.
pub const BREAKER_STATE: &str = "switch_upstream_breaker_state";
/// Connections to an `endpoint` in use.
pub const POOL_IN_USE: &str = "switch_upstream_pool_in_use";
/// Connections accepted by the listeners and still open.
pub const CONNECTIONS: &str = "switch_connections";
/// Requests refused by a transport limit, by `reason`.
pub const TRANSPORT_REJECTS: &str = "switch_transport_rejects_total";
