//! The connector hyper-util's pooled client uses to open a connection to one endpoint: TCP, then
//! TLS (rustls, ring), both within the account's connect deadline.
//!
//! Anything that fails here fails before a byte of the request is written, and hyper-util reports
//! it as a connect error (`Error::is_connect`), which is what makes failover safe. The connector
//! counts the connections it opens and the attempts that failed, so tests and the admin API can
//! see that connections are reused.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use rustls::crypto::ring::default_provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::UpstreamError;

/// The client TLS configuration of an account: Mozilla's public roots (Alipay's production
/// endpoints chain to one) plus the account's own `ca_pem` (the simulator's self-signed
/// certificate, a private CA in front of an egress proxy). HTTP/1.1 only.
pub fn client_config(ca_pem: Option<&[u8]>) -> Result<Arc<rustls::ClientConfig>, UpstreamError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = ca_pem {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<_, _>>()
            .map_err(|e| UpstreamError::Tls(format!("cannot read ca_pem: {e}")))?;
        if certs.is_empty() {
            return Err(UpstreamError::Tls("ca_pem holds no certificate".to_owned()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| {
                UpstreamError::Tls(format!("cannot trust a ca_pem certificate: {e}"))
            })?;
        }
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| UpstreamError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Counts of one endpoint's connections.
#[derive(Debug, Default)]
pub struct ConnectStats {
    /// Connections opened (TCP and TLS done).
    pub opened: AtomicU64,
    /// Attempts that failed or timed out.
    pub failed: AtomicU64,
}

/// Opens TLS connections for hyper-util's client.
#[derive(Clone)]
pub struct TlsConnector {
    tls: tokio_rustls::TlsConnector,
    connect_timeout: Duration,
    stats: Arc<ConnectStats>,
}

impl std::fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConnector")
            .field("connect_timeout", &self.connect_timeout)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl TlsConnector {
    /// A connector with this TLS configuration and connect deadline (TCP + TLS together).
    pub fn new(
        tls: Arc<rustls::ClientConfig>,
        connect_timeout: Duration,
        stats: Arc<ConnectStats>,
    ) -> TlsConnector {
        TlsConnector {
            tls: tokio_rustls::TlsConnector::from(tls),
            connect_timeout,
            stats,
        }
    }
}

/// A TLS connection to an endpoint.
#[derive(Debug)]
pub struct TlsConn(TlsStream<TcpStream>);

impl Connection for TlsConn {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

type ConnectFuture = Pin<Box<dyn Future<Output = io::Result<TokioIo<TlsConn>>> + Send>>;

impl tower_service::Service<Uri> for TlsConnector {
    type Response = TokioIo<TlsConn>;
    type Error = io::Error;
    type Future = ConnectFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> ConnectFuture {
        let this = self.clone();
        Box::pin(async move {
            let result = tokio::time::timeout(this.connect_timeout, this.connect(&uri)).await;
            let result = result.unwrap_or_else(|_| {
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connect and TLS handshake timed out",
                ))
            });
            let counter = match &result {
                Ok(_) => &this.stats.opened,
                Err(_) => &this.stats.failed,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            result
        })
    }
}

impl TlsConnector {
    async fn connect(&self, uri: &Uri) -> io::Result<TokioIo<TlsConn>> {
        if uri.scheme_str() != Some("https") {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "only https endpoints are supported",
            ));
        }
        let host = uri
            .host()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no host in the URL"))?;
        // An IPv6 literal comes bracketed in the URI; neither connect nor SNI wants brackets.
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(443);
        let tcp = TcpStream::connect((host, port)).await?;
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("TLS handshake: {e}")))?;
        Ok(TokioIo::new(TlsConn(tls)))
    }
}
