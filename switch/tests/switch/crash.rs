//! INV-1 across a crash: the switch binary killed with SIGKILL and restarted answers a replayed
//! request from its journal, without a second upstream call.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alipay_sim::client::HttpClient;
use alipay_sim::GatewayClient;

use crate::common::*;

/// A port free on loopback now: the switch is restarted on the same ports, so they cannot be 0.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The fixed addresses of a switch that is killed and restarted: merchants' plain HTTP and the
/// ops listener (`/readyz`).
pub(crate) struct Ports {
    pub(crate) http: SocketAddr,
    pub(crate) admin: SocketAddr,
}

impl Ports {
    pub(crate) fn free() -> Ports {
        Ports {
            http: SocketAddr::from(([127, 0, 0, 1], free_port())),
            admin: SocketAddr::from(([127, 0, 0, 1], free_port())),
        }
    }

    /// The test configuration `t` listening on these ports, without HTTPS (no certificate to
    /// write again at every start).
    pub(crate) fn apply(&self, t: String) -> String {
        let cert_out = t
            .lines()
            .find(|l| l.starts_with("cert_out"))
            .unwrap()
            .to_owned();
        t.replace("https = \"127.0.0.1:0\"\n", "")
            .replace(&cert_out, "")
            .replace(
                "http = \"127.0.0.1:0\"",
                &format!("http = \"{}\"", self.http),
            )
            .replace(
                "admin = \"127.0.0.1:0\"",
                &format!("admin = \"{}\"", self.admin),
            )
    }
}

/// Starts the `switch` binary on `config`, its log on the test's stderr.
pub(crate) fn spawn(config: &Path) -> Child {
    spawn_with_stderr(config, Stdio::inherit())
}

/// Starts the `switch` binary on `config`, its log (warnings and worse) to `stderr`.
pub(crate) fn spawn_with_stderr(config: &Path, stderr: Stdio) -> Child {
    Command::new(env!("CARGO_BIN_EXE_switch"))
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// Waits (at most 120 s) until the switch's ops listener answers `/readyz` with 200.
pub(crate) async fn wait_ready(admin: SocketAddr) {
    let client = HttpClient::new(&format!("http://{admin}"), None)
        .unwrap()
        .with_timeout(Duration::from_secs(2));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(r) = client
            .request(hyper::Method::GET, "/readyz", None, Vec::new())
            .await
        {
            if r.status == 200 {
                return;
            }
        }
        assert!(Instant::now() < deadline, "the switch did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Stops the switch with SIGTERM and asserts it exits 0 within 60 s (a graceful stop).
pub(crate) fn stop_gracefully(child: &mut Child) {
    let pid = child.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "graceful stop exits 0, got {status}");
            return;
        }
        assert!(Instant::now() < deadline, "no graceful stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_switch_killed_and_restarted_replays_from_its_journal() {
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let ports = Ports::free();
    let (path, _) = write_config(dir.path(), &sim, |t| ports.apply(t));
    let sim_admin = HttpClient::new(&sim.https_url(), Some(sim.cert_pem().as_bytes())).unwrap();
    let client = GatewayClient::new(&format!("http://{}", ports.http), None)
        .unwrap()
        .with_timeout(Duration::from_secs(30));
    let send = |p: Vec<(String, String)>| {
        let (q, b) = signed(&p, M1);
        let client = &client;
        async move {
            let r = client.post_raw(&q, b).await.unwrap();
            Answer {
                status: r.status,
                body: r.body.to_vec(),
            }
        }
    };

    let mut child = spawn(&path);
    wait_ready(ports.admin).await;
    let paid = send(pay(M1, M1, "K-1", "6.00", CODE)).await;
    assert!(paid.verify(M1));
    assert_eq!(paid.result(), "SUCCESS");
    let refunded = send(refund(M1, "K-1", "KR-1", "1.00")).await;
    assert_eq!(refunded.result(), "SUCCESS");

    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let mut child = spawn(&path);
    wait_ready(ports.admin).await;
    let replay = send(pay(M1, M1, "K-1", "6.00", CODE)).await;
    assert_eq!(
        replay.body, paid.body,
        "the acknowledged answer survived the crash"
    );
    let replay_refund = send(refund(M1, "K-1", "KR-1", "1.00")).await;
    assert_eq!(replay_refund.body, refunded.body);
    let trades = sim_admin.get_all_trades(Some(ACQUIRER)).await.unwrap();
    assert_eq!(trades.len(), 1, "no second trade");
    assert_eq!(
        trades[0]["refunds"].as_array().unwrap().len(),
        1,
        "no second refund"
    );

    // SIGTERM: a graceful stop.
    stop_gracefully(&mut child);
    sim.shutdown().await;
}
