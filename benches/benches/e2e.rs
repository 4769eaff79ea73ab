//! One end-to-end round trip over loopback: a merchant's signed MD5 pay sent over HTTP to the
//! switch, which journals it, signs and sends it upstream over TLS to the simulator, journals
//! the SUCCESS answer and answers the merchant; and a query of a paid order, which the switch
//! answers from its journal without going upstream. The simulator and the switch run
//! in-process, on loopback port 0, with the journal in a temporary folder.
//!
//! Run: `cargo bench -p switch-benches --bench e2e`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use alipay::{read_response, Charset, FormBuilder, Signer};
use alipay_sim::client::HttpClient;
use alipay_sim::{GatewayClient, SimOptions, Simulator};
use criterion::{criterion_group, criterion_main, Criterion};
use tokio::runtime::Runtime;

/// The merchant: acquirer mode, calls for itself with MD5.
const MERCHANT: &str = "2088000000000001";
/// The acquirer's upstream account at the simulator.
const ACQUIRER: &str = "2088101122136241";
/// A buyer code with no magic in the simulator: the pay succeeds at once.
const CODE: &str = "286648812345678901";

static NEXT_ORDER: AtomicU64 = AtomicU64::new(0);

fn keys_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/keys")
}

/// The least configuration that carries a pay: one upstream account, one merchant, one caller,
/// plain HTTP on loopback (TLS between merchant and switch would measure the handshake, not the
/// switch; the switch's own upstream leg is TLS as in production).
fn config_text(dir: &Path, sim_url: &str, sim_cert: &Path) -> String {
    let keys = keys_dir();
    let keys = keys.display();
    let data = dir.display();
    let cert = sim_cert.display();
    format!(
        r#"
[node]
id = "bench"

[listen]
http = "127.0.0.1:0"

[journal]
path = "{data}/journal"

[gateway]
rsa_private_key = "{keys}/switch_rsa_private.pem"

[[accounts]]
name = "acquirer"
partner = "{ACQUIRER}"
sign_type = "MD5"
key = "{keys}/md5_2088101122136241.key"
endpoints = [{{ name = "primary", url = "{sim_url}/gateway.do" }}]
ca_cert = "{cert}"

[[merchants]]
id = "{MERCHANT}"
name = "Lucky Noodle Bar"
mode = "acquirer"
account = "acquirer"
secondary_merchant_id = "LNB0001"
mcc = "5812"
stores = [{{ id = "LNB-WFJ", name = "Wangfujing" }}]

[[callers]]
id = "{MERCHANT}"
kind = "merchant"
sign_type = "MD5"
key = "{keys}/caller_md5_2088000000000001.key"
"#
    )
}

/// A signed (query, body) of a pay of order `ptid`.
fn pay(signer: &Signer, ptid: &str) -> (String, Vec<u8>) {
    let mut b = FormBuilder::new(Charset::Utf8);
    for (n, v) in [
        ("service", "alipay.acquire.overseas.spot.pay"),
        ("partner", MERCHANT),
        ("alipay_seller_id", MERCHANT),
        ("partner_trans_id", ptid),
        ("trans_name", "Noodles"),
        ("currency", "USD"),
        ("trans_amount", "12.50"),
        ("buyer_identity_code", CODE),
        ("identity_code_type", "barcode"),
        ("trans_create_time", "20261127120000"),
        ("biz_product", "OVERSEAS_MBARCODE_PAY"),
    ] {
        b.push(n, v);
    }
    b.finish_post(signer).unwrap_or_else(|e| panic!("{e}"))
}

/// A signed (query, body) of a query of order `ptid`.
fn query(signer: &Signer, ptid: &str) -> (String, Vec<u8>) {
    let mut b = FormBuilder::new(Charset::Utf8);
    for (n, v) in [
        ("service", "alipay.acquire.overseas.query"),
        ("partner", MERCHANT),
        ("partner_trans_id", ptid),
    ] {
        b.push(n, v);
    }
    b.finish_post(signer).unwrap_or_else(|e| panic!("{e}"))
}

/// The answer's `result_code` and `alipay_trans_status` (HTTP 200 and accepted, or it panics).
fn answer(status: u16, body: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(body);
    assert_eq!(status, 200, "{text}");
    let mut scratch = String::new();
    let doc = read_response(body, &mut scratch, 1 << 20).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert!(doc.is_success, "rejected: {text}");
    let fields = doc.fields();
    let field = |n: &str| fields.get(n).map(|v| v.into_owned()).unwrap_or_default();
    (field("result_code"), field("alipay_trans_status"))
}

/// Queries the simulator has answered so far.
async fn sim_queries(admin: &HttpClient) -> u64 {
    let (status, c) = admin
        .get_json("/admin/counters")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status, 200, "{c}");
    c["requests"]["query"]
        .as_object()
        .map(|m| m.values().filter_map(serde_json::Value::as_u64).sum())
        .unwrap_or(0)
}

fn round_trip(c: &mut Criterion) {
    let rt = Runtime::new().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (sim, running) = rt.block_on(async {
        let options = SimOptions::for_tests().unwrap_or_else(|e| panic!("{e}"));
        let sim = Simulator::start(options)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let cert = dir.path().join("sim-cert.pem");
        std::fs::write(&cert, sim.cert_pem()).unwrap_or_else(|e| panic!("{e}"));
        let text = config_text(dir.path(), &sim.https_url(), &cert);
        let config = switch::config::Config::parse(&text, "e2e bench", dir.path())
            .unwrap_or_else(|e| panic!("{e}"));
        let running = switch::app::start(config, std::future::pending())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        (sim, running)
    });
    let http = running
        .http
        .unwrap_or_else(|| panic!("the switch listens on plain HTTP"));
    let client = GatewayClient::new(&format!("http://{http}"), None)
        .unwrap_or_else(|e| panic!("{e}"))
        .with_timeout(Duration::from_secs(30));
    let admin = HttpClient::new(&sim.https_url(), Some(sim.cert_pem().as_bytes()))
        .unwrap_or_else(|e| panic!("{e}"));
    let signer = Signer::md5(
        std::fs::read_to_string(keys_dir().join("caller_md5_2088000000000001.key"))
            .unwrap_or_else(|e| panic!("{e}"))
            .trim(),
    )
    .unwrap_or_else(|e| panic!("{e}"));

    // Outside the timing: a pay is answered SUCCESS, and a query of it comes from the journal
    // (the simulator sees no query).
    let paid = "E2E-PAID";
    rt.block_on(async {
        let (q, b) = pay(&signer, paid);
        let r = client
            .post_raw(&q, b)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(answer(r.status, &r.body).0, "SUCCESS");
        let before = sim_queries(&admin).await;
        let (q, b) = query(&signer, paid);
        let r = client
            .post_raw(&q, b)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            answer(r.status, &r.body),
            ("SUCCESS".to_owned(), "TRADE_SUCCESS".to_owned())
        );
        assert_eq!(
            sim_queries(&admin).await,
            before,
            "answered from the journal"
        );
    });

    let mut group = c.benchmark_group("e2e");
    group.bench_function("pay/md5/http", |b| {
        b.iter(|| {
            let n = NEXT_ORDER.fetch_add(1, Ordering::Relaxed);
            let (q, body) = pay(&signer, &format!("E2E-{n:012}"));
            rt.block_on(async {
                let r = client
                    .post_raw(&q, body)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(r.status, 200);
                r.body.len()
            })
        })
    });
    let (q, body) = query(&signer, paid);
    group.bench_function("query/paid/http", |b| {
        b.iter(|| {
            rt.block_on(async {
                let r = client
                    .post_raw(&q, body.clone())
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(r.status, 200);
                r.body.len()
            })
        })
    });
    group.finish();

    rt.block_on(async {
        running.stop().await.unwrap_or_else(|e| panic!("{e}"));
        sim.shutdown().await;
    });
}

criterion_group!(benches, round_trip);
criterion_main!(benches);
