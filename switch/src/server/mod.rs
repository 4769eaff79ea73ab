//! Listeners and the HTTP transport of the gateway, and the operations endpoints (`/metrics`,
//! `/healthz`, `/readyz`) — everything about a request that does not depend on what the gateway
//! does with it.
//!
//! hyper 1 (HTTP/1.1, keep-alive) over plain TCP and over rustls. The gateway plugs in as a
//! [`Handler`]; it sees a [`GatewayHttp`] (raw query, whole body, peer) and answers an
//! [`HttpReply`]. Start-up is two steps so a caller (or a test on port 0) learns the real
//! addresses before serving: [`bind`], then [`Bound::serve`] until a shutdown future resolves.
//!
//! # Limits (every one named; [`ServerLimits`] and the constants below)
//!
//! - **Connections**: at most [`ServerLimits::connections_max`] open connections over the
//!   gateway listeners together; one more is accepted and closed at once (counted
//!   `reason="connections"` in [`telemetry::TRANSPORT_REJECTS`]). The operations listener has its
//!   own [`OPS_CONNECTIONS_MAX`], so a flood at the gateway cannot blind the probes and the
//!   scraper. A connection's slot is held until both the connection and any handler it started
//!   have ended, so connections plus orphaned handlers never exceed the limit.
//! - **TLS handshake and request head**: each within [`ServerLimits::header_read_timeout`]
//!   (hyper's `header_read_timeout`, which also ends a keep-alive connection left idle that
//!   long); a slow-headers client is cut off. A failed handshake drops the connection (counted
//!   `"tls"`). A head over [`HEAD_BYTES_MAX`] is answered 431 by hyper (counted `"bad_head"`).
//!   A head timeout is not counted: it cannot be told apart from a normal idle keep-alive end.
//! - **Body**: at most [`ServerLimits::body_bytes_max`]. A declared `Content-Length` over it is
//!   refused before any byte of the body is buffered; a streamed (chunked) body is bounded as it
//!   arrives. An over-limit body is read and dropped up to [`BODY_DRAIN_BYTES_MAX`] within the
//!   request deadline, so a client still writing it reliably reads the answer instead of a reset;
//!   beyond that it is answered at once and the connection closed. Either way the handler's
//!   [`Handler::gateway`] is not called and the answer is [`Handler::reject`] with
//!   [`TransportReject::BodyTooLarge`], as the handler renders it — Alipay answers such errors
//!   with HTTP 200 and an XML `ILLEGAL_ARGUMENT`, so the transport does not impose a 413.
//! - **Whole request**: [`ServerLimits::request_timeout`] from the end of the head, covering the
//!   body read and the handler. A body still incomplete then is
//!   [`TransportReject::BodyTimeout`] and the connection is closed; a handler that has not
//!   answered then is [`TransportReject::HandlerTimeout`].
//!
//! # Handlers run to completion
//!
//! [`Handler::gateway`] runs in its own task: neither a client that disconnects nor the request
//! deadline cancels it halfway (a payment whose intent is journaled must get its outcome
//! journaled too). Its answer is then simply dropped, and [`telemetry::IN_FLIGHT`] counts it
//! until it ends. A panic in it is answered 500 and logged at ERROR; stopping the process on a
//! panic is the application's panic hook's business.
//!
//! # Paths
//!
//! On the gateway listeners: [`GATEWAY_PATH`] with GET (the URL query) or POST (query and body);
//! another method is answered `405` with `Allow: GET, POST` and the body of
//! [`Handler::reject`]`(`[`TransportReject::BadMethod`]`)`. The operations paths
//! ([`METRICS_PATH`], [`HEALTHZ_PATH`], [`READYZ_PATH`], GET or HEAD) are served on the
//! operations listener when there is one; without one, on the plain HTTP listener, or on HTTPS
//! when there is no plain listener (as `config/README.md` documents for `listen.admin`). Anything
//! else is 404.
//!
//! # Shutdown
//!
//! When the shutdown future resolves, every listener closes (new connections are refused), idle
//! keep-alive connections are closed, requests in progress finish and are answered with
//! `Connection: close`, and [`Bound::serve`] returns once every connection and every handler task
//! has ended, or after the drain timeout ([`DEFAULT_DRAIN_TIMEOUT`],
//! [`Bound::with_drain_timeout`]), when the remaining connections are closed. `/readyz` answers
//! 503 from the moment shutdown begins.

mod accept;
mod request;
mod tls;

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::telemetry;
pub use crate::telemetry::{install_metrics, MetricsError, PrometheusHandle};
pub use tls::{self_signed, tls_from_pem, TlsError, SELF_SIGNED_NAMES};

/// The merchant gateway's path.
pub const GATEWAY_PATH: &str = "/gateway.do";
/// Prometheus text exposition of every metric.
pub const METRICS_PATH: &str = "/metrics";
/// Liveness: 200 while the process serves.
pub const HEALTHZ_PATH: &str = "/healthz";
/// Readiness: [`Handler::readiness`].
pub const READYZ_PATH: &str = "/readyz";
/// The content type of `/metrics` (Prometheus text format 0.0.4).
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// Default of [`ServerLimits::body_bytes_max`] (`gateway.body_bytes_max`).
pub const DEFAULT_BODY_BYTES_MAX: usize = 64 * 1024;
/// Default of [`ServerLimits::header_read_timeout`] (`gateway.header_read_timeout_ms`).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Default of [`ServerLimits::request_timeout`] (`gateway.request_timeout_ms`).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// Default of [`ServerLimits::connections_max`] (`gateway.connections_max`).
pub const DEFAULT_CONNECTIONS_MAX: usize = 10_000;
/// How long [`Bound::serve`] waits at shutdown for connections and handlers to finish.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head (request line, URL query included, and headers), bytes: hyper's read
/// buffer. A GET form travels in the query, so this also bounds a GET form.
pub const HEAD_BYTES_MAX: usize = 64 * 1024;
/// An over-limit body is read and dropped up to this many bytes (see the module doc).
pub const BODY_DRAIN_BYTES_MAX: usize = 1024 * 1024;
/// Largest accepted [`ServerLimits::body_bytes_max`].
pub const BODY_BYTES_LIMIT: usize = BODY_DRAIN_BYTES_MAX;
/// Open connections on the operations listener.
pub const OPS_CONNECTIONS_MAX: usize = 64;
/// How often the metrics recorder's histograms are folded into buckets while serving.
pub const METRICS_UPKEEP_INTERVAL: Duration = Duration::from_secs(5);
/// Pause after a failed `accept` (out of descriptors, say) before the next.
pub const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// hyper's smallest read buffer.
const HYPER_BUF_BYTES_MIN: usize = 8192;
const _: () = assert!(HEAD_BYTES_MAX >= HYPER_BUF_BYTES_MIN);
const _: () = assert!(DEFAULT_BODY_BYTES_MAX <= BODY_BYTES_LIMIT);
const _: () = assert!(BODY_BYTES_LIMIT <= BODY_DRAIN_BYTES_MAX);
const _: () = assert!(DEFAULT_HEADER_READ_TIMEOUT.as_nanos() <= DEFAULT_REQUEST_TIMEOUT.as_nanos());

/// The transport's limits (the `[gateway]` section of the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Largest request body, bytes (1 to [`BODY_BYTES_LIMIT`]).
    pub body_bytes_max: usize,
    /// Time for a TLS handshake, and for a request head from its first poll (also the longest a
    /// keep-alive connection may sit idle).
    pub header_read_timeout: Duration,
    /// Time for a request from the end of its head: body read and handler.
    pub request_timeout: Duration,
    /// Open connections over the gateway listeners together (at least 1).
    pub connections_max: usize,
}

impl Default for ServerLimits {
    fn default() -> ServerLimits {
        ServerLimits {
            body_bytes_max: DEFAULT_BODY_BYTES_MAX,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            connections_max: DEFAULT_CONNECTIONS_MAX,
        }
    }
}

impl ServerLimits {
    /// Checks each limit's range.
    pub fn check(&self) -> Result<(), String> {
        if self.body_bytes_max == 0 || self.body_bytes_max > BODY_BYTES_LIMIT {
            return Err(format!(
                "body_bytes_max is {}, not within 1 to {BODY_BYTES_LIMIT}",
                self.body_bytes_max
            ));
        }
        if self.header_read_timeout.is_zero() {
            return Err("header_read_timeout is zero".to_owned());
        }
        if self.request_timeout.is_zero() {
            return Err("request_timeout is zero".to_owned());
        }
        if self.connections_max == 0 || self.connections_max > tokio::sync::Semaphore::MAX_PERMITS {
            return Err(format!(
                "connections_max is {}, not within 1 to {}",
                self.connections_max,
                tokio::sync::Semaphore::MAX_PERMITS
            ));
        }
        Ok(())
    }
}

/// The addresses to listen on. At least one of `https` and `http` is required.
#[derive(Debug, Clone, Default)]
pub struct Listeners {
    /// `/gateway.do` over HTTPS, with its TLS configuration ([`self_signed`], [`tls_from_pem`]).
    pub https: Option<(SocketAddr, Arc<rustls::ServerConfig>)>,
    /// `/gateway.do` over plain HTTP.
    pub http: Option<SocketAddr>,
    /// `/metrics`, `/healthz`, `/readyz` only. When `None`, those paths are served on `http`, or
    /// on `https` when there is no `http`.
    pub ops: Option<SocketAddr>,
}

/// A `/gateway.do` request as the gateway needs it. Its `Debug` shows sizes only: query and body
/// carry buyer codes and signatures.
#[derive(Clone)]
pub struct GatewayHttp {
    /// The raw URL query (after `?`, not decoded; empty without one).
    pub query: bytes::Bytes,
    /// The whole body (empty for GET), at most [`ServerLimits::body_bytes_max`] bytes.
    pub body: bytes::Bytes,
    /// The TCP peer (a load balancer's address when behind one).
    pub peer: SocketAddr,
    /// POST (else GET).
    pub method_post: bool,
}

impl fmt::Debug for GatewayHttp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayHttp")
            .field("query_bytes", &self.query.len())
            .field("body_bytes", &self.body.len())
            .field("peer", &self.peer)
            .field("method_post", &self.method_post)
            .finish()
    }
}

/// An answer: status, content type and body. Its `Debug` shows the body's size only.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpReply {
    /// HTTP status code (an invalid one is sent as 500).
    pub status: u16,
    /// The `Content-Type` header (an invalid one is left out).
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpReply {
    /// A reply.
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> HttpReply {
        HttpReply {
            status,
            content_type,
            body: body.into(),
        }
    }

    /// A `text/plain` reply.
    pub fn text(status: u16, body: impl Into<Vec<u8>>) -> HttpReply {
        HttpReply::new(status, "text/plain; charset=utf-8", body)
    }
}

impl fmt::Debug for HttpReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpReply")
            .field("status", &self.status)
            .field("content_type", &self.content_type)
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

/// Why the transport refused a `/gateway.do` request; the handler renders the answer
/// ([`Handler::reject`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportReject {
    /// The body is over [`ServerLimits::body_bytes_max`], declared or streamed.
    BodyTooLarge,
    /// The body was not complete by the request deadline; the connection is closed after the
    /// answer (the client may not read it).
    BodyTimeout,
    /// The body's framing broke (bad chunked encoding); the connection is closed after the
    /// answer.
    BodyMalformed,
    /// A method other than GET or POST; sent with status 405 whatever the reply says.
    BadMethod,
    /// The handler had not answered by the request deadline. It goes on running; its answer
    /// will be lost, so the outcome is unknown to the client.
    HandlerTimeout,
}

impl TransportReject {
    /// The `reason` label of [`telemetry::TRANSPORT_REJECTS`].
    pub fn reason(self) -> &'static str {
        match self {
            TransportReject::BodyTooLarge => telemetry::REASON_BODY_TOO_LARGE,
            TransportReject::BodyTimeout => telemetry::REASON_BODY_TIMEOUT,
            TransportReject::BodyMalformed => telemetry::REASON_BODY_MALFORMED,
            TransportReject::BadMethod => telemetry::REASON_BAD_METHOD,
            TransportReject::HandlerTimeout => telemetry::REASON_HANDLER_TIMEOUT,
        }
    }
}

/// What `/readyz` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// 200 `ready`.
    Ready,
    /// 503 with the reason (an operator's sentence; never secrets or caller data).
    NotReady(String),
}

/// The gateway, as the transport sees it.
pub trait Handler: Send + Sync + 'static {
    /// Answers a `/gateway.do` GET or POST. Runs in its own task, to completion, even when the
    /// client has gone or the request deadline has passed.
    fn gateway(&self, req: GatewayHttp) -> impl Future<Output = HttpReply> + Send;

    /// Answers a request the transport refused (Alipay-style: HTTP 200 with an XML error such
    /// as `ILLEGAL_ARGUMENT`). Must be quick: it runs on the connection's task.
    fn reject(&self, why: TransportReject) -> HttpReply;

    /// Whether the switch can take traffic, for `/readyz`. Must be quick.
    fn readiness(&self) -> Readiness;
}

/// Binds every listener in `listeners` (port 0 picks a free port; read it back from [`Bound`]).
/// Fails on a limit out of range ([`ServerLimits::check`]), no gateway listener, or a bind
/// error, which names the address.
pub async fn bind(listeners: &Listeners, limits: ServerLimits) -> io::Result<Bound> {
    limits
        .check()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    if listeners.https.is_none() && listeners.http.is_none() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "at least one of the https and http listeners is required",
        ));
    }
    let https = match &listeners.https {
        Some((addr, tls)) => Some((listen(*addr).await?, TlsAcceptor::from(Arc::clone(tls)))),
        None => None,
    };
    let http = match listeners.http {
        Some(addr) => Some(listen(addr).await?),
        None => None,
    };
    let ops = match listeners.ops {
        Some(addr) => Some(listen(addr).await?),
        None => None,
    };
    Ok(Bound {
        https,
        http,
        ops,
        limits,
        drain_timeout: DEFAULT_DRAIN_TIMEOUT,
    })
}

async fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}

/// Bound listeners, ready to [`serve`](Bound::serve).
pub struct Bound {
    https: Option<(TcpListener, TlsAcceptor)>,
    http: Option<TcpListener>,
    ops: Option<TcpListener>,
    limits: ServerLimits,
    drain_timeout: Duration,
}

impl fmt::Debug for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bound")
            .field("https", &self.https_addr())
            .field("http", &self.http_addr())
            .field("ops", &self.ops_addr())
            .field("limits", &self.limits)
            .field("drain_timeout", &self.drain_timeout)
            .finish()
    }
}

impl Bound {
    /// The HTTPS listener's address.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// The plain HTTP listener's address.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The operations listener's address.
    pub fn ops_addr(&self) -> Option<SocketAddr> {
        self.ops.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Sets how long [`serve`](Bound::serve) waits at shutdown (default
    /// [`DEFAULT_DRAIN_TIMEOUT`]).
    pub fn with_drain_timeout(mut self, drain_timeout: Duration) -> Bound {
        self.drain_timeout = drain_timeout;
        self
    }

    /// Serves until `shutdown` resolves, then drains (see the module doc) and returns. `metrics`
    /// is rendered at `/metrics` and kept up (its upkeep runs every
    /// [`METRICS_UPKEEP_INTERVAL`]).
    pub async fn serve<H: Handler>(
        self,
        handler: Arc<H>,
        metrics: PrometheusHandle,
        shutdown: impl Future<Output = ()> + Send,
    ) -> io::Result<()> {
        accept::serve(self, handler, metrics, shutdown).await
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C). Should the handlers not install (they always do on
/// Unix), it logs an ERROR and never resolves: the signal's default action then ends the process.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                    _ = int.recv() => tracing::info!("SIGINT: shutting down"),
                }
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, "cannot install the SIGTERM/SIGINT handlers; graceful shutdown is off");
                std::future::pending::<()>().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot install the Ctrl-C handler; graceful shutdown is off");
            std::future::pending::<()>().await;
        }
    }
}
