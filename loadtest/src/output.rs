//! Writing a run's files: `report.json`, `report.html`, one `.hgrm` per histogram,
//! `timeseries.csv` and `orders.json`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::report::{hgrm, Report};
use crate::runner::RunOutcome;
use crate::told::Order;

/// The files written, by kind.
#[derive(Debug, Clone, Default)]
pub struct Written {
    /// `report.json`.
    pub json: PathBuf,
    /// `report.html`.
    pub html: PathBuf,
    /// `timeseries.csv`.
    pub csv: PathBuf,
    /// `orders.json`.
    pub orders: PathBuf,
    /// Every `.hgrm`.
    pub hgrm: Vec<PathBuf>,
}

/// A histogram name as a file name: `pay/unknown:SYSTEM_BUSY` → `pay.unknown-SYSTEM_BUSY`.
pub fn file_stem(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '/' => '.',
            c if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' => c,
            _ => '-',
        })
        .collect()
}

/// The per-second time series as CSV (the same rows as the report's `timeseries`).
pub fn timeseries_csv(report: &Report) -> String {
    let mut out = String::from(
        "t,target_rate,sent,ok,errors,p50_ms,p90_ms,p99_ms,p999_ms,max_ms,in_flight\n",
    );
    for s in &report.timeseries {
        let _ = writeln!(
            out,
            "{},{:.1},{},{},{},{:.3},{:.3},{:.3},{:.3},{:.3},{}",
            s.t,
            s.target_rate,
            s.sent,
            s.ok,
            s.errors,
            s.p50,
            s.p90,
            s.p99,
            s.p999,
            s.max,
            s.in_flight
        );
    }
    out
}

/// Writes the report (with whatever check and baseline it holds) and the run's files to `dir`.
pub fn write_all(dir: &Path, report: &Report, outcome: &RunOutcome) -> std::io::Result<Written> {
    std::fs::create_dir_all(dir)?;
    let mut w = Written {
        json: dir.join("report.json"),
        html: dir.join("report.html"),
        csv: dir.join("timeseries.csv"),
        orders: dir.join("orders.json"),
        hgrm: Vec::new(),
    };
    let json = serde_json::to_vec_pretty(report).map_err(std::io::Error::other)?;
    std::fs::write(&w.json, json)?;
    std::fs::write(&w.html, crate::html::render(report))?;
    std::fs::write(&w.csv, timeseries_csv(report))?;
    write_orders(&w.orders, &outcome.orders)?;
    for (name, h) in &outcome.histograms {
        let p = dir.join(format!("latency.{}.hgrm", file_stem(name)));
        std::fs::write(&p, hgrm(h))?;
        w.hgrm.push(p);
    }
    Ok(w)
}

/// Writes what the client was told, one order per element.
pub fn write_orders(path: &Path, orders: &[Order]) -> std::io::Result<()> {
    let json = serde_json::to_vec(orders).map_err(std::io::Error::other)?;
    std::fs::write(path, json)
}

/// Reads a report written earlier (a baseline).
pub fn read_report(path: &Path) -> Result<Report, String> {
    let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let report: Report = serde_json::from_slice(&text)
        .map_err(|e| format!("{}: not a loadtest report: {e}", path.display()))?;
    if report.schema != crate::report::SCHEMA {
        return Err(format!(
            "{}: schema {:?}, this tool reads {:?}",
            path.display(),
            report.schema,
            crate::report::SCHEMA
        ));
    }
    Ok(report)
}
