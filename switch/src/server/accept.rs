//! The accept loop, the connection limits, TLS handshakes, hyper's connection driver and the
//! graceful drain at shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::request::{self, Exchange};
use super::{
    Bound, Handler, PrometheusHandle, ServerLimits, ACCEPT_ERROR_BACKOFF, HEAD_BYTES_MAX,
    METRICS_UPKEEP_INTERVAL, OPS_CONNECTIONS_MAX,
};
use crate::telemetry;

/// What is shared by every connection of one [`Bound::serve`].
pub(super) struct Shared<H> {
    pub(super) handler: Arc<H>,
    pub(super) metrics: PrometheusHandle,
    pub(super) limits: ServerLimits,
    /// Set when shutdown begins (`/readyz` then says so).
    pub(super) stopping: AtomicBool,
    /// Each running handler task holds a receiver; the drain waits until none is left.
    pub(super) handlers: watch::Sender<()>,
}

/// Which paths a listener serves.
#[derive(Debug, Clone, Copy)]
pub(super) struct Routes {
    pub(super) gateway: bool,
    pub(super) ops: bool,
}

/// One listener in the loop.
struct Listener {
    tcp: TcpListener,
    tls: Option<TlsAcceptor>,
    routes: Routes,
    permits: Arc<Semaphore>,
}

/// One accepted connection, before its task starts.
struct Accepted {
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    routes: Routes,
    permit: OwnedSemaphorePermit,
}

pub(super) async fn serve<H: Handler>(
    bound: Bound,
    handler: Arc<H>,
    metrics: PrometheusHandle,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let Bound {
        https,
        http,
        ops,
        limits,
        drain_timeout,
    } = bound;
    let gateway_permits = Arc::new(Semaphore::new(limits.connections_max));
    let ops_permits = Arc::new(Semaphore::new(OPS_CONNECTIONS_MAX));
    let ops_elsewhere = ops.is_some();
    let has_http = http.is_some();
    let gateway_listener = |tcp, tls, ops| Listener {
        tcp,
        tls,
        routes: Routes { gateway: true, ops },
        permits: Arc::clone(&gateway_permits),
    };
    let mut listeners: Vec<Listener> = Vec::with_capacity(3);
    if let Some((tcp, tls)) = https {
        listeners.push(gateway_listener(
            tcp,
            Some(tls),
            !ops_elsewhere && !has_http,
        ));
    }
    if let Some(tcp) = http {
        listeners.push(gateway_listener(tcp, None, !ops_elsewhere));
    }
    if let Some(tcp) = ops {
        listeners.push(Listener {
            tcp,
            tls: None,
            routes: Routes {
                gateway: false,
                ops: true,
            },
            permits: ops_permits,
        });
    }
    let (handlers, _) = watch::channel(());
    let shared = Arc::new(Shared {
        handler,
        metrics,
        limits,
        stopping: AtomicBool::new(false),
        handlers,
    });
    for l in &listeners {
        if let Ok(addr) = l.tcp.local_addr() {
            let kind = match (l.tls.is_some(), l.routes.gateway) {
                (true, _) => "https",
                (false, true) => "http",
                (false, false) => "operations",
            };
            tracing::info!(%addr, kind, ops_paths = l.routes.ops, "listening");
        }
    }

    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut upkeep = tokio::time::interval(METRICS_UPKEEP_INTERVAL);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            _ = upkeep.tick() => {
                shared.metrics.run_upkeep();
                continue;
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            a = accept(listeners.first()) => a,
            a = accept(listeners.get(1)) => a,
            a = accept(listeners.get(2)) => a,
        };
        let Some(accepted) = accepted else {
            // Out of descriptors or similar: back off instead of spinning.
            tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
            continue;
        };
        let watcher = graceful.watcher();
        connections.spawn(connection(Arc::clone(&shared), accepted, watcher));
    }

    // Refuse new connections at once, then let the open ones finish.
    drop(listeners);
    shared.stopping.store(true, Ordering::SeqCst);
    tracing::info!(
        connections = graceful.count(),
        "shutting down: listeners closed, draining open connections"
    );
    let drained = tokio::time::timeout(drain_timeout, async {
        graceful.shutdown().await;
        shared.handlers.closed().await;
    })
    .await;
    match drained {
        Ok(()) => tracing::info!("every connection and request finished"),
        Err(_) => tracing::warn!(
            drain_timeout_ms = u64::try_from(drain_timeout.as_millis()).unwrap_or(u64::MAX),
            handlers = shared.handlers.receiver_count(),
            "drain timeout: closing the remaining connections; running handlers are left to the process"
        ),
    }
    connections.shutdown().await;
    Ok(())
}

/// Accepts one connection on `listener` (never resolves without one), with a connection slot.
/// `None` after an accept error; a connection over the limit is closed here and the wait goes on.
async fn accept(listener: Option<&Listener>) -> Option<Accepted> {
    let Some(listener) = listener else {
        return std::future::pending().await;
    };
    loop {
        let (stream, peer) = match listener.tcp.accept().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                return None;
            }
        };
        match Arc::clone(&listener.permits).try_acquire_owned() {
            Ok(permit) => {
                return Some(Accepted {
                    stream,
                    peer,
                    tls: listener.tls.clone(),
                    routes: listener.routes,
                    permit,
                })
            }
            Err(_) => {
                reject(telemetry::REASON_CONNECTIONS);
                drop(stream);
            }
        }
    }
}

/// Counts one transport refusal.
pub(super) fn reject(reason: &'static str) {
    metrics::counter!(telemetry::TRANSPORT_REJECTS, "reason" => reason).increment(1);
}

/// [`telemetry::CONNECTIONS`] up while alive.
struct OpenConnection;

impl OpenConnection {
    fn new() -> OpenConnection {
        metrics::gauge!(telemetry::CONNECTIONS).increment(1.0);
        OpenConnection
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        metrics::gauge!(telemetry::CONNECTIONS).decrement(1.0);
    }
}

async fn connection<H: Handler>(shared: Arc<Shared<H>>, accepted: Accepted, watcher: Watcher) {
    let _open = OpenConnection::new();
    let Accepted {
        stream,
        peer,
        tls,
        routes,
        permit,
    } = accepted;
    let _ = stream.set_nodelay(true);
    let exchange = Arc::new(Exchange {
        shared: Arc::clone(&shared),
        peer,
        routes,
        slot: Arc::new(permit),
    });
    match tls {
        None => drive(TokioIo::new(stream), exchange, watcher).await,
        Some(acceptor) => {
            let handshake =
                tokio::time::timeout(shared.limits.header_read_timeout, acceptor.accept(stream))
                    .await;
            match handshake {
                Ok(Ok(tls)) => drive(TokioIo::new(tls), exchange, watcher).await,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    reject(telemetry::REASON_TLS);
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    reject(telemetry::REASON_TLS);
                }
            }
        }
    }
}

/// Serves HTTP/1.1 on one connection until it ends, or until shutdown closes it gracefully.
async fn drive<H, I>(io: I, exchange: Arc<Exchange<H>>, watcher: Watcher)
where
    H: Handler,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let peer = exchange.peer;
    let header_read_timeout = exchange.shared.limits.header_read_timeout;
    let service = service_fn(move |req| {
        let exchange = Arc::clone(&exchange);
        async move { Ok::<_, Infallible>(request::respond(&exchange, req).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .keep_alive(true)
        .max_buf_size(HEAD_BYTES_MAX);
    let conn = builder.serve_connection(io, service);
    if let Err(e) = watcher.watch(conn).await {
        if e.is_parse() {
            reject(telemetry::REASON_BAD_HEAD);
        }
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}
