//! The simulator, the switch and nginx as separate processes on loopback: each answers a signed
//! pay, is measured from /proc, and leaves no process behind when stopped.
//!
//! Needs the `alipay-sim` and `switch` binaries: `cargo test --workspace` builds them; with
//! `cargo test -p loadtest` alone they are built here (`cargo build -p alipay-sim -p switch`,
//! same target folder) when missing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use alipay::{Charset, FormBuilder, SignType, Signer, Verifier};
use alipay_sim::GatewayClient;
use loadtest::fleet::{Caller, Fleet};
use loadtest::procs::{
    self, JournalSyncs, NginxOptions, NginxProcess, Sampler, SimOptions, SimProcess, SwitchOptions,
    SwitchProcess, Target,
};

const CODE: &str = "286648812345678901";
/// The simulator's direct RSA2 account.
const DIRECT: &str = "2088101122136242";

fn key(name: &str) -> String {
    std::fs::read_to_string(procs::keys_dir().join(name)).unwrap()
}

/// Builds the binaries once when they are missing.
fn binaries() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let missing = ["alipay-sim", "switch"]
            .iter()
            .any(|b| procs::find_binary(b, None).is_err());
        if !missing {
            return;
        }
        // This executable is target/<profile>/deps/procs-HASH.
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().and_then(|d| d.parent()).unwrap();
        let target: PathBuf = profile_dir.parent().unwrap().to_path_buf();
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let mut cmd = std::process::Command::new(cargo);
        cmd.current_dir(procs::repo_dir())
            .env("CARGO_TARGET_DIR", &target)
            .args(["build", "-p", "alipay-sim", "-p", "switch"]);
        if release {
            cmd.arg("--release");
        }
        eprintln!("procs tests: building the binaries: {cmd:?}");
        match cmd.status() {
            Ok(s) => assert!(s.success(), "building alipay-sim and switch failed: {s}"),
            Err(e) => panic!(
                "the binaries are missing and cargo cannot run ({e}): run `{}`",
                procs::BUILD_HINT
            ),
        }
    });
}

fn pay_params(partner: &str, seller: &str, ptid: &str) -> Vec<(&'static str, String)> {
    vec![
        ("service", "alipay.acquire.overseas.spot.pay".to_owned()),
        ("partner", partner.to_owned()),
        ("alipay_seller_id", seller.to_owned()),
        ("partner_trans_id", ptid.to_owned()),
        ("trans_name", "Noodles".to_owned()),
        ("currency", "USD".to_owned()),
        ("trans_amount", "12.30".to_owned()),
        ("buyer_identity_code", CODE.to_owned()),
        ("identity_code_type", "barcode".to_owned()),
        ("trans_create_time", "20261127120000".to_owned()),
        ("biz_product", "OVERSEAS_MBARCODE_PAY".to_owned()),
    ]
}

/// POSTs a pay signed by `signer` to `url` (trusting `cert`), checks the answer's signature with
/// `verifier`, and returns its result_code.
async fn pay(
    url: &str,
    cert: &str,
    params: &[(&str, String)],
    signer: &Signer,
    verifier: &Verifier,
) -> String {
    let client = GatewayClient::new(url, Some(cert.as_bytes()))
        .unwrap()
        .with_timeout(Duration::from_secs(20));
    let mut b = FormBuilder::new(Charset::Utf8);
    for (n, v) in params {
        b.push(n, v);
    }
    let (query, body) = b.finish_post(signer).unwrap();
    let r = client.post_raw(&query, body).await.unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let mut scratch = String::new();
    let doc = alipay::read_response(&r.body, &mut scratch, 1 << 20)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&r.body)));
    assert!(doc.is_success, "{}", String::from_utf8_lossy(&r.body));
    assert!(doc.sign.is_some(), "an accepted answer is signed");
    doc.verify(verifier, &mut Vec::new())
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&r.body)));
    let code = doc
        .fields()
        .get("result_code")
        .map(|v| v.clone().into_owned())
        .unwrap_or_default();
    code
}

fn direct_signer() -> Signer {
    Signer::from_key_text(SignType::Rsa2, &key("merchant_rsa2_private.pem")).unwrap()
}

fn alipay_verifier() -> Verifier {
    Verifier::from_key_text(SignType::Rsa2, &key("alipay_rsa2_public.pem")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_process_answers_a_signed_pay() {
    binaries();
    let mut sim = SimProcess::start(&SimOptions::default()).await.unwrap();
    let pid = sim.pid();
    assert!(procs::pid_alive(pid));
    let params = pay_params(DIRECT, DIRECT, "LT-SIM-1");
    let code = pay(
        sim.url(),
        sim.cert_pem(),
        &params,
        &direct_signer(),
        &alipay_verifier(),
    )
    .await;
    assert_eq!(code, "SUCCESS");
    let trades = sim.admin().get_all_trades(Some(DIRECT)).await.unwrap();
    assert_eq!(trades.len(), 1, "{trades:?}");
    let status = sim.stop().unwrap();
    assert!(status.success(), "{status}");
    assert!(!procs::pid_alive(pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_switch_process_pays_for_a_generated_fleet_and_is_measured() {
    binaries();
    let sim = SimProcess::start(&SimOptions::default()).await.unwrap();
    let fleet = Fleet::generate(
        2,
        0.5,
        7,
        &key("merchant_rsa2_private.pem"),
        &key("merchant_rsa2_public.pem"),
        &key("switch_rsa_public.pem"),
    )
    .unwrap();
    let kinds = fleet.by_sign_type();
    assert_eq!(kinds.get("MD5"), Some(&1), "{kinds:?}");
    assert_eq!(kinds.get("RSA2"), Some(&1), "{kinds:?}");
    let mut switch = SwitchProcess::start(&fleet, &sim, &SwitchOptions::default())
        .await
        .unwrap();
    let pid = switch.pid();
    let sampler = Sampler::start(Target::Pid(pid), Duration::from_millis(20)).unwrap();
    let before = JournalSyncs::scrape(&switch.metrics_url()).await.unwrap();

    let mut paid = 0;
    for (i, c) in fleet.callers.iter().enumerate() {
        let c: &Caller = c;
        let verifier = c
            .verifier
            .as_ref()
            .expect("generated callers check answers");
        // Over HTTPS and over plain HTTP.
        for (j, (url, cert)) in [
            (switch.url(), switch.cert_pem().to_owned()),
            (switch.http_url(), String::new()),
        ]
        .iter()
        .enumerate()
        {
            let params = pay_params(&c.id, &c.merchants[0], &format!("LT-SW-{i}-{j}"));
            let code = pay(url, cert, &params, &c.signer, verifier).await;
            assert_eq!(code, "SUCCESS", "caller {} ({:?})", c.id, c.sign_type);
            paid += 1;
        }
    }
    assert_eq!(paid, 4);
    // Every pay reached the simulator, under the acquirer account, in acquirer mode.
    let trades = sim
        .admin()
        .get_all_trades(Some(procs::ACQUIRER_PARTNER))
        .await
        .unwrap();
    assert_eq!(trades.len(), 4, "{trades:?}");

    // Each pay is journaled with a sync before it is answered.
    let after = JournalSyncs::scrape(&switch.metrics_url()).await.unwrap();
    let rate = after.since(&before, Duration::from_secs(1));
    assert!(rate.syncs >= 1, "{rate:?}");
    assert!(after.syncs() >= rate.syncs);
    assert!(rate.p99_seconds.is_some(), "{rate:?}");

    let now = procs::sample(Target::Pid(pid)).unwrap();
    assert!(now.cpu_ticks > 0, "{now:?}");
    assert!(
        now.rss_bytes > 0 && now.hwm_bytes >= now.rss_bytes,
        "{now:?}"
    );
    let usage = sampler.finish();
    assert!(usage.peak_rss_bytes > 0, "{usage:?}");
    assert!(
        usage.wall_seconds > 0.0 && usage.cpu_seconds >= 0.0,
        "{usage:?}"
    );
    let me = procs::sample(Target::Myself).unwrap();
    assert!(me.cpu_ticks > 0 && me.rss_bytes > 0, "{me:?}");

    let journal = switch.journal_path();
    let status = switch.stop().unwrap();
    assert!(status.success(), "graceful stop: {status}");
    assert!(!procs::pid_alive(pid), "the switch is gone");
    assert!(journal.is_dir());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_proxies_to_the_simulator_and_stops_with_its_workers() {
    binaries();
    let sim = SimProcess::start(&SimOptions::default()).await.unwrap();
    let opts = NginxOptions {
        workers: Some(2),
        ..NginxOptions::default()
    };
    let mut nginx = NginxProcess::in_front_of(&sim, &opts).await.unwrap();
    let master = nginx.pid();
    let workers = nginx.worker_pids();
    assert_eq!(workers.len(), 2, "{workers:?}");
    let url = nginx.url();
    assert_ne!(url, sim.url());
    for i in 0..3 {
        let params = pay_params(DIRECT, DIRECT, &format!("LT-NGX-{i}"));
        let code = pay(
            &url,
            nginx.cert_pem(),
            &params,
            &direct_signer(),
            &alipay_verifier(),
        )
        .await;
        assert_eq!(code, "SUCCESS");
    }
    let trades = sim.admin().get_all_trades(Some(DIRECT)).await.unwrap();
    assert_eq!(trades.len(), 3);
    let tree = procs::sample(Target::Tree(master)).unwrap();
    assert_eq!(tree.processes, 3, "{tree:?}");
    assert!(tree.rss_bytes > 0, "{tree:?}");

    nginx.stop().unwrap();
    assert!(!procs::pid_alive(master));
    for w in workers {
        assert!(!procs::pid_alive(w), "worker {w} is gone");
    }
}
