//! Random dials under a seed, latency, the token bucket, and changing dials at runtime.

use std::time::{Duration, Instant};

use alipay::Charset;
use alipay_sim::client::is_reset;
use serde_json::json;

use crate::common::*;

/// Whether an observation shows a dial.
type Shows = dyn Fn(&str) -> bool;

/// What a client observed for one pay.
async fn observe(sim: &Sim, id: &str) -> String {
    let signer = merchant_signer(RSA2);
    let r = sim
        .https
        .post(
            &pay(RSA2, id, 100, NORMAL_CODE, None),
            Charset::Utf8,
            &signer,
        )
        .await;
    match r {
        Err(e) if is_reset(&e) => "reset".to_owned(),
        Err(e) => format!("error {e}"),
        Ok(r) if r.status != 200 => format!("status {}", r.status),
        Ok(r) => {
            let a = Answer::of(r);
            match a.verify(&alipay_verifier(RSA2)) {
                (false, err) => format!("rejected {}", err.unwrap_or_default()),
                (true, _) => format!("{} {}", a.result(), a.field("error").unwrap_or_default()),
            }
        }
    }
}

#[tokio::test]
async fn each_rate_at_one_shows_on_every_request() {
    let sim = start(1).await;
    let zero = sim.admin_get("/admin/dials").await;
    sim.put_dials(json!({ "hang_ms": 100 })).await;
    let cases: [(&str, &Shows); 8] = [
        ("unknown_then_paid_rate", &|o| {
            o == "UNKNOWN ORDER_SUCCESS_PAY_INPROCESS"
        }),
        ("unknown_then_closed_rate", &|o| {
            o == "UNKNOWN ORDER_SUCCESS_PAY_INPROCESS"
        }),
        ("fail_rate", &|o| o.starts_with("FAIL ")),
        ("system_error_rate", &|o| o == "rejected SYSTEM_ERROR"),
        ("http_502_rate", &|o| o == "status 502"),
        ("throttle_rate", &|o| o == "status 429"),
        ("reset_rate", &|o| o == "reset"),
        ("hang_rate", &|o| {
            o.starts_with("error ") && o.contains("outcome unknown")
        }),
    ];
    for (n, (dial, shows)) in cases.iter().enumerate() {
        sim.put_dials(zero.clone()).await;
        sim.put_dials(json!({ *dial: 1.0, "hang_ms": 100 })).await;
        for i in 0..3 {
            let o = observe(&sim, &format!("D{n}-{i}")).await;
            assert!(shows(&o), "{dial}: {o}");
        }
    }
    // The two UNKNOWN rates differ in how the trades end: advance past confirm_delay_s (10 s).
    sim.put_dials(zero.clone()).await;
    sim.advance_ms(10_000).await;
    for (n, end) in [(0, "TRADE_SUCCESS"), (1, "TRADE_CLOSED")] {
        for i in 0..3 {
            let id = format!("D{n}-{i}");
            let got = sim
                .wait_status(RSA2, &id, end, Duration::from_secs(30))
                .await;
            assert_eq!(got, end, "{id}");
        }
    }
    sim.put_dials(json!({ "slow_body_rate": 1.0, "slow_body_ms": 1_000 }))
        .await;
    let streamed = sim
        .post_streamed(&pay(RSA2, "SB", 100, NORMAL_CODE, None))
        .await;
    streamed.assert_trickled_over(Duration::from_millis(1_000));
    assert_eq!(streamed.answer.result(), "SUCCESS");
    sim.put_dials(zero.clone()).await;
    sim.put_dials(json!({ "cancel_retry_rate": 1.0, "cancel_retry_count": 2 }))
        .await;
    sim.call(&pay(RSA2, "CR", 100, NORMAL_CODE, None)).await;
    for _ in 0..2 {
        let c = sim.call(&cancel(RSA2, "CR")).await;
        assert_ne!(c.result(), "SUCCESS");
    }
    assert_eq!(sim.call(&cancel(RSA2, "CR")).await.result(), "SUCCESS");
    let faults = sim.admin_get("/admin/counters").await["faults"].clone();
    for kind in ["http_502", "throttle", "reset", "slow_body"] {
        assert!(faults[kind].as_u64().unwrap_or(0) >= 1, "{kind}: {faults}");
    }
    sim.handle.shutdown().await;
}

async fn sequence(sim: &Sim, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    for i in 0..24 {
        out.push(observe(sim, &format!("{prefix}{i}")).await);
    }
    out
}

#[tokio::test]
async fn the_same_seed_gives_the_same_sequence() {
    let dials = json!({
        "fail_rate": 0.3,
        "unknown_then_paid_rate": 0.2,
        "system_error_rate": 0.15,
        "http_502_rate": 0.1,
    });
    let a = start_with(1, |o| o.seed = 42).await;
    a.put_dials(dials.clone()).await;
    let first = sequence(&a, "S").await;
    a.reset().await;
    assert_eq!(a.trade_count().await, 0);
    let again = sequence(&a, "S").await;
    assert_eq!(first, again, "a reset reseeds");
    let b = start_with(1, |o| o.seed = 42).await;
    b.put_dials(dials.clone()).await;
    assert_eq!(
        sequence(&b, "S").await,
        first,
        "another simulator, same seed"
    );
    let c = start_with(1, |o| o.seed = 43).await;
    c.put_dials(dials).await;
    assert_ne!(sequence(&c, "S").await, first, "another seed");
    let kinds: std::collections::BTreeSet<&str> = first
        .iter()
        .map(|o| o.split(' ').next().unwrap_or(""))
        .collect();
    assert!(kinds.len() >= 3, "the rates mix outcomes: {first:?}");
    for sim in [a, b, c] {
        sim.handle.shutdown().await;
    }
}

#[tokio::test]
async fn a_fixed_latency_is_waited_before_answering() {
    let sim = start(1).await;
    sim.put_dials(json!({ "latency": { "kind": "fixed", "fixed_ms": 250 } }))
        .await;
    let started = Instant::now();
    let a = sim.call(&query(RSA2, "nothing")).await;
    assert_eq!(a.result(), "FAIL");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    sim.handle.shutdown().await;
}

#[tokio::test]
async fn the_token_bucket_throttles_each_partner() {
    let sim = start(1).await;
    sim.put_dials(json!({ "throttle_rps": 3 })).await;
    let mut statuses = Vec::new();
    for i in 0..6 {
        statuses.push(sim.post(&query(RSA2, &format!("T{i}"))).await.status);
    }
    assert_eq!(&statuses[..3], &[200, 200, 200]);
    assert!(statuses[3..].contains(&429), "{statuses:?}");
    // Another partner has its own bucket.
    assert_eq!(sim.post(&query(MD5, "T0")).await.status, 200);
    let counters = sim.admin_get("/admin/counters").await;
    assert!(counters["faults"]["throttle_rps"].as_u64().unwrap() >= 1);
    // Off again at runtime.
    sim.put_dials(json!({ "throttle_rps": 0 })).await;
    for i in 0..6 {
        assert_eq!(sim.post(&query(RSA2, &format!("T{i}"))).await.status, 200);
    }
    sim.handle.shutdown().await;
}

#[tokio::test]
async fn bad_dials_are_refused() {
    let sim = start(1).await;
    for bad in [
        json!({ "fail_rate": 2.0 }),
        json!({ "nope": 1 }),
        json!({ "latency": { "kind": "x" } }),
    ] {
        let (status, _) = sim
            .https
            .http()
            .send_json(hyper::Method::PUT, "/admin/dials", &bad)
            .await
            .unwrap();
        assert_eq!(status, 400, "{bad}");
    }
    assert_eq!(sim.admin_get("/admin/dials").await["fail_rate"], 0.0);
    sim.handle.shutdown().await;
}
