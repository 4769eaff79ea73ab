//! The upstream client against the simulator, in-process, over real sockets and real TLS: what
//! each transport fault comes to (answered, not sent, unknown), failover, the circuit breaker,
//! keep-alive reuse, the pool bound and the adaptive concurrency limit.
//!
//! No assertion is about time: deadlines are shown by the outcome they produce, and every call
//! is wrapped in a generous outer timeout only so that a broken deadline fails instead of
//! hanging.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use alipay::message::ExtendInfo;
use alipay::{
    Amount, BeijingTime, Charset, Currency, FormBuilder, IdentityCodeType, PayRequest,
    QueryRequest, Request, Secret, Service, SignType, Signer, Verifier,
};
use alipay_sim::client::HttpClient;
use alipay_sim::{SimHandle, SimOptions, Simulator};
use switch::tenants::{Account, EndpointSpec};
use switch::upstream::{
    BreakerConfig, BreakerState, Call, LimiterOptions, Upstream, UpstreamOptions,
};

const PARTNER: &str = "2088101122136241";
/// Not the account's key: answers signed with the real one do not verify with it.
const WRONG_KEY: &str = "00000000000000000000000000000000";
/// An outer bound on any one call, far above every deadline used here.
const OUTER: Duration = Duration::from_secs(60);

fn md5_key() -> String {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/keys/md5_2088101122136241.key");
    std::fs::read_to_string(path).unwrap().trim().to_owned()
}

async fn sim_with(tweak: impl FnOnce(&mut SimOptions)) -> SimHandle {
    let mut o = SimOptions::for_tests().unwrap();
    o.clock_start = BeijingTime::parse_dashed("2026-03-02 10:00:00");
    o.config.dials.hang_ms = 60_000;
    o.config.dials.slow_body_ms = 400;
    tweak(&mut o);
    Simulator::start(o).await.unwrap()
}

async fn sim() -> SimHandle {
    sim_with(|_| {}).await
}

fn gateway(sim: &SimHandle) -> String {
    format!("{}/gateway.do", sim.https_url())
}

/// An https URL where nothing listens: a port that was free a moment ago.
fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("https://127.0.0.1:{port}/gateway.do")
}

/// An https URL whose listener accepts TCP connections and then says nothing: the TLS handshake
/// never completes. The listener lives as long as the returned task.
async fn silent_url() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    (format!("https://127.0.0.1:{port}/gateway.do"), task)
}

/// The account builder: the simulator's MD5 acquirer account.
struct AccountSpec {
    endpoints: Vec<(&'static str, String)>,
    pool_size: usize,
    connect_timeout: Duration,
    request_timeout: Duration,
    verifier_key: String,
    ca_pem: Option<Vec<u8>>,
}

impl AccountSpec {
    fn new(sim: &SimHandle) -> AccountSpec {
        AccountSpec {
            endpoints: vec![("primary", gateway(sim))],
            pool_size: 4,
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(10),
            verifier_key: md5_key(),
            ca_pem: Some(sim.cert_pem().as_bytes().to_vec()),
        }
    }

    fn account(self) -> Arc<Account> {
        Arc::new(Account {
            name: "acq".to_owned(),
            partner: PARTNER.to_owned(),
            signer: Signer::md5(&md5_key()).unwrap(),
            verifier: Verifier::from_key_text(SignType::Md5, &self.verifier_key).unwrap(),
            endpoints: self
                .endpoints
                .into_iter()
                .map(|(name, url)| EndpointSpec {
                    name: name.to_owned(),
                    url,
                })
                .collect(),
            pool_size: self.pool_size,
            connect_timeout: self.connect_timeout,
            request_timeout: self.request_timeout,
            ca_pem: self.ca_pem,
        })
    }

    fn upstream(self) -> Upstream {
        Upstream::new(self.account()).unwrap()
    }
}

/// A signed pay of 10.00 USD with buyer code `code` (magic codes: simulator/README.md).
fn pay_form(account: &Account, id: &str, code: &str) -> (String, Vec<u8>) {
    let request = Request::Pay(PayRequest {
        partner: PARTNER,
        partner_trans_id: id,
        trans_name: "Coffee",
        trans_amount: Amount::from_minor(1000, Currency::USD),
        buyer_identity_code: Secret::new(code),
        identity_code_type: IdentityCodeType::Barcode,
        trans_create_time: BeijingTime::parse_compact("20260302100000").unwrap(),
        extend_info: Some(ExtendInfo {
            secondary_merchant_id: "SM001".into(),
            secondary_merchant_name: "Test Cafe".into(),
            secondary_merchant_industry: "5812".into(),
            store_id: "ST01".into(),
            store_name: "Main St".into(),
            terminal_id: "T1".into(),
        }),
        trans_currency: None,
        quantity: None,
        memo: None,
        trade_information: None,
        notify_url: None,
    });
    let mut b = FormBuilder::new(Charset::Utf8);
    request.write_form(&mut b);
    b.finish_post(&account.signer).unwrap()
}

fn query_form(account: &Account, id: &str) -> (String, Vec<u8>) {
    let request = Request::Query(QueryRequest {
        partner: PARTNER,
        partner_trans_id: Some(id),
        alipay_trans_id: None,
    });
    let mut b = FormBuilder::new(Charset::Utf8);
    request.write_form(&mut b);
    b.finish_post(&account.signer).unwrap()
}

const NORMAL: &str = "286648812345678901";
const HANG_NOT_CREATED: &str = "280031000000000000";
const RESET_PAID: &str = "280032000000000000";
const HTTP_502: &str = "280033000000000000";
const SLOW_BODY_PAID: &str = "280034000000000000";
const THROTTLED: &str = "280035000000000000";
const SYSTEM_ERROR_PAID: &str = "280020000000000000";

async fn pay(up: &Upstream, id: &str, code: &str) -> Call {
    let (query, body) = pay_form(up.account(), id, code);
    tokio::time::timeout(OUTER, up.call(Service::Pay, &query, body))
        .await
        .expect("the call returned")
}

/// The business field `name` of a verified answer.
fn field(body: &[u8], name: &str) -> Option<String> {
    let mut scratch = String::new();
    let doc = alipay::read_response(body, &mut scratch, 1 << 20).unwrap();
    doc.fields().get(name).map(|v| v.into_owned())
}

/// The simulator's trades of the test partner with this order number.
async fn trades_of(sim: &SimHandle, id: &str) -> usize {
    let admin = HttpClient::new(&sim.https_url(), Some(sim.cert_pem().as_bytes())).unwrap();
    let all = admin.get_all_trades(Some(PARTNER)).await.unwrap();
    all.iter()
        .filter(|t| t["partner_trans_id"].as_str() == Some(id))
        .count()
}

fn assert_answered(call: &Call, endpoint: &str, attempt: u32) -> Vec<u8> {
    match call {
        Call::Answered {
            endpoint: e,
            attempt: a,
            body,
        } => {
            assert_eq!((e.as_str(), *a), (endpoint, attempt), "{call:?}");
            body.to_vec()
        }
        other => panic!("expected an answer from {endpoint}, got {other:?}"),
    }
}

fn assert_unknown(call: &Call) -> (String, bool) {
    match call {
        Call::Unknown {
            endpoint,
            attempt,
            reason,
            throttled,
        } => {
            assert_eq!((endpoint.as_str(), *attempt), ("primary", 1), "{call:?}");
            (reason.clone(), *throttled)
        }
        other => panic!("expected an unknown outcome, got {other:?}"),
    }
}

fn assert_not_sent(call: &Call) -> String {
    match call {
        Call::NotSent { reason } => reason.clone(),
        other => panic!("expected not sent, got {other:?}"),
    }
}

#[tokio::test]
async fn a_pay_is_answered_and_verified() {
    let sim = sim().await;
    let up = AccountSpec::new(&sim).upstream();
    let call = pay(&up, "UP-PAY-1", NORMAL).await;
    let body = assert_answered(&call, "primary", 1);
    assert_eq!(field(&body, "result_code").as_deref(), Some("SUCCESS"));
    assert_eq!(
        field(&body, "partner_trans_id").as_deref(),
        Some("UP-PAY-1")
    );
    assert_eq!(trades_of(&sim, "UP-PAY-1").await, 1);
    assert_eq!(up.bad_signatures(), 0);
    let status = &up.endpoints()[0];
    assert_eq!(status.label, "acq/primary");
    assert_eq!(status.breaker, BreakerState::Closed);
    assert_eq!(status.in_use, 0);
    assert!(up.usable());
}

#[tokio::test]
async fn sequential_calls_reuse_a_keep_alive_connection() {
    let sim = sim().await;
    let up = AccountSpec::new(&sim).upstream();
    let calls = 20;
    assert_answered(&pay(&up, "UP-REUSE", NORMAL).await, "primary", 1);
    for _ in 0..calls {
        let (query, body) = query_form(up.account(), "UP-REUSE");
        let call = up.call(Service::Query, &query, body).await;
        let body = assert_answered(&call, "primary", 1);
        assert_eq!(
            field(&body, "alipay_trans_status").as_deref(),
            Some("TRADE_SUCCESS")
        );
    }
    let opened = up.endpoints()[0].connections_opened;
    // One connection serves them all; hyper-util may start a spare while the first is being
    // returned to the pool, so allow a few, far fewer than the calls.
    assert!(
        (1..=3).contains(&opened),
        "{opened} connections for {} calls",
        calls + 1
    );
}

#[tokio::test]
async fn a_dead_primary_fails_over_to_the_backup_and_the_pay_happens_once() {
    let sim = sim().await;
    let mut spec = AccountSpec::new(&sim);
    spec.endpoints = vec![("primary", dead_url()), ("backup", gateway(&sim))];
    let up = spec.upstream();
    let body = assert_answered(&pay(&up, "UP-FAILOVER", NORMAL).await, "backup", 2);
    assert_eq!(field(&body, "result_code").as_deref(), Some("SUCCESS"));
    assert_eq!(trades_of(&sim, "UP-FAILOVER").await, 1);
    let status = up.endpoints();
    assert_eq!(status[0].connect_failures, 1);
    assert_eq!(status[0].connections_opened, 0);
    assert_eq!(status[1].connections_opened, 1);
}

#[tokio::test]
async fn a_tls_handshake_past_the_connect_deadline_fails_over() {
    let sim = sim().await;
    let (silent, listener) = silent_url().await;
    let mut spec = AccountSpec::new(&sim);
    spec.connect_timeout = Duration::from_millis(300);
    spec.endpoints = vec![("primary", silent), ("backup", gateway(&sim))];
    let up = spec.upstream();
    let body = assert_answered(&pay(&up, "UP-SILENT", NORMAL).await, "backup", 2);
    assert_eq!(field(&body, "result_code").as_deref(), Some("SUCCESS"));
    assert_eq!(trades_of(&sim, "UP-SILENT").await, 1);
    assert_eq!(up.endpoints()[0].connect_failures, 1);
    listener.abort();
}

#[tokio::test]
async fn a_deadline_that_passes_while_connecting_is_not_sent() {
    let (silent, listener) = silent_url().await;
    let sim = sim().await;
    let mut spec = AccountSpec::new(&sim);
    // The whole call ends before the connect deadline: nothing was written.
    spec.connect_timeout = Duration::from_secs(30);
    spec.request_timeout = Duration::from_millis(300);
    spec.endpoints = vec![("primary", silent), ("backup", gateway(&sim))];
    let up = spec.upstream();
    let reason = assert_not_sent(&pay(&up, "UP-CONNECTING", NORMAL).await);
    assert!(reason.contains("while connecting"), "{reason}");
    // No time was left for the backup.
    assert_eq!(trades_of(&sim, "UP-CONNECTING").await, 0);
    assert_eq!(up.endpoints()[1].connections_opened, 0);
    listener.abort();
}

#[tokio::test]
async fn a_hang_is_unknown_at_the_deadline_and_never_fails_over() {
    let sim = sim().await;
    let mut spec = AccountSpec::new(&sim);
    spec.request_timeout = Duration::from_millis(800);
    // A backup that would answer: a hang after writing must not be sent there.
    spec.endpoints.push(("backup", gateway(&sim)));
    let up = spec.upstream();
    let (reason, throttled) = assert_unknown(&pay(&up, "UP-HANG", HANG_NOT_CREATED).await);
    assert!(reason.contains("deadline"), "{reason}");
    assert!(!throttled);
    // Sent once, to the primary only.
    assert_eq!(up.endpoints()[1].connections_opened, 0);
}

#[tokio::test]
async fn a_reset_after_the_request_is_unknown() {
    let sim = sim().await;
    let up = AccountSpec::new(&sim).upstream();
    let (reason, throttled) = assert_unknown(&pay(&up, "UP-RESET", RESET_PAID).await);
    assert!(!throttled, "{reason}");
    // The simulator did pay: exactly why this must not be read as "not sent".
    assert_eq!(trades_of(&sim, "UP-RESET").await, 1);
}

#[tokio::test]
async fn http_502_is_unknown() {
    let sim = sim().await;
    let up = AccountSpec::new(&sim).upstream();
    let (reason, throttled) = assert_unknown(&pay(&up, "UP-502", HTTP_502).await);
    assert_eq!(reason, "HTTP status 502");
    assert!(!throttled);
}

#[tokio::test]
async fn http_429_is_unknown_and_flagged_throttled() {
    let sim = sim().await;
    let up = AccountSpec::new(&sim).upstream();
    let (reason, throttled) = assert_unknown(&pay(&up, "UP-429", THROTTLED).await);
    assert!(throttled, "{reason}");
}

#[tokio::test]
async fn a_gateway_system_error_is_an_answer_for_the_engine_to_read() {
    let sim = sim().await;
    let up = AccountSpec::new(&sim).upstream();
    let body = assert_answered(
        &pay(&up, "UP-SYSERR", SYSTEM_ERROR_PAID).await,
        "primary",
        1,
    );
    let mut scratch = String::new();
    let doc = alipay::read_response(&body, &mut scratch, 1 << 20).unwrap();
    assert!(!doc.is_success);
    assert_eq!(doc.error.as_deref(), Some("SYSTEM_ERROR"));
}

#[tokio::test]
async fn a_slow_body_within_the_deadline_is_answered_and_past_it_unknown() {
    let sim = sim_with(|o| o.config.dials.slow_body_ms = 1_500).await;
    let up = AccountSpec::new(&sim).upstream();
    let body = assert_answered(&pay(&up, "UP-SLOW-1", SLOW_BODY_PAID).await, "primary", 1);
    assert_eq!(field(&body, "result_code").as_deref(), Some("SUCCESS"));
    let mut spec = AccountSpec::new(&sim);
    spec.request_timeout = Duration::from_millis(300);
    let up = spec.upstream();
    let (reason, _) = assert_unknown(&pay(&up, "UP-SLOW-2", SLOW_BODY_PAID).await);
    assert!(reason.contains("deadline"), "{reason}");
}

#[tokio::test]
async fn an_answer_that_does_not_verify_is_unknown_and_raises_the_alarm() {
    let sim = sim().await;
    let mut spec = AccountSpec::new(&sim);
    spec.verifier_key = WRONG_KEY.to_owned();
    let up = spec.upstream();
    let (reason, throttled) = assert_unknown(&pay(&up, "UP-BADSIG", NORMAL).await);
    assert!(reason.contains("signature"), "{reason}");
    assert!(!throttled);
    assert_eq!(up.bad_signatures(), 1);
    // Alipay did pay: the answer just cannot be trusted.
    assert_eq!(trades_of(&sim, "UP-BADSIG").await, 1);
}

#[tokio::test]
async fn an_untrusted_certificate_is_not_sent() {
    let sim = sim().await;
    let mut spec = AccountSpec::new(&sim);
    // Only the public roots: the simulator's self-signed certificate is refused.
    spec.ca_pem = None;
    let up = spec.upstream();
    let reason = assert_not_sent(&pay(&up, "UP-TLS", NORMAL).await);
    assert!(reason.contains("connect failed"), "{reason}");
    assert_eq!(trades_of(&sim, "UP-TLS").await, 0);
    assert_eq!(up.endpoints()[0].connect_failures, 1);
}

#[tokio::test]
async fn the_breaker_opens_after_connect_failures_and_the_endpoint_is_skipped() {
    let sim = sim().await;
    let mut spec = AccountSpec::new(&sim);
    spec.endpoints = vec![("primary", dead_url()), ("backup", gateway(&sim))];
    let options = UpstreamOptions {
        breaker: BreakerConfig {
            failures_max: 5,
            cool_down: Duration::from_secs(600),
        },
        ..UpstreamOptions::default()
    };
    let up = Upstream::with_options(spec.account(), options).unwrap();
    for i in 0..5 {
        let id = format!("UP-BRK-{i}");
        assert_answered(&pay(&up, &id, NORMAL).await, "backup", 2);
    }
    let status = up.endpoints();
    assert_eq!(status[0].breaker, BreakerState::Open);
    assert_eq!(status[0].connect_failures, 5);
    assert!(up.usable());
    // Now the primary is skipped: the backup is the first and only try.
    assert_answered(&pay(&up, "UP-BRK-5", NORMAL).await, "backup", 1);
    assert_eq!(up.endpoints()[0].connect_failures, 5);

    // An account whose only endpoint is dead: once its breaker is open, nothing is tried.
    let mut spec = AccountSpec::new(&sim);
    spec.endpoints = vec![("primary", dead_url())];
    let up = Upstream::with_options(spec.account(), options).unwrap();
    for i in 0..5 {
        let reason = assert_not_sent(&pay(&up, &format!("UP-DEAD-{i}"), NORMAL).await);
        assert!(reason.contains("connect failed"), "{reason}");
    }
    assert!(!up.usable());
    let reason = assert_not_sent(&pay(&up, "UP-DEAD-5", NORMAL).await);
    assert!(reason.contains("no usable endpoint"), "{reason}");
    assert_eq!(up.endpoints()[0].connect_failures, 5);
}

#[tokio::test]
async fn after_its_cool_down_a_recovered_endpoint_is_probed_and_closes_its_breaker() {
    // The endpoint's port is dead at first; the simulator comes up there later.
    let url = dead_url();
    let port: u16 = url
        .trim_start_matches("https://127.0.0.1:")
        .trim_end_matches("/gateway.do")
        .parse()
        .unwrap();
    let pem = alipay_sim::PemPair::self_signed().unwrap();
    let cool_down = Duration::from_millis(200);
    let account = Arc::new(Account {
        name: "acq".to_owned(),
        partner: PARTNER.to_owned(),
        signer: Signer::md5(&md5_key()).unwrap(),
        verifier: Verifier::from_key_text(SignType::Md5, &md5_key()).unwrap(),
        endpoints: vec![EndpointSpec {
            name: "primary".to_owned(),
            url,
        }],
        pool_size: 2,
        connect_timeout: Duration::from_secs(3),
        request_timeout: Duration::from_secs(10),
        ca_pem: Some(pem.cert_pem.as_bytes().to_vec()),
    });
    let options = UpstreamOptions {
        breaker: BreakerConfig {
            failures_max: 2,
            cool_down,
        },
        ..UpstreamOptions::default()
    };
    let up = Upstream::with_options(account, options).unwrap();
    for i in 0..2 {
        assert_not_sent(&pay(&up, &format!("UP-PROBE-{i}"), NORMAL).await);
    }
    assert_eq!(up.endpoints()[0].breaker, BreakerState::Open);
    let sim = sim_with(|o| {
        o.listen = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        o.tls = alipay_sim::TlsSource::Pem(pem.clone());
    })
    .await;
    // Waiting is not a timing assertion: the breaker only needs at least the cool-down to pass.
    tokio::time::sleep(cool_down * 2).await;
    assert!(up.usable());
    let body = assert_answered(&pay(&up, "UP-PROBE-2", NORMAL).await, "primary", 1);
    assert_eq!(field(&body, "result_code").as_deref(), Some("SUCCESS"));
    assert_eq!(up.endpoints()[0].breaker, BreakerState::Closed);
    assert_eq!(trades_of(&sim, "UP-PROBE-2").await, 1);
}

#[tokio::test]
async fn the_pool_bounds_connections_in_use() {
    let sim = sim().await;
    let mut spec = AccountSpec::new(&sim);
    spec.pool_size = 2;
    spec.request_timeout = Duration::from_secs(30);
    let up = spec.upstream();
    // Two calls that hang hold both slots.
    let mut hanging = Vec::new();
    for i in 0..2 {
        let up = up.clone();
        hanging.push(tokio::spawn(async move {
            pay(&up, &format!("UP-POOL-{i}"), HANG_NOT_CREATED).await
        }));
    }
    tokio::time::timeout(OUTER, async {
        while up.endpoints()[0].in_use < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("both hanging calls hold a connection");
    // A third call, with a deadline well before theirs, never gets a connection.
    let (query, body) = pay_form(up.account(), "UP-POOL-2", NORMAL);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
    let call = up.call_until(Service::Pay, &query, body, deadline).await;
    let reason = assert_not_sent(&call);
    assert!(reason.contains("pool exhausted"), "{reason}");
    assert_eq!(trades_of(&sim, "UP-POOL-2").await, 0);
    let status = &up.endpoints()[0];
    assert_eq!(status.in_use, 2);
    assert_eq!(status.connections_opened, 2);
    // Abandoned calls give their slots back.
    for h in &hanging {
        h.abort();
    }
    for h in hanging {
        let _ = h.await;
    }
    assert_eq!(up.endpoints()[0].in_use, 0);
}

/// Sets the simulator's dials (any subset).
async fn dials(sim: &SimHandle, dials: serde_json::Value) {
    let admin = HttpClient::new(&sim.https_url(), Some(sim.cert_pem().as_bytes())).unwrap();
    let (status, body) = admin
        .send_json(hyper::Method::PUT, "/admin/dials", &dials)
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn throttling_cuts_the_concurrency_limit_and_good_answers_raise_it_again() {
    let sim = sim().await;
    let mut spec = AccountSpec::new(&sim);
    spec.pool_size = 16;
    let options = UpstreamOptions {
        limiter: LimiterOptions {
            concurrency_min: 2,
            backoff_percent: 50,
        },
        ..UpstreamOptions::default()
    };
    let up = Upstream::with_options(spec.account(), options).unwrap();
    let limit = |up: &Upstream| up.endpoints()[0].concurrency_limit;
    assert_eq!(limit(&up), 16);

    // Alipay throttles every request: each 429 halves the limit, down to its floor.
    dials(&sim, serde_json::json!({ "throttle_rate": 1.0 })).await;
    let mut limits = Vec::new();
    for i in 0..5 {
        let (reason, throttled) = assert_unknown(&pay(&up, &format!("UP-AIMD-{i}"), NORMAL).await);
        assert!(throttled, "{reason}");
        limits.push(limit(&up));
    }
    assert_eq!(limits, [8, 4, 2, 2, 2]);
    // The pool is still 16: the limit is what bounds the calls now.
    assert_eq!(up.endpoints()[0].pool_size, 16);
    dials(&sim, serde_json::json!({ "throttle_rate": 0.0 })).await;

    // Two calls that hang hold the two slots; a third, with a deadline before theirs, waits
    // for a slot and is not sent, though the pool has connections to spare.
    let mut hanging = Vec::new();
    for i in 0..2 {
        let up = up.clone();
        hanging.push(tokio::spawn(async move {
            pay(&up, &format!("UP-AIMD-HANG-{i}"), HANG_NOT_CREATED).await
        }));
    }
    tokio::time::timeout(OUTER, async {
        while up.endpoints()[0].in_use < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("both hanging calls hold a slot");
    let (query, body) = pay_form(up.account(), "UP-AIMD-WAIT", NORMAL);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
    let call = up.call_until(Service::Pay, &query, body, deadline).await;
    let reason = assert_not_sent(&call);
    assert!(
        reason.contains("concurrency limit 2 of pool_size 16"),
        "{reason}"
    );
    assert_eq!(trades_of(&sim, "UP-AIMD-WAIT").await, 0);
    for h in &hanging {
        h.abort();
    }
    for h in hanging {
        let _ = h.await;
    }
    assert_eq!(up.endpoints()[0].in_use, 0);

    // Answers within the latency target raise the limit again, one step per limit's worth of
    // them. The bound on calls is generous: two quick answers are enough.
    assert_answered(&pay(&up, "UP-AIMD-OK", NORMAL).await, "primary", 1);
    let mut calls = 0;
    while limit(&up) <= 2 && calls < 50 {
        let (query, body) = query_form(up.account(), "UP-AIMD-OK");
        assert_answered(&up.call(Service::Query, &query, body).await, "primary", 1);
        calls += 1;
    }
    assert_eq!(limit(&up), 3, "after {calls} answered queries");
}
