//! Each service end to end through the switch, against the simulator over TLS, in acquirer mode,
//! in direct mode and through a system integrator; MD5 and RSA2 callers.

use crate::common::*;

/// Minor units of an admin money view.
fn minor(v: &serde_json::Value) -> u64 {
    v["minor"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acquirer_mode_md5_caller_every_service() {
    let env = start().await;
    let a = env.call(&pay(M1, M1, "A-1", "10.00", CODE)).await;
    assert_eq!(a.result(), "SUCCESS");
    assert_eq!(a.field("partner_trans_id").as_deref(), Some("A-1"));
    assert_eq!(a.field("trans_amount").as_deref(), Some("10.00"));
    let alipay_id = a.field("alipay_trans_id").unwrap();

    // Upstream: under the acquirer's account, the switch's own id, the merchant's record in
    // extend_info (whatever the caller sent).
    let trades = env.sim_trades(ACQUIRER).await;
    assert_eq!(trades.len(), 1);
    let t = &trades[0];
    let upstream_id = t["partner_trans_id"].as_str().unwrap();
    assert!(upstream_id.starts_with("t1P"), "{upstream_id}");
    assert_eq!(t["alipay_trans_id"].as_str(), Some(alipay_id.as_str()));
    assert_eq!(t["extend_info"]["secondary_merchant_id"], "LNB0001");
    assert_eq!(t["extend_info"]["secondary_merchant_industry"], "5812");
    assert_eq!(t["extend_info"]["store_id"], "LNB-WFJ");

    // A final state is answered from the journal: no upstream query.
    let upstream_before = env.sim_requests().await;
    let q = env.call(&query(M1, "A-1")).await;
    assert_eq!(env.sim_requests().await, upstream_before);
    assert_eq!(q.result(), "SUCCESS");
    assert_eq!(
        q.field("alipay_trans_status").as_deref(),
        Some("TRADE_SUCCESS")
    );
    assert_eq!(q.field("alipay_trans_id"), Some(alipay_id.clone()));

    let r = env.call(&refund(M1, "A-1", "R-1", "4.00")).await;
    assert_eq!(
        r.result(),
        "SUCCESS",
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.field("partner_refund_id").as_deref(), Some("R-1"));
    let trades = env.sim_trades(ACQUIRER).await;
    assert_eq!(minor(&trades[0]["refunded"]), 400);
    assert_eq!(trades[0]["refunds"].as_array().unwrap().len(), 1);

    // A second pay, cancelled: reversed at the simulator.
    let b = env.call(&pay(M1, M1, "A-2", "3.00", CODE)).await;
    assert_eq!(b.result(), "SUCCESS");
    let c = env.call(&cancel(M1, "A-2")).await;
    assert_eq!(
        c.result(),
        "SUCCESS",
        "{}",
        String::from_utf8_lossy(&c.body)
    );
    assert_eq!(c.field("action").as_deref(), Some("refund"));
    let q = env.call(&query(M1, "A-2")).await;
    assert_eq!(
        q.field("alipay_trans_status").as_deref(),
        Some("TRADE_CLOSED")
    );
    let trades = env.sim_trades(ACQUIRER).await;
    let t2 = trades
        .iter()
        .find(|t| t["alipay_trans_id"].as_str() == b.field("alipay_trans_id").as_deref())
        .unwrap();
    assert_eq!(t2["status"], "TRADE_CLOSED");

    // A late repeat of the reversed pay is told the trade is closed, never SUCCESS.
    let late = env.call(&pay(M1, M1, "A-2", "3.00", CODE)).await;
    assert_eq!(late.result(), "FAIL");
    assert_eq!(late.field("error").as_deref(), Some("TRADE_HAS_CLOSE"));
    // A trade with a refund cannot be cancelled; nothing is asked upstream.
    let before = env.sim_requests().await;
    let c = env.call(&cancel(M1, "A-1")).await;
    assert_eq!(c.result(), "FAIL");
    assert_eq!(
        c.field("detail_error_code").as_deref(),
        Some("TRADE_STATUS_ERROR")
    );
    assert_eq!(c.field("retry_flag").as_deref(), Some("N"));
    assert_eq!(env.sim_requests().await, before);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn direct_mode_rsa2_caller_every_service() {
    let env = start().await;
    let a = env.call(&pay(M3, M3, "D-1", "20.00", CODE)).await;
    assert_eq!(
        a.result(),
        "SUCCESS",
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    // Under the merchant's own account; no secondary merchant added.
    let trades = env.sim_trades(DIRECT).await;
    assert_eq!(trades.len(), 1);
    assert!(trades[0]["extend_info"].is_null());
    assert!(env.sim_trades(ACQUIRER).await.is_empty());

    let q = env.call(&query(M3, "D-1")).await;
    assert_eq!(
        q.field("alipay_trans_status").as_deref(),
        Some("TRADE_SUCCESS")
    );
    let r = env.call(&refund(M3, "D-1", "DR-1", "5.00")).await;
    assert_eq!(r.result(), "SUCCESS");
    let b = env.call(&pay(M3, M3, "D-2", "1.00", CODE)).await;
    assert_eq!(b.result(), "SUCCESS");
    let c = env.call(&cancel(M3, "D-2")).await;
    assert_eq!(c.result(), "SUCCESS");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn through_a_system_integrator_for_acquirer_and_direct_merchants() {
    let env = start().await;
    // For M2 (acquirer mode): under the acquirer's account with M2's record.
    let a = env.call(&pay(SI, M2, "S-1", "7.00", CODE)).await;
    assert_eq!(
        a.result(),
        "SUCCESS",
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    let trades = env.sim_trades(ACQUIRER).await;
    assert_eq!(trades.len(), 1);
    assert_eq!(trades[0]["extend_info"]["secondary_merchant_id"], "HB0002");
    assert_eq!(trades[0]["extend_info"]["store_id"], "HB-CENTRAL");
    // For M3 (direct): under M3's own account.
    let b = env.call(&pay(SI, M3, "S-2", "8.00", CODE)).await;
    assert_eq!(b.result(), "SUCCESS");
    assert_eq!(env.sim_trades(DIRECT).await.len(), 1);

    let q = env.call(&query(SI, "S-1")).await;
    assert_eq!(
        q.field("alipay_trans_status").as_deref(),
        Some("TRADE_SUCCESS")
    );
    let r = env.call(&refund(SI, "S-2", "SR-1", "8.00")).await;
    assert_eq!(r.result(), "SUCCESS");
    let q = env.call(&query(SI, "S-2")).await;
    assert_eq!(
        q.field("alipay_trans_status").as_deref(),
        Some("TRADE_CLOSED")
    );
    let c = env.call(&cancel(SI, "S-1")).await;
    assert_eq!(c.result(), "SUCCESS");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_caller_named_store_is_used_and_an_unknown_store_refused() {
    let env = start().await;
    let ext = r#"{"secondary_merchant_id":"X","store_id":"HB-AIRPORT","terminal_id":"T9"}"#;
    let a = env
        .call(&set(pay(SI, M2, "ST-1", "1.00", CODE), "extend_info", ext))
        .await;
    assert_eq!(a.result(), "SUCCESS");
    let trades = env.sim_trades(ACQUIRER).await;
    assert_eq!(trades[0]["extend_info"]["store_id"], "HB-AIRPORT");
    assert_eq!(trades[0]["extend_info"]["terminal_id"], "T9");
    // The caller cannot rename the merchant.
    assert_eq!(trades[0]["extend_info"]["secondary_merchant_id"], "HB0002");

    let bad = r#"{"secondary_merchant_id":"X","store_id":"NOPE"}"#;
    let before = env.sim_requests().await;
    let r = env
        .post(&set(pay(SI, M2, "ST-2", "1.00", CODE), "extend_info", bad))
        .await;
    assert!(!r.verify(SI));
    assert_eq!(r.gateway_error().as_deref(), Some("ILLEGAL_ARGUMENT"));
    assert_eq!(env.sim_requests().await, before);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn get_and_https_reach_the_same_gateway_and_metrics_show_the_traffic() {
    let env = start().await;
    // GET: every parameter in the URL query.
    let (q, body) = signed(&pay(M1, M1, "G-1", "2.00", CODE), M1);
    let form = format!("{q}&{}", String::from_utf8(body).unwrap());
    let r = env.client.get_raw(&form).await.unwrap();
    let a = Answer {
        status: r.status,
        body: r.body.to_vec(),
    };
    assert!(a.verify(M1));
    assert_eq!(a.result(), "SUCCESS");

    // HTTPS, trusting the certificate the switch wrote.
    let running = env.switch.as_ref().unwrap();
    let pem = std::fs::read(env.dir.path().join("switch-cert.pem")).unwrap();
    let https =
        alipay_sim::GatewayClient::new(&format!("https://{}", running.https.unwrap()), Some(&pem))
            .unwrap();
    let (q, body) = signed(&query(M1, "G-1"), M1);
    let r = https.post_raw(&q, body).await.unwrap();
    let a = Answer {
        status: r.status,
        body: r.body.to_vec(),
    };
    assert!(a.verify(M1));
    assert_eq!(
        a.field("alipay_trans_status").as_deref(),
        Some("TRADE_SUCCESS")
    );

    // /metrics: requests by service and result, latencies, the journal, the upstream pool.
    let ops = running.ops.unwrap();
    let m = alipay_sim::client::HttpClient::new(&format!("http://{ops}"), None)
        .unwrap()
        .request(hyper::Method::GET, "/metrics", None, Vec::new())
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&m.body).into_owned();
    for needle in [
        "switch_requests_total{service=\"pay\",result=\"SUCCESS\"}",
        "switch_request_seconds_bucket{service=\"pay\"",
        "switch_upstream_seconds_bucket",
        "switch_upstream_calls_total",
        "switch_upstream_breaker_state",
        "switch_in_flight",
        "ledger_sync_seconds_bucket",
        "ledger_group_size_bucket",
    ] {
        assert!(text.contains(needle), "/metrics lacks {needle}:\n{text}");
    }
    env.stop().await;
}
