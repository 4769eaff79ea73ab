//! Running the simulator, nginx and the switch as separate processes on loopback, and measuring
//! them.
//!
//! - [`find_binary`]: where the `alipay-sim` and `switch` binaries are;
//! - [`SimProcess`]: `alipay-sim` on a free loopback port, its fault and latency dials set (none
//!   by default) through its admin API;
//! - [`SwitchProcess`]: `switch` configured for a [`Fleet`] against a [`SimProcess`] (one
//!   acquirer-mode merchant per merchant of the fleet, one caller per caller), journal synced
//!   to a temporary folder;
//! - [`NginxProcess`]: nginx as a plain TLS reverse proxy with upstream keep-alive, the baseline
//!   of the side-by-side comparison;
//! - [`Sampler`], [`sample`]: CPU time and memory of a process (and its children) from `/proc`;
//! - [`scrape`], [`JournalSyncs`]: the switch's Prometheus metrics, for journal syncs per
//!   second and the sync latency.
//!
//! Every process gets its own temporary folder (configuration, certificates, logs, journal),
//! removed when the handle is dropped unless `keep_dir` is set; every process is killed when its
//! handle is dropped, and `stop()` stops it gracefully. Only loopback addresses are used.

use std::fs::File;
use std::future::Future;
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use alipay_sim::client::{HttpClient, Url};
use alipay_sim::dials::Dials;

use crate::fleet::Fleet;

/// Something went wrong starting, stopping or measuring a process: one sentence for the
/// operator, with the tail of the process's log when it died.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ProcError(pub String);

/// The result of this module's functions.
pub type Result<T, E = ProcError> = std::result::Result<T, E>;

fn fail(message: impl Into<String>) -> ProcError {
    ProcError(message.into())
}

/// How long a process gets to become ready by default.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a graceful stop may take before the process is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(20);
/// The simulator's acquirer account (MD5, `require_extend_info`), under which the switch sends
/// the fleet's merchants.
pub const ACQUIRER_PARTNER: &str = "2088101122136241";
/// The MD5 key file of [`ACQUIRER_PARTNER`], in [`keys_dir`].
pub const ACQUIRER_KEY_FILE: &str = "md5_2088101122136241.key";
/// The switch's own RSA private key (signs answers to RSA2 callers), in [`keys_dir`]; its public
/// half is `switch_rsa_public.pem`.
pub const SWITCH_RSA_PRIVATE_KEY_FILE: &str = "switch_rsa_private.pem";

/// The repository's root (where this crate was built from).
pub fn repo_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map_or_else(|| manifest.to_path_buf(), Path::to_path_buf)
}

/// The repository's `config/` folder.
pub fn config_dir() -> PathBuf {
    repo_dir().join("config")
}

/// The repository's TEST ONLY keys, `config/keys/`.
pub fn keys_dir() -> PathBuf {
    config_dir().join("keys")
}

// ---------------------------------------------------------------------------------------------
// Binaries
// ---------------------------------------------------------------------------------------------

/// The command that builds the binaries, for error messages.
pub const BUILD_HINT: &str = "cargo build --release -p switch -p alipay-sim";

/// Where the binary `name` (`switch`, `alipay-sim`) is: `explicit` when given (it must exist);
/// else next to the current executable or in its parent folder (test executables live in
/// `target/<profile>/deps`); else in `$CARGO_TARGET_DIR/release` or `/debug` (default
/// `target/` of the repository), release first.
pub fn find_binary(name: &str, explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = explicit {
        return if path.is_file() {
            Ok(path.to_path_buf())
        } else {
            Err(fail(format!(
                "the {name} binary {} does not exist",
                path.display()
            )))
        };
    }
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            candidates.push(dir.join(name));
            if let Some(up) = dir.parent() {
                candidates.push(up.join(name));
            }
        }
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| repo_dir().join("target"), PathBuf::from);
    for profile in ["release", "debug"] {
        candidates.push(target.join(profile).join(name));
    }
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    Err(fail(format!(
        "cannot find the {name} binary (looked at {}); build it first with `{BUILD_HINT}` \
         (with the same CARGO_TARGET_DIR), or name it explicitly",
        looked.join(", ")
    )))
}

/// Finds an executable named `name` on `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

// ---------------------------------------------------------------------------------------------
// Children
// ---------------------------------------------------------------------------------------------

/// A temporary folder, removed on drop unless kept.
#[derive(Debug)]
struct Dir {
    path: PathBuf,
    _guard: Option<tempfile::TempDir>,
}

impl Dir {
    fn new(prefix: &str, keep: bool) -> Result<Dir> {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .map_err(|e| fail(format!("cannot make a temporary folder: {e}")))?;
        if keep {
            Ok(Dir {
                path: dir.keep(),
                _guard: None,
            })
        } else {
            Ok(Dir {
                path: dir.path().to_path_buf(),
                _guard: Some(dir),
            })
        }
    }
}

/// A child process whose output goes to one log file; killed on drop.
#[derive(Debug)]
struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
    status: Option<ExitStatus>,
}

impl Proc {
    fn spawn(name: &str, command: &mut Command, log: &Path) -> Result<Proc> {
        let out =
            File::create(log).map_err(|e| fail(format!("cannot create {}: {e}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(|e| fail(format!("cannot share {}: {e}", log.display())))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|e| fail(format!("cannot start {name} ({command:?}): {e}")))?;
        Ok(Proc {
            name: name.to_owned(),
            child,
            log: log.to_path_buf(),
            status: None,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, once it has exited (and been reaped).
    fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.status = Some(status);
            }
        }
        self.status
    }

    /// The last lines of the log, for error messages.
    fn log_tail(&self) -> String {
        log_tail(&self.log, 30)
    }

    /// Sends `signal` (a name: TERM, QUIT, KILL), waits up to `grace` for the exit, then kills.
    fn stop(&mut self, signal: &str, grace: Duration) -> Result<ExitStatus> {
        if let Some(status) = self.exited() {
            return Ok(status);
        }
        send_signal(self.pid(), signal)?;
        if let Some(status) = self.wait_for(grace) {
            return Ok(status);
        }
        self.kill();
        self.status.ok_or_else(|| {
            fail(format!(
                "{} (pid {}) did not exit after SIG{signal} and SIGKILL",
                self.name,
                self.pid()
            ))
        })
    }

    fn wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if start.elapsed() >= limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            if let Ok(status) = self.child.wait() {
                self.status = Some(status);
            }
        }
    }

    /// Waits until `probe` gives a value, failing when the process exits or `limit` passes.
    async fn wait_ready<T, F, Fut>(&mut self, limit: Duration, mut probe: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let start = Instant::now();
        loop {
            if let Some(status) = self.exited() {
                return Err(fail(format!(
                    "{} exited before it was ready ({status}); the end of its log {}:\n{}",
                    self.name,
                    self.log.display(),
                    self.log_tail()
                )));
            }
            if let Some(value) = probe().await {
                return Ok(value);
            }
            if start.elapsed() >= limit {
                // Not killed here: the caller stops it (nginx's workers must go with the master).
                return Err(fail(format!(
                    "{} was not ready within {} s; the end of its log {}:\n{}",
                    self.name,
                    limit.as_secs(),
                    self.log.display(),
                    self.log_tail()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last `lines` lines of a log file (at most 16 KiB of it).
fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(mut file) = File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(16 * 1024)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Sends a signal by name (`TERM`, `QUIT`, `KILL`) with the `kill` command.
pub fn send_signal(pid: u32, signal: &str) -> Result<()> {
    let status = Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| fail(format!("cannot run kill: {e}")))?;
    if status.success() || !pid_alive(pid) {
        Ok(())
    } else {
        Err(fail(format!("kill -s {signal} {pid} failed ({status})")))
    }
}

/// Whether `pid` is a live process (not gone, not a zombie).
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat_fields(&stat).is_some_and(|f| f.first() != Some(&"Z")),
        Err(_) => false,
    }
}

/// `n` distinct free loopback ports, all bound at once and then released. Another process may
/// take one before the caller binds it; the starters retry on "address in use".
pub fn free_ports(n: usize) -> Result<Vec<u16>> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()
        .map_err(|e| fail(format!("cannot find a free loopback port: {e}")))?;
    listeners
        .iter()
        .map(|l| {
            l.local_addr()
                .map(|a| a.port())
                .map_err(|e| fail(format!("cannot read a bound port: {e}")))
        })
        .collect()
}

/// Whether a start failed because a picked port was taken in between (worth another try).
fn port_taken(e: &ProcError) -> bool {
    let m = e.0.to_ascii_lowercase();
    m.contains("address already in use") || m.contains("addrinuse") || m.contains("(98")
}

/// How many times a start is tried when a picked port was taken meanwhile.
const START_ATTEMPTS: u32 = 4;

/// `s` as a TOML string literal (quoted and escaped).
fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn path_str(p: &Path) -> String {
    toml_str(&p.display().to_string())
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| fail(format!("cannot write {}: {e}", path.display())))
}

fn read_file(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read {}: {e}", path.display())))
}

// ---------------------------------------------------------------------------------------------
// The simulator
// ---------------------------------------------------------------------------------------------

/// How to run `alipay-sim`.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// The binary; `None`: [`find_binary`].
    pub binary: Option<PathBuf>,
    /// Its configuration file; `None`: the repository's `config/alipay-sim.toml` when present,
    /// else the copy compiled into the binary.
    pub config: Option<PathBuf>,
    /// Overrides the configuration's `trades_max` (trades kept in memory; beyond it a pay is
    /// answered `SYSTEM_ERROR`): a long run at a high rate needs more than the shipped million.
    pub trades_max: Option<u64>,
    /// `--time-scale`.
    pub time_scale: u32,
    /// `--seed`.
    pub seed: u64,
    /// The dials set through `PUT /admin/dials` once it is up. Default: no faults, no added
    /// latency, no throttling, so a load test measures the system under test, not the dials.
    pub dials: Dials,
    /// Also serve plain HTTP (`--http-listen`) on a free loopback port.
    pub plain_http: bool,
    /// `RUST_LOG` of the process (its log goes to `alipay-sim.log` in its folder). `warn` keeps
    /// logging off the measured path.
    pub log_filter: String,
    /// How long it may take to answer its admin API.
    pub ready_timeout: Duration,
    /// Keep the temporary folder (logs, certificate) after the handle is dropped.
    pub keep_dir: bool,
}

impl Default for SimOptions {
    fn default() -> SimOptions {
        SimOptions {
            binary: None,
            config: None,
            trades_max: None,
            time_scale: 1,
            seed: alipay_sim::DEFAULT_SEED,
            dials: Dials::default(),
            plain_http: false,
            log_filter: "warn".to_owned(),
            ready_timeout: READY_TIMEOUT,
            keep_dir: false,
        }
    }
}

/// A running `alipay-sim`. Killed when dropped; [`SimProcess::stop`] stops it with SIGTERM.
#[derive(Debug)]
pub struct SimProcess {
    proc: Proc,
    dir: Dir,
    url: String,
    http_url: Option<String>,
    cert_pem: String,
    cert_path: PathBuf,
    admin: HttpClient,
}

impl SimProcess {
    /// Starts the simulator on free loopback ports and waits until its admin API answers, then
    /// sets its dials to `opts.dials`.
    pub async fn start(opts: &SimOptions) -> Result<SimProcess> {
        let binary = find_binary("alipay-sim", opts.binary.as_deref())?;
        let dir = Dir::new("loadtest-sim-", opts.keep_dir)?;
        let config = sim_config(opts, &dir.path)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match SimProcess::try_start(opts, &binary, config.as_deref(), &dir.path).await {
                Ok((proc, url, http_url, cert_pem, cert_path, admin)) => {
                    let sim = SimProcess {
                        proc,
                        dir,
                        url,
                        http_url,
                        cert_pem,
                        cert_path,
                        admin,
                    };
                    sim.set_dials(&opts.dials).await?;
                    return Ok(sim);
                }
                Err(e) if attempt < START_ATTEMPTS && port_taken(&e) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    #[allow(clippy::type_complexity)] // one private constructor step
    async fn try_start(
        opts: &SimOptions,
        binary: &Path,
        config: Option<&Path>,
        dir: &Path,
    ) -> Result<(Proc, String, Option<String>, String, PathBuf, HttpClient)> {
        let ports = free_ports(2)?;
        let (port, http_port) = (ports[0], ports[1]);
        let cert_path = dir.join("alipay-sim-cert.pem");
        let _ = std::fs::remove_file(&cert_path);
        let mut cmd = Command::new(binary);
        cmd.current_dir(dir)
            .env("RUST_LOG", &opts.log_filter)
            .env("NO_COLOR", "1")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--cert-out")
            .arg(&cert_path)
            .arg("--time-scale")
            .arg(opts.time_scale.to_string())
            .arg("--seed")
            .arg(opts.seed.to_string());
        if let Some(config) = config {
            cmd.arg("--config").arg(config);
        }
        let http_url = if opts.plain_http {
            cmd.arg("--http-listen")
                .arg(format!("127.0.0.1:{http_port}"));
            Some(format!("http://127.0.0.1:{http_port}"))
        } else {
            None
        };
        let mut proc = Proc::spawn("alipay-sim", &mut cmd, &dir.join("alipay-sim.log"))?;
        let url = format!("https://127.0.0.1:{port}");
        let (cert_pem, admin) = proc
            .wait_ready(opts.ready_timeout, || async {
                let pem = std::fs::read_to_string(&cert_path).ok()?;
                let admin = HttpClient::new(&url, Some(pem.as_bytes()))
                    .ok()?
                    .with_timeout(Duration::from_secs(5));
                match admin.get_json("/admin/dials").await {
                    Ok((200, _)) => Some((pem, admin)),
                    _ => None,
                }
            })
            .await?;
        Ok((proc, url, http_url, cert_pem, cert_path, admin))
    }

    /// Sets every dial (`PUT /admin/dials`).
    pub async fn set_dials(&self, dials: &Dials) -> Result<()> {
        let body = serde_json::to_value(dials)
            .map_err(|e| fail(format!("cannot encode the dials: {e}")))?;
        let (status, answer) = self
            .admin
            .send_json(hyper::Method::PUT, "/admin/dials", &body)
            .await
            .map_err(|e| fail(format!("PUT /admin/dials: {e}")))?;
        if status == 200 {
            Ok(())
        } else {
            Err(fail(format!("PUT /admin/dials: HTTP {status}: {answer}")))
        }
    }

    /// `https://127.0.0.1:PORT` (no path).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `https://127.0.0.1:PORT/gateway.do`.
    pub fn gateway_url(&self) -> String {
        format!("{}/gateway.do", self.url)
    }

    /// `http://127.0.0.1:PORT` when started with `plain_http`.
    pub fn http_url(&self) -> Option<&str> {
        self.http_url.as_deref()
    }

    /// Its self-signed certificate (PEM), to trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The file holding [`SimProcess::cert_pem`].
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// A client of its admin API (`/admin/...`).
    pub fn admin(&self) -> &HttpClient {
        &self.admin
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Its temporary folder (log `alipay-sim.log`, certificate).
    pub fn dir(&self) -> &Path {
        &self.dir.path
    }

    /// Stops it with SIGTERM (it lets open connections finish), killing it after
    /// [`STOP_GRACE`].
    pub fn stop(&mut self) -> Result<ExitStatus> {
        self.proc.stop("TERM", STOP_GRACE)
    }
}

/// The configuration file to pass: the chosen one as is, or a copy with the overrides (key paths
/// made absolute, since the copy lives elsewhere).
fn sim_config(opts: &SimOptions, dir: &Path) -> Result<Option<PathBuf>> {
    let chosen = match &opts.config {
        Some(p) => Some(p.clone()),
        None => Some(config_dir().join("alipay-sim.toml")).filter(|p| p.is_file()),
    };
    let Some(trades_max) = opts.trades_max else {
        return Ok(chosen);
    };
    let Some(source) = chosen else {
        return Err(fail(
            "trades_max needs a simulator configuration file (config/alipay-sim.toml not found)",
        ));
    };
    let mut table: toml::Table = read_file(&source)?
        .parse()
        .map_err(|e| fail(format!("{}: {e}", source.display())))?;
    let base = source.parent().unwrap_or(Path::new("."));
    let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    table.insert(
        "trades_max".to_owned(),
        toml::Value::Integer(as_i64(trades_max)),
    );
    let events = table
        .get("scheduled_events_max")
        .and_then(toml::Value::as_integer)
        .unwrap_or(0)
        .max(as_i64(trades_max.saturating_mul(2)));
    table.insert(
        "scheduled_events_max".to_owned(),
        toml::Value::Integer(events),
    );
    if let Some(toml::Value::Array(accounts)) = table.get_mut("accounts") {
        for account in accounts.iter_mut() {
            if let toml::Value::Table(t) = account {
                for (k, v) in t.iter_mut() {
                    if let (true, toml::Value::String(s)) = (k.ends_with("_file"), &*v) {
                        *v = toml::Value::String(base.join(s).display().to_string());
                    }
                }
            }
        }
    }
    let text = toml::to_string(&table)
        .map_err(|e| fail(format!("cannot write the configuration: {e}")))?;
    let out = dir.join("alipay-sim.toml");
    write_file(&out, &text)?;
    Ok(Some(out))
}

// ---------------------------------------------------------------------------------------------
// The switch
// ---------------------------------------------------------------------------------------------

/// How to run `switch`.
#[derive(Debug, Clone)]
pub struct SwitchOptions {
    /// The binary; `None`: [`find_binary`].
    pub binary: Option<PathBuf>,
    /// `node.id`.
    pub node_id: String,
    /// Where [`ACQUIRER_KEY_FILE`] and [`SWITCH_RSA_PRIVATE_KEY_FILE`] are (copied into the
    /// switch's folder). Default: [`keys_dir`].
    pub keys_dir: PathBuf,
    /// The upstream to send to instead of the simulator's own URL (e.g. nginx in front of it),
    /// with the certificate to trust: `(base URL without path, PEM)`.
    pub upstream: Option<(String, String)>,
    /// `gateway.in_flight_max` (default 16384, the shipped file has 4096): an open-loop load
    /// test must find the switch's own limits (journal, CPU), not its admission bound; the
    /// journal queue and the engine's table are raised to match.
    pub gateway_in_flight_max: u32,
    /// Every caller's `in_flight_max` (default: as `gateway_in_flight_max`; shipped 256): a
    /// generated fleet may put most of the load on a few callers, and a per-caller refusal
    /// would be a limit of the configuration, not of the switch.
    pub caller_in_flight_max: u32,
    /// `gateway.connections_max` (default 20000; shipped 10000): the generator may open many
    /// connections at high rates.
    pub connections_max: u32,
    /// The acquirer account's `pool_size` (default 512; shipped 64): the most upstream calls in
    /// flight per endpoint. At rate R and upstream latency L the switch needs R×L of them; 64
    /// would cap a 50 ms upstream at 1280 pays/s.
    pub pool_size: u32,
    /// `journal.group_linger_ms` (shipped 2).
    pub group_linger_ms: u32,
    /// The acquirer account's `request_timeout_ms` (shipped 15000).
    pub upstream_timeout_ms: u32,
    /// `RUST_LOG` of the process (its log goes to `switch.log` in its folder).
    pub log_filter: String,
    /// How long it may take to answer `/readyz`.
    pub ready_timeout: Duration,
    /// Keep the temporary folder (configuration, journal, logs) after the handle is dropped.
    pub keep_dir: bool,
}

impl Default for SwitchOptions {
    fn default() -> SwitchOptions {
        SwitchOptions {
            binary: None,
            node_id: "lt1".to_owned(),
            keys_dir: keys_dir(),
            upstream: None,
            gateway_in_flight_max: 16_384,
            caller_in_flight_max: 16_384,
            connections_max: 20_000,
            pool_size: 512,
            group_linger_ms: 2,
            upstream_timeout_ms: 15_000,
            log_filter: "warn".to_owned(),
            ready_timeout: READY_TIMEOUT,
            keep_dir: false,
        }
    }
}

/// The switch's loopback ports.
#[derive(Debug, Clone, Copy)]
struct SwitchPorts {
    https: u16,
    http: u16,
    admin: u16,
    admin_api: u16,
}

/// A running `switch`. Killed when dropped; [`SwitchProcess::stop`] stops it with SIGTERM.
#[derive(Debug)]
pub struct SwitchProcess {
    proc: Proc,
    dir: Dir,
    ports: SwitchPorts,
    cert_pem: String,
    config_path: PathBuf,
}

impl SwitchProcess {
    /// Writes a configuration for `fleet` against `sim` (acquirer mode under
    /// [`ACQUIRER_PARTNER`], the simulator's certificate as `ca_cert`, no embedded simulator,
    /// the journal in a temporary folder), starts the switch and waits for `/readyz`.
    pub async fn start(
        fleet: &Fleet,
        sim: &SimProcess,
        opts: &SwitchOptions,
    ) -> Result<SwitchProcess> {
        let binary = find_binary("switch", opts.binary.as_deref())?;
        let dir = Dir::new("loadtest-switch-", opts.keep_dir)?;
        let (upstream_url, upstream_pem) = match &opts.upstream {
            Some((url, pem)) => (url.trim_end_matches('/').to_owned(), pem.clone()),
            None => (sim.url().to_owned(), sim.cert_pem().to_owned()),
        };
        let files = write_switch_files(fleet, &upstream_pem, opts, &dir.path)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let ports = free_ports(4)?;
            let ports = SwitchPorts {
                https: ports[0],
                http: ports[1],
                admin: ports[2],
                admin_api: ports[3],
            };
            let text = switch_config(fleet, &upstream_url, opts, &dir.path, &files, ports);
            let config_path = dir.path.join("switch.toml");
            write_file(&config_path, &text)?;
            match SwitchProcess::try_start(&binary, opts, &dir.path, &config_path, ports).await {
                Ok((proc, cert_pem)) => {
                    return Ok(SwitchProcess {
                        proc,
                        dir,
                        ports,
                        cert_pem,
                        config_path,
                    })
                }
                Err(e) if attempt < START_ATTEMPTS && port_taken(&e) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    async fn try_start(
        binary: &Path,
        opts: &SwitchOptions,
        dir: &Path,
        config_path: &Path,
        ports: SwitchPorts,
    ) -> Result<(Proc, String)> {
        let cert_path = dir.join("switch-cert.pem");
        let _ = std::fs::remove_file(&cert_path);
        let mut cmd = Command::new(binary);
        cmd.current_dir(dir)
            .env("RUST_LOG", &opts.log_filter)
            .env("NO_COLOR", "1")
            .env_remove("SWITCH_CONFIG")
            .arg("--config")
            .arg(config_path)
            .arg("run");
        let mut proc = Proc::spawn("switch", &mut cmd, &dir.join("switch.log"))?;
        let ready = HttpClient::new(&format!("http://127.0.0.1:{}", ports.admin), None)
            .map_err(|e| fail(e.to_string()))?
            .with_timeout(Duration::from_secs(5));
        let cert_pem = proc
            .wait_ready(opts.ready_timeout, || async {
                let pem = std::fs::read_to_string(&cert_path).ok()?;
                let r = ready
                    .request(hyper::Method::GET, "/readyz", None, Vec::new())
                    .await
                    .ok()?;
                (r.status == 200 && pem.contains("END CERTIFICATE")).then_some(pem)
            })
            .await?;
        Ok((proc, cert_pem))
    }

    /// `https://127.0.0.1:PORT` of `/gateway.do` (no path).
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.ports.https)
    }

    /// `http://127.0.0.1:PORT` of `/gateway.do` over plain HTTP (no path).
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.http)
    }

    /// Its self-signed certificate (PEM), to trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// `http://127.0.0.1:PORT` of `/metrics`, `/healthz`, `/readyz`.
    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.admin)
    }

    /// `http://127.0.0.1:PORT/metrics`.
    pub fn metrics_url(&self) -> String {
        format!("{}/metrics", self.admin_url())
    }

    /// `http://127.0.0.1:PORT` of the operators' admin API.
    pub fn admin_api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.admin_api)
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// The journal's folder.
    pub fn journal_path(&self) -> PathBuf {
        self.dir.path.join("journal")
    }

    /// The configuration file it runs with.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Its temporary folder (configuration, keys, journal, log `switch.log`).
    pub fn dir(&self) -> &Path {
        &self.dir.path
    }

    /// Stops it with SIGTERM (graceful: it drains connections and closes the journal), killing
    /// it after [`STOP_GRACE`].
    pub fn stop(&mut self) -> Result<ExitStatus> {
        self.proc.stop("TERM", STOP_GRACE)
    }
}

/// Files the switch's configuration names.
#[derive(Debug)]
struct SwitchFiles {
    acquirer_key: PathBuf,
    switch_key: PathBuf,
    ca_cert: PathBuf,
    /// Per caller, in fleet order.
    caller_keys: Vec<PathBuf>,
}

fn write_switch_files(
    fleet: &Fleet,
    upstream_pem: &str,
    opts: &SwitchOptions,
    dir: &Path,
) -> Result<SwitchFiles> {
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys)
        .map_err(|e| fail(format!("cannot make {}: {e}", keys.display())))?;
    let copy = |name: &str| -> Result<PathBuf> {
        let to = keys.join(name);
        write_file(&to, &read_file(&opts.keys_dir.join(name))?)?;
        Ok(to)
    };
    let acquirer_key = copy(ACQUIRER_KEY_FILE)?;
    let switch_key = copy(SWITCH_RSA_PRIVATE_KEY_FILE)?;
    let ca_cert = dir.join("upstream-ca.pem");
    write_file(&ca_cert, upstream_pem)?;
    let mut caller_keys = Vec::with_capacity(fleet.callers.len());
    for (i, c) in fleet.callers.iter().enumerate() {
        let (text, ext) = if c.sign_type == alipay::SignType::Md5 {
            (c.key_text.clone(), "key")
        } else {
            let pem = c.public_pem.clone().ok_or_else(|| {
                fail(format!(
                    "caller {} signs with {} but the fleet has no public key for it",
                    c.id,
                    c.sign_type.as_str()
                ))
            })?;
            (pem, "pem")
        };
        let path = keys.join(format!("caller_{i}_{}.{ext}", c.id));
        write_file(&path, &text)?;
        caller_keys.push(path);
    }
    Ok(SwitchFiles {
        acquirer_key,
        switch_key,
        ca_cert,
        caller_keys,
    })
}

/// The switch's configuration (reference: config/README.md, "switch.toml").
fn switch_config(
    fleet: &Fleet,
    upstream_url: &str,
    opts: &SwitchOptions,
    dir: &Path,
    files: &SwitchFiles,
    ports: SwitchPorts,
) -> String {
    use std::fmt::Write as _;
    let in_flight = opts.gateway_in_flight_max.clamp(1, 65_536);
    // The journal queue and the engine's table must hold at least the gateway's in-flight bound.
    let queue = in_flight.max(4096);
    let engine = in_flight.max(65_536);
    let caller_in_flight = opts.caller_in_flight_max.clamp(1, in_flight);
    let pool = opts.pool_size.clamp(1, 4096);
    let linger = opts.group_linger_ms.min(50);
    let upstream_timeout = opts.upstream_timeout_ms.max(100);
    // The whole request must outlast the upstream call.
    let gateway_timeout = upstream_timeout.saturating_add(5000);
    let mut t = String::new();
    let _ = write!(
        t,
        r#"# Written by loadtest (procs.rs) for one load test; reference: config/README.md.
[node]
id = {node}

[listen]
https = "127.0.0.1:{https}"
http = "127.0.0.1:{http}"
admin = "127.0.0.1:{admin}"
admin_api = "127.0.0.1:{admin_api}"
cert_out = {cert_out}

[journal]
path = {journal}
# At least gateway.in_flight_max (a rule of the configuration).
queue_capacity = {queue}
group_linger_ms = {linger}
wal_recovery = "strict"

[gateway]
request_timeout_ms = {gateway_timeout}
# Raised from 10000: an open-loop generator may hold many connections at high rates.
connections_max = {connections}
# Raised from 4096: the load test should find the switch's own limits (journal, CPU, upstream),
# not its admission bound.
in_flight_max = {in_flight}
response_encoding = "UTF-8"
rsa_private_key = {switch_key}

[[accounts]]
name = "acquirer"
partner = "{ACQUIRER_PARTNER}"
sign_type = "MD5"
key = {acquirer_key}
endpoints = [{{ name = "primary", url = {endpoint} }}]
# Raised from 64: the most upstream calls in flight; at rate R and upstream latency L the
# switch needs R x L of them.
pool_size = {pool}
connect_timeout_ms = 3000
request_timeout_ms = {upstream_timeout}
ca_cert = {ca_cert}

[limits]
# At least gateway.in_flight_max.
engine_in_flight_max = {engine}
"#,
        node = toml_str(&opts.node_id),
        https = ports.https,
        http = ports.http,
        admin = ports.admin,
        admin_api = ports.admin_api,
        cert_out = path_str(&dir.join("switch-cert.pem")),
        journal = path_str(&dir.join("journal")),
        connections = opts.connections_max.max(1),
        switch_key = path_str(&files.switch_key),
        acquirer_key = path_str(&files.acquirer_key),
        endpoint = toml_str(&format!("{upstream_url}/gateway.do")),
        ca_cert = path_str(&files.ca_cert),
    );
    let mut merchants: Vec<&str> = Vec::new();
    for c in &fleet.callers {
        for m in &c.merchants {
            if !merchants.contains(&m.as_str()) {
                merchants.push(m);
            }
        }
    }
    for (i, m) in merchants.iter().enumerate() {
        let _ = write!(
            t,
            r#"
[[merchants]]
id = {id}
name = "Loadtest merchant {i}"
mode = "acquirer"
account = "acquirer"
secondary_merchant_id = "LT{i:07}"
mcc = "5812"
stores = [{{ id = "LT{i:07}-S1", name = "Loadtest store {i}" }}]
"#,
            id = toml_str(m),
        );
    }
    for (c, key) in fleet.callers.iter().zip(&files.caller_keys) {
        let acts_for_itself = c.merchants.len() == 1 && c.merchants[0] == c.id;
        let kind = if acts_for_itself {
            String::from("kind = \"merchant\"")
        } else {
            let list: Vec<String> = c.merchants.iter().map(|m| toml_str(m)).collect();
            format!("kind = \"integrator\"\nmerchants = [{}]", list.join(", "))
        };
        let _ = write!(
            t,
            r#"
[[callers]]
id = {id}
{kind}
sign_type = "{sign_type}"
key = {key}
# Raised from 256 (see gateway.in_flight_max): a few callers may carry the whole load.
in_flight_max = {caller_in_flight}
"#,
            id = toml_str(&c.id),
            sign_type = c.sign_type.as_str(),
            key = path_str(key),
        );
    }
    t
}

// ---------------------------------------------------------------------------------------------
// nginx
// ---------------------------------------------------------------------------------------------

/// How to run nginx as the baseline reverse proxy.
#[derive(Debug, Clone)]
pub struct NginxOptions {
    /// The binary; `None`: `/usr/sbin/nginx` or `nginx` on `PATH`, installed with apt-get when
    /// missing and running as root.
    pub binary: Option<PathBuf>,
    /// Idle keep-alive connections to the upstream kept per worker (`keepalive`).
    pub keepalive: u32,
    /// `worker_processes`; `None`: `auto` (one per core).
    pub workers: Option<u32>,
    /// `worker_connections`.
    pub worker_connections: u32,
    /// Verify the upstream's certificate (as the switch does).
    pub verify_upstream: bool,
    /// How long it may take to proxy a first request.
    pub ready_timeout: Duration,
    /// Keep the temporary folder (configuration, logs) after the handle is dropped.
    pub keep_dir: bool,
}

impl Default for NginxOptions {
    fn default() -> NginxOptions {
        NginxOptions {
            binary: None,
            keepalive: 64,
            workers: None,
            worker_connections: 8192,
            verify_upstream: true,
            ready_timeout: Duration::from_secs(30),
            keep_dir: false,
        }
    }
}

/// A running nginx (master and workers). Stopped (all of them) when dropped.
#[derive(Debug)]
pub struct NginxProcess {
    proc: Proc,
    dir: Dir,
    port: u16,
    cert_pem: String,
}

/// Where nginx is, installing it with apt-get when missing and allowed (root).
pub fn find_nginx(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(fail(format!("nginx binary {} does not exist", p.display())))
        };
    }
    let look = || {
        Some(PathBuf::from("/usr/sbin/nginx"))
            .filter(|p| p.is_file())
            .or_else(|| on_path("nginx"))
    };
    if let Some(p) = look() {
        return Ok(p);
    }
    if running_as_root() && on_path("apt-get").is_some() {
        let install = |args: &[&str]| {
            Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !install(&["install", "-y", "nginx"]) {
            let _ = install(&["update"]);
            let _ = install(&["install", "-y", "nginx"]);
        }
        if let Some(p) = look() {
            return Ok(p);
        }
    }
    Err(fail(
        "nginx is not installed (not at /usr/sbin/nginx nor on PATH); install it \
         (e.g. `apt-get install -y nginx`) or name the binary explicitly",
    ))
}

/// Whether this process runs as root (effective uid 0, from /proc/self/status).
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2))
            == Some("0")
    })
}

/// Makes a self-signed end-entity certificate for `localhost`, `127.0.0.1` and `::1` (the
/// simulator's generator): `(cert, key)` files in `dir`. (`openssl req -x509` would mark it a
/// CA, which rustls refuses as a server certificate.)
fn self_signed_cert(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let pair = alipay_sim::tls::PemPair::self_signed()
        .map_err(|e| fail(format!("cannot make nginx's certificate: {e}")))?;
    let (cert, key) = (dir.join("nginx-cert.pem"), dir.join("nginx-key.pem"));
    std::fs::write(&cert, &pair.cert_pem)
        .and_then(|()| std::fs::write(&key, pair.key_pem()))
        .map_err(|e| fail(format!("cannot write nginx's certificate: {e}")))?;
    Ok((cert, key))
}

impl NginxProcess {
    /// Starts nginx as a TLS reverse proxy to `upstream_url` (`https://127.0.0.1:PORT`, the
    /// upstream's certificate `upstream_cert_pem`), with a fresh self-signed certificate, on a
    /// free loopback port, and waits until a request through it is answered.
    pub async fn start(
        upstream_url: &str,
        upstream_cert_pem: &str,
        opts: &NginxOptions,
    ) -> Result<NginxProcess> {
        let binary = find_nginx(opts.binary.as_deref())?;
        let upstream = Url::parse(upstream_url)
            .ok_or_else(|| fail(format!("{upstream_url} is not an http(s) URL")))?;
        let dir = Dir::new("loadtest-nginx-", opts.keep_dir)?;
        let (cert, key) = self_signed_cert(&dir.path)?;
        let cert_pem = read_file(&cert)?;
        let trusted = dir.path.join("upstream-ca.pem");
        write_file(&trusted, upstream_cert_pem)?;
        for sub in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            std::fs::create_dir_all(dir.path.join("tmp").join(sub))
                .map_err(|e| fail(format!("cannot make nginx's temporary folders: {e}")))?;
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = free_ports(1)?[0];
            let conf = nginx_conf(opts, &dir.path, port, &upstream, &cert, &key, &trusted);
            let conf_path = dir.path.join("nginx.conf");
            write_file(&conf_path, &conf)?;
            let mut cmd = Command::new(&binary);
            cmd.current_dir(&dir.path)
                .arg("-p")
                .arg(&dir.path)
                .arg("-c")
                .arg(&conf_path)
                .arg("-e")
                .arg(dir.path.join("error.log"))
                .args(["-g", "daemon off;"]);
            let mut proc = Proc::spawn("nginx", &mut cmd, &dir.path.join("nginx.log"))?;
            let url = format!("https://127.0.0.1:{port}");
            let ready = proc
                .wait_ready(opts.ready_timeout, || async {
                    let client = HttpClient::new(&url, Some(cert_pem.as_bytes()))
                        .ok()?
                        .with_timeout(Duration::from_secs(5));
                    let r = client
                        .request(hyper::Method::GET, "/admin/dials", None, Vec::new())
                        .await
                        .ok()?;
                    (r.status == 200).then_some(())
                })
                .await;
            match ready {
                Ok(()) => {
                    return Ok(NginxProcess {
                        proc,
                        dir,
                        port,
                        cert_pem,
                    })
                }
                Err(e) => {
                    let e = ProcError(format!(
                        "{e}\n{}",
                        log_tail(&dir.path.join("error.log"), 20)
                    ));
                    stop_nginx(&mut proc, Duration::from_secs(5));
                    if attempt < START_ATTEMPTS && port_taken(&e) {
                        continue;
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Starts nginx in front of `sim`.
    pub async fn in_front_of(sim: &SimProcess, opts: &NginxOptions) -> Result<NginxProcess> {
        NginxProcess::start(sim.url(), sim.cert_pem(), opts).await
    }

    /// `https://127.0.0.1:PORT` (no path).
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Its self-signed certificate (PEM), to trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The master's process id.
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// The workers' process ids (the master's children).
    pub fn worker_pids(&self) -> Vec<u32> {
        children_of(self.pid())
    }

    /// Its temporary folder (nginx.conf, error.log).
    pub fn dir(&self) -> &Path {
        &self.dir.path
    }

    /// Stops it: SIGQUIT (graceful), then SIGTERM, then SIGKILL to the master and every worker.
    /// Returns once none of them is alive.
    pub fn stop(&mut self) -> Result<()> {
        let workers = self.worker_pids();
        stop_nginx(&mut self.proc, Duration::from_secs(10));
        let left: Vec<u32> = workers.into_iter().filter(|&p| pid_alive(p)).collect();
        if left.is_empty() && !pid_alive(self.pid()) {
            Ok(())
        } else {
            Err(fail(format!("nginx processes {left:?} survived SIGKILL")))
        }
    }
}

impl Drop for NginxProcess {
    fn drop(&mut self) {
        stop_nginx(&mut self.proc, Duration::from_secs(5));
    }
}

/// Stops an nginx master and its workers, whatever it takes.
fn stop_nginx(proc: &mut Proc, grace: Duration) {
    if proc.exited().is_some() {
        return;
    }
    let workers = children_of(proc.pid());
    let _ = send_signal(proc.pid(), "QUIT");
    if proc.wait_for(grace).is_none() {
        let _ = send_signal(proc.pid(), "TERM");
        if proc.wait_for(Duration::from_secs(3)).is_none() {
            proc.kill();
        }
    }
    // A killed master leaves its workers running: they go too.
    let start = Instant::now();
    while workers.iter().any(|&w| pid_alive(w)) && start.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(20));
    }
    for w in workers.into_iter().filter(|&w| pid_alive(w)) {
        let _ = send_signal(w, "KILL");
    }
}

fn nginx_conf(
    opts: &NginxOptions,
    dir: &Path,
    port: u16,
    upstream: &Url,
    cert: &Path,
    key: &Path,
    trusted: &Path,
) -> String {
    let d = dir.display();
    let workers = opts
        .workers
        .map_or_else(|| "auto".to_owned(), |n| n.max(1).to_string());
    // As root, nginx's workers would otherwise run as nobody, who cannot use this folder.
    let user = if running_as_root() {
        "user root;\n"
    } else {
        ""
    };
    let scheme = if upstream.tls { "https" } else { "http" };
    let verify = if opts.verify_upstream && upstream.tls {
        format!(
            "proxy_ssl_verify on;\n            proxy_ssl_trusted_certificate {};\n            \
             proxy_ssl_name localhost;",
            trusted.display()
        )
    } else {
        "proxy_ssl_verify off;".to_owned()
    };
    format!(
        r#"# Written by loadtest (procs.rs): a plain TLS reverse proxy, the comparison's baseline.
{user}worker_processes {workers};
master_process on;
pid {d}/nginx.pid;
error_log {d}/error.log warn;

events {{
    worker_connections {worker_connections};
}}

http {{
    access_log off;
    client_body_temp_path {d}/tmp/client_body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 75s;

    upstream alipay {{
        server {host}:{uport};
        keepalive {keepalive};
        keepalive_requests 1000000;
    }}

    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_session_cache shared:SSL:10m;

        location / {{
            proxy_pass {scheme}://alipay;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_ssl_session_reuse on;
            proxy_connect_timeout 3s;
            proxy_read_timeout 30s;
            {verify}
        }}
    }}
}}
"#,
        worker_connections = opts.worker_connections.max(64),
        host = upstream.host,
        uport = upstream.port,
        keepalive = opts.keepalive.max(1),
        cert = cert.display(),
        key = key.display(),
    )
}

// ---------------------------------------------------------------------------------------------
// CPU and memory from /proc
// ---------------------------------------------------------------------------------------------

/// Clock ticks per second of `/proc/PID/stat` times: `getconf CLK_TCK` once, else 100 (Linux's
/// USER_HZ on every common architecture).
pub fn clock_ticks_per_second() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|&n: &u64| n > 0)
            .unwrap_or(100)
    })
}

/// The fields of `/proc/PID/stat` after the command name: `[0]` is the state (field 3), `[1]`
/// the parent (4), `[11]` utime (14), `[12]` stime (15).
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let end = stat.rfind(')')?;
    Some(stat.get(end + 1..)?.split_whitespace().collect())
}

/// utime + stime of one process (all its threads), in clock ticks.
fn cpu_ticks_of(stat_path: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(stat_path).ok()?;
    let f = stat_fields(&stat)?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// `VmRSS` and `VmHWM` (peak RSS) of one process, in bytes.
fn memory_of(status_path: &str) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(status_path).ok()?;
    let kib = |name: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    Some((kib("VmRSS:"), kib("VmHWM:")))
}

/// The direct children of `pid` (from every `/proc/*/stat`'s parent field).
pub fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parent = pid.to_string();
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(child) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        let f = stat_fields(&stat);
        if f.as_ref().and_then(|f| f.get(1)) == Some(&parent.as_str())
            && f.as_ref().and_then(|f| f.first()) != Some(&"Z")
        {
            out.push(child);
        }
    }
    out
}

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// One process (all its threads: the switch, the simulator).
    Pid(u32),
    /// A process and its direct children (nginx's master and workers).
    Tree(u32),
    /// This process (the generator).
    Myself,
}

/// One reading of a target's CPU time and memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuMem {
    /// utime + stime, summed over the processes, in clock ticks.
    pub cpu_ticks: u64,
    /// Resident memory now, summed, bytes.
    pub rss_bytes: u64,
    /// Peak resident memory since start (`VmHWM`), summed over the processes, bytes (for a
    /// tree, an upper bound of the true peak).
    pub hwm_bytes: u64,
    /// How many processes were read.
    pub processes: usize,
}

impl CpuMem {
    /// The CPU time in seconds.
    #[allow(clippy::as_conversions)] // ticks to seconds: exact below 2^53 ticks
    pub fn cpu_seconds(&self) -> f64 {
        self.cpu_ticks as f64 / clock_ticks_per_second() as f64
    }
}

/// Reads `target` now. Fails when its (main) process is gone.
pub fn sample(target: Target) -> Result<CpuMem> {
    let (pid, tree) = match target {
        Target::Pid(p) => (Some(p), false),
        Target::Tree(p) => (Some(p), true),
        Target::Myself => (None, false),
    };
    let dir = pid.map_or_else(|| "/proc/self".to_owned(), |p| format!("/proc/{p}"));
    let gone = || fail(format!("{dir} cannot be read: the process is gone"));
    let cpu = cpu_ticks_of(&format!("{dir}/stat")).ok_or_else(gone)?;
    let (rss, hwm) = memory_of(&format!("{dir}/status")).ok_or_else(gone)?;
    let mut total = CpuMem {
        cpu_ticks: cpu,
        rss_bytes: rss,
        hwm_bytes: hwm,
        processes: 1,
    };
    if let (true, Some(pid)) = (tree, pid) {
        for child in children_of(pid) {
            let (Some(c), Some((r, h))) = (
                cpu_ticks_of(&format!("/proc/{child}/stat")),
                memory_of(&format!("/proc/{child}/status")),
            ) else {
                continue;
            };
            total.cpu_ticks += c;
            total.rss_bytes += r;
            total.hwm_bytes += h;
            total.processes += 1;
        }
    }
    Ok(total)
}

/// A target's use of CPU and memory over a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// The window, seconds.
    pub wall_seconds: f64,
    /// CPU time used in it, seconds (all threads and, for a tree, all processes).
    pub cpu_seconds: f64,
    /// `cpu_seconds / wall_seconds × 100`: percent of one core (200 = two cores busy).
    pub cpu_percent: f64,
    /// The highest summed RSS seen by the sampler in the window, bytes.
    pub peak_rss_bytes: u64,
    /// `VmHWM` (peak RSS since the process started) at the end of the window, bytes.
    pub hwm_bytes: u64,
    /// RSS at the end of the window, bytes.
    pub rss_bytes: u64,
}

#[derive(Debug)]
struct Window {
    start: Instant,
    start_ticks: u64,
    peak_rss: u64,
    last: CpuMem,
}

/// Samples a target every `interval` on its own thread, keeping the peak RSS, so that
/// [`Sampler::usage`] gives CPU and memory between two instants.
#[derive(Debug)]
pub struct Sampler {
    target: Target,
    window: Arc<Mutex<Window>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    /// Starts sampling `target` (first reading now).
    pub fn start(target: Target, interval: Duration) -> Result<Sampler> {
        let first = sample(target)?;
        let window = Arc::new(Mutex::new(Window {
            start: Instant::now(),
            start_ticks: first.cpu_ticks,
            peak_rss: first.rss_bytes,
            last: first,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (w, s) = (Arc::clone(&window), Arc::clone(&stop));
        let interval = interval.max(Duration::from_millis(10));
        let thread = std::thread::Builder::new()
            .name("loadtest-sampler".to_owned())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    std::thread::sleep(interval);
                    if let Ok(now) = sample(target) {
                        if let Ok(mut w) = w.lock() {
                            w.peak_rss = w.peak_rss.max(now.rss_bytes);
                            w.last = now;
                        }
                    }
                }
            })
            .map_err(|e| fail(format!("cannot start the sampler thread: {e}")))?;
        Ok(Sampler {
            target,
            window,
            stop,
            thread: Some(thread),
        })
    }

    /// Usage since the start or the last [`Sampler::reset`], with a fresh reading now.
    pub fn usage(&self) -> Usage {
        let now = sample(self.target).ok();
        let Ok(mut w) = self.window.lock() else {
            return Usage {
                wall_seconds: 0.0,
                cpu_seconds: 0.0,
                cpu_percent: 0.0,
                peak_rss_bytes: 0,
                hwm_bytes: 0,
                rss_bytes: 0,
            };
        };
        if let Some(now) = now {
            w.peak_rss = w.peak_rss.max(now.rss_bytes);
            w.last = now;
        }
        let wall = w.start.elapsed().as_secs_f64();
        let ticks = w.last.cpu_ticks.saturating_sub(w.start_ticks);
        let cpu = CpuMem {
            cpu_ticks: ticks,
            ..w.last
        }
        .cpu_seconds();
        Usage {
            wall_seconds: wall,
            cpu_seconds: cpu,
            cpu_percent: if wall > 0.0 { cpu / wall * 100.0 } else { 0.0 },
            peak_rss_bytes: w.peak_rss,
            hwm_bytes: w.last.hwm_bytes,
            rss_bytes: w.last.rss_bytes,
        }
    }

    /// Starts a new window now.
    pub fn reset(&self) {
        let now = sample(self.target).ok();
        if let Ok(mut w) = self.window.lock() {
            if let Some(now) = now {
                w.last = now;
            }
            w.start = Instant::now();
            w.start_ticks = w.last.cpu_ticks;
            w.peak_rss = w.last.rss_bytes;
        }
    }

    /// Stops sampling and gives the usage of the last window.
    pub fn finish(mut self) -> Usage {
        let usage = self.usage();
        self.halt();
        usage
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.halt();
    }
}

// ---------------------------------------------------------------------------------------------
// The switch's metrics
// ---------------------------------------------------------------------------------------------

/// A Prometheus histogram: cumulative buckets by upper bound (`le`, `+Inf` as infinity).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// `(le, cumulative count)`, ascending.
    pub buckets: Vec<(f64, u64)>,
    /// `_count`.
    pub count: u64,
    /// `_sum`.
    pub sum: f64,
}

impl Histogram {
    /// What was recorded since `earlier` (same buckets).
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        let buckets = self
            .buckets
            .iter()
            .map(|&(le, n)| {
                let before = earlier
                    .buckets
                    .iter()
                    .find(|(l, _)| l.total_cmp(&le).is_eq())
                    .map_or(0, |&(_, b)| b);
                (le, n.saturating_sub(before))
            })
            .collect();
        Histogram {
            buckets,
            count: self.count.saturating_sub(earlier.count),
            sum: (self.sum - earlier.sum).max(0.0),
        }
    }

    /// The upper bound of the bucket holding quantile `q` (0..1): the value is at most this.
    /// `None` when empty; infinity when it is past the last finite bucket.
    #[allow(clippy::as_conversions)] // counts far below 2^53
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * self.count as f64).ceil().max(1.0);
        self.buckets
            .iter()
            .find(|&&(_, n)| n as f64 >= rank)
            .map(|&(le, _)| le)
            .or(Some(f64::INFINITY))
    }

    /// `sum / count`, `None` when empty.
    #[allow(clippy::as_conversions)] // counts far below 2^53
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }
}

/// A scrape of a Prometheus text exposition.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// `(name, labels as written without braces, value)` per sample line.
    pub samples: Vec<(String, String, f64)>,
}

impl Metrics {
    /// Parses the text format (comments skipped; malformed lines ignored).
    pub fn parse(text: &str) -> Metrics {
        let mut samples = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (series, value) = match line.rfind('}') {
                Some(close) => (&line[..=close], line[close + 1..].trim()),
                None => match line.split_once(char::is_whitespace) {
                    Some((s, v)) => (s, v.trim()),
                    None => continue,
                },
            };
            // A timestamp may follow the value.
            let value = value.split_whitespace().next().unwrap_or("");
            let Some(value) = parse_float(value) else {
                continue;
            };
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            samples.push((name.to_owned(), labels.to_owned(), value));
        }
        Metrics { samples }
    }

    /// The sum of every series of `name` (all label sets); `None` when there is none.
    pub fn total(&self, name: &str) -> Option<f64> {
        let mut found = false;
        let mut sum = 0.0;
        for (n, _, v) in &self.samples {
            if n == name {
                found = true;
                sum += v;
            }
        }
        found.then_some(sum)
    }

    /// The histogram `name` (its `_bucket`, `_count` and `_sum` series, summed over any other
    /// labels); `None` when absent.
    #[allow(
        clippy::as_conversions,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    // Prometheus writes counts as floats; they are whole and far below 2^53.
    pub fn histogram(&self, name: &str) -> Option<Histogram> {
        let bucket_name = format!("{name}_bucket");
        let mut buckets: Vec<(f64, u64)> = Vec::new();
        for (n, labels, v) in &self.samples {
            if *n != bucket_name {
                continue;
            }
            let Some(le) = label(labels, "le").and_then(|s| parse_float(&s)) else {
                continue;
            };
            let count = v.max(0.0) as u64;
            match buckets.iter_mut().find(|(l, _)| l.total_cmp(&le).is_eq()) {
                Some(b) => b.1 += count,
                None => buckets.push((le, count)),
            }
        }
        let count = self.total(&format!("{name}_count"));
        if buckets.is_empty() && count.is_none() {
            return None;
        }
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        Some(Histogram {
            buckets,
            count: count.unwrap_or(0.0).max(0.0) as u64,
            sum: self.total(&format!("{name}_sum")).unwrap_or(0.0),
        })
    }
}

fn parse_float(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

/// The value of label `key` in `a="x",b="y"`.
fn label(labels: &str, key: &str) -> Option<String> {
    let prefix = format!("{key}=\"");
    let start = labels
        .split(',')
        .map(str::trim)
        .find(|l| l.starts_with(&prefix))?;
    Some(start[prefix.len()..].trim_end_matches('"').to_owned())
}

/// GETs and parses `metrics_url` (e.g. [`SwitchProcess::metrics_url`]).
pub async fn scrape(metrics_url: &str) -> Result<Metrics> {
    let url = Url::parse(metrics_url).ok_or_else(|| fail(format!("{metrics_url} is not a URL")))?;
    let base = format!(
        "{}://{}:{}",
        if url.tls { "https" } else { "http" },
        url.host,
        url.port
    );
    let client = HttpClient::new(&base, None)
        .map_err(|e| fail(format!("{metrics_url}: {e}")))?
        .with_timeout(Duration::from_secs(10));
    let r = client
        .request(hyper::Method::GET, &url.path_and_query, None, Vec::new())
        .await
        .map_err(|e| fail(format!("GET {metrics_url}: {e}")))?;
    if r.status != 200 {
        return Err(fail(format!("GET {metrics_url}: HTTP {}", r.status)));
    }
    Ok(Metrics::parse(&String::from_utf8_lossy(&r.body)))
}

/// The journal's synced writes, from the switch's metrics (`ledger_sync_seconds`, one sample per
/// synced group write, and `ledger_group_size`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JournalSyncs {
    /// Sync latency, seconds; its count is the number of syncs.
    pub sync_seconds: Histogram,
    /// Appends per synced group.
    pub group_size: Histogram,
}

/// The journal's syncs over an interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SyncRate {
    /// Syncs in the interval.
    pub syncs: u64,
    /// Syncs per second.
    pub per_second: f64,
    /// Bucket bound of the 99th percentile sync latency, seconds (the true value is at most
    /// this and above the bucket below).
    pub p99_seconds: Option<f64>,
    /// Mean sync latency, seconds.
    pub mean_seconds: Option<f64>,
    /// Mean appends per sync (group commit at work when above 1).
    pub mean_group_size: Option<f64>,
}

impl JournalSyncs {
    /// The histograms in a scrape (empty when the journal has not synced yet: the metric
    /// appears at its first sync).
    pub fn from_metrics(m: &Metrics) -> JournalSyncs {
        JournalSyncs {
            sync_seconds: m.histogram("ledger_sync_seconds").unwrap_or_default(),
            group_size: m.histogram("ledger_group_size").unwrap_or_default(),
        }
    }

    /// Scrapes `metrics_url` now.
    pub async fn scrape(metrics_url: &str) -> Result<JournalSyncs> {
        Ok(JournalSyncs::from_metrics(&scrape(metrics_url).await?))
    }

    /// Syncs so far.
    pub fn syncs(&self) -> u64 {
        self.sync_seconds.count
    }

    /// The syncs between `earlier` and this scrape, `elapsed` apart.
    pub fn since(&self, earlier: &JournalSyncs, elapsed: Duration) -> SyncRate {
        let lat = self.sync_seconds.since(&earlier.sync_seconds);
        let groups = self.group_size.since(&earlier.group_size);
        let secs = elapsed.as_secs_f64();
        #[allow(clippy::as_conversions)] // counts far below 2^53
        let per_second = if secs > 0.0 {
            lat.count as f64 / secs
        } else {
            0.0
        };
        SyncRate {
            syncs: lat.count,
            per_second,
            p99_seconds: lat.quantile(0.99),
            mean_seconds: lat.mean(),
            mean_group_size: groups.mean(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const TEXT: &str = r#"# HELP ledger_sync_seconds Seconds one group's write with sync took.
# TYPE ledger_sync_seconds histogram
ledger_sync_seconds_bucket{le="0.0001"} 2
ledger_sync_seconds_bucket{le="0.001"} 90
ledger_sync_seconds_bucket{le="0.01"} 99
ledger_sync_seconds_bucket{le="+Inf"} 100
ledger_sync_seconds_sum 0.2
ledger_sync_seconds_count 100
switch_requests_total{service="pay",result="SUCCESS"} 7
switch_requests_total{service="query",result="SUCCESS"} 3
"#;

    #[test]
    fn parses_a_histogram_and_its_quantiles() {
        let m = Metrics::parse(TEXT);
        let h = m.histogram("ledger_sync_seconds").unwrap();
        assert_eq!(h.count, 100);
        assert_eq!(h.buckets.len(), 4);
        assert_eq!(h.quantile(0.5), Some(0.001));
        assert_eq!(h.quantile(0.99), Some(0.01));
        assert_eq!(h.quantile(1.0), Some(f64::INFINITY));
        assert_eq!(m.total("switch_requests_total"), Some(10.0));
        assert!(m.histogram("nope").is_none());
        let earlier = Metrics::parse(&TEXT.replace("} 90", "} 50").replace("} 99\n", "} 59\n"));
        let e = earlier.histogram("ledger_sync_seconds").unwrap();
        let d = h.since(&Histogram {
            count: 60,
            sum: 0.1,
            ..e
        });
        assert_eq!(d.count, 40);
        assert_eq!(d.buckets[1], (0.001, 40));
        let rate = JournalSyncs {
            sync_seconds: h.clone(),
            group_size: Histogram::default(),
        }
        .since(&JournalSyncs::default(), Duration::from_secs(4));
        assert_eq!(rate.syncs, 100);
        assert!((rate.per_second - 25.0).abs() < 1e-9);
    }

    #[test]
    fn reads_this_process() {
        let s = sample(Target::Myself).unwrap();
        assert!(s.rss_bytes > 0 && s.hwm_bytes >= s.rss_bytes);
        assert!(pid_alive(std::process::id()));
        assert!(clock_ticks_per_second() > 0);
    }

    #[test]
    fn a_missing_binary_says_how_to_build_it() {
        let e = find_binary("no-such-binary-here", None).unwrap_err();
        assert!(e.0.contains(BUILD_HINT), "{e}");
        assert!(find_binary("x", Some(Path::new("/no/such/file"))).is_err());
    }
}
