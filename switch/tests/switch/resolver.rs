//! The resolver against the simulator's fault dials: unknown pays driven to their final state on
//! Alipay's schedule (query, then cancel, then refund past the Beijing-day cutoff), cancels
//! resent until definite, and merchants' polls coalesced onto the resolver's queries.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ledger::{CancelAction, EventBody, TxnStatus};
use serde_json::{json, Value};

use crate::common::*;

/// A quick resolver: first query after 200 ms, every 200 ms, cancel after 1.5 s.
fn quick(extra: &str) -> impl FnOnce(String) -> String + '_ {
    move |t| {
        format!(
            "{t}\n[resolver]\nfirst_query_after_ms = 200\nquery_interval_ms = 200\n\
             query_window_ms = 1500\ncancel_retry_ms = [100, 200]\n{extra}\n"
        )
    }
}

fn code(scenario: &str) -> String {
    format!("2800{scenario}000000000000")
}

async fn sim_trade(env: &Env, upstream_id: &str) -> Value {
    env.sim_trades(ACQUIRER)
        .await
        .into_iter()
        .find(|t| t["partner_trans_id"] == upstream_id)
        .unwrap_or_else(|| panic!("no simulator trade {upstream_id}"))
}

async fn sim_queries(env: &Env) -> u64 {
    let c = env.sim_counters().await;
    c["requests"]["query"]
        .as_object()
        .map(|m| m.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0)
}

fn kinds(env: &Env, ptid: &str) -> Vec<&'static str> {
    let ro = ledger::Journal::open_read_only(&env.config.journal.path).unwrap();
    ro.events_of(&ledger::TxnKey::new(M1, ptid))
        .unwrap()
        .iter()
        .map(|e| e.body.kind())
        .collect()
}

const LONG: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_to_online_pays_end_paid_or_closed_and_a_notification_is_owed() {
    // Time runs 10x at the simulator: the buyer decides after 1 s instead of 10.
    let env = start_custom(
        |o| o.time_scale = 10,
        quick(""),
        switch::app::system_clock(),
    )
    .await;
    let mut p1 = pay(M1, M1, "OFF-PAID", "12.00", &code("01"));
    p1.push(("notify_url".into(), "http://127.0.0.1:9/n".into()));
    let mut p2 = pay(M1, M1, "OFF-CLOSED", "7.00", &code("02"));
    p2.push(("notify_url".into(), "http://127.0.0.1:9/n".into()));
    assert_eq!(env.call(&p1).await.result(), "UNKNOWN");
    assert_eq!(env.call(&p2).await.result(), "UNKNOWN");

    let paid = env
        .wait_txn(M1, "OFF-PAID", LONG, |s| s.status.is_final())
        .await
        .unwrap();
    assert_eq!(paid.status, TxnStatus::Paid);
    let closed = env
        .wait_txn(M1, "OFF-CLOSED", LONG, |s| s.status.is_final())
        .await
        .unwrap();
    assert_eq!(closed.status, TxnStatus::Closed);
    // Resolved by the resolver's queries, not by the cashier: the merchant is owed a
    // notification, journaled with the result.
    for (ptid, s) in [("OFF-PAID", &paid), ("OFF-CLOSED", &closed)] {
        let k = kinds(&env, ptid);
        assert!(k.contains(&"QueryResult"), "{ptid}: {k:?}");
        assert!(k.contains(&"NotifyDue"), "{ptid}: {k:?}");
        assert!(s.notify.due.is_some() || s.notify.delivered, "{ptid}");
    }
    assert_eq!(
        sim_trade(&env, &paid.upstream_trans_id).await["status"],
        "TRADE_SUCCESS"
    );
    assert_eq!(
        sim_trade(&env, &closed.upstream_trans_id).await["status"],
        "TRADE_CLOSED"
    );
    // The merchant's query now reads the final state from the journal.
    let q = env.call(&query(M1, "OFF-PAID")).await;
    assert_eq!(
        q.field("alipay_trans_status").as_deref(),
        Some("TRADE_SUCCESS")
    );
    let q = env.call(&query(M1, "OFF-CLOSED")).await;
    assert_eq!(
        q.field("alipay_trans_status").as_deref(),
        Some("TRADE_CLOSED")
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cashier_polling_an_unresolved_pay_adds_no_upstream_queries() {
    // One resolver query a second; the buyer decides only after 10 s.
    let edit = |t: String| {
        format!(
            "{t}\n[resolver]\nfirst_query_after_ms = 1000\nquery_interval_ms = 1000\n\
             query_window_ms = 60000\n"
        )
    };
    let env = start_with(edit).await;
    let a = env.call(&pay(M1, M1, "POLL-1", "3.00", &code("01"))).await;
    assert_eq!(a.result(), "UNKNOWN");
    let before = sim_queries(&env).await;
    let started = Instant::now();
    let polls = 30;
    for _ in 0..polls {
        let q = env.call(&query(M1, "POLL-1")).await;
        assert_eq!(
            q.field("alipay_trans_status").as_deref(),
            Some("WAIT_BUYER_PAY")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap();
    let upstream = sim_queries(&env).await - before;
    // At most one upstream query per interval from the resolver and one from the polls (when
    // the resolver's is older than an interval), whatever the number of polls.
    let bound = 2 * (elapsed_ms / 1000 + 1) + 1;
    assert!(
        upstream <= bound && upstream < polls,
        "{upstream} upstream queries for {polls} polls in {elapsed_ms} ms"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pay_that_never_answers_is_queried_then_cancelled() {
    // The pay itself takes 2 s to time out: a 4 s window leaves room for queries.
    let edit = |t: String| {
        format!(
            "{t}\n[resolver]\nfirst_query_after_ms = 200\nquery_interval_ms = 200\n\
             query_window_ms = 4000\ncancel_retry_ms = [100, 200]\n"
        )
    };
    let env = start_with(edit).await;
    // The simulator holds the answer 3 s; the switch gives up on it after 2 s.
    env.sim_dials(json!({ "hang_ms": 3000 })).await;
    let a = env.call(&pay(M1, M1, "HANG-1", "5.00", &code("31"))).await;
    assert_eq!(a.result(), "UNKNOWN");
    let s = env
        .wait_txn(M1, "HANG-1", LONG, |s| s.status.is_final())
        .await
        .unwrap();
    assert_eq!(s.status, TxnStatus::Closed, "{s:?}");
    assert_eq!(s.cancel.action, Some(CancelAction::Close));
    let k = kinds(&env, "HANG-1");
    let first_query = k.iter().position(|k| *k == "QueryResult").unwrap();
    let first_cancel = k.iter().position(|k| *k == "CancelAttempt").unwrap();
    assert!(first_query < first_cancel, "queried, then cancelled: {k:?}");
    // The order number is closed at Alipay: a late pay with it can never succeed.
    assert_eq!(
        sim_trade(&env, &s.upstream_trans_id).await["status"],
        "TRADE_CLOSED"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_pay_that_never_answered_is_reversed_by_the_cancel() {
    // The window ends before the first query would: the resolver cancels at once.
    let edit = |t: String| {
        format!(
            "{t}\n[resolver]\nfirst_query_after_ms = 1000\nquery_interval_ms = 1000\n\
             query_window_ms = 1000\ncancel_retry_ms = [100, 200]\n"
        )
    };
    let env = start_with(edit).await;
    env.sim_dials(json!({ "hang_ms": 3000 })).await;
    let a = env
        .call(&pay(M1, M1, "HANG-PAID", "9.00", &code("30")))
        .await;
    assert_eq!(a.result(), "UNKNOWN");
    let s = env
        .wait_txn(M1, "HANG-PAID", LONG, |s| s.status.is_final())
        .await
        .unwrap();
    assert_eq!(s.status, TxnStatus::Reversed, "{s:?}");
    assert_eq!(s.cancel.action, Some(CancelAction::Refund));
    let t = sim_trade(&env, &s.upstream_trans_id).await;
    assert_eq!(t["cancel"]["action"], "refund", "{t}");
    assert_eq!(t["status"], "TRADE_CLOSED", "{t}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancels_answered_retry_or_unknown_are_resent_until_they_succeed() {
    let env = start_with(quick("")).await;
    env.sim_dials(json!({ "cancel_retry_count": 3 })).await;
    for (ptid, scenario) in [("RETRY-Y", "40"), ("RETRY-UNKNOWN", "41")] {
        let a = env.call(&pay(M1, M1, ptid, "4.00", &code(scenario))).await;
        assert_eq!(a.result(), "SUCCESS");
        // The cashier cancels once; the first answer is not definite.
        let c = env.call(&cancel(M1, ptid)).await;
        assert_ne!(c.result(), "SUCCESS", "{ptid}");
    }
    for ptid in ["RETRY-Y", "RETRY-UNKNOWN"] {
        let s = env
            .wait_txn(M1, ptid, LONG, |s| s.status == TxnStatus::Reversed)
            .await
            .unwrap();
        assert_eq!(s.status, TxnStatus::Reversed, "{ptid}: {s:?}");
        assert_eq!(
            s.cancel.attempts, 4,
            "{ptid}: three undecided answers, then success"
        );
        assert!(!s.is_pending());
        let t = sim_trade(&env, &s.upstream_trans_id).await;
        assert_eq!(t["cancel"]["action"], "refund", "{t}");
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trade_paid_before_the_cutoff_and_unresolved_after_it_is_refunded() {
    // Both clocks start at 23:59:40 Beijing; the test moves both 20 minutes on, past the
    // cancel window's end (midnight + 15 minutes grace).
    let start_text = "2026-11-27 23:59:40";
    let start = alipay::BeijingTime::parse_dashed(start_text).unwrap();
    let jump = Arc::new(AtomicI64::new(0));
    let origin = Instant::now();
    let j = Arc::clone(&jump);
    let clock: switch::engine::Clock = Arc::new(move || {
        let elapsed = i64::try_from(origin.elapsed().as_millis()).unwrap();
        start.unix_ms() + elapsed + j.load(Ordering::SeqCst)
    });
    let edit = |t: String| {
        format!(
            "{t}\n[resolver]\nfirst_query_after_ms = 200\nquery_interval_ms = 200\n\
             query_window_ms = 60000\n"
        )
    };
    let env = start_custom(|o| o.clock_start = Some(start), edit, clock).await;
    // The buyer confirms 10 s after the pay (simulated time): still waiting when we jump.
    let a = env
        .call(&pay(M1, M1, "MIDNIGHT", "25.00", &code("01")))
        .await;
    assert_eq!(a.result(), "UNKNOWN");
    let waiting = env
        .wait_txn(M1, "MIDNIGHT", LONG, |s| s.last_query.is_some())
        .await
        .unwrap();
    assert_eq!(waiting.status, TxnStatus::Unknown);
    let twenty_minutes = 20 * 60 * 1000;
    let (status, body) = env
        .sim_admin
        .send_json(
            hyper::Method::POST,
            "/admin/clock",
            &json!({ "advance_ms": twenty_minutes }),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    jump.store(twenty_minutes, Ordering::SeqCst);

    let s = env
        .wait_txn(M1, "MIDNIGHT", LONG, |s| s.is_final())
        .await
        .unwrap();
    assert_eq!(s.status, TxnStatus::Refunded, "{s:?}");
    assert_eq!(s.cancel.attempts, 0, "no cancel after the window: {s:?}");
    assert_eq!(s.refunded_minor, 2500);
    let (id, r) = s.refunds.iter().next().unwrap();
    assert!(id.starts_with("#reversal/"), "{id}");
    assert_eq!(r.status, ledger::RefundStatus::Succeeded);
    let t = sim_trade(&env, &s.upstream_trans_id).await;
    assert_eq!(t["refunded"]["value"], "25.00", "{t}");
    // The query that found it paid and the reversal's intent were one write.
    let ro = ledger::Journal::open_read_only(&env.config.journal.path).unwrap();
    let events = ro.events_of(&ledger::TxnKey::new(M1, "MIDNIGHT")).unwrap();
    let intent = events
        .iter()
        .position(|e| matches!(e.body, EventBody::RefundIntent { .. }))
        .unwrap();
    assert!(matches!(
        events[intent - 1].body,
        EventBody::QueryResult {
            status: ledger::TradeStatus::TradeSuccess,
            ..
        }
    ));
    env.stop().await;
}

/// Journals a pay's intent (PayReceived + PaySent) for caller M3 (direct mode) as a switch that
/// crashed right after sending it would have left it; returns the upstream id.
fn journal_intent_only(config: &switch::config::Config, ptid: &str) -> String {
    let upstream = switch::engine::upstream_id(&config.node.id, 'P', M3, ptid);
    let journal =
        ledger::Journal::open(&config.journal.path, ledger::JournalOptions::default()).unwrap();
    let now = switch::app::system_clock()();
    let drafts = vec![
        ledger::Draft::new(
            now,
            EventBody::PayReceived {
                upstream_partner: DIRECT.into(),
                upstream_trans_id: upstream.clone(),
                fingerprint: [7; 32],
                amount: ledger::Money::new(600, *b"USD"),
                trans_create_time: "20261127120000".into(),
                secondary_merchant_id: None,
                store_id: None,
                notify_url: None,
            },
        ),
        ledger::Draft::new(
            now,
            EventBody::PaySent {
                attempt: 1,
                endpoint: "primary".into(),
            },
        ),
    ];
    journal
        .append(ledger::TxnKey::new(M3, ptid), drafts)
        .wait()
        .unwrap();
    upstream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_crash_an_unconfirmed_pay_is_resolved_by_query_and_never_sent_again() {
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let (_, config) = write_config(dir.path(), &sim, quick(""));
    // One pay reached Alipay before the crash (sent here straight to the simulator with the
    // switch's upstream id), one never left.
    let c = config.clone();
    let (reached, lost) = tokio::task::spawn_blocking(move || {
        (
            journal_intent_only(&c, "CRASH-REACHED"),
            journal_intent_only(&c, "CRASH-LOST"),
        )
    })
    .await
    .unwrap();
    let direct = pay(DIRECT, DIRECT, &reached, "6.00", CODE);
    let (q, b) = signed(&direct, M3);
    let gateway =
        alipay_sim::GatewayClient::new(&sim.https_url(), Some(sim.cert_pem().as_bytes())).unwrap();
    let r = gateway.post_raw(&q, b).await.unwrap();
    assert!(
        String::from_utf8_lossy(&r.body).contains("<result_code>SUCCESS</result_code>"),
        "{}",
        String::from_utf8_lossy(&r.body)
    );

    let running = switch::app::start(config.clone(), std::future::pending())
        .await
        .unwrap();
    let client = GatewayClientForTests::new(&running);
    let env = Env {
        sim_admin: alipay_sim::client::HttpClient::new(
            &sim.https_url(),
            Some(sim.cert_pem().as_bytes()),
        )
        .unwrap(),
        sim,
        switch: Some(running),
        client: client.0,
        dir,
        config,
    };
    let paid = env
        .wait_txn(M3, "CRASH-REACHED", LONG, |s| s.status.is_final())
        .await
        .unwrap();
    assert_eq!(paid.status, TxnStatus::Paid, "{paid:?}");
    let closed = env
        .wait_txn(M3, "CRASH-LOST", LONG, |s| s.status.is_final())
        .await
        .unwrap();
    assert_eq!(closed.status, TxnStatus::Closed, "{closed:?}");
    assert_eq!(env.sim_pays().await, 1, "no pay was sent again");
    let trades = env.sim_trades(DIRECT).await;
    let status_of = |id: &str| {
        trades
            .iter()
            .find(|t| t["partner_trans_id"] == id)
            .map(|t| t["status"].clone())
    };
    assert_eq!(status_of(&reached), Some(json!("TRADE_SUCCESS")));
    // The lost one's order number is closed at Alipay, so it can never be paid late.
    assert_eq!(status_of(&lost), Some(json!("TRADE_CLOSED")));
    for (ptid, s) in [("CRASH-REACHED", &paid), ("CRASH-LOST", &closed)] {
        assert_eq!(s.pay_attempts, 1, "{ptid}: one send, the journaled one");
    }
    env.stop().await;
}

/// The gateway client the harness would make for `running`.
struct GatewayClientForTests(alipay_sim::GatewayClient);

impl GatewayClientForTests {
    fn new(running: &switch::app::Running) -> GatewayClientForTests {
        let url = format!("http://{}", running.http.unwrap());
        GatewayClientForTests(alipay_sim::GatewayClient::new(&url, None).unwrap())
    }
}
