//! The HTTP(S) front: listeners, connections, routing, and the transport faults (hang, reset,
//! 502, slow body, 429) the gateway asks for.
//!
//! Every connection is bounded: a semaphore caps open connections, hyper's header-read timeout
//! caps slow heads, a body that does not arrive within [`BODY_READ_TIMEOUT`] (a lib option) is
//! answered `408` and the connection closed, bodies over [`BODY_BYTES_MAX`] are answered
//! `ILLEGAL_ARGUMENT` unprocessed.
//! A reset is a real TCP RST: the connection task keeps a duplicate of the socket's descriptor,
//! sets `SO_LINGER` to zero on it and drops everything, so the kernel aborts the connection (over
//! TLS no `close_notify` is sent either). A hang keeps the request unanswered for `hang_ms`, then
//! closes the connection with a FIN and no response.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Bytes, Frame, Incoming};
use hyper::header::{HeaderValue, CONNECTION, CONTENT_TYPE, RETRY_AFTER};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;

pub use crate::gateway::BODY_BYTES_MAX;
use crate::gateway::{self, Reply, QUERY_BYTES_MAX};
use crate::state::Shared;

/// Most open connections per listener; the accept loop waits for one to close beyond that.
pub const CONNECTIONS_MAX: u32 = 4096;
/// Time allowed for a request head.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Real time allowed for a request body once the head is read (default of
/// `SimOptions::body_read_timeout`).
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for a TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest buffered request head, bytes.
pub const HEAD_BYTES_MAX: usize = 32 * 1024;
/// A body over the limit is still read (and dropped) up to this many bytes, so the client is not
/// reset while it writes; beyond, the connection is closed.
pub const BODY_DRAIN_BYTES_MAX: usize = 1024 * 1024;
/// How long open connections get to finish at shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Chunks of a slow body.
pub const SLOW_BODY_CHUNKS: u32 = 10;

const _: () = assert!(BODY_BYTES_MAX <= BODY_DRAIN_BYTES_MAX);
const _: () = assert!(QUERY_BYTES_MAX <= HEAD_BYTES_MAX);

/// The response body type.
pub type RespBody = BoxBody<Bytes, Infallible>;

/// How a request asks its connection to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Abort {
    /// Close with a FIN, no response.
    Close,
    /// Close with a RST.
    Reset,
}

/// A body delivered in chunks, one per interval: the head goes out at once.
struct SlowBody {
    chunks: std::collections::VecDeque<Bytes>,
    remaining: u64,
    interval: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl Body for SlowBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.chunks.is_empty() {
            return Poll::Ready(None);
        }
        if self.sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        let next = tokio::time::Instant::now() + self.interval;
        self.sleep.as_mut().reset(next);
        let chunk = self.chunks.pop_front().unwrap_or_default();
        self.remaining = self
            .remaining
            .saturating_sub(u64::try_from(chunk.len()).unwrap_or(0));
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.remaining)
    }
}

fn slow_body(xml: Vec<u8>, over: Duration) -> RespBody {
    let chunks_n = usize::try_from(SLOW_BODY_CHUNKS).unwrap_or(1);
    let size = xml.len().div_ceil(chunks_n).max(1);
    let bytes = Bytes::from(xml);
    let chunks: std::collections::VecDeque<Bytes> = (0..bytes.len())
        .step_by(size)
        .map(|at| bytes.slice(at..(at + size).min(bytes.len())))
        .collect();
    let n = u32::try_from(chunks.len()).unwrap_or(1).max(1);
    let interval = over / n;
    BoxBody::new(SlowBody {
        remaining: u64::try_from(bytes.len()).unwrap_or(0),
        chunks,
        interval,
        sleep: Box::pin(tokio::time::sleep(interval)),
    })
}

/// A whole body.
pub fn full(bytes: impl Into<Bytes>) -> RespBody {
    BoxBody::new(Full::new(bytes.into()))
}

/// A response with a status, a content type and a body.
pub fn respond(
    status: StatusCode,
    content_type: &str,
    body: impl Into<Bytes>,
) -> Response<RespBody> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(CONTENT_TYPE, v);
    }
    r
}

/// What the load balancer in front of Alipay says on a 502.
const HTML_502: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>Tengine</center>\r\n</body>\r\n</html>\r\n";
/// The 429 page (assumed form of Alipay's throttling).
const HTML_429: &str = "<html>\r\n<head><title>429 Too Many Requests</title></head>\r\n<body>\r\n<center><h1>429 Too Many Requests</h1></center>\r\n<hr><center>Tengine</center>\r\n</body>\r\n</html>\r\n";

/// What reading a request body gave.
#[derive(Debug)]
enum BodyRead {
    /// The whole body.
    Whole(Vec<u8>),
    /// Over [`BODY_BYTES_MAX`] (drained up to [`BODY_DRAIN_BYTES_MAX`]).
    TooLarge,
    /// Not complete within the body read timeout.
    Stalled,
    /// The connection broke or the framing was bad.
    Broken,
}

/// Reads a body up to [`BODY_BYTES_MAX`] within `timeout` (real time).
async fn read_body(body: Incoming, timeout: Duration) -> BodyRead {
    match tokio::time::timeout(timeout, read_body_untimed(body)).await {
        Ok(Ok(Some(bytes))) => BodyRead::Whole(bytes),
        Ok(Ok(None)) => BodyRead::TooLarge,
        Ok(Err(_)) => BodyRead::Broken,
        Err(_) => BodyRead::Stalled,
    }
}

async fn read_body_untimed(mut body: Incoming) -> Result<Option<Vec<u8>>, hyper::Error> {
    let mut buf = Vec::new();
    let mut total: usize = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        if let Some(data) = frame.data_ref() {
            total = total.saturating_add(data.len());
            if total <= BODY_BYTES_MAX {
                buf.extend_from_slice(data);
            } else if total > BODY_DRAIN_BYTES_MAX {
                return Ok(None);
            }
        }
    }
    Ok((total <= BODY_BYTES_MAX).then_some(buf))
}

/// `408 Request Timeout` with `Connection: close`: the body did not arrive in time, and the
/// connection is not reused.
pub fn body_timed_out() -> Response<RespBody> {
    let mut r = respond(
        StatusCode::REQUEST_TIMEOUT,
        "text/plain",
        "the request body did not arrive in time\n",
    );
    r.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    r
}

/// The prefix of the admin API's paths.
pub const ADMIN_PREFIX: &str = "/admin/";

/// What a request path (without the query) reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/gateway.do`.
    Gateway,
    /// `/admin/...`.
    Admin,
    /// Nothing: 404.
    None,
}

/// Routes a path exactly as the listeners do (raw, not percent-decoded). The notification
/// sender uses it too, to refuse a `notify_url` that would reach the simulator's own gateway or
/// admin API (a pay with `notify_url=.../admin/reset` would otherwise wipe the books).
pub fn route(path: &str) -> Route {
    if path == crate::client::GATEWAY_PATH {
        Route::Gateway
    } else if path.starts_with(ADMIN_PREFIX) {
        Route::Admin
    } else {
        Route::None
    }
}

async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    abort: mpsc::Sender<Abort>,
) -> Result<Response<RespBody>, Infallible> {
    Ok(match route(req.uri().path()) {
        Route::Gateway => handle_gateway(req, shared, abort).await,
        Route::Admin => crate::admin::handle(req, &shared).await,
        Route::None => respond(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    })
}

fn xml_response(shared: &Shared, xml: Vec<u8>) -> Response<RespBody> {
    let ct = format!(
        "text/xml; charset={}",
        shared.config.response_encoding.label()
    );
    respond(StatusCode::OK, &ct, xml)
}

fn illegal_argument(shared: &Shared) -> Response<RespBody> {
    let code = alipay::GatewayErrorCode::IllegalArgument;
    shared.lock().counters.rejection(code.as_str());
    let mut w = alipay::ResponseWriter::new();
    let xml = w
        .write_gateway_error(shared.config.response_encoding, code, None)
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    xml_response(shared, xml)
}

/// The body of a form POST; `TooLarge` also when it is not a form.
async fn form_body(req: Request<Incoming>, timeout: Duration) -> BodyRead {
    let form_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with(crate::client::FORM_CONTENT_TYPE)
        });
    match read_body(req.into_body(), timeout).await {
        BodyRead::Whole(_) if !form_type => BodyRead::TooLarge,
        read => read,
    }
}

async fn handle_gateway(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    abort: mpsc::Sender<Abort>,
) -> Response<RespBody> {
    let query = req.uri().query().unwrap_or("").as_bytes().to_vec();
    if query.len() > QUERY_BYTES_MAX {
        return illegal_argument(&shared);
    }
    let body = match *req.method() {
        Method::GET => Vec::new(),
        Method::POST => match form_body(req, shared.body_read_timeout).await {
            BodyRead::Whole(body) => body,
            BodyRead::TooLarge => return illegal_argument(&shared),
            BodyRead::Stalled => return body_timed_out(),
            BodyRead::Broken => {
                return respond(StatusCode::BAD_REQUEST, "text/plain", "bad body\n")
            }
        },
        _ => {
            return respond(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                "GET or POST\n",
            )
        }
    };
    let worker = Arc::clone(&shared);
    let planned =
        tokio::task::spawn_blocking(move || gateway::process(&worker, &query, &body)).await;
    let Ok(planned) = planned else {
        return respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            "internal error\n",
        );
    };
    if !planned.latency.is_zero() {
        tokio::time::sleep(planned.latency).await;
    }
    match planned.reply {
        Reply::Xml(xml) => xml_response(&shared, xml),
        Reply::Http502 => respond(StatusCode::BAD_GATEWAY, "text/html", HTML_502),
        Reply::Throttled { retry_after_s } => {
            let mut r = respond(StatusCode::TOO_MANY_REQUESTS, "text/html", HTML_429);
            r.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(retry_after_s));
            r
        }
        Reply::Hang { ms } => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            let _ = abort.try_send(Abort::Close);
            std::future::pending().await
        }
        Reply::Reset => {
            let _ = abort.try_send(Abort::Reset);
            std::future::pending().await
        }
        Reply::SlowBody { xml, over_ms } => {
            let mut r = xml_response(&shared, Vec::new());
            *r.body_mut() = slow_body(xml, Duration::from_millis(over_ms));
            r
        }
    }
}

/// A bound listener, plain or TLS.
#[derive(Debug)]
pub struct Listener {
    /// The socket.
    pub tcp: TcpListener,
    /// TLS, for HTTPS.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// Accepts connections until `shutdown` turns true, then waits (bounded) for them to finish.
pub async fn serve(listener: Listener, shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let permits = Arc::new(Semaphore::new(
        usize::try_from(CONNECTIONS_MAX).unwrap_or(1024),
    ));
    let acceptor = listener.tls.map(TlsAcceptor::from);
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&permits).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let accepted = tokio::select! {
            a = listener.tcp.accept() => a,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let Ok((stream, _peer)) = accepted else {
            // Out of descriptors or similar: back off a little instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let conn = Connection {
            shared: Arc::clone(&shared),
            shutdown: shutdown.clone(),
            _permit: permit,
        };
        tokio::spawn(conn.run(stream, acceptor.clone()));
    }
    let _ = tokio::time::timeout(SHUTDOWN_GRACE * 2, permits.acquire_many(CONNECTIONS_MAX)).await;
}

struct Connection {
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
}

impl Connection {
    async fn run(self, stream: TcpStream, acceptor: Option<TlsAcceptor>) {
        let _ = stream.set_nodelay(true);
        // A duplicate descriptor of the socket, to set SO_LINGER 0 on it for a reset.
        let Ok(std_stream) = stream.into_std() else {
            return;
        };
        let dup = std_stream.try_clone().ok();
        let Ok(stream) = TcpStream::from_std(std_stream) else {
            return;
        };
        match acceptor {
            None => self.drive(TokioIo::new(stream), dup).await,
            Some(acceptor) => {
                let Ok(Ok(tls)) =
                    tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                else {
                    return;
                };
                self.drive(TokioIo::new(tls), dup).await;
            }
        }
    }

    async fn drive<I>(mut self, io: I, dup: Option<std::net::TcpStream>)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (abort_tx, mut abort_rx) = mpsc::channel(1);
        let shared = Arc::clone(&self.shared);
        let svc = service_fn(move |req| handle(req, Arc::clone(&shared), abort_tx.clone()));
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .max_buf_size(HEAD_BYTES_MAX)
            .serve_connection(io, svc);
        tokio::pin!(conn);
        let stopping = tokio::select! {
            _ = conn.as_mut() => false,
            abort = abort_rx.recv() => {
                if abort == Some(Abort::Reset) {
                    if let Some(d) = &dup {
                        let _ = socket2::SockRef::from(d).set_linger(Some(Duration::ZERO));
                    }
                }
                false
            }
            stop = self.shutdown.wait_for(|stop| *stop) => stop.is_ok(),
        };
        if stopping {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn.as_mut()).await;
        }
        // Dropping the connection and the duplicate closes the socket (RST if lingering 0).
    }
}
