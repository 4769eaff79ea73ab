//! One request: routing, the body read under its limits and deadline, the handler's task, and
//! the operations endpoints.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONNECTION, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{timeout_at, Instant};

use super::accept::{reject, Routes, Shared};
use super::{
    GatewayHttp, Handler, HttpReply, Readiness, TransportReject, BODY_DRAIN_BYTES_MAX,
    GATEWAY_PATH, HEALTHZ_PATH, METRICS_CONTENT_TYPE, METRICS_PATH, READYZ_PATH,
};
use crate::telemetry;

/// One connection's view of the server.
pub(super) struct Exchange<H> {
    pub(super) shared: Arc<Shared<H>>,
    pub(super) peer: SocketAddr,
    pub(super) routes: Routes,
    /// The connection's slot under `connections_max`; a handler task holds it too.
    pub(super) slot: Arc<OwnedSemaphorePermit>,
}

type Reply = Response<Full<Bytes>>;

/// Answers one request.
pub(super) async fn respond<H: Handler>(exchange: &Exchange<H>, req: Request<Incoming>) -> Reply {
    let routes = exchange.routes;
    match req.uri().path() {
        GATEWAY_PATH if routes.gateway => gateway(exchange, req).await,
        METRICS_PATH if routes.ops => ops(req.method(), || {
            let text = exchange.shared.metrics.render();
            plain(StatusCode::OK, METRICS_CONTENT_TYPE, text)
        }),
        HEALTHZ_PATH if routes.ops => ops(req.method(), || text(StatusCode::OK, "ok\n")),
        READYZ_PATH if routes.ops => ops(req.method(), || readyz(&exchange.shared)),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn ops(method: &Method, answer: impl FnOnce() -> Reply) -> Reply {
    if method == Method::GET || method == Method::HEAD {
        return answer();
    }
    let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "GET\n");
    r.headers_mut()
        .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
    r
}

fn readyz<H: Handler>(shared: &Shared<H>) -> Reply {
    if shared.stopping.load(Ordering::SeqCst) {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: shutting down\n",
        );
    }
    match shared.handler.readiness() {
        Readiness::Ready => text(StatusCode::OK, "ready\n"),
        Readiness::NotReady(why) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}

/// What reading a body gave.
#[derive(Debug)]
enum BodyRead {
    /// The whole body, within the limit.
    Whole(Bytes),
    /// Over the limit; `drained` when the rest was read to its end (the connection can go on).
    TooLarge { drained: bool },
    /// Not complete by the deadline.
    Timeout,
    /// Framing broke, or the connection did.
    Malformed,
}

async fn gateway<H: Handler>(exchange: &Exchange<H>, req: Request<Incoming>) -> Reply {
    let shared = &exchange.shared;
    let deadline = Instant::now() + shared.limits.request_timeout;
    let method_post = match *req.method() {
        Method::GET => false,
        Method::POST => true,
        _ => {
            let mut r = refuse(shared, TransportReject::BadMethod);
            *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, POST"));
            return r;
        }
    };
    let query = Bytes::copy_from_slice(req.uri().query().unwrap_or("").as_bytes());
    // The body of a GET is not read; hyper does not reuse a connection with an unread body.
    let body = if method_post {
        match read_body(req.into_body(), shared.limits.body_bytes_max, deadline).await {
            BodyRead::Whole(body) => body,
            BodyRead::TooLarge { drained } => {
                let r = refuse(shared, TransportReject::BodyTooLarge);
                return if drained { r } else { close(r) };
            }
            BodyRead::Timeout => return close(refuse(shared, TransportReject::BodyTimeout)),
            BodyRead::Malformed => return close(refuse(shared, TransportReject::BodyMalformed)),
        }
    } else {
        Bytes::new()
    };
    let job = GatewayHttp {
        query,
        body,
        peer: exchange.peer,
        method_post,
    };
    let task = tokio::spawn(run_handler(
        Arc::clone(shared),
        Arc::clone(&exchange.slot),
        job,
    ));
    match timeout_at(deadline, task).await {
        Ok(Ok(reply)) => reply_of(reply),
        Ok(Err(e)) => {
            tracing::error!(peer = %exchange.peer, error = %e, "the gateway handler panicked");
            close(text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n"))
        }
        Err(_) => refuse(shared, TransportReject::HandlerTimeout),
    }
}

/// Runs the handler to its end, holding the connection's slot and counted in flight, whether or
/// not anyone still waits for the answer.
async fn run_handler<H: Handler>(
    shared: Arc<Shared<H>>,
    slot: Arc<OwnedSemaphorePermit>,
    job: GatewayHttp,
) -> HttpReply {
    let _running = shared.handlers.subscribe();
    let _slot = slot;
    metrics::gauge!(telemetry::IN_FLIGHT).increment(1.0);
    let _in_flight = InFlight;
    shared.handler.gateway(job).await
}

/// Takes [`telemetry::IN_FLIGHT`] down when the handler ends (or panics).
struct InFlight;

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!(telemetry::IN_FLIGHT).decrement(1.0);
    }
}

/// Reads a body of at most `limit` bytes by `deadline`.
async fn read_body(mut body: Incoming, limit: usize, deadline: Instant) -> BodyRead {
    let limit_u64 = u64::try_from(limit).unwrap_or(u64::MAX);
    let drain_u64 = u64::try_from(BODY_DRAIN_BYTES_MAX).unwrap_or(u64::MAX);
    let declared = body.size_hint().exact();
    if let Some(declared) = declared {
        if declared > drain_u64 {
            return BodyRead::TooLarge { drained: false };
        }
        if declared > limit_u64 {
            return drain(body, 0, deadline).await;
        }
    }
    let capacity = declared
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0)
        .min(limit);
    let mut buf = BytesMut::with_capacity(capacity);
    loop {
        let frame = match timeout_at(deadline, body.frame()).await {
            Err(_) => return BodyRead::Timeout,
            Ok(None) => return BodyRead::Whole(buf.freeze()),
            Ok(Some(Err(_))) => return BodyRead::Malformed,
            Ok(Some(Ok(frame))) => frame,
        };
        // Trailers are ignored.
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let total = buf.len().saturating_add(data.len());
        if total > limit {
            return drain(body, total, deadline).await;
        }
        buf.extend_from_slice(&data);
    }
}

/// Reads and drops the rest of an over-limit body (`seen` bytes so far) up to
/// [`BODY_DRAIN_BYTES_MAX`] by `deadline`.
async fn drain(mut body: Incoming, mut seen: usize, deadline: Instant) -> BodyRead {
    loop {
        if seen > BODY_DRAIN_BYTES_MAX {
            return BodyRead::TooLarge { drained: false };
        }
        match timeout_at(deadline, body.frame()).await {
            Ok(None) => return BodyRead::TooLarge { drained: true },
            Ok(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    seen = seen.saturating_add(data.len());
                }
            }
            Err(_) | Ok(Some(Err(_))) => return BodyRead::TooLarge { drained: false },
        }
    }
}

/// The handler's answer to a refused request, counted.
fn refuse<H: Handler>(shared: &Shared<H>, why: TransportReject) -> Reply {
    reject(why.reason());
    reply_of(shared.handler.reject(why))
}

fn reply_of(reply: HttpReply) -> Reply {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    plain(status, reply.content_type, reply.body)
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Reply {
    plain(status, "text/plain; charset=utf-8", body)
}

fn plain(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    match HeaderValue::from_str(content_type) {
        Ok(v) => {
            r.headers_mut().insert(CONTENT_TYPE, v);
        }
        Err(_) => tracing::warn!(content_type, "a reply's content type is not a valid header"),
    }
    r
}

/// Asks hyper to close the connection after this answer.
fn close(mut r: Reply) -> Reply {
    r.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    r
}
