//! A small async HTTP/1.1 client, plain or over TLS trusting a given certificate, with a pool of
//! idle connections; and [`GatewayClient`], which sends signed Alipay requests with it.
//!
//! The simulator's tests, the switch's tests and the load generator all talk to the simulator
//! like a real merchant would, through this client; the simulator's notification sender uses it
//! too. Errors say whether the request may have left: [`SimError::Connect`] means nothing was
//! sent, [`SimError::OutcomeUnknown`] and [`SimError::Timeout`] mean it may have been processed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use alipay::{Charset, FormBuilder, Request, Signer};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST};
use hyper::{HeaderMap, Method};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use crate::error::{Result, SimError};

/// Connect timeout (Alipay's SDKs use about 3 s).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Default whole-request timeout (Alipay's SDKs read for about 15 s).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Default largest response body read, bytes (admin listings can be large); see
/// [`HttpClient::with_response_bytes_max`].
pub const RESPONSE_BYTES_MAX: usize = 256 * 1024 * 1024;
/// Default most idle connections kept per client; see [`HttpClient::with_idle_max`].
pub const IDLE_CONNECTIONS_MAX: usize = 64;
/// The form content type.
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// A response, fully read.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

/// The parts of an `http://` or `https://` URL this client needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// `https`.
    pub tls: bool,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Path and query, at least `/`.
    pub path_and_query: String,
}

impl Url {
    /// Parses `scheme://host[:port][/path][?query]`.
    pub fn parse(url: &str) -> Option<Url> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else {
            (false, url.strip_prefix("http://")?)
        };
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']')?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().ok()?,
                None if after.is_empty() => default_port,
                None => return None,
            };
            (h, port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, p.parse().ok()?),
                None => (authority, default_port),
            }
        };
        if host.is_empty() {
            return None;
        }
        let path_and_query = match path {
            "" => "/".to_owned(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_owned(),
        };
        Some(Url {
            tls,
            host: host.to_owned(),
            port,
            path_and_query,
        })
    }

    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// An HTTP/1.1 client for one origin.
#[derive(Debug)]
pub struct HttpClient {
    origin: Url,
    tls: Option<Arc<rustls::ClientConfig>>,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
    idle_max: usize,
    timeout: Duration,
    response_bytes_max: usize,
}

impl HttpClient {
    /// A client for the origin of `base_url`; for `https`, `trust_pem` names the certificates
    /// to trust (required).
    pub fn new(base_url: &str, trust_pem: Option<&[u8]>) -> Result<HttpClient> {
        let origin = Url::parse(base_url).ok_or_else(|| SimError::Option {
            option: "url",
            message: format!("{base_url} is not an http:// or https:// URL"),
        })?;
        let tls = match (origin.tls, trust_pem) {
            (false, _) => None,
            (true, Some(pem)) => Some(crate::tls::client_config(pem)?),
            (true, None) => {
                return Err(SimError::Tls(
                    "an https URL needs a certificate to trust".to_owned(),
                ))
            }
        };
        Ok(HttpClient::with_tls(origin, tls))
    }

    /// A client for `origin` with an already built TLS configuration.
    pub fn with_tls(origin: Url, tls: Option<Arc<rustls::ClientConfig>>) -> HttpClient {
        HttpClient {
            origin,
            tls,
            idle: Mutex::new(Vec::new()),
            idle_max: IDLE_CONNECTIONS_MAX,
            timeout: DEFAULT_REQUEST_TIMEOUT,
            response_bytes_max: RESPONSE_BYTES_MAX,
        }
    }

    /// Sets the whole-request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> HttpClient {
        self.timeout = timeout;
        self
    }

    /// Keeps up to `idle_max` idle connections (a load generator keeps as many as it has
    /// requests in flight, so a busy run does not pay a TLS handshake per request).
    pub fn with_idle_max(mut self, idle_max: usize) -> HttpClient {
        self.idle_max = idle_max;
        self
    }

    /// Sets the largest response body read; a larger one is [`SimError::ResponseTooLarge`].
    pub fn with_response_bytes_max(mut self, bytes: usize) -> HttpClient {
        self.response_bytes_max = bytes;
        self
    }

    /// The origin.
    pub fn origin(&self) -> &Url {
        &self.origin
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>> {
        let addr = self.origin.authority();
        let fail = |message: String| SimError::Connect {
            addr: addr.clone(),
            message,
        };
        let host = self.origin.host.as_str();
        let tcp = tokio::time::timeout(
            CONNECT_TIMEOUT,
            TcpStream::connect((host, self.origin.port)),
        )
        .await
        .map_err(|_| fail("connect timed out".to_owned()))?
        .map_err(|e| fail(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let Some(tls) = &self.tls else {
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .map_err(|e| fail(e.to_string()))?;
            tokio::spawn(conn);
            return Ok(sender);
        };
        let name = ServerName::try_from(host.to_owned()).map_err(|e| fail(e.to_string()))?;
        let connector = tokio_rustls::TlsConnector::from(Arc::clone(tls));
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, tcp))
            .await
            .map_err(|_| fail("TLS handshake timed out".to_owned()))?
            .map_err(|e| fail(format!("TLS handshake: {e}")))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| fail(e.to_string()))?;
        tokio::spawn(conn);
        Ok(sender)
    }

    fn take_idle(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().ok()?;
        while let Some(s) = idle.pop() {
            if s.is_ready() {
                return Some(s);
            }
        }
        None
    }

    fn put_idle(&self, sender: SendRequest<Full<Bytes>>) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < self.idle_max && sender.is_ready() {
                idle.push(sender);
            }
        }
    }

    /// Sends one request and reads the whole response, within the client's timeout.
    pub async fn request(
        &self,
        method: Method,
        path_and_query: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<HttpResponse> {
        let timeout_ms = u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX);
        let attempt = self.request_inner(method, path_and_query, content_type, body);
        tokio::time::timeout(self.timeout, attempt)
            .await
            .map_err(|_| SimError::Timeout {
                addr: self.origin.authority(),
                timeout_ms,
            })?
    }

    async fn request_inner(
        &self,
        method: Method,
        path_and_query: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<HttpResponse> {
        let mut sender = match self.take_idle() {
            Some(s) => s,
            None => self.connect().await?,
        };
        let addr = self.origin.authority();
        let unknown = |message: String| SimError::OutcomeUnknown {
            addr: addr.clone(),
            message,
        };
        let mut builder = hyper::Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(HOST, addr.as_str());
        if let Some(ct) = content_type {
            builder = builder.header(CONTENT_TYPE, ct);
        }
        let request =
            builder
                .body(Full::new(Bytes::from(body)))
                .map_err(|e| SimError::Connect {
                    addr: addr.clone(),
                    message: format!("bad request: {e}"),
                })?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| unknown(error_chain(&e)))?;
        let (parts, body) = response.into_parts();
        let limit_bytes = self.response_bytes_max;
        let body = Limited::new(body, limit_bytes)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    SimError::ResponseTooLarge {
                        addr: addr.clone(),
                        limit_bytes,
                    }
                } else {
                    unknown(format!("reading the body: {e}"))
                }
            })?
            .to_bytes();
        self.put_idle(sender);
        Ok(HttpResponse {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    }

    /// `GET path` and parse the body as JSON (for the admin API).
    pub async fn get_json(&self, path: &str) -> Result<(u16, serde_json::Value)> {
        let r = self.request(Method::GET, path, None, Vec::new()).await?;
        Ok((
            r.status,
            serde_json::from_slice(&r.body).unwrap_or_default(),
        ))
    }

    /// `method path` with a JSON body, and parse the answer as JSON.
    pub async fn send_json(
        &self,
        method: Method,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<(u16, serde_json::Value)> {
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        let r = self
            .request(method, path, Some("application/json"), bytes)
            .await?;
        Ok((
            r.status,
            serde_json::from_slice(&r.body).unwrap_or_default(),
        ))
    }
}

/// The admin API's trade listing path.
pub const ADMIN_TRADES_PATH: &str = "/admin/trades";

impl HttpClient {
    /// Every trade (of `partner`, if given) from the admin API, in creation order: follows
    /// `GET /admin/trades` page by page (`after` = the previous page's `next_after`) until a
    /// page says it is `complete`.
    pub async fn get_all_trades(&self, partner: Option<&str>) -> Result<Vec<serde_json::Value>> {
        let filter = partner.map_or(String::new(), |p| format!("&partner={p}"));
        let mut all = Vec::new();
        let mut after: u64 = 0;
        loop {
            let path = format!("{ADMIN_TRADES_PATH}?after={after}{filter}");
            let failed = |message: String| SimError::Admin {
                path: path.clone(),
                message,
            };
            let (status, mut page) = self.get_json(&path).await?;
            if status != 200 {
                return Err(failed(format!("status {status}")));
            }
            match page.get_mut("trades").map(serde_json::Value::take) {
                Some(serde_json::Value::Array(trades)) => all.extend(trades),
                _ => return Err(failed("no trades list".to_owned())),
            }
            if page["complete"].as_bool() == Some(true) {
                return Ok(all);
            }
            match page["next_after"].as_u64() {
                Some(next) if next > after => after = next,
                _ => {
                    return Err(failed(
                        "an incomplete page without a later cursor".to_owned(),
                    ))
                }
            }
        }
    }
}

/// The error and its sources, one line (tells a reset from a close).
pub use alipay::error::chain as error_chain;

/// True when `e` (or a source) is an I/O "connection reset".
pub fn is_reset(e: &SimError) -> bool {
    match e {
        SimError::OutcomeUnknown { message, .. } => {
            message.contains("reset") || message.contains("os error 104")
        }
        _ => false,
    }
}

/// Sends signed Alipay requests to a gateway (`{base}/gateway.do`).
#[derive(Debug)]
pub struct GatewayClient {
    http: HttpClient,
}

/// The gateway path.
pub const GATEWAY_PATH: &str = "/gateway.do";

impl GatewayClient {
    /// A client for the gateway at `base_url` (`https://127.0.0.1:9443`), trusting `trust_pem`.
    pub fn new(base_url: &str, trust_pem: Option<&[u8]>) -> Result<GatewayClient> {
        Ok(GatewayClient {
            http: HttpClient::new(base_url, trust_pem)?,
        })
    }

    /// Sets the whole-request timeout.
    pub fn with_timeout(self, timeout: Duration) -> GatewayClient {
        GatewayClient {
            http: self.http.with_timeout(timeout),
        }
    }

    /// The underlying HTTP client (for the admin API).
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// The signed form of `request` in `charset`: the whole urlencoded parameter list.
    pub fn signed_form(
        request: &Request<'_>,
        charset: Charset,
        signer: &Signer,
    ) -> Result<Vec<u8>> {
        let mut b = FormBuilder::new(charset);
        request.write_form(&mut b);
        Ok(b.finish(signer)?)
    }

    /// POSTs `request`, with `_input_charset` in the URL query and the rest in the body.
    pub async fn post(
        &self,
        request: &Request<'_>,
        charset: Charset,
        signer: &Signer,
    ) -> Result<HttpResponse> {
        let mut b = FormBuilder::new(charset);
        request.write_form(&mut b);
        let (query, body) = b.finish_post(signer)?;
        self.post_raw(&query, body).await
    }

    /// GETs `request` with every parameter in the query.
    pub async fn get(
        &self,
        request: &Request<'_>,
        charset: Charset,
        signer: &Signer,
    ) -> Result<HttpResponse> {
        let form = GatewayClient::signed_form(request, charset, signer)?;
        self.get_raw(&String::from_utf8_lossy(&form)).await
    }

    /// POSTs a raw form body with a raw query (without the `?`).
    pub async fn post_raw(&self, query: &str, body: Vec<u8>) -> Result<HttpResponse> {
        let path = if query.is_empty() {
            GATEWAY_PATH.to_owned()
        } else {
            format!("{GATEWAY_PATH}?{query}")
        };
        let ct = HeaderValue::from_static(FORM_CONTENT_TYPE);
        self.http
            .request(Method::POST, &path, ct.to_str().ok(), body)
            .await
    }

    /// GETs with a raw query (without the `?`).
    pub async fn get_raw(&self, query: &str) -> Result<HttpResponse> {
        let path = format!("{GATEWAY_PATH}?{query}");
        self.http
            .request(Method::GET, &path, None, Vec::new())
            .await
    }
}

/// Moves the leading `_input_charset=...` of an encoded form into a query string.
pub fn split_charset(form: &[u8]) -> (String, Vec<u8>) {
    if form.starts_with(b"_input_charset=") {
        let end = form.iter().position(|&b| b == b'&').unwrap_or(form.len());
        let query = String::from_utf8_lossy(&form[..end]).into_owned();
        let body = form.get(end + 1..).unwrap_or_default().to_vec();
        (query, body)
    } else {
        (String::new(), form.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = Url::parse("http://127.0.0.1:8080/notify?a=1").unwrap();
        assert_eq!((u.tls, u.host.as_str(), u.port), (false, "127.0.0.1", 8080));
        assert_eq!(u.path_and_query, "/notify?a=1");
        let u = Url::parse("https://[::1]:9443").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path_and_query.as_str()),
            ("::1", 9443, "/")
        );
        assert_eq!(u.authority(), "[::1]:9443");
        assert_eq!(Url::parse("https://localhost/x").unwrap().port, 443);
        assert!(Url::parse("ftp://x").is_none());
        assert!(Url::parse("http://:80").is_none());
    }

    #[test]
    fn charset_moves_to_the_query() {
        let (q, b) = split_charset(b"_input_charset=GBK&a=1&b=2");
        assert_eq!(
            (q.as_str(), b.as_slice()),
            ("_input_charset=GBK", &b"a=1&b=2"[..])
        );
    }
}
