//! Merchant notifications end to end: a pay answered UNKNOWN that the resolver later finds paid
//! or closed is notified to the merchant's `notify_url` (a small HTTP server in the test that
//! verifies each form's signature with the caller's key); failed tries are resent with the same
//! `notify_id` until one is acknowledged, and given up on (an exception) after the ladder; a
//! merchant endpoint that hangs does not delay another merchant's notifications.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alipay::{Form, FormLimits, TradeStatusSync, Verifier};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use ledger::{EventBody, NotifyResult, TxnKey, TxnState};

use crate::common::*;

/// The resolver on a short schedule (the simulator's buyer acts after 300 ms) and a fast
/// notification ladder: 7 tries, 100 ms apart.
const FAST: &str = r#"
[resolver]
first_query_after_ms = 200
query_interval_ms = 200
query_window_ms = 1500
cancel_retry_ms = [100, 200]

[notify]
retry_ms = [100, 100, 100, 100, 100, 100]
timeout_ms = 1000
"#;

/// Tries of the [`FAST`] ladder.
const TRIES: usize = 7;

/// Upper bound for anything to happen at all (never a speed goal).
const PATIENCE: Duration = Duration::from_secs(30);

/// A simulator whose buyers confirm or decline 300 ms after an UNKNOWN pay, and a switch in
/// front of it with `extra` appended to its configuration.
async fn start_notifying(extra: &str) -> Env {
    start_custom(
        |o| o.config.rules.confirm_delay_ms = 300,
        |t| t + extra,
        switch::app::system_clock(),
    )
    .await
}

/// How the merchant's endpoint answers one POST.
#[derive(Debug, Clone, Copy)]
enum Reply {
    Answer(u16, &'static str),
    Hang,
}

/// One notification the merchant's endpoint received.
#[derive(Debug, Clone)]
struct Received {
    /// The form parsed and its signature verified with the caller's key.
    notice: Result<TradeStatusSync, String>,
    /// It was answered with the acknowledgement.
    acked: bool,
}

/// A merchant's notification endpoint on loopback: answers the n-th POST (from 0) with
/// `script(n)`.
struct Receiver {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    hanging: Arc<AtomicUsize>,
}

/// Counts a hanging request while it lasts.
struct Hanging(Arc<AtomicUsize>);

impl Drop for Hanging {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Receiver {
    async fn start(caller: &str, script: fn(usize) -> Reply) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let hanging = Arc::new(AtomicUsize::new(0));
        let verifier = Arc::new(verifier(caller));
        let (r, h) = (Arc::clone(&received), Arc::clone(&hanging));
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (received, hanging, verifier) =
                    (Arc::clone(&r), Arc::clone(&h), Arc::clone(&verifier));
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (received, hanging, verifier) = (
                        Arc::clone(&received),
                        Arc::clone(&hanging),
                        Arc::clone(&verifier),
                    );
                    async move {
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let notice = read_notice(&body, &verifier);
                        let n = received.lock().unwrap().len();
                        let reply = script(n);
                        let acked = matches!(reply, Reply::Answer(200, b) if b.trim() == "success");
                        received.lock().unwrap().push(Received { notice, acked });
                        let (status, text) = match reply {
                            Reply::Answer(s, t) => (s, t),
                            Reply::Hang => {
                                hanging.fetch_add(1, Ordering::SeqCst);
                                let _counted = Hanging(hanging);
                                std::future::pending::<(u16, &str)>().await
                            }
                        };
                        let mut r =
                            hyper::Response::new(Full::new(Bytes::from_static(text.as_bytes())));
                        *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                        Ok::<_, Infallible>(r)
                    }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Receiver {
            addr,
            received,
            hanging,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/alipay/notify", self.addr)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    fn hanging(&self) -> usize {
        self.hanging.load(Ordering::SeqCst)
    }
}

/// Reads a notification as a merchant does: the signature first, then the fields.
fn read_notice(body: &[u8], verifier: &Verifier) -> Result<TradeStatusSync, String> {
    let form = Form::parse(b"", body, &FormLimits::default()).map_err(|e| e.to_string())?;
    form.verify(verifier, &mut Vec::new())
        .map_err(|e| format!("signature: {e}"))?;
    TradeStatusSync::from_form(&form).map_err(|e| e.to_string())
}

/// Waits, polling, until `done` holds; panics after [`PATIENCE`].
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Env {
    /// The transaction's state, read beside the running switch.
    fn txn(&self, key: &TxnKey) -> TxnState {
        let ro = ledger::Journal::open_read_only(&self.config.journal.path).unwrap();
        ro.txn(key).unwrap().expect("the transaction is journaled")
    }

    /// The transaction's notification tries, in order.
    fn notify_attempts(&self, key: &TxnKey) -> Vec<(u32, NotifyResult)> {
        let ro = ledger::Journal::open_read_only(&self.config.journal.path).unwrap();
        ro.events_of(key)
            .unwrap()
            .into_iter()
            .filter_map(|e| match e.body {
                EventBody::NotifyAttempt {
                    attempt, result, ..
                } => Some((attempt, result)),
                _ => None,
            })
            .collect()
    }

    /// True when the transaction is in the journal's pending table.
    fn listed_pending(&self, key: &TxnKey) -> bool {
        let ro = ledger::Journal::open_read_only(&self.config.journal.path).unwrap();
        let found = ro.pending().unwrap().any(|s| s.unwrap().txn == *key);
        found
    }

    /// A pay that answers UNKNOWN (magic buyer `code`), its result to be notified to `url`.
    async fn unknown_pay(&self, caller: &str, seller: &str, ptid: &str, code: &str, url: &str) {
        let p = set(pay(caller, seller, ptid, "9.00", code), "notify_url", url);
        let a = self.call(&p).await;
        assert_eq!(
            a.result(),
            "UNKNOWN",
            "{}",
            String::from_utf8_lossy(&a.body)
        );
    }
}

fn success(_: usize) -> Reply {
    Reply::Answer(200, "success")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pay_resolved_later_is_notified_with_its_final_status() {
    let env = start_notifying(FAST).await;
    let merchant = Receiver::start(M1, success).await;
    // 280001: UNKNOWN, then the buyer confirms; 280002: UNKNOWN, then the buyer declines.
    env.unknown_pay(M1, M1, "N-PAID", "280001000000000001", &merchant.url())
        .await;
    env.unknown_pay(M1, M1, "N-CLOSED", "280002000000000001", &merchant.url())
        .await;
    eventually("both notifications received", || {
        merchant.received().len() >= 2
    })
    .await;
    let mut notices: Vec<TradeStatusSync> = merchant
        .received()
        .into_iter()
        .map(|r| r.notice.unwrap_or_else(|e| panic!("{e}")))
        .collect();
    notices.sort_by(|a, b| a.out_trade_no.cmp(&b.out_trade_no));
    let [closed, paid] = notices.as_slice() else {
        panic!("{notices:?}");
    };
    assert_eq!(paid.out_trade_no, "N-PAID");
    assert_eq!(paid.trade_status, alipay::TradeStatus::TradeSuccess);
    assert_eq!(paid.total_fee.to_string(), "9.00");
    assert!(!paid.trade_no.is_empty());
    assert!(paid.gmt_payment.is_some());
    assert_eq!(closed.out_trade_no, "N-CLOSED");
    assert_eq!(closed.trade_status, alipay::TradeStatus::TradeClosed);
    assert_ne!(paid.notify_id, closed.notify_id);
    for ptid in ["N-PAID", "N-CLOSED"] {
        let key = TxnKey::new(M1, ptid);
        eventually("the delivery journaled", || !env.txn(&key).is_pending()).await;
        assert_eq!(env.notify_attempts(&key), [(1, NotifyResult::Delivered)]);
        assert!(!env.listed_pending(&key));
    }
    env.stop().await;
}

/// Five different failures, then the acknowledgement (with a trailing newline).
fn five_failures(n: usize) -> Reply {
    const FAILURES: [Reply; 5] = [
        Reply::Answer(500, "success"),
        Reply::Answer(200, "fail"),
        Reply::Answer(503, ""),
        Reply::Answer(200, "successful"),
        Reply::Answer(404, "success"),
    ];
    FAILURES
        .get(n)
        .copied()
        .unwrap_or(Reply::Answer(200, "success\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_notify_url_that_fails_five_times_then_succeeds_receives_exactly_one_accepted_notification(
) {
    let env = start_notifying(FAST).await;
    let merchant = Receiver::start(M1, five_failures).await;
    env.unknown_pay(M1, M1, "N-FLAKY", "280001000000000002", &merchant.url())
        .await;
    let key = TxnKey::new(M1, "N-FLAKY");
    eventually("the notification accepted", || {
        merchant.received().iter().any(|r| r.acked)
    })
    .await;
    eventually("the delivery journaled", || !env.txn(&key).is_pending()).await;
    // Longer than a ladder step: a seventh POST would have come by now.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let received = merchant.received();
    assert_eq!(received.len(), 6, "{received:?}");
    assert_eq!(received.iter().filter(|r| r.acked).count(), 1);
    let notices: Vec<TradeStatusSync> = received
        .into_iter()
        .map(|r| r.notice.unwrap_or_else(|e| panic!("{e}")))
        .collect();
    assert!(notices.iter().all(|n| n.notify_id == notices[0].notify_id));
    assert!(notices.iter().all(|n| n.out_trade_no == "N-FLAKY"));
    assert!(notices
        .iter()
        .all(|n| n.trade_status == alipay::TradeStatus::TradeSuccess));

    let failed = |t: &str| NotifyResult::Failed(t.to_owned());
    assert_eq!(
        env.notify_attempts(&key),
        [
            (1, failed("HTTP 500")),
            (2, failed("body not success")),
            (3, failed("HTTP 503")),
            (4, failed("body not success")),
            (5, failed("HTTP 404")),
            (6, NotifyResult::Delivered),
        ]
    );
    let state = env.txn(&key);
    assert!(state.notify.due.is_none() && state.notify.delivered);
    assert!(state.exception.is_none());
    assert!(!env.listed_pending(&key));

    let ops = env.switch.as_ref().unwrap().ops.unwrap();
    let metrics = alipay_sim::client::HttpClient::new(&format!("http://{ops}"), None)
        .unwrap()
        .request(hyper::Method::GET, "/metrics", None, Vec::new())
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&metrics.body).into_owned();
    for line in [
        "switch_notifications_total{result=\"delivered\"}",
        "switch_notifications_total{result=\"failed\"}",
        "switch_notify_queue",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(line)),
            "no {line} in:\n{text}"
        );
    }
    env.stop().await;
}

fn always_500(_: usize) -> Reply {
    Reply::Answer(500, "")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_notification_never_acknowledged_is_given_up_and_stays_pending() {
    let env = start_notifying(FAST).await;
    let merchant = Receiver::start(M1, always_500).await;
    env.unknown_pay(M1, M1, "N-DOWN", "280001000000000003", &merchant.url())
        .await;
    let key = TxnKey::new(M1, "N-DOWN");
    eventually("an exception journaled", || {
        env.txn(&key).exception.is_some()
    })
    .await;
    // Longer than a ladder step: no try comes after giving up.
    tokio::time::sleep(Duration::from_millis(500)).await;

    assert_eq!(merchant.received().len(), TRIES);
    let attempts = env.notify_attempts(&key);
    assert_eq!(attempts.len(), TRIES);
    for (i, (n, result)) in attempts.iter().enumerate() {
        assert_eq!(usize::try_from(*n).unwrap(), i + 1);
        assert_eq!(*result, NotifyResult::Failed("HTTP 500".to_owned()));
    }
    let state = env.txn(&key);
    let reason = &state.exception.as_ref().unwrap().reason;
    assert!(reason.contains(&format!("{TRIES} tries")), "{reason}");
    assert!(reason.contains("HTTP 500"), "{reason}");
    assert!(state.notify.due.is_some());
    assert!(state.is_pending());
    assert!(env.listed_pending(&key));
    env.stop().await;
}

fn hang(_: usize) -> Reply {
    Reply::Hang
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hanging_merchant_endpoint_does_not_delay_another_merchants_notifications() {
    // Two POSTs at most to one caller, three in all; a POST may hang for a minute.
    let extra = FAST.replace(
        "timeout_ms = 1000",
        "timeout_ms = 60000\nper_merchant = 2\nconcurrency = 3",
    );
    let env = start_notifying(&extra).await;
    let stuck = Receiver::start(M1, hang).await;
    let fine = Receiver::start(SI, success).await;
    for i in 1..=3 {
        let ptid = format!("N-STUCK-{i}");
        let code = format!("28000100000000001{i}");
        env.unknown_pay(M1, M1, &ptid, &code, &stuck.url()).await;
    }
    eventually("M1's two slots hanging", || stuck.hanging() == 2).await;

    // Only now does the other merchant's transaction start: its notification comes due while
    // M1's endpoint holds every slot M1 may have.
    env.unknown_pay(SI, M2, "N-FINE", "280001000000000021", &fine.url())
        .await;
    let key = TxnKey::new(SI, "N-FINE");
    eventually("the other merchant notified", || {
        fine.received().iter().any(|r| r.acked)
    })
    .await;
    eventually("its delivery journaled", || !env.txn(&key).is_pending()).await;
    let notice = fine.received()[0]
        .notice
        .clone()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(notice.out_trade_no, "N-FINE");
    assert_eq!(notice.trade_status, alipay::TradeStatus::TradeSuccess);

    // M1's endpoint is still hanging on its two POSTs; the third waits for one of its slots.
    assert_eq!(stuck.hanging(), 2);
    assert_eq!(stuck.received().len(), 2);
    for i in 1..=3 {
        let key = TxnKey::new(M1, format!("N-STUCK-{i}"));
        assert!(env.notify_attempts(&key).is_empty());
        assert!(env.txn(&key).notify.due.is_some());
    }
    env.stop().await;
}
