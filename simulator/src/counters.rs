//! Counters of what the simulator did, for `GET /admin/counters`.
//!
//! Labels come from small closed sets (service labels, result codes, gateway codes, fault
//! kinds), never from ids or free text, so the maps stay small whatever the traffic.

use std::collections::BTreeMap;

use serde::Serialize;

/// Notification delivery counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NotificationCounts {
    /// Attempts made.
    pub sent: u64,
    /// Attempts answered `success`.
    pub acked: u64,
    /// Attempts that failed (error, status, or another body).
    pub failed: u64,
}

/// Every counter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Accepted requests by service, then by outcome (result code, `SYSTEM_ERROR` for capacity,
    /// or the fault that replaced the answer).
    pub requests: BTreeMap<&'static str, BTreeMap<&'static str, u64>>,
    /// Gateway rejections (is_success=F before any processing) by code.
    pub rejections: BTreeMap<&'static str, u64>,
    /// Faults injected, by kind.
    pub faults: BTreeMap<&'static str, u64>,
    /// Notifications.
    pub notifications: NotificationCounts,
}

impl Counters {
    /// Counts a request of `service` ending in `outcome`.
    pub fn request(&mut self, service: &'static str, outcome: &'static str) {
        *self
            .requests
            .entry(service)
            .or_default()
            .entry(outcome)
            .or_default() += 1;
    }

    /// Counts a gateway rejection.
    pub fn rejection(&mut self, code: &'static str) {
        *self.rejections.entry(code).or_default() += 1;
    }

    /// Counts an injected fault.
    pub fn fault(&mut self, kind: &'static str) {
        *self.faults.entry(kind).or_default() += 1;
    }
}
