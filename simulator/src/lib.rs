//! `alipay-sim`: a faithful, stateful, deterministic simulator of Alipay's legacy MAPI
//! barcode-payment gateway — the test double that the transaction switch and the load generator
//! are tested against.
//!
//! It speaks the wire protocol of `shared/alipay-mapi.md` through the `alipay` crate, keeps real
//! trades in memory under Alipay's rules ([`ledger`], pure functions of state, request and
//! simulated time), injects faults and outcomes on request (magic buyer codes) or at random
//! under a seed ([`dials`]), sends asynchronous notifications ([`notify`]), and exposes its books
//! through an admin API ([`admin`]). Tests start it in-process with [`Simulator::start`] and talk
//! to it over real TLS with [`client::GatewayClient`], like a merchant would.
//!
//! Code map: [`config`] (TOML), [`clock`] (simulated time), [`dials`] (faults and outcomes),
//! [`ledger`] (the rules), [`gateway`] (checks and answers), [`server`] (transport and faults),
//! [`admin`], [`files`] (reconciliation files), [`notify`], [`client`], [`tls`], [`money`],
//! [`state`], [`counters`], [`error`].
//!
//! **Architecture Invariant:** the ledger does no I/O and never reads a clock; only
//! [`clock::system_unix_ms`] reads the system clock.

pub mod admin;
pub mod client;
pub mod clock;
pub mod config;
pub mod counters;
pub mod dials;
pub mod error;
pub mod files;
pub mod gateway;
pub mod ledger;
pub mod money;
pub mod notify;
pub mod server;
pub mod state;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use alipay::BeijingTime;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use crate::client::GatewayClient;
pub use crate::config::Config;
pub use crate::error::{Result, SimError};
use crate::server::Listener;
use crate::state::Shared;
pub use crate::tls::PemPair;

/// The default HTTPS address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9443";
/// Where the generated certificate is written by default.
pub const DEFAULT_CERT_OUT: &str = "data/alipay-sim-cert.pem";
/// The default seed.
pub const DEFAULT_SEED: u64 = 1;

/// Where the HTTPS certificate comes from.
#[derive(Debug, Clone)]
pub enum TlsSource {
    /// Made at start for `localhost`, `127.0.0.1` and `::1`.
    SelfSigned,
    /// Given.
    Pem(PemPair),
}

/// How to run a simulator.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// What the simulated Alipay does.
    pub config: Config,
    /// The HTTPS address (port 0: any free port).
    pub listen: SocketAddr,
    /// A plain-HTTP address too, if any.
    pub http_listen: Option<SocketAddr>,
    /// The certificate.
    pub tls: TlsSource,
    /// Where to write the certificate's PEM for clients to trust, if anywhere.
    pub cert_out: Option<PathBuf>,
    /// Simulated seconds per real second (≥ 1).
    pub time_scale: u32,
    /// The simulated Beijing time at start; None: the real time.
    pub clock_start: Option<BeijingTime>,
    /// The RNG seed.
    pub seed: u64,
    /// PEM certificates to trust for `https://` notify URLs.
    pub notify_ca_pem: Option<Vec<u8>>,
    /// Real time a request body may take once its head is read; then the connection is
    /// answered 408 and closed. Default [`server::BODY_READ_TIMEOUT`]; tests make it short.
    pub body_read_timeout: std::time::Duration,
}

impl SimOptions {
    /// Defaults around `config`: HTTPS on 127.0.0.1:9443 with a self-signed certificate written
    /// to `data/alipay-sim-cert.pem`, real time, seed 1.
    pub fn new(config: Config) -> SimOptions {
        SimOptions {
            config,
            listen: SocketAddr::from(([127, 0, 0, 1], 9443)),
            http_listen: None,
            tls: TlsSource::SelfSigned,
            cert_out: Some(PathBuf::from(DEFAULT_CERT_OUT)),
            time_scale: 1,
            clock_start: None,
            seed: DEFAULT_SEED,
            notify_ca_pem: None,
            body_read_timeout: server::BODY_READ_TIMEOUT,
        }
    }

    /// For tests: the shipped configuration, HTTPS and HTTP on loopback port 0, no certificate
    /// file.
    pub fn for_tests() -> Result<SimOptions> {
        let mut o = SimOptions::new(Config::embedded()?);
        o.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        o.http_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        o.cert_out = None;
        Ok(o)
    }
}

/// A running simulator. Dropping it stops it too (without waiting).
#[derive(Debug)]
pub struct SimHandle {
    https_addr: SocketAddr,
    http_addr: Option<SocketAddr>,
    cert_pem: String,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl SimHandle {
    /// The HTTPS address.
    pub fn https_addr(&self) -> SocketAddr {
        self.https_addr
    }
    /// The plain-HTTP address, if one was asked for.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }
    /// `https://{addr}`.
    pub fn https_url(&self) -> String {
        format!("https://{}", self.https_addr)
    }
    /// `http://{addr}`, if any.
    pub fn http_url(&self) -> Option<String> {
        self.http_addr.map(|a| format!("http://{a}"))
    }
    /// The certificate to trust, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }
    /// A gateway client over HTTPS trusting this simulator.
    pub fn https_client(&self) -> Result<GatewayClient> {
        GatewayClient::new(&self.https_url(), Some(self.cert_pem.as_bytes()))
    }
    /// Stops accepting, lets open connections finish (bounded), stops the background tasks.
    pub async fn shutdown(mut self) {
        self.shutdown.send_replace(true);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

/// Starts simulators.
#[derive(Debug)]
pub struct Simulator;

impl Simulator {
    /// Binds the listeners, starts serving and the background ticker, and returns the handle.
    pub async fn start(options: SimOptions) -> Result<SimHandle> {
        if options.time_scale == 0 || options.time_scale > clock::TIME_SCALE_MAX {
            return Err(SimError::Option {
                option: "--time-scale",
                message: format!("must be in 1..={}", clock::TIME_SCALE_MAX),
            });
        }
        let pem = match &options.tls {
            TlsSource::SelfSigned => PemPair::self_signed()?,
            TlsSource::Pem(p) => p.clone(),
        };
        let server_tls = pem.server_config()?;
        if let Some(path) = &options.cert_out {
            write_cert(path, &pem.cert_pem)?;
        }
        let notify_tls = match &options.notify_ca_pem {
            Some(ca) => Some(tls::client_config(ca)?),
            None => None,
        };
        let start_ms = options
            .clock_start
            .map_or_else(clock::system_unix_ms, BeijingTime::unix_ms);
        let clock = clock::SimClock::new(start_ms, options.time_scale);
        if options.body_read_timeout.is_zero() {
            return Err(SimError::Option {
                option: "body_read_timeout",
                message: "must be positive".to_owned(),
            });
        }
        let shared = Arc::new(Shared::new(
            options.config,
            clock,
            options.seed,
            options.body_read_timeout,
        ));
        let https = bind(options.listen).await?;
        let https_addr = local_addr(&https, options.listen)?;
        let http = match options.http_listen {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        let http_addr = match (&http, options.http_listen) {
            (Some(l), Some(addr)) => Some(local_addr(l, addr)?),
            _ => None,
        };
        let (shutdown, stop) = watch::channel(false);
        let mut tasks = notify::spawn(Arc::clone(&shared), notify_tls, stop.clone());
        let https = Listener {
            tcp: https,
            tls: Some(server_tls),
        };
        tasks.push(tokio::spawn(server::serve(
            https,
            Arc::clone(&shared),
            stop.clone(),
        )));
        if let Some(tcp) = http {
            let http = Listener { tcp, tls: None };
            tasks.push(tokio::spawn(server::serve(http, Arc::clone(&shared), stop)));
        }
        Ok(SimHandle {
            https_addr,
            http_addr,
            cert_pem: pem.cert_pem,
            shutdown,
            tasks,
        })
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| SimError::Bind { addr, source })
}

fn local_addr(l: &TcpListener, addr: SocketAddr) -> Result<SocketAddr> {
    l.local_addr()
        .map_err(|source| SimError::Bind { addr, source })
}

fn write_cert(path: &std::path::Path, pem: &str) -> Result<()> {
    let file_err = |source| SimError::File {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(file_err)?;
    }
    std::fs::write(path, pem).map_err(file_err)
}
