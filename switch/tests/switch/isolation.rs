//! Tenants: a caller sees and acts only on its own transactions, and an SI only for its own
//! merchants; another's order number reads exactly like a missing one.

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cross_merchant_and_cross_si_access_is_refused() {
    let env = start().await;
    let a = env.call(&pay(SI, M2, "ISO-1", "5.00", CODE)).await;
    assert_eq!(a.result(), "SUCCESS");
    let upstream_before = env.sim_requests().await;

    // M1 cannot see, cancel or refund the SI's transaction: TRADE_NOT_EXIST, exactly as for an
    // order number nobody used.
    let theirs = env.call(&query(M1, "ISO-1")).await;
    let missing = env.call(&query(M1, "NEVER-USED")).await;
    assert_eq!(theirs.field("error").as_deref(), Some("TRADE_NOT_EXIST"));
    assert_eq!(theirs.result(), missing.result());
    assert_eq!(theirs.field("error"), missing.field("error"));
    let c = env.call(&cancel(M1, "ISO-1")).await;
    assert_eq!(
        c.field("detail_error_code").as_deref(),
        Some("TRADE_NOT_EXIST")
    );
    let r = env.call(&refund(M1, "ISO-1", "ISO-R", "1.00")).await;
    assert_eq!(r.field("error").as_deref(), Some("TRADE_NOT_EXIST"));
    // Nor can M3 (a merchant of the same SI, calling for itself).
    let q3 = env.call(&query(M3, "ISO-1")).await;
    assert_eq!(q3.field("error").as_deref(), Some("TRADE_NOT_EXIST"));

    // The SI may not act for M1; a merchant may not act for another merchant; an unknown
    // merchant reads the same.
    for (caller, seller) in [(SI, M1), (M1, M2), (SI, "2088999999999999")] {
        let r = env.post(&pay(caller, seller, "ISO-2", "1.00", CODE)).await;
        assert!(!r.verify(caller));
        assert_eq!(r.gateway_error().as_deref(), Some("HAS_NO_PRIVILEGE"));
    }
    assert_eq!(
        env.sim_requests().await,
        upstream_before,
        "nothing went upstream"
    );

    // Its own order number with another trade's Alipay number reads as absent too.
    let mismatched = set(
        query(SI, "ISO-1"),
        "alipay_trans_id",
        "2026000000000000000000000009",
    );
    let q = env.call(&mismatched).await;
    assert_eq!(q.field("error").as_deref(), Some("TRADE_NOT_EXIST"));
    let q = env
        .call(&set(
            query(SI, "ISO-1"),
            "alipay_trans_id",
            &a.field("alipay_trans_id").unwrap(),
        ))
        .await;
    assert_eq!(
        q.field("alipay_trans_status").as_deref(),
        Some("TRADE_SUCCESS")
    );

    // The same order number in two callers' namespaces: two transactions, two upstream trades.
    let m1 = env.call(&pay(M1, M1, "ISO-1", "5.00", CODE)).await;
    assert_eq!(m1.result(), "SUCCESS");
    assert_ne!(m1.field("alipay_trans_id"), a.field("alipay_trans_id"));
    assert_eq!(env.sim_trades(ACQUIRER).await.len(), 2);
    env.stop().await;
}
