//! Bad input: each gets Alipay's documented gateway code, and nothing changes.

use std::time::{Duration, Instant};

use alipay::{Charset, FormBuilder, Signer};
use alipay_sim::client::split_charset;
use alipay_sim::{Config, SimOptions, Simulator};

use crate::common::*;

const PAY: &str = "alipay.acquire.overseas.spot.pay";

fn pay_params(partner: &str) -> Vec<(&'static str, String)> {
    let mut p = vec![
        ("service", PAY.to_owned()),
        ("partner", partner.to_owned()),
        ("alipay_seller_id", partner.to_owned()),
        ("partner_trans_id", "BAD1".to_owned()),
        ("trans_name", "Coffee".to_owned()),
        ("currency", "USD".to_owned()),
        ("trans_amount", "12.30".to_owned()),
        ("buyer_identity_code", NORMAL_CODE.to_owned()),
        ("identity_code_type", "barcode".to_owned()),
        ("trans_create_time", "20260302100000".to_owned()),
        ("biz_product", "OVERSEAS_MBARCODE_PAY".to_owned()),
    ];
    if partner == MD5 {
        p.push(("extend_info", extend_info().to_json()));
    }
    p
}

fn signed(params: &[(&str, String)], signer: &Signer) -> Vec<u8> {
    let mut b = FormBuilder::new(Charset::Utf8);
    for (name, value) in params {
        b.push(name, value);
    }
    b.finish(signer).unwrap()
}

fn with(
    mut params: Vec<(&'static str, String)>,
    name: &'static str,
    value: &str,
) -> Vec<(&'static str, String)> {
    params.retain(|(n, _)| *n != name);
    params.push((name, value.to_owned()));
    params
}

fn without(mut params: Vec<(&'static str, String)>, name: &str) -> Vec<(&'static str, String)> {
    params.retain(|(n, _)| *n != name);
    params
}

fn replace(form: &[u8], from: &str, to: &str) -> Vec<u8> {
    String::from_utf8(form.to_vec())
        .unwrap()
        .replacen(from, to, 1)
        .into_bytes()
}

/// (what, form, expected gateway code, signed) for each bad variant of the `good` form.
fn cases(good: &[u8], md5: &Signer) -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let unknown_partner = pay_params("2088999999999999");
    vec![
        (
            "bad signature",
            replace(good, "Coffee", "Coffea"),
            "ILLEGAL_SIGN",
        ),
        (
            "unknown partner",
            signed(&unknown_partner, md5),
            "ILLEGAL_PARTNER",
        ),
        (
            "no partner",
            signed(&without(pay_params(MD5), "partner"), md5),
            "ILLEGAL_PARTNER",
        ),
        (
            "wrong sign_type",
            replace(good, "sign_type=MD5", "sign_type=RSA2"),
            "ILLEGAL_SIGN_TYPE",
        ),
        (
            "duplicate parameter",
            [good, b"&partner_trans_id=BAD2"].concat(),
            "ILLEGAL_ARGUMENT",
        ),
        (
            "malformed amount",
            signed(&with(pay_params(MD5), "trans_amount", "12.3"), md5),
            "ILLEGAL_ARGUMENT",
        ),
        (
            "unknown service",
            signed(
                &with(pay_params(MD5), "service", "alipay.acquire.nope"),
                md5,
            ),
            "ILLEGAL_SERVICE",
        ),
        (
            "missing trans_name",
            signed(&without(pay_params(MD5), "trans_name"), md5),
            "ILLEGAL_ARGUMENT",
        ),
        (
            "acquirer without extend_info",
            signed(&without(pay_params(MD5), "extend_info"), md5),
            "ILLEGAL_ARGUMENT",
        ),
        (
            "unsupported charset",
            replace(good, "_input_charset=UTF-8", "_input_charset=latin1"),
            "ILLEGAL_CHARSET",
        ),
        (
            "oversize body",
            [good, b"&memo=", &vec![b'x'; 70 * 1024][..]].concat(),
            "ILLEGAL_ARGUMENT",
        ),
    ]
}

#[tokio::test]
async fn bad_requests_get_their_codes_and_change_nothing() {
    let sim = start(1).await;
    let md5 = merchant_signer(MD5);
    let good = signed(&pay_params(MD5), &md5);
    for (what, form, want) in &cases(&good, &md5) {
        let (query, body) = split_charset(form);
        let r = sim.https.post_raw(&query, body).await.unwrap();
        let a = Answer::of(r);
        assert_eq!(a.gateway_error().as_deref(), Some(*want), "{what}");
        if *what != "unknown partner"
            && *what != "no partner"
            && *what != "duplicate parameter"
            && *what != "unsupported charset"
            && *what != "oversize body"
        {
            // The partner is known: the rejection is signed over error=CODE.
            assert_eq!(
                a.verify(&alipay_verifier(MD5)),
                (false, Some((*want).to_owned())),
                "{what}"
            );
            assert!(
                String::from_utf8_lossy(&a.body).contains("<sign>"),
                "{what}"
            );
        }
    }
    // The good form itself works, once: the state was clean before.
    let counters = sim.admin_get("/admin/counters").await;
    assert_eq!(counters["rejections"]["ILLEGAL_ARGUMENT"], 5);
    assert_eq!(counters["requests"], serde_json::json!({}));
    assert_eq!(sim.trade_count().await, 0);
    let (query, body) = split_charset(&good);
    let a = Answer::of(sim.https.post_raw(&query, body).await.unwrap());
    assert_eq!(a.result(), "SUCCESS");
    assert_eq!(sim.trade_count().await, 1);
    sim.handle.shutdown().await;
}

#[tokio::test]
async fn a_service_the_partner_may_not_call_is_illegal_partner_exterface() {
    let dir = std::env::temp_dir().join(format!("alipay-sim-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("limited.toml");
    let key = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../config/keys/md5_2088101122136241.key"),
    )
    .unwrap();
    let text = format!(
        "[[accounts]]\npartner = \"{MD5}\"\nsign_type = \"MD5\"\nmd5_key = \"{}\"\nservices = [\"query\"]\n",
        key.trim()
    );
    std::fs::write(&path, text).unwrap();
    let mut o = SimOptions::for_tests().unwrap();
    o.config = Config::from_file(&path).unwrap();
    let handle = Simulator::start(o).await.unwrap();
    let client = handle.https_client().unwrap();
    let signer = merchant_signer(MD5);
    let a = Answer::of(
        client
            .post(
                &pay(MD5, "L1", 100, NORMAL_CODE, None),
                Charset::Utf8,
                &signer,
            )
            .await
            .unwrap(),
    );
    assert_eq!(
        a.verify(&alipay_verifier(MD5)),
        (false, Some("ILLEGAL_PARTNER_EXTERFACE".to_owned()))
    );
    let q = Answer::of(
        client
            .post(&query(MD5, "L1"), Charset::Utf8, &signer)
            .await
            .unwrap(),
    );
    assert_eq!(q.field("error").as_deref(), Some("TRADE_NOT_EXIST"));
    handle.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn resubmissions_and_refund_rules_over_the_wire() {
    let sim = start(1).await;
    sim.call(&pay(RSA2, "I1", 1_000, NORMAL_CODE, None)).await;
    let same = sim.call(&pay(RSA2, "I1", 1_000, NORMAL_CODE, None)).await;
    assert_eq!(same.field("error").as_deref(), Some("TRADE_HAS_SUCCESS"));
    let other = sim.call(&pay(RSA2, "I1", 2_000, NORMAL_CODE, None)).await;
    assert_eq!(
        other.field("error").as_deref(),
        Some("CONTEXT_INCONSISTENT")
    );
    let exceed = sim.call(&refund(RSA2, "I1", "I1-R1", 1_001)).await;
    assert_eq!(
        exceed.field("error").as_deref(),
        Some("RETURN_AMOUNT_EXCEED")
    );
    assert_eq!(
        sim.call(&refund(RSA2, "I1", "I1-R1", 600)).await.result(),
        "SUCCESS"
    );
    assert_eq!(
        sim.call(&refund(RSA2, "I1", "I1-R1", 600)).await.result(),
        "SUCCESS"
    );
    let reused = sim.call(&refund(RSA2, "I1", "I1-R1", 500)).await;
    assert_eq!(reused.result(), "FAIL");
    let rest = sim.call(&refund(RSA2, "I1", "I1-R2", 401)).await;
    assert_eq!(rest.field("error").as_deref(), Some("RETURN_AMOUNT_EXCEED"));
    assert_eq!(
        sim.call(&refund(RSA2, "I1", "I1-R2", 400)).await.result(),
        "SUCCESS"
    );
    let t = sim.trade(RSA2, "I1").await;
    assert_eq!(
        (t["status"].as_str(), t["refunded"]["minor"].as_u64()),
        (Some("TRADE_CLOSED"), Some(1_000))
    );
    let never = sim.call(&cancel(RSA2, "I9")).await;
    assert_eq!(never.field("action").as_deref(), Some("close"));
    let late = sim.call(&pay(RSA2, "I9", 100, NORMAL_CODE, None)).await;
    assert_eq!(late.field("error").as_deref(), Some("TRADE_HAS_CLOSE"));
    sim.handle.shutdown().await;
}

/// Sends `head` and the first bytes of a body it announces as longer, then reads until the
/// server closes; the generous client timeout only stops the test if the server never does.
async fn stall(addr: std::net::SocketAddr, head: &str) -> (Vec<u8>, Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(b"ab").await.unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(60), tcp.read_to_end(&mut got)).await;
    read.expect("the server closes a stalled connection")
        .expect("a clean close after the answer");
    (got, started.elapsed())
}

#[tokio::test]
async fn a_stalled_body_is_answered_408_and_the_connection_closed() {
    let body_read_timeout = Duration::from_millis(300);
    let sim = start_with(1, |o| o.body_read_timeout = body_read_timeout).await;
    let addr = sim.handle.http_addr().unwrap();
    let heads = [
        "POST /gateway.do HTTP/1.1\r\nHost: sim\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n",
        "PUT /admin/dials HTTP/1.1\r\nHost: sim\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n",
    ];
    for head in heads {
        let (got, elapsed) = stall(addr, head).await;
        assert!(elapsed >= body_read_timeout, "{elapsed:?}");
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    }
    // The simulator still serves, and nothing was processed.
    assert_eq!(sim.trade_count().await, 0);
    assert_eq!(
        sim.admin_get("/admin/counters").await["requests"],
        serde_json::json!({})
    );
    sim.handle.shutdown().await;
}

fn refund_params(amount: &str) -> Vec<(&'static str, String)> {
    vec![
        ("service", "alipay.acquire.overseas.spot.refund".to_owned()),
        ("partner", RSA2.to_owned()),
        ("partner_trans_id", "W1".to_owned()),
        ("partner_refund_id", "W1-R1".to_owned()),
        ("refund_amount", amount.to_owned()),
        ("currency", "USD".to_owned()),
        ("is_sync", "Y".to_owned()),
    ]
}

fn cancel_params(timestamp: &str) -> Vec<(&'static str, String)> {
    vec![
        ("service", "alipay.acquire.cancel".to_owned()),
        ("partner", RSA2.to_owned()),
        ("out_trade_no", "W1".to_owned()),
        ("timestamp", timestamp.to_owned()),
    ]
}

#[tokio::test]
async fn bad_refunds_cancels_and_queries_get_their_codes_and_change_nothing() {
    let sim = start(1).await;
    let rsa2 = merchant_signer(RSA2);
    sim.call(&pay(RSA2, "W1", 1_000, NORMAL_CODE, None)).await;
    // Forms built this way are accepted: each rejection below is about its one bad field.
    assert!(Answer::of(
        sim.https
            .get_raw(&String::from_utf8(signed(&query_params(), &rsa2)).unwrap())
            .await
            .unwrap()
    )
    .field("alipay_trans_status")
    .is_some());
    let before = sim.trades().await;
    let counters_before = sim.admin_get("/admin/counters").await;
    let oversize_query = format!(
        "{}&x={}",
        String::from_utf8(signed(&refund_params("1.00"), &rsa2)).unwrap(),
        "y".repeat(17 * 1024)
    );
    let cases: Vec<(&str, Answer, bool)> = vec![
        (
            "refund with a malformed amount",
            post_form(&sim, &signed(&refund_params("1.0"), &rsa2)).await,
            true,
        ),
        (
            "refund with a negative amount",
            post_form(&sim, &signed(&refund_params("-1.00"), &rsa2)).await,
            true,
        ),
        (
            "cancel with a bad timestamp",
            post_form(&sim, &signed(&cancel_params("yesterday"), &rsa2)).await,
            true,
        ),
        (
            "oversize GET query",
            Answer::of(sim.https.get_raw(&oversize_query).await.unwrap()),
            false,
        ),
    ];
    for (what, a, is_signed) in &cases {
        assert_eq!(
            a.gateway_error().as_deref(),
            Some("ILLEGAL_ARGUMENT"),
            "{what}"
        );
        if *is_signed {
            let verified = a.verify(&alipay_verifier(RSA2));
            assert_eq!(
                verified,
                (false, Some("ILLEGAL_ARGUMENT".to_owned())),
                "{what}"
            );
        }
    }
    assert_eq!(sim.trades().await, before, "no trade changed");
    let counters = sim.admin_get("/admin/counters").await;
    assert_eq!(counters["requests"], counters_before["requests"]);
    assert_eq!(
        counters["rejections"]["ILLEGAL_ARGUMENT"].as_u64(),
        Some(u64::try_from(cases.len()).unwrap())
    );
    // The well-formed refund and cancel still work afterwards.
    let good = post_form(&sim, &signed(&refund_params("1.00"), &rsa2)).await;
    assert_eq!(good.result(), "SUCCESS");
    let now_ms = sim.admin_get("/admin/clock").await["unix_ms"].to_string();
    let c = post_form(&sim, &signed(&cancel_params(&now_ms), &rsa2)).await;
    assert_eq!(c.field("action").as_deref(), Some("refund"));
    sim.handle.shutdown().await;
}

fn query_params() -> Vec<(&'static str, String)> {
    vec![
        ("service", "alipay.acquire.overseas.query".to_owned()),
        ("partner", RSA2.to_owned()),
        ("partner_trans_id", "W1".to_owned()),
    ]
}

async fn post_form(sim: &Sim, form: &[u8]) -> Answer {
    let (query, body) = split_charset(form);
    Answer::of(sim.https.post_raw(&query, body).await.unwrap())
}
