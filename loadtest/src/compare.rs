//! `loadtest compare`: the same open-loop load, on this machine, (a) straight to the simulator,
//! (b) through nginx as a plain TLS reverse proxy with upstream keep-alive, and (c) through the
//! switch (full verification, synced journal, re-signing), each a separate process.
//!
//! For each target: the highest constant rate within the SLO ([`crate::max::search`]); then runs
//! at 25 %, 50 % and 75 % of the **direct** maximum, for p50/p99/p99.9 at the same offered load.
//! For the switch also its CPU and peak RSS (from `/proc`), and the journal's syncs per second and
//! sync p99 (from its metrics). After the switch's runs, the three-way check over every order it
//! was sent. One table, with the ratios switch/nginx and switch/direct.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::check::CheckReport;
use crate::fleet::{Caller, Fleet};
use crate::max::{MaxResult, Search, Slo};
use crate::procs::{
    self, JournalSyncs, NginxOptions, NginxProcess, Sampler, SimOptions, SimProcess, SwitchOptions,
    SwitchProcess, Target as ProcTarget,
};
use crate::profile::Profile;
use crate::report::Mix;
use crate::runner::{run, RunOptions};
use crate::told::Order;

/// What to compare.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// Merchants (each its own caller through the switch; secondary merchants directly).
    pub merchants: usize,
    /// Share of RSA2 callers, 0 to 1.
    pub rsa2_share: f64,
    /// The SLO of the max search.
    pub slo: Slo,
    /// Length of each max-search trial.
    pub trial: Duration,
    /// Most trials per target.
    pub trials_max: usize,
    /// First rate tried.
    pub start_rate: f64,
    /// Length of each run at 25/50/75 % of the direct max.
    pub point: Duration,
    /// Follow-up mix.
    pub mix: Mix,
    /// Most requests in flight.
    pub in_flight_max: usize,
    /// Seed.
    pub seed: u64,
    /// How long the check waits for the switch to settle.
    pub settle_timeout: Duration,
    /// The switch's `journal.group_linger_ms`.
    pub group_linger_ms: u32,
}

/// One target's figures.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TargetFigures {
    /// `direct`, `nginx` or `switch`.
    pub target: String,
    /// The highest rate within the SLO, per second.
    pub max_rate: f64,
    /// The search's trials.
    pub search: Option<MaxResult>,
    /// Runs at 25, 50 and 75 % of the direct max.
    pub points: Vec<Point>,
    /// Peak RSS over all its runs, MB (switch only).
    pub peak_rss_mb: Option<f64>,
}

/// One run at a fraction of the direct max.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Point {
    /// 25, 50 or 75.
    pub percent_of_direct_max: u32,
    /// The rate asked.
    pub rate: f64,
    /// Answers per second.
    pub achieved: f64,
    /// Latency from intended send, ms.
    pub p50_ms: f64,
    /// p99, ms.
    pub p99_ms: f64,
    /// p99.9, ms.
    pub p999_ms: f64,
    /// Errors, percent.
    pub errors_percent: f64,
    /// The target's CPU, percent of one core (switch and nginx).
    pub cpu_percent: Option<f64>,
    /// The generator's CPU, percent of one core.
    pub generator_cpu_percent: f64,
    /// Journal syncs per second (switch).
    pub syncs_per_s: Option<f64>,
    /// Journal sync p99 (bucket bound), ms (switch).
    pub sync_p99_ms: Option<f64>,
    /// Mean appends per sync (switch).
    pub group_size: Option<f64>,
}

/// The whole comparison.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Comparison {
    /// The SLO.
    pub slo: Option<Slo>,
    /// Merchants and RSA2 share.
    pub merchants: usize,
    /// Share of RSA2 callers.
    pub rsa2_share: f64,
    /// The switch's `journal.group_linger_ms`.
    #[serde(default)]
    pub group_linger_ms: u32,
    /// Direct, nginx, switch.
    pub targets: Vec<TargetFigures>,
    /// The three-way check over the switch's orders.
    pub check: Option<CheckReport>,
    /// The table, as printed.
    pub table: String,
}

/// Errors of a comparison.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// A process would not start or stop.
    #[error("{0}")]
    Proc(#[from] procs::ProcError),
    /// A run failed to start.
    #[error("{0}")]
    Run(#[from] crate::runner::RunError),
    /// The fleet's keys.
    #[error("{0}")]
    Fleet(#[from] crate::fleet::FleetError),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

fn read_key(name: &str) -> Result<String, CompareError> {
    let p = procs::keys_dir().join(name);
    std::fs::read_to_string(&p).map_err(|e| CompareError::Other(format!("{}: {e}", p.display())))
}

/// The simulator's own accounts with the same RSA2 share: the MD5 acquirer account (paying
/// for `merchants` secondary merchants in extend_info) and the RSA2 direct account, repeated in
/// 20 slots so that the workload's uniform pick of a caller gives the share.
pub fn direct_fleet(merchants: usize, rsa2_share: f64) -> Result<Fleet, CompareError> {
    let secondary: Vec<String> = (1..=merchants.max(1))
        .map(|i| format!("SM{i:05}"))
        .collect();
    let md5 = Caller::new(
        "2088101122136241".into(),
        alipay::SignType::Md5,
        read_key("md5_2088101122136241.key")?,
        None,
        None,
        secondary,
        true,
    )?;
    let rsa2 = Caller::new(
        "2088101122136242".into(),
        alipay::SignType::Rsa2,
        read_key("merchant_rsa2_private.pem")?,
        Some(&read_key("alipay_rsa2_public.pem")?),
        None,
        vec!["2088101122136242".into()],
        false,
    )?;
    let n_rsa2 = (rsa2_share.clamp(0.0, 1.0) * 20.0).round();
    let mut callers = Vec::new();
    for i in 0..20 {
        let slot = f64::from(i);
        callers.push(if slot < n_rsa2 {
            rsa2.clone()
        } else {
            md5.clone()
        });
    }
    Ok(Fleet { callers })
}

/// The fleet the switch serves: `merchants` merchants, each its own caller.
pub fn switch_fleet(merchants: usize, rsa2_share: f64, seed: u64) -> Result<Fleet, CompareError> {
    Ok(Fleet::generate(
        merchants,
        rsa2_share,
        seed,
        &read_key("merchant_rsa2_private.pem")?,
        &read_key("merchant_rsa2_public.pem")?,
        &read_key("switch_rsa_public.pem")?,
    )?)
}

struct Env<'a> {
    name: &'static str,
    url: String,
    trust: Vec<u8>,
    fleet: Arc<Fleet>,
    opts: &'a CompareOptions,
}

impl Env<'_> {
    fn run_options(&self, profile: Profile, prefix: &str) -> RunOptions {
        RunOptions {
            target_url: self.url.clone(),
            target_kind: if self.name == "direct" {
                "simulator".into()
            } else {
                self.name.into()
            },
            trust_pem: Some(self.trust.clone()),
            profile,
            mix: self.opts.mix,
            fleet: Arc::clone(&self.fleet),
            in_flight_max: self.opts.in_flight_max,
            lag_max: Duration::from_secs(5),
            request_timeout: Duration::from_secs(20),
            seed: self.opts.seed,
            fault_share: 0.0,
            order_prefix: prefix.to_owned(),
            progress: false,
        }
    }
}

fn prefix(name: &str, n: usize) -> String {
    format!("c{}{n}x", &name[..1])
}

/// Runs the max search against one target, keeping every order sent.
async fn max_of(env: &Env<'_>, orders: &mut Vec<Order>) -> Result<MaxResult, CompareError> {
    let search = Search {
        start: env.opts.start_rate,
        ceiling: 100_000.0,
        precision: 0.05,
        trials_max: env.opts.trials_max,
    };
    // A fresh process opens its connections, fills its caches and pools during its first
    // seconds: a warm-up at the start rate, not judged, so the first trial measures the
    // target and not its start (a failed first trial would send the search down).
    let warm = run(env.run_options(
        Profile::constant(env.opts.start_rate, WARMUP),
        &prefix(env.name, 0),
    ))
    .await?;
    eprintln!(
        "warm-up: {:.0}/s for {} s (not judged)",
        env.opts.start_rate,
        WARMUP.as_secs()
    );
    orders.extend(warm.orders);
    let kept = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut n = 0;
    let result = crate::max::search(search, env.opts.slo, |rate| {
        n += 1;
        let o = env.run_options(
            Profile::constant(rate, env.opts.trial),
            &prefix(env.name, n),
        );
        let kept = Arc::clone(&kept);
        async move {
            let outcome = run(o).await?;
            kept.lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(outcome.orders);
            Ok::<_, crate::runner::RunError>(outcome.report)
        }
    })
    .await?;
    orders.append(&mut kept.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(result)
}

/// How long each target is warmed up before its max search.
const WARMUP: Duration = Duration::from_secs(3);

/// Measures one point.
async fn point(
    env: &Env<'_>,
    percent: u32,
    rate: f64,
    orders: &mut Vec<Order>,
    switch: Option<&SwitchProcess>,
    sampler: Option<&Sampler>,
) -> Result<Point, CompareError> {
    let before = match switch {
        Some(s) => Some(JournalSyncs::scrape(&s.metrics_url()).await?),
        None => None,
    };
    if let Some(s) = sampler {
        s.reset();
    }
    let started = Instant::now();
    let o = env.run_options(
        Profile::constant(rate, env.opts.point),
        &format!("p{}{percent}x", &env.name[..1]),
    );
    let outcome = run(o).await?;
    let elapsed = started.elapsed();
    let usage = sampler.map(Sampler::usage);
    let syncs = match (switch, before) {
        (Some(s), Some(b)) => Some(
            JournalSyncs::scrape(&s.metrics_url())
                .await?
                .since(&b, elapsed),
        ),
        _ => None,
    };
    orders.extend(outcome.orders);
    let r = &outcome.report;
    Ok(Point {
        percent_of_direct_max: percent,
        rate,
        achieved: r.summary.achieved_rate,
        p50_ms: r.latency.all.p50,
        p99_ms: r.latency.all.p99,
        p999_ms: r.latency.all.p999,
        errors_percent: r.summary.error_rate * 100.0,
        cpu_percent: usage.map(|u| u.cpu_percent),
        generator_cpu_percent: r.summary.generator_cpu_percent,
        syncs_per_s: syncs.map(|s| s.per_second),
        sync_p99_ms: syncs.and_then(|s| s.p99_seconds).map(|s| s * 1000.0),
        group_size: syncs.and_then(|s| s.mean_group_size),
    })
}

/// Runs the whole comparison.
pub async fn compare(opts: &CompareOptions) -> Result<Comparison, CompareError> {
    let sim_opts = SimOptions {
        trades_max: Some(20_000_000),
        ..SimOptions::default()
    };
    let mut sim = SimProcess::start(&sim_opts).await?;
    let direct = Arc::new(direct_fleet(opts.merchants, opts.rsa2_share)?);
    let mut out = Comparison {
        slo: Some(opts.slo),
        merchants: opts.merchants,
        rsa2_share: opts.rsa2_share,
        group_linger_ms: opts.group_linger_ms,
        ..Comparison::default()
    };
    let mut unused = Vec::new();

    // (a) Direct.
    eprintln!("== direct to the simulator ({})", sim.url());
    let env = Env {
        name: "direct",
        url: sim.url().to_owned(),
        trust: sim.cert_pem().as_bytes().to_vec(),
        fleet: Arc::clone(&direct),
        opts,
    };
    let search = max_of(&env, &mut unused).await?;
    let direct_max = search.max_rate;
    if direct_max <= 0.0 {
        return Err(CompareError::Other(
            "no rate met the SLO straight to the simulator: nothing to compare".into(),
        ));
    }
    let mut figures = TargetFigures {
        target: "direct".into(),
        max_rate: direct_max,
        search: Some(search),
        ..TargetFigures::default()
    };
    for pct in [25, 50, 75] {
        let rate = (direct_max * f64::from(pct) / 100.0).round();
        figures
            .points
            .push(point(&env, pct, rate, &mut unused, None, None).await?);
    }
    out.targets.push(figures);

    // (b) nginx.
    let mut nginx = NginxProcess::in_front_of(&sim, &NginxOptions::default()).await?;
    eprintln!("== through nginx ({})", nginx.url());
    let nginx_sampler = Sampler::start(ProcTarget::Tree(nginx.pid()), Duration::from_millis(200))?;
    let env = Env {
        name: "nginx",
        url: nginx.url(),
        trust: nginx.cert_pem().as_bytes().to_vec(),
        fleet: Arc::clone(&direct),
        opts,
    };
    let search = max_of(&env, &mut unused).await?;
    let mut figures = TargetFigures {
        target: "nginx".into(),
        max_rate: search.max_rate,
        search: Some(search),
        ..TargetFigures::default()
    };
    for pct in [25, 50, 75] {
        let rate = (direct_max * f64::from(pct) / 100.0).round();
        figures
            .points
            .push(point(&env, pct, rate, &mut unused, None, Some(&nginx_sampler)).await?);
    }
    drop(nginx_sampler);
    nginx.stop()?;
    out.targets.push(figures);

    // (c) The switch, on a simulator emptied of the direct runs' trades (so the check sees
    // only what went through the switch).
    let (status, _) = sim
        .admin()
        .send_json(hyper::Method::POST, "/admin/reset", &serde_json::json!({}))
        .await
        .map_err(|e| CompareError::Other(format!("simulator reset: {e}")))?;
    if status != 200 {
        return Err(CompareError::Other(format!(
            "simulator reset answered {status}"
        )));
    }
    let fleet = Arc::new(switch_fleet(opts.merchants, opts.rsa2_share, opts.seed)?);
    let switch_options = SwitchOptions {
        group_linger_ms: opts.group_linger_ms,
        ..SwitchOptions::default()
    };
    let mut switch = SwitchProcess::start(&fleet, &sim, &switch_options).await?;
    eprintln!(
        "== through the switch ({}, pid {}, journal.group_linger_ms {})",
        switch.url(),
        switch.pid(),
        opts.group_linger_ms
    );
    let sampler = Sampler::start(ProcTarget::Pid(switch.pid()), Duration::from_millis(100))?;
    let env = Env {
        name: "switch",
        url: switch.url(),
        trust: switch.cert_pem().as_bytes().to_vec(),
        fleet: Arc::clone(&fleet),
        opts,
    };
    let mut switch_orders = Vec::new();
    let search = max_of(&env, &mut switch_orders).await?;
    let whole = sampler.usage();
    let mut figures = TargetFigures {
        target: "switch".into(),
        max_rate: search.max_rate,
        search: Some(search),
        ..TargetFigures::default()
    };
    let mut peak = whole.peak_rss_bytes.max(whole.hwm_bytes);
    for pct in [25, 50, 75] {
        let rate = (direct_max * f64::from(pct) / 100.0).round();
        figures.points.push(
            point(
                &env,
                pct,
                rate,
                &mut switch_orders,
                Some(&switch),
                Some(&sampler),
            )
            .await?,
        );
        let u = sampler.usage();
        peak = peak.max(u.peak_rss_bytes).max(u.hwm_bytes);
    }
    #[allow(clippy::as_conversions)] // bytes to MB for display
    let mb = peak as f64 / 1_048_576.0;
    figures.peak_rss_mb = Some(mb);
    out.targets.push(figures);

    eprintln!(
        "== three-way check over the {} orders sent through the switch",
        switch_orders.len()
    );
    let check = crate::check::fetch_and_check(
        &switch_orders,
        Some(&switch.admin_api_url()),
        sim.url(),
        sim.cert_pem().as_bytes(),
        opts.settle_timeout,
    )
    .await
    .map_err(|e| CompareError::Other(format!("three-way check: {e}")))?;
    out.check = Some(check);
    drop(sampler);
    switch.stop()?;
    sim.stop()?;
    out.table = table(&out);
    Ok(out)
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}", a / b)
    } else {
        "-".into()
    }
}

/// Reads one latency figure of a point.
type Quantile = fn(&Point) -> f64;

/// The comparison as a Markdown table.
pub fn table(c: &Comparison) -> String {
    let mut t = String::new();
    let get = |name: &str| c.targets.iter().find(|f| f.target == name);
    let (d, n, s) = (get("direct"), get("nginx"), get("switch"));
    let slo = c.slo.unwrap_or(Slo {
        p99_ms: 0.0,
        errors_percent: 0.0,
    });
    let _ = writeln!(
        t,
        "SLO: p99 <= {} ms, errors <= {} %; {} merchants, {:.0} % RSA2 callers; \
         the switch's journal.group_linger_ms {}\n",
        slo.p99_ms,
        slo.errors_percent,
        c.merchants,
        c.rsa2_share * 100.0,
        c.group_linger_ms
    );
    let _ = writeln!(
        t,
        "| figure | direct | nginx | switch | switch/nginx | switch/direct |\n|---|---|---|---|---|---|"
    );
    let max = |f: Option<&TargetFigures>| f.map_or(0.0, |f| f.max_rate);
    let _ = writeln!(
        t,
        "| max rate within SLO (/s) | {:.0} | {:.0} | {:.0} | {} | {} |",
        max(d),
        max(n),
        max(s),
        ratio(max(s), max(n)),
        ratio(max(s), max(d))
    );
    for pct in [25_u32, 50, 75] {
        let p = |f: Option<&TargetFigures>| {
            f.and_then(|f| f.points.iter().find(|p| p.percent_of_direct_max == pct))
                .cloned()
        };
        let (pd, pn, ps) = (p(d), p(n), p(s));
        let rate = pd.as_ref().map_or(0.0, |p| p.rate);
        let quantiles: [(&str, Quantile); 3] = [
            ("p50", |p| p.p50_ms),
            ("p99", |p| p.p99_ms),
            ("p99.9", |p| p.p999_ms),
        ];
        for (label, f) in quantiles {
            let v = |x: &Option<Point>| x.as_ref().map_or(0.0, f);
            let _ = writeln!(
                t,
                "| {label} at {pct} % ({rate:.0}/s), ms | {:.2} | {:.2} | {:.2} | {} | {} |",
                v(&pd),
                v(&pn),
                v(&ps),
                ratio(v(&ps), v(&pn)),
                ratio(v(&ps), v(&pd))
            );
        }
        let err = |x: &Option<Point>| x.as_ref().map_or(0.0, |p| p.errors_percent);
        let _ = writeln!(
            t,
            "| errors at {pct} %, % | {:.2} | {:.2} | {:.2} | | |",
            err(&pd),
            err(&pn),
            err(&ps)
        );
        if let Some(ps) = &ps {
            let o = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1}"));
            let _ = writeln!(
                t,
                "| switch CPU / nginx CPU at {pct} %, % of a core | | {} | {} | | |",
                o(pn.as_ref().and_then(|p| p.cpu_percent)),
                o(ps.cpu_percent)
            );
            let _ = writeln!(
                t,
                "| journal syncs/s (sync p99 ms, appends/sync) at {pct} % | | | {} ({}, {}) | | |",
                o(ps.syncs_per_s),
                o(ps.sync_p99_ms),
                o(ps.group_size)
            );
        }
    }
    if let Some(mb) = s.and_then(|s| s.peak_rss_mb) {
        let _ = writeln!(t, "| switch peak RSS, MB | | | {mb:.1} | | |");
    }
    if let Some(c) = &c.check {
        let _ = writeln!(
            t,
            "\nThree-way check over the switch's orders: {}",
            if c.passed { "passed" } else { "FAILED" }
        );
        for l in c.summary_lines() {
            let _ = writeln!(t, "  {l}");
        }
    }
    t
}
