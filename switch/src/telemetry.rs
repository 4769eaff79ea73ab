//! Metric names (one place, so dashboards and code agree) and the Prometheus recorder.
//!
//! Labels come from small closed sets: service names, result codes, configured endpoint and
//! account names. Never a merchant order number, a caller-supplied string or a buyer code.
//!
//! [`install_metrics`] installs the process-wide `metrics` recorder (the journal's metrics in
//! `ledger::telemetry` go through it too); `/metrics` renders its [`PrometheusHandle`]. Histograms
//! are real Prometheus histograms with fixed buckets: latencies (names ending `_seconds`) from
//! 100 µs to 30 s, the journal's sync latency from 25 µs to 2.5 s, the journal's group size in
//! powers of two up to its largest configurable group.

use std::sync::Mutex;

pub use metrics_exporter_prometheus::PrometheusHandle;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

/// Requests answered by the gateway, by `service` and `result` (a result or gateway error code).
pub const REQUESTS: &str = "switch_requests_total";
/// Whole-request latency at the gateway, seconds, by `service`.
pub const REQUEST_SECONDS: &str = "switch_request_seconds";
/// Requests in flight: gateway requests whose handler is running (counted by the transport, from
/// the moment the body is read until the handler answers, even if the client has gone).
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
/// Merchant queries of unresolved transactions answered from the journal because someone asked
/// upstream less than one query interval ago (or the resolver is cancelling).
pub const QUERIES_FROM_JOURNAL: &str = "switch_queries_from_journal_total";
/// Transactions the resolver is driving (scheduled or being worked on).
pub const RESOLVER_TRACKED: &str = "switch_resolver_tracked";
/// Resolver steps taken, by `step` (`query`, `cancel`, `refund`, `reverse`, `give_up`) and
/// `result` (`done`, `busy`).
pub const RESOLVER_STEPS: &str = "switch_resolver_steps_total";
/// Alarm: transactions the resolver or the notifier gave up on (an exception was journaled).
pub const RESOLVER_GAVE_UP: &str = "switch_resolver_gave_up_total";
/// Transactions in the exceptions list at the last sweep of the pending table.
pub const EXCEPTIONS: &str = "switch_exceptions";
/// Transactions in the journal's pending table at the last sweep.
pub const PENDING: &str = "switch_pending";
/// Merchant notification tries, by `result` (`delivered`, `failed`).
pub const NOTIFICATIONS: &str = "switch_notifications_total";
/// Notifications the notifier holds in memory (each owed by one transaction).
pub const NOTIFY_QUEUE: &str = "switch_notify_queue";
/// Offers of an owed notification dropped because the notifier's memory was full (the next
/// sweep of the pending table offers them again).
pub const NOTIFY_OFFERS_DROPPED: &str = "switch_notify_offers_dropped_total";
/// Connections accepted by the listeners and still open.
pub const CONNECTIONS: &str = "switch_connections";
/// Requests and connections refused by a transport limit, by `reason` (one of
/// [`TRANSPORT_REJECT_REASONS`]).
pub const TRANSPORT_REJECTS: &str = "switch_transport_rejects_total";

/// `reason` of [`TRANSPORT_REJECTS`]: a connection over `connections_max`, closed at accept.
pub const REASON_CONNECTIONS: &str = "connections";
/// `reason`: a TLS handshake that failed or did not finish within the header read timeout.
pub const REASON_TLS: &str = "tls";
/// `reason`: a request head hyper could not parse or that was too large (answered 400/431).
pub const REASON_BAD_HEAD: &str = "bad_head";
/// `reason`: a body over `body_bytes_max`, declared or streamed.
pub const REASON_BODY_TOO_LARGE: &str = "body_too_large";
/// `reason`: a body that did not arrive within the request deadline.
pub const REASON_BODY_TIMEOUT: &str = "body_timeout";
/// `reason`: a body whose framing broke (bad chunked encoding, connection lost mid-body).
pub const REASON_BODY_MALFORMED: &str = "body_malformed";
/// `reason`: a method other than GET or POST on `/gateway.do`.
pub const REASON_BAD_METHOD: &str = "bad_method";
/// `reason`: a handler that had not answered by the request deadline.
pub const REASON_HANDLER_TIMEOUT: &str = "handler_timeout";
/// Every `reason` label value of [`TRANSPORT_REJECTS`] (a closed set).
pub const TRANSPORT_REJECT_REASONS: [&str; 8] = [
    REASON_CONNECTIONS,
    REASON_TLS,
    REASON_BAD_HEAD,
    REASON_BODY_TOO_LARGE,
    REASON_BODY_TIMEOUT,
    REASON_BODY_MALFORMED,
    REASON_BAD_METHOD,
    REASON_HANDLER_TIMEOUT,
];
/// Requests answered "not processed" (`UNKNOWN` + `SYSTEM_BUSY`: nothing journaled, nothing
/// sent), by `service` and `reason`: the gateway's own (`gateway_in_flight`,
/// `caller_in_flight`, `caller_rate`, see `admission::Refusal`) or the engine's (`in_flight`,
/// `duplicate`, `journal_queue`, `journal`, `upstream`, `build`, see `engine::Busy`).
pub const ADMISSION_REFUSALS: &str = "switch_admission_refusals_total";
/// The adaptive bound on calls in flight to an `endpoint` (between the account's
/// `concurrency_min` and its `pool_size`; see `upstream::limiter`).
pub const UPSTREAM_CONCURRENCY_LIMIT: &str = "switch_upstream_concurrency_limit";

/// Histogram buckets of every latency (metric names ending `_seconds`), seconds: from well under
/// a journal sync to past the longest configurable request deadline.
pub const LATENCY_BUCKETS_SECONDS: [f64; 18] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 20.0, 30.0,
];
/// Histogram buckets of the journal's sync latency ([`ledger::telemetry::SYNC_SECONDS`]),
/// seconds: an fsync takes tens of microseconds on a fast disk and can stall for seconds.
pub const SYNC_BUCKETS_SECONDS: [f64; 15] = [
    0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    1.0, 2.5,
];
/// Histogram buckets of the journal's group size ([`ledger::telemetry::GROUP_SIZE`]),
/// appends per synced write: powers of two up to the queue's largest configurable capacity.
pub const GROUP_SIZE_BUCKETS: [f64; 17] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0,
    16384.0, 32768.0, 65536.0,
];
const _: () = assert!(ledger::options::GROUP_SIZE_LIMIT <= 65_536);

/// The recorder could not be installed.
#[derive(Debug, thiserror::Error)]
#[error("cannot install the Prometheus metrics recorder: {0}")]
pub struct MetricsError(String);

/// The handle of the recorder installed by this module, once installed.
static INSTALLED: Mutex<Option<PrometheusHandle>> = Mutex::new(None);

/// Installs the process-wide Prometheus recorder and returns its handle; a later call returns
/// the same handle (tests start several servers in one process). Fails only when another
/// `metrics` recorder was installed first, by someone else.
///
/// The handle's upkeep (folding recorded histogram samples into buckets) is run by
/// [`crate::server::Bound::serve`] and at every render; a process that records metrics without
/// serving them should call [`PrometheusHandle::run_upkeep`] now and then.
pub fn install_metrics() -> Result<PrometheusHandle, MetricsError> {
    let mut installed = INSTALLED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(handle) = installed.as_ref() {
        return Ok(handle.clone());
    }
    let handle = builder()
        .map_err(|e| MetricsError(e.to_string()))?
        .install_recorder()
        .map_err(|e| MetricsError(e.to_string()))?;
    describe();
    *installed = Some(handle.clone());
    Ok(handle)
}

/// The recorder's configuration: bucket sets by name (a full name beats a suffix).
fn builder() -> Result<PrometheusBuilder, metrics_exporter_prometheus::BuildError> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("_seconds".to_owned()),
            &LATENCY_BUCKETS_SECONDS,
        )?
        .set_buckets_for_metric(
            Matcher::Full(ledger::telemetry::SYNC_SECONDS.to_owned()),
            &SYNC_BUCKETS_SECONDS,
        )?
        .set_buckets_for_metric(
            Matcher::Full(ledger::telemetry::GROUP_SIZE.to_owned()),
            &GROUP_SIZE_BUCKETS,
        )
}

/// Help texts for `/metrics`.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        REQUESTS,
        "Requests answered by the gateway, by service and result."
    );
    describe_histogram!(
        REQUEST_SECONDS,
        Unit::Seconds,
        "Whole-request latency at the gateway."
    );
    describe_gauge!(IN_FLIGHT, "Gateway requests whose handler is running.");
    describe_gauge!(
        ENGINE_IN_FLIGHT,
        "Transactions being processed by the engine."
    );
    describe_counter!(COALESCED, "Duplicates that awaited an in-flight original.");
    describe_counter!(UPSTREAM_CALLS, "Upstream calls, by endpoint and outcome.");
    describe_histogram!(UPSTREAM_SECONDS, Unit::Seconds, "Upstream call latency.");
    describe_counter!(
        UPSTREAM_BAD_SIGNATURE,
        "Alipay answers whose signature did not verify."
    );
    describe_counter!(UPSTREAM_FAILOVERS, "Failovers to a backup endpoint.");
    describe_gauge!(
        BREAKER_STATE,
        "Circuit breaker: 0 closed, 1 half-open, 2 open."
    );
    describe_gauge!(POOL_IN_USE, "Upstream connections in use.");
    describe_gauge!(
        CONNECTIONS,
        "Connections accepted by the listeners and still open."
    );
    describe_counter!(
        TRANSPORT_REJECTS,
        "Requests and connections refused by a transport limit."
    );
    describe_histogram!(
        ledger::telemetry::GROUP_SIZE,
        Unit::Count,
        "Appends written per synced journal write."
    );
    describe_histogram!(
        ledger::telemetry::SYNC_SECONDS,
        Unit::Seconds,
        "Time of one journal group's write and sync."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_increasing() {
        for set in [
            &LATENCY_BUCKETS_SECONDS[..],
            &SYNC_BUCKETS_SECONDS[..],
            &GROUP_SIZE_BUCKETS[..],
        ] {
            assert!(set.windows(2).all(|w| w[0] < w[1]), "{set:?}");
        }
    }

    #[test]
    fn builder_accepts_the_bucket_sets() {
        assert!(builder().is_ok());
    }
}
