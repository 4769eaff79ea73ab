//! The self-contained HTML report: one page with inline CSS and SVG plots drawn here, and no
//! scripts, fonts, stylesheets or images from anywhere else, so it opens offline (a
//! Content-Security-Policy meta tag forbids any fetch as well).
//!
//! Every string that comes from the report is HTML-escaped; numbers that are not finite are
//! shown as `n/a` or `∞` in tables and left out of the plots (a gap in the line).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::report::{Report, Second, SpectrumPoint, Stats};

/// The report as one HTML page with inline SVG plots and no external resources.
pub fn render(report: &Report) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let title = format!(
        "loadtest: {} ({}) {}",
        report.target.url, report.load.profile, report.started_at
    );
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        esc(&title)
    );
    header(&mut out, report);
    verdict(&mut out, report);
    warnings(&mut out, &report.warnings);
    summary(&mut out, report);
    plots(&mut out, report);
    latency_tables(&mut out, report);
    errors(&mut out, report);
    check(&mut out, report);
    baseline(&mut out, report);
    timeseries_table(&mut out, &report.timeseries);
    out.push_str("</body>\n</html>\n");
    out
}

const CSS: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;padding:0 1em;color:#222;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
h3{font-size:1.05em;margin-top:1.2em}
table{border-collapse:collapse;margin:.5em 0;font-size:.92em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
table.meta th{width:12em}
.bad{background:#fde2e1}.good{background:#e3f6e3}
.badge{display:inline-block;padding:.15em .6em;border-radius:.8em;margin-right:.5em;font-weight:600;font-size:.9em}
.badge.bad{color:#9b1c1c}.badge.good{color:#1d6b1d}
.warnings{background:#fff4d6;border:2px solid #e0a800;border-radius:6px;padding:.6em 1em;margin:1em 0}
.warnings h2{margin-top:0;border:0}
.note{color:#666;font-size:.88em;margin-top:0}
.plot{margin:1em 0}svg{max-width:100%;height:auto;background:#fff}
pre{background:#f7f7f7;padding:.6em;overflow:auto;font-size:.85em}
code{font-size:.9em}
";

/// HTML-escapes text for element content and quoted attribute values.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

/// A count as a float, for rates and plotting.
#[allow(clippy::as_conversions)] // u64 to f64: exact below 2^53, and only ever plotted or divided
fn float(n: u64) -> f64 {
    n as f64
}

/// A number for a table: a few significant digits, `n/a` for NaN and `∞` for infinities.
fn num(v: f64) -> String {
    if v.is_nan() {
        return "n/a".to_owned();
    }
    if v.is_infinite() {
        return if v > 0.0 { "∞" } else { "−∞" }.to_owned();
    }
    let a = v.abs();
    if a == 0.0 {
        "0".to_owned()
    } else if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// A fraction (0 to 1) as a percentage.
fn pct(fraction: f64) -> String {
    if fraction.is_finite() {
        format!("{:.3} %", fraction * 100.0)
    } else {
        num(fraction)
    }
}

fn header(out: &mut String, r: &Report) {
    let _ = write!(
        out,
        "<h1>Load test report</h1>\n<table class=\"meta\">\n\
         <tr><th>Target</th><td><code>{}</code> ({})</td></tr>\n\
         <tr><th>Profile</th><td><code>{}</code>, {} s</td></tr>\n\
         <tr><th>Started at</th><td>{}</td></tr>\n\
         <tr><th>Tool version</th><td>{} <span class=\"note\">(schema {})</span></td></tr>\n",
        esc(&r.target.url),
        esc(&r.target.kind),
        esc(&r.load.profile),
        num(r.load.duration_s),
        esc(&r.started_at),
        esc(&r.tool_version),
        esc(&r.schema),
    );
    let callers = r
        .load
        .callers_by_sign_type
        .iter()
        .map(|(k, v)| format!("{} {}", v, esc(k)))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = write!(
        out,
        "<tr><th>Mix</th><td>query {}, refund {}, cancel {}</td></tr>\n\
         <tr><th>Callers</th><td>{}; {} merchants</td></tr>\n\
         <tr><th>In flight at most</th><td>{}</td></tr>\n\
         <tr><th>Seed</th><td>{}</td></tr>\n\
         <tr><th>Fault share</th><td>{}</td></tr>\n</table>\n",
        num(r.load.mix.query),
        num(r.load.mix.refund),
        num(r.load.mix.cancel),
        if callers.is_empty() {
            "none".to_owned()
        } else {
            callers
        },
        r.load.merchants,
        r.load.in_flight_max,
        r.load.seed,
        pct(r.load.fault_share),
    );
}

/// One line of badges: the generator, the check and the baseline at a glance.
fn verdict(out: &mut String, r: &Report) {
    out.push_str("<p>");
    if r.summary.saturated {
        out.push_str("<span class=\"badge bad\">generator saturated</span>");
    } else {
        out.push_str("<span class=\"badge good\">generator kept up</span>");
    }
    if let Some(check) = &r.check {
        let passed = serde_json::to_value(check)
            .ok()
            .and_then(|v| v.get("passed").and_then(serde_json::Value::as_bool));
        match passed {
            Some(true) => out.push_str("<span class=\"badge good\">three-way check passed</span>"),
            Some(false) => out.push_str("<span class=\"badge bad\">three-way check failed</span>"),
            None => out.push_str("<span class=\"badge\">three-way check run</span>"),
        }
    }
    if let Some(b) = &r.baseline {
        if b.regressed {
            out.push_str("<span class=\"badge bad\">regressed against the baseline</span>");
        } else {
            out.push_str("<span class=\"badge good\">no regression against the baseline</span>");
        }
    }
    out.push_str("</p>\n");
}

fn warnings(out: &mut String, warnings: &[String]) {
    if warnings.is_empty() {
        out.push_str("<p class=\"note\">No generator warnings.</p>\n");
        return;
    }
    out.push_str("<div class=\"warnings\" id=\"warnings\">\n<h2>Warnings</h2>\n<ul>\n");
    for w in warnings {
        let _ = writeln!(out, "<li>{}</li>", esc(w));
    }
    out.push_str("</ul>\n</div>\n");
}

fn summary(out: &mut String, r: &Report) {
    let s = &r.summary;
    let row = |out: &mut String, name: &str, value: String, class: &str| {
        let _ = writeln!(
            out,
            "<tr{}><th>{name}</th><td class=\"n\">{value}</td></tr>",
            if class.is_empty() {
                String::new()
            } else {
                format!(" class=\"{class}\"")
            }
        );
    };
    out.push_str("<h2>Summary</h2>\n<table id=\"summary\">\n");
    row(
        out,
        "Target rate",
        format!("{} req/s", num(s.target_rate)),
        "",
    );
    let short = s.target_rate > 0.0 && s.achieved_rate < s.target_rate * 0.95;
    row(
        out,
        "Achieved rate",
        format!("{} req/s", num(s.achieved_rate)),
        if short { "bad" } else { "" },
    );
    row(out, "OK rate", format!("{} req/s", num(s.ok_rate)), "");
    row(out, "Elapsed", format!("{} s", num(s.elapsed_s)), "");
    row(out, "Intended", s.intended.to_string(), "");
    row(out, "Sent", s.sent.to_string(), "");
    row(out, "Completed", s.completed.to_string(), "");
    row(out, "OK", s.ok.to_string(), "");
    row(
        out,
        "Errors",
        s.errors.to_string(),
        if s.errors > 0 { "bad" } else { "" },
    );
    row(
        out,
        "Error rate",
        pct(s.error_rate),
        if s.error_rate > 0.0 { "bad" } else { "" },
    );
    row(
        out,
        "Dropped",
        s.dropped.to_string(),
        if s.dropped > 0 { "bad" } else { "" },
    );
    row(
        out,
        "Late",
        s.late.to_string(),
        if s.late > 0 { "bad" } else { "" },
    );
    row(
        out,
        "Send lateness p50 / p99 / max",
        format!(
            "{} / {} / {} ms",
            num(s.lateness_ms.p50),
            num(s.lateness_ms.p99),
            num(s.lateness_ms.max)
        ),
        "",
    );
    row(
        out,
        "Generator CPU",
        format!("{} % of a core", num(s.generator_cpu_percent)),
        "",
    );
    row(
        out,
        "Saturated",
        if s.saturated { "yes" } else { "no" }.to_owned(),
        if s.saturated { "bad" } else { "good" },
    );
    out.push_str("</table>\n");
}

// ---------------------------------------------------------------------------------------------
// Plots

const W: f64 = 900.0;
const H: f64 = 340.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 130.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 52.0;
const PW: f64 = W - LEFT - RIGHT;
const PH: f64 = H - TOP - BOTTOM;

/// How the x axis maps data.
#[derive(Debug, Clone, Copy, PartialEq)]
enum XScale {
    /// Plain numbers (seconds).
    Linear,
    /// A percentile 0 to 100 on HdrHistogram's `1/(1-p)` log scale; 100 % is drawn at the
    /// right edge.
    Percentile,
}

/// How the y axis maps data.
#[derive(Debug, Clone, Copy, PartialEq)]
enum YScale {
    /// From zero up.
    Linear,
    /// Decades; values that are not positive are left out.
    Log,
}

/// One line: points in order, a non-finite coordinate breaks it.
#[derive(Debug)]
struct Line {
    name: String,
    color: &'static str,
    dashed: bool,
    points: Vec<(f64, f64)>,
}

#[derive(Debug)]
struct Chart<'a> {
    id: &'a str,
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    x: XScale,
    y: YScale,
    lines: Vec<Line>,
}

const PALETTE: [&str; 8] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

fn plots(out: &mut String, r: &Report) {
    out.push_str("<h2>Plots</h2>\n");
    let ts = &r.timeseries;
    let t = |s: &Second| float(s.t);
    let series = |name: &str, color: &'static str, dashed: bool, f: &dyn Fn(&Second) -> f64| Line {
        name: name.to_owned(),
        color,
        dashed,
        points: ts.iter().map(|s| (t(s), f(s))).collect(),
    };

    let latency = Chart {
        id: "plot-latency",
        title: "Latency percentiles per second",
        x_label: "seconds since start",
        y_label: "latency, ms (log)",
        x: XScale::Linear,
        y: YScale::Log,
        lines: vec![
            series("p50", "#1f77b4", false, &|s| s.p50),
            series("p90", "#2ca02c", false, &|s| s.p90),
            series("p99", "#ff7f0e", false, &|s| s.p99),
            series("p99.9", "#d62728", false, &|s| s.p999),
            series("max", "#7f7f7f", true, &|s| s.max),
        ],
    };
    plot(
        out,
        &latency,
        "Latency from the intended send time of the answers that arrived in each second. \
         Seconds without answers are gaps.",
    );

    let throughput = Chart {
        id: "plot-throughput",
        title: "Throughput per second",
        x_label: "seconds since start",
        y_label: "requests/s",
        x: XScale::Linear,
        y: YScale::Linear,
        lines: vec![
            series("target", "#7f7f7f", true, &|s| s.target_rate),
            series("sent", "#1f77b4", false, &|s| float(s.sent)),
            series("ok", "#2ca02c", false, &|s| float(s.ok)),
        ],
    };
    plot(
        out,
        &throughput,
        "The profile's rate, the requests written and the successful answers in each second.",
    );

    let errors = Chart {
        id: "plot-errors",
        title: "Error rate per second",
        x_label: "seconds since start",
        y_label: "errors, % of answers",
        x: XScale::Linear,
        y: YScale::Linear,
        lines: vec![series("errors", "#d62728", false, &|s| {
            let answered = s.ok.saturating_add(s.errors);
            if answered == 0 {
                f64::NAN
            } else {
                float(s.errors) / float(answered) * 100.0
            }
        })],
    };
    plot(
        out,
        &errors,
        "errors / (ok + errors) in each second; seconds without answers are gaps.",
    );

    let spectra = spectra_lines(&r.latency.spectra);
    let distribution = Chart {
        id: "plot-spectrum",
        title: "Latency distribution (percentile spectrum)",
        x_label: "percentile",
        y_label: "latency, ms (log)",
        x: XScale::Percentile,
        y: YScale::Log,
        lines: spectra,
    };
    plot(
        out,
        &distribution,
        "HdrHistogram's percentile spectrum: the x axis is 1/(1&minus;percentile) on a log scale, \
         so each tick is ten times rarer; the right edge is the maximum (100 %).",
    );
}

fn spectra_lines(spectra: &BTreeMap<String, Vec<SpectrumPoint>>) -> Vec<Line> {
    // `all` first, then the services in name order.
    let mut keys: Vec<&String> = spectra.keys().filter(|k| k.as_str() == "all").collect();
    keys.extend(spectra.keys().filter(|k| k.as_str() != "all"));
    keys.iter()
        .zip(PALETTE.iter().cycle())
        .filter_map(|(k, color)| {
            let points = spectra.get(*k)?;
            Some(Line {
                name: (*k).clone(),
                color: if k.as_str() == "all" {
                    "#222222"
                } else {
                    color
                },
                dashed: false,
                points: points.iter().map(|p| (p.percentile, p.ms)).collect(),
            })
        })
        .collect()
}

/// A point mapped to axis space: x in data units (or decades of `1/(1-p)`), `None` for a gap.
/// `edge` is true for a 100 % point, placed at the right edge.
#[derive(Debug, Clone, Copy)]
struct Mapped {
    x: f64,
    y: f64,
    edge: bool,
}

fn map_point(chart: &Chart<'_>, (x, y): (f64, f64)) -> Option<Mapped> {
    if !x.is_finite() || !y.is_finite() {
        return None;
    }
    if chart.y == YScale::Log && y <= 0.0 {
        return None;
    }
    match chart.x {
        XScale::Linear => Some(Mapped { x, y, edge: false }),
        XScale::Percentile => {
            let q = x / 100.0;
            if q >= 1.0 {
                Some(Mapped {
                    x: f64::INFINITY,
                    y,
                    edge: true,
                })
            } else {
                let d = -(1.0 - q).log10();
                Some(Mapped {
                    x: d.max(0.0),
                    y,
                    edge: false,
                })
            }
        }
    }
}

/// An axis: its domain and its ticks (value in axis space, label).
#[derive(Debug)]
struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
    ticks: Vec<(f64, String)>,
}

impl Axis {
    /// Position along the axis, 0 to 1.
    fn frac(&self, v: f64) -> f64 {
        let (v, lo, hi) = if self.log {
            (v.log10(), self.lo.log10(), self.hi.log10())
        } else {
            (v, self.lo, self.hi)
        };
        if hi > lo {
            ((v - lo) / (hi - lo)).clamp(0.0, 1.0)
        } else {
            0.5
        }
    }
}

/// A step of 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let base = 10f64.powf(raw.log10().floor());
    let m = raw / base;
    let f = if m <= 1.0 {
        1.0
    } else if m <= 2.0 {
        2.0
    } else if m <= 5.0 {
        5.0
    } else {
        10.0
    };
    f * base
}

/// A tick label with as few decimals as the value needs.
fn tick_label(v: f64) -> String {
    let mut scaled = v;
    for decimals in 0usize..8 {
        if (scaled - scaled.round()).abs() < 1e-6 * scaled.abs().max(1.0) {
            return format!("{v:.decimals$}");
        }
        scaled *= 10.0;
    }
    num(v)
}

/// A linear axis over `[lo, hi]` with about five nice ticks; the ends are rounded out to ticks.
fn linear_axis(lo: f64, hi: f64, from_zero: bool) -> Axis {
    let (mut lo, mut hi) = (lo, hi);
    if from_zero {
        lo = lo.min(0.0);
    }
    if hi <= lo {
        hi = lo + 1.0;
    }
    let step = nice_step((hi - lo) / 5.0);
    let lo = (lo / step).floor() * step;
    let hi = (hi / step).ceil() * step;
    let mut ticks = Vec::new();
    let mut v = lo;
    while v <= hi + step * 1e-9 && ticks.len() < 50 {
        let shown = if v.abs() < step * 1e-9 { 0.0 } else { v };
        ticks.push((shown, tick_label(shown)));
        v += step;
    }
    Axis {
        lo,
        hi,
        log: false,
        ticks,
    }
}

/// A log axis over positive `[lo, hi]`, rounded out to decades, ticks at 1, 2 and 5 times each
/// power of ten (powers of ten only when the range is wide).
fn log_axis(lo: f64, hi: f64) -> Axis {
    let mut dlo = lo.log10().floor();
    let mut dhi = hi.log10().ceil();
    if dhi <= dlo {
        dhi = dlo + 1.0;
    }
    // At most 12 decades: enough for microseconds to hours.
    if dhi - dlo > 12.0 {
        dlo = dhi - 12.0;
    }
    let wide = dhi - dlo > 4.0;
    let mut ticks = Vec::new();
    let mut d = dlo;
    while d <= dhi + 1e-9 {
        let base = 10f64.powf(d);
        for m in [1.0, 2.0, 5.0] {
            if wide && m > 1.0 {
                continue;
            }
            let v = m * base;
            if v <= 10f64.powf(dhi) * (1.0 + 1e-9) {
                ticks.push((v, tick_label(v)));
            }
        }
        d += 1.0;
    }
    Axis {
        lo: 10f64.powf(dlo),
        hi: 10f64.powf(dhi),
        log: true,
        ticks,
    }
}

/// The percentile axis: decades of `1/(1-p)` from 0 % to the last finite point, and an extra
/// half decade for the maximum when there is one.
fn percentile_axis(max_decade: f64, has_edge: bool) -> Axis {
    let decades = max_decade.ceil().clamp(1.0, 12.0);
    let mut ticks = Vec::new();
    let mut d = 0.0;
    let mut nines = String::new();
    while d <= decades + 1e-9 {
        let label = match nines.len() {
            0 => "0%".to_owned(),
            1 => "90%".to_owned(),
            2 => "99%".to_owned(),
            n => format!("99.{}%", "9".repeat(n - 2)),
        };
        ticks.push((d, label));
        nines.push('9');
        d += 1.0;
    }
    let hi = if has_edge {
        ticks.push((decades + 0.5, "max".to_owned()));
        decades + 0.5
    } else {
        decades
    };
    Axis {
        lo: 0.0,
        hi,
        log: false,
        ticks,
    }
}

fn plot(out: &mut String, chart: &Chart<'_>, note: &str) {
    let mapped: Vec<Vec<Option<Mapped>>> = chart
        .lines
        .iter()
        .map(|l| l.points.iter().map(|&p| map_point(chart, p)).collect())
        .collect();
    let all = mapped.iter().flatten().flatten();
    let finite_x = all.clone().filter(|m| !m.edge).map(|m| m.x);
    let (xmin, xmax) = min_max(finite_x);
    let has_edge = all.clone().any(|m| m.edge);
    let (ymin, ymax) = min_max(all.clone().map(|m| m.y));
    let any = all.clone().next().is_some();

    let _ = write!(
        out,
        "<div class=\"plot\">\n<h3>{title}</h3>\n\
         <svg id=\"{id}\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\" \
         aria-label=\"{title}\" font-family=\"system-ui,sans-serif\" font-size=\"12\">\n\
         <title>{title}</title>\n\
         <rect x=\"0\" y=\"0\" width=\"{W}\" height=\"{H}\" fill=\"#ffffff\"/>\n",
        title = esc(chart.title),
        id = esc(chart.id),
    );
    let _ = writeln!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#333\">{}</text>",
        LEFT + PW / 2.0,
        H - 10.0,
        esc(chart.x_label)
    );
    let _ = writeln!(
        out,
        "<text transform=\"translate(16 {:.1}) rotate(-90)\" text-anchor=\"middle\" fill=\"#333\">{}</text>",
        TOP + PH / 2.0,
        esc(chart.y_label)
    );

    if !any {
        let _ = writeln!(
            out,
            "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{PW}\" height=\"{PH}\" fill=\"none\" stroke=\"#999\"/>\n\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#999\" font-size=\"16\">no data</text>\n</svg>",
            LEFT + PW / 2.0,
            TOP + PH / 2.0
        );
        let _ = writeln!(out, "<p class=\"note\">{note}</p>\n</div>");
        return;
    }

    let x_axis = match chart.x {
        XScale::Linear => linear_axis(xmin, xmax, false),
        XScale::Percentile => percentile_axis(xmax.max(0.0), has_edge),
    };
    let y_axis = match chart.y {
        YScale::Linear => linear_axis(ymin, ymax, true),
        YScale::Log => log_axis(ymin, ymax),
    };
    let px = |x: f64| LEFT + x_axis.frac(x) * PW;
    let py = |y: f64| TOP + PH - y_axis.frac(y) * PH;

    // Grid and tick labels.
    out.push_str("<g stroke=\"#e5e5e5\" stroke-width=\"1\">\n");
    for (v, _) in &x_axis.ticks {
        let x = px(*v);
        let _ = writeln!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{TOP}\" x2=\"{x:.1}\" y2=\"{:.1}\"/>",
            TOP + PH
        );
    }
    for (v, _) in &y_axis.ticks {
        let y = py(*v);
        let _ = writeln!(
            out,
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\"/>",
            LEFT + PW
        );
    }
    out.push_str("</g>\n<g fill=\"#444\">\n");
    for (v, label) in &x_axis.ticks {
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            px(*v),
            TOP + PH + 16.0,
            esc(label)
        );
    }
    for (v, label) in &y_axis.ticks {
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT - 6.0,
            py(*v) + 4.0,
            esc(label)
        );
    }
    out.push_str("</g>\n");
    let _ = writeln!(
        out,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{PW}\" height=\"{PH}\" fill=\"none\" stroke=\"#888\"/>"
    );

    // The lines, broken at gaps; a lone point is a dot.
    for (line, points) in chart.lines.iter().zip(&mapped) {
        let _ = writeln!(
            out,
            "<g stroke=\"{c}\" fill=\"none\" stroke-width=\"1.6\"{dash}><title>{name}</title>",
            c = line.color,
            dash = if line.dashed {
                " stroke-dasharray=\"5 3\""
            } else {
                ""
            },
            name = esc(&line.name)
        );
        for segment in points.split(Option::is_none) {
            let coords: Vec<(f64, f64)> = segment
                .iter()
                .flatten()
                .map(|m| (if m.edge { px(x_axis.hi) } else { px(m.x) }, py(m.y)))
                .collect();
            match coords.as_slice() {
                [] => {}
                [(x, y)] => {
                    let _ = writeln!(
                        out,
                        "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"2.5\" fill=\"{}\"/>",
                        line.color
                    );
                }
                _ => {
                    out.push_str("<polyline points=\"");
                    for (x, y) in &coords {
                        let _ = write!(out, "{x:.1},{y:.1} ");
                    }
                    out.push_str("\"/>\n");
                }
            }
        }
        out.push_str("</g>\n");
    }

    // Legend, right of the plot area.
    for (i, line) in chart.lines.iter().enumerate() {
        let y = TOP + 10.0 + 18.0 * float(u64::try_from(i).unwrap_or(u64::MAX));
        let x = LEFT + PW + 14.0;
        let _ = writeln!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{}\" stroke-width=\"2.5\"{}/>\
             <text x=\"{:.1}\" y=\"{:.1}\" fill=\"#333\">{}</text>",
            x + 22.0,
            line.color,
            if line.dashed {
                " stroke-dasharray=\"5 3\""
            } else {
                ""
            },
            x + 28.0,
            y + 4.0,
            esc(&line.name)
        );
    }
    let _ = writeln!(out, "</svg>\n<p class=\"note\">{note}</p>\n</div>");
}

/// The smallest and largest of finite values, `(0, 0)` when there are none.
fn min_max(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo > hi {
        (0.0, 0.0)
    } else {
        (lo, hi)
    }
}

// ---------------------------------------------------------------------------------------------
// Tables

fn stats_table<'a>(
    out: &mut String,
    id: &str,
    first: &str,
    rows: impl Iterator<Item = (&'a str, &'a Stats)>,
) {
    let _ = writeln!(
        out,
        "<table id=\"{id}\">\n<tr><th>{first}</th><th class=\"n\">count</th><th class=\"n\">min</th>\
         <th class=\"n\">mean</th><th class=\"n\">p50</th><th class=\"n\">p90</th><th class=\"n\">p99</th>\
         <th class=\"n\">p99.9</th><th class=\"n\">max</th></tr>"
    );
    let mut any = false;
    for (name, s) in rows {
        any = true;
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td></tr>",
            esc(name),
            s.count,
            num(s.min),
            num(s.mean),
            num(s.p50),
            num(s.p90),
            num(s.p99),
            num(s.p999),
            num(s.max)
        );
    }
    if !any {
        out.push_str("<tr><td colspan=\"9\" class=\"note\">none</td></tr>\n");
    }
    out.push_str("</table>\n");
}

fn latency_tables(out: &mut String, r: &Report) {
    let l = &r.latency;
    out.push_str(
        "<h2>Latency, ms</h2>\n<p class=\"note\">From the intended send time, except \
         <em>service time</em>, from the moment the request was written (the gap between the two \
         is queueing in the generator).</p>\n",
    );
    stats_table(
        out,
        "latency-all",
        "requests",
        [("all", &l.all), ("service time", &l.service_time)].into_iter(),
    );
    out.push_str("<h3>By service</h3>\n");
    stats_table(
        out,
        "latency-by-service",
        "service",
        l.by_service.iter().map(|(k, v)| (k.as_str(), v)),
    );
    out.push_str("<h3>By outcome</h3>\n");
    stats_table(
        out,
        "latency-by-outcome",
        "service/outcome",
        l.by_outcome.iter().map(|(k, v)| (k.as_str(), v)),
    );
}

fn errors(out: &mut String, r: &Report) {
    out.push_str("<h2>Errors</h2>\n");
    if r.errors.is_empty() {
        out.push_str("<p>No errors.</p>\n");
        return;
    }
    let total: u64 = r.errors.values().fold(0, |a, b| a.saturating_add(*b));
    let mut rows: Vec<(&String, &u64)> = r.errors.iter().collect();
    rows.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    out.push_str(
        "<table id=\"errors\">\n<tr><th>service/outcome</th><th class=\"n\">count</th>\
         <th class=\"n\">% of errors</th><th class=\"n\">% of intended</th></tr>\n",
    );
    for (k, n) in rows {
        let share = |of: u64| {
            if of == 0 {
                "n/a".to_owned()
            } else {
                pct(float(*n) / float(of))
            }
        };
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"n\">{n}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(k),
            share(total),
            share(r.summary.intended)
        );
    }
    out.push_str("</table>\n");
}

fn check(out: &mut String, r: &Report) {
    let Some(check) = &r.check else {
        return;
    };
    out.push_str("<h2>Three-way check</h2>\n<div id=\"check\">\n");
    match serde_json::to_value(check) {
        Ok(v) => {
            json_html(out, &v, 0);
            let pretty = serde_json::to_string_pretty(&v).unwrap_or_default();
            let _ = writeln!(
                out,
                "<details><summary>JSON</summary><pre>{}</pre></details>",
                esc(&pretty)
            );
        }
        Err(e) => {
            let _ = writeln!(
                out,
                "<p class=\"bad\">could not show the check: {}</p>",
                esc(&e.to_string())
            );
        }
    }
    out.push_str("</div>\n");
}

/// Rows shown of a long array in the check; the rest is in the JSON below it.
const MAX_ROWS: usize = 200;

/// Any JSON value as nested tables: objects as key/value tables, arrays of objects as tables
/// with a column per key, other arrays as lists.
fn json_html(out: &mut String, v: &serde_json::Value, depth: usize) {
    use serde_json::Value;
    if depth > 6 {
        let _ = write!(out, "<pre>{}</pre>", esc(&v.to_string()));
        return;
    }
    match v {
        Value::Null => out.push_str("<span class=\"note\">null</span>"),
        Value::Bool(b) => {
            let _ = write!(out, "{b}");
        }
        Value::Number(n) => {
            let _ = write!(out, "{}", esc(&n.to_string()));
        }
        Value::String(s) => out.push_str(&esc(s)),
        Value::Object(map) => {
            if map.is_empty() {
                out.push_str("<span class=\"note\">{}</span>");
                return;
            }
            out.push_str("<table>\n");
            for (k, v) in map {
                let class = match (k.as_str(), v) {
                    ("passed", Value::Bool(true)) => " class=\"good\"",
                    ("passed", Value::Bool(false)) => " class=\"bad\"",
                    _ => "",
                };
                let _ = write!(out, "<tr{class}><th>{}</th><td>", esc(k));
                json_html(out, v, depth + 1);
                out.push_str("</td></tr>\n");
            }
            out.push_str("</table>\n");
        }
        Value::Array(items) => {
            if items.is_empty() {
                out.push_str("<span class=\"note\">none</span>");
                return;
            }
            if items.iter().all(Value::is_object) {
                let mut columns: Vec<&String> = Vec::new();
                for item in items {
                    if let Value::Object(m) = item {
                        for k in m.keys() {
                            if !columns.contains(&k) {
                                columns.push(k);
                            }
                        }
                    }
                }
                out.push_str("<table>\n<tr>");
                for c in &columns {
                    let _ = write!(out, "<th>{}</th>", esc(c));
                }
                out.push_str("</tr>\n");
                for item in items.iter().take(MAX_ROWS) {
                    out.push_str("<tr>");
                    for c in &columns {
                        out.push_str("<td>");
                        if let Some(cell) = item.get(c.as_str()) {
                            json_html(out, cell, depth + 1);
                        }
                        out.push_str("</td>");
                    }
                    out.push_str("</tr>\n");
                }
                out.push_str("</table>\n");
            } else {
                out.push_str("<ul>\n");
                for item in items.iter().take(MAX_ROWS) {
                    out.push_str("<li>");
                    json_html(out, item, depth + 1);
                    out.push_str("</li>\n");
                }
                out.push_str("</ul>\n");
            }
            if items.len() > MAX_ROWS {
                let _ = writeln!(
                    out,
                    "<p class=\"note\">… and {} more (see the JSON)</p>",
                    items.len() - MAX_ROWS
                );
            }
        }
    }
}

fn baseline(out: &mut String, r: &Report) {
    let Some(b) = &r.baseline else {
        return;
    };
    let _ = writeln!(
        out,
        "<h2>Against the baseline</h2>\n<p>Baseline <code>{}</code>, allowed worsening {} %: \
         <span class=\"badge {}\">{}</span></p>",
        esc(&b.file),
        num(b.threshold_percent),
        if b.regressed { "bad" } else { "good" },
        if b.regressed {
            "regressed"
        } else {
            "no regression"
        }
    );
    out.push_str(
        "<table id=\"baseline\">\n<tr><th>figure</th><th class=\"n\">baseline</th>\
         <th class=\"n\">this run</th><th class=\"n\">change</th><th>regressed</th></tr>\n",
    );
    for row in &b.rows {
        let change = if row.change_percent.is_finite() {
            format!("{:+.1} %", row.change_percent)
        } else {
            num(row.change_percent)
        };
        let _ = writeln!(
            out,
            "<tr{}><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td>{}</td></tr>",
            if row.regressed { " class=\"bad\"" } else { "" },
            esc(&row.figure),
            num(row.baseline),
            num(row.current),
            change,
            if row.regressed { "yes" } else { "no" }
        );
    }
    out.push_str("</table>\n");
}

fn timeseries_table(out: &mut String, ts: &[Second]) {
    out.push_str("<h2>Per second</h2>\n");
    if ts.is_empty() {
        out.push_str("<p class=\"note\">No seconds recorded.</p>\n");
        return;
    }
    out.push_str(
        "<details><summary>The time series as a table</summary>\n<table id=\"timeseries\">\n<tr>\
         <th class=\"n\">t, s</th><th class=\"n\">target/s</th><th class=\"n\">sent</th>\
         <th class=\"n\">ok</th><th class=\"n\">errors</th><th class=\"n\">p50</th>\
         <th class=\"n\">p90</th><th class=\"n\">p99</th><th class=\"n\">p99.9</th>\
         <th class=\"n\">max</th><th class=\"n\">in flight</th></tr>\n",
    );
    for s in ts {
        let _ = writeln!(
            out,
            "<tr{}><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            if s.errors > 0 { " class=\"bad\"" } else { "" },
            s.t,
            num(s.target_rate),
            s.sent,
            s.ok,
            s.errors,
            num(s.p50),
            num(s.p90),
            num(s.p99),
            num(s.p999),
            num(s.max),
            s.in_flight
        );
    }
    out.push_str("</table>\n</details>\n");
}
