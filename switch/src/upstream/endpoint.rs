//! One endpoint of an account: its pooled hyper-util client, the adaptive bound on calls in
//! flight (at most `pool_size`, see [`super::limiter`]), its circuit breaker and its metrics; and
//! one attempt to send a request there.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body, Frame, SizeHint};
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Instant;

use super::breaker::{Admission, Breaker, BreakerState, Outcome};
use super::connector::{ConnectStats, TlsConnector};
use super::limiter::{self, Aimd, ConcurrencyLimiter, Signal};
use super::response::{check_body, check_status, Rejected};
use super::{UpstreamError, UpstreamOptions};
use crate::telemetry;
use crate::tenants::EndpointSpec;

/// What one attempt at one endpoint came to.
#[derive(Debug)]
pub enum Attempt {
    /// A verified answer.
    Answered(Bytes),
    /// Nothing was written. `failover`: another endpoint may be tried (false when the deadline
    /// has passed).
    NotSent { reason: String, failover: bool },
    /// May have been written.
    Unknown {
        reason: String,
        throttled: bool,
        bad_signature: bool,
    },
}

impl Attempt {
    fn outcome_label(&self) -> &'static str {
        match self {
            Attempt::Answered(_) => "answered",
            Attempt::NotSent { .. } => "not_sent",
            Attempt::Unknown { .. } => "unknown",
        }
    }
}

/// One request to send.
#[derive(Debug)]
pub struct Outgoing<'a> {
    /// `{endpoint url}?{query}`.
    pub uri: Uri,
    /// The form content type with its charset.
    pub content_type: &'a HeaderValue,
    /// The signed form.
    pub body: Bytes,
    /// When the whole call must be over.
    pub deadline: Instant,
}

/// A request body that notes when hyper starts encoding the request: hyper asks
/// `is_end_stream` as it writes the head into a connection's buffer, and never before it has a
/// connection. Until then nothing of the request can have left the process.
#[derive(Debug)]
struct TrackedBody {
    data: Option<Bytes>,
    len: u64,
    written: Arc<AtomicBool>,
}

impl TrackedBody {
    fn mark(&self) {
        self.written.store(true, Ordering::Release);
    }
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.mark();
        Poll::Ready(self.data.take().map(|d| Ok(Frame::data(d))))
    }

    fn is_end_stream(&self) -> bool {
        self.mark();
        self.data.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        self.mark();
        SizeHint::with_exact(self.len)
    }
}

/// One endpoint.
pub struct Endpoint {
    /// The configured name (`primary`, `backup`).
    pub name: String,
    /// The metric label: `<account>/<endpoint>`.
    pub label: String,
    /// The gateway URL, without a query.
    pub url: String,
    client: Client<TlsConnector, TrackedBody>,
    /// Calls in flight, at most its adaptive limit, itself at most `pool_size`: one call holds
    /// one connection, so this is also the bound on connections in use.
    limiter: ConcurrencyLimiter,
    pool_size: usize,
    breaker: Mutex<Breaker>,
    /// Connections opened and failed.
    pub stats: Arc<ConnectStats>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("label", &self.label)
            .field("url", &self.url)
            .field("pool_size", &self.pool_size)
            .field("concurrency_limit", &self.limiter.limit())
            .finish_non_exhaustive()
    }
}

/// Idle keep-alive connections are closed after this long unused: under the idle timeouts of
/// the balancers in front of Alipay (commonly 60 s), so the pool rarely hands out a connection
/// the other side is closing at that moment (such a request may have been written and is an
/// unknown outcome).
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

impl Endpoint {
    /// The endpoint of `spec` for the account named `account` (one pool, one breaker).
    pub fn new(
        account: &str,
        spec: &EndpointSpec,
        pool_size: usize,
        connector: TlsConnector,
        stats: Arc<ConnectStats>,
        options: &UpstreamOptions,
    ) -> Result<Endpoint, UpstreamError> {
        let bad = |reason: &str| UpstreamError::BadEndpoint {
            name: spec.name.clone(),
            reason: reason.to_owned(),
        };
        let uri: Uri = spec
            .url
            .parse()
            .map_err(|_| bad("the URL does not parse"))?;
        if uri.scheme_str() != Some("https") {
            return Err(bad("the URL must be https://"));
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(bad("the URL has no host"));
        }
        if uri.query().is_some() {
            return Err(bad("the URL must not carry a query"));
        }
        // retry_canceled_requests: when a pooled connection turns out to be closed before the
        // request was written to it (hyper hands the unsent request back), hyper-util sends it
        // again on another connection. That retry is safe: it happens only when no byte of the
        // request was written, so Alipay cannot have seen it. It is the default; set here so
        // the reliance is explicit.
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(pool_size)
            .pool_idle_timeout(options.pool_idle_timeout)
            .pool_timer(TokioTimer::new())
            .retry_canceled_requests(true)
            .set_host(true)
            .build(connector);
        Ok(Endpoint {
            name: spec.name.clone(),
            label: format!("{account}/{}", spec.name),
            url: spec.url.clone(),
            client,
            limiter: ConcurrencyLimiter::new(Aimd::new(pool_size, options.limiter)),
            pool_size,
            breaker: Mutex::new(Breaker::new(options.breaker)),
            stats,
        })
    }

    fn breaker(&self) -> MutexGuard<'_, Breaker> {
        self.breaker.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The breaker's state now.
    pub fn state(&self) -> BreakerState {
        self.breaker().state(std::time::Instant::now())
    }

    /// Connections in use now (calls in flight).
    pub fn in_use(&self) -> usize {
        self.limiter.in_use()
    }

    /// The adaptive bound on calls in flight now.
    pub fn concurrency_limit(&self) -> usize {
        self.limiter.limit()
    }

    /// The bound on connections in use.
    pub fn pool_size(&self) -> usize {
        self.pool_size
    }

    /// Asks the breaker to let a request through.
    pub fn admit(&self) -> Option<Admission> {
        let mut b = self.breaker();
        let admission = b.admit(std::time::Instant::now());
        self.publish_state(&b);
        admission
    }

    fn record(&self, admission: Admission, outcome: Outcome) {
        let now = std::time::Instant::now();
        let mut b = self.breaker();
        let before = b.state(now);
        b.record(admission, outcome, now);
        let after = b.state(now);
        self.publish_state(&b);
        drop(b);
        if before != BreakerState::Open && after == BreakerState::Open {
            tracing::warn!(
                endpoint = %self.label,
                "Upstream endpoint's circuit breaker opened; it is skipped until its cool-down ends."
            );
        } else if before != BreakerState::Closed && after == BreakerState::Closed {
            tracing::info!(endpoint = %self.label, "Upstream endpoint's circuit breaker closed.");
        }
    }

    fn publish_state(&self, b: &Breaker) {
        let state = b.state(std::time::Instant::now());
        metrics::gauge!(telemetry::BREAKER_STATE, "endpoint" => self.label.clone())
            .set(f64::from(state.gauge()));
    }

    /// Publishes the gauges (breaker state, connections in use, concurrency limit).
    pub fn publish(&self) {
        self.publish_state(&self.breaker());
        self.publish_in_use();
        self.publish_limit();
    }

    fn publish_limit(&self) {
        let limit = u32::try_from(self.limiter.limit()).unwrap_or(u32::MAX);
        metrics::gauge!(telemetry::UPSTREAM_CONCURRENCY_LIMIT, "endpoint" => self.label.clone())
            .set(f64::from(limit));
    }

    fn publish_in_use(&self) {
        let in_use = u32::try_from(self.in_use()).unwrap_or(u32::MAX);
        metrics::gauge!(telemetry::POOL_IN_USE, "endpoint" => self.label.clone())
            .set(f64::from(in_use));
    }

    /// One attempt: waits for a connection slot, sends, reads and checks the answer, all before
    /// the deadline, and tells the breaker what came of it.
    pub async fn send(
        &self,
        admission: Admission,
        out: Outgoing<'_>,
        options: &UpstreamOptions,
        verifier: &alipay::Verifier,
    ) -> Attempt {
        let started = Instant::now();
        // Records Neutral if this future is dropped before a verdict (the caller gave up).
        let mut verdict = Verdict {
            endpoint: self,
            admission,
            outcome: None,
        };
        let attempt = self.send_inner(out, options, verifier, &mut verdict).await;
        drop(verdict);
        metrics::counter!(
            telemetry::UPSTREAM_CALLS,
            "endpoint" => self.label.clone(),
            "outcome" => attempt.outcome_label()
        )
        .increment(1);
        metrics::histogram!(telemetry::UPSTREAM_SECONDS, "endpoint" => self.label.clone())
            .record(started.elapsed().as_secs_f64());
        attempt
    }

    async fn send_inner(
        &self,
        out: Outgoing<'_>,
        options: &UpstreamOptions,
        verifier: &alipay::Verifier,
        verdict: &mut Verdict<'_>,
    ) -> Attempt {
        let Outgoing {
            uri,
            content_type,
            body,
            deadline,
        } = out;
        let Some(slot) = self.limiter.acquire_until(deadline).await else {
            // Not the endpoint's fault: the account's own traffic filled the pool (or what of
            // it the endpoint accepts now).
            verdict.set(Outcome::Neutral);
            let reason = format!(
                "no connection became free before the deadline (pool exhausted at the \
                 concurrency limit {} of pool_size {})",
                self.limiter.limit(),
                self.pool_size
            );
            return not_sent(&reason, false);
        };
        let mut in_use = InUse::new(self, slot);
        let started = Instant::now();
        let written = Arc::new(AtomicBool::new(false));
        let len = u64::try_from(body.len()).unwrap_or(u64::MAX);
        let request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(CONTENT_TYPE, content_type.clone())
            .header(CONTENT_LENGTH, len)
            .body(TrackedBody {
                data: Some(body),
                len,
                written: Arc::clone(&written),
            });
        let request = match request {
            Ok(r) => r,
            Err(_) => {
                verdict.set(Outcome::Neutral);
                return not_sent("the request could not be built", true);
            }
        };
        let exchange = async {
            let response = self.client.request(request).await.map_err(Failed::Send)?;
            let status = response.status().as_u16();
            if let Err(r) = check_status(status) {
                return Err(Failed::Rejected(r));
            }
            let limited = Limited::new(response.into_body(), options.response_bytes_max);
            let body = limited.collect().await.map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    Failed::Rejected(Rejected::NotADocument("the body is over the size limit"))
                } else {
                    Failed::Body(error_chain(&*e))
                }
            })?;
            Ok(body.to_bytes())
        };
        let result = tokio::time::timeout_at(deadline, exchange).await;
        let written_before_end = written.load(Ordering::Acquire);
        in_use.signal(limiter_signal(
            &result,
            written_before_end,
            started.elapsed(),
        ));
        match result {
            Err(_) if !written.load(Ordering::Acquire) => {
                verdict.set(Outcome::Failure);
                not_sent("the deadline passed while connecting", false)
            }
            Err(_) => {
                verdict.set(Outcome::Failure);
                unknown("no answer before the deadline".to_owned())
            }
            Ok(Err(Failed::Send(e))) if e.is_connect() => {
                verdict.set(Outcome::Failure);
                not_sent(&format!("connect failed: {}", error_chain(&e)), true)
            }
            Ok(Err(Failed::Send(e))) => {
                verdict.set(Outcome::Neutral);
                unknown(format!("the exchange failed: {}", error_chain(&e)))
            }
            Ok(Err(Failed::Body(e))) => {
                verdict.set(Outcome::Neutral);
                unknown(format!("reading the answer failed: {e}"))
            }
            Ok(Err(Failed::Rejected(r))) => {
                verdict.set(Outcome::Neutral);
                rejected(r)
            }
            Ok(Ok(bytes)) => match check_body(&bytes, options.response_bytes_max, verifier) {
                Ok(()) => {
                    verdict.set(Outcome::Success);
                    Attempt::Answered(bytes)
                }
                Err(r) => {
                    verdict.set(Outcome::Neutral);
                    rejected(r)
                }
            },
        }
    }
}

fn not_sent(reason: &str, failover: bool) -> Attempt {
    Attempt::NotSent {
        reason: reason.to_owned(),
        failover,
    }
}

fn unknown(reason: String) -> Attempt {
    Attempt::Unknown {
        reason,
        throttled: false,
        bad_signature: false,
    }
}

fn rejected(r: Rejected) -> Attempt {
    Attempt::Unknown {
        reason: r.reason(),
        throttled: r == Rejected::Throttled,
        bad_signature: matches!(r, Rejected::BadSignature(_)),
    }
}

enum Failed {
    Send(hyper_util::client::legacy::Error),
    Body(String),
    Rejected(Rejected),
}

/// Tells the breaker the outcome of an admitted request exactly once, Neutral if none was set.
struct Verdict<'a> {
    endpoint: &'a Endpoint,
    admission: Admission,
    outcome: Option<Outcome>,
}

impl Verdict<'_> {
    fn set(&mut self, outcome: Outcome) {
        self.outcome = Some(outcome);
    }
}

impl Drop for Verdict<'_> {
    fn drop(&mut self) {
        let outcome = self.outcome.unwrap_or(Outcome::Neutral);
        self.endpoint.record(self.admission, outcome);
    }
}

/// What an exchange says about the endpoint's capacity: an answer (its latency), or an
/// overload — a 429, or no answer before the deadline once the request was on its way.
/// (A deadline that passed while still connecting is the breaker's business, as every
/// connect failure.)
fn limiter_signal(
    result: &Result<Result<Bytes, Failed>, tokio::time::error::Elapsed>,
    written: bool,
    latency: Duration,
) -> Signal {
    match result {
        Ok(Ok(_)) => Signal::Answered(latency),
        Ok(Err(Failed::Rejected(Rejected::Throttled))) => Signal::Overload,
        Err(_) if written => Signal::Overload,
        Err(_) | Ok(Err(_)) => Signal::Neutral,
    }
}

/// A held call slot; keeps the in-use and limit gauges current.
struct InUse<'a> {
    endpoint: &'a Endpoint,
    slot: Option<limiter::Slot<'a>>,
}

impl<'a> InUse<'a> {
    fn new(endpoint: &'a Endpoint, slot: limiter::Slot<'a>) -> InUse<'a> {
        endpoint.publish_in_use();
        InUse {
            endpoint,
            slot: Some(slot),
        }
    }

    /// What the call came to, for the limiter (Neutral unless told).
    fn signal(&mut self, signal: Signal) {
        if let Some(slot) = self.slot.as_mut() {
            slot.signal(signal);
        }
    }
}

impl Drop for InUse<'_> {
    fn drop(&mut self) {
        // Released first (the limiter takes its signal), then published, so the gauges see it.
        drop(self.slot.take());
        self.endpoint.publish_in_use();
        self.endpoint.publish_limit();
    }
}

/// The error and its sources on one line (tells a reset from a close). hyper's and the
/// connector's errors describe the transport only, never the request's content.
pub use alipay::error::chain as error_chain;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_counts_as_written_once_hyper_looks_at_it() {
        let written = Arc::new(AtomicBool::new(false));
        let body = TrackedBody {
            data: Some(Bytes::from_static(b"a=1")),
            len: 3,
            written: Arc::clone(&written),
        };
        assert!(!written.load(Ordering::Acquire));
        assert!(!body.is_end_stream());
        assert!(written.load(Ordering::Acquire));
        assert_eq!(body.size_hint().exact(), Some(3));
    }
}
