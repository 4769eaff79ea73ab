//! Notifications: a tiny local receiver gets `trade_status_sync`, signed by the simulated
//! Alipay, and is sent it again while it answers anything but `success`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alipay::{Form, FormLimits, TradeStatusSync};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;

use crate::common::*;

/// A local HTTP receiver: answers the scripted bodies in order, then `success`; forwards every
/// request body.
pub struct Receiver {
    pub url: String,
    pub bodies: mpsc::UnboundedReceiver<Vec<u8>>,
}

pub async fn receiver(script: &[&str]) -> Receiver {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/notify", listener.local_addr().unwrap());
    let (tx, bodies) = mpsc::unbounded_channel();
    let script: Arc<Mutex<VecDeque<String>>> =
        Arc::new(Mutex::new(script.iter().map(|s| (*s).to_owned()).collect()));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            let script = Arc::clone(&script);
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let tx = tx.clone();
                    let script = Arc::clone(&script);
                    async move {
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let _ = tx.send(body.to_vec());
                        let answer = script
                            .lock()
                            .unwrap()
                            .pop_front()
                            .unwrap_or("success".into());
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(answer))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Receiver { url, bodies }
}

impl Receiver {
    /// The next notification, verified with `partner`'s Alipay key.
    pub async fn next(&mut self, partner: &str) -> TradeStatusSync {
        let body = tokio::time::timeout(Duration::from_secs(10), self.bodies.recv())
            .await
            .expect("a notification within 10 s")
            .unwrap();
        let form = Form::parse(b"", &body, &FormLimits::default()).unwrap();
        form.verify(&alipay_verifier(partner), &mut Vec::new())
            .unwrap();
        TradeStatusSync::from_form(&form).unwrap()
    }
}

#[tokio::test]
async fn unanswered_notifications_are_resent_on_the_ladder_until_success() {
    // At 200x the 2-minute first resend takes 0.6 s; the 10-minute ones 3 s: advance instead.
    let sim = start(200).await;
    // A reply over NOTIFY_RESPONSE_BYTES_MAX is a failed attempt, whatever it starts with.
    let huge = format!("success{}", " ".repeat(2048));
    let mut rx = receiver(&["fail", &huge]).await;
    let url = rx.url.clone();
    let a = sim
        .call(&pay(MD5, "N1", 100, "280001000000000000", Some(&url)))
        .await;
    assert_eq!(a.result(), "UNKNOWN");
    let first = rx.next(MD5).await;
    assert_eq!(first.trade_status, alipay::TradeStatus::TradeSuccess);
    assert_eq!(first.out_trade_no, "N1");
    let second = rx.next(MD5).await;
    assert_eq!(
        second.notify_id, first.notify_id,
        "resends keep the notify_id"
    );
    sim.admin_post("/admin/clock", serde_json::json!({ "advance_ms": 600_000 }))
        .await;
    let third = rx.next(MD5).await;
    assert_eq!(third.notify_id, first.notify_id);
    let mut acked = false;
    for _ in 0..100 {
        let t = sim.trade(MD5, "N1").await;
        if t["notifications"][0]["acked"] == true {
            let attempts = t["notifications"][0]["attempts"]
                .as_array()
                .unwrap()
                .clone();
            assert_eq!(attempts.len(), 3);
            assert_eq!(attempts[0]["result"], "body \"fail\"");
            assert_eq!(attempts[1]["result"], "reply over 1024 bytes");
            assert_eq!(attempts[2]["result"], "acked");
            acked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert!(acked);
    let counters = sim.admin_get("/admin/counters").await;
    assert_eq!(counters["notifications"]["sent"], 3);
    assert_eq!(counters["notifications"]["acked"], 1);
    sim.handle.shutdown().await;
}

#[tokio::test]
async fn async_refunds_complete_later_and_notify() {
    let sim = start(100).await;
    let mut rx = receiver(&[]).await;
    let url = rx.url.clone();
    sim.call(&pay(RSA2, "AR1", 1_000, NORMAL_CODE, None)).await;
    let mut r = refund(RSA2, "AR1", "AR1-R", 1_000);
    if let alipay::Request::Refund(req) = &mut r {
        req.is_sync = false;
        req.notify_url = Some(&url);
    }
    let accepted = sim.call(&r).await;
    assert_eq!(accepted.result(), "SUCCESS");
    let n = rx.next(RSA2).await;
    let notice = n.refund.unwrap();
    assert_eq!(notice.partner_refund_id, "AR1-R");
    assert_eq!(notice.refund_amount.minor(), 1_000);
    assert_eq!(n.trade_status, alipay::TradeStatus::TradeClosed);
    let t = sim.trade(RSA2, "AR1").await;
    assert_eq!(t["status"], "TRADE_CLOSED");
    assert!(t["refunds"][0]["completed_at"].is_string());
    sim.handle.shutdown().await;
}

#[tokio::test]
async fn synchronous_results_are_notified_too() {
    let sim = start(1).await;
    let mut rx = receiver(&[]).await;
    let url = rx.url.clone();
    let paid = sim
        .call(&pay(RSA2, "SN1", 1_000, NORMAL_CODE, Some(&url)))
        .await;
    assert_eq!(paid.result(), "SUCCESS");
    let n1 = rx.next(RSA2).await;
    assert_eq!(
        (n1.out_trade_no.as_str(), n1.trade_status),
        ("SN1", alipay::TradeStatus::TradeSuccess)
    );
    assert!(n1.gmt_payment.is_some() && n1.refund.is_none());
    let r = sim.call(&refund(RSA2, "SN1", "SN1-R1", 300)).await;
    assert_eq!(r.result(), "SUCCESS");
    let n2 = rx.next(RSA2).await;
    assert_eq!(n2.trade_status, alipay::TradeStatus::TradeSuccess);
    let notice = n2.refund.unwrap();
    assert_eq!(
        (
            notice.partner_refund_id.as_str(),
            notice.refund_amount.minor()
        ),
        ("SN1-R1", 300)
    );
    let c = sim.call(&cancel(RSA2, "SN1")).await;
    assert_eq!(c.field("action").as_deref(), Some("refund"));
    let n3 = rx.next(RSA2).await;
    assert_eq!(n3.trade_status, alipay::TradeStatus::TradeClosed);
    let ids = [&n1.notify_id, &n2.notify_id, &n3.notify_id];
    assert!(
        ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2],
        "{ids:?}"
    );
    // A cancel that closes an unpaid trade is notified to the pay's URL.
    let waiting = sim
        .call(&pay(RSA2, "SN2", 100, "280003000000000000", Some(&url)))
        .await;
    assert_eq!(waiting.result(), "UNKNOWN");
    sim.call(&cancel(RSA2, "SN2")).await;
    let n4 = rx.next(RSA2).await;
    assert_eq!(
        (n4.out_trade_no.as_str(), n4.trade_status),
        ("SN2", alipay::TradeStatus::TradeClosed)
    );
    sim.handle.shutdown().await;
}

#[tokio::test]
async fn a_notify_url_at_the_simulators_own_routes_is_never_posted() {
    let sim = start(1).await;
    let base = sim.handle.http_url().unwrap();
    let targets = [
        format!("{base}/admin/reset"),
        format!("{}/admin/reset", sim.handle.https_url()),
        format!("{base}/gateway.do?service=x"),
    ];
    for (i, url) in targets.iter().enumerate() {
        let id = format!("SELF{i}");
        let a = sim.call(&pay(RSA2, &id, 100, NORMAL_CODE, Some(url))).await;
        assert_eq!(a.result(), "SUCCESS");
    }
    let mut refused = 0;
    for _ in 0..300 {
        refused = 0;
        for i in 0..targets.len() {
            let t = sim.trade(RSA2, &format!("SELF{i}")).await;
            let result = &t["notifications"][0]["attempts"][0]["result"];
            if result.as_str().is_some_and(|r| r.starts_with("refused")) {
                refused += 1;
            }
        }
        if refused == targets.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(refused, targets.len());
    assert_eq!(sim.trade_count().await, 3, "nothing was reset");
    let counters = sim.admin_get("/admin/counters").await;
    assert_eq!(counters["notifications"]["failed"], 3);
    assert_eq!(counters["rejections"], serde_json::json!({}));
    assert_eq!(counters["requests"]["pay"]["SUCCESS"], 3);
    sim.handle.shutdown().await;
}
