//! `loadtest`: the command line. See `loadtest --help` and `loadtest/README.md`.
//!
//! Exit codes: 0 success; 1 a failure (smoke step, unreachable target, I/O); 2 usage; 3 a
//! regression against `--baseline`; 4 the three-way check found a discrepancy.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use loadtest::fleet::Fleet;
use loadtest::max::{Search, Slo};
use loadtest::profile::{parse_duration, Profile};
use loadtest::report::{compare_with_baseline, Mix, Report};
use loadtest::runner::{run, RunOptions, RunOutcome};

/// The load generator of the Alipay switch: open-loop load with honest latency (measured from
/// each request's intended send time), reports in JSON, HTML, CSV and .hgrm, SLO search, and
/// a three-way check of the client's answers against the switch's journal and the simulator.
#[derive(Debug, Parser)]
#[command(name = "loadtest", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Sends open-loop load at a rate profile and writes the report.
    Run(RunArgs),
    /// Finds the highest constant rate that meets an SLO.
    Max(MaxArgs),
    /// Sends one of each service and checks each answer; exit 0 only if all were as expected.
    Smoke(SmokeArgs),
    /// The same load straight to the simulator, through nginx and through the switch, each a
    /// separate process started here; prints one table.
    Compare(CompareArgs),
}

#[derive(Debug, Args)]
struct CompareArgs {
    /// Merchants (each its own caller of the switch).
    #[arg(long, default_value_t = 100)]
    merchants: usize,
    /// Share of callers signing with RSA2 (0 to 1).
    #[arg(long, default_value_t = 0.25)]
    rsa2_share: f64,
    /// The SLO's p99 latency, ms.
    #[arg(long, default_value_t = 50.0)]
    slo_p99_ms: f64,
    /// The SLO's error rate, percent.
    #[arg(long, default_value_t = 0.1)]
    slo_errors_percent: f64,
    /// First rate of each max search.
    #[arg(long, default_value_t = 250.0)]
    start: f64,
    /// Length of each max-search trial.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    trial: Duration,
    /// Most trials per target.
    #[arg(long, default_value_t = 10)]
    trials_max: usize,
    /// Length of each run at 25, 50 and 75 % of the direct max.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    point: Duration,
    /// Chances that a completed pay is followed by a query, a refund and a cancel.
    #[arg(long, default_value = "query=0.5,refund=0.15,cancel=0.05")]
    mix: String,
    /// Most requests in flight.
    #[arg(long, default_value_t = 2048)]
    in_flight_max: usize,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How long the three-way check waits for the switch to settle.
    #[arg(long, default_value = "180s", value_parser = parse_duration)]
    settle_timeout: Duration,
    /// The switch's `journal.group_linger_ms` (0 to 50; the shipped configuration's is 2).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=50))]
    group_linger_ms: u32,
    /// Where to write compare.json and compare.md.
    #[arg(long, value_name = "DIR", default_value = "loadtest-report")]
    out: PathBuf,
}

#[derive(Debug, Clone, Args)]
struct CheckArgs {
    /// After the run, check what the client was told against the switch's journal and the
    /// simulator's trades (exit 4 on any discrepancy).
    #[arg(long)]
    check: bool,
    /// The switch's admin API (for --check).
    #[arg(long, default_value = "http://127.0.0.1:9091")]
    admin_api: String,
    /// The simulator's base URL (for --check).
    #[arg(long, default_value = "https://127.0.0.1:9443")]
    sim_url: String,
    /// The simulator's certificate (for --check).
    #[arg(long, value_name = "FILE", default_value = "data/alipay-sim-cert.pem")]
    sim_cert: PathBuf,
    /// How long --check waits for every transaction to be final.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    settle_timeout: Duration,
}

#[derive(Debug, Clone, Args)]
struct TargetArgs {
    /// The gateway's base URL (requests go to /gateway.do).
    #[arg(long, default_value = "https://127.0.0.1:8443")]
    target: String,
    /// The certificate (PEM) to trust for an https target; the switch writes its own to
    /// data/switch-cert.pem.
    #[arg(long, value_name = "FILE", default_value = "data/switch-cert.pem")]
    trust: PathBuf,
    /// The callers and their keys (TOML; see loadtest/README.md).
    #[arg(
        long,
        value_name = "FILE",
        default_value = "config/loadtest-fleet.toml"
    )]
    fleet: PathBuf,
    /// What the target is, for the report: switch, simulator, nginx or external.
    #[arg(long, default_value = "external")]
    kind: String,
}

#[derive(Debug, Clone, Args)]
struct LoadArgs {
    /// Chances that a completed pay is followed by a query, a refund (one or more) and a cancel.
    #[arg(long, default_value = "query=0.5,refund=0.15,cancel=0.05")]
    mix: String,
    /// Most requests in flight; a send beyond it waits for a slot (and counts as late).
    #[arg(long, default_value_t = 1024)]
    in_flight_max: usize,
    /// A send that cannot start within this of its intended time is dropped (an error).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    lag_max: Duration,
    /// Whole-request timeout.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    timeout: Duration,
    /// Random seed (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// Share of pays with the simulator's fault-injecting buyer codes (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    fault_share: f64,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    load: LoadArgs,
    /// The rate profile: `500`, `constant:500@30s`, `steps:100,200,400@10s`,
    /// `ramp:100..1000@60s`, or segments joined by `+`.
    #[arg(long, default_value = "200")]
    rate: String,
    /// The length of a bare rate.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// Where to write report.json, report.html, timeseries.csv, orders.json and the .hgrm files.
    #[arg(long, value_name = "DIR", default_value = "loadtest-report")]
    out: PathBuf,
    /// An earlier report.json to compare with.
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,
    /// Allowed worsening against the baseline, percent (exit 3 beyond it).
    #[arg(long, default_value_t = 10.0)]
    threshold: f64,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    check: CheckArgs,
}

#[derive(Debug, Args)]
struct MaxArgs {
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    load: LoadArgs,
    /// The SLO's p99 latency, ms.
    #[arg(long, default_value_t = 50.0)]
    slo_p99_ms: f64,
    /// The SLO's error rate, percent.
    #[arg(long, default_value_t = 1.0)]
    slo_errors_percent: f64,
    /// First rate tried, per second.
    #[arg(long, default_value_t = 100.0)]
    start: f64,
    /// Never try above this rate.
    #[arg(long, default_value_t = 100_000.0)]
    ceiling: f64,
    /// Length of each trial.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    trial: Duration,
    /// Most trials.
    #[arg(long, default_value_t = 12)]
    trials_max: usize,
    /// Where to write max.json.
    #[arg(long, value_name = "DIR", default_value = "loadtest-report")]
    out: PathBuf,
}

#[derive(Debug, Args)]
struct SmokeArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Which caller of the fleet signs (its id; default: the first).
    #[arg(long)]
    caller: Option<String>,
}

/// A failure with its exit code.
struct Failure(u8, String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure(1, e.to_string())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadtest: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Command::Run(a) => cmd_run(a).await,
            Command::Max(a) => cmd_max(a).await,
            Command::Smoke(a) => cmd_smoke(a).await,
            Command::Compare(a) => cmd_compare(a).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code, message)) => {
            eprintln!("loadtest: {message}");
            ExitCode::from(code)
        }
    }
}

/// Parses `query=0.5,refund=0.15,cancel=0.05`.
fn parse_mix(text: &str) -> Result<Mix, Failure> {
    let mut mix = Mix {
        query: 0.0,
        refund: 0.0,
        cancel: 0.0,
    };
    for part in text.split(',').filter(|p| !p.trim().is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| Failure(2, format!("--mix: {part:?} is not NAME=CHANCE")))?;
        let v: f64 = v
            .trim()
            .parse()
            .ok()
            .filter(|v: &f64| (0.0..=1.0).contains(v))
            .ok_or_else(|| Failure(2, format!("--mix: {part:?}: a chance is 0 to 1")))?;
        match k.trim() {
            "query" => mix.query = v,
            "refund" => mix.refund = v,
            "cancel" => mix.cancel = v,
            other => {
                return Err(Failure(
                    2,
                    format!("--mix: unknown {other:?} (query, refund, cancel)"),
                ))
            }
        }
    }
    Ok(mix)
}

fn trust(t: &TargetArgs) -> Result<Option<Vec<u8>>, Failure> {
    if !t.target.starts_with("https://") {
        return Ok(None);
    }
    std::fs::read(&t.trust).map(Some).map_err(|e| {
        Failure(
            1,
            format!(
                "--trust {}: {e} (an https target needs its certificate; the switch writes \
                 its own to data/switch-cert.pem when it starts)",
                t.trust.display()
            ),
        )
    })
}

fn load_fleet(path: &Path) -> Result<Arc<Fleet>, Failure> {
    Fleet::load(path)
        .map(Arc::new)
        .map_err(|e| Failure(2, format!("--fleet: {e}")))
}

fn seed(load: &LoadArgs) -> u64 {
    load.seed.unwrap_or_else(|| {
        loadtest::runner::wall_clock()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() ^ u64::from(d.subsec_nanos()))
            .unwrap_or(1)
    })
}

/// A prefix of `partner_trans_id`s unique to this run: letters and the start time in ms.
fn order_prefix() -> String {
    let ms = loadtest::runner::wall_clock()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("lt{ms}x")
}

fn options(
    t: &TargetArgs,
    load: &LoadArgs,
    profile: Profile,
    progress: bool,
) -> Result<RunOptions, Failure> {
    if !(0.0..=1.0).contains(&load.fault_share) {
        return Err(Failure(2, "--fault-share must be between 0 and 1".into()));
    }
    Ok(RunOptions {
        target_url: t.target.trim_end_matches('/').to_owned(),
        target_kind: t.kind.clone(),
        trust_pem: trust(t)?,
        profile,
        mix: parse_mix(&load.mix)?,
        fleet: load_fleet(&t.fleet)?,
        in_flight_max: load.in_flight_max,
        lag_max: load.lag_max,
        request_timeout: load.timeout,
        seed: seed(load),
        fault_share: load.fault_share,
        order_prefix: order_prefix(),
        progress,
    })
}

fn print_summary(report: &Report) {
    let s = &report.summary;
    let l = &report.latency.all;
    eprintln!(
        "target {:.0}/s, achieved {:.1}/s ({:.1} ok/s); {} sent, {} ok, {} errors ({:.2}%), {} late, {} dropped",
        s.target_rate, s.achieved_rate, s.ok_rate, s.sent, s.ok, s.errors, s.error_rate * 100.0, s.late, s.dropped
    );
    eprintln!(
        "latency from intended send (ms): p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}  (service time p99 {:.2})",
        l.p50, l.p90, l.p99, l.p999, l.max, report.latency.service_time.p99
    );
    for (service, st) in &report.latency.by_service {
        eprintln!(
            "  {service:<7} {:>8} requests  p50 {:>8.2}  p99 {:>8.2}  p99.9 {:>8.2}",
            st.count, st.p50, st.p99, st.p999
        );
    }
    for (k, n) in &report.errors {
        eprintln!("  error {k}: {n}");
    }
    for w in &report.warnings {
        eprintln!("WARNING: {w}");
    }
}

async fn cmd_run(a: RunArgs) -> Result<(), Failure> {
    let profile =
        Profile::parse(&a.rate, a.duration).map_err(|e| Failure(2, format!("--rate: {e}")))?;
    let baseline = match &a.baseline {
        Some(p) => Some(loadtest::output::read_report(p).map_err(|e| Failure(2, e))?),
        None => None,
    };
    let opts = options(&a.target, &a.load, profile, !a.quiet)?;
    eprintln!(
        "loadtest: {} at {} ({} callers), report in {}",
        opts.target_url,
        opts.profile.spec(),
        opts.fleet.callers.len(),
        a.out.display()
    );
    let mut outcome = run(opts).await?;
    if a.check.check {
        let c = &a.check;
        let pem = std::fs::read(&c.sim_cert)
            .map_err(|e| Failure(2, format!("--sim-cert {}: {e}", c.sim_cert.display())))?;
        eprintln!(
            "three-way check of {} orders (waiting up to {} s for the switch to settle)",
            outcome.orders.len(),
            c.settle_timeout.as_secs()
        );
        let report = loadtest::check::fetch_and_check(
            &outcome.orders,
            Some(&c.admin_api),
            &c.sim_url,
            &pem,
            c.settle_timeout,
        )
        .await
        .map_err(|e| Failure(1, format!("three-way check: {e}")))?;
        outcome.report.check = Some(report);
    }
    finish_run(
        outcome,
        &a.out,
        baseline.as_ref(),
        a.baseline.as_deref(),
        a.threshold,
    )
}

async fn cmd_compare(a: CompareArgs) -> Result<(), Failure> {
    if !(0.0..=1.0).contains(&a.rsa2_share) {
        return Err(Failure(2, "--rsa2-share must be between 0 and 1".into()));
    }
    let opts = loadtest::compare::CompareOptions {
        merchants: a.merchants.max(1),
        rsa2_share: a.rsa2_share,
        slo: Slo {
            p99_ms: a.slo_p99_ms,
            errors_percent: a.slo_errors_percent,
        },
        trial: a.trial,
        trials_max: a.trials_max,
        start_rate: a.start,
        point: a.point,
        mix: parse_mix(&a.mix)?,
        in_flight_max: a.in_flight_max,
        seed: a.seed,
        settle_timeout: a.settle_timeout,
        group_linger_ms: a.group_linger_ms,
    };
    let c = loadtest::compare::compare(&opts).await?;
    std::fs::create_dir_all(&a.out)?;
    std::fs::write(a.out.join("compare.json"), serde_json::to_vec_pretty(&c)?)?;
    std::fs::write(a.out.join("compare.md"), &c.table)?;
    #[allow(clippy::print_stdout)] // the table is the command's output
    {
        println!("{}", c.table);
    }
    if c.check.as_ref().is_some_and(|r| !r.passed) {
        return Err(Failure(4, "the three-way check found discrepancies".into()));
    }
    Ok(())
}

fn finish_run(
    outcome: RunOutcome,
    out: &Path,
    baseline: Option<&Report>,
    baseline_file: Option<&Path>,
    threshold: f64,
) -> Result<(), Failure> {
    let mut report = outcome.report.clone();
    if let (Some(b), Some(f)) = (baseline, baseline_file) {
        report.baseline = Some(compare_with_baseline(
            &report,
            b,
            &f.display().to_string(),
            threshold,
        ));
    }
    let written = loadtest::output::write_all(out, &report, &outcome)?;
    print_summary(&report);
    if let Some(c) = &report.check {
        for l in c.summary_lines() {
            eprintln!("  check: {l}");
        }
    }
    eprintln!(
        "wrote {}, {}, {}, {} and {} .hgrm files",
        written.json.display(),
        written.html.display(),
        written.csv.display(),
        written.orders.display(),
        written.hgrm.len()
    );
    if let Some(b) = &report.baseline {
        for r in &b.rows {
            eprintln!(
                "  vs baseline {:<14} {:>10.3} -> {:>10.3} ({:+.1}%){}",
                r.figure,
                r.baseline,
                r.current,
                r.change_percent,
                if r.regressed { "  REGRESSED" } else { "" }
            );
        }
        if b.regressed {
            return Err(Failure(
                3,
                format!(
                    "regression against {} beyond {}%",
                    b.file, b.threshold_percent
                ),
            ));
        }
    }
    if report.check.as_ref().is_some_and(|c| !c.passed) {
        return Err(Failure(4, "the three-way check found discrepancies".into()));
    }
    Ok(())
}

async fn cmd_max(a: MaxArgs) -> Result<(), Failure> {
    let slo = Slo {
        p99_ms: a.slo_p99_ms,
        errors_percent: a.slo_errors_percent,
    };
    let search = Search {
        start: a.start,
        ceiling: a.ceiling,
        precision: 0.05,
        trials_max: a.trials_max,
    };
    let template = options(&a.target, &a.load, Profile::constant(1.0, a.trial), false)?;
    let result = loadtest::max::search(search, slo, |rate| {
        let mut opts = template.clone();
        opts.profile = Profile::constant(rate, a.trial);
        opts.order_prefix = order_prefix();
        async move { run(opts).await.map(|o| o.report) }
    })
    .await?;
    std::fs::create_dir_all(&a.out)?;
    let path = a.out.join("max.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&result)?)?;
    eprintln!(
        "max rate within p99 <= {} ms and errors <= {}%: {:.0}/s ({} trials; {})",
        slo.p99_ms,
        slo.errors_percent,
        result.max_rate,
        result.trials.len(),
        path.display()
    );
    Ok(())
}

async fn cmd_smoke(a: SmokeArgs) -> Result<(), Failure> {
    let fleet = load_fleet(&a.target.fleet)?;
    let caller = match &a.caller {
        Some(id) => fleet
            .callers
            .iter()
            .position(|c| &c.id == id)
            .ok_or_else(|| Failure(2, format!("--caller {id} is not in the fleet")))?,
        None => 0,
    };
    let trust = trust(&a.target)?;
    let client = alipay_sim::client::HttpClient::new(&a.target.target, trust.as_deref())?
        .with_timeout(Duration::from_secs(20));
    let steps = loadtest::smoke::smoke(&client, fleet, caller).await;
    let mut failed = 0;
    for s in &steps {
        eprintln!(
            "{} {:<24} expected {:<22} got {:<28} {:>7.1} ms",
            if s.ok { "ok  " } else { "FAIL" },
            s.what,
            s.expected,
            s.answer.label(),
            s.elapsed.as_secs_f64() * 1000.0
        );
        if !s.ok {
            failed += 1;
        }
    }
    if failed > 0 {
        return Err(Failure(
            1,
            format!("smoke: {failed} of {} steps failed", steps.len()),
        ));
    }
    eprintln!("smoke: all {} steps answered as expected", steps.len());
    Ok(())
}
