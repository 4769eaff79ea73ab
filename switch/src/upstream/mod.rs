//! The pooled TLS client to Alipay for one upstream account: the only part of the switch that
//! knows Alipay's endpoints.
//!
//! # The contract: answered, not sent, unknown
//!
//! Every [`Upstream::call`] ends in exactly one [`Call`], and the three say different things
//! about what Alipay may have done. The engine's no-double-charge guarantee (INV-2: a payment is
//! never sent twice under different order numbers, never "retried" blind) and its
//! every-unknown-gets-resolved guarantee (INV-3: an outcome that may exist at Alipay is resolved
//! by query, cancel or refund, never assumed away) rest on this split:
//!
//! * [`Call::Answered`]: Alipay answered with a response document that parsed and whose
//!   signature verified with the account's verifier (a business answer must be signed; a gateway
//!   rejection `is_success=F` may be unsigned). The body is Alipay's word; the engine reads the
//!   result code (gateway `SYSTEM_ERROR` and business `UNKNOWN` still mean "unknown").
//! * [`Call::NotSent`]: no byte of the request reached any endpoint: every endpoint tried failed
//!   to connect (TCP or TLS, within the connect deadline), or no endpoint was usable (all
//!   breakers open), or no call slot (under the endpoint's concurrency limit) became free
//!   before the deadline. Alipay cannot
//!   have processed it; the engine may send it again (same parameters) or answer "not
//!   processed".
//! * [`Call::Unknown`]: the request may have been written: the deadline passed after hyper began
//!   writing it, the connection broke, the status was not 200 (429 is flagged `throttled`), the
//!   body was not a document or too large, or the signature did not verify (also an alarm:
//!   `telemetry::UPSTREAM_BAD_SIGNATURE`, an ERROR log without the body). Alipay may have
//!   processed it; the engine must resolve it and never resend it as new.
//!
//! # How "never written" is known
//!
//! * hyper-util reports a failure inside the connector as a connect error
//!   (`hyper_util::client::legacy::Error::is_connect`); the connector ([`connector`]) does TCP
//!   and TLS, so a refused connection, an unreachable host, an untrusted certificate and the
//!   connect deadline are all connect errors. Only these fail over to the next endpoint.
//! * When the whole-call deadline passes, the request body tells whether hyper had begun
//!   encoding the request into a connection: hyper asks the body `is_end_stream` while it
//!   writes the head, and not before it has a connection. Untouched: NotSent. Touched: Unknown.
//! * hyper-util resends a request by itself in one case (`retry_canceled_requests`, on): a
//!   pooled connection that turned out to be closed before the request was written to it. hyper
//!   hands the unwritten request back in that case only, so the resend cannot duplicate a
//!   request Alipay saw. Any other send error (even a connection refused *after* reuse was
//!   attempted, if hyper did not give the request back) is Unknown.
//!
//! Nothing else is ever retried here: failover to a backup endpoint happens only after a
//! NotSent-class failure, within the same deadline.
//!
//! # Limits
//!
//! Per endpoint: at most as many calls in flight, hence connections in use, as its adaptive
//! concurrency limit ([`limiter`]: AIMD between `concurrency_min` and `pool_size`, cut on 429s
//! and timeouts, raised by answers within the latency target; waiting for a slot counts against
//! the deadline, and a request that never got one is NotSent), at most `pool_size` idle
//! keep-alive connections, closed after [`POOL_IDLE_TIMEOUT`] unused. Per call: TCP + TLS within
//! `connect_timeout`, the whole call (slot, connect, failover, write, answer, body) within
//! `request_timeout`; the body within `UpstreamOptions::response_bytes_max`. Each endpoint has
//! a circuit breaker ([`breaker`]).
//!
//! Logs and reasons never contain request or response bodies (a pay body holds the
//! `buyer_identity_code`; an answer echoes it), keys or signatures.

pub mod breaker;
pub mod connector;
mod endpoint;
pub mod limiter;
pub mod response;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::header::HeaderValue;
use hyper::Uri;
use tokio::time::Instant;

use crate::telemetry;
use crate::tenants::Account;
pub use breaker::{BreakerConfig, BreakerState};
pub use endpoint::POOL_IDLE_TIMEOUT;
use endpoint::{Attempt, Endpoint, Outgoing};
pub use limiter::LimiterOptions;

/// Why an [`Upstream`] cannot be built from an account.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// The account lists no endpoint.
    #[error("the account has no endpoint")]
    NoEndpoints,
    /// `pool_size` is 0.
    #[error("pool_size must be at least 1")]
    PoolSize,
    /// An endpoint's URL is unusable.
    #[error("endpoint `{name}`: {reason}")]
    BadEndpoint {
        /// The endpoint's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The TLS configuration (the account's `ca_pem`) is unusable.
    #[error("TLS: {0}")]
    Tls(String),
}

/// What became of one upstream call. See the module documentation for the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// Alipay answered with an XML document that parsed and, when it carries a signature,
    /// verified with the account's verifier (a business answer MUST be signed and verified; a
    /// gateway error `is_success=F` may be unsigned).
    Answered {
        /// The endpoint's configured name (`primary`, `backup`).
        endpoint: String,
        /// Which try this was, from 1 (2 and up after failover).
        attempt: u32,
        /// The response body, as received.
        body: Bytes,
    },
    /// Definitely never written to any endpoint: nothing reached Alipay, safe to retry or to
    /// answer "not processed".
    NotSent {
        /// Why, per endpoint tried or skipped.
        reason: String,
    },
    /// May have been written: the outcome must be resolved, never assumed.
    Unknown {
        /// The endpoint's configured name.
        endpoint: String,
        /// Which try this was, from 1.
        attempt: u32,
        /// Why (transport only, never response content).
        reason: String,
        /// HTTP 429: Alipay is throttling this account.
        throttled: bool,
    },
}

impl Call {
    /// `answered`, `not_sent` or `unknown` (the metric label).
    pub fn outcome_label(&self) -> &'static str {
        match self {
            Call::Answered { .. } => "answered",
            Call::NotSent { .. } => "not_sent",
            Call::Unknown { .. } => "unknown",
        }
    }
}

/// One endpoint's state, for metrics and the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointStatus {
    /// The configured name.
    pub name: String,
    /// The metric label, `<account>/<endpoint>`.
    pub label: String,
    /// The gateway URL.
    pub url: String,
    /// Its circuit breaker.
    pub breaker: BreakerState,
    /// Connections in use now.
    pub in_use: usize,
    /// The bound on connections in use (the account's `pool_size`).
    pub pool_size: usize,
    /// The adaptive bound on calls in flight now, at most `pool_size` (also exported as
    /// `telemetry::UPSTREAM_CONCURRENCY_LIMIT`).
    pub concurrency_limit: usize,
    /// Connections opened since start (TCP and TLS done): with keep-alive, far fewer than calls.
    pub connections_opened: u64,
    /// Connection attempts that failed (refused, unreachable, TLS, connect deadline).
    pub connect_failures: u64,
}

/// Default largest answer body read.
pub const DEFAULT_RESPONSE_BYTES_MAX: usize = alipay::xml::DEFAULT_RESPONSE_BYTES_MAX;

/// Tuning that the account record does not carry; [`Default`] is what production uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamOptions {
    /// Each endpoint's circuit breaker.
    pub breaker: BreakerConfig,
    /// Idle keep-alive connections are closed after this long.
    pub pool_idle_timeout: Duration,
    /// Largest answer body read; a larger one is Unknown.
    pub response_bytes_max: usize,
    /// How each endpoint's concurrency limit moves.
    pub limiter: LimiterOptions,
}

impl Default for UpstreamOptions {
    fn default() -> UpstreamOptions {
        UpstreamOptions {
            breaker: BreakerConfig::default(),
            pool_idle_timeout: POOL_IDLE_TIMEOUT,
            response_bytes_max: DEFAULT_RESPONSE_BYTES_MAX,
            limiter: LimiterOptions::default(),
        }
    }
}

/// The client to Alipay for one upstream account. Cloning is cheap (shared state).
#[derive(Debug, Clone)]
pub struct Upstream {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    account: Arc<Account>,
    endpoints: Vec<Endpoint>,
    options: UpstreamOptions,
    bad_signatures: AtomicU64,
}

impl Upstream {
    /// The client of `account`, with the default options.
    pub fn new(account: Arc<Account>) -> Result<Upstream, UpstreamError> {
        Upstream::with_options(account, UpstreamOptions::default())
    }

    /// The client of `account` with `options`.
    pub fn with_options(
        account: Arc<Account>,
        options: UpstreamOptions,
    ) -> Result<Upstream, UpstreamError> {
        if account.endpoints.is_empty() {
            return Err(UpstreamError::NoEndpoints);
        }
        if account.pool_size == 0 {
            return Err(UpstreamError::PoolSize);
        }
        let tls = connector::client_config(account.ca_pem.as_deref())?;
        let mut endpoints = Vec::with_capacity(account.endpoints.len());
        for spec in &account.endpoints {
            let stats = Arc::new(connector::ConnectStats::default());
            let connector = connector::TlsConnector::new(
                Arc::clone(&tls),
                account.connect_timeout,
                Arc::clone(&stats),
            );
            let endpoint = Endpoint::new(
                &account.name,
                spec,
                account.pool_size,
                connector,
                stats,
                &options,
            )?;
            endpoint.publish();
            endpoints.push(endpoint);
        }
        Ok(Upstream {
            inner: Arc::new(Inner {
                account,
                endpoints,
                options,
                bad_signatures: AtomicU64::new(0),
            }),
        })
    }

    /// The account.
    pub fn account(&self) -> &Arc<Account> {
        &self.inner.account
    }

    /// True when at least one endpoint's breaker is not open (for `/readyz`).
    pub fn usable(&self) -> bool {
        self.inner
            .endpoints
            .iter()
            .any(|e| e.state() != BreakerState::Open)
    }

    /// Each endpoint's state, primary first; also refreshes the endpoint gauges.
    pub fn endpoints(&self) -> Vec<EndpointStatus> {
        self.inner
            .endpoints
            .iter()
            .map(|e| {
                e.publish();
                EndpointStatus {
                    name: e.name.clone(),
                    label: e.label.clone(),
                    url: e.url.clone(),
                    breaker: e.state(),
                    in_use: e.in_use(),
                    pool_size: e.pool_size(),
                    concurrency_limit: e.concurrency_limit(),
                    connections_opened: e.stats.opened.load(Ordering::Relaxed),
                    connect_failures: e.stats.failed.load(Ordering::Relaxed),
                }
            })
            .collect()
    }

    /// Answers whose signature did not verify, since start (the alarm's count, also exported as
    /// `telemetry::UPSTREAM_BAD_SIGNATURE`).
    pub fn bad_signatures(&self) -> u64 {
        self.inner.bad_signatures.load(Ordering::Relaxed)
    }

    /// Sends one signed MAPI request within the account's `request_timeout`. The caller builds
    /// and signs the form with `alipay::FormBuilder::finish_post`, which gives the query
    /// (`_input_charset=UTF-8`) and the body. Never retries a request that may have been
    /// written.
    pub async fn call(&self, service: alipay::Service, query: &str, body: Vec<u8>) -> Call {
        let deadline = Instant::now() + self.inner.account.request_timeout;
        self.call_until(service, query, body, deadline).await
    }

    /// [`Upstream::call`] with an explicit deadline for the whole call (e.g. what is left of a
    /// merchant's own budget).
    pub async fn call_until(
        &self,
        service: alipay::Service,
        query: &str,
        body: Vec<u8>,
        deadline: Instant,
    ) -> Call {
        let inner = &self.inner;
        let account = &inner.account.name;
        if body.is_empty() {
            return Call::NotSent {
                reason: "an empty request body".to_owned(),
            };
        }
        let content_type = content_type(query);
        let body = Bytes::from(body);
        let mut attempt: u32 = 0;
        let mut reasons: Vec<String> = Vec::new();
        let mut out_of_time = false;
        for endpoint in &inner.endpoints {
            if Instant::now() >= deadline {
                out_of_time = true;
                reasons.push(format!("{}: the deadline had passed", endpoint.name));
                break;
            }
            // Before admission: a refusal here must not hold a half-open breaker's probe slot.
            let Some(uri) = request_uri(&endpoint.url, query) else {
                return Call::NotSent {
                    reason: "the query is not valid in a URL".to_owned(),
                };
            };
            let Some(admission) = endpoint.admit() else {
                reasons.push(format!("{}: circuit breaker open", endpoint.name));
                continue;
            };
            attempt = attempt.saturating_add(1);
            if attempt > 1 {
                metrics::counter!(telemetry::UPSTREAM_FAILOVERS, "account" => account.clone())
                    .increment(1);
                tracing::warn!(
                    account = %account,
                    service = service.label(),
                    endpoint = %endpoint.name,
                    attempt,
                    "Failing over to the next upstream endpoint; the request was not sent before."
                );
            }
            let out = Outgoing {
                uri,
                content_type: &content_type,
                body: body.clone(),
                deadline,
            };
            let sent = endpoint
                .send(admission, out, &inner.options, &inner.account.verifier)
                .await;
            match sent {
                Attempt::Answered(body) => {
                    return Call::Answered {
                        endpoint: endpoint.name.clone(),
                        attempt,
                        body,
                    }
                }
                Attempt::NotSent { reason, failover } => {
                    tracing::warn!(
                        account = %account,
                        service = service.label(),
                        endpoint = %endpoint.name,
                        reason = %reason,
                        "Upstream request not sent."
                    );
                    reasons.push(format!("{}: {reason}", endpoint.name));
                    if !failover {
                        break;
                    }
                }
                Attempt::Unknown {
                    reason,
                    throttled,
                    bad_signature,
                } => {
                    if bad_signature {
                        inner.bad_signatures.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!(
                            telemetry::UPSTREAM_BAD_SIGNATURE,
                            "account" => account.clone()
                        )
                        .increment(1);
                        tracing::error!(
                            account = %account,
                            service = service.label(),
                            endpoint = %endpoint.name,
                            reason = %reason,
                            "An answer from Alipay did not verify with the account's key: treated \
                             as an unknown outcome. Check the account's key, and whether \
                             something between the switch and Alipay alters answers."
                        );
                    } else {
                        tracing::warn!(
                            account = %account,
                            service = service.label(),
                            endpoint = %endpoint.name,
                            reason = %reason,
                            throttled,
                            "Upstream outcome unknown: the request may have been processed."
                        );
                    }
                    return Call::Unknown {
                        endpoint: endpoint.name.clone(),
                        attempt,
                        reason,
                        throttled,
                    };
                }
            }
        }
        let reason = if attempt == 0 && !out_of_time {
            format!("no usable endpoint ({})", reasons.join("; "))
        } else {
            reasons.join("; ")
        };
        Call::NotSent { reason }
    }
}

/// `application/x-www-form-urlencoded; charset=<_input_charset of the query, default UTF-8>`.
fn content_type(query: &str) -> HeaderValue {
    let charset = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("_input_charset="))
        .and_then(alipay::Charset::from_label)
        .unwrap_or_default();
    let text = format!(
        "application/x-www-form-urlencoded; charset={}",
        charset.label()
    );
    HeaderValue::from_str(&text)
        .unwrap_or_else(|_| HeaderValue::from_static("application/x-www-form-urlencoded"))
}

/// `{url}?{query}` (just `url` when the query is empty).
fn request_uri(url: &str, query: &str) -> Option<Uri> {
    if query.is_empty() {
        return url.parse().ok();
    }
    format!("{url}?{query}").parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_follows_the_query_charset() {
        let cases = [
            ("_input_charset=UTF-8", "UTF-8"),
            ("_input_charset=gbk", "GBK"),
            ("a=1&_input_charset=GB2312", "GB2312"),
            ("", "UTF-8"),
            ("_input_charset=latin1", "UTF-8"),
        ];
        for (query, charset) in cases {
            assert_eq!(
                content_type(query).to_str().unwrap(),
                format!("application/x-www-form-urlencoded; charset={charset}"),
                "{query}"
            );
        }
    }

    #[test]
    fn request_uris() {
        let u = request_uri("https://h:1/gateway.do", "_input_charset=UTF-8").unwrap();
        assert_eq!(u.to_string(), "https://h:1/gateway.do?_input_charset=UTF-8");
        let u = request_uri("https://h/gateway.do", "").unwrap();
        assert_eq!(u.path_and_query().unwrap().as_str(), "/gateway.do");
        assert!(request_uri("https://h/gateway.do", "a b").is_none());
    }
}
