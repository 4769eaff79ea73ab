//! The runner against a real simulator over loopback TLS: a stalling target shows its stall in
//! the percentiles (no coordinated omission), and a run's files hold what the report schema
//! promises, consistent with each other.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use alipay_sim::{SimHandle, SimOptions, Simulator};
use loadtest::fleet::Fleet;
use loadtest::profile::Profile;
use loadtest::report::Mix;
use loadtest::runner::{run, RunOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

fn config_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config")
}

/// The simulator's own callers (MD5 acquirer with extend_info, RSA2 direct).
fn sim_fleet(md5_only: bool) -> Arc<Fleet> {
    let mut f = Fleet::load(&config_dir().join("loadtest-fleet-simulator.toml")).unwrap();
    if md5_only {
        f.callers.retain(|c| c.sign_type == alipay::SignType::Md5);
    }
    Arc::new(f)
}

fn options(url: String, sim: &SimHandle, fleet: Arc<Fleet>, profile: Profile) -> RunOptions {
    RunOptions {
        target_url: url,
        target_kind: "simulator".into(),
        trust_pem: Some(sim.cert_pem().as_bytes().to_vec()),
        profile,
        mix: Mix {
            query: 0.5,
            refund: 0.3,
            cancel: 0.1,
        },
        fleet,
        in_flight_max: 8,
        lag_max: Duration::from_secs(10),
        request_timeout: Duration::from_secs(20),
        seed: 42,
        fault_share: 0.0,
        order_prefix: format!("rt{}x", std::process::id()),
        progress: false,
    }
}

/// A byte-level TCP proxy in front of `upstream` that holds all traffic, both ways, while the
/// gate is closed (`true`).
async fn pausable_proxy(upstream: std::net::SocketAddr) -> (String, watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = TcpStream::connect(upstream).await.unwrap();
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(pipe(cr, sw, rx.clone()));
            tokio::spawn(pipe(sr, cw, rx.clone()));
        }
    });
    (format!("https://127.0.0.1:{}", addr.port()), tx)
}

async fn pipe(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    mut gate: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // Bytes read while the gate is closed are held until it opens.
        while *gate.borrow_and_update() {
            if gate.changed().await.is_err() {
                return;
            }
        }
        if w.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_stalls_shows_the_stall_in_the_percentiles() {
    let sim = Simulator::start(SimOptions::for_tests().unwrap())
        .await
        .unwrap();
    let (url, gate) = pausable_proxy(sim.https_addr()).await;
    // 100/s for 3 s, at most 8 in flight; the target stalls for 1 s starting 1 s in.
    let profile = Profile::constant(100.0, Duration::from_secs(3));
    let opts = options(url, &sim, sim_fleet(true), profile);
    let stall = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        gate.send_replace(true);
        tokio::time::sleep(Duration::from_millis(1000)).await;
        gate.send_replace(false);
    });
    let outcome = run(opts).await.unwrap();
    stall.await.unwrap();
    let r = &outcome.report;
    assert_eq!(r.summary.intended, 300);
    assert_eq!(r.summary.ok, 300, "errors: {:?}", r.errors);

    // Every request intended in the first half of the stall waited at least until its end:
    // 50 or more requests (1/6 of the run) took at least 500 ms, by construction.
    let all = &outcome.histograms["all"];
    let slow = all.count_between(500_000, all.max().max(500_000));
    assert!(
        slow >= 50,
        "only {slow} requests of 300 took 500 ms or more"
    );
    assert!(r.latency.all.p90 >= 300.0, "p90 {} ms", r.latency.all.p90);
    assert!(r.latency.all.max >= 900.0, "max {} ms", r.latency.all.max);
    // With 8 slots, most of those requests could not even be written during the stall: they
    // were sent late, and measuring from the actual send (what a closed-loop tool does) would
    // hide their wait.
    assert!(r.summary.late >= 50, "late {}", r.summary.late);
    assert!(
        r.latency.service_time.p90 < r.latency.all.p90,
        "service time p90 {} vs latency p90 {}",
        r.latency.service_time.p90,
        r.latency.all.p90
    );
    // The time series shows it in the seconds of the stall.
    let worst = r.timeseries.iter().map(|s| s.max).fold(0.0, f64::max);
    assert!(worst >= 900.0, "{:?}", r.timeseries);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_writes_a_report_whose_parts_agree() {
    let sim = Simulator::start(SimOptions::for_tests().unwrap())
        .await
        .unwrap();
    let profile = Profile::parse("ramp:20..60@2s+constant:60@2s", Duration::from_secs(1)).unwrap();
    let mut opts = options(sim.https_url(), &sim, sim_fleet(false), profile);
    opts.in_flight_max = 64;
    let outcome = run(opts).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let written = loadtest::output::write_all(dir.path(), &outcome.report, &outcome).unwrap();

    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&written.json).unwrap()).unwrap();
    assert_eq!(json["schema"], loadtest::report::SCHEMA);
    let s = &json["summary"];
    let n = |v: &serde_json::Value| v.as_u64().unwrap();
    // 80 requests in the ramp (mean 40/s for 2 s), 120 at the constant rate.
    assert_eq!(n(&s["intended"]), 200);
    assert_eq!(n(&s["ok"]) + n(&s["errors"]), n(&s["intended"]));
    assert_eq!(n(&s["completed"]), n(&s["sent"]));
    assert_eq!(n(&s["errors"]), 0, "{}", json["errors"]);
    let series = json["timeseries"].as_array().unwrap();
    let sum = |k: &str| series.iter().map(|r| n(&r[k])).sum::<u64>();
    assert_eq!(sum("sent"), n(&s["sent"]));
    assert_eq!(sum("ok"), n(&s["ok"]));
    // The ramp shows in the target rate of the series.
    assert!(
        series[0]["target_rate"].as_f64().unwrap() < series[3]["target_rate"].as_f64().unwrap()
    );
    let by_service = json["latency"]["by_service"].as_object().unwrap();
    let counted: u64 = by_service.values().map(|v| n(&v["count"])).sum();
    assert_eq!(counted, n(&s["completed"]));
    // Pays, and queries and refunds of earlier pays, with both sign types.
    for service in ["pay", "query", "refund"] {
        assert!(n(&by_service[service]["count"]) > 0, "no {service}");
    }
    assert_eq!(json["load"]["callers_by_sign_type"]["RSA2"], 1);
    assert_eq!(json["load"]["callers_by_sign_type"]["MD5"], 1);

    // Orders: every refund names a paid order and stays within its amount.
    let orders: Vec<loadtest::told::Order> =
        serde_json::from_slice(&std::fs::read(&written.orders).unwrap()).unwrap();
    let pays = n(&by_service["pay"]["count"]);
    assert_eq!(u64::try_from(orders.len()).unwrap(), pays);
    for o in &orders {
        assert!(o.refunds.is_empty() || o.pay.is_success(), "{o:?}");
        assert!(o.refunded_told_minor() <= o.amount_minor, "{o:?}");
    }
    assert!(orders.iter().any(|o| !o.refunds.is_empty()));

    // Spectra: the all-requests .hgrm ends at the report's max.
    let hgrm = std::fs::read_to_string(dir.path().join("latency.all.hgrm")).unwrap();
    assert!(hgrm.contains("Total count    ="));
    let csv = std::fs::read_to_string(&written.csv).unwrap();
    assert_eq!(csv.lines().count(), series.len() + 1);
    let html = std::fs::read_to_string(&written.html).unwrap();
    assert!(html.contains("<svg"));
    sim.shutdown().await;
}
