//! Helpers of the switch's integration tests: a simulator in-process on loopback port 0, a
//! switch in-process (or as a child process) configured against it, with its journal in a
//! temporary folder, and clients that sign like merchants.

use std::path::{Path, PathBuf};
use std::time::Duration;

use alipay::{Charset, FormBuilder, SignType, Signer, Verifier};
use alipay_sim::client::HttpClient;
use alipay_sim::{GatewayClient, SimHandle, SimOptions, Simulator};
use serde_json::Value;
use switch::app::Running;
use switch::config::Config;

/// Merchant 1: acquirer mode, calls for itself with MD5.
pub const M1: &str = "2088000000000001";
/// Merchant 2: acquirer mode, reached through the SI.
pub const M2: &str = "2088000000000002";
/// Merchant 3: direct mode (its own RSA2 account), calls for itself with RSA2, and through the SI.
pub const M3: &str = "2088000000000003";
/// The system integrator, MD5, acting for M2 and M3.
pub const SI: &str = "2088000000000009";
/// The acquirer's upstream account at the simulator.
pub const ACQUIRER: &str = "2088101122136241";
/// M3's own upstream account at the simulator.
pub const DIRECT: &str = "2088101122136242";
/// A buyer code with no magic.
pub const CODE: &str = "286648812345678901";

pub fn keys_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/keys")
}

pub fn key(name: &str) -> String {
    std::fs::read_to_string(keys_dir().join(name)).unwrap()
}

/// How `caller` signs its requests.
pub fn signer(caller: &str) -> Signer {
    match caller {
        M1 => Signer::md5(key("caller_md5_2088000000000001.key").trim()).unwrap(),
        SI => Signer::md5(key("caller_md5_2088000000000009.key").trim()).unwrap(),
        M3 => Signer::from_key_text(SignType::Rsa2, &key("merchant_rsa2_private.pem")).unwrap(),
        _ => panic!("no such caller"),
    }
}

/// Checks the switch's answers to `caller`.
pub fn verifier(caller: &str) -> Verifier {
    match caller {
        M1 => Verifier::from_key_text(SignType::Md5, key("caller_md5_2088000000000001.key").trim())
            .unwrap(),
        SI => Verifier::from_key_text(SignType::Md5, key("caller_md5_2088000000000009.key").trim())
            .unwrap(),
        M3 => Verifier::from_key_text(SignType::Rsa2, &key("switch_rsa_public.pem")).unwrap(),
        _ => panic!("no such caller"),
    }
}

/// The switch configuration for the tests: the shipped layout, on port 0, against `sim_url`.
pub fn config_text(dir: &Path, sim_url: &str, sim_cert: &Path) -> String {
    let keys = keys_dir();
    let keys = keys.display();
    let data = dir.display();
    let cert = sim_cert.display();
    format!(
        r#"
[node]
id = "t1"

[listen]
https = "127.0.0.1:0"
http = "127.0.0.1:0"
admin = "127.0.0.1:0"
admin_api = "127.0.0.1:0"
cert_out = "{data}/switch-cert.pem"

[journal]
path = "{data}/journal"

[gateway]
request_timeout_ms = 10000
header_read_timeout_ms = 1000
rsa_private_key = "{keys}/switch_rsa_private.pem"

[[accounts]]
name = "acquirer"
partner = "{ACQUIRER}"
sign_type = "MD5"
key = "{keys}/md5_2088101122136241.key"
endpoints = [{{ name = "primary", url = "{sim_url}/gateway.do" }}]
request_timeout_ms = 2000
connect_timeout_ms = 1000
ca_cert = "{cert}"

[[accounts]]
name = "direct-rsa2"
partner = "{DIRECT}"
sign_type = "RSA2"
key = "{keys}/merchant_rsa2_private.pem"
alipay_public_key = "{keys}/alipay_rsa2_public.pem"
endpoints = [{{ name = "primary", url = "{sim_url}/gateway.do" }}]
request_timeout_ms = 2000
connect_timeout_ms = 1000
ca_cert = "{cert}"

[[merchants]]
id = "{M1}"
name = "Lucky Noodle Bar"
mode = "acquirer"
account = "acquirer"
secondary_merchant_id = "LNB0001"
mcc = "5812"
stores = [{{ id = "LNB-WFJ", name = "Wangfujing" }}]

[[merchants]]
id = "{M2}"
name = "Harbour Books"
mode = "acquirer"
account = "acquirer"
secondary_merchant_id = "HB0002"
mcc = "5942"
stores = [{{ id = "HB-CENTRAL", name = "Central" }}, {{ id = "HB-AIRPORT", name = "Airport" }}]

[[merchants]]
id = "{M3}"
name = "Jade Garden Hotel"
mode = "direct"
account = "direct-rsa2"
mcc = "7011"

[[callers]]
id = "{M1}"
kind = "merchant"
sign_type = "MD5"
key = "{keys}/caller_md5_2088000000000001.key"

[[callers]]
id = "{M3}"
kind = "merchant"
sign_type = "RSA2"
key = "{keys}/merchant_rsa2_public.pem"

[[callers]]
id = "{SI}"
kind = "integrator"
merchants = ["{M2}", "{M3}"]
sign_type = "MD5"
key = "{keys}/caller_md5_2088000000000009.key"
"#
    )
}

/// A simulator and a switch in front of it.
#[allow(dead_code)] // `sim` and `dir` live as long as the test.
pub struct Env {
    pub sim: SimHandle,
    pub sim_admin: HttpClient,
    pub switch: Option<Running>,
    pub client: GatewayClient,
    pub dir: tempfile::TempDir,
    pub config: Config,
}

pub async fn start_sim() -> SimHandle {
    let o = SimOptions::for_tests().unwrap();
    Simulator::start(o).await.unwrap()
}

/// Writes the simulator's certificate and the switch's configuration (changed by `edit`) into
/// `dir`.
pub fn write_config(
    dir: &Path,
    sim: &SimHandle,
    edit: impl FnOnce(String) -> String,
) -> (PathBuf, Config) {
    let cert = dir.join("sim-cert.pem");
    std::fs::write(&cert, sim.cert_pem()).unwrap();
    let text = edit(config_text(dir, &sim.https_url(), &cert));
    let path = dir.join("switch.toml");
    std::fs::write(&path, &text).unwrap();
    let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    (path, config)
}

pub async fn start() -> Env {
    start_with(|t| t).await
}

/// Starts a simulator and a switch whose configuration text `edit` changes.
pub async fn start_with(edit: impl FnOnce(String) -> String) -> Env {
    start_custom(|_| {}, edit, switch::app::system_clock()).await
}

/// Starts a simulator whose options `sim` changes and a switch whose configuration text `edit`
/// changes, reading the wall clock `clock`.
pub async fn start_custom(
    sim: impl FnOnce(&mut SimOptions),
    edit: impl FnOnce(String) -> String,
    clock: switch::engine::Clock,
) -> Env {
    let mut o = SimOptions::for_tests().unwrap();
    sim(&mut o);
    let sim = Simulator::start(o).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_, config) = write_config(dir.path(), &sim, edit);
    let running = switch::app::start_with_clock(config.clone(), std::future::pending(), clock)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let url = format!("http://{}", running.http.unwrap());
    let client = GatewayClient::new(&url, None)
        .unwrap()
        .with_timeout(Duration::from_secs(30));
    let sim_admin = HttpClient::new(&sim.https_url(), Some(sim.cert_pem().as_bytes())).unwrap();
    Env {
        sim,
        sim_admin,
        switch: Some(running),
        client,
        dir,
        config,
    }
}

/// An answer of the switch.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    fn doc<T>(&self, f: impl FnOnce(&alipay::xml::ResponseDoc<'_>) -> T) -> T {
        let mut scratch = String::new();
        let doc = alipay::read_response(&self.body, &mut scratch, 1 << 20)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)));
        f(&doc)
    }

    /// Asserts the answer is signed for `caller` (when signed) and returns is_success.
    pub fn verify(&self, caller: &str) -> bool {
        assert_eq!(self.status, 200, "{}", String::from_utf8_lossy(&self.body));
        self.doc(|doc| {
            if doc.is_success {
                assert!(doc.sign.is_some(), "an accepted answer must be signed");
            }
            if doc.sign.is_some() {
                doc.verify(&verifier(caller), &mut Vec::new())
                    .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)));
            }
            doc.is_success
        })
    }

    pub fn field(&self, name: &str) -> Option<String> {
        self.doc(|doc| doc.fields().get(name).map(|v| v.into_owned()))
    }

    pub fn result(&self) -> String {
        self.field("result_code").unwrap_or_default()
    }

    /// The `<error>` of a gateway rejection.
    pub fn gateway_error(&self) -> Option<String> {
        self.doc(|doc| (!doc.is_success).then(|| doc.error.as_deref().unwrap_or("").to_owned()))
    }
}

/// Parameters of a pay by `caller` for `seller` (the merchant).
pub fn pay(
    caller: &str,
    seller: &str,
    ptid: &str,
    amount: &str,
    code: &str,
) -> Vec<(String, String)> {
    params(&[
        ("service", "alipay.acquire.overseas.spot.pay"),
        ("partner", caller),
        ("alipay_seller_id", seller),
        ("partner_trans_id", ptid),
        ("trans_name", "Noodles"),
        ("currency", "USD"),
        ("trans_amount", amount),
        ("buyer_identity_code", code),
        ("identity_code_type", "barcode"),
        ("trans_create_time", "20261127120000"),
        ("biz_product", "OVERSEAS_MBARCODE_PAY"),
    ])
}

pub fn query(caller: &str, ptid: &str) -> Vec<(String, String)> {
    params(&[
        ("service", "alipay.acquire.overseas.query"),
        ("partner", caller),
        ("partner_trans_id", ptid),
    ])
}

pub fn cancel(caller: &str, ptid: &str) -> Vec<(String, String)> {
    params(&[
        ("service", "alipay.acquire.cancel"),
        ("partner", caller),
        ("out_trade_no", ptid),
        ("timestamp", "1795000000000"),
    ])
}

pub fn refund(caller: &str, ptid: &str, rid: &str, amount: &str) -> Vec<(String, String)> {
    params(&[
        ("service", "alipay.acquire.overseas.spot.refund"),
        ("partner", caller),
        ("partner_trans_id", ptid),
        ("partner_refund_id", rid),
        ("refund_amount", amount),
        ("currency", "USD"),
        ("is_sync", "Y"),
    ])
}

pub fn params(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

/// Replaces (or adds) a parameter.
pub fn set(mut p: Vec<(String, String)>, name: &str, value: &str) -> Vec<(String, String)> {
    p.retain(|(n, _)| n != name);
    p.push((name.to_owned(), value.to_owned()));
    p
}

/// The signed (query, body) of `p`, signed by `caller`'s key.
pub fn signed(p: &[(String, String)], caller: &str) -> (String, Vec<u8>) {
    let mut b = FormBuilder::new(Charset::Utf8);
    for (n, v) in p {
        b.push(n, v);
    }
    b.finish_post(&signer(caller)).unwrap()
}

impl Env {
    /// POSTs `p` signed by its `partner`.
    pub async fn post(&self, p: &[(String, String)]) -> Answer {
        let caller = p
            .iter()
            .find(|(n, _)| n == "partner")
            .map(|(_, v)| v.clone())
            .unwrap();
        let (query, body) = signed(p, &caller);
        self.post_raw(&query, body).await
    }

    /// POSTs `p` and checks the answer is accepted and signed for its caller.
    pub async fn call(&self, p: &[(String, String)]) -> Answer {
        let caller = p
            .iter()
            .find(|(n, _)| n == "partner")
            .map(|(_, v)| v.clone())
            .unwrap();
        let a = self.post(p).await;
        assert!(
            a.verify(&caller),
            "rejected: {}",
            String::from_utf8_lossy(&a.body)
        );
        a
    }

    pub async fn post_raw(&self, query: &str, body: Vec<u8>) -> Answer {
        let r = self.client.post_raw(query, body).await.unwrap();
        Answer {
            status: r.status,
            body: r.body.to_vec(),
        }
    }

    /// Every trade the simulator holds for `partner`.
    pub async fn sim_trades(&self, partner: &str) -> Vec<Value> {
        self.sim_admin.get_all_trades(Some(partner)).await.unwrap()
    }

    /// Sets the simulator's dials (any subset).
    pub async fn sim_dials(&self, dials: Value) {
        let (status, body) = self
            .sim_admin
            .send_json(hyper::Method::PUT, "/admin/dials", &dials)
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
    }

    /// The simulator's counters.
    pub async fn sim_counters(&self) -> Value {
        self.sim_admin.get_json("/admin/counters").await.unwrap().1
    }

    /// Pay requests the simulator has accepted, all outcomes.
    pub async fn sim_pays(&self) -> u64 {
        let c = self.sim_counters().await;
        c["requests"]["pay"]
            .as_object()
            .map(|m| m.values().filter_map(Value::as_u64).sum())
            .unwrap_or(0)
    }

    /// Every request the simulator has seen (accepted or rejected).
    pub async fn sim_requests(&self) -> u64 {
        let c = self.sim_counters().await;
        let accepted: u64 = c["requests"]
            .as_object()
            .map(|m| {
                m.values()
                    .filter_map(Value::as_object)
                    .flat_map(|o| o.values().filter_map(Value::as_u64))
                    .sum()
            })
            .unwrap_or(0);
        let rejected: u64 = c["rejections"]
            .as_object()
            .map(|m| m.values().filter_map(Value::as_u64).sum())
            .unwrap_or(0);
        accepted + rejected
    }

    /// Events in the switch's journal (read beside the running switch).
    /// The journaled state of `caller`'s order `ptid` (read beside the running switch).
    pub fn journal_txn(&self, caller: &str, ptid: &str) -> Option<ledger::TxnState> {
        let ro = ledger::Journal::open_read_only(&self.config.journal.path).unwrap();
        ro.txn(&ledger::TxnKey::new(caller, ptid)).unwrap()
    }

    /// Polls the journal every 50 ms until `caller`'s order `ptid` satisfies `done`, at most
    /// `within`; returns the last state seen (the caller asserts on it).
    pub async fn wait_txn(
        &self,
        caller: &str,
        ptid: &str,
        within: Duration,
        done: impl Fn(&ledger::TxnState) -> bool,
    ) -> Option<ledger::TxnState> {
        let end = tokio::time::Instant::now() + within;
        loop {
            let s = self.journal_txn(caller, ptid);
            if s.as_ref().is_some_and(&done) || tokio::time::Instant::now() >= end {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn journal_events(&self) -> u64 {
        let path = self.config.journal.path.clone();
        let ro = ledger::Journal::open_read_only(&path).unwrap();
        ro.chain_head().unwrap().seq
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.switch.take() {
            s.stop().await.unwrap();
        }
    }
}
