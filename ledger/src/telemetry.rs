//! The journal's metric names, in one place, and the writer's own counters.
//!
//! Metrics go through the `metrics` facade (the switch installs the exporter); labels come from
//! small closed sets. The same figures are also kept in plain atomics ([`WriterStats`]) so a
//! benchmark or a health endpoint can read them without an exporter.

use std::sync::atomic::{AtomicU64, Ordering};

/// Histogram: submissions written per group (per sync).
pub const GROUP_SIZE: &str = "ledger_group_size";
/// Histogram: seconds one group's write with sync took.
pub const SYNC_SECONDS: &str = "ledger_sync_seconds";
/// Gauge: submissions waiting in the queue when the writer took a group.
pub const QUEUE_DEPTH: &str = "ledger_queue_depth";
/// Counter: appends completed, labelled `result` = `ok` | `rejected` | `invalid` | `failed`.
pub const APPENDS_TOTAL: &str = "ledger_appends_total";
/// Counter: events written.
pub const EVENTS_TOTAL: &str = "ledger_events_total";
/// Gauge: 1 once the journal has failed closed.
pub const FAILED: &str = "ledger_failed";

/// Label values of [`APPENDS_TOTAL`].
pub const RESULT_OK: &str = "ok";
/// See [`RESULT_OK`].
pub const RESULT_REJECTED: &str = "rejected";
/// See [`RESULT_OK`].
pub const RESULT_INVALID: &str = "invalid";
/// See [`RESULT_OK`].
pub const RESULT_FAILED: &str = "failed";

/// Counters the writer keeps since open.
#[derive(Debug, Default)]
pub struct WriterStats {
    groups: AtomicU64,
    appends: AtomicU64,
    events: AtomicU64,
    sync_nanos: AtomicU64,
}

/// A copy of [`WriterStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Groups written (one write and one sync each).
    pub groups: u64,
    /// Appends acknowledged.
    pub appends: u64,
    /// Events written.
    pub events: u64,
    /// Total time spent in write+sync, nanoseconds.
    pub sync_nanos: u64,
}

impl StatsSnapshot {
    /// Mean appends per group (0 with no group).
    pub fn mean_group_size(&self) -> f64 {
        ratio(self.appends, self.groups)
    }

    /// The difference from an earlier snapshot.
    pub fn since(&self, earlier: &StatsSnapshot) -> StatsSnapshot {
        StatsSnapshot {
            groups: self.groups.saturating_sub(earlier.groups),
            appends: self.appends.saturating_sub(earlier.appends),
            events: self.events.saturating_sub(earlier.events),
            sync_nanos: self.sync_nanos.saturating_sub(earlier.sync_nanos),
        }
    }
}

/// `a / b` for reporting (not money).
fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        return 0.0;
    }
    // A reporting ratio of event counters, not money; counters stay far below 2^53, where
    // u64 → f64 is exact, and there is no lossless `From`.
    #[allow(clippy::as_conversions)]
    let r = a as f64 / b as f64;
    r
}

impl WriterStats {
    pub(crate) fn record_group(&self, appends: u64, events: u64, sync_nanos: u64) {
        self.groups.fetch_add(1, Ordering::Relaxed);
        self.appends.fetch_add(appends, Ordering::Relaxed);
        self.events.fetch_add(events, Ordering::Relaxed);
        self.sync_nanos.fetch_add(sync_nanos, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            groups: self.groups.load(Ordering::Relaxed),
            appends: self.appends.load(Ordering::Relaxed),
            events: self.events.load(Ordering::Relaxed),
            sync_nanos: self.sync_nanos.load(Ordering::Relaxed),
        }
    }
}
