//! The three-way check: what the client was told ([`crate::told`]), what the switch's journal
//! holds (read over the switch's admin API) and what the simulator's books hold (its admin API),
//! held against each other after a run.
//!
//! - [`compare`] is the check itself: pure, no I/O, over plain views of the journal
//!   ([`JournalTxn`], [`PendingList`]) and of the simulator ([`SimTrade`]), each parsed from the
//!   admin APIs' JSON by a forgiving `from_json` (only the fields the check needs).
//! - [`fetch_and_check`] waits for the switch to settle (its `/pending` list empty, bounded),
//!   fetches both views and calls [`compare`].
//!
//! Through the switch, the simulator's trade of an order is keyed by the switch-assigned
//! upstream id under the upstream account's partner (both in the journal record), and its
//! refunds by the switch's upstream refund ids. Without a switch ("two-way" mode, the client
//! sent straight to the simulator) the trade is keyed by the caller and the client's own ids,
//! and the journal's rules are not checked.
//!
//! Every rule is stated in the report ([`RuleResult::description`]) with how many cases it
//! checked and how many failed; each failure is a [`Discrepancy`] (the first
//! [`DISCREPANCIES_LISTED_MAX`] are listed, all are counted).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use alipay_sim::client::HttpClient;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::told::{Answer, Order};

/// Most discrepancies listed in a report (all are counted in `discrepancies_total`).
pub const DISCREPANCIES_LISTED_MAX: usize = 100;
/// Journal lookups in flight at once. The switch's admin API works on at most 8 requests at
/// once (`switch::admin::ADMIN_WORK_MAX`) and answers 503 beyond, so this stays under it, with
/// room for the `/pending` poll.
pub const JOURNAL_FETCH_CONCURRENCY: usize = 6;
/// Attempts of one admin request answered 503 (busy) or failing on the transport.
pub const ADMIN_ATTEMPTS_MAX: u32 = 20;
/// Pause between two polls of the switch's `/pending` list.
pub const SETTLE_POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Pause between two listings of the simulator's trades while waiting for them to settle
/// (two-way mode): a listing of a long run is large.
pub const SIM_SETTLE_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Most items asked of `/pending` (the switch's own limit).
pub const PENDING_LIST_LIMIT: usize = 1000;
/// Timeout of one admin request.
pub const ADMIN_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// `three-way`: client, journal and simulator.
pub const MODE_THREE_WAY: &str = "three-way";
/// `two-way`: client and simulator (no switch).
pub const MODE_TWO_WAY: &str = "two-way";

/// Rule: at most one simulator trade per order.
pub const RULE_NO_DOUBLE_CHARGE: &str = "no_double_charge";
/// Rule: every simulator trade maps to an order.
pub const RULE_NO_ORPHAN_TRADE: &str = "no_orphan_trade";
/// Rule: a pay told SUCCESS is paid in the journal and at the simulator.
pub const RULE_PAY_SUCCESS_KEPT: &str = "pay_success_kept";
/// Rule: a refund told SUCCESS is in the journal and at the simulator.
pub const RULE_REFUND_SUCCESS_KEPT: &str = "refund_success_kept";
/// Rule: a cancel told SUCCESS left the trade closed in both.
pub const RULE_CANCEL_SUCCESS_KEPT: &str = "cancel_success_kept";
/// Rule: a pay told FAIL was not charged, a refund told FAIL not applied.
pub const RULE_FAIL_NOT_CHARGED: &str = "fail_not_charged";
/// Rule: nothing is pending after the settle window.
pub const RULE_ALL_FINAL: &str = "all_final";
/// Rule: the journal's status and amounts agree with the simulator's.
pub const RULE_JOURNAL_MATCHES_SIMULATOR: &str = "journal_matches_simulator";
/// Rule: refunded totals agree, and cover what the client was told.
pub const RULE_REFUND_TOTALS_AGREE: &str = "refund_totals_agree";

const RULES: [(&str, &str); 9] = [
    (
        RULE_NO_DOUBLE_CHARGE,
        "At most one simulator trade per order (INV-2): through the switch, the trades under \
         the upstream ids its journal record names; two-way, the trades under the caller and \
         the order number.",
    ),
    (
        RULE_NO_ORPHAN_TRADE,
        "Every simulator trade under the partners used maps to an order (INV-3): through the \
         switch by the journal's upstream partner and id, two-way by caller and order number.",
    ),
    (
        RULE_PAY_SUCCESS_KEPT,
        "No lost acknowledgement of a pay (INV-1): a pay the client was told SUCCESS is paid, \
         for its amount, in the journal and at the simulator; closed or refunded is accepted \
         only when the client itself asked for a cancel (not told FAIL), or for refunds (not \
         told FAIL) covering the amount.",
    ),
    (
        RULE_REFUND_SUCCESS_KEPT,
        "No lost acknowledgement of a refund (INV-1): a refund told SUCCESS succeeded in the \
         journal and took effect at the simulator, for the same amount.",
    ),
    (
        RULE_CANCEL_SUCCESS_KEPT,
        "No lost acknowledgement of a cancel (INV-1): an order with a cancel told SUCCESS is \
         closed, reversed or refunded in full in the journal, and closed with no money kept at \
         the simulator (or has no trade there).",
    ),
    (
        RULE_FAIL_NOT_CHARGED,
        "A pay told FAIL was not charged (not paid in the journal, no money kept at the \
         simulator), and a refund told FAIL (and never told SUCCESS) was not applied.",
    ),
    (
        RULE_ALL_FINAL,
        "Every transaction is final after the settle window (INV-4): no journal record not \
         final, with a cancel or refund in flight, a notification owed or an exception; the \
         switch's /pending list empty; no simulator trade waiting for its buyer or with a \
         refund still pending.",
    ),
    (
        RULE_JOURNAL_MATCHES_SIMULATOR,
        "The journal's final status agrees with the simulator's: Paid is TRADE_SUCCESS (or \
         TRADE_FINISHED) for the same amount; Reversed and Refunded are a paid trade now \
         TRADE_CLOSED with nothing kept; Closed and Failed have no trade, or an unpaid \
         TRADE_CLOSED one; and the money kept is the same on both sides.",
    ),
    (
        RULE_REFUND_TOTALS_AGREE,
        "Refunded totals agree (INV-5): the journal's refunded amount equals the refunds that \
         took effect at the simulator, and both are at least what the client was told \
         succeeded.",
    ),
];

// ---------------------------------------------------------------------------------------------
// Views.

/// One refund in the journal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalRefund {
    /// The merchant's `partner_refund_id` (or the resolver's `#reversal/...` id).
    pub partner_refund_id: String,
    /// The id the switch sent upstream.
    pub upstream_refund_id: String,
    /// Amount, minor units.
    pub amount_minor: u64,
    /// `Reserved`, `Unknown`, `Succeeded` or `Failed`.
    pub status: String,
}

impl JournalRefund {
    /// True for a refund that took effect.
    pub fn succeeded(&self) -> bool {
        self.status == "Succeeded"
    }

    /// True while its outcome is not known.
    pub fn in_flight(&self) -> bool {
        matches!(self.status.as_str(), "Reserved" | "Unknown")
    }
}

/// A transaction as the switch's journal holds it (`GET /txns/{caller}/{partner_trans_id}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalTxn {
    /// The caller (the journal key's merchant).
    pub caller: String,
    /// The caller's order number.
    pub partner_trans_id: String,
    /// `Received`, `Sent`, `Unknown`, `Paid`, `Failed`, `Closed`, `Reversed`, `Refunded`.
    pub status: String,
    /// The upstream account's partner.
    pub upstream_partner: String,
    /// The id sent upstream.
    pub upstream_trans_id: String,
    /// Any other upstream id the history names for this transaction (there should be none).
    pub other_upstream_ids: Vec<String>,
    /// The amount asked for, minor units.
    pub amount_minor: u64,
    /// Its currency.
    pub currency: String,
    /// The amount paid, once known.
    pub paid_minor: Option<u64>,
    /// Refunded in total (refunds only; a cancel's reversal is not in it).
    pub refunded_minor: u64,
    /// Reserved by refunds in flight.
    pub reserved_minor: u64,
    /// The refunds, in `partner_refund_id` order.
    pub refunds: Vec<JournalRefund>,
    /// A cancel was sent and has no definite answer.
    pub cancel_in_flight: bool,
    /// What the successful cancel did (`Close`, `Refund`).
    pub cancel_action: Option<String>,
    /// A notification is owed to the merchant.
    pub notify_owed: bool,
    /// The exception's reason, while the switch waits for an operator.
    pub exception: Option<String>,
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

fn u64_at(v: &Value, path: &[&str]) -> Option<u64> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_u64()
}

/// A money value's minor units and currency: `{"minor": n, "currency": "USD"}` (the
/// simulator also has `value`).
fn money(v: Option<&Value>) -> Option<(u64, String)> {
    let v = v.filter(|v| !v.is_null())?;
    let minor = v.get("minor")?.as_u64()?;
    let currency = v.get("currency").and_then(Value::as_str).unwrap_or("");
    Some((minor, currency.to_owned()))
}

/// Every string under a key named `name`, anywhere in `v`.
fn strings_named(v: &Value, name: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, item) in map {
                match item {
                    Value::String(s) if k == name => out.push(s.clone()),
                    _ => strings_named(item, name, out),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                strings_named(item, name, out);
            }
        }
        _ => {}
    }
}

impl JournalTxn {
    /// Reads the admin API's answer `{"state": {...}, "events": [...]}` (or the state alone).
    /// `None` when it has no key or status.
    pub fn from_json(v: &Value) -> Option<JournalTxn> {
        let state = v.get("state").unwrap_or(v);
        let caller = str_at(state, &["txn", "merchant"])?.to_owned();
        let partner_trans_id = str_at(state, &["txn", "partner_trans_id"])?.to_owned();
        let status = state.get("status")?.as_str()?.to_owned();
        let upstream_trans_id = str_at(state, &["upstream_trans_id"])
            .unwrap_or("")
            .to_owned();
        let (amount_minor, currency) = money(state.get("amount")).unwrap_or_default();
        let refunds = state
            .get("refunds")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(id, r)| JournalRefund {
                        partner_refund_id: id.clone(),
                        upstream_refund_id: str_at(r, &["upstream_refund_id"])
                            .unwrap_or("")
                            .to_owned(),
                        amount_minor: money(r.get("amount")).map_or(0, |(m, _)| m),
                        status: str_at(r, &["status"]).unwrap_or("").to_owned(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let cancel = state.get("cancel").unwrap_or(&Value::Null);
        let cancel_action = str_at(cancel, &["action"]).map(str::to_owned);
        let cancel_attempts = u64_at(cancel, &["attempts"]).unwrap_or(0);
        let cancel_in_flight = cancel_attempts > 0
            && cancel_action.is_none()
            && match str_at(cancel, &["last_result"]) {
                None | Some("Unknown") => true,
                Some("Fail") => cancel.get("retry").and_then(Value::as_bool) == Some(true),
                Some(_) => false,
            };
        let notify = state.get("notify").unwrap_or(&Value::Null);
        let notify_owed = notify.get("due").is_some_and(|d| !d.is_null())
            || notify
                .get("queued")
                .and_then(Value::as_array)
                .is_some_and(|q| !q.is_empty());
        let exception = state
            .get("exception")
            .filter(|e| !e.is_null())
            .map(|e| str_at(e, &["reason"]).unwrap_or("(no reason)").to_owned());
        let mut ids = Vec::new();
        if let Some(events) = v.get("events") {
            strings_named(events, "upstream_trans_id", &mut ids);
        }
        let other_upstream_ids: BTreeSet<String> = ids
            .into_iter()
            .filter(|id| *id != upstream_trans_id && !id.is_empty())
            .collect();
        Some(JournalTxn {
            caller,
            partner_trans_id,
            status,
            upstream_partner: str_at(state, &["upstream_partner"])
                .unwrap_or("")
                .to_owned(),
            upstream_trans_id,
            other_upstream_ids: other_upstream_ids.into_iter().collect(),
            amount_minor,
            currency,
            paid_minor: money(state.get("paid")).map(|(m, _)| m),
            refunded_minor: u64_at(state, &["refunded_minor"]).unwrap_or(0),
            reserved_minor: u64_at(state, &["reserved_minor"]).unwrap_or(0),
            refunds,
            cancel_in_flight,
            cancel_action,
            notify_owed,
            exception,
        })
    }

    /// The journal key, `(caller, partner_trans_id)`.
    pub fn key(&self) -> (String, String) {
        (self.caller.clone(), self.partner_trans_id.clone())
    }

    /// True for a final status.
    pub fn is_final(&self) -> bool {
        matches!(
            self.status.as_str(),
            "Paid" | "Failed" | "Closed" | "Reversed" | "Refunded"
        )
    }

    /// Why the transaction still has work left, if it has (`None`: settled).
    pub fn unsettled(&self) -> Option<String> {
        let mut why = Vec::new();
        if !self.is_final() {
            why.push(format!("status {}", self.status));
        }
        for r in self.refunds.iter().filter(|r| r.in_flight()) {
            why.push(format!("refund {} is {}", r.partner_refund_id, r.status));
        }
        if self.cancel_in_flight {
            why.push("a cancel without a definite answer".to_owned());
        }
        if self.notify_owed {
            why.push("a notification owed".to_owned());
        }
        if let Some(e) = &self.exception {
            why.push(format!("exception: {e}"));
        }
        (!why.is_empty()).then(|| why.join("; "))
    }

    /// True when the journal says the money was taken (whatever happened after).
    pub fn was_paid(&self) -> bool {
        self.paid_minor.is_some()
            && matches!(self.status.as_str(), "Paid" | "Reversed" | "Refunded")
    }

    /// The money the merchant keeps per the journal: paid, less refunds, less a reversal.
    pub fn kept_minor(&self) -> u64 {
        match (self.status.as_str(), self.paid_minor) {
            ("Reversed", _) | (_, None) => 0,
            (_, Some(paid)) => paid.saturating_sub(self.refunded_minor),
        }
    }

    /// The refund of `partner_refund_id`.
    pub fn refund(&self, partner_refund_id: &str) -> Option<&JournalRefund> {
        self.refunds
            .iter()
            .find(|r| r.partner_refund_id == partner_refund_id)
    }
}

/// One line of the switch's `/pending` list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingTxn {
    /// The caller.
    pub caller: String,
    /// The order number.
    pub partner_trans_id: String,
    /// The journal status.
    pub status: String,
    /// The exception's reason, if it has one.
    pub reason: Option<String>,
}

/// The switch's `/pending` list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingList {
    /// How many transactions are pending in all.
    pub total: u64,
    /// The first of them.
    pub items: Vec<PendingTxn>,
}

impl PendingList {
    /// Reads `{"total": n, "items": [{"merchant", "partner_trans_id", "status", "reason"?}]}`.
    pub fn from_json(v: &Value) -> Option<PendingList> {
        let items: Vec<PendingTxn> = v
            .get("items")?
            .as_array()?
            .iter()
            .map(|i| PendingTxn {
                caller: str_at(i, &["merchant"]).unwrap_or("").to_owned(),
                partner_trans_id: str_at(i, &["partner_trans_id"]).unwrap_or("").to_owned(),
                status: str_at(i, &["status"]).unwrap_or("").to_owned(),
                reason: str_at(i, &["reason"]).map(str::to_owned),
            })
            .collect();
        let listed = u64::try_from(items.len()).unwrap_or(u64::MAX);
        let total = u64_at(v, &["total"]).unwrap_or(listed).max(listed);
        Some(PendingList { total, items })
    }
}

/// One refund at the simulator.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimRefund {
    /// The `partner_refund_id` it was sent with.
    pub partner_refund_id: String,
    /// Amount, minor units.
    pub amount_minor: u64,
    /// It took effect (an asynchronous refund may still be pending).
    pub completed: bool,
}

/// A trade in the simulator's books (`GET /admin/trades`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimTrade {
    /// The account.
    pub partner: String,
    /// The order number it was created with.
    pub partner_trans_id: String,
    /// `WAIT_BUYER_PAY`, `TRADE_SUCCESS`, `TRADE_CLOSED`, `TRADE_FINISHED`.
    pub status: String,
    /// The pay's amount, minor units (absent for a trade a cancel closed before any pay).
    pub amount_minor: Option<u64>,
    /// Its currency.
    pub currency: Option<String>,
    /// The buyer paid (`paid_at` is set).
    pub paid: bool,
    /// Refunds, in request order.
    pub refunds: Vec<SimRefund>,
    /// What a successful cancel did: `closed`, `already_closed`, `refunded`.
    pub cancel_effect: Option<String>,
    /// What the cancel refunded, minor units.
    pub cancel_refunded_minor: u64,
    /// Why it is closed (`pay_failed`, `cancelled`, `fully_refunded`, ...).
    pub close_reason: Option<String>,
}

impl SimTrade {
    /// Reads the admin view of one trade. `None` without a partner, order number or status.
    pub fn from_json(v: &Value) -> Option<SimTrade> {
        let amount = money(v.get("amount"));
        let refunds = v
            .get("refunds")
            .and_then(Value::as_array)
            .map(|rs| {
                rs.iter()
                    .map(|r| SimRefund {
                        partner_refund_id: str_at(r, &["partner_refund_id"])
                            .unwrap_or("")
                            .to_owned(),
                        amount_minor: money(r.get("amount")).map_or(0, |(m, _)| m),
                        completed: r.get("completed_at").is_some_and(|c| !c.is_null()),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let cancel = v.get("cancel").filter(|c| !c.is_null());
        let close_reason = v.get("close_reason").filter(|c| !c.is_null()).map(|c| {
            c.get("reason")
                .and_then(Value::as_str)
                .or_else(|| c.as_str())
                .unwrap_or("?")
                .to_owned()
        });
        Some(SimTrade {
            partner: str_at(v, &["partner"])?.to_owned(),
            partner_trans_id: str_at(v, &["partner_trans_id"])?.to_owned(),
            status: str_at(v, &["status"])?.to_owned(),
            amount_minor: amount.as_ref().map(|(m, _)| *m),
            currency: amount.map(|(_, c)| c),
            paid: v.get("paid_at").is_some_and(|p| !p.is_null()),
            refunds,
            cancel_effect: cancel
                .and_then(|c| str_at(c, &["effect"]))
                .map(str::to_owned),
            cancel_refunded_minor: cancel
                .and_then(|c| money(c.get("refunded")))
                .map_or(0, |(m, _)| m),
            close_reason,
        })
    }

    /// `(partner, partner_trans_id)`.
    pub fn key(&self) -> (String, String) {
        (self.partner.clone(), self.partner_trans_id.clone())
    }

    /// The amount paid (0 when unpaid).
    pub fn paid_minor(&self) -> u64 {
        if self.paid {
            self.amount_minor.unwrap_or(0)
        } else {
            0
        }
    }

    /// Refunds that took effect (a cancel's refund not included).
    pub fn refunds_done_minor(&self) -> u64 {
        self.refunds
            .iter()
            .filter(|r| r.completed)
            .fold(0u64, |t, r| t.saturating_add(r.amount_minor))
    }

    /// The money the merchant keeps: paid, less refunds done, less a cancel's refund.
    pub fn kept_minor(&self) -> u64 {
        self.paid_minor()
            .saturating_sub(self.refunds_done_minor())
            .saturating_sub(self.cancel_refunded_minor)
    }

    /// True for a paid trade still paid (partially refunded at most).
    pub fn is_success(&self) -> bool {
        matches!(self.status.as_str(), "TRADE_SUCCESS" | "TRADE_FINISHED")
    }

    /// True for a closed trade.
    pub fn is_closed(&self) -> bool {
        self.status == "TRADE_CLOSED"
    }

    /// Why the trade is not final yet, if it is not.
    pub fn unsettled(&self) -> Option<String> {
        let mut why = Vec::new();
        if self.status == "WAIT_BUYER_PAY" {
            why.push("waiting for its buyer".to_owned());
        }
        for r in self.refunds.iter().filter(|r| !r.completed) {
            why.push(format!("refund {} pending", r.partner_refund_id));
        }
        (!why.is_empty()).then(|| why.join("; "))
    }

    /// The refund sent as `partner_refund_id`.
    pub fn refund(&self, partner_refund_id: &str) -> Option<&SimRefund> {
        self.refunds
            .iter()
            .find(|r| r.partner_refund_id == partner_refund_id)
    }

    fn describe(&self) -> String {
        format!(
            "{}/{} {} paid {} kept {}",
            self.partner,
            self.partner_trans_id,
            self.status,
            self.paid_minor(),
            self.kept_minor()
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The report.

/// One thing that disagreed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discrepancy {
    /// `caller/partner_trans_id` of the order, or `sim:partner/partner_trans_id` of a
    /// simulator trade no order explains, or `pending:caller/partner_trans_id`.
    pub order: String,
    /// The rule it breaks (one of the `RULE_*` names).
    pub rule: String,
    /// What disagreed, with the values.
    pub detail: String,
}

/// One rule's result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleResult {
    /// The rule's name.
    pub rule: String,
    /// What it checks.
    pub description: String,
    /// Cases it looked at.
    pub checked: u64,
    /// Cases that failed it.
    pub failed: u64,
    /// `failed == 0`.
    pub passed: bool,
}

/// One amount as each side sees it, minor units (`None`: that side was not looked at).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sides {
    /// What the client was told.
    pub told: u64,
    /// What the journal holds (three-way only).
    pub journal: Option<u64>,
    /// What the simulator holds.
    pub simulator: u64,
}

/// The money of one currency, side by side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrencyTotals {
    /// Paid (told: pays told SUCCESS; journal: every paid record, reversed or refunded later
    /// included; simulator: every paid trade).
    pub paid: Sides,
    /// Refunded by refunds (told: refunds told SUCCESS).
    pub refunded: Sides,
    /// Returned by a cancel of a paid trade (told: paid orders with a cancel told SUCCESS).
    pub reversed: Sides,
    /// Kept: paid, less refunded, less reversed.
    pub kept: Sides,
}

/// The result of the three-way check.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CheckReport {
    /// True when nothing disagreed.
    pub passed: bool,
    /// `three-way` (client, journal, simulator) or `two-way` (client, simulator).
    pub mode: String,
    /// Seconds it took the switch's `/pending` list (two-way: the simulator's trades) to
    /// settle; `None` when it did not within the settle timeout (the pending ones are failures).
    pub settled_after_s: Option<f64>,
    /// Orders the client recorded.
    pub orders: u64,
    /// Distinct `(caller, partner_trans_id)` among them.
    pub order_keys: u64,
    /// Orders found in the journal (three-way).
    pub journal_txns: u64,
    /// Simulator trades looked at (under the partners used).
    pub sim_trades: u64,
    /// Transactions in the switch's `/pending` list at the end (three-way).
    pub pending: u64,
    /// Each rule, with how many cases it checked and failed.
    pub rules: Vec<RuleResult>,
    /// The first [`DISCREPANCIES_LISTED_MAX`] discrepancies.
    pub discrepancies: Vec<Discrepancy>,
    /// All discrepancies.
    pub discrepancies_total: u64,
    /// Money by currency, side by side.
    pub totals: BTreeMap<String, CurrencyTotals>,
    /// Remarks that are not failures (comparisons skipped and why).
    pub notes: Vec<String>,
}

impl CheckReport {
    /// The rule named `rule`.
    pub fn rule(&self, rule: &str) -> Option<&RuleResult> {
        self.rules.iter().find(|r| r.rule == rule)
    }

    /// A short human summary, one line each.
    pub fn summary_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let verdict = if self.passed { "PASSED" } else { "FAILED" };
        let settled = match self.settled_after_s {
            Some(s) => format!("settled after {s:.1} s"),
            None => "did NOT settle".to_owned(),
        };
        lines.push(format!(
            "check ({}): {verdict}; {} orders ({} keys), {} in the journal, {} simulator \
             trades, {} pending; {settled}",
            self.mode,
            self.orders,
            self.order_keys,
            self.journal_txns,
            self.sim_trades,
            self.pending
        ));
        for r in &self.rules {
            let mark = if r.passed { "ok  " } else { "FAIL" };
            lines.push(format!(
                "  {mark} {:<26} {} checked, {} failed",
                r.rule, r.checked, r.failed
            ));
        }
        for (currency, t) in &self.totals {
            let side = |s: &Sides| match s.journal {
                Some(j) => format!("told {} / journal {} / sim {}", s.told, j, s.simulator),
                None => format!("told {} / sim {}", s.told, s.simulator),
            };
            lines.push(format!(
                "  {currency} minor units: paid {}; refunded {}; reversed {}; kept {}",
                side(&t.paid),
                side(&t.refunded),
                side(&t.reversed),
                side(&t.kept)
            ));
        }
        for d in &self.discrepancies {
            lines.push(format!("  - {} [{}] {}", d.order, d.rule, d.detail));
        }
        let listed = u64::try_from(self.discrepancies.len()).unwrap_or(u64::MAX);
        if self.discrepancies_total > listed {
            lines.push(format!(
                "  ... and {} more discrepancies",
                self.discrepancies_total - listed
            ));
        }
        for n in &self.notes {
            lines.push(format!("  note: {n}"));
        }
        lines
    }
}

// ---------------------------------------------------------------------------------------------
// The comparison.

/// Counts and discrepancies as the rules run.
struct Tally {
    checked: BTreeMap<&'static str, u64>,
    failed: BTreeMap<&'static str, u64>,
    discrepancies: Vec<Discrepancy>,
    total: u64,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            checked: BTreeMap::new(),
            failed: BTreeMap::new(),
            discrepancies: Vec::new(),
            total: 0,
        }
    }

    fn check(&mut self, rule: &'static str) {
        let n = self.checked.entry(rule).or_insert(0);
        *n = n.saturating_add(1);
    }

    /// Counts one failed case of `rule`, with every problem found in it.
    fn fail(&mut self, rule: &'static str, order: &str, problems: &[String]) {
        if problems.is_empty() {
            return;
        }
        let n = self.failed.entry(rule).or_insert(0);
        *n = n.saturating_add(1);
        self.total = self.total.saturating_add(1);
        if self.discrepancies.len() < DISCREPANCIES_LISTED_MAX {
            self.discrepancies.push(Discrepancy {
                order: order.to_owned(),
                rule: rule.to_owned(),
                detail: problems.join("; "),
            });
        }
    }

    /// Checks one case of `rule`: failed when `problems` is not empty.
    fn case(&mut self, rule: &'static str, order: &str, problems: &[String]) {
        self.check(rule);
        self.fail(rule, order, problems);
    }
}

fn sum(a: u64, b: u64) -> u64 {
    a.saturating_add(b)
}

/// The client asked for a cancel that was not refused (success, unknown or no answer).
fn cancel_asked(order: &Order) -> bool {
    order
        .cancels
        .iter()
        .any(|a| !matches!(a, Answer::Fail { .. }))
}

/// Minor units of refunds the client asked for that were not refused.
fn refunds_asked_minor(order: &Order) -> u64 {
    order
        .refunds
        .iter()
        .filter(|r| !matches!(r.answer, Answer::Fail { .. }))
        .fold(0, |t, r| sum(t, r.amount_minor))
}

/// Holds what the client was told against the journal (when given: three-way mode) and the
/// simulator's trades. Pure: no I/O.
///
/// - `journal`: the journal records of the orders, by `(caller, partner_trans_id)`; an order
///   absent from it was not found in the journal. `None` for two-way mode (no switch).
/// - `sim_trades`: every simulator trade under the partners the run used (through the switch:
///   the upstream partners of the journal records; two-way: the callers); each one is in scope,
///   so a trade no order explains is an orphan.
/// - `pending`: the switch's `/pending` list at the end (three-way).
/// - `settled_after_s`: how long the settling took, as measured by the caller.
pub fn compare(
    orders: &[Order],
    journal: Option<&HashMap<(String, String), JournalTxn>>,
    sim_trades: &[SimTrade],
    pending: Option<&PendingList>,
    settled_after_s: Option<f64>,
) -> CheckReport {
    let three_way = journal.is_some();
    let mut t = Tally::new();
    let mut notes: Vec<String> = Vec::new();
    let mut amounts_not_compared = 0u64;

    let mut sim_by_key: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
    for (i, s) in sim_trades.iter().enumerate() {
        sim_by_key
            .entry((s.partner.as_str(), s.partner_trans_id.as_str()))
            .or_default()
            .push(i);
    }

    let mut keys: BTreeMap<(String, String), Vec<&Order>> = BTreeMap::new();
    for o in orders {
        keys.entry((o.caller.clone(), o.partner_trans_id.clone()))
            .or_default()
            .push(o);
    }

    let mut mapped = vec![false; sim_trades.len()];
    let mut journal_found = 0u64;
    let mut unsettled_keys: BTreeSet<(String, String)> = BTreeSet::new();
    let mut totals: BTreeMap<String, CurrencyTotals> = BTreeMap::new();

    for (key, key_orders) in &keys {
        let name = format!("{}/{}", key.0, key.1);
        let j = journal.and_then(|m| m.get(key));
        if j.is_some() {
            journal_found = journal_found.saturating_add(1);
        }

        // The simulator trades of this order.
        let mut sim_keys: Vec<(String, String)> = Vec::new();
        match (three_way, j) {
            (false, _) => sim_keys.push(key.clone()),
            (true, Some(j)) => {
                sim_keys.push((j.upstream_partner.clone(), j.upstream_trans_id.clone()));
                for id in &j.other_upstream_ids {
                    sim_keys.push((j.upstream_partner.clone(), id.clone()));
                }
            }
            (true, None) => {}
        }
        let mut trade_ix: Vec<usize> = Vec::new();
        for (p, id) in &sim_keys {
            if let Some(ix) = sim_by_key.get(&(p.as_str(), id.as_str())) {
                trade_ix.extend(ix.iter().copied());
            }
        }
        trade_ix.sort_unstable();
        trade_ix.dedup();
        for &i in &trade_ix {
            if let Some(m) = mapped.get_mut(i) {
                *m = true;
            }
        }
        let trades: Vec<&SimTrade> = trade_ix.iter().filter_map(|&i| sim_trades.get(i)).collect();
        let trade = trades.first().copied();

        // INV-2.
        let double = if trades.len() > 1 {
            vec![format!(
                "{} simulator trades: {}",
                trades.len(),
                trades
                    .iter()
                    .map(|s| s.describe())
                    .collect::<Vec<_>>()
                    .join(", ")
            )]
        } else {
            Vec::new()
        };
        t.case(RULE_NO_DOUBLE_CHARGE, &name, &double);

        // Refund ids at the simulator: the journal's upstream ids through the switch.
        let sim_refund_id = |client_id: &str| -> Option<String> {
            if three_way {
                j.and_then(|j| j.refund(client_id))
                    .map(|r| r.upstream_refund_id.clone())
            } else {
                Some(client_id.to_owned())
            }
        };

        for order in key_orders {
            let currency = order.currency.clone();
            let tot = totals.entry(currency.clone()).or_default();
            if order.pay.is_success() {
                tot.paid.told = sum(tot.paid.told, order.amount_minor);
                if order.cancels.iter().any(Answer::is_success) {
                    tot.reversed.told = sum(tot.reversed.told, order.amount_minor);
                }
            }
            tot.refunded.told = sum(tot.refunded.told, order.refunded_told_minor());

            let same_currency = |c: Option<&str>| c.is_none_or(|c| c == currency);

            // Pay told SUCCESS.
            if order.pay.is_success() {
                let mut p = Vec::new();
                let cancelled = cancel_asked(order);
                let refunded_all = refunds_asked_minor(order) >= order.amount_minor;
                if three_way {
                    match j {
                        None => p.push("not in the journal".to_owned()),
                        Some(j) => {
                            let ok = match j.status.as_str() {
                                "Paid" => true,
                                "Reversed" => cancelled,
                                "Refunded" => refunded_all,
                                _ => false,
                            };
                            if !ok {
                                p.push(format!("journal status {}", j.status));
                            }
                            if j.paid_minor != Some(order.amount_minor) && j.currency == currency {
                                p.push(format!(
                                    "journal paid {:?}, told {}",
                                    j.paid_minor, order.amount_minor
                                ));
                            }
                        }
                    }
                }
                match trade {
                    None => p.push("no trade at the simulator".to_owned()),
                    Some(s) => {
                        let ok = if s.is_success() {
                            true
                        } else if s.is_closed() && s.paid {
                            (s.cancel_effect.as_deref() == Some("refunded") && cancelled)
                                || (s.cancel_refunded_minor == 0 && refunded_all)
                        } else {
                            false
                        };
                        if !ok {
                            p.push(format!(
                                "simulator status {}{}",
                                s.status,
                                if s.paid { "" } else { " (never paid)" }
                            ));
                        }
                        if same_currency(s.currency.as_deref()) {
                            if s.paid && s.amount_minor != Some(order.amount_minor) {
                                p.push(format!(
                                    "simulator paid {:?}, told {}",
                                    s.amount_minor, order.amount_minor
                                ));
                            }
                        } else {
                            amounts_not_compared = amounts_not_compared.saturating_add(1);
                        }
                    }
                }
                t.case(RULE_PAY_SUCCESS_KEPT, &name, &p);
            }

            // Refunds told SUCCESS.
            for r in order.refunds.iter().filter(|r| r.answer.is_success()) {
                let mut p = Vec::new();
                if let Some(j) = j {
                    match j.refund(&r.partner_refund_id) {
                        None => p.push("not in the journal".to_owned()),
                        Some(jr) => {
                            if !jr.succeeded() {
                                p.push(format!("journal refund status {}", jr.status));
                            }
                            if jr.amount_minor != r.amount_minor {
                                p.push(format!(
                                    "journal amount {}, told {}",
                                    jr.amount_minor, r.amount_minor
                                ));
                            }
                        }
                    }
                }
                match (trade, sim_refund_id(&r.partner_refund_id)) {
                    (None, _) => p.push("no trade at the simulator".to_owned()),
                    (Some(_), None) => {
                        p.push("cannot be looked up at the simulator (no upstream id)".to_owned())
                    }
                    (Some(s), Some(id)) => match s.refund(&id) {
                        None => p.push(format!("no refund {id} at the simulator")),
                        Some(sr) => {
                            if !sr.completed {
                                p.push("still pending at the simulator".to_owned());
                            }
                            if sr.amount_minor != r.amount_minor {
                                p.push(format!(
                                    "simulator amount {}, told {}",
                                    sr.amount_minor, r.amount_minor
                                ));
                            }
                        }
                    },
                }
                let who = format!("{name} refund {}", r.partner_refund_id);
                t.case(RULE_REFUND_SUCCESS_KEPT, &who, &p);
            }

            // Cancel told SUCCESS.
            if order.cancels.iter().any(Answer::is_success) {
                let mut p = Vec::new();
                if three_way {
                    match j {
                        None => p.push("not in the journal".to_owned()),
                        Some(j) => {
                            if !matches!(j.status.as_str(), "Closed" | "Reversed" | "Refunded") {
                                p.push(format!("journal status {}", j.status));
                            }
                        }
                    }
                }
                if let Some(s) = trade {
                    if !s.is_closed() || s.kept_minor() > 0 {
                        p.push(format!("simulator {}", s.describe()));
                    }
                }
                t.case(RULE_CANCEL_SUCCESS_KEPT, &name, &p);
            }

            // Told FAIL.
            if matches!(order.pay, Answer::Fail { .. }) {
                let mut p = Vec::new();
                if let Some(j) = j.filter(|j| j.was_paid()) {
                    p.push(format!(
                        "journal status {} paid {:?}",
                        j.status, j.paid_minor
                    ));
                }
                if let Some(s) = trade.filter(|s| s.kept_minor() > 0) {
                    p.push(format!("simulator {}", s.describe()));
                }
                t.case(RULE_FAIL_NOT_CHARGED, &name, &p);
            }
            for r in order.refunds.iter().filter(|r| {
                matches!(r.answer, Answer::Fail { .. })
                    && !order.refunds.iter().any(|o| {
                        o.partner_refund_id == r.partner_refund_id && o.answer.is_success()
                    })
            }) {
                let mut p = Vec::new();
                if let Some(jr) = j
                    .and_then(|j| j.refund(&r.partner_refund_id))
                    .filter(|jr| jr.succeeded())
                {
                    p.push(format!("journal refund Succeeded for {}", jr.amount_minor));
                }
                if let (Some(s), Some(id)) = (trade, sim_refund_id(&r.partner_refund_id)) {
                    if let Some(sr) = s.refund(&id) {
                        p.push(format!(
                            "applied at the simulator as {id} for {}",
                            sr.amount_minor
                        ));
                    }
                }
                let who = format!("{name} refund {}", r.partner_refund_id);
                t.case(RULE_FAIL_NOT_CHARGED, &who, &p);
            }
        }

        // Final, once per key.
        let mut p = Vec::new();
        if let Some(why) = j.and_then(JournalTxn::unsettled) {
            p.push(format!("journal: {why}"));
        }
        for s in &trades {
            if let Some(why) = s.unsettled() {
                p.push(format!("simulator: {why}"));
            }
        }
        if !p.is_empty() {
            unsettled_keys.insert(key.clone());
        }
        t.case(RULE_ALL_FINAL, &name, &p);

        // Journal against simulator, once per key, for final records.
        if let Some(j) = j.filter(|j| j.is_final()) {
            let mut p = Vec::new();
            let expect = match (j.status.as_str(), trade) {
                ("Paid", Some(s)) => s.is_success() && s.paid,
                ("Reversed" | "Refunded", Some(s)) => s.is_closed() && s.paid,
                ("Closed" | "Failed", None) => true,
                ("Closed" | "Failed", Some(s)) => s.is_closed() && !s.paid,
                _ => false,
            };
            if !expect {
                p.push(format!(
                    "journal {} but simulator {}",
                    j.status,
                    trade.map_or("has no trade".to_owned(), SimTrade::describe)
                ));
            }
            if let Some(s) = trade {
                if same_currency_pair(&j.currency, s.currency.as_deref()) {
                    if let (Some(jp), true) = (j.paid_minor, s.paid) {
                        if Some(jp) != s.amount_minor {
                            p.push(format!("journal paid {jp}, simulator {:?}", s.amount_minor));
                        }
                    }
                    if j.kept_minor() != s.kept_minor() {
                        p.push(format!(
                            "journal keeps {}, simulator {}",
                            j.kept_minor(),
                            s.kept_minor()
                        ));
                    }
                } else {
                    amounts_not_compared = amounts_not_compared.saturating_add(1);
                }
            } else if j.kept_minor() > 0 {
                p.push(format!(
                    "journal keeps {}, the simulator has no trade",
                    j.kept_minor()
                ));
            }
            t.case(RULE_JOURNAL_MATCHES_SIMULATOR, &name, &p);
        }

        // Refunded totals, once per key.
        let told_refunded = key_orders
            .iter()
            .map(|o| o.refunded_told_minor())
            .max()
            .unwrap_or(0);
        let sim_refunded = trade.map_or(0, SimTrade::refunds_done_minor);
        if three_way || told_refunded > 0 || sim_refunded > 0 {
            let mut p = Vec::new();
            if let Some(j) = j {
                if j.refunded_minor != sim_refunded {
                    p.push(format!(
                        "journal refunded {}, simulator {sim_refunded}",
                        j.refunded_minor
                    ));
                }
                if j.refunded_minor < told_refunded {
                    p.push(format!(
                        "journal refunded {}, told {told_refunded}",
                        j.refunded_minor
                    ));
                }
            } else if three_way && told_refunded > 0 {
                p.push(format!("told {told_refunded} refunded, not in the journal"));
            }
            if sim_refunded < told_refunded {
                p.push(format!(
                    "simulator refunded {sim_refunded}, told {told_refunded}"
                ));
            }
            t.case(RULE_REFUND_TOTALS_AGREE, &name, &p);
        }

        // Journal totals.
        if let Some(j) = j {
            let tot = totals.entry(j.currency.clone()).or_default();
            if j.was_paid() {
                let paid = j.paid_minor.unwrap_or(0);
                tot.paid.journal = Some(sum(tot.paid.journal.unwrap_or(0), paid));
                if j.status == "Reversed" {
                    tot.reversed.journal = Some(sum(tot.reversed.journal.unwrap_or(0), paid));
                }
            }
            tot.refunded.journal = Some(sum(tot.refunded.journal.unwrap_or(0), j.refunded_minor));
            tot.kept.journal = Some(sum(tot.kept.journal.unwrap_or(0), j.kept_minor()));
        }
    }

    // Orphans, unsettled trades of no order, and the simulator's totals.
    for (i, s) in sim_trades.iter().enumerate() {
        let name = format!("sim:{}/{}", s.partner, s.partner_trans_id);
        let is_mapped = mapped.get(i).copied().unwrap_or(false);
        let orphan = if is_mapped {
            Vec::new()
        } else {
            vec![format!(
                "no order{} explains trade {}",
                if three_way { " or journal record" } else { "" },
                s.describe()
            )]
        };
        t.case(RULE_NO_ORPHAN_TRADE, &name, &orphan);
        if !is_mapped {
            if let Some(why) = s.unsettled() {
                t.case(RULE_ALL_FINAL, &name, &[format!("simulator: {why}")]);
            }
        }
        let currency = s.currency.clone().unwrap_or_default();
        if s.amount_minor.is_some() {
            let tot = totals.entry(currency).or_default();
            tot.paid.simulator = sum(tot.paid.simulator, s.paid_minor());
            tot.refunded.simulator = sum(tot.refunded.simulator, s.refunds_done_minor());
            tot.reversed.simulator = sum(tot.reversed.simulator, s.cancel_refunded_minor);
            tot.kept.simulator = sum(tot.kept.simulator, s.kept_minor());
        }
    }

    // The switch's /pending list: anything on it not already counted unsettled fails too.
    let mut pending_total = 0u64;
    if let Some(list) = pending {
        pending_total = list.total;
        let mut listed = 0u64;
        for item in &list.items {
            listed = listed.saturating_add(1);
            let key = (item.caller.clone(), item.partner_trans_id.clone());
            if unsettled_keys.contains(&key) {
                continue;
            }
            let known = if keys.contains_key(&key) {
                ""
            } else {
                " (not one of the orders)"
            };
            let reason = item
                .reason
                .as_deref()
                .map(|r| format!(", exception: {r}"))
                .unwrap_or_default();
            t.case(
                RULE_ALL_FINAL,
                &format!("pending:{}/{}", item.caller, item.partner_trans_id),
                &[format!(
                    "listed in /pending, status {}{reason}{known}",
                    item.status
                )],
            );
        }
        if list.total > listed {
            t.case(
                RULE_ALL_FINAL,
                "pending:*",
                &[format!(
                    "{} more transactions in /pending than listed",
                    list.total - listed
                )],
            );
        }
    }

    // Totals of the told side: kept = paid - refunded - reversed.
    for tot in totals.values_mut() {
        tot.kept.told = tot
            .paid
            .told
            .saturating_sub(tot.refunded.told)
            .saturating_sub(tot.reversed.told);
        if three_way {
            for s in [
                &mut tot.paid,
                &mut tot.refunded,
                &mut tot.reversed,
                &mut tot.kept,
            ] {
                s.journal.get_or_insert(0);
            }
        }
    }
    totals.retain(|_, tot| *tot != CurrencyTotals::default() || three_way);

    if amounts_not_compared > 0 {
        notes.push(format!(
            "{amounts_not_compared} amount comparisons skipped: the simulator's settlement \
             currency differs from the order's"
        ));
    }
    if !three_way {
        notes.push(
            "two-way mode: no switch journal; the journal's rules were not checked".to_owned(),
        );
    }

    let rules: Vec<RuleResult> = RULES
        .iter()
        .map(|(rule, description)| {
            let checked = t.checked.get(rule).copied().unwrap_or(0);
            let failed = t.failed.get(rule).copied().unwrap_or(0);
            RuleResult {
                rule: (*rule).to_owned(),
                description: (*description).to_owned(),
                checked,
                failed,
                passed: failed == 0,
            }
        })
        .collect();
    let passed = rules.iter().all(|r| r.passed);
    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    CheckReport {
        passed,
        mode: if three_way {
            MODE_THREE_WAY
        } else {
            MODE_TWO_WAY
        }
        .to_owned(),
        settled_after_s,
        orders: count(orders.len()),
        order_keys: count(keys.len()),
        journal_txns: journal_found,
        sim_trades: count(sim_trades.len()),
        pending: pending_total,
        rules,
        discrepancies: t.discrepancies,
        discrepancies_total: t.total,
        totals,
        notes,
    }
}

fn same_currency_pair(journal: &str, sim: Option<&str>) -> bool {
    sim.is_none_or(|s| s == journal)
}

// ---------------------------------------------------------------------------------------------
// Fetching.

/// Why the check could not be run.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The switch's admin API could not be read.
    #[error("switch admin API: {0}")]
    Switch(String),
    /// The simulator's admin API could not be read.
    #[error("simulator admin API: {0}")]
    Simulator(String),
}

/// Percent-encodes a path segment: everything but letters, digits, `-`, `.`, `_` and `~`.
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `GET path` on the switch's admin API, retried while it answers 503 or the transport fails.
async fn switch_get(http: &HttpClient, path: &str) -> Result<(u16, Value), CheckError> {
    let mut last = String::new();
    for attempt in 1..=ADMIN_ATTEMPTS_MAX {
        match http.get_json(path).await {
            Ok((503, _)) => last = "503 busy".to_owned(),
            Ok(answer) => return Ok(answer),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(
            20u64.saturating_mul(u64::from(attempt)),
        ))
        .await;
    }
    Err(CheckError::Switch(format!(
        "GET {path}: {ADMIN_ATTEMPTS_MAX} attempts, last: {last}"
    )))
}

async fn fetch_pending(http: &HttpClient) -> Result<PendingList, CheckError> {
    let path = format!("/pending?limit={PENDING_LIST_LIMIT}");
    match switch_get(http, &path).await? {
        (200, v) => PendingList::from_json(&v)
            .ok_or_else(|| CheckError::Switch(format!("GET {path}: no items list"))),
        (status, v) => Err(CheckError::Switch(format!(
            "GET {path}: status {status}: {v}"
        ))),
    }
}

/// The journal records of `keys` (absent ones are left out), `JOURNAL_FETCH_CONCURRENCY` at
/// once.
async fn fetch_journal(
    http: Arc<HttpClient>,
    keys: Vec<(String, String)>,
) -> Result<HashMap<(String, String), JournalTxn>, CheckError> {
    let keys = Arc::new(keys);
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..JOURNAL_FETCH_CONCURRENCY {
        let (http, keys, next) = (Arc::clone(&http), Arc::clone(&keys), Arc::clone(&next));
        workers.spawn(async move {
            let mut found = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((caller, ptid)) = keys.get(i) else {
                    return Ok::<_, CheckError>(found);
                };
                let path = format!("/txns/{}/{}", encode_segment(caller), encode_segment(ptid));
                match switch_get(&http, &path).await? {
                    (200, v) => {
                        let txn = JournalTxn::from_json(&v).ok_or_else(|| {
                            CheckError::Switch(format!("GET {path}: unreadable record"))
                        })?;
                        found.push(((caller.clone(), ptid.clone()), txn));
                    }
                    (404, _) => {}
                    (status, v) => {
                        return Err(CheckError::Switch(format!(
                            "GET {path}: status {status}: {v}"
                        )))
                    }
                }
            }
        });
    }
    let mut all = HashMap::with_capacity(keys.len());
    while let Some(done) = workers.join_next().await {
        let found = done.map_err(|e| CheckError::Switch(format!("a fetch task failed: {e}")))??;
        all.extend(found);
    }
    Ok(all)
}

async fn fetch_sim_trades(
    sim: &HttpClient,
    partners: &BTreeSet<String>,
) -> Result<Vec<SimTrade>, CheckError> {
    let mut trades = Vec::new();
    for partner in partners {
        let listed = sim
            .get_all_trades(Some(&encode_segment(partner)))
            .await
            .map_err(|e| CheckError::Simulator(e.to_string()))?;
        for v in &listed {
            let trade = SimTrade::from_json(v)
                .ok_or_else(|| CheckError::Simulator(format!("an unreadable trade: {v}")))?;
            trades.push(trade);
        }
    }
    Ok(trades)
}

/// Runs the check after a load run.
///
/// Three-way (`switch_admin_api` is the switch's admin API base URL, `http://127.0.0.1:9091`):
/// polls `/pending` until it is empty, for at most `settle_timeout` (if it never empties the
/// check still runs, and the pending ones are failures); reads each order's journal record
/// (`GET /txns/{caller}/{partner_trans_id}`, a few at once); lists the simulator's trades
/// under the upstream partners those records name; then [`compare`]s.
///
/// Two-way (`switch_admin_api` `None`: the client sent straight to the simulator): polls the
/// simulator's trades under the orders' callers until none waits for its buyer or has a refund
/// pending, for at most `settle_timeout`; then [`compare`]s.
///
/// `sim_base_url` is the simulator's base URL (its admin API is on the gateway's listeners);
/// `sim_trust_pem` the certificate to trust for `https`.
pub async fn fetch_and_check(
    orders: &[Order],
    switch_admin_api: Option<&str>,
    sim_base_url: &str,
    sim_trust_pem: &[u8],
    settle_timeout: Duration,
) -> Result<CheckReport, CheckError> {
    let sim = HttpClient::new(sim_base_url, Some(sim_trust_pem))
        .map_err(|e| CheckError::Simulator(e.to_string()))?
        .with_timeout(ADMIN_REQUEST_TIMEOUT);
    let started = tokio::time::Instant::now();
    let deadline = started + settle_timeout;
    let keys: BTreeSet<(String, String)> = orders
        .iter()
        .map(|o| (o.caller.clone(), o.partner_trans_id.clone()))
        .collect();

    let Some(admin_url) = switch_admin_api else {
        let partners: BTreeSet<String> = orders.iter().map(|o| o.caller.clone()).collect();
        let (trades, settled) = loop {
            let trades = fetch_sim_trades(&sim, &partners).await?;
            if trades.iter().all(|t| t.unsettled().is_none()) {
                break (trades, Some(started.elapsed().as_secs_f64()));
            }
            if tokio::time::Instant::now() >= deadline {
                break (trades, None);
            }
            tokio::time::sleep(SIM_SETTLE_POLL_INTERVAL).await;
        };
        return Ok(compare(orders, None, &trades, None, settled));
    };

    let switch = Arc::new(
        HttpClient::new(admin_url, None)
            .map_err(|e| CheckError::Switch(e.to_string()))?
            .with_timeout(ADMIN_REQUEST_TIMEOUT),
    );
    let (pending, settled) = loop {
        let pending = fetch_pending(&switch).await?;
        if pending.total == 0 {
            break (pending, Some(started.elapsed().as_secs_f64()));
        }
        if tokio::time::Instant::now() >= deadline {
            break (pending, None);
        }
        tokio::time::sleep(SETTLE_POLL_INTERVAL).await;
    };
    let journal = fetch_journal(Arc::clone(&switch), keys.into_iter().collect()).await?;
    let partners: BTreeSet<String> = journal
        .values()
        .map(|j| j.upstream_partner.clone())
        .filter(|p| !p.is_empty())
        .collect();
    let trades = fetch_sim_trades(&sim, &partners).await?;
    Ok(compare(
        orders,
        Some(&journal),
        &trades,
        Some(&pending),
        settled,
    ))
}
