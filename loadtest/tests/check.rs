//! The three-way check: pure tests of [`compare`] (a consistent set passes; each planted
//! discrepancy is caught by the right rule), the parsers of the admin APIs' JSON, and one
//! end-to-end run over real sockets — a simulator and a switch in-process on loopback, real
//! orders through the switch, [`fetch_and_check`] — with discrepancies planted for real.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use alipay::{Charset, FormBuilder, SignType, Signer};
use alipay_sim::{GatewayClient, SimOptions, Simulator};
use loadtest::check::{
    compare, fetch_and_check, CheckReport, JournalRefund, JournalTxn, PendingList, PendingTxn,
    SimRefund, SimTrade, RULE_ALL_FINAL, RULE_CANCEL_SUCCESS_KEPT, RULE_FAIL_NOT_CHARGED,
    RULE_JOURNAL_MATCHES_SIMULATOR, RULE_NO_DOUBLE_CHARGE, RULE_NO_ORPHAN_TRADE,
    RULE_PAY_SUCCESS_KEPT, RULE_REFUND_SUCCESS_KEPT, RULE_REFUND_TOTALS_AGREE,
};
use loadtest::told::{Answer, Order, RefundTold};
use serde_json::json;

const M1: &str = "2088000000000001";
const ACQUIRER: &str = "2088101122136241";

// ---------------------------------------------------------------------------------------------
// Builders.

fn ok() -> Answer {
    Answer::Success { trade_status: None }
}

fn fail(code: &str) -> Answer {
    Answer::Fail {
        error: code.to_owned(),
    }
}

fn unknown() -> Answer {
    Answer::Unknown {
        error: "SYSTEM_BUSY".to_owned(),
    }
}

fn order(ptid: &str, amount: u64, pay: Answer) -> Order {
    Order {
        caller: M1.to_owned(),
        merchant: M1.to_owned(),
        partner_trans_id: ptid.to_owned(),
        amount_minor: amount,
        currency: "USD".to_owned(),
        buyer_code: "286648812345678901".to_owned(),
        pay,
        queries: Vec::new(),
        cancels: Vec::new(),
        refunds: Vec::new(),
    }
}

fn refund_told(id: &str, amount: u64, answer: Answer) -> RefundTold {
    RefundTold {
        partner_refund_id: id.to_owned(),
        amount_minor: amount,
        answer,
    }
}

fn up(ptid: &str) -> String {
    format!("t1P{ptid}")
}

fn up_refund(id: &str) -> String {
    format!("t1R{id}")
}

fn jtxn(ptid: &str, amount: u64, status: &str, paid: bool) -> JournalTxn {
    JournalTxn {
        caller: M1.to_owned(),
        partner_trans_id: ptid.to_owned(),
        status: status.to_owned(),
        upstream_partner: ACQUIRER.to_owned(),
        upstream_trans_id: up(ptid),
        amount_minor: amount,
        currency: "USD".to_owned(),
        paid_minor: paid.then_some(amount),
        ..JournalTxn::default()
    }
}

fn jrefund(id: &str, amount: u64, status: &str) -> JournalRefund {
    JournalRefund {
        partner_refund_id: id.to_owned(),
        upstream_refund_id: up_refund(id),
        amount_minor: amount,
        status: status.to_owned(),
    }
}

fn strade(partner: &str, id: &str, amount: u64, status: &str, paid: bool) -> SimTrade {
    SimTrade {
        partner: partner.to_owned(),
        partner_trans_id: id.to_owned(),
        status: status.to_owned(),
        amount_minor: Some(amount),
        currency: Some("USD".to_owned()),
        paid,
        ..SimTrade::default()
    }
}

fn srefund(id: &str, amount: u64) -> SimRefund {
    SimRefund {
        partner_refund_id: id.to_owned(),
        amount_minor: amount,
        completed: true,
    }
}

/// A consistent world: every kind of order, and the journal and simulator that go with it.
struct World {
    orders: Vec<Order>,
    journal: HashMap<(String, String), JournalTxn>,
    sim: Vec<SimTrade>,
    pending: PendingList,
}

impl World {
    fn consistent() -> World {
        let mut orders = Vec::new();
        let mut journal = Vec::new();
        let mut sim = Vec::new();

        // Paid.
        orders.push(order("A", 1000, ok()));
        journal.push(jtxn("A", 1000, "Paid", true));
        sim.push(strade(ACQUIRER, &up("A"), 1000, "TRADE_SUCCESS", true));

        // Paid, then partly refunded (a second refund was refused).
        let mut o = order("B", 2000, ok());
        o.refunds.push(refund_told("B-R1", 500, ok()));
        o.refunds
            .push(refund_told("B-R2", 5000, fail("REFUND_AMT_RESTRICTION")));
        orders.push(o);
        let mut j = jtxn("B", 2000, "Paid", true);
        j.refunded_minor = 500;
        j.refunds.push(jrefund("B-R1", 500, "Succeeded"));
        journal.push(j);
        let mut s = strade(ACQUIRER, &up("B"), 2000, "TRADE_SUCCESS", true);
        s.refunds.push(srefund(&up_refund("B-R1"), 500));
        sim.push(s);

        // Paid, then cancelled: reversed.
        let mut o = order("C", 700, ok());
        o.cancels.push(ok());
        orders.push(o);
        let mut j = jtxn("C", 700, "Reversed", true);
        j.cancel_action = Some("Refund".to_owned());
        journal.push(j);
        let mut s = strade(ACQUIRER, &up("C"), 700, "TRADE_CLOSED", true);
        s.cancel_effect = Some("refunded".to_owned());
        s.cancel_refunded_minor = 700;
        sim.push(s);

        // Told FAIL: closed unpaid.
        orders.push(order("D", 300, fail("BUYER_BALANCE_NOT_ENOUGH")));
        journal.push(jtxn("D", 300, "Failed", false));
        sim.push(strade(ACQUIRER, &up("D"), 300, "TRADE_CLOSED", false));

        // Told UNKNOWN, resolved paid.
        orders.push(order("E", 400, unknown()));
        journal.push(jtxn("E", 400, "Paid", true));
        sim.push(strade(ACQUIRER, &up("E"), 400, "TRADE_SUCCESS", true));

        // No answer, never reached the switch.
        orders.push(order(
            "F",
            500,
            Answer::NoAnswer {
                why: "timeout".to_owned(),
            },
        ));

        // Told UNKNOWN, resolved closed by the switch's cancel.
        orders.push(order("G", 600, unknown()));
        let mut j = jtxn("G", 600, "Closed", false);
        j.cancel_action = Some("Close".to_owned());
        journal.push(j);
        sim.push(strade(ACQUIRER, &up("G"), 600, "TRADE_CLOSED", false));

        // Paid, then refunded in full by two refunds.
        let mut o = order("H", 1000, ok());
        o.refunds.push(refund_told("H-R1", 400, ok()));
        o.refunds.push(refund_told("H-R2", 600, ok()));
        orders.push(o);
        let mut j = jtxn("H", 1000, "Refunded", true);
        j.refunded_minor = 1000;
        j.refunds.push(jrefund("H-R1", 400, "Succeeded"));
        j.refunds.push(jrefund("H-R2", 600, "Succeeded"));
        journal.push(j);
        let mut s = strade(ACQUIRER, &up("H"), 1000, "TRADE_CLOSED", true);
        s.refunds.push(srefund(&up_refund("H-R1"), 400));
        s.refunds.push(srefund(&up_refund("H-R2"), 600));
        sim.push(s);

        World {
            orders,
            journal: journal.into_iter().map(|j| (j.key(), j)).collect(),
            sim,
            pending: PendingList::default(),
        }
    }

    fn check(&self) -> CheckReport {
        compare(
            &self.orders,
            Some(&self.journal),
            &self.sim,
            Some(&self.pending),
            Some(0.5),
        )
    }

    fn j(&mut self, ptid: &str) -> &mut JournalTxn {
        self.journal
            .get_mut(&(M1.to_owned(), ptid.to_owned()))
            .unwrap()
    }

    fn s(&mut self, ptid: &str) -> &mut SimTrade {
        let id = up(ptid);
        self.sim
            .iter_mut()
            .find(|s| s.partner_trans_id == id)
            .unwrap()
    }
}

fn failed_rules(r: &CheckReport) -> BTreeSet<String> {
    r.rules
        .iter()
        .filter(|r| !r.passed)
        .map(|r| r.rule.clone())
        .collect()
}

fn set(rules: &[&str]) -> BTreeSet<String> {
    rules.iter().map(|r| (*r).to_owned()).collect()
}

/// Asserts the report failed exactly `rules`, each discrepancy of one of them naming `order`.
fn assert_caught(r: &CheckReport, rules: &[&str], order: &str) {
    assert!(!r.passed, "{:#?}", r.summary_lines());
    assert_eq!(failed_rules(r), set(rules), "{:#?}", r.summary_lines());
    assert!(
        r.discrepancies.iter().all(|d| d.order.contains(order)),
        "{:#?}",
        r.discrepancies
    );
    assert_eq!(
        r.discrepancies_total,
        u64::try_from(r.discrepancies.len()).unwrap()
    );
}

// ---------------------------------------------------------------------------------------------
// Pure tests.

#[test]
fn a_consistent_run_passes_with_every_rule_exercised() {
    let w = World::consistent();
    let r = w.check();
    assert!(r.passed, "{:#?}", r.summary_lines());
    assert_eq!(r.mode, "three-way");
    assert_eq!(
        (r.orders, r.order_keys, r.journal_txns, r.sim_trades),
        (8, 8, 7, 7)
    );
    assert!(r.discrepancies.is_empty());
    assert_eq!(r.rules.len(), 9);
    for rule in &r.rules {
        assert!(rule.checked > 0, "rule {} checked nothing", rule.rule);
        assert!(!rule.description.is_empty());
    }
    // pays told SUCCESS: A, B, C, H.
    assert_eq!(r.rule(RULE_PAY_SUCCESS_KEPT).unwrap().checked, 4);
    // refunds told SUCCESS: B-R1, H-R1, H-R2.
    assert_eq!(r.rule(RULE_REFUND_SUCCESS_KEPT).unwrap().checked, 3);
    // pay D and refund B-R2 told FAIL.
    assert_eq!(r.rule(RULE_FAIL_NOT_CHARGED).unwrap().checked, 2);
    assert_eq!(r.rule(RULE_NO_ORPHAN_TRADE).unwrap().checked, 7);

    let usd = &r.totals["USD"];
    // Told: A + B + C + H paid; B-R1 + H-R1 + H-R2 refunded; C reversed.
    assert_eq!(usd.paid.told, 1000 + 2000 + 700 + 1000);
    assert_eq!(usd.refunded.told, 500 + 1000);
    assert_eq!(usd.reversed.told, 700);
    // The journal and the simulator also have E, paid after an unknown answer.
    assert_eq!(usd.paid.journal, Some(1000 + 2000 + 700 + 400 + 1000));
    assert_eq!(usd.paid.simulator, 1000 + 2000 + 700 + 400 + 1000);
    assert_eq!(usd.refunded.journal, Some(1500));
    assert_eq!(usd.refunded.simulator, 1500);
    assert_eq!(usd.reversed.simulator, 700);
    assert_eq!(usd.kept.journal, Some(1000 + 1500 + 400));
    assert_eq!(usd.kept.simulator, 1000 + 1500 + 400);

    let lines = r.summary_lines();
    assert!(lines[0].contains("PASSED"), "{lines:#?}");
    assert!(lines.iter().any(|l| l.contains(RULE_NO_DOUBLE_CHARGE)));
    assert!(lines.iter().any(|l| l.contains("USD minor units")));

    // The report round-trips through JSON (it is part of the run report).
    let back: CheckReport = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
    assert_eq!(back.rules, r.rules);
    assert_eq!(back.totals, r.totals);
}

#[test]
fn a_double_charge_is_caught() {
    // The history of A names a second upstream id, and the simulator has a paid trade under it.
    let mut w = World::consistent();
    w.j("A").other_upstream_ids.push("t2PA".to_owned());
    w.sim
        .push(strade(ACQUIRER, "t2PA", 1000, "TRADE_SUCCESS", true));
    let r = w.check();
    assert_caught(&r, &[RULE_NO_DOUBLE_CHARGE], "/A");
    assert!(r.discrepancies[0].detail.contains("2 simulator trades"));

    // Two-way: the listing holds the same (partner, order) twice; once is fine.
    let orders = vec![order("A", 1000, ok())];
    let a = strade(M1, "A", 1000, "TRADE_SUCCESS", true);
    let r = compare(&orders, None, &[a.clone(), a.clone()], None, Some(0.0));
    assert_caught(&r, &[RULE_NO_DOUBLE_CHARGE], "/A");
    let r = compare(&orders, None, &[a], None, Some(0.0));
    assert!(r.passed, "{:#?}", r.summary_lines());
    assert_eq!(r.mode, "two-way");
    assert_eq!(r.rule(RULE_JOURNAL_MATCHES_SIMULATOR).unwrap().checked, 0);
}

#[test]
fn an_orphan_trade_is_caught() {
    let mut w = World::consistent();
    w.sim
        .push(strade(ACQUIRER, "t1Pdeadbeef", 900, "TRADE_SUCCESS", true));
    let r = w.check();
    assert_caught(
        &r,
        &[RULE_NO_ORPHAN_TRADE],
        "sim:2088101122136241/t1Pdeadbeef",
    );
    assert!(r.discrepancies[0].detail.contains("paid 900"));
    // The orphan's money shows in the simulator's column only.
    assert_eq!(r.totals["USD"].paid.simulator, 5100 + 900);
    assert_eq!(r.totals["USD"].paid.journal, Some(5100));

    // An order missing from the journal whose trade exists (INV-3: sent without a record).
    let mut w = World::consistent();
    w.journal.remove(&(M1.to_owned(), "E".to_owned()));
    let r = w.check();
    assert_caught(&r, &[RULE_NO_ORPHAN_TRADE], "E");
}

#[test]
fn a_pay_told_success_but_closed_at_the_simulator_is_caught() {
    let mut w = World::consistent();
    let s = w.s("A");
    s.status = "TRADE_CLOSED".to_owned();
    s.cancel_effect = Some("refunded".to_owned());
    s.cancel_refunded_minor = 1000;
    let r = w.check();
    // The client never asked for a cancel: a lost acknowledgement, and the journal disagrees.
    assert_caught(
        &r,
        &[RULE_PAY_SUCCESS_KEPT, RULE_JOURNAL_MATCHES_SIMULATOR],
        "/A",
    );
    let d = r
        .discrepancies
        .iter()
        .find(|d| d.rule == RULE_PAY_SUCCESS_KEPT)
        .unwrap();
    assert!(d.detail.contains("simulator status TRADE_CLOSED"), "{d:?}");

    // The same with the journal reversed too: still a lost acknowledgement.
    let mut w2 = World::consistent();
    *w2.s("A") = w.s("A").clone();
    w2.j("A").status = "Reversed".to_owned();
    let r = w2.check();
    assert_caught(&r, &[RULE_PAY_SUCCESS_KEPT], "/A");
    assert!(r.discrepancies[0]
        .detail
        .contains("journal status Reversed"));

    // Never paid at the simulator at all.
    let mut w = World::consistent();
    w.s("A").paid = false;
    w.s("A").status = "TRADE_CLOSED".to_owned();
    let r = w.check();
    assert!(failed_rules(&r).contains(RULE_PAY_SUCCESS_KEPT));
}

#[test]
fn a_refund_told_success_missing_at_the_simulator_is_caught() {
    let mut w = World::consistent();
    w.s("B").refunds.clear();
    let r = w.check();
    assert_caught(
        &r,
        &[
            RULE_REFUND_SUCCESS_KEPT,
            RULE_JOURNAL_MATCHES_SIMULATOR,
            RULE_REFUND_TOTALS_AGREE,
        ],
        "/B",
    );
    let d = r
        .discrepancies
        .iter()
        .find(|d| d.rule == RULE_REFUND_SUCCESS_KEPT)
        .unwrap();
    assert_eq!(d.order, format!("{M1}/B refund B-R1"));
    assert!(
        d.detail.contains("no refund t1RB-R1 at the simulator"),
        "{d:?}"
    );

    // A refund the client was told succeeded that neither the journal nor the simulator has.
    let mut w = World::consistent();
    w.orders[0].refunds.push(refund_told("A-R9", 100, ok()));
    let r = w.check();
    assert_caught(
        &r,
        &[RULE_REFUND_SUCCESS_KEPT, RULE_REFUND_TOTALS_AGREE],
        "/A",
    );
}

#[test]
fn a_pending_journal_txn_is_caught() {
    let mut w = World::consistent();
    w.j("E").status = "Unknown".to_owned();
    w.pending = PendingList {
        total: 1,
        items: vec![PendingTxn {
            caller: M1.to_owned(),
            partner_trans_id: "E".to_owned(),
            status: "Unknown".to_owned(),
            reason: None,
        }],
    };
    let r = w.check();
    assert_caught(&r, &[RULE_ALL_FINAL], "/E");
    // Counted once: the journal record and the pending list name the same transaction.
    assert_eq!(r.rule(RULE_ALL_FINAL).unwrap().failed, 1);
    assert_eq!(r.pending, 1);

    // Final but with a refund in flight, and a cancel without a definite answer.
    let mut w = World::consistent();
    w.j("B").refunds.push(jrefund("B-R3", 100, "Unknown"));
    w.j("G").cancel_in_flight = true;
    let r = w.check();
    assert_eq!(failed_rules(&r), set(&[RULE_ALL_FINAL]));
    assert_eq!(r.rule(RULE_ALL_FINAL).unwrap().failed, 2);

    // Listed in /pending only (a transaction of no order, or one read before it settled).
    let mut w = World::consistent();
    w.pending = PendingList {
        total: 3,
        items: vec![PendingTxn {
            caller: M1.to_owned(),
            partner_trans_id: "ZZ".to_owned(),
            status: "Paid".to_owned(),
            reason: Some("notification undelivered".to_owned()),
        }],
    };
    let r = w.check();
    assert_caught(&r, &[RULE_ALL_FINAL], "pending:");
    assert_eq!(r.rule(RULE_ALL_FINAL).unwrap().failed, 2);
    assert!(r.discrepancies[0].detail.contains("not one of the orders"));
    assert!(r.discrepancies[1].detail.contains("2 more"));

    // A simulator trade still waiting for its buyer.
    let mut w = World::consistent();
    w.s("G").status = "WAIT_BUYER_PAY".to_owned();
    let r = w.check();
    assert!(failed_rules(&r).contains(RULE_ALL_FINAL));
}

#[test]
fn a_refunded_amount_mismatch_is_caught() {
    // The simulator refunded more than the journal holds (and than the client was told).
    let mut w = World::consistent();
    w.s("B").refunds[0].amount_minor = 800;
    let r = w.check();
    assert_caught(
        &r,
        &[
            RULE_REFUND_SUCCESS_KEPT,
            RULE_JOURNAL_MATCHES_SIMULATOR,
            RULE_REFUND_TOTALS_AGREE,
        ],
        "/B",
    );
    let d = r
        .discrepancies
        .iter()
        .find(|d| d.rule == RULE_REFUND_TOTALS_AGREE)
        .unwrap();
    assert!(
        d.detail.contains("journal refunded 500, simulator 800"),
        "{d:?}"
    );

    // Only the journal's total is off (its refund records agree with the simulator).
    let mut w = World::consistent();
    w.j("B").refunded_minor = 300;
    let r = w.check();
    assert_caught(
        &r,
        &[RULE_JOURNAL_MATCHES_SIMULATOR, RULE_REFUND_TOTALS_AGREE],
        "/B",
    );
    let d = r
        .discrepancies
        .iter()
        .find(|d| d.rule == RULE_REFUND_TOTALS_AGREE)
        .unwrap();
    assert!(d.detail.contains("told 500"), "{d:?}");
}

#[test]
fn a_pay_told_fail_but_charged_is_caught() {
    let mut w = World::consistent();
    let s = w.s("D");
    s.paid = true;
    s.status = "TRADE_SUCCESS".to_owned();
    let r = w.check();
    assert_caught(
        &r,
        &[RULE_FAIL_NOT_CHARGED, RULE_JOURNAL_MATCHES_SIMULATOR],
        "/D",
    );

    // A refund told FAIL that was applied anyway.
    let mut w = World::consistent();
    w.j("B").refunds.push(jrefund("B-R2", 5000, "Succeeded"));
    let r = w.check();
    assert!(failed_rules(&r).contains(RULE_FAIL_NOT_CHARGED));
}

#[test]
fn a_cancel_told_success_but_paid_is_caught() {
    let mut w = World::consistent();
    w.orders[0].cancels.push(ok());
    let r = w.check();
    assert_caught(&r, &[RULE_CANCEL_SUCCESS_KEPT], "/A");
    assert!(r.discrepancies[0].detail.contains("journal status Paid"));
}

#[test]
fn the_views_parse_the_admin_apis_json() {
    let answer = json!({
        "state": {
            "txn": { "merchant": M1, "partner_trans_id": "ORD-1" },
            "status": "Paid",
            "upstream_partner": ACQUIRER,
            "upstream_trans_id": "t1Pabc",
            "amount": { "minor": 2000, "currency": "USD" },
            "paid": { "minor": 2000, "currency": "USD" },
            "refunded_minor": 500,
            "reserved_minor": 0,
            "refunds": {
                "R1": { "upstream_refund_id": "t1Rxyz", "amount": { "minor": 500, "currency": "USD" },
                        "status": "Succeeded" }
            },
            "cancel": { "attempts": 1, "last_result": "Unknown", "action": null, "retry": false },
            "notify": { "attempts": 0, "delivered": false, "due": null, "queued": [] },
            "exception": { "reason": "gave up", "at_ms": 1 }
        },
        "events": [
            { "seq": 1, "kind": "PayReceived", "body": { "upstream_trans_id": "t1Pabc" } },
            { "seq": 2, "kind": "Odd", "body": { "nested": { "upstream_trans_id": "t9Pzzz" } } }
        ]
    });
    let j = JournalTxn::from_json(&answer).unwrap();
    assert_eq!(j.key(), (M1.to_owned(), "ORD-1".to_owned()));
    assert_eq!(j.status, "Paid");
    assert_eq!(
        (j.upstream_partner.as_str(), j.upstream_trans_id.as_str()),
        (ACQUIRER, "t1Pabc")
    );
    assert_eq!(j.other_upstream_ids, vec!["t9Pzzz".to_owned()]);
    assert_eq!(
        (j.amount_minor, j.paid_minor, j.refunded_minor),
        (2000, Some(2000), 500)
    );
    assert_eq!(
        j.refunds,
        vec![JournalRefund {
            partner_refund_id: "R1".to_owned(),
            upstream_refund_id: "t1Rxyz".to_owned(),
            amount_minor: 500,
            status: "Succeeded".to_owned(),
        }]
    );
    assert!(j.cancel_in_flight);
    assert_eq!(j.exception.as_deref(), Some("gave up"));
    assert_eq!(j.kept_minor(), 1500);
    let why = j.unsettled().unwrap();
    assert!(why.contains("cancel") && why.contains("gave up"), "{why}");
    assert!(JournalTxn::from_json(&json!({"state": {"status": "Paid"}})).is_none());

    let trade = json!({
        "partner": ACQUIRER,
        "partner_trans_id": "t1Pabc",
        "status": "TRADE_CLOSED",
        "paid_at": "2026-03-02 10:00:01",
        "close_reason": { "reason": "fully_refunded" },
        "amount": { "value": "20.00", "minor": 2000, "currency": "USD" },
        "refunded": { "value": "20.00", "minor": 2000, "currency": "USD" },
        "refunds": [
            { "partner_refund_id": "t1Rxyz", "amount": { "value": "15.00", "minor": 1500, "currency": "USD" },
              "completed_at": "2026-03-02 10:00:02" },
            { "partner_refund_id": "t1Rpending", "amount": { "value": "5.00", "minor": 500, "currency": "USD" },
              "completed_at": null }
        ],
        "cancel": null
    });
    let s = SimTrade::from_json(&trade).unwrap();
    assert!(s.paid && s.is_closed());
    assert_eq!(
        (s.paid_minor(), s.refunds_done_minor(), s.kept_minor()),
        (2000, 1500, 500)
    );
    assert_eq!(s.close_reason.as_deref(), Some("fully_refunded"));
    assert!(s.unsettled().unwrap().contains("t1Rpending"));
    // A trade a cancel closed before any pay arrived: no amount, nothing paid.
    let s = SimTrade::from_json(&json!({
        "partner": ACQUIRER, "partner_trans_id": "x", "status": "TRADE_CLOSED",
        "paid_at": null, "amount": null, "refunds": [],
        "cancel": { "effect": "closed", "refunded": null }
    }))
    .unwrap();
    assert_eq!(
        (s.amount_minor, s.paid_minor(), s.kept_minor()),
        (None, 0, 0)
    );
    assert_eq!(s.cancel_effect.as_deref(), Some("closed"));

    let p = PendingList::from_json(&json!({
        "total": 4, "count": 1, "unreadable": 0,
        "items": [{ "merchant": M1, "partner_trans_id": "ORD-2", "status": "Paid",
                    "reason": "cancel has no definite answer" }]
    }))
    .unwrap();
    assert_eq!(p.total, 4);
    assert_eq!(
        p.items[0].reason.as_deref(),
        Some("cancel has no definite answer")
    );
}

// ---------------------------------------------------------------------------------------------
// End to end: a simulator and a switch in-process, over loopback.

fn keys_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/keys")
}

fn key(name: &str) -> String {
    std::fs::read_to_string(keys_dir().join(name)).unwrap()
}

/// A switch configuration against the simulator: the acquirer account, merchant M1 calling for
/// itself with MD5, a quick resolver.
fn switch_config(dir: &Path, sim_url: &str, sim_cert: &Path) -> String {
    let keys = keys_dir();
    let keys = keys.display();
    let data = dir.display();
    let cert = sim_cert.display();
    format!(
        r#"
[node]
id = "t1"

[listen]
http = "127.0.0.1:0"
admin = "127.0.0.1:0"
admin_api = "127.0.0.1:0"

[journal]
path = "{data}/journal"

[gateway]
request_timeout_ms = 10000
header_read_timeout_ms = 1000
rsa_private_key = "{keys}/switch_rsa_private.pem"

[resolver]
first_query_after_ms = 300
query_interval_ms = 300
query_window_ms = 20000
cancel_retry_ms = [300]
sweep_interval_ms = 1000

[[accounts]]
name = "acquirer"
partner = "{ACQUIRER}"
sign_type = "MD5"
key = "{keys}/md5_2088101122136241.key"
endpoints = [{{ name = "primary", url = "{sim_url}/gateway.do" }}]
request_timeout_ms = 5000
connect_timeout_ms = 1000
ca_cert = "{cert}"

[[merchants]]
id = "{M1}"
name = "Lucky Noodle Bar"
mode = "acquirer"
account = "acquirer"
secondary_merchant_id = "LNB0001"
mcc = "5812"
stores = [{{ id = "LNB-WFJ", name = "Wangfujing" }}]

[[callers]]
id = "{M1}"
kind = "merchant"
sign_type = "MD5"
key = "{keys}/caller_md5_2088000000000001.key"
"#
    )
}

fn params(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

/// POSTs `p` signed by `signer` and reads the answer as the load generator records it.
async fn send(client: &GatewayClient, signer: &Signer, p: &[(String, String)]) -> Answer {
    let mut b = FormBuilder::new(Charset::Utf8);
    for (n, v) in p {
        b.push(n, v);
    }
    let (query, body) = b.finish_post(signer).unwrap();
    let r = client.post_raw(&query, body).await.unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let mut scratch = String::new();
    let doc = alipay::read_response(&r.body, &mut scratch, 1 << 20).unwrap();
    if !doc.is_success {
        return Answer::Fail {
            error: doc.error.as_deref().unwrap_or("").to_owned(),
        };
    }
    let fields = doc.fields();
    let field = |n: &str| fields.get(n).map(|v| v.to_string());
    let error = field("detail_error_code")
        .or_else(|| field("error"))
        .unwrap_or_default();
    match field("result_code").as_deref() {
        Some("SUCCESS") => Answer::Success {
            trade_status: field("alipay_trans_status"),
        },
        Some("FAIL") => Answer::Fail { error },
        _ => Answer::Unknown { error },
    }
}

fn pay(ptid: &str, amount: &str, code: &str) -> Vec<(String, String)> {
    pay_as(M1, ptid, amount, code)
}

/// The extend_info an acquirer account's pay carries when sent straight to the simulator.
const EXTEND_INFO: &str = r#"{"secondary_merchant_id":"X1","secondary_merchant_name":"X","secondary_merchant_industry":"5812","store_id":"S1","store_name":"S","terminal_id":"T1"}"#;

/// A pay signed by `partner` for itself; straight at the simulator under the acquirer's
/// account, with the secondary merchant's extend_info.
fn pay_as(partner: &str, ptid: &str, amount: &str, code: &str) -> Vec<(String, String)> {
    let mut p = params(&[
        ("service", "alipay.acquire.overseas.spot.pay"),
        ("partner", partner),
        ("alipay_seller_id", partner),
        ("partner_trans_id", ptid),
        ("trans_name", "Noodles"),
        ("currency", "USD"),
        ("trans_amount", amount),
        ("buyer_identity_code", code),
        ("identity_code_type", "barcode"),
        ("trans_create_time", "20261127120000"),
        ("biz_product", "OVERSEAS_MBARCODE_PAY"),
    ]);
    if partner == ACQUIRER {
        p.push(("extend_info".to_owned(), EXTEND_INFO.to_owned()));
    }
    p
}

fn refund(ptid: &str, rid: &str, amount: &str) -> Vec<(String, String)> {
    refund_as(M1, ptid, rid, amount)
}

fn refund_as(partner: &str, ptid: &str, rid: &str, amount: &str) -> Vec<(String, String)> {
    params(&[
        ("service", "alipay.acquire.overseas.spot.refund"),
        ("partner", partner),
        ("partner_trans_id", ptid),
        ("partner_refund_id", rid),
        ("refund_amount", amount),
        ("currency", "USD"),
        ("is_sync", "Y"),
    ])
}

fn cancel(ptid: &str) -> Vec<(String, String)> {
    params(&[
        ("service", "alipay.acquire.cancel"),
        ("partner", M1),
        ("out_trade_no", ptid),
        ("timestamp", "1795000000000"),
    ])
}

const NORMAL: &str = "286648812345678901";
/// Pay answers UNKNOWN; the buyer confirms after `confirm_delay_s` (simulated).
const CONFIRMS_LATER: &str = "280001000000000000";
/// Pay FAIL (BUYER_BALANCE_NOT_ENOUGH).
const NO_BALANCE: &str = "280010000000000000";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn end_to_end_through_the_switch_passes_then_catches_what_is_planted() {
    tokio::time::timeout(Duration::from_secs(240), end_to_end())
        .await
        .expect("the end-to-end check took over 240 s");
}

async fn end_to_end() {
    // A simulator whose clock runs 20 times fast (the buyer of CONFIRMS_LATER confirms within
    // a second), and a switch in front of it.
    let mut o = SimOptions::for_tests().unwrap();
    o.time_scale = 20;
    let sim = Simulator::start(o).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("sim-cert.pem");
    std::fs::write(&cert, sim.cert_pem()).unwrap();
    let path = dir.path().join("switch.toml");
    std::fs::write(&path, switch_config(dir.path(), &sim.https_url(), &cert)).unwrap();
    let config = switch::config::Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let running = switch::app::start(config, std::future::pending())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let gateway = format!("http://{}", running.http.unwrap());
    let admin_api = format!("http://{}", running.admin_api.unwrap());
    let client = GatewayClient::new(&gateway, None)
        .unwrap()
        .with_timeout(Duration::from_secs(30));
    let m1 = Signer::md5(key("caller_md5_2088000000000001.key").trim()).unwrap();

    // Real orders, recorded as the load generator records them.
    let mut orders = Vec::new();
    let mut a = order(
        "E2E-A",
        1000,
        send(&client, &m1, &pay("E2E-A", "10.00", NORMAL)).await,
    );
    a.queries.push(ok());
    orders.push(a);

    let mut b = order(
        "E2E-B",
        2000,
        send(&client, &m1, &pay("E2E-B", "20.00", NORMAL)).await,
    );
    let r1 = send(&client, &m1, &refund("E2E-B", "E2E-B-R1", "5.00")).await;
    b.refunds.push(refund_told("E2E-B-R1", 500, r1));
    orders.push(b);

    let mut c = order(
        "E2E-C",
        700,
        send(&client, &m1, &pay("E2E-C", "7.00", NORMAL)).await,
    );
    c.cancels.push(send(&client, &m1, &cancel("E2E-C")).await);
    orders.push(c);

    let d = order(
        "E2E-D",
        300,
        send(&client, &m1, &pay("E2E-D", "3.00", NO_BALANCE)).await,
    );
    orders.push(d);

    let e = order(
        "E2E-E",
        400,
        send(&client, &m1, &pay("E2E-E", "4.00", CONFIRMS_LATER)).await,
    );
    orders.push(e);

    assert!(orders[0].pay.is_success(), "{:?}", orders[0].pay);
    assert!(orders[1].pay.is_success() && orders[1].refunds[0].answer.is_success());
    assert!(orders[2].pay.is_success() && orders[2].cancels[0].is_success());
    assert!(
        matches!(&orders[3].pay, Answer::Fail { error } if error == "BUYER_BALANCE_NOT_ENOUGH"),
        "{:?}",
        orders[3].pay
    );
    assert!(
        matches!(orders[4].pay, Answer::Unknown { .. }),
        "{:?}",
        orders[4].pay
    );

    let pem = sim.cert_pem().as_bytes().to_vec();
    let sim_url = sim.https_url();
    let settle = Duration::from_secs(60);

    // Everything agrees once the switch has resolved E (its /pending list empties).
    let r = fetch_and_check(&orders, Some(&admin_api), &sim_url, &pem, settle)
        .await
        .unwrap();
    assert!(r.passed, "{:#?}", r.summary_lines());
    assert_eq!(r.mode, "three-way");
    assert!(r.settled_after_s.is_some());
    assert_eq!(
        (r.orders, r.journal_txns, r.sim_trades, r.pending),
        (5, 5, 5, 0)
    );
    let usd = &r.totals["USD"];
    // Told: A, B, C paid; B-R1 refunded; C reversed. E was paid after the unknown answer.
    assert_eq!(usd.paid.told, 1000 + 2000 + 700);
    assert_eq!(usd.paid.journal, Some(1000 + 2000 + 700 + 400));
    assert_eq!(usd.paid.simulator, 1000 + 2000 + 700 + 400);
    assert_eq!(
        (usd.refunded.journal, usd.refunded.simulator),
        (Some(500), 500)
    );
    assert_eq!(
        (usd.reversed.journal, usd.reversed.simulator),
        (Some(700), 700)
    );
    assert_eq!(usd.kept.journal, Some(1000 + 1500 + 400));
    assert_eq!(usd.kept.simulator, 1000 + 1500 + 400);

    // Planted for real: a pay straight at the simulator under the acquirer's account, with an
    // id like the switch's — a charge no order and no journal record explains.
    let at_sim = GatewayClient::new(&sim_url, Some(&pem)).unwrap();
    let acquirer =
        Signer::from_key_text(SignType::Md5, key("md5_2088101122136241.key").trim()).unwrap();
    let orphan = pay_as(ACQUIRER, "t1Pfeedfacefeedfacefeedface0001", "9.00", NORMAL);
    let planted = send(&at_sim, &acquirer, &orphan).await;
    assert!(planted.is_success(), "{planted:?}");
    // And one order altered to claim a refund succeeded that never happened.
    let mut claimed = orders.clone();
    claimed[0].refunds.push(refund_told("E2E-A-R9", 100, ok()));

    let r = fetch_and_check(&claimed, Some(&admin_api), &sim_url, &pem, settle)
        .await
        .unwrap();
    assert!(!r.passed, "{:#?}", r.summary_lines());
    assert_eq!(
        failed_rules(&r),
        set(&[
            RULE_NO_ORPHAN_TRADE,
            RULE_REFUND_SUCCESS_KEPT,
            RULE_REFUND_TOTALS_AGREE
        ]),
        "{:#?}",
        r.summary_lines()
    );
    let orphan_d = r
        .discrepancies
        .iter()
        .find(|d| d.rule == RULE_NO_ORPHAN_TRADE)
        .unwrap();
    assert_eq!(
        orphan_d.order,
        format!("sim:{ACQUIRER}/t1Pfeedfacefeedfacefeedface0001")
    );
    let refund_d = r
        .discrepancies
        .iter()
        .find(|d| d.rule == RULE_REFUND_SUCCESS_KEPT)
        .unwrap();
    assert_eq!(refund_d.order, format!("{M1}/E2E-A refund E2E-A-R9"));
    assert!(
        refund_d.detail.contains("not in the journal"),
        "{refund_d:?}"
    );

    running.stop().await.unwrap();
    drop(sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_two_way_against_the_simulator_alone() {
    tokio::time::timeout(Duration::from_secs(120), two_way())
        .await
        .expect("the two-way check took over 120 s");
}

async fn two_way() {
    let sim = Simulator::start(SimOptions::for_tests().unwrap())
        .await
        .unwrap();
    let pem = sim.cert_pem().as_bytes().to_vec();
    let sim_url = sim.https_url();
    let client = GatewayClient::new(&sim_url, Some(&pem)).unwrap();
    let signer =
        Signer::from_key_text(SignType::Md5, key("md5_2088101122136241.key").trim()).unwrap();
    let direct = |ptid: &str, amount: u64, pay: Answer| Order {
        caller: ACQUIRER.to_owned(),
        merchant: ACQUIRER.to_owned(),
        ..order(ptid, amount, pay)
    };

    let mut orders = Vec::new();
    let a = send(&client, &signer, &pay_as(ACQUIRER, "TW-A", "10.00", NORMAL)).await;
    orders.push(direct("TW-A", 1000, a));
    let b = send(&client, &signer, &pay_as(ACQUIRER, "TW-B", "20.00", NORMAL)).await;
    let mut b = direct("TW-B", 2000, b);
    let rp = refund_as(ACQUIRER, "TW-B", "TW-B-R1", "5.00");
    b.refunds.push(refund_told(
        "TW-B-R1",
        500,
        send(&client, &signer, &rp).await,
    ));
    orders.push(b);
    assert!(orders.iter().all(|o| o.pay.is_success()), "{orders:?}");
    assert!(orders[1].refunds[0].answer.is_success());

    let r = fetch_and_check(&orders, None, &sim_url, &pem, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(r.passed, "{:#?}", r.summary_lines());
    assert_eq!(r.mode, "two-way");
    assert_eq!((r.orders, r.journal_txns, r.sim_trades), (2, 0, 2));
    assert_eq!(r.totals["USD"].kept.simulator, 1000 + 1500);
    assert_eq!(r.totals["USD"].kept.journal, None);

    // Forget one order: its trade is now an orphan.
    let r = fetch_and_check(&orders[..1], None, &sim_url, &pem, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        failed_rules(&r),
        set(&[RULE_NO_ORPHAN_TRADE]),
        "{:#?}",
        r.summary_lines()
    );
    assert_eq!(r.discrepancies[0].order, format!("sim:{ACQUIRER}/TW-B"));
    drop(sim);
}
