//! The report's schema, its documentation and its renderings agree:
//!
//! - every field path in `loadtest/REPORT.md`'s tables exists in a serialized report, with the
//!   documented type, and every field of a serialized report is documented;
//! - the JSON reads back to the same report;
//! - the HTML page has its four plots, fetches nothing and escapes what it shows;
//! - the `.hgrm` text has its header, its footer and increasing percentiles.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use hdrhistogram::Histogram;
use loadtest::check::CheckReport;
use loadtest::html;
use loadtest::report::{
    self, compare_with_baseline, LatencySection, Lateness, LoadSpec, Mix, Report, Second, Stats,
    Summary, Target, SCHEMA,
};
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// A report built from real histograms

/// A deterministic stream of latencies in microseconds: mostly a few milliseconds, with a long
/// tail up to seconds (xorshift, so no dependency on `rand`'s algorithms).
struct Latencies(u64);

impl Latencies {
    fn next_us(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let r = self.0 % 10_000;
        match r {
            0..=8_999 => 1_000 + r,                         // 1 to 10 ms
            9_000..=9_899 => 10_000 + (r - 9_000) * 100,    // 10 to 100 ms
            9_900..=9_989 => 100_000 + (r - 9_900) * 5_000, // 0.1 to 0.55 s
            _ => 1_000_000 + (r - 9_990) * 200_000,         // 1 to 3 s
        }
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap()
}

fn sample_histogram(seed: u64, n: usize) -> Histogram<u64> {
    let mut h = histogram();
    let mut l = Latencies(seed);
    for _ in 0..n {
        h.record(l.next_us()).unwrap();
    }
    h
}

fn stats(h: &Histogram<u64>) -> Stats {
    Stats::of(h)
}

/// A report with every optional part present and every map and array non-empty, so that every
/// documented path can be found in it.
fn sample_report(url: &str) -> Report {
    let services = ["pay", "query", "refund", "cancel"];
    let mut all = histogram();
    let mut service_time = histogram();
    let mut by_service = BTreeMap::new();
    let mut spectra = BTreeMap::new();
    for (i, s) in (0u64..).zip(services) {
        let h = sample_histogram(0x9E37_79B9 + i, 2_000);
        all.add(&h).unwrap();
        let mut st = histogram();
        for v in h.iter_recorded() {
            st.record_n((v.value_iterated_to() / 2).max(1), v.count_at_value())
                .unwrap();
        }
        service_time.add(&st).unwrap();
        by_service.insert(s.to_owned(), stats(&h));
        spectra.insert(s.to_owned(), report::spectrum(&h));
    }
    spectra.insert("all".to_owned(), report::spectrum(&all));
    let mut by_outcome = BTreeMap::new();
    by_outcome.insert("pay/ok".to_owned(), stats(&sample_histogram(7, 500)));
    by_outcome.insert(
        "pay/unknown:SYSTEM_BUSY".to_owned(),
        stats(&sample_histogram(8, 20)),
    );

    let mut timeseries = Vec::new();
    for t in 0u64..30 {
        let h = sample_histogram(1000 + t, 200 + usize::try_from(t).unwrap() * 10);
        let s = stats(&h);
        let errors = t % 7;
        timeseries.push(Second {
            t,
            target_rate: 200.0 + 10.0 * f64::from(u32::try_from(t).unwrap()),
            sent: s.count + errors,
            ok: s.count - errors.min(s.count),
            errors,
            p50: s.p50,
            p90: s.p90,
            p99: s.p99,
            p999: s.p999,
            max: s.max,
            in_flight: t * 3,
        });
    }
    let total = all.len();
    let mut errors = BTreeMap::new();
    errors.insert("pay/unknown:SYSTEM_BUSY".to_owned(), 20);
    errors.insert("query/transport:timeout".to_owned(), 3);
    let mut callers = BTreeMap::new();
    callers.insert("RSA2".to_owned(), 8);
    callers.insert("MD5".to_owned(), 2);

    let mut r = Report {
        schema: SCHEMA.to_owned(),
        tool_version: "0.1.0".to_owned(),
        started_at: "2026-11-27T21:00:00Z".to_owned(),
        target: Target {
            url: url.to_owned(),
            kind: "switch".to_owned(),
        },
        load: LoadSpec {
            profile: "ramp:200..500@30s".to_owned(),
            duration_s: 30.0,
            mix: Mix {
                query: 0.3,
                refund: 0.1,
                cancel: 0.05,
            },
            callers_by_sign_type: callers,
            merchants: 50,
            in_flight_max: 1024,
            seed: 42,
            fault_share: 0.01,
        },
        summary: Summary {
            elapsed_s: 30.4,
            intended: total + 23,
            sent: total + 23,
            completed: total + 23,
            ok: total,
            errors: 23,
            error_rate: 23.0 / 8023.0,
            dropped: 0,
            late: 1,
            target_rate: 350.0,
            achieved_rate: 267.4,
            ok_rate: 266.6,
            lateness_ms: Lateness {
                p50: 0.05,
                p99: 1.2,
                max: 14.0,
            },
            generator_cpu_percent: 37.5,
            saturated: false,
        },
        latency: LatencySection {
            all: stats(&all),
            service_time: stats(&service_time),
            by_service,
            by_outcome,
            spectra,
        },
        timeseries,
        errors,
        warnings: vec!["the generator fell 14 ms behind once".to_owned()],
        check: Some(CheckReport::default()),
        baseline: None,
    };
    let mut base = r.clone();
    base.latency.all.p99 /= 2.0;
    r.baseline = Some(compare_with_baseline(&r, &base, "baseline.json", 10.0));
    r
}

// ---------------------------------------------------------------------------------------------
// REPORT.md

/// A documented field: path and type.
#[derive(Debug)]
struct Documented {
    path: String,
    ty: String,
}

/// Splits a markdown table row on `|` that is not escaped as `\|`.
fn cells(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.trim().trim_start_matches('|').chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cur.push('|');
                chars.next();
            }
            '|' => out.push(std::mem::take(&mut cur).trim().to_owned()),
            _ => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_owned());
    }
    out
}

/// Every row of every `| Field | Type | Unit | Meaning |` table in REPORT.md.
fn documented() -> Vec<Documented> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/REPORT.md")).unwrap();
    let mut out = Vec::new();
    let mut in_table = false;
    for line in doc.lines() {
        let line = line.trim();
        if !line.starts_with('|') {
            in_table = false;
            continue;
        }
        let c = cells(line);
        if c.first().map(String::as_str) == Some("Field") {
            assert_eq!(
                c,
                ["Field", "Type", "Unit", "Meaning"],
                "table header: {line}"
            );
            in_table = true;
            continue;
        }
        if !in_table || c.first().is_some_and(|f| f.starts_with("---")) {
            continue;
        }
        assert_eq!(c.len(), 4, "a row has four cells: {line}");
        let path = c[0]
            .strip_prefix('`')
            .and_then(|p| p.strip_suffix('`'))
            .unwrap_or_else(|| panic!("the field is in backticks: {line}"));
        assert!(!c[3].is_empty(), "{path} has a meaning");
        out.push(Documented {
            path: path.to_owned(),
            ty: c[1].clone(),
        });
    }
    out
}

/// Path segments: `latency.spectra.<key>[].ms` is `latency`, `spectra`, `<key>`, `[]`, `ms`.
fn segments(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let mut name = part;
        let mut arrays = 0;
        while let Some(p) = name.strip_suffix("[]") {
            name = p;
            arrays += 1;
        }
        out.push(name.to_owned());
        out.extend((0..arrays).map(|_| "[]".to_owned()));
    }
    out
}

fn type_matches(ty: &str, v: &Value) -> bool {
    ty.split('|').any(|t| match t.trim() {
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.is_u64(),
        "boolean" => v.is_boolean(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        "null" => v.is_null(),
        other => panic!("unknown type {other:?} in REPORT.md"),
    })
}

/// Every value at `segments` under `v`; `Err` names the first segment that is missing (a map or
/// array that is empty counts as missing: the sample report fills them all).
fn resolve<'a>(v: &'a Value, segs: &[String], at: &str) -> Result<Vec<&'a Value>, String> {
    let Some((first, rest)) = segs.split_first() else {
        return Ok(vec![v]);
    };
    let here = format!("{at}.{first}");
    let children: Vec<&Value> = if first == "[]" {
        match v.as_array() {
            Some(a) if !a.is_empty() => a.iter().collect(),
            _ => return Err(format!("{here}: not a non-empty array")),
        }
    } else if first.starts_with('<') && first.ends_with('>') {
        match v.as_object() {
            Some(m) if !m.is_empty() => m.values().collect(),
            _ => return Err(format!("{here}: not a non-empty map")),
        }
    } else {
        match v.get(first.as_str()) {
            Some(c) => vec![c],
            None => return Err(format!("{here}: no such field")),
        }
    };
    let mut out = Vec::new();
    for c in children {
        out.extend(resolve(c, rest, &here)?);
    }
    Ok(out)
}

#[test]
fn every_documented_field_is_in_the_json_with_its_type() {
    let docs = documented();
    assert!(
        docs.len() > 80,
        "REPORT.md documents the fields: {}",
        docs.len()
    );
    let json = serde_json::to_value(sample_report("http://127.0.0.1:8080")).unwrap();
    let mut seen = BTreeSet::new();
    for d in &docs {
        assert!(
            seen.insert(d.path.clone()),
            "{} is documented twice",
            d.path
        );
        if d.path.starts_with("check.") {
            continue; // the check's own section; its content is opaque here
        }
        let values = resolve(&json, &segments(&d.path), "")
            .unwrap_or_else(|e| panic!("documented {} is not in the JSON: {e}", d.path));
        for v in values {
            assert!(
                type_matches(&d.ty, v),
                "{} is documented as {} but is {v}",
                d.path,
                d.ty
            );
        }
    }
    // The nullable parts are documented as such.
    for nullable in ["check", "baseline"] {
        let d = docs.iter().find(|d| d.path == nullable).unwrap();
        assert!(type_matches(&d.ty, &Value::Null), "{nullable} may be null");
    }
}

/// Walks the JSON and names every field (object member, or map value under its placeholder)
/// that REPORT.md does not document. Array elements are not fields; their members are.
fn undocumented(v: &Value, path: &str, docs: &BTreeSet<String>, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let named = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                let child_path = if docs.contains(&named) {
                    named
                } else if let Some(placeholder) = docs.iter().find_map(|d| {
                    let rest = d.strip_prefix(&format!("{path}.<"))?;
                    let end = rest.find('>')?;
                    Some(format!("{path}.<{}>", &rest[..end]))
                }) {
                    placeholder
                } else {
                    out.push(named);
                    continue;
                };
                if child_path == "check" {
                    continue; // the check's fields are its own section's business
                }
                undocumented(child, &child_path, docs, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                undocumented(item, &format!("{path}[]"), docs, out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_json_field_is_documented() {
    let docs: BTreeSet<String> = documented().into_iter().map(|d| d.path).collect();
    let json = serde_json::to_value(sample_report("http://127.0.0.1:8080")).unwrap();
    let mut missing = Vec::new();
    undocumented(&json, "", &docs, &mut missing);
    assert!(missing.is_empty(), "not in REPORT.md: {missing:?}");

    // The walk does see fields: a made-up one is caught, at the top and inside an array.
    let mut extra = json.clone();
    extra["surprise"] = Value::from(1);
    extra["timeseries"][0]["surprise"] = Value::from(1);
    extra["latency"]["by_service"]["pay"]["p75"] = Value::from(1.0);
    let mut missing = Vec::new();
    undocumented(&extra, "", &docs, &mut missing);
    assert_eq!(
        missing,
        [
            "latency.by_service.<service>.p75",
            "surprise",
            "timeseries[].surprise"
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// JSON round trip

/// The paths where two JSON values differ, with both values.
fn diff(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                let (p, q) = (x.get(k), y.get(k));
                match (p, q) {
                    (Some(p), Some(q)) => diff(p, q, &format!("{path}.{k}"), out),
                    _ => out.push(format!("{path}.{k}: {p:?} / {q:?}")),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                diff(p, q, &format!("{path}[{i}]"), out);
            }
        }
        _ if a == b => {}
        // Integers must be exact; floats may move by an ulp or two: serde_json parses floats
        // exactly only with its `float_roundtrip` feature, which the workspace does not enable.
        (Value::Number(x), Value::Number(y)) if x.is_f64() && y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            if (x - y).abs() > 4.0 * f64::EPSILON * x.abs().max(y.abs()) {
                out.push(format!("{path}: {x} / {y}"));
            }
        }
        _ => out.push(format!("{path}: {a} / {b}")),
    }
}

#[test]
fn the_json_reads_back_to_the_same_report() {
    let r = sample_report("https://gateway.example/<x>");
    let text = serde_json::to_string_pretty(&r).unwrap();
    let back: Report = serde_json::from_str(&text).unwrap();
    let mut differ = Vec::new();
    diff(
        &serde_json::to_value(&r).unwrap(),
        &serde_json::to_value(&back).unwrap(),
        "",
        &mut differ,
    );
    assert!(differ.is_empty(), "changed by the round trip: {differ:?}");
    // Spot checks on the typed values, in case both serializations lost the same thing.
    assert_eq!(back.schema, SCHEMA);
    assert_eq!(back.target.url, r.target.url);
    assert_eq!(back.load.mix, r.load.mix);
    assert_eq!(back.latency.all.count, r.latency.all.count);
    assert_eq!(back.latency.all.p99, r.latency.all.p99);
    assert_eq!(back.latency.by_service.len(), 4);
    assert_eq!(back.latency.spectra.len(), 5);
    assert_eq!(back.timeseries.len(), 30);
    assert_eq!(back.timeseries[7].p999, r.timeseries[7].p999);
    assert_eq!(back.errors, r.errors);
    assert_eq!(back.warnings, r.warnings);
    assert_eq!(back.summary.lateness_ms.p99, r.summary.lateness_ms.p99);
    let (b, o) = (back.baseline.unwrap(), r.baseline.clone().unwrap());
    assert!(o.regressed, "the sample's p99 doubled against its baseline");
    assert_eq!(b.regressed, o.regressed);
    assert_eq!(b.rows.len(), o.rows.len());
    for (x, y) in b.rows.iter().zip(&o.rows) {
        assert_eq!(
            (
                &x.figure,
                x.baseline,
                x.current,
                x.change_percent,
                x.regressed
            ),
            (
                &y.figure,
                y.baseline,
                y.current,
                y.change_percent,
                y.regressed
            )
        );
    }
    // And without the optional parts, they come back as null and then None.
    let mut bare = r.clone();
    bare.check = None;
    bare.baseline = None;
    let v = serde_json::to_value(&bare).unwrap();
    assert!(v["check"].is_null() && v["baseline"].is_null());
    let back: Report = serde_json::from_value(v).unwrap();
    assert!(back.check.is_none() && back.baseline.is_none());
}

// ---------------------------------------------------------------------------------------------
// HTML

const PLOTS: [&str; 4] = [
    "plot-latency",
    "plot-throughput",
    "plot-errors",
    "plot-spectrum",
];

/// The opening `<svg ...>` tag with this id, if any.
fn svg<'a>(page: &'a str, id: &str) -> Option<&'a str> {
    let at = page.find(&format!("<svg id=\"{id}\""))?;
    let end = page[at..].find("</svg>")?;
    Some(&page[at..at + end])
}

/// Every tag of the page (`<...>`), comments included.
fn tags(page: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = page;
    while let Some(start) = rest.find('<') {
        let Some(len) = rest[start..].find('>') else {
            break;
        };
        out.push(&rest[start..=start + len]);
        rest = &rest[start + len + 1..];
    }
    out
}

/// Asserts the page loads nothing from anywhere: no resource elements, no URL in any tag, no
/// CSS import or `url(...)`.
fn assert_self_contained(page: &str) {
    for tag in tags(page) {
        let lower = tag.to_ascii_lowercase();
        for bad in [
            "<script", "<link", "<img", "<iframe", "<object", "<embed", "<image",
        ] {
            assert!(
                !lower.starts_with(bad),
                "no external resource element: {tag}"
            );
        }
        for bad in ["http:", "https:", "//", "src=", "href=", "url(", "xlink"] {
            assert!(!lower.contains(bad), "no URL in a tag: {tag}");
        }
    }
    let lower = page.to_ascii_lowercase();
    assert!(!lower.contains("@import") && !lower.contains("url("));
}

#[test]
fn the_html_has_the_four_plots_and_fetches_nothing() {
    let r = sample_report("https://gateway.example:8443/gateway.do");
    let page = html::render(&r);
    // To look at it: LOADTEST_SAMPLE_HTML=/tmp/sample.html cargo test -p loadtest --test report_schema
    if let Some(path) = std::env::var_os("LOADTEST_SAMPLE_HTML") {
        std::fs::write(path, &page).unwrap();
    }
    assert!(page.starts_with("<!doctype html>"));
    for id in PLOTS {
        let s = svg(&page, id).unwrap_or_else(|| panic!("the page has the {id} plot"));
        assert!(s.contains("<polyline"), "{id} has lines");
        assert!(!s.contains("no data"), "{id} has data");
        assert!(s.matches("<text").count() >= 6, "{id} has tick labels");
    }
    // Legends: the series names appear in their plots.
    let latency = svg(&page, "plot-latency").unwrap();
    for name in ["p50", "p90", "p99", "p99.9", "max"] {
        assert!(
            latency.contains(&format!(">{name}</text>")),
            "legend {name}"
        );
    }
    let throughput = svg(&page, "plot-throughput").unwrap();
    for name in ["target", "sent", "ok"] {
        assert!(
            throughput.contains(&format!(">{name}</text>")),
            "legend {name}"
        );
    }
    let spectrum = svg(&page, "plot-spectrum").unwrap();
    for name in ["all", "pay", "query", "refund", "cancel"] {
        assert!(
            spectrum.contains(&format!(">{name}</text>")),
            "legend {name}"
        );
    }
    for tick in [">0%<", ">90%<", ">99%<", ">99.9%<", ">max<"] {
        assert!(spectrum.contains(tick), "percentile tick {tick}");
    }
    // The log axis of the latency plot spans the sample's 1 ms to seconds.
    for tick in [">1<", ">10<", ">100<", ">1000<"] {
        assert!(latency.contains(tick), "log tick {tick}");
    }
    // The URL is shown as text, and only as text.
    assert!(page.contains("https://gateway.example:8443/gateway.do"));
    assert_self_contained(&page);
    // The tables and the warning are there.
    assert!(page.contains("id=\"warnings\""));
    assert!(page.contains("the generator fell 14 ms behind once"));
    for table in [
        "summary",
        "latency-all",
        "latency-by-service",
        "latency-by-outcome",
        "errors",
        "check",
        "baseline",
    ] {
        assert!(page.contains(&format!("id=\"{table}\"")), "table {table}");
    }
    assert!(page.contains("pay/unknown:SYSTEM_BUSY"));
    // The regressed baseline row is highlighted.
    assert!(page.contains("<tr class=\"bad\"><td>p99_ms</td>"));
    assert!(!page.contains("<tr class=\"bad\"><td>achieved_rate</td>"));
}

#[test]
fn the_html_escapes_what_the_report_says() {
    let mut r = sample_report("http://evil.example/<script>alert(1)</script>\"'&");
    r.warnings = vec!["<img src=x onerror=alert(2)>".to_owned()];
    r.errors.insert("pay/<b>bold</b>".to_owned(), 1);
    r.latency
        .spectra
        .insert("<svg onload=alert(3)>".to_owned(), vec![]);
    r.load.profile = "constant:1@1s<iframe>".to_owned();
    let page = html::render(&r);
    assert!(
        page.contains("http://evil.example/&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;")
    );
    assert!(page.contains("&lt;img src=x onerror=alert(2)&gt;"));
    assert!(page.contains("pay/&lt;b&gt;bold&lt;/b&gt;"));
    assert!(page.contains("&lt;svg onload=alert(3)&gt;"));
    assert!(page.contains("constant:1@1s&lt;iframe&gt;"));
    assert!(!page.contains("<script"));
    assert!(!page.contains("<b>bold"));
    assert!(!page.contains("<img"));
    assert!(!page.contains("<iframe"));
    assert!(!page.contains("<svg onload"));
    assert_self_contained(&page);
}

#[test]
fn the_html_survives_empty_and_non_finite_data() {
    let mut r = sample_report("http://127.0.0.1:1");
    r.timeseries.clear();
    r.latency = LatencySection::default();
    r.errors.clear();
    r.warnings.clear();
    r.check = None;
    r.baseline = None;
    r.summary = Summary::default();
    let page = html::render(&r);
    for id in PLOTS {
        let s = svg(&page, id).unwrap_or_else(|| panic!("the empty page has the {id} plot"));
        assert!(s.contains("no data"), "{id} says it has no data");
    }
    assert_self_contained(&page);
    assert!(!page.contains("id=\"warnings\""));
    assert!(!page.contains("id=\"check\""));

    // Non-finite and zero values: gaps, not NaN coordinates.
    let mut r = sample_report("http://127.0.0.1:1");
    r.timeseries[3].p50 = f64::NAN;
    r.timeseries[4].max = f64::INFINITY;
    r.timeseries[5] = Second {
        t: 5,
        ..Second::default()
    };
    r.timeseries[6].target_rate = f64::NEG_INFINITY;
    r.summary.error_rate = f64::NAN;
    r.summary.achieved_rate = f64::INFINITY;
    r.latency.all.p99 = f64::NAN;
    r.latency.spectra.insert("empty".to_owned(), Vec::new());
    r.latency.spectra.insert(
        "odd".to_owned(),
        vec![
            report::SpectrumPoint {
                percentile: f64::NAN,
                ms: 1.0,
            },
            report::SpectrumPoint {
                percentile: 100.0,
                ms: 0.0,
            },
        ],
    );
    let page = html::render(&r);
    for id in PLOTS {
        let s = svg(&page, id).unwrap();
        assert!(!s.contains("NaN") && !s.contains("inf"), "{id}: {s}");
    }
    assert!(page.contains("n/a") && page.contains('∞'));

    // A single second, a single point: still plots, no division by zero.
    let mut r = sample_report("http://127.0.0.1:1");
    r.timeseries.truncate(1);
    let page = html::render(&r);
    for id in PLOTS {
        let s = svg(&page, id).unwrap();
        assert!(!s.contains("NaN") && !s.contains("inf"), "{id}");
        assert!(!s.contains("no data"), "{id}");
    }
}

// ---------------------------------------------------------------------------------------------
// .hgrm

#[test]
fn hgrm_has_header_footer_and_increasing_percentiles() {
    let h = sample_histogram(12345, 10_000);
    let text = report::hgrm(&h);
    let lines: Vec<&str> = text.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"]
    );
    assert_eq!(lines[1], "", "a blank line after the header");

    let mut points = Vec::new();
    let mut footer = Vec::new();
    for line in &lines[2..] {
        if line.starts_with("#[") {
            footer.push(*line);
            continue;
        }
        assert!(footer.is_empty(), "no data after the footer: {line}");
        let f: Vec<&str> = line.split_whitespace().collect();
        assert!(f.len() == 3 || f.len() == 4, "{line}");
        let value: f64 = f[0].parse().unwrap();
        let q: f64 = f[1].parse().unwrap();
        let count: u64 = f[2].parse().unwrap();
        if f.len() == 4 {
            let inv: f64 = f[3].parse().unwrap();
            assert!(
                (inv - 1.0 / (1.0 - q)).abs() <= 0.01 * inv.max(1.0),
                "{line}"
            );
        } else {
            assert_eq!(q, 1.0, "only the last line has no 1/(1-p): {line}");
        }
        points.push((value, q, count));
    }
    assert!(points.len() > 20, "a spectrum has many points");
    for w in points.windows(2) {
        assert!(w[1].1 > w[0].1, "percentiles increase: {w:?}");
        assert!(w[1].0 >= w[0].0, "values do not decrease: {w:?}");
    }
    let (last_value, last_q, _) = *points.last().unwrap();
    assert_eq!(last_q, 1.0);
    assert!(
        points[0].1 < 0.01,
        "starts near the bottom: {:?}",
        points[0]
    );
    // Values are milliseconds: the sample runs from 1 ms to about 3 s.
    let max_ms = report::us_to_ms(h.max());
    assert!((last_value - max_ms).abs() < 0.001);
    assert!(points[0].0 >= 1.0 && points[0].0 < 2.0, "{:?}", points[0]);
    assert!(last_value > 1000.0 && last_value < 3100.0);

    // Footer: mean and max in ms, total count.
    let mean = footer.iter().find(|l| l.starts_with("#[Mean")).unwrap();
    let max = footer.iter().find(|l| l.starts_with("#[Max")).unwrap();
    let field = |line: &str, name: &str| -> f64 {
        let after = &line[line.find(name).unwrap() + name.len()..];
        let after = after.trim_start().trim_start_matches('=').trim_start();
        after
            .split([',', ']'])
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    assert!((field(mean, "Mean") - h.mean() / 1000.0).abs() < 0.001);
    assert!((field(max, "Max") - max_ms).abs() < 0.001);
    assert_eq!(field(max, "Total count"), 10_000.0);

    // The same points as the JSON spectrum.
    let spectrum = report::spectrum(&h);
    assert_eq!(spectrum.len(), points.len());
    for (s, p) in spectrum.iter().zip(&points) {
        assert!((s.percentile / 100.0 - p.1).abs() < 1e-9);
        assert!((s.ms - p.0).abs() < 0.0005 + 1e-9);
    }

    // An empty histogram: header and zero footer.
    let empty = report::hgrm(&histogram());
    assert!(empty.starts_with(lines[0]));
    assert!(empty.contains("#[Mean    =        0.000"));
    assert!(empty.contains("#[Max     =        0.000, Total count    =            0]"));
    assert!(report::spectrum(&histogram()).is_empty());
}
