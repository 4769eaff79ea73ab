//! Overload: a flood of new pays is refused in part ("not processed", UNKNOWN + SYSTEM_BUSY),
//! while queries and cancels of earlier orders keep completing within their deadline; a refused
//! pay left nothing in the journal and never reached the simulator.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use alipay_sim::GatewayClient;
use ledger::TxnKey;
use serde_json::json;
use tokio::task::JoinSet;

use crate::common::*;

/// The gateway's whole-request deadline in the tests' configuration (`request_timeout_ms`).
const GATEWAY_DEADLINE: Duration = Duration::from_secs(10);
/// A bound on any one request from the test's side, only so that a broken deadline fails the
/// test instead of hanging it.
const OUTER: Duration = Duration::from_secs(30);
/// What each simulated answer waits: pays admitted during the flood stay in flight this long.
const LATENCY_MS: u64 = 1_500;
/// Pays fired at once per wave, and most waves.
const WAVE: usize = 24;
const WAVES_MAX: usize = 4;

/// A small switch: 16 transactions in the engine, of which new pays may take 8; 16 requests in
/// flight at the gateway and per caller. Upstream calls may take 5 s (the latency is 1.5 s).
fn small(text: String) -> String {
    let text = text
        .replace("[gateway]\n", "[gateway]\nin_flight_max = 16\n")
        .replace(
            "kind = \"merchant\"\n",
            "kind = \"merchant\"\nin_flight_max = 16\n",
        )
        .replace(
            "kind = \"integrator\"\n",
            "kind = \"integrator\"\nin_flight_max = 16\n",
        )
        .replace("request_timeout_ms = 2000", "request_timeout_ms = 5000");
    format!("{text}\n[limits]\nengine_in_flight_max = 16\npay_share_percent = 50\n")
}

/// What one flood pay was answered.
#[derive(Debug)]
struct Outcome {
    ptid: String,
    result: String,
    error: Option<String>,
}

/// Fires waves of concurrent pays until `stop`, each wave waiting for all its answers.
async fn flood(
    client: Arc<GatewayClient>,
    stop: Arc<AtomicBool>,
    busy_seen: Arc<tokio::sync::Notify>,
) -> Vec<Outcome> {
    let mut out = Vec::new();
    for wave in 0..WAVES_MAX {
        if stop.load(Ordering::Acquire) {
            break;
        }
        let mut set = JoinSet::new();
        for i in 0..WAVE {
            let client = Arc::clone(&client);
            let ptid = format!("OV-FLOOD-{wave}-{i}");
            set.spawn(async move {
                let (query, body) = signed(&pay(M1, M1, &ptid, "1.00", CODE), M1);
                let r = tokio::time::timeout(OUTER, client.post_raw(&query, body))
                    .await
                    .expect("the pay was answered")
                    .unwrap();
                let a = Answer {
                    status: r.status,
                    body: r.body.to_vec(),
                };
                assert!(a.verify(M1), "{}", String::from_utf8_lossy(&a.body));
                Outcome {
                    ptid,
                    result: a.result(),
                    error: a.field("error"),
                }
            });
        }
        while let Some(o) = set.join_next().await {
            let o = o.unwrap();
            if o.error.as_deref() == Some("SYSTEM_BUSY") {
                busy_seen.notify_one();
            }
            out.push(o);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_a_flood_of_pays_queries_and_cancels_complete_and_refused_pays_left_no_trace() {
    let env = start_with(small).await;
    // Earlier orders, paid before the overload.
    let early: Vec<String> = (0..4).map(|i| format!("OV-EARLY-{i}")).collect();
    for ptid in &early {
        let a = env.call(&pay(M1, M1, ptid, "5.00", CODE)).await;
        assert_eq!(
            a.result(),
            "SUCCESS",
            "{}",
            String::from_utf8_lossy(&a.body)
        );
    }

    // Alipay slows down: every answer takes 1.5 s, so admitted pays stay in flight.
    env.sim_dials(json!({ "latency": { "kind": "fixed", "fixed_ms": LATENCY_MS } }))
        .await;
    let url = format!("http://{}", env.switch.as_ref().unwrap().http.unwrap());
    let client = Arc::new(GatewayClient::new(&url, None).unwrap().with_timeout(OUTER));
    let stop = Arc::new(AtomicBool::new(false));
    let busy_seen = Arc::new(tokio::sync::Notify::new());
    let flooding = tokio::spawn(flood(
        Arc::clone(&client),
        Arc::clone(&stop),
        Arc::clone(&busy_seen),
    ));
    // Once pays are being refused, the switch is overloaded with them.
    tokio::time::timeout(OUTER, busy_seen.notified())
        .await
        .expect("some pay of the flood was refused");

    // Meanwhile: every earlier order is queried, two are cancelled, all at once.
    let mut finishing = JoinSet::new();
    for (i, ptid) in early.iter().enumerate() {
        let requests = if i < 2 {
            vec![("query", query(M1, ptid)), ("cancel", cancel(M1, ptid))]
        } else {
            vec![("query", query(M1, ptid))]
        };
        for (service, p) in requests {
            let client = Arc::clone(&client);
            finishing.spawn(async move {
                let (q, body) = signed(&p, M1);
                // Within the gateway's deadline: past it the switch would answer SYSTEM_ERROR.
                let r = tokio::time::timeout(GATEWAY_DEADLINE, client.post_raw(&q, body))
                    .await
                    .unwrap_or_else(|_| panic!("a {service} did not complete within its deadline"))
                    .unwrap();
                let a = Answer {
                    status: r.status,
                    body: r.body.to_vec(),
                };
                assert!(a.verify(M1), "{}", String::from_utf8_lossy(&a.body));
                (service, a)
            });
        }
    }
    let mut done = 0;
    while let Some(r) = finishing.join_next().await {
        let (service, a) = r.unwrap();
        let text = String::from_utf8_lossy(&a.body).into_owned();
        assert_eq!(a.result(), "SUCCESS", "{service}: {text}");
        match service {
            "query" => assert!(a.field("alipay_trans_status").is_some(), "{text}"),
            _ => assert_eq!(a.field("action").as_deref(), Some("refund"), "{text}"),
        }
        done += 1;
    }
    assert_eq!(done, 6);
    stop.store(true, Ordering::Release);
    let pays = flooding.await.unwrap();

    // Every flood pay was either paid or refused as not processed; some of each.
    let (refused, paid): (Vec<&Outcome>, Vec<&Outcome>) = pays
        .iter()
        .partition(|o| o.error.as_deref() == Some("SYSTEM_BUSY"));
    for o in &refused {
        assert_eq!(o.result, "UNKNOWN", "{o:?}");
    }
    for o in &paid {
        assert_eq!(o.result, "SUCCESS", "{o:?}");
    }
    assert!(!refused.is_empty() && !paid.is_empty(), "{pays:?}");

    // A refused pay was never journaled; a paid one was.
    {
        let journal = ledger::Journal::open_read_only(&env.config.journal.path).unwrap();
        for o in &refused {
            let txn = journal.txn(&TxnKey::new(M1, &o.ptid)).unwrap();
            assert!(txn.is_none(), "refused {} was journaled: {txn:?}", o.ptid);
        }
        for o in &paid {
            assert!(journal.txn(&TxnKey::new(M1, &o.ptid)).unwrap().is_some());
        }
    }
    // And never reached the simulator: it holds the earlier trades and the paid pays, no more,
    // and saw no other pay.
    let expected = early.len() + paid.len();
    assert_eq!(env.sim_trades(ACQUIRER).await.len(), expected);
    assert_eq!(env.sim_pays().await, u64::try_from(expected).unwrap());
    // To the merchant, a refused order does not exist.
    let q = env.call(&query(M1, &refused[0].ptid)).await;
    assert_eq!(q.result(), "FAIL");
    assert_eq!(q.field("error").as_deref(), Some("TRADE_NOT_EXIST"));
    env.stop().await;
}

/// M1 may pay or refund 3 times at once, then once every 4 s.
fn m1_rate_limited(text: String) -> String {
    let from = "kind = \"merchant\"\nsign_type = \"MD5\"\n";
    assert_eq!(text.matches(from).count(), 1);
    text.replace(from, &format!("{from}rate_per_s = 0.25\nburst = 3\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_caller_over_its_rate_is_refused_until_its_bucket_refills() {
    let env = start_with(m1_rate_limited).await;
    // The burst: three pays at once.
    for i in 0..3 {
        let a = env
            .call(&pay(M1, M1, &format!("RL-{i}"), "2.00", CODE))
            .await;
        assert_eq!(
            a.result(),
            "SUCCESS",
            "{}",
            String::from_utf8_lossy(&a.body)
        );
    }
    // Then nothing: a fourth pay and a refund are not processed. (The bucket gains a token
    // every 4 s; these requests come well within that.)
    let refused = env.call(&pay(M1, M1, "RL-3", "2.00", CODE)).await;
    assert_eq!(refused.result(), "UNKNOWN");
    assert_eq!(refused.field("error").as_deref(), Some("SYSTEM_BUSY"));
    let r = env.call(&refund(M1, "RL-0", "RL-R0", "1.00")).await;
    assert_eq!(r.result(), "UNKNOWN");
    assert_eq!(r.field("error").as_deref(), Some("SYSTEM_BUSY"));
    {
        let journal = ledger::Journal::open_read_only(&env.config.journal.path).unwrap();
        assert!(journal.txn(&TxnKey::new(M1, "RL-3")).unwrap().is_none());
        let paid = journal.txn(&TxnKey::new(M1, "RL-0")).unwrap().unwrap();
        assert!(paid.refunds.is_empty(), "{paid:?}");
    }
    assert_eq!(env.sim_pays().await, 3);
    // Queries and cancels take no token; another caller has its own allowance.
    let q = env.call(&query(M1, "RL-0")).await;
    assert_eq!(q.result(), "SUCCESS");
    let c = env.call(&cancel(M1, "RL-1")).await;
    assert_eq!(
        c.result(),
        "SUCCESS",
        "{}",
        String::from_utf8_lossy(&c.body)
    );
    let si = env.call(&pay(SI, M2, "RL-SI", "2.00", CODE)).await;
    assert_eq!(si.result(), "SUCCESS");

    // After a token's worth of time the refused pay, sent again, goes through; the next waits.
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    let again = env.call(&pay(M1, M1, "RL-3", "2.00", CODE)).await;
    assert_eq!(
        again.result(),
        "SUCCESS",
        "{}",
        String::from_utf8_lossy(&again.body)
    );
    let next = env.call(&pay(M1, M1, "RL-4", "2.00", CODE)).await;
    assert_eq!(next.field("error").as_deref(), Some("SYSTEM_BUSY"));
    assert_eq!(env.sim_pays().await, 5);
    env.stop().await;
}
