//! `switch::server` over real sockets and real TLS, with a toy handler: routing, the transport
//! limits (body size, slow head, slow body, connections), the operations endpoints and graceful
//! shutdown. Waits are bounded generously and the assertions are about outcomes, never durations.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use switch::server::{
    self, GatewayHttp, Handler, HttpReply, Listeners, Readiness, ServerLimits, TransportReject,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

/// The longest any test waits for something that should happen (machines are noisy).
const PATIENCE: Duration = Duration::from_secs(30);

/// What the toy handler saw of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    query: String,
    body: Vec<u8>,
    post: bool,
    peer_ip_loopback: bool,
}

/// A handler that records what it sees, answers with what it saw, and can be told to wait.
#[derive(Default)]
struct Toy {
    seen: Mutex<Vec<Seen>>,
    calls: AtomicUsize,
    not_ready: Mutex<Option<String>>,
    /// A request whose query is `slow` signals `started`, then waits for `release`.
    started: Notify,
    release: Notify,
}

impl Handler for Toy {
    async fn gateway(&self, req: GatewayHttp) -> HttpReply {
        self.calls.fetch_add(1, Ordering::SeqCst);
        metrics::counter!("toy_gateway_calls_total").increment(1);
        let query = String::from_utf8(req.query.to_vec()).unwrap();
        self.seen.lock().unwrap().push(Seen {
            query: query.clone(),
            body: req.body.to_vec(),
            post: req.method_post,
            peer_ip_loopback: req.peer.ip().is_loopback(),
        });
        assert_ne!(query, "panic", "the toy handler panics when asked to");
        if query == "slow" {
            let released = self.release.notified();
            self.started.notify_one();
            released.await;
        }
        HttpReply::new(
            200,
            "text/xml; charset=utf-8",
            format!("<ok query=\"{query}\" body_bytes=\"{}\"/>", req.body.len()),
        )
    }

    fn reject(&self, why: TransportReject) -> HttpReply {
        HttpReply::new(
            200,
            "text/xml; charset=utf-8",
            format!("<alipay><is_success>F</is_success><error>ILLEGAL_ARGUMENT</error><why>{why:?}</why></alipay>"),
        )
    }

    fn readiness(&self) -> Readiness {
        match self.not_ready.lock().unwrap().clone() {
            None => Readiness::Ready,
            Some(why) => Readiness::NotReady(why),
        }
    }
}

/// A server on loopback, port 0.
struct Running {
    toy: Arc<Toy>,
    http: Option<SocketAddr>,
    https: Option<SocketAddr>,
    ops: Option<SocketAddr>,
    /// The certificate the HTTPS listener presents, to trust.
    cert_pem: Option<Vec<u8>>,
    stop: Option<oneshot::Sender<()>>,
    served: JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

#[derive(Debug, Clone, Copy)]
struct Setup {
    limits: ServerLimits,
    https: bool,
    http: bool,
    ops: bool,
}

impl Default for Setup {
    fn default() -> Setup {
        Setup {
            limits: ServerLimits::default(),
            https: false,
            http: true,
            ops: false,
        }
    }
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn start(setup: Setup) -> Running {
    let metrics = server::install_metrics().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert_out = dir.path().join("certs/switch-cert.pem");
    let https = setup
        .https
        .then(|| (loopback(), server::self_signed(Some(&cert_out)).unwrap()));
    let listeners = Listeners {
        https,
        http: setup.http.then(loopback),
        ops: setup.ops.then(loopback),
    };
    let bound = server::bind(&listeners, setup.limits)
        .await
        .unwrap()
        .with_drain_timeout(PATIENCE * 2);
    let toy = Arc::new(Toy::default());
    let (stop, stopped) = oneshot::channel::<()>();
    let running = Running {
        toy: Arc::clone(&toy),
        http: bound.http_addr(),
        https: bound.https_addr(),
        ops: bound.ops_addr(),
        cert_pem: setup.https.then(|| std::fs::read(&cert_out).unwrap()),
        stop: Some(stop),
        served: tokio::spawn(bound.serve(toy, metrics, async {
            let _ = stopped.await;
        })),
        _dir: dir,
    };
    assert_eq!(running.http.is_some(), setup.http);
    assert_eq!(running.https.is_some(), setup.https);
    assert_eq!(running.ops.is_some(), setup.ops);
    running
}

impl Running {
    fn http(&self) -> SocketAddr {
        self.http.unwrap()
    }

    fn seen(&self) -> Vec<Seen> {
        self.toy.seen.lock().unwrap().clone()
    }

    fn calls(&self) -> usize {
        self.toy.calls.load(Ordering::SeqCst)
    }

    /// Signals shutdown and waits (bounded) for `serve` to return.
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let served = tokio::time::timeout(PATIENCE, self.served)
            .await
            .expect("serve returns after shutdown");
        served.unwrap().unwrap();
    }
}

/// An answer, read whole.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: hyper::HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }
}

fn client_tls(cert_pem: &[u8]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(cert_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// Opens an HTTP/1.1 connection (over TLS trusting `cert_pem` if given); the connection's
/// driver runs in the returned task, which ends when the connection closes.
async fn connect(
    addr: SocketAddr,
    cert_pem: Option<&[u8]>,
) -> (SendRequest<Full<Bytes>>, JoinHandle<()>) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    match cert_pem {
        None => {
            let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .unwrap();
            (send, tokio::spawn(async move { drop(conn.await) }))
        }
        Some(pem) => {
            let name = ServerName::try_from("127.0.0.1").unwrap();
            let tls = tokio_rustls::TlsConnector::from(client_tls(pem))
                .connect(name, tcp)
                .await
                .unwrap();
            let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .unwrap();
            (send, tokio::spawn(async move { drop(conn.await) }))
        }
    }
}

async fn send_on(
    send: &mut SendRequest<Full<Bytes>>,
    method: &str,
    path: &str,
    body: &[u8],
) -> Answer {
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::copy_from_slice(body)))
        .unwrap();
    let exchange = async {
        let response = send.send_request(request).await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            headers,
            body: String::from_utf8(body.to_vec()).unwrap(),
        }
    };
    tokio::time::timeout(PATIENCE, exchange)
        .await
        .expect("an answer")
}

/// One request on a new connection.
async fn send(
    addr: SocketAddr,
    cert_pem: Option<&[u8]>,
    method: &str,
    path: &str,
    body: &[u8],
) -> Answer {
    let (mut sender, _conn) = connect(addr, cert_pem).await;
    send_on(&mut sender, method, path, body).await
}

/// Writes `bytes` on a raw connection and reads until the server closes it (bounded): the bytes
/// read, or `None` when the connection was reset.
async fn raw_exchange(stream: &mut TcpStream, bytes: &[u8]) -> Option<String> {
    stream.write_all(bytes).await.ok()?;
    read_until_closed(stream).await
}

async fn read_until_closed(stream: &mut TcpStream) -> Option<String> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut got))
        .await
        .expect("the server closes the connection");
    read.ok()
        .map(|_| String::from_utf8_lossy(&got).into_owned())
}

/// Scrapes `addr` until the `reason` rejects counter reaches `at_least` (bounded): a refusal is
/// counted by the server's connection task, possibly just after the client saw the close.
async fn eventually_rejects(
    addr: SocketAddr,
    cert_pem: Option<&[u8]>,
    reason: &str,
    at_least: f64,
) {
    for _ in 0..300 {
        let metrics = send(addr, cert_pem, "GET", "/metrics", b"").await;
        if rejects(&metrics.body, reason) >= at_least {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("switch_transport_rejects_total{{reason=\"{reason}\"}} stays under {at_least}");
}

/// The value of a counter or gauge line (`name{labels} value`) in Prometheus text.
fn metric_value(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
}

async fn scrape(addr: SocketAddr) -> String {
    let answer = send(addr, None, "GET", "/metrics", b"").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), server::METRICS_CONTENT_TYPE);
    answer.body
}

fn rejects(text: &str, reason: &str) -> f64 {
    let line = format!("switch_transport_rejects_total{{reason=\"{reason}\"}}");
    metric_value(text, &line).unwrap_or(0.0)
}

#[tokio::test]
async fn get_and_post_reach_the_handler_with_query_and_body() {
    let s = start(Setup::default()).await;
    let get = send(
        s.http(),
        None,
        "GET",
        "/gateway.do?service=a&sign=b%2Bc",
        b"",
    )
    .await;
    assert_eq!(get.status, 200);
    assert_eq!(get.header("content-type"), "text/xml; charset=utf-8");
    assert_eq!(
        get.body,
        "<ok query=\"service=a&sign=b%2Bc\" body_bytes=\"0\"/>"
    );
    let post = send(
        s.http(),
        None,
        "POST",
        "/gateway.do?_input_charset=utf-8",
        b"service=x&a=1",
    )
    .await;
    assert_eq!(post.status, 200);
    let empty_query = send(s.http(), None, "POST", "/gateway.do", b"service=y").await;
    assert_eq!(empty_query.status, 200);
    let seen = s.seen();
    let expected = [
        ("service=a&sign=b%2Bc", &b""[..], false),
        ("_input_charset=utf-8", &b"service=x&a=1"[..], true),
        ("", &b"service=y"[..], true),
    ];
    assert_eq!(seen.len(), expected.len());
    for (seen, (query, body, post)) in seen.iter().zip(expected) {
        assert_eq!(seen.query, query);
        assert_eq!(seen.body, body);
        assert_eq!(seen.post, post);
        assert!(seen.peer_ip_loopback);
    }
    s.stop().await;
}

#[tokio::test]
async fn keep_alive_serves_several_requests_on_one_connection() {
    let s = start(Setup::default()).await;
    let (mut sender, _conn) = connect(s.http(), None).await;
    for i in 0..3 {
        let answer = send_on(&mut sender, "POST", &format!("/gateway.do?n={i}"), b"a=1").await;
        assert_eq!(answer.status, 200);
        assert_eq!(
            answer.body,
            format!("<ok query=\"n={i}\" body_bytes=\"3\"/>")
        );
    }
    assert_eq!(s.calls(), 3);
    s.stop().await;
}

#[tokio::test]
async fn other_methods_and_paths_are_refused_without_calling_the_handler() {
    let s = start(Setup::default()).await;
    let put = send(s.http(), None, "PUT", "/gateway.do?a=1", b"a=1").await;
    assert_eq!(put.status, 405);
    assert_eq!(put.header("allow"), "GET, POST");
    assert!(put.body.contains("<why>BadMethod</why>"), "{}", put.body);
    let other = send(s.http(), None, "GET", "/gateway.do/x", b"").await;
    assert_eq!(other.status, 404);
    let root = send(s.http(), None, "POST", "/", b"a=1").await;
    assert_eq!(root.status, 404);
    assert_eq!(s.calls(), 0);
    s.stop().await;
}

#[tokio::test]
async fn https_serves_the_gateway_with_the_written_self_signed_certificate() {
    let s = start(Setup {
        https: true,
        http: false,
        ..Setup::default()
    })
    .await;
    let https = s.https.unwrap();
    let pem = s.cert_pem.clone().unwrap();
    let answer = send(https, Some(&pem), "POST", "/gateway.do?q=1", b"a=1&b=2").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, "<ok query=\"q=1\" body_bytes=\"7\"/>");
    // With neither http nor ops listeners, the operations paths are on https.
    let (mut sender, _conn) = connect(https, Some(&pem)).await;
    let health = send_on(&mut sender, "GET", "/healthz", b"").await;
    assert_eq!(health.status, 200);

    // Plain HTTP to the TLS port: the handshake fails and the connection is dropped.
    let mut plain = TcpStream::connect(https).await.unwrap();
    let got = raw_exchange(&mut plain, b"GET /gateway.do HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(!got.unwrap_or_default().contains("<ok"));
    eventually_rejects(https, Some(&pem), "tls", 1.0).await;
    assert_eq!(s.calls(), 1);
    s.stop().await;
}

fn small_limits() -> ServerLimits {
    ServerLimits {
        body_bytes_max: 1024,
        ..ServerLimits::default()
    }
}

#[tokio::test]
async fn a_body_over_the_limit_gets_the_handlers_rejection_and_never_reaches_it() {
    let s = start(Setup {
        limits: small_limits(),
        ..Setup::default()
    })
    .await;
    // At the limit: accepted.
    let at_limit = send(s.http(), None, "POST", "/gateway.do", &[b'a'; 1024]).await;
    assert_eq!(at_limit.body, "<ok query=\"\" body_bytes=\"1024\"/>");

    // Declared over the limit (and sent whole): the rejection, on a connection still usable.
    let (mut sender, _conn) = connect(s.http(), None).await;
    let over = send_on(&mut sender, "POST", "/gateway.do", &[b'a'; 4096]).await;
    assert_eq!(over.status, 200);
    assert!(
        over.body.contains("<why>BodyTooLarge</why>"),
        "{}",
        over.body
    );
    let after = send_on(&mut sender, "POST", "/gateway.do?again", b"a=1").await;
    assert_eq!(after.status, 200);

    // Chunked, crossing the limit midway: the rejection.
    let mut chunked = TcpStream::connect(s.http()).await.unwrap();
    let mut request = b"POST /gateway.do HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    for _ in 0..3 {
        request.extend_from_slice(b"200\r\n");
        request.extend_from_slice(&[b'b'; 0x200]);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let got = raw_exchange(&mut chunked, &request).await.unwrap();
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(got.contains("<why>BodyTooLarge</why>"), "{got}");

    // Declared far beyond what is ever read: answered at once, without waiting for the body,
    // and the connection closed.
    let mut huge = TcpStream::connect(s.http()).await.unwrap();
    let head = format!(
        "POST /gateway.do HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        server::BODY_DRAIN_BYTES_MAX + 1
    );
    let got = raw_exchange(&mut huge, head.as_bytes()).await.unwrap();
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(
        got.to_ascii_lowercase().contains("connection: close"),
        "{got}"
    );
    assert!(got.contains("<why>BodyTooLarge</why>"), "{got}");

    assert_eq!(
        s.calls(),
        2,
        "only the two requests within the limit reach the handler"
    );
    let metrics = scrape(s.http()).await;
    assert!(rejects(&metrics, "body_too_large") >= 3.0, "{metrics}");
    s.stop().await;
}

fn quick_limits() -> ServerLimits {
    ServerLimits {
        header_read_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(2),
        ..ServerLimits::default()
    }
}

#[tokio::test]
async fn a_slow_head_is_cut_off() {
    let s = start(Setup {
        limits: quick_limits(),
        ..Setup::default()
    })
    .await;
    let mut slow = TcpStream::connect(s.http()).await.unwrap();
    // Half a head, then nothing: the server closes the connection without calling the handler.
    let got = raw_exchange(&mut slow, b"POST /gateway.do HTTP/1.1\r\nHost: x\r\n").await;
    assert!(!got.unwrap_or_default().contains("<ok"));
    assert_eq!(s.calls(), 0);
    // The server still serves others.
    let ok = send(s.http(), None, "GET", "/gateway.do?a=1", b"").await;
    assert_eq!(ok.status, 200);
    s.stop().await;
}

#[tokio::test]
async fn a_head_over_the_limit_is_answered_431() {
    let s = start(Setup::default()).await;
    // Exactly the buffer's size, without the head's end: hyper gives up and says so.
    let mut long = b"GET /gateway.do?".to_vec();
    long.resize(server::HEAD_BYTES_MAX, b'a');
    let mut stream = TcpStream::connect(s.http()).await.unwrap();
    let got = raw_exchange(&mut stream, &long).await.unwrap();
    assert!(got.starts_with("HTTP/1.1 431"), "{got}");
    assert_eq!(s.calls(), 0);
    eventually_rejects(s.http(), None, "bad_head", 1.0).await;
    s.stop().await;
}

#[tokio::test]
async fn a_slow_body_is_rejected_and_the_connection_closed() {
    let s = start(Setup {
        limits: quick_limits(),
        ..Setup::default()
    })
    .await;
    let mut slow = TcpStream::connect(s.http()).await.unwrap();
    // A head declaring 100 bytes, then 10 of them, then nothing.
    let got = raw_exchange(
        &mut slow,
        b"POST /gateway.do HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nservice=a&",
    )
    .await
    .unwrap();
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(got.contains("<why>BodyTimeout</why>"), "{got}");
    assert!(
        got.to_ascii_lowercase().contains("connection: close"),
        "{got}"
    );
    assert_eq!(s.calls(), 0);
    let metrics = scrape(s.http()).await;
    assert!(rejects(&metrics, "body_timeout") >= 1.0, "{metrics}");
    s.stop().await;
}

#[tokio::test]
async fn a_handler_past_the_deadline_is_answered_by_the_transport_and_still_finishes() {
    let s = start(Setup {
        limits: quick_limits(),
        ..Setup::default()
    })
    .await;
    let answer = send(s.http(), None, "GET", "/gateway.do?slow", b"").await;
    assert!(
        answer.body.contains("<why>HandlerTimeout</why>"),
        "{}",
        answer.body
    );
    // The handler was not cancelled: it is still waiting, and finishes when released.
    s.toy.release.notify_one();
    s.stop().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_read_timeout() {
    let s = start(Setup {
        limits: quick_limits(),
        ..Setup::default()
    })
    .await;
    let (mut sender, conn) = connect(s.http(), None).await;
    assert_eq!(
        send_on(&mut sender, "GET", "/gateway.do?a", b"")
            .await
            .status,
        200
    );
    // No next request: the server ends the connection (the client's driver then returns).
    tokio::time::timeout(PATIENCE, conn)
        .await
        .expect("the server closes an idle connection")
        .unwrap();
    s.stop().await;
}

#[tokio::test]
async fn a_panicking_handler_is_answered_500_and_the_server_goes_on() {
    let s = start(Setup::default()).await;
    let answer = send(s.http(), None, "GET", "/gateway.do?panic", b"").await;
    assert_eq!(answer.status, 500);
    assert_eq!(answer.header("connection"), "close");
    let next = send(s.http(), None, "GET", "/gateway.do?after", b"").await;
    assert_eq!(next.status, 200);
    s.stop().await;
}

#[tokio::test]
async fn connections_over_the_limit_are_closed_at_once() {
    let s = start(Setup {
        limits: ServerLimits {
            connections_max: 2,
            ..ServerLimits::default()
        },
        ..Setup::default()
    })
    .await;
    // Two kept-alive connections, each proven accepted by an answer.
    let (mut first, _c1) = connect(s.http(), None).await;
    let (mut second, _c2) = connect(s.http(), None).await;
    assert_eq!(
        send_on(&mut first, "GET", "/gateway.do?1", b"")
            .await
            .status,
        200
    );
    assert_eq!(
        send_on(&mut second, "GET", "/gateway.do?2", b"")
            .await
            .status,
        200
    );
    // A third is accepted and closed without an answer.
    let mut third = TcpStream::connect(s.http()).await.unwrap();
    let got = read_until_closed(&mut third).await;
    assert_eq!(got.unwrap_or_default(), "");
    // The two keep working; once one closes, a new connection is served again.
    let metrics = send_on(&mut first, "GET", "/metrics", b"").await;
    assert!(
        rejects(&metrics.body, "connections") >= 1.0,
        "{}",
        metrics.body
    );
    drop(second);
    let mut served = false;
    for _ in 0..300 {
        let mut next = TcpStream::connect(s.http()).await.unwrap();
        let got = raw_exchange(
            &mut next,
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        if got.unwrap_or_default().starts_with("HTTP/1.1 200") {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "a slot freed by a closed connection is reused");
    s.stop().await;
}

#[tokio::test]
async fn operations_endpoints_on_their_own_listener() {
    let s = start(Setup {
        ops: true,
        ..Setup::default()
    })
    .await;
    let ops = s.ops.unwrap();
    assert_eq!(
        send(s.http(), None, "GET", "/gateway.do?m=1", b"")
            .await
            .status,
        200
    );

    let metrics = scrape(ops).await;
    assert!(
        metric_value(&metrics, "toy_gateway_calls_total").unwrap() >= 1.0,
        "{metrics}"
    );
    assert!(
        metrics.contains("# TYPE switch_connections gauge"),
        "{metrics}"
    );

    let health = send(ops, None, "GET", "/healthz", b"").await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    let ready = send(ops, None, "GET", "/readyz", b"").await;
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));
    *s.toy.not_ready.lock().unwrap() = Some("the journal has failed".to_owned());
    let not_ready = send(ops, None, "GET", "/readyz", b"").await;
    assert_eq!(not_ready.status, 503);
    assert!(
        not_ready.body.contains("the journal has failed"),
        "{}",
        not_ready.body
    );
    let post = send(ops, None, "POST", "/healthz", b"").await;
    assert_eq!(post.status, 405);

    // The gateway is not on the operations listener, nor the operations paths on the gateway's.
    assert_eq!(
        send(ops, None, "GET", "/gateway.do?a=1", b"").await.status,
        404
    );
    assert_eq!(
        send(s.http(), None, "GET", "/metrics", b"").await.status,
        404
    );
    assert_eq!(
        send(s.http(), None, "GET", "/healthz", b"").await.status,
        404
    );
    s.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_finishes_the_request_in_flight_and_refuses_new_connections() {
    let mut s = start(Setup::default()).await;
    let addr = s.http();
    // An idle keep-alive connection, and a request the handler holds.
    let (mut idle, idle_conn) = connect(addr, None).await;
    assert_eq!(
        send_on(&mut idle, "GET", "/gateway.do?warm", b"")
            .await
            .status,
        200
    );
    let started = s.toy.started.notified();
    let in_flight =
        tokio::spawn(async move { send(addr, None, "POST", "/gateway.do?slow", b"a=1").await });
    tokio::time::timeout(PATIENCE, started)
        .await
        .expect("the slow request reaches the handler");
    // Gauges are process-wide (tests run in parallel), but this test's request and connections
    // keep them at 1 or more.
    let metrics = send_on(&mut idle, "GET", "/metrics", b"").await.body;
    assert!(
        metric_value(&metrics, "switch_in_flight").unwrap() >= 1.0,
        "{metrics}"
    );
    assert!(
        metric_value(&metrics, "switch_connections").unwrap() >= 2.0,
        "{metrics}"
    );

    let _ = s.stop.take().unwrap().send(());
    // New connections are refused once the listener is closed.
    let mut refused = false;
    for _ in 0..300 {
        if TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused, "the listener closes at shutdown");
    // The idle keep-alive connection is closed by the server.
    tokio::time::timeout(PATIENCE, idle_conn)
        .await
        .expect("the idle connection is closed")
        .unwrap();
    assert!(
        !s.served.is_finished(),
        "serve waits for the request in flight"
    );

    s.toy.release.notify_one();
    let answer = tokio::time::timeout(PATIENCE, in_flight)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, "<ok query=\"slow\" body_bytes=\"3\"/>");
    assert_eq!(answer.header("connection"), "close");
    tokio::time::timeout(PATIENCE, s.served)
        .await
        .expect("serve returns once drained")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn readyz_is_served_on_http_without_an_ops_listener_and_bind_checks_its_input() {
    let s = start(Setup {
        https: true,
        ..Setup::default()
    })
    .await;
    assert_eq!(
        send(s.http(), None, "GET", "/readyz", b"").await.status,
        200
    );
    // With an http listener, the operations paths are not on the merchant-facing https one.
    let pem = s.cert_pem.clone().unwrap();
    let on_https = send(s.https.unwrap(), Some(&pem), "GET", "/metrics", b"").await;
    assert_eq!(on_https.status, 404);
    s.stop().await;

    let none = Listeners::default();
    assert!(server::bind(&none, ServerLimits::default()).await.is_err());
    let http_only = Listeners {
        http: Some(loopback()),
        ..Listeners::default()
    };
    let zero = ServerLimits {
        connections_max: 0,
        ..ServerLimits::default()
    };
    assert!(server::bind(&http_only, zero).await.is_err());
    // A second install returns the same recorder.
    assert!(server::install_metrics().is_ok());
}
