//! The file as written: one serde type per section, unknown keys refused, every default a named
//! constant. [`super::validate`] turns these into the checked [`super::Config`].
//!
//! Enumerations (sign types, modes, encodings) are kept as strings here and parsed during
//! validation, so a bad value is one error among all the others instead of stopping the read of
//! its section.

use serde::Deserialize;

/// Default `gateway.body_bytes_max`: a pay request is about 1 KiB.
pub const DEFAULT_BODY_BYTES_MAX: usize = 64 * 1024;
/// Largest accepted `gateway.body_bytes_max`.
pub const BODY_BYTES_LIMIT: usize = 1024 * 1024;
/// Default `gateway.header_read_timeout_ms`.
pub const DEFAULT_HEADER_READ_TIMEOUT_MS: u64 = 5_000;
/// Default `gateway.request_timeout_ms`: the whole request, upstream call included.
pub const DEFAULT_GATEWAY_REQUEST_TIMEOUT_MS: u64 = 20_000;
/// Default `gateway.connections_max`.
pub const DEFAULT_CONNECTIONS_MAX: usize = 10_000;
/// Default `gateway.in_flight_max` (all callers together); at most `journal.queue_capacity`.
pub const DEFAULT_GATEWAY_IN_FLIGHT_MAX: usize = 4096;
/// Default `accounts[].pool_size`: pooled connections per endpoint.
pub const DEFAULT_POOL_SIZE: usize = 64;
/// Largest accepted `accounts[].pool_size`.
pub const POOL_SIZE_LIMIT: usize = 4096;
/// Default `accounts[].connect_timeout_ms` (TCP and TLS).
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 3_000;
/// Default `accounts[].request_timeout_ms`: one upstream call.
pub const DEFAULT_UPSTREAM_REQUEST_TIMEOUT_MS: u64 = 15_000;
/// Most endpoints of one account.
pub const ENDPOINTS_MAX: usize = 4;
/// Default `callers[].in_flight_max`.
pub const DEFAULT_CALLER_IN_FLIGHT_MAX: usize = 256;
/// Default `resolver.first_query_after_ms` (Alipay: query about 5 s after an unknown pay).
pub const DEFAULT_FIRST_QUERY_AFTER_MS: u64 = 5_000;
/// Default `resolver.query_interval_ms`.
pub const DEFAULT_QUERY_INTERVAL_MS: u64 = 5_000;
/// Default `resolver.query_window_ms`: then cancel.
pub const DEFAULT_QUERY_WINDOW_MS: u64 = 30_000;
/// Default `resolver.cancel_retry_ms`: the delays between cancel attempts; the last repeats.
pub const DEFAULT_CANCEL_RETRY_MS: [u64; 5] = [1_000, 2_000, 5_000, 10_000, 30_000];
/// Default `resolver.cancel_attempts_max`.
pub const DEFAULT_CANCEL_ATTEMPTS_MAX: u32 = 20;
/// Default `resolver.cancel_grace_after_midnight_ms` (Alipay: 15 minutes, spec §5.3).
pub const DEFAULT_CANCEL_GRACE_AFTER_MIDNIGHT_MS: u64 = 15 * 60 * 1000;
/// Default `resolver.refund_attempts_max`.
pub const DEFAULT_REFUND_ATTEMPTS_MAX: u32 = 20;
/// Default `resolver.concurrency`.
pub const DEFAULT_RESOLVER_CONCURRENCY: usize = 64;
/// Default `resolver.sweep_interval_ms`.
pub const DEFAULT_SWEEP_INTERVAL_MS: u64 = 60_000;
/// Default `notify.retry_ms`: Alipay's own ladder, roughly (spec §7), after a first quicker
/// retry or two.
pub const DEFAULT_NOTIFY_RETRY_MS: [u64; 9] = [
    15_000, 60_000, 120_000, 600_000, 600_000, 3_600_000, 7_200_000, 21_600_000, 54_000_000,
];
/// Default `notify.timeout_ms`.
pub const DEFAULT_NOTIFY_TIMEOUT_MS: u64 = 5_000;
/// Default `notify.concurrency`.
pub const DEFAULT_NOTIFY_CONCURRENCY: usize = 64;
/// Default `notify.per_merchant`.
pub const DEFAULT_NOTIFY_PER_MERCHANT: usize = 2;
/// Default `notify.queue_max`.
pub const DEFAULT_NOTIFY_QUEUE_MAX: usize = 10_000;
/// Default `limits.pay_share_percent`.
pub const DEFAULT_PAY_SHARE_PERCENT: u8 = 75;
/// Default `limits.engine_in_flight_max`: transactions the engine tracks at once.
pub const DEFAULT_ENGINE_IN_FLIGHT_MAX: usize = 65_536;
/// Largest accepted `limits.engine_in_flight_max`.
pub const ENGINE_IN_FLIGHT_LIMIT: usize = 16 * 1024 * 1024;
/// Default `simulator.listen`.
pub const DEFAULT_SIMULATOR_LISTEN: &str = "127.0.0.1:9443";
/// Largest accepted duration of any `*_ms` key (one day), so nothing overflows or stalls for ever.
pub const DURATION_MS_LIMIT: u64 = 24 * 3600 * 1000;

const _: () = assert!(DEFAULT_GATEWAY_IN_FLIGHT_MAX <= ledger::options::DEFAULT_QUEUE_CAPACITY);
const _: () = assert!(DEFAULT_GATEWAY_IN_FLIGHT_MAX <= DEFAULT_ENGINE_IN_FLIGHT_MAX);
const _: () = assert!(DEFAULT_CALLER_IN_FLIGHT_MAX <= DEFAULT_GATEWAY_IN_FLIGHT_MAX);
const _: () = assert!(DEFAULT_UPSTREAM_REQUEST_TIMEOUT_MS < DEFAULT_GATEWAY_REQUEST_TIMEOUT_MS);
const _: () = assert!(DEFAULT_CONNECT_TIMEOUT_MS < DEFAULT_UPSTREAM_REQUEST_TIMEOUT_MS);
const _: () = assert!(DEFAULT_BODY_BYTES_MAX <= BODY_BYTES_LIMIT);

/// The top-level keys, in the order the reference documents them.
pub const SECTIONS: &[&str] = &[
    "node",
    "listen",
    "journal",
    "gateway",
    "accounts",
    "merchants",
    "callers",
    "resolver",
    "notify",
    "limits",
    "simulator",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNode {
    pub id: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListen {
    pub https: Option<String>,
    pub http: Option<String>,
    pub admin: Option<String>,
    pub admin_api: Option<String>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    pub cert_out: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJournal {
    pub path: String,
    #[serde(default = "d_queue_capacity")]
    pub queue_capacity: usize,
    #[serde(default = "d_group_size_max")]
    pub group_size_max: usize,
    #[serde(default = "d_group_linger_ms")]
    pub group_linger_ms: u64,
    #[serde(default = "d_state_cache_entries_max")]
    pub state_cache_entries_max: usize,
    #[serde(default = "d_tail_verify_events")]
    pub tail_verify_events: u64,
    #[serde(default = "d_wal_total_bytes_max")]
    pub wal_total_bytes_max: u64,
    #[serde(default = "d_write_buffer_bytes")]
    pub write_buffer_bytes: usize,
    #[serde(default = "d_memtables_bytes_max")]
    pub memtables_bytes_max: usize,
    #[serde(default = "d_wal_recovery")]
    pub wal_recovery: String,
}

fn d_queue_capacity() -> usize {
    ledger::options::DEFAULT_QUEUE_CAPACITY
}
fn d_group_size_max() -> usize {
    ledger::options::DEFAULT_GROUP_SIZE_MAX
}
fn d_group_linger_ms() -> u64 {
    u64::try_from(ledger::options::DEFAULT_GROUP_LINGER.as_millis()).unwrap_or(2)
}
fn d_state_cache_entries_max() -> usize {
    ledger::options::DEFAULT_STATE_CACHE_ENTRIES_MAX
}
fn d_tail_verify_events() -> u64 {
    ledger::options::DEFAULT_TAIL_VERIFY_EVENTS
}
fn d_wal_total_bytes_max() -> u64 {
    ledger::options::DEFAULT_MAX_TOTAL_WAL_BYTES
}
fn d_write_buffer_bytes() -> usize {
    ledger::options::DEFAULT_WRITE_BUFFER_BYTES
}
fn d_memtables_bytes_max() -> usize {
    ledger::options::DEFAULT_MEMTABLES_BYTES_MAX
}
fn d_wal_recovery() -> String {
    "strict".to_owned()
}

/// A key reference as written: a plain path, `{ file = "…" }` or `{ env = "…" }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawKeyRef {
    Path(String),
    Table(RawKeyTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKeyTable {
    pub file: Option<String>,
    pub env: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGateway {
    #[serde(default = "d_body_bytes_max")]
    pub body_bytes_max: usize,
    #[serde(default = "d_header_read_timeout_ms")]
    pub header_read_timeout_ms: u64,
    #[serde(default = "d_gateway_request_timeout_ms")]
    pub request_timeout_ms: u64,
    #[serde(default = "d_connections_max")]
    pub connections_max: usize,
    #[serde(default = "d_gateway_in_flight_max")]
    pub in_flight_max: usize,
    #[serde(default = "d_response_encoding")]
    pub response_encoding: String,
    pub rsa_private_key: Option<RawKeyRef>,
}

impl Default for RawGateway {
    fn default() -> Self {
        RawGateway {
            body_bytes_max: DEFAULT_BODY_BYTES_MAX,
            header_read_timeout_ms: DEFAULT_HEADER_READ_TIMEOUT_MS,
            request_timeout_ms: DEFAULT_GATEWAY_REQUEST_TIMEOUT_MS,
            connections_max: DEFAULT_CONNECTIONS_MAX,
            in_flight_max: DEFAULT_GATEWAY_IN_FLIGHT_MAX,
            response_encoding: d_response_encoding(),
            rsa_private_key: None,
        }
    }
}

fn d_body_bytes_max() -> usize {
    DEFAULT_BODY_BYTES_MAX
}
fn d_header_read_timeout_ms() -> u64 {
    DEFAULT_HEADER_READ_TIMEOUT_MS
}
fn d_gateway_request_timeout_ms() -> u64 {
    DEFAULT_GATEWAY_REQUEST_TIMEOUT_MS
}
fn d_connections_max() -> usize {
    DEFAULT_CONNECTIONS_MAX
}
fn d_gateway_in_flight_max() -> usize {
    DEFAULT_GATEWAY_IN_FLIGHT_MAX
}
fn d_response_encoding() -> String {
    "UTF-8".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEndpoint {
    pub name: String,
    pub url: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccount {
    pub name: String,
    pub partner: String,
    pub sign_type: String,
    pub key: RawKeyRef,
    pub alipay_public_key: Option<RawKeyRef>,
    pub endpoints: Vec<RawEndpoint>,
    #[serde(default = "d_pool_size")]
    pub pool_size: usize,
    #[serde(default = "d_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    #[serde(default = "d_upstream_request_timeout_ms")]
    pub request_timeout_ms: u64,
    pub ca_cert: Option<String>,
    /// Absent: `upstream::limiter::DEFAULT_CONCURRENCY_MIN`, at most `pool_size`.
    pub concurrency_min: Option<usize>,
}

fn d_pool_size() -> usize {
    DEFAULT_POOL_SIZE
}
fn d_connect_timeout_ms() -> u64 {
    DEFAULT_CONNECT_TIMEOUT_MS
}
fn d_upstream_request_timeout_ms() -> u64 {
    DEFAULT_UPSTREAM_REQUEST_TIMEOUT_MS
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMerchant {
    pub id: String,
    pub name: String,
    pub mode: String,
    pub account: String,
    pub secondary_merchant_id: Option<String>,
    pub mcc: Option<String>,
    #[serde(default)]
    pub stores: Vec<RawStore>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCaller {
    pub id: String,
    pub kind: String,
    pub merchants: Option<Vec<String>>,
    pub sign_type: String,
    pub key: RawKeyRef,
    pub notify_url: Option<String>,
    #[serde(default = "d_caller_in_flight_max")]
    pub in_flight_max: usize,
    /// Absent: not rate-limited.
    pub rate_per_s: Option<f64>,
    /// Absent: one second's worth of `rate_per_s`, at least 1.
    pub burst: Option<f64>,
}

fn d_caller_in_flight_max() -> usize {
    DEFAULT_CALLER_IN_FLIGHT_MAX
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawResolver {
    #[serde(default = "d_first_query_after_ms")]
    pub first_query_after_ms: u64,
    #[serde(default = "d_query_interval_ms")]
    pub query_interval_ms: u64,
    #[serde(default = "d_query_window_ms")]
    pub query_window_ms: u64,
    #[serde(default = "d_cancel_retry_ms")]
    pub cancel_retry_ms: Vec<u64>,
    #[serde(default = "d_cancel_attempts_max")]
    pub cancel_attempts_max: u32,
    #[serde(default = "d_cancel_grace_after_midnight_ms")]
    pub cancel_grace_after_midnight_ms: u64,
    #[serde(default = "d_refund_attempts_max")]
    pub refund_attempts_max: u32,
    #[serde(default = "d_resolver_concurrency")]
    pub concurrency: usize,
    #[serde(default = "d_sweep_interval_ms")]
    pub sweep_interval_ms: u64,
}

impl Default for RawResolver {
    fn default() -> Self {
        RawResolver {
            first_query_after_ms: DEFAULT_FIRST_QUERY_AFTER_MS,
            query_interval_ms: DEFAULT_QUERY_INTERVAL_MS,
            query_window_ms: DEFAULT_QUERY_WINDOW_MS,
            cancel_retry_ms: d_cancel_retry_ms(),
            cancel_attempts_max: DEFAULT_CANCEL_ATTEMPTS_MAX,
            cancel_grace_after_midnight_ms: DEFAULT_CANCEL_GRACE_AFTER_MIDNIGHT_MS,
            refund_attempts_max: DEFAULT_REFUND_ATTEMPTS_MAX,
            concurrency: DEFAULT_RESOLVER_CONCURRENCY,
            sweep_interval_ms: DEFAULT_SWEEP_INTERVAL_MS,
        }
    }
}

fn d_refund_attempts_max() -> u32 {
    DEFAULT_REFUND_ATTEMPTS_MAX
}
fn d_resolver_concurrency() -> usize {
    DEFAULT_RESOLVER_CONCURRENCY
}
fn d_sweep_interval_ms() -> u64 {
    DEFAULT_SWEEP_INTERVAL_MS
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    #[serde(default = "d_notify_retry_ms")]
    pub retry_ms: Vec<u64>,
    #[serde(default = "d_notify_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "d_notify_concurrency")]
    pub concurrency: usize,
    #[serde(default = "d_notify_per_merchant")]
    pub per_merchant: usize,
    #[serde(default = "d_notify_queue_max")]
    pub queue_max: usize,
}

impl Default for RawNotify {
    fn default() -> Self {
        RawNotify {
            retry_ms: d_notify_retry_ms(),
            timeout_ms: DEFAULT_NOTIFY_TIMEOUT_MS,
            concurrency: DEFAULT_NOTIFY_CONCURRENCY,
            per_merchant: DEFAULT_NOTIFY_PER_MERCHANT,
            queue_max: DEFAULT_NOTIFY_QUEUE_MAX,
        }
    }
}

fn d_notify_retry_ms() -> Vec<u64> {
    DEFAULT_NOTIFY_RETRY_MS.to_vec()
}
fn d_notify_timeout_ms() -> u64 {
    DEFAULT_NOTIFY_TIMEOUT_MS
}
fn d_notify_concurrency() -> usize {
    DEFAULT_NOTIFY_CONCURRENCY
}
fn d_notify_per_merchant() -> usize {
    DEFAULT_NOTIFY_PER_MERCHANT
}
fn d_notify_queue_max() -> usize {
    DEFAULT_NOTIFY_QUEUE_MAX
}

fn d_first_query_after_ms() -> u64 {
    DEFAULT_FIRST_QUERY_AFTER_MS
}
fn d_query_interval_ms() -> u64 {
    DEFAULT_QUERY_INTERVAL_MS
}
fn d_query_window_ms() -> u64 {
    DEFAULT_QUERY_WINDOW_MS
}
fn d_cancel_retry_ms() -> Vec<u64> {
    DEFAULT_CANCEL_RETRY_MS.to_vec()
}
fn d_cancel_attempts_max() -> u32 {
    DEFAULT_CANCEL_ATTEMPTS_MAX
}
fn d_cancel_grace_after_midnight_ms() -> u64 {
    DEFAULT_CANCEL_GRACE_AFTER_MIDNIGHT_MS
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    #[serde(default = "d_engine_in_flight_max")]
    pub engine_in_flight_max: usize,
    #[serde(default = "d_pay_share_percent")]
    pub pay_share_percent: u8,
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits {
            engine_in_flight_max: DEFAULT_ENGINE_IN_FLIGHT_MAX,
            pay_share_percent: DEFAULT_PAY_SHARE_PERCENT,
        }
    }
}

fn d_pay_share_percent() -> u8 {
    DEFAULT_PAY_SHARE_PERCENT
}

fn d_engine_in_flight_max() -> usize {
    DEFAULT_ENGINE_IN_FLIGHT_MAX
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSimulator {
    #[serde(default = "d_true")]
    pub embedded: bool,
    pub config: Option<String>,
    #[serde(default = "d_simulator_listen")]
    pub listen: String,
    pub http_listen: Option<String>,
    pub cert_out: Option<String>,
    #[serde(default = "d_time_scale")]
    pub time_scale: u32,
    #[serde(default = "d_seed")]
    pub seed: u64,
}

fn d_true() -> bool {
    true
}
fn d_simulator_listen() -> String {
    DEFAULT_SIMULATOR_LISTEN.to_owned()
}
fn d_time_scale() -> u32 {
    1
}
fn d_seed() -> u64 {
    1
}
