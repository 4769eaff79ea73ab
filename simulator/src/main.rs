//! The `alipay-sim` binary: parses flags, loads the configuration, starts the simulator, and
//! stops it on SIGINT or SIGTERM. With no flags it runs the shipped configuration on
//! `https://127.0.0.1:9443`.

use std::net::SocketAddr;
use std::path::PathBuf;

use alipay_sim::dials::{Dials, Latency};
use alipay_sim::{Config, PemPair, SimOptions, Simulator, TlsSource};
use anyhow_free::Fail;
use clap::Parser;

/// Errors of `main`: shown as one sentence, exit status 1.
mod anyhow_free {
    /// A message for the operator.
    #[derive(Debug)]
    pub struct Fail(pub String);

    impl<E: std::fmt::Display> From<E> for Fail {
        fn from(e: E) -> Fail {
            Fail(e.to_string())
        }
    }
}

/// A faithful simulator of Alipay's legacy MAPI barcode-payment gateway (`/gateway.do`), with
/// state, Alipay's rules, fault dials, notifications, reconciliation files and an admin API.
#[derive(Debug, Parser)]
#[command(name = "alipay-sim", version, about, long_about = None)]
struct Cli {
    /// The configuration file (accounts, keys, timeouts, rates, dials).
    ///
    /// Without it, config/alipay-sim.toml is used if present, else the shipped copy compiled into
    /// the binary (with its TEST ONLY keys). Key paths are relative to the file's folder.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// The HTTPS address of /gateway.do and /admin/.
    ///
    /// Port 0 picks a free port (the log says which).
    #[arg(long, value_name = "ADDR", default_value = alipay_sim::DEFAULT_LISTEN)]
    listen: SocketAddr,

    /// Also serve plain HTTP on this address.
    #[arg(long, value_name = "ADDR")]
    http_listen: Option<SocketAddr>,

    /// The TLS certificate chain (PEM). Needs --tls-key.
    ///
    /// Without both, a self-signed certificate for localhost, 127.0.0.1 and ::1 is made at start.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// The TLS private key (PEM). Needs --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// Where to write the certificate (PEM) for clients to trust.
    #[arg(long, value_name = "FILE", default_value = alipay_sim::DEFAULT_CERT_OUT)]
    cert_out: PathBuf,

    /// Simulated seconds per real second (integer ≥ 1).
    ///
    /// Timeouts, buyer confirmations, async refunds and notification resends run on simulated
    /// time: at 60, a 3-minute trade timeout passes in 3 s. Latency and hangs stay real.
    #[arg(long, value_name = "N", default_value_t = 1)]
    time_scale: u32,

    /// The simulated Beijing wall-clock time at start, "yyyy-MM-dd HH:mm:ss". Default: now.
    #[arg(long, value_name = "TIME")]
    clock_start: Option<String>,

    /// The seed of the random dials.
    ///
    /// Runs with the same seed and the same request order get the same faults and outcomes;
    /// with concurrent clients the order is the arrival order.
    #[arg(long, value_name = "N", default_value_t = alipay_sim::DEFAULT_SEED)]
    seed: u64,

    /// PEM certificates to trust when POSTing notifications to https:// notify URLs.
    #[arg(long, value_name = "FILE")]
    notify_ca: Option<PathBuf>,

    /// Override dial unknown_then_paid_rate (0..1): pay UNKNOWN, paid after confirm_delay_s.
    #[arg(long, value_name = "P")]
    unknown_then_paid_rate: Option<f64>,
    /// Override dial unknown_then_closed_rate (0..1): pay UNKNOWN, closed after confirm_delay_s.
    #[arg(long, value_name = "P")]
    unknown_then_closed_rate: Option<f64>,
    /// Override dial fail_rate (0..1): pay FAIL with a random buyer-side code.
    #[arg(long, value_name = "P")]
    fail_rate: Option<f64>,
    /// Override dial system_error_rate (0..1): SYSTEM_ERROR, half processed.
    #[arg(long, value_name = "P")]
    system_error_rate: Option<f64>,
    /// Override dial hang_rate (0..1): no answer for hang_ms, half processed.
    #[arg(long, value_name = "P")]
    hang_rate: Option<f64>,
    /// Override dial reset_rate (0..1): TCP reset after processing.
    #[arg(long, value_name = "P")]
    reset_rate: Option<f64>,
    /// Override dial http_502_rate (0..1): HTTP 502, not processed.
    #[arg(long = "http-502-rate", value_name = "P")]
    http_502_rate: Option<f64>,
    /// Override dial slow_body_rate (0..1): body trickled over slow_body_ms.
    #[arg(long, value_name = "P")]
    slow_body_rate: Option<f64>,
    /// Override dial throttle_rate (0..1): HTTP 429, not processed.
    #[arg(long, value_name = "P")]
    throttle_rate: Option<f64>,
    /// Override dial cancel_retry_rate (0..1): a new trade's cancels fail retryably first.
    #[arg(long, value_name = "P")]
    cancel_retry_rate: Option<f64>,
    /// Override dial throttle_rps: per-partner requests per second, 0 = off.
    #[arg(long, value_name = "N")]
    throttle_rps: Option<u32>,
    /// Override dial retry_after_s: the Retry-After seconds of a 429.
    #[arg(long, value_name = "S")]
    retry_after_s: Option<u32>,
    /// Override dial hang_ms: how long a hang lasts, real milliseconds.
    #[arg(long, value_name = "MS")]
    hang_ms: Option<u64>,
    /// Override dial slow_body_ms: over how long a slow body is trickled, real milliseconds.
    #[arg(long, value_name = "MS")]
    slow_body_ms: Option<u64>,
    /// Override dial cancel_retry_count: failing cancels before the one that succeeds.
    #[arg(long, value_name = "N")]
    cancel_retry_count: Option<u32>,
    /// Override the latency: "none", "fixed:MS", "uniform:MIN_MS:MAX_MS" or
    /// "lognormal:MEDIAN_MS:P99_MS".
    #[arg(long, value_name = "SPEC", value_parser = parse_latency)]
    latency: Option<Latency>,
}

fn parse_latency(text: &str) -> Result<Latency, String> {
    let parts: Vec<&str> = text.split(':').collect();
    let n = |i: usize| -> Result<u32, String> {
        parts
            .get(i)
            .ok_or_else(|| format!("{text}: missing a number"))?
            .parse()
            .map_err(|e| format!("{text}: {e}"))
    };
    match parts[0] {
        "none" => Ok(Latency::None),
        "fixed" => Ok(Latency::Fixed { fixed_ms: n(1)? }),
        "uniform" => Ok(Latency::Uniform {
            min_ms: n(1)?,
            max_ms: n(2)?,
        }),
        "lognormal" => Ok(Latency::Lognormal {
            median_ms: n(1)?,
            p99_ms: n(2)?,
        }),
        _ => Err(format!(
            "{text}: expected none, fixed, uniform or lognormal"
        )),
    }
}

impl Cli {
    fn apply_dials(&self, d: &mut Dials) {
        let rates = [
            (self.unknown_then_paid_rate, &mut d.unknown_then_paid_rate),
            (
                self.unknown_then_closed_rate,
                &mut d.unknown_then_closed_rate,
            ),
            (self.fail_rate, &mut d.fail_rate),
            (self.system_error_rate, &mut d.system_error_rate),
            (self.hang_rate, &mut d.hang_rate),
            (self.reset_rate, &mut d.reset_rate),
            (self.http_502_rate, &mut d.http_502_rate),
            (self.slow_body_rate, &mut d.slow_body_rate),
            (self.throttle_rate, &mut d.throttle_rate),
            (self.cancel_retry_rate, &mut d.cancel_retry_rate),
        ];
        for (flag, dial) in rates {
            if let Some(v) = flag {
                *dial = v;
            }
        }
        d.throttle_rps = self.throttle_rps.unwrap_or(d.throttle_rps);
        d.retry_after_s = self.retry_after_s.unwrap_or(d.retry_after_s);
        d.hang_ms = self.hang_ms.unwrap_or(d.hang_ms);
        d.slow_body_ms = self.slow_body_ms.unwrap_or(d.slow_body_ms);
        d.cancel_retry_count = self.cancel_retry_count.unwrap_or(d.cancel_retry_count);
        d.latency = self.latency.unwrap_or(d.latency);
    }

    fn options(&self) -> Result<SimOptions, Fail> {
        let mut config = Config::load(self.config.as_deref())?;
        self.apply_dials(&mut config.dials);
        config
            .dials
            .validate()
            .map_err(|(name, message)| Fail(format!("dial {name}: {message}")))?;
        let mut o = SimOptions::new(config);
        o.listen = self.listen;
        o.http_listen = self.http_listen;
        o.cert_out = Some(self.cert_out.clone());
        o.time_scale = self.time_scale;
        o.seed = self.seed;
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            let read = |p: &PathBuf| {
                std::fs::read_to_string(p).map_err(|e| Fail(format!("{}: {e}", p.display())))
            };
            o.tls = TlsSource::Pem(PemPair::new(read(cert)?, read(key)?));
        }
        if let Some(text) = &self.clock_start {
            let t = alipay::BeijingTime::parse_dashed(text).ok_or_else(|| {
                Fail(format!(
                    "--clock-start {text}: expected yyyy-MM-dd HH:mm:ss"
                ))
            })?;
            o.clock_start = Some(t);
        }
        if let Some(ca) = &self.notify_ca {
            let pem = std::fs::read(ca).map_err(|e| Fail(format!("{}: {e}", ca.display())))?;
            o.notify_ca_pem = Some(pem);
        }
        Ok(o)
    }
}

async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    // A failed money invariant (an assert! in the ledger) must stop the whole process, not just
    // the task that hit it.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        std::process::abort();
    }));
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(Fail(message)) => {
            tracing::error!("alipay-sim cannot run: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Fail> {
    let cli = Cli::parse();
    let options = cli.options()?;
    let source = options.config.source.clone();
    let accounts = options.config.accounts.len();
    let (scale, seed) = (options.time_scale, options.seed);
    let cert_out = options.cert_out.clone();
    let handle = Simulator::start(options).await?;
    tracing::info!("Loaded {accounts} accounts from {source}.");
    tracing::info!("Listening for HTTPS on {}.", handle.https_url());
    if let Some(url) = handle.http_url() {
        tracing::info!("Listening for plain HTTP on {url}.");
    }
    if let Some(path) = cert_out {
        tracing::info!("Wrote the certificate to trust to {}.", path.display());
    }
    tracing::info!("Simulated time runs at {scale}x; the seed is {seed}.");
    stop_signal().await;
    tracing::info!("Stopping: letting open connections finish.");
    handle.shutdown().await;
    tracing::info!("Stopped.");
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn flags() -> Vec<String> {
        Cli::command()
            .get_arguments()
            .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
            .collect()
    }

    #[test]
    fn every_dial_has_a_documented_flag() {
        Cli::command().debug_assert();
        let help = Cli::command().render_long_help().to_string();
        let dials = serde_json::to_value(Dials::default()).unwrap();
        for name in dials.as_object().unwrap().keys() {
            let flag = format!("--{}", name.replace('_', "-"));
            assert!(flags().contains(&flag), "no flag for dial {name}");
            assert!(help.contains(&format!("Override dial {name}")) || name == "latency");
        }
        for arg in Cli::command().get_arguments() {
            let documented = arg.get_help().is_some_and(|h| !h.to_string().is_empty());
            assert!(documented, "--help says nothing about {:?}", arg.get_id());
        }
    }

    #[test]
    fn the_readme_lists_every_process_flag() {
        let readme = include_str!("../README.md");
        let dials = serde_json::to_value(Dials::default()).unwrap();
        let dial_flags: Vec<String> = dials
            .as_object()
            .unwrap()
            .keys()
            .map(|n| format!("--{}", n.replace('_', "-")))
            .collect();
        assert!(readme.contains("`--<dial>`"));
        for flag in flags() {
            if !dial_flags.contains(&flag) && flag != "--help" && flag != "--version" {
                let listed = [" ", "`"]
                    .iter()
                    .any(|end| readme.contains(&format!("{flag}{end}")));
                assert!(listed, "README lacks {flag}");
            }
        }
    }

    #[test]
    fn flags_override_the_dials() {
        let cli = Cli::parse_from([
            "alipay-sim",
            "--retry-after-s",
            "7",
            "--fail-rate",
            "0.25",
            "--latency",
            "uniform:10:20",
        ]);
        let mut d = Dials::default();
        cli.apply_dials(&mut d);
        assert_eq!(d.retry_after_s, 7);
        assert_eq!(d.fail_rate, 0.25);
        assert_eq!(
            d.latency,
            Latency::Uniform {
                min_ms: 10,
                max_ms: 20
            }
        );
    }
}
