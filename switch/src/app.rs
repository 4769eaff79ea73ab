//! Wiring: from a [`Config`] to a running switch, and back down on shutdown.
//!
//! Start order: the metrics recorder; the bundled simulator when the configuration embeds it
//! (its certificate must exist before the accounts' trust roots are read); the routing table
//! with every key; the journal (open verifies the chain's tail); one upstream client per
//! account; the engine and the gateway; the listeners. Stop order is the reverse: the
//! listeners stop accepting and drain in-flight requests, then the engine and the journal are
//! dropped, which lets the journal's writer finish and sync what is queued.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::{Config, ConfigErrors};
use crate::engine::{Clock, Engine, EngineLimits};
use crate::gateway::Gateway;
use crate::notify::Notifier;
use crate::resolver::Resolver;
use crate::server::{self, GatewayHttp, Handler, HttpReply, Readiness, TransportReject};
use crate::upstream::{LimiterOptions, Upstream, UpstreamOptions};

/// Why the switch could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The configuration (or a key it references) is wrong.
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    /// The journal could not be opened.
    #[error("journal: {0}")]
    Journal(#[from] ledger::Error),
    /// An upstream client could not be built.
    #[error("upstream account `{account}`: {message}")]
    Upstream {
        /// The account's name.
        account: String,
        /// What went wrong.
        message: String,
    },
    /// A listener could not be bound or served.
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
    /// The embedded simulator could not start.
    #[error("embedded simulator: {0}")]
    Simulator(String),
    /// The metrics recorder could not be installed.
    #[error("metrics: {0}")]
    Metrics(String),
    /// TLS setup failed.
    #[error("tls: {0}")]
    Tls(String),
}

impl AppError {
    /// The process exit code for this error: 2 for configuration, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Config(_) => 2,
            _ => 1,
        }
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// The system clock in UTC milliseconds: the engine's only time source in production.
#[allow(clippy::disallowed_methods)]
pub fn system_clock() -> Clock {
    Arc::new(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
    })
}

/// The gateway behind the HTTP transport.
#[derive(Debug)]
struct SwitchHandler {
    gateway: Gateway,
}

impl Handler for SwitchHandler {
    async fn gateway(&self, req: GatewayHttp) -> HttpReply {
        let body = self.gateway.handle(&req.query, &req.body).await;
        HttpReply::new(200, self.gateway.content_type(), body)
    }

    fn reject(&self, why: TransportReject) -> HttpReply {
        use alipay::message::GatewayErrorCode;
        // Past the deadline the request goes on being processed: its outcome is unknown to the
        // caller (SYSTEM_ERROR). Every other refusal came before any processing.
        let code = match why {
            TransportReject::HandlerTimeout => GatewayErrorCode::SystemError,
            _ => GatewayErrorCode::IllegalArgument,
        };
        let body = self.gateway.transport_error(code);
        tracing::info!(
            reason = why.reason(),
            "request refused by a transport limit"
        );
        HttpReply::new(200, self.gateway.content_type(), body)
    }

    fn readiness(&self) -> Readiness {
        let engine = self.gateway.engine();
        if let ledger::HealthStatus::Failed(reason) = engine.journal().health() {
            return Readiness::NotReady(format!("journal failed: {reason}"));
        }
        if !engine.upstreams().values().any(|u| u.usable()) {
            return Readiness::NotReady("no usable upstream endpoint".into());
        }
        Readiness::Ready
    }
}

/// A running switch.
#[derive(Debug)]
pub struct Running {
    /// The HTTPS gateway address, if any.
    pub https: Option<SocketAddr>,
    /// The plain-HTTP gateway address, if any.
    pub http: Option<SocketAddr>,
    /// The address of `/metrics`, `/healthz`, `/readyz`.
    pub ops: Option<SocketAddr>,
    /// The operators' admin API address, if any (`listen.admin_api`).
    pub admin_api: Option<SocketAddr>,
    /// The PEM of the HTTPS certificate when it was generated (for clients to trust).
    pub cert_pem: Option<String>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), AppError>>,
    #[cfg(feature = "simulator")]
    sim: Option<alipay_sim::SimHandle>,
}

impl Running {
    /// Stops gracefully (as on SIGTERM) and waits until the journal is closed.
    pub async fn stop(mut self) -> Result<(), AppError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.wait().await
    }

    /// Waits until the switch stops by itself (a signal, when started with one), then stops the
    /// embedded simulator.
    pub async fn wait(mut self) -> Result<(), AppError> {
        let result = match (&mut self.task).await {
            Ok(r) => r,
            Err(e) => Err(AppError::Io(std::io::Error::other(e.to_string()))),
        };
        #[cfg(feature = "simulator")]
        if let Some(sim) = self.sim.take() {
            sim.shutdown().await;
        }
        result
    }
}

#[cfg(feature = "simulator")]
async fn start_simulator(config: &Config) -> Result<Option<alipay_sim::SimHandle>, AppError> {
    let Some(s) = config.simulator.as_ref().filter(|s| s.embedded) else {
        return Ok(None);
    };
    let sim_config = alipay_sim::Config::load(s.config.as_deref())
        .map_err(|e| AppError::Simulator(e.to_string()))?;
    let mut o = alipay_sim::SimOptions::new(sim_config);
    o.listen = s.listen;
    o.http_listen = s.http_listen;
    o.cert_out.clone_from(&s.cert_out);
    o.time_scale = s.time_scale;
    o.seed = s.seed;
    let handle = alipay_sim::Simulator::start(o)
        .await
        .map_err(|e| AppError::Simulator(e.to_string()))?;
    tracing::info!(addr = %handle.https_addr(), "embedded Alipay simulator started");
    Ok(Some(handle))
}

#[cfg(not(feature = "simulator"))]
async fn start_simulator(config: &Config) -> Result<(), AppError> {
    if config.simulator.as_ref().is_some_and(|s| s.embedded) {
        return Err(AppError::Simulator(
            "this build has no bundled simulator (built without the `simulator` feature)".into(),
        ));
    }
    Ok(())
}

/// Starts the switch; it runs until [`Running::stop`], or until `signal` resolves.
pub async fn start(
    config: Config,
    signal: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Running, AppError> {
    start_with_clock(config, signal, system_clock()).await
}

/// [`start`] with another wall clock (tests move it across Beijing midnight).
pub async fn start_with_clock(
    config: Config,
    signal: impl std::future::Future<Output = ()> + Send + 'static,
    clock: Clock,
) -> Result<Running, AppError> {
    let metrics =
        crate::telemetry::install_metrics().map_err(|e| AppError::Metrics(e.to_string()))?;
    #[cfg_attr(not(feature = "simulator"), allow(unused_variables))]
    let sim = start_simulator(&config).await?;
    let tenants = Arc::new(config.tenants()?);
    let journal_path = config.journal.path.clone();
    if let Some(parent) = journal_path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let options = config.journal_options();
    let journal =
        tokio::task::spawn_blocking(move || ledger::Journal::open(&journal_path, options))
            .await
            .map_err(|e| AppError::Io(std::io::Error::other(e.to_string())))??;
    let journal = Arc::new(journal);
    let mut upstreams = HashMap::new();
    for account in tenants.accounts() {
        let concurrency_min = config
            .accounts
            .iter()
            .find(|a| a.name == account.name)
            .map_or(LimiterOptions::default().concurrency_min, |a| {
                a.concurrency_min
            });
        let options = UpstreamOptions {
            limiter: LimiterOptions {
                concurrency_min,
                ..LimiterOptions::default()
            },
            ..UpstreamOptions::default()
        };
        let u = Upstream::with_options(Arc::clone(account), options).map_err(|e| {
            AppError::Upstream {
                account: account.name.clone(),
                message: e.to_string(),
            }
        })?;
        upstreams.insert(account.name.clone(), Arc::new(u));
    }
    let engine = Arc::new(Engine::new(
        Arc::clone(&journal),
        Arc::clone(&tenants),
        upstreams,
        EngineLimits {
            in_flight_max: config.limits.engine_in_flight_max,
            lock_wait: lock_wait(&config),
            pay_share_percent: config.limits.pay_share_percent,
            query_fresh: config.resolver.query_interval,
        },
        config.node.id.clone(),
        clock,
    ));
    // The resolver starts with a sweep of the pending table: whatever a previous run left
    // unresolved (crash recovery) is taken up before the listeners open.
    let resolver = Resolver::new(
        Arc::clone(&engine),
        &config.resolver,
        config.limits.engine_in_flight_max,
    );
    // Installed before the resolver runs, so its first sweep already offers the notifications
    // a previous run left owed.
    let notifier = Notifier::new(
        Arc::clone(&engine),
        &config.notify,
        config.gateway.response_encoding,
        crate::upstream::connector::client_config(None)
            .map_err(|e| AppError::Tls(e.to_string()))?,
        config.resolver.sweep_interval,
    );
    resolver.set_notifier(notifier.intake());
    let (resolver_stop, resolver_stopped) = oneshot::channel::<()>();
    let resolver_task = tokio::spawn(Arc::clone(&resolver).run(async move {
        let _ = resolver_stopped.await;
    }));
    // The operators' admin API acts through the resolver; it stops before the resolver does.
    let admin_api = crate::admin::start(
        config.listen.admin_api,
        Arc::clone(&resolver),
        Arc::clone(engine.journal()),
    )
    .await?;
    let admin_api_addr = admin_api.addr();
    drop(journal);
    let gateway = Gateway::new(
        tenants,
        engine,
        config.gateway.response_encoding,
        config.gateway.in_flight_max,
    )
    .with_pay_share_percent(config.limits.pay_share_percent)
    .with_rate_limits(
        config
            .callers
            .iter()
            .filter_map(|c| Some((c.id.clone(), c.rate?))),
    );
    let handler = Arc::new(SwitchHandler { gateway });
    let (tls, cert_pem) = match config.listen.https {
        None => (None, None),
        Some(_) => match (&config.listen.tls_cert, &config.listen.tls_key) {
            (Some(cert), Some(key)) => (
                Some(server::tls_from_pem(cert, key).map_err(|e| AppError::Tls(e.to_string()))?),
                None,
            ),
            _ => {
                let out = config.listen.cert_out.as_deref();
                let tls = server::self_signed(out).map_err(|e| AppError::Tls(e.to_string()))?;
                (Some(tls), out.and_then(|p| std::fs::read_to_string(p).ok()))
            }
        },
    };
    let listeners = server::Listeners {
        https: config.listen.https.zip(tls),
        http: config.listen.http,
        ops: config.listen.admin,
    };
    let limits = server::ServerLimits {
        body_bytes_max: config.gateway.body_bytes_max,
        header_read_timeout: config.gateway.header_read_timeout,
        request_timeout: config.gateway.request_timeout,
        connections_max: config.gateway.connections_max,
    };
    // Draining waits for every request in flight: at most the whole-request deadline.
    let bound = server::bind(&listeners, limits)
        .await?
        .with_drain_timeout(config.gateway.request_timeout + DRAIN_MARGIN);
    let (https, http, ops) = (bound.https_addr(), bound.http_addr(), bound.ops_addr());
    tracing::info!(?https, ?http, ?ops, "switch listening");
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let shutdown = async move {
            tokio::select! {
                _ = stop_rx => {}
                () = signal => {}
            }
            tracing::info!("shutting down: no new connections; finishing in-flight requests");
        };
        bound.serve(Arc::clone(&handler), metrics, shutdown).await?;
        admin_api.stop().await;
        let _ = resolver_stop.send(());
        let _ = resolver_task.await;
        drop(resolver);
        notifier.stop().await;
        drop(notifier);
        // The listeners are drained; dropping the handler drops the engine and the journal,
        // whose writer finishes and syncs what is queued.
        let engine = Arc::clone(handler.gateway.engine());
        drop(handler);
        let journal = Arc::clone(engine.journal());
        drop(engine);
        let stats = journal.stats();
        drop(journal);
        tracing::info!(appends = stats.appends, "journal closed; stopped");
        Ok(())
    });
    Ok(Running {
        https,
        http,
        ops,
        admin_api: admin_api_addr,
        cert_pem,
        stop: Some(stop_tx),
        task,
        #[cfg(feature = "simulator")]
        sim,
    })
}

/// Time beyond the request deadline that shutdown waits for requests in flight.
const DRAIN_MARGIN: std::time::Duration = std::time::Duration::from_secs(2);

/// How long a request waits for another one on the same transaction: what is left of the
/// merchant's deadline after the longest upstream call, at least one second.
fn lock_wait(config: &Config) -> std::time::Duration {
    let upstream = config
        .accounts
        .iter()
        .map(|a| a.request_timeout)
        .max()
        .unwrap_or_default();
    config
        .gateway
        .request_timeout
        .saturating_sub(upstream)
        .max(std::time::Duration::from_secs(1))
}

/// Runs the switch on a new runtime until SIGTERM or Ctrl-C.
pub fn run_blocking(config: Config) -> Result<(), AppError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("switch")
        .build()?;
    rt.block_on(async move {
        let running = start(config, server::shutdown_signal()).await?;
        running.wait().await
    })
}
