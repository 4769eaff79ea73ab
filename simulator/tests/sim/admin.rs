//! The admin API itself: the clock's limits, paging through the trades.

use hyper::Method;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn a_huge_clock_jump_is_refused_and_the_simulator_still_answers() {
    let sim = start(1).await;
    let before = sim.admin_get("/admin/clock").await["unix_ms"].clone();
    for body in [
        json!({ "advance_ms": u64::MAX }),
        json!({ "advance_ms": i64::MAX }),
        json!({ "set": "9999-12-31 23:59:60" }),
    ] {
        let (status, answer) = sim
            .https
            .http()
            .send_json(Method::POST, "/admin/clock", &body)
            .await
            .unwrap();
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer["error"].is_string(), "{answer}");
    }
    let after = sim.admin_get("/admin/clock").await["unix_ms"].clone();
    assert!(after.as_i64() >= before.as_i64());
    assert!(after.as_i64().unwrap() < before.as_i64().unwrap() + 3_600_000);
    let a = sim.call(&pay(MD5, "K1", 100, NORMAL_CODE, None)).await;
    assert_eq!(a.result(), "SUCCESS");
    // The last representable second is allowed; trades still work there.
    sim.admin_post("/admin/clock", json!({ "set": "9999-12-31 23:59:00" }))
        .await;
    let a = sim
        .call(&pay(MD5, "K2", 100, "280003000000000000", None))
        .await;
    assert_eq!(a.result(), "UNKNOWN");
    let a = sim.call(&pay(MD5, "K3", 100, NORMAL_CODE, None)).await;
    assert_eq!(a.result(), "SUCCESS");
    assert_eq!(
        sim.call(&refund(MD5, "K3", "K3-R", 10)).await.result(),
        "SUCCESS"
    );
    let (status, _) = sim
        .https
        .http()
        .send_json(
            Method::POST,
            "/admin/clock",
            &json!({ "advance_ms": 120_000 }),
        )
        .await
        .unwrap();
    assert_eq!(status, 400, "past the end of the calendar");
    let q = sim.call(&query(MD5, "K2")).await;
    assert_eq!(
        q.field("alipay_trans_status").as_deref(),
        Some("WAIT_BUYER_PAY")
    );
    sim.handle.shutdown().await;
}

#[tokio::test]
async fn trades_come_in_pages_and_the_client_follows_them() {
    let sim = start(1).await;
    for id in ["G1", "G2", "G3", "G4", "G5"] {
        sim.call(&pay(RSA2, id, 100, NORMAL_CODE, None)).await;
    }
    sim.call(&pay(RSA, "G6", 100, NORMAL_CODE, None)).await;
    let first = sim.admin_get("/admin/trades?limit=2").await;
    assert_eq!(
        (first["count"].as_u64(), first["complete"].as_bool()),
        (Some(2), Some(false))
    );
    assert_eq!(first["trades"][0]["partner_trans_id"], "G1");
    let cursor = first["next_after"].as_u64().unwrap();
    let rest = sim
        .admin_get(&format!("/admin/trades?after={cursor}&limit=100"))
        .await;
    assert_eq!(
        (rest["count"].as_u64(), rest["complete"].as_bool()),
        (Some(4), Some(true))
    );
    assert!(rest["next_after"].is_null());
    assert_eq!(rest["trades"][0]["partner_trans_id"], "G3");
    let ids = |trades: &[serde_json::Value]| -> Vec<String> {
        trades
            .iter()
            .map(|t| t["partner_trans_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let http = sim.https.http();
    assert_eq!(
        ids(&http.get_all_trades(None).await.unwrap()),
        ["G1", "G2", "G3", "G4", "G5", "G6"]
    );
    assert_eq!(ids(&http.get_all_trades(Some(RSA)).await.unwrap()), ["G6"]);
    let default = sim.admin_get("/admin/trades").await;
    assert_eq!(
        (default["count"].as_u64(), default["complete"].as_bool()),
        (Some(6), Some(true))
    );
    for bad in ["limit=0", "limit=100001", "after=-1", "limit=x"] {
        let (status, answer) = http
            .get_json(&format!("/admin/trades?{bad}"))
            .await
            .unwrap();
        assert_eq!(status, 400, "{bad}: {answer}");
    }
    sim.handle.shutdown().await;
}
