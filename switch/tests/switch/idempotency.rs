//! Idempotency and coalescing (INV-2, INV-5, INV-6): concurrent duplicates share one upstream
//! call, a changed resubmission is refused with nothing sent, and concurrent refunds never
//! exceed the payment.

use std::sync::Arc;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_identical_pays_make_one_trade_and_fifty_identical_answers() {
    let env = Arc::new(start().await);
    let p = pay(M1, M1, "DUP-1", "12.34", CODE);
    let (query, body) = signed(&p, M1);
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let env = Arc::clone(&env);
        let (query, body) = (query.clone(), body.clone());
        tasks.push(tokio::spawn(
            async move { env.post_raw(&query, body).await },
        ));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    assert!(answers[0].verify(M1));
    assert_eq!(answers[0].result(), "SUCCESS");
    for a in &answers {
        assert_eq!(
            a.body, answers[0].body,
            "every duplicate gets the same answer"
        );
    }
    assert_eq!(env.sim_pays().await, 1, "one upstream pay");
    assert_eq!(env.sim_trades(ACQUIRER).await.len(), 1);

    // The same order number with another amount: refused, nothing sent, nothing journaled.
    let events = env.journal_events();
    let changed = env.call(&pay(M1, M1, "DUP-1", "12.35", CODE)).await;
    assert_eq!(changed.result(), "FAIL");
    assert_eq!(
        changed.field("error").as_deref(),
        Some("CONTEXT_INCONSISTENT")
    );
    assert_eq!(env.sim_pays().await, 1);
    assert_eq!(env.journal_events(), events);

    // The same request later: replayed from the journal, no upstream call.
    let again = env.post_raw(&query, body).await;
    assert_eq!(again.body, answers[0].body);
    assert_eq!(env.sim_pays().await, 1);
    Arc::into_inner(env).unwrap().stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_concurrent_refunds_never_exceed_the_payment() {
    let env = Arc::new(start().await);
    let a = env.call(&pay(M1, M1, "RF-1", "10.00", CODE)).await;
    assert_eq!(a.result(), "SUCCESS");
    let mut tasks = Vec::new();
    for i in 0..16 {
        let env = Arc::clone(&env);
        tasks.push(tokio::spawn(async move {
            // 16 × 1.50 = 24.00 asked for a 10.00 payment.
            let r = env
                .call(&refund(M1, "RF-1", &format!("RR-{i}"), "1.50"))
                .await;
            (r.result(), r.field("error"))
        }));
    }
    let mut ok = 0u64;
    for t in tasks {
        let (result, error) = t.await.unwrap();
        match result.as_str() {
            "SUCCESS" => ok += 1,
            "FAIL" => assert_eq!(error.as_deref(), Some("RETURN_AMOUNT_EXCEED")),
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ok, 6, "6 × 1.50 fit in 10.00, the 7th does not");
    let trades = env.sim_trades(ACQUIRER).await;
    let refunded = trades[0]["refunded"]["minor"].as_u64().unwrap();
    assert_eq!(refunded, ok * 150);
    assert!(refunded <= 1000);
    Arc::into_inner(env).unwrap().stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refund_id_replays_and_a_changed_refund_is_refused() {
    let env = start().await;
    env.call(&pay(M1, M1, "RR-1", "10.00", CODE)).await;
    let r1 = env.call(&refund(M1, "RR-1", "X-1", "2.00")).await;
    assert_eq!(r1.result(), "SUCCESS");
    let r2 = env.call(&refund(M1, "RR-1", "X-1", "2.00")).await;
    assert_eq!(r2.body, r1.body, "a retried refund replays its answer");
    let r3 = env.call(&refund(M1, "RR-1", "X-1", "3.00")).await;
    assert_eq!(r3.field("error").as_deref(), Some("CONTEXT_INCONSISTENT"));
    let trades = env.sim_trades(ACQUIRER).await;
    assert_eq!(trades[0]["refunds"].as_array().unwrap().len(), 1);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refund_with_an_unknown_outcome_is_sent_again_with_the_same_id_and_applies_once() {
    let env = start().await;
    // 280050: the trade's first refund is applied but answered UNKNOWN.
    let code = "280050000000000001";
    assert_eq!(
        env.call(&pay(M1, M1, "UR-1", "10.00", code)).await.result(),
        "SUCCESS"
    );
    let first = env.call(&refund(M1, "UR-1", "URR-1", "4.00")).await;
    assert_eq!(
        first.result(),
        "UNKNOWN",
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    // The retry re-sends the same upstream refund; Alipay replays its SUCCESS.
    let second = env.call(&refund(M1, "UR-1", "URR-1", "4.00")).await;
    assert_eq!(
        second.result(),
        "SUCCESS",
        "{}",
        String::from_utf8_lossy(&second.body)
    );
    let trades = env.sim_trades(ACQUIRER).await;
    assert_eq!(
        trades[0]["refunds"].as_array().unwrap().len(),
        1,
        "refunded once"
    );
    assert_eq!(trades[0]["refunded"]["minor"].as_u64(), Some(400));
    // From now on it replays, with nothing sent.
    let before = env.sim_requests().await;
    let third = env.call(&refund(M1, "UR-1", "URR-1", "4.00")).await;
    assert_eq!(third.body, second.body);
    assert_eq!(env.sim_requests().await, before);
    env.stop().await;
}
