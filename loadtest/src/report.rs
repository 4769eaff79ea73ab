//! The report of a run: what `loadtest run` writes as JSON (every field documented in
//! `loadtest/REPORT.md`), the `.hgrm` percentile spectra, and the comparison with a baseline.
//!
//! Every latency is in milliseconds, measured from the request's **intended** send time (so a
//! target that stalls shows the stall, and a generator that falls behind shows its lateness),
//! unless the field says `service_time`, measured from the moment the request was written.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The report's schema name and version: bumped on any incompatible change.
pub const SCHEMA: &str = "alipay-switch-loadtest/1";

/// A whole run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// The tool's version.
    pub tool_version: String,
    /// When the run started, RFC 3339 UTC.
    pub started_at: String,
    /// What was loaded.
    pub target: Target,
    /// The load asked for.
    pub load: LoadSpec,
    /// Totals and rates.
    pub summary: Summary,
    /// Latency from intended send time: all requests, by service, by service and outcome.
    pub latency: LatencySection,
    /// One row per second of the run.
    pub timeseries: Vec<Second>,
    /// Answers that were not a success, counted by `service/outcome` (for example
    /// `pay/unknown:SYSTEM_BUSY`, `query/transport:timeout`, `refund/dropped`).
    pub errors: BTreeMap<String, u64>,
    /// Generator warnings (saturation, dropped sends), in plain sentences.
    pub warnings: Vec<String>,
    /// The three-way check, when one was run.
    pub check: Option<crate::check::CheckReport>,
    /// The comparison with a baseline report, when one was given.
    pub baseline: Option<BaselineComparison>,
}

/// What was loaded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    /// The gateway's base URL.
    pub url: String,
    /// `switch`, `simulator`, `nginx` or `external`.
    pub kind: String,
}

/// The load asked for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadSpec {
    /// The rate profile as given (`constant:500@30s`, `steps:100,200,400@10s`, `ramp:100..1000@60s`).
    pub profile: String,
    /// Its length, seconds.
    pub duration_s: f64,
    /// The mix: the chance that a completed pay is followed by a query, a refund (one or more,
    /// partial or full) and a cancel.
    pub mix: Mix,
    /// How many callers signed requests, by sign type (`MD5`, `RSA2`, ...).
    pub callers_by_sign_type: BTreeMap<String, u64>,
    /// How many distinct merchants.
    pub merchants: u64,
    /// The most requests in flight at once; a send beyond it waits (and is counted late).
    pub in_flight_max: u64,
    /// The random seed (a run with the same seed sends the same sequence of new pays).
    pub seed: u64,
    /// Share of pays with a fault-injecting buyer code (simulator only), 0 to 1.
    pub fault_share: f64,
}

/// The mix of follow-up requests.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Mix {
    /// Chance a completed pay is queried afterwards.
    pub query: f64,
    /// Chance a paid order is refunded (partially, sometimes more than once).
    pub refund: f64,
    /// Chance a completed pay is cancelled (never together with a refund).
    pub cancel: f64,
}

/// Totals and rates.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    /// Seconds from the first intended send to the last answer.
    pub elapsed_s: f64,
    /// Requests the profile asked for.
    pub intended: u64,
    /// Requests written to the target.
    pub sent: u64,
    /// Requests answered (any answer, including errors).
    pub completed: u64,
    /// Successful answers.
    pub ok: u64,
    /// Every other outcome, dropped sends included.
    pub errors: u64,
    /// `errors / intended`, 0 to 1.
    pub error_rate: f64,
    /// Sends given up because they could not start within `lag_max` of their intended time.
    pub dropped: u64,
    /// Sends that started more than [`crate::runner::LATE_AFTER_MS`] after their intended time.
    pub late: u64,
    /// The profile's mean rate, requests per second.
    pub target_rate: f64,
    /// Answers per second over the profile's duration.
    pub achieved_rate: f64,
    /// Successful answers per second over the profile's duration.
    pub ok_rate: f64,
    /// How late sends started (p50, p99, max), milliseconds.
    pub lateness_ms: Lateness,
    /// The generator's own CPU time over the run, percent of one core.
    pub generator_cpu_percent: f64,
    /// True when the generator could not keep up (see `warnings`).
    pub saturated: bool,
}

/// Send lateness.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Lateness {
    /// Median, ms.
    pub p50: f64,
    /// 99th percentile, ms.
    pub p99: f64,
    /// Largest, ms.
    pub max: f64,
}

/// Latency statistics of a set of requests, milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Requests.
    pub count: u64,
    /// Smallest.
    pub min: f64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

impl Stats {
    /// The statistics of a histogram of microseconds.
    pub fn of(h: &Histogram<u64>) -> Stats {
        if h.is_empty() {
            return Stats::default();
        }
        Stats {
            count: h.len(),
            min: us_to_ms(h.min()),
            mean: h.mean() / 1000.0,
            p50: us_to_ms(h.value_at_quantile(0.5)),
            p90: us_to_ms(h.value_at_quantile(0.9)),
            p99: us_to_ms(h.value_at_quantile(0.99)),
            p999: us_to_ms(h.value_at_quantile(0.999)),
            max: us_to_ms(h.max()),
        }
    }
}

/// Microseconds to milliseconds.
#[allow(clippy::as_conversions)] // u64 µs to f64 ms: exact below 2^53 µs (285 years)
pub fn us_to_ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Latency sections.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LatencySection {
    /// Every answered request.
    pub all: Stats,
    /// From the moment the request was written instead of its intended time (what a closed-loop
    /// tool would report; the gap to `all` is queueing in the generator).
    pub service_time: Stats,
    /// By service: `pay`, `query`, `cancel`, `refund`.
    pub by_service: BTreeMap<String, Stats>,
    /// By `service/outcome` (`pay/ok`, `pay/unknown:SYSTEM_BUSY`, ...).
    pub by_outcome: BTreeMap<String, Stats>,
    /// Percentile spectra for the distribution plot: `all` and each service, points from the
    /// median outwards (the same points as the `.hgrm` files).
    pub spectra: BTreeMap<String, Vec<SpectrumPoint>>,
}

/// One point of a percentile spectrum.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SpectrumPoint {
    /// Percentile, 0 to 100.
    pub percentile: f64,
    /// Latency at that percentile, ms.
    pub ms: f64,
}

/// The spectrum of a histogram of microseconds (HdrHistogram's 5 ticks per half distance).
pub fn spectrum(h: &Histogram<u64>) -> Vec<SpectrumPoint> {
    if h.is_empty() {
        return Vec::new();
    }
    h.iter_quantiles(5)
        .map(|v| SpectrumPoint {
            percentile: v.quantile_iterated_to() * 100.0,
            ms: us_to_ms(v.value_iterated_to()),
        })
        .collect()
}

/// One second of the run (second `t` covers answers that arrived in `[t, t+1)` after start,
/// and sends intended in it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Second {
    /// Seconds since the start.
    pub t: u64,
    /// The profile's rate at this second, requests per second.
    pub target_rate: f64,
    /// Requests written in this second.
    pub sent: u64,
    /// Successful answers in this second.
    pub ok: u64,
    /// Other outcomes in this second (dropped sends included).
    pub errors: u64,
    /// Latency of the answers in this second.
    pub p50: f64,
    /// 90th percentile, ms.
    pub p90: f64,
    /// 99th percentile, ms.
    pub p99: f64,
    /// 99.9th percentile, ms.
    pub p999: f64,
    /// Largest, ms.
    pub max: f64,
    /// Requests in flight at the end of the second.
    pub in_flight: u64,
}

/// The comparison with a baseline report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BaselineComparison {
    /// The baseline file.
    pub file: String,
    /// Allowed worsening, percent.
    pub threshold_percent: f64,
    /// One row per compared figure.
    pub rows: Vec<BaselineRow>,
    /// True when any row regressed.
    pub regressed: bool,
}

/// One compared figure.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BaselineRow {
    /// `achieved_rate`, `error_rate`, `p50_ms`, `p99_ms`, `p999_ms`.
    pub figure: String,
    /// The baseline's value.
    pub baseline: f64,
    /// This run's value.
    pub current: f64,
    /// Change, percent of the baseline (positive = larger).
    pub change_percent: f64,
    /// True when it worsened by more than the threshold.
    pub regressed: bool,
}

/// Compares `current` with `baseline`: latency percentiles and the error rate may not grow, and
/// the achieved rate may not shrink, by more than `threshold_percent` of the baseline's value.
/// An error rate that was zero may grow to 0.1 % before it counts.
pub fn compare_with_baseline(
    current: &Report,
    baseline: &Report,
    file: &str,
    threshold_percent: f64,
) -> BaselineComparison {
    let t = threshold_percent / 100.0;
    let mut rows = Vec::new();
    let mut row = |figure: &str, base: f64, cur: f64, higher_is_worse: bool, floor: f64| {
        let change_percent = if base == 0.0 {
            if cur == 0.0 {
                0.0
            } else {
                100.0
            }
        } else {
            (cur - base) / base * 100.0
        };
        let regressed = if higher_is_worse {
            cur > base * (1.0 + t) && cur > floor
        } else {
            cur < base * (1.0 - t)
        };
        rows.push(BaselineRow {
            figure: figure.to_owned(),
            baseline: base,
            current: cur,
            change_percent,
            regressed,
        });
    };
    let (c, b) = (&current.summary, &baseline.summary);
    row(
        "achieved_rate",
        b.achieved_rate,
        c.achieved_rate,
        false,
        0.0,
    );
    row("error_rate", b.error_rate, c.error_rate, true, 0.001);
    let (cl, bl) = (&current.latency.all, &baseline.latency.all);
    row("p50_ms", bl.p50, cl.p50, true, 0.0);
    row("p99_ms", bl.p99, cl.p99, true, 0.0);
    row("p999_ms", bl.p999, cl.p999, true, 0.0);
    let regressed = rows.iter().any(|r| r.regressed);
    BaselineComparison {
        file: file.to_owned(),
        threshold_percent,
        rows,
        regressed,
    }
}

/// The HdrHistogram percentile spectrum (`.hgrm`) of a histogram of microseconds, values in
/// milliseconds: the text format HdrHistogram's `outputPercentileDistribution` writes and its
/// plotter reads.
pub fn hgrm(h: &Histogram<u64>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    if h.is_empty() {
        let _ = writeln!(
            out,
            "#[Mean    =        0.000, StdDeviation   =        0.000]"
        );
        let _ = writeln!(
            out,
            "#[Max     =        0.000, Total count    =            0]"
        );
        return out;
    }
    for v in h.iter_quantiles(5) {
        let q = v.quantile_iterated_to();
        let value = us_to_ms(v.value_iterated_to());
        if q < 1.0 {
            let _ = writeln!(
                out,
                "{value:>12.3} {q:>14.12} {:>10} {:>14.2}",
                v.count_since_last_iteration(),
                1.0 / (1.0 - q)
            );
        } else {
            let _ = writeln!(
                out,
                "{value:>12.3} {q:>14.12} {:>10}",
                v.count_since_last_iteration()
            );
        }
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
        h.mean() / 1000.0,
        h.stdev() / 1000.0
    );
    let _ = writeln!(
        out,
        "#[Max     = {:>12.3}, Total count    = {:>12}]",
        us_to_ms(h.max()),
        h.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        h.buckets(),
        h.distinct_values()
    );
    out
}
