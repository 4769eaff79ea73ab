//! `switch check-config`: every error of a configuration, or a summary an operator can read to
//! see what the switch will do.

use std::fmt::Write as _;
use std::path::Path;

use super::keys::SimCert;
use super::{Config, ConfigErrors};
use crate::tenants::{CallerKind, Mode};

/// Loads the configuration (`path`, else as [`Config::load_or_default`]), reads every key and
/// certificate it references, and returns a summary — or every error found, each with file and
/// key. The embedded simulator's certificate is not required yet: it is written when the
/// simulator starts.
pub fn check(path: Option<&Path>) -> Result<String, ConfigErrors> {
    let config = Config::load_or_default(path)?;
    let mut errors = Vec::new();
    if let Err(e) = config.build_tenants(SimCert::Later) {
        errors.extend(e.0);
    }
    if let Err(e) = config.tls_pem() {
        errors.extend(e.0);
    }
    #[cfg(feature = "simulator")]
    if let Err(e) = config.simulator_options() {
        errors.extend(e.0);
    }
    if errors.is_empty() {
        Ok(config.explain())
    } else {
        Err(ConfigErrors(errors))
    }
}

impl Config {
    /// What this configuration makes the switch do, in a few lines (no key material: keys are
    /// named by where they are read from).
    pub fn explain(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{}: valid; node {}", self.origin, self.node.id);
        self.explain_listeners(&mut s);
        let j = &self.journal;
        let _ = writeln!(
            s,
            "journal: {} (wal_recovery {}, queue {}, groups of at most {}, linger {} ms)",
            j.path.display(),
            match j.wal_recovery {
                super::WalRecovery::Strict => "strict",
                super::WalRecovery::TornTailTolerated => "torn-tail-tolerated",
            },
            j.queue_capacity,
            j.group_size_max,
            j.group_linger.as_millis()
        );
        let g = &self.gateway;
        let _ = writeln!(
            s,
            "gateway: bodies up to {} bytes, headers within {} ms, requests within {} ms, \
             {} connections, {} in flight, answers in {}",
            g.body_bytes_max,
            g.header_read_timeout.as_millis(),
            g.request_timeout.as_millis(),
            g.connections_max,
            g.in_flight_max,
            g.response_encoding.label()
        );
        self.explain_accounts(&mut s);
        self.explain_merchants(&mut s);
        self.explain_callers(&mut s);
        self.explain_rest(&mut s);
        s
    }

    fn explain_listeners(&self, s: &mut String) {
        let l = &self.listen;
        let mut parts = Vec::new();
        if let Some(a) = l.https {
            let cert = match (&l.tls_cert, &l.cert_out) {
                (Some(c), _) => format!("certificate {}", c.display()),
                (None, Some(out)) => format!("self-signed, written to {}", out.display()),
                (None, None) => "self-signed, not written out".to_owned(),
            };
            parts.push(format!("https {a} ({cert})"));
        }
        if let Some(a) = l.http {
            parts.push(format!("http {a}"));
        }
        if let Some(a) = self.admin_addr() {
            parts.push(format!("/metrics /healthz /readyz on {a}"));
        }
        let _ = writeln!(s, "listeners: {}", parts.join("; "));
    }

    fn explain_accounts(&self, s: &mut String) {
        let _ = writeln!(s, "{} upstream accounts:", self.accounts.len());
        for a in &self.accounts {
            let endpoints: Vec<String> = a
                .endpoints
                .iter()
                .map(|e| format!("{} {}", e.name, e.url))
                .collect();
            let _ = write!(
                s,
                "  {}: partner {}, {}, key {}, endpoints {}; pool {} (adaptive concurrency {} to {}), \
                 connect {} ms, request {} ms",
                a.name,
                a.partner,
                a.sign_type,
                a.key,
                endpoints.join(", "),
                a.pool_size,
                a.concurrency_min,
                a.pool_size,
                a.connect_timeout.as_millis(),
                a.request_timeout.as_millis()
            );
            if let Some(ca) = &a.ca_cert {
                let _ = write!(s, ", trusts {}", ca.display());
            }
            s.push('\n');
        }
    }

    fn explain_merchants(&self, s: &mut String) {
        let _ = writeln!(s, "{} merchants:", self.merchants.len());
        for m in &self.merchants {
            let callers: Vec<&str> = self
                .callers
                .iter()
                .filter(|c| match &c.kind {
                    CallerKind::Merchant => c.id == m.id,
                    CallerKind::Integrator { merchants } => merchants.contains(&m.id),
                })
                .map(|c| c.id.as_str())
                .collect();
            let mode = match m.mode {
                Mode::Acquirer => format!(
                    "acquirer mode on {} as secondary merchant {}, MCC {}, stores {}",
                    m.account,
                    m.secondary_merchant_id,
                    m.mcc,
                    m.stores
                        .iter()
                        .map(|s| s.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Mode::Direct => format!("direct mode on {}", m.account),
            };
            let by = if callers.is_empty() {
                "no caller may act for it".to_owned()
            } else {
                format!("called by {}", callers.join(", "))
            };
            let _ = writeln!(s, "  {} {}: {mode}; {by}", m.id, m.name);
        }
    }

    fn explain_callers(&self, s: &mut String) {
        let _ = writeln!(s, "{} callers:", self.callers.len());
        for c in &self.callers {
            let kind = match &c.kind {
                CallerKind::Merchant => "merchant".to_owned(),
                CallerKind::Integrator { merchants } => {
                    format!("integrator for {}", merchants.join(", "))
                }
            };
            let _ = write!(
                s,
                "  {}: {kind}, {}, key {}, {} in flight",
                c.id, c.sign_type, c.key, c.in_flight_max
            );
            if let Some(r) = &c.rate {
                let _ = write!(
                    s,
                    ", {} pays and refunds/s (burst {})",
                    r.rate_per_s(),
                    r.burst()
                );
            }
            if let Some(u) = &c.notify_url {
                let _ = write!(s, ", notifies {u}");
            }
            s.push('\n');
        }
    }

    fn explain_rest(&self, s: &mut String) {
        let r = &self.resolver;
        let ladder: Vec<String> = r
            .cancel_retry
            .iter()
            .map(|d| d.as_millis().to_string())
            .collect();
        let _ = writeln!(
            s,
            "resolver: query {} ms after an unknown outcome, every {} ms until {} ms, then cancel \
             (retries after {} ms, at most {} attempts); cancels accepted until {} ms after \
             Beijing midnight, then refund; refunds resent at most {} times; {} calls at once",
            r.first_query_after.as_millis(),
            r.query_interval.as_millis(),
            r.query_window.as_millis(),
            ladder.join(", "),
            r.cancel_attempts_max,
            r.cancel_grace_after_midnight.as_millis(),
            r.refund_attempts_max,
            r.concurrency
        );
        let n = &self.notify;
        let _ =
            writeln!(
            s,
            "notify: {} tries over {} s, {} ms each at most, {} at once ({} per caller), {} held \
             in memory",
            n.retry.len() + 1,
            n.retry.iter().map(std::time::Duration::as_secs).sum::<u64>(),
            n.timeout.as_millis(),
            n.concurrency,
            n.per_merchant,
            n.queue_max
        );
        let _ = writeln!(
            s,
            "limits: {} transactions in the engine at once, new pays at most {}% of them",
            self.limits.engine_in_flight_max, self.limits.pay_share_percent
        );
        match &self.simulator {
            Some(sim) if sim.embedded => {
                let config = sim.config.as_ref().map_or_else(
                    || "its built-in config".to_owned(),
                    |p| p.display().to_string(),
                );
                let cert = sim.cert_out.as_ref().map_or_else(
                    || "not written out".to_owned(),
                    |p| format!("written to {}", p.display()),
                );
                let _ = writeln!(
                    s,
                    "simulator: embedded, https {} ({config}; certificate {cert}), time scale {}, \
                     seed {}",
                    sim.listen, sim.time_scale, sim.seed
                );
            }
            Some(_) => {
                let _ = writeln!(s, "simulator: not started (embedded = false)");
            }
            None => {}
        }
    }
}

#[cfg(feature = "simulator")]
impl Config {
    /// How to start the embedded simulator, when `[simulator] embedded = true`; its own
    /// configuration file is read and checked here.
    pub fn simulator_options(&self) -> Result<Option<alipay_sim::SimOptions>, ConfigErrors> {
        let Some(sim) = self.simulator.as_ref().filter(|s| s.embedded) else {
            return Ok(None);
        };
        let config = match &sim.config {
            Some(path) => alipay_sim::Config::from_file(path),
            None => alipay_sim::Config::embedded(),
        }
        .map_err(|e| ConfigErrors(vec![self.error("simulator.config", e.to_string())]))?;
        let mut o = alipay_sim::SimOptions::new(config);
        o.listen = sim.listen;
        o.http_listen = sim.http_listen;
        o.cert_out = sim.cert_out.clone();
        o.time_scale = sim.time_scale;
        o.seed = sim.seed;
        Ok(Some(o))
    }
}
