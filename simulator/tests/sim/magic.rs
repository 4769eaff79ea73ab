//! Every magic buyer code (`2800` + scenario), each shown happening.

use std::time::{Duration, Instant};

use alipay_sim::client::is_reset;
use alipay_sim::GatewayClient;
use serde_json::json;

use crate::common::*;
use crate::notify::receiver;

fn code(scenario: &str) -> String {
    format!("2800{scenario}000000000000")
}

/// Buyer confirmations and timeouts run on simulated time: these tests run at time scale 1 and
/// move the clock with the admin API, so real time only has to stay under the seconds of slack
/// left before the next due event.
#[tokio::test]
async fn unknown_then_paid_is_resolved_by_query_after_the_delay_and_notified() {
    // confirm_delay_s = 10.
    let sim = start(1).await;
    let mut rx = receiver(&[]).await;
    let url = rx.url.clone();
    let a = sim
        .call(&pay(MD5, "U1", 100, &code("01"), Some(&url)))
        .await;
    assert_eq!(a.result(), "UNKNOWN");
    assert_eq!(
        a.field("error").as_deref(),
        Some("ORDER_SUCCESS_PAY_INPROCESS")
    );
    sim.advance_ms(5_000).await;
    let now = sim
        .call(&query(MD5, "U1"))
        .await
        .field("alipay_trans_status");
    assert_eq!(
        now.as_deref(),
        Some("WAIT_BUYER_PAY"),
        "5 s before the buyer acts"
    );
    sim.advance_ms(5_000).await;
    let status = sim
        .wait_status(MD5, "U1", "TRADE_SUCCESS", Duration::from_secs(30))
        .await;
    assert_eq!(status, "TRADE_SUCCESS");
    let n = rx.next(MD5).await;
    assert_eq!(n.trade_status, alipay::TradeStatus::TradeSuccess);
    assert!(n.gmt_payment.is_some());
    sim.handle.shutdown().await;
}

#[tokio::test]
async fn unknown_then_closed_and_never_acting_buyers_close() {
    // confirm_delay_s = 10, trade_timeout_s = 180.
    let sim = start(1).await;
    let mut rx = receiver(&[]).await;
    let url = rx.url.clone();
    let declined = sim
        .call(&pay(RSA2, "U2", 100, &code("02"), Some(&url)))
        .await;
    assert_eq!(declined.result(), "UNKNOWN");
    let idle = sim
        .call(&pay(RSA2, "U3", 100, &code("03"), Some(&url)))
        .await;
    assert_eq!(idle.result(), "UNKNOWN");
    sim.advance_ms(10_000).await;
    let s = sim
        .wait_status(RSA2, "U2", "TRADE_CLOSED", Duration::from_secs(30))
        .await;
    assert_eq!(s, "TRADE_CLOSED");
    let n = rx.next(RSA2).await;
    assert_eq!(
        (n.out_trade_no.as_str(), n.trade_status),
        ("U2", alipay::TradeStatus::TradeClosed)
    );
    assert_eq!(
        sim.trade(RSA2, "U2").await["close_reason"]["reason"],
        "buyer_declined"
    );
    sim.advance_ms(160_000).await;
    let waiting = sim
        .call(&query(RSA2, "U3"))
        .await
        .field("alipay_trans_status");
    assert_eq!(
        waiting.as_deref(),
        Some("WAIT_BUYER_PAY"),
        "10 s before the timeout"
    );
    sim.advance_ms(10_000).await;
    let s = sim
        .wait_status(RSA2, "U3", "TRADE_CLOSED", Duration::from_secs(30))
        .await;
    assert_eq!(s, "TRADE_CLOSED");
    let n = rx.next(RSA2).await;
    assert_eq!(
        (n.out_trade_no.as_str(), n.trade_status),
        ("U3", alipay::TradeStatus::TradeClosed)
    );
    assert_eq!(
        sim.trade(RSA2, "U3").await["close_reason"]["reason"],
        "timeout"
    );
    sim.handle.shutdown().await;
}

#[tokio::test]
async fn fail_codes_280010_to_280019() {
    let sim = start(1).await;
    let want = [
        "BUYER_BALANCE_NOT_ENOUGH",
        "BUYER_BANKCARD_BALANCE_NOT_ENOUGH",
        "SOUNDWAVE_PARSER_FAIL",
        "BUYER_ENABLE_STATUS_FORBID",
        "PAYMENT_FAIL",
        "PRODUCT_AMOUNT_LIMIT_ERROR",
        "BUYER_PAYMENT_AMOUNT_DAY_LIMIT_ERROR",
        "TRADE_BUYER_NOT_MATCH",
        "EXIST_FORBIDDEN_WORD",
        "CLIENT_VERSION_NOT_MATCH",
    ];
    for (i, error) in want.iter().enumerate() {
        let id = format!("F{i}");
        let a = sim
            .call(&pay(RSA2, &id, 100, &code(&format!("1{i}")), None))
            .await;
        assert_eq!(
            (a.result(), a.field("error")),
            ("FAIL".to_owned(), Some((*error).to_owned()))
        );
        let q = sim.call(&query(RSA2, &id)).await;
        assert_eq!(
            q.field("alipay_trans_status").as_deref(),
            Some("TRADE_CLOSED")
        );
    }
    sim.handle.shutdown().await;
}

#[tokio::test]
async fn system_error_with_and_without_a_trade() {
    let sim = start(1).await;
    let verifier = alipay_verifier(MD5);
    let paid = sim.post(&pay(MD5, "S1", 100, &code("20"), None)).await;
    assert_eq!(
        paid.verify(&verifier),
        (false, Some("SYSTEM_ERROR".to_owned()))
    );
    assert!(
        String::from_utf8_lossy(&paid.body).contains("<sign>"),
        "signed over error=CODE"
    );
    assert_eq!(sim.trade(MD5, "S1").await["status"], "TRADE_SUCCESS");
    let none = sim.post(&pay(MD5, "S2", 100, &code("21"), None)).await;
    assert_eq!(
        none.verify(&verifier),
        (false, Some("SYSTEM_ERROR".to_owned()))
    );
    let q = sim.call(&query(MD5, "S2")).await;
    assert_eq!(q.field("error").as_deref(), Some("TRADE_NOT_EXIST"));
    assert_eq!(sim.trade_count().await, 1);
    sim.handle.shutdown().await;
}

#[tokio::test]
async fn hangs_close_without_an_answer() {
    let sim = start(1).await;
    sim.put_dials(json!({ "hang_ms": 300 })).await;
    for (scenario, id, created) in [("30", "H1", true), ("31", "H2", false)] {
        let started = Instant::now();
        let r = sim
            .https
            .post(
                &pay(RSA2, id, 100, &code(scenario), None),
                alipay::Charset::Utf8,
                &merchant_signer(RSA2),
            )
            .await;
        let err = r.expect_err("a hang gets no answer");
        assert!(
            matches!(err, alipay_sim::SimError::OutcomeUnknown { .. }),
            "{err}"
        );
        assert!(started.elapsed() >= Duration::from_millis(300));
        let q = sim.call(&query(RSA2, id)).await;
        let status = q.field("alipay_trans_status");
        assert_eq!(status.is_some(), created, "{id}: {status:?}");
    }
    let counters = sim.admin_get("/admin/counters").await;
    assert_eq!(counters["faults"]["hang_processed"], 1);
    assert_eq!(counters["faults"]["hang_not_processed"], 1);
    sim.handle.shutdown().await;
}

#[tokio::test]
async fn a_reset_is_a_real_rst_over_tls_and_plain_http() {
    let sim = start(1).await;
    let http = GatewayClient::new(&sim.handle.http_url().unwrap(), None).unwrap();
    let signer = merchant_signer(RSA2);
    for (client, id) in [(&sim.https, "X1"), (&http, "X2")] {
        let r = client
            .post(
                &pay(RSA2, id, 100, &code("32"), None),
                alipay::Charset::Utf8,
                &signer,
            )
            .await;
        let err = r.expect_err("a reset gets no answer");
        assert!(is_reset(&err), "{id}: {err}");
        assert_eq!(sim.trade(RSA2, id).await["status"], "TRADE_SUCCESS");
    }
    sim.handle.shutdown().await;
}

#[tokio::test]
async fn http_502_and_429_process_nothing() {
    let sim = start(1).await;
    let a = sim.post(&pay(RSA2, "B1", 100, &code("33"), None)).await;
    assert_eq!(a.status, 502);
    assert!(a.content_type.starts_with("text/html"));
    assert!(String::from_utf8_lossy(&a.body).contains("502 Bad Gateway"));
    let t = sim.post(&pay(RSA2, "B2", 100, &code("35"), None)).await;
    assert_eq!(t.status, 429);
    assert_eq!(sim.trade_count().await, 0);
    let r = sim
        .https
        .post(
            &pay(RSA2, "B3", 100, &code("35"), None),
            alipay::Charset::Utf8,
            &merchant_signer(RSA2),
        )
        .await
        .unwrap();
    assert_eq!(r.headers.get("retry-after").unwrap(), "1");
    sim.handle.shutdown().await;
}

#[tokio::test]
async fn slow_bodies_arrive_late_but_whole() {
    let sim = start(1).await;
    let over = Duration::from_millis(1_000);
    sim.put_dials(json!({ "slow_body_ms": 1_000 })).await;
    let streamed = sim
        .post_streamed(&pay(RSA2, "SB1", 100, &code("34"), None))
        .await;
    streamed.assert_trickled_over(over);
    let a = streamed.answer;
    assert_eq!(a.verify(&alipay_verifier(RSA2)), (true, None));
    assert_eq!(a.result(), "SUCCESS");
    assert_eq!(sim.trade(RSA2, "SB1").await["status"], "TRADE_SUCCESS");
    sim.handle.shutdown().await;
}

#[tokio::test]
async fn cancels_fail_retryably_then_succeed() {
    let sim = start(1).await;
    sim.call(&pay(MD5, "C1", 100, &code("40"), None)).await;
    sim.call(&pay(MD5, "C2", 100, &code("41"), None)).await;
    for _ in 0..3 {
        let a = sim.call(&cancel(MD5, "C1")).await;
        assert_eq!(
            (a.result(), a.field("retry_flag")),
            ("FAIL".to_owned(), Some("Y".to_owned()))
        );
        assert_eq!(
            a.field("detail_error_code").as_deref(),
            Some("SYSTEM_ERROR")
        );
        assert_eq!(sim.call(&cancel(MD5, "C2")).await.result(), "UNKNOWN");
    }
    for id in ["C1", "C2"] {
        let a = sim.call(&cancel(MD5, id)).await;
        assert_eq!(
            (a.result(), a.field("action")),
            ("SUCCESS".to_owned(), Some("refund".to_owned()))
        );
        let again = sim.call(&cancel(MD5, id)).await;
        assert_eq!(
            again.field("action").as_deref(),
            Some("refund"),
            "cancel is idempotent"
        );
        assert_eq!(sim.trade(MD5, id).await["status"], "TRADE_CLOSED");
    }
    sim.handle.shutdown().await;
}

#[tokio::test]
async fn a_refund_answered_unknown_is_not_applied_twice() {
    let sim = start(1).await;
    sim.call(&pay(RSA2, "RU1", 1_000, &code("50"), None)).await;
    let first = sim.call(&refund(RSA2, "RU1", "RU1-1", 400)).await;
    assert_eq!(first.result(), "UNKNOWN");
    let retry = sim.call(&refund(RSA2, "RU1", "RU1-1", 400)).await;
    assert_eq!(retry.result(), "SUCCESS");
    let t = sim.trade(RSA2, "RU1").await;
    assert_eq!(t["refunded"]["minor"], 400);
    assert_eq!(t["refunds"].as_array().unwrap().len(), 1);
    sim.handle.shutdown().await;
}
