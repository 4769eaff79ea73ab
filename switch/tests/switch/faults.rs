//! Upstream faults: an upstream that hangs gives UNKNOWN within the deadline and never a second
//! pay; an answer whose signature does not verify is an unknown outcome, never trusted.

use serde_json::json;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hanging_upstream_gives_unknown_and_never_a_second_pay() {
    let env = start().await;
    // Shorter than the sim's default hang, longer than the account's 2 s request deadline.
    env.sim_dials(json!({ "hang_ms": 6000 })).await;
    // 280030: the simulator hangs, but the trade is paid.
    let code = "280030000000000001";
    let a = env.call(&pay(M1, M1, "H-1", "9.00", code)).await;
    assert_eq!(
        a.result(),
        "UNKNOWN",
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    assert_eq!(env.sim_pays().await, 1);

    // A retry of the same pay replays UNKNOWN from the journal: no second pay upstream.
    let again = env.call(&pay(M1, M1, "H-1", "9.00", code)).await;
    assert_eq!(again.body, a.body);
    assert_eq!(env.sim_pays().await, 1);

    // A query asks upstream (the outcome is not final) and learns it was paid.
    let q = env.call(&query(M1, "H-1")).await;
    assert_eq!(
        q.field("alipay_trans_status").as_deref(),
        Some("TRADE_SUCCESS")
    );
    // From now on the pay replays as paid, still without a second pay.
    let third = env.call(&pay(M1, M1, "H-1", "9.00", code)).await;
    assert_eq!(third.result(), "SUCCESS");
    assert_eq!(env.sim_pays().await, 1);
    assert_eq!(env.sim_trades(ACQUIRER).await.len(), 1);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_answer_with_a_bad_signature_is_an_unknown_outcome() {
    // The direct account checks Alipay's answers with the wrong public key.
    let env = start_with(|t| t.replace("alipay_rsa2_public.pem", "switch_rsa_public.pem")).await;
    let a = env.call(&pay(M3, M3, "BS-1", "4.00", CODE)).await;
    assert_eq!(
        a.result(),
        "UNKNOWN",
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    // It was paid at the simulator, but the switch did not take the unverified word for it.
    assert_eq!(env.sim_trades(DIRECT).await.len(), 1);
    assert_eq!(env.sim_pays().await, 1);
    // The alarm is a metric on /metrics.
    let ops = env.switch.as_ref().unwrap().ops.unwrap();
    let metrics = alipay_sim::client::HttpClient::new(&format!("http://{ops}"), None)
        .unwrap()
        .request(hyper::Method::GET, "/metrics", None, Vec::new())
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&metrics.body).into_owned();
    let alarm = text
        .lines()
        .find(|l| l.starts_with("switch_upstream_bad_signature_total"))
        .unwrap_or_else(|| panic!("no alarm metric in:\n{text}"));
    assert!(!alarm.trim_end().ends_with(" 0"), "{alarm}");
    env.stop().await;
}
