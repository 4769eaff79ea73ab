//! The switch's configuration: one TOML file, validated at load, with every error naming the
//! file and the dotted key (`config/switch.toml: callers[2].key: cannot read …`).
//!
//! What the switch does (listeners, journal, upstream accounts, merchants, callers, resolver
//! schedule, limits, the bundled simulator) goes in the file; how one process runs (which file,
//! log level) goes in command-line flags. The shipped `config/switch.toml` is compiled in
//! ([`Config::embedded`]) and runs everything locally against the bundled simulator.
//!
//! Reading happens in three steps, each reporting every error it can find rather than the first:
//! `locate` reads the TOML and remembers where each key is; `raw` deserializes each section
//! (unknown keys are errors); `validate` (sections, relations) and `records` (accounts,
//! merchants, callers) check shapes, ranges, references and relations and build the typed
//! [`Config`]. Key material is read only by [`Config::tenants`] (and
//! [`check`]), through [`KeyRef`]; it never appears in a message or in `Debug` output.
//!
//! **One rule for relative paths:** they are relative to the folder of the configuration file;
//! the compiled-in file behaves as if it lived at `./config/switch.toml`. `..` is resolved
//! lexically.
//!
//! Reference of every key: `config/README.md`, section "switch.toml".

mod explain;
mod keys;
mod locate;
mod raw;
mod records;
mod validate;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use alipay::{Charset, SignType};

pub use self::explain::check;
pub use self::keys::{KeyRef, TlsPem, CERT_BYTES_MAX, KEY_BYTES_MAX};
use self::locate::Locator;
pub use self::raw::{
    BODY_BYTES_LIMIT, DEFAULT_BODY_BYTES_MAX, DEFAULT_CALLER_IN_FLIGHT_MAX,
    DEFAULT_CANCEL_ATTEMPTS_MAX, DEFAULT_CANCEL_GRACE_AFTER_MIDNIGHT_MS, DEFAULT_CANCEL_RETRY_MS,
    DEFAULT_CONNECTIONS_MAX, DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_ENGINE_IN_FLIGHT_MAX,
    DEFAULT_FIRST_QUERY_AFTER_MS, DEFAULT_GATEWAY_IN_FLIGHT_MAX,
    DEFAULT_GATEWAY_REQUEST_TIMEOUT_MS, DEFAULT_HEADER_READ_TIMEOUT_MS, DEFAULT_NOTIFY_CONCURRENCY,
    DEFAULT_NOTIFY_PER_MERCHANT, DEFAULT_NOTIFY_QUEUE_MAX, DEFAULT_NOTIFY_RETRY_MS,
    DEFAULT_NOTIFY_TIMEOUT_MS, DEFAULT_PAY_SHARE_PERCENT, DEFAULT_POOL_SIZE,
    DEFAULT_QUERY_INTERVAL_MS, DEFAULT_QUERY_WINDOW_MS, DEFAULT_REFUND_ATTEMPTS_MAX,
    DEFAULT_RESOLVER_CONCURRENCY, DEFAULT_SIMULATOR_LISTEN, DEFAULT_SWEEP_INTERVAL_MS,
    DEFAULT_UPSTREAM_REQUEST_TIMEOUT_MS, DURATION_MS_LIMIT, ENDPOINTS_MAX, ENGINE_IN_FLIGHT_LIMIT,
    POOL_SIZE_LIMIT,
};
pub use self::records::{is_partner_id, NAME_CHARS_MAX};
pub use self::validate::NODE_ID_CHARS_MAX;
use crate::tenants::{CallerKind, EndpointSpec};

/// The shipped configuration, compiled in.
pub const EMBEDDED_CONFIG: &str = include_str!("../../../config/switch.toml");
/// The name under which the compiled-in configuration reports errors.
pub const EMBEDDED_CONFIG_NAME: &str = "<embedded config/switch.toml>";
/// Where the default configuration lives, relative to the working directory; the compiled-in
/// copy resolves its relative paths as if it were there.
pub const DEFAULT_CONFIG_PATH: &str = "config/switch.toml";

/// One thing wrong with a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or [`EMBEDDED_CONFIG_NAME`]).
    pub file: String,
    /// The dotted key path (`accounts[0].endpoints[1].url`); empty for a TOML syntax error.
    pub key: String,
    /// What is wrong and what is expected. Never contains key material.
    pub message: String,
    /// The line of the key (or of its nearest enclosing table) in the file, if it is there.
    pub line: Option<usize>,
}

impl ConfigError {
    pub(crate) fn new(
        file: &str,
        key: &str,
        message: impl Into<String>,
        line: Option<usize>,
    ) -> ConfigError {
        ConfigError {
            file: file.to_owned(),
            key: key.to_owned(),
            message: message.into(),
            line,
        }
    }
}

impl fmt::Display for ConfigError {
    /// `<file>: <key>: <message>`, plus ` (line N)` when known.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.file)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)?;
        if let Some(line) = self.line {
            write!(f, " (line {line})")?;
        }
        Ok(())
    }
}

/// Every error found in a configuration. `Display`: one line per error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Collects errors against one file, with line numbers from its [`Locator`].
#[derive(Debug)]
pub(crate) struct Errors<'a> {
    file: &'a str,
    locator: &'a Locator,
    list: Vec<ConfigError>,
}

impl<'a> Errors<'a> {
    pub(crate) fn new(file: &'a str, locator: &'a Locator) -> Errors<'a> {
        Errors {
            file,
            locator,
            list: Vec::new(),
        }
    }

    /// Records that `key` is wrong.
    pub(crate) fn push(&mut self, key: &str, message: impl Into<String>) {
        let line = self.locator.line(key);
        self.list
            .push(ConfigError::new(self.file, key, message, line));
    }

    pub(crate) fn into_result<T>(self, value: T) -> Result<T, ConfigErrors> {
        if self.list.is_empty() {
            Ok(value)
        } else {
            Err(ConfigErrors(self.list))
        }
    }
}

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from, for messages: a path, or [`EMBEDDED_CONFIG_NAME`].
    pub origin: String,
    /// The folder relative paths were resolved against.
    pub base_dir: PathBuf,
    /// `[node]`.
    pub node: Node,
    /// `[listen]`.
    pub listen: Listen,
    /// `[journal]`.
    pub journal: JournalSection,
    /// `[gateway]`.
    pub gateway: GatewaySection,
    /// `[[accounts]]`, in file order.
    pub accounts: Vec<AccountSection>,
    /// `[[merchants]]`, in file order.
    pub merchants: Vec<MerchantSection>,
    /// `[[callers]]`, in file order.
    pub callers: Vec<CallerSection>,
    /// `[resolver]`.
    pub resolver: ResolverSection,
    /// `[notify]`.
    pub notify: NotifySection,
    /// `[limits]`.
    pub limits: Limits,
    /// `[simulator]`, if present.
    pub simulator: Option<SimulatorSection>,
    /// Where each key is in the file, for messages about keys found wrong later (key files).
    locator: Locator,
}

/// `[node]`: this switch instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// 1 to 8 ASCII letters or digits; the prefix of every upstream `partner_trans_id` this
    /// node assigns, so two nodes sharing an upstream account never collide.
    pub id: String,
}

/// `[listen]`: the merchant-facing listeners and the operations endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    /// HTTPS for `/gateway.do`.
    pub https: Option<SocketAddr>,
    /// Plain HTTP for `/gateway.do` (local use, or behind a TLS-terminating balancer).
    pub http: Option<SocketAddr>,
    /// `/metrics`, `/healthz`, `/readyz`; when absent they are served on the `http` listener, or
    /// on `https` when there is no `http`.
    pub admin: Option<SocketAddr>,
    /// The operators' admin API (transaction lookup, pending and exceptions lists, resolve
    /// now, cancel); absent: not served. Bind it to loopback or a management network only.
    pub admin_api: Option<SocketAddr>,
    /// PEM certificate chain for `https`; absent: a self-signed certificate for `localhost`,
    /// `127.0.0.1` and `::1` is made at start.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Where a generated certificate is written for clients to trust; absent: not written.
    pub cert_out: Option<PathBuf>,
}

/// How RocksDB treats a damaged WAL at open (see `ledger::WalRecovery`).
pub use ledger::WalRecovery;

/// `[journal]`: the durable journal and its tunables (see `ledger/src/options.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalSection {
    /// The RocksDB folder.
    pub path: PathBuf,
    /// Bounded queue between appenders and the writer thread.
    pub queue_capacity: usize,
    /// Most submissions per group commit.
    pub group_size_max: usize,
    /// Commit delay under concurrency.
    pub group_linger: Duration,
    /// Transaction snapshots kept in memory.
    pub state_cache_entries_max: usize,
    /// Events whose chain links are verified at open.
    pub tail_verify_events: u64,
    /// Upper bound on the WAL before a flush.
    pub wal_total_bytes_max: u64,
    /// Memtable size per column family.
    pub write_buffer_bytes: usize,
    /// Memtables of all column families together.
    pub memtables_bytes_max: usize,
    /// Strict unless an operator decided otherwise after a failed open.
    pub wal_recovery: WalRecovery,
}

impl JournalSection {
    /// The journal's options; what the file does not set keeps the ledger's default.
    pub fn options(&self) -> ledger::JournalOptions {
        ledger::JournalOptions {
            queue_capacity: self.queue_capacity,
            group_size_max: self.group_size_max,
            group_linger: self.group_linger,
            state_cache_entries_max: self.state_cache_entries_max,
            tail_verify_events: self.tail_verify_events,
            max_total_wal_bytes: self.wal_total_bytes_max,
            write_buffer_bytes: self.write_buffer_bytes,
            memtables_bytes_max: self.memtables_bytes_max,
            wal_recovery: self.wal_recovery,
            ..ledger::JournalOptions::default()
        }
    }
}

/// `[gateway]`: the merchant-facing `/gateway.do`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewaySection {
    /// Largest request body (and query), bytes.
    pub body_bytes_max: usize,
    /// Time to read a request's head.
    pub header_read_timeout: Duration,
    /// Time for the whole request, upstream call included.
    pub request_timeout: Duration,
    /// Open connections, all listeners together.
    pub connections_max: usize,
    /// Requests in flight, all callers together.
    pub in_flight_max: usize,
    /// Encoding of the XML answers.
    pub response_encoding: Charset,
    /// The switch's own RSA private key: signs answers to RSA and RSA2 callers.
    pub rsa_private_key: Option<KeyRef>,
}

/// `[[accounts]]`: an upstream partner account at Alipay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSection {
    /// The name merchants refer to.
    pub name: String,
    /// The partner id at Alipay.
    pub partner: String,
    /// The account's sign type.
    pub sign_type: SignType,
    /// MD5: the shared key; RSA/RSA2: our private key.
    pub key: KeyRef,
    /// RSA/RSA2: Alipay's public key (MD5 answers are verified with `key`).
    pub alipay_public_key: Option<KeyRef>,
    /// Primary first, then backups.
    pub endpoints: Vec<EndpointSpec>,
    /// Pooled connections per endpoint.
    pub pool_size: usize,
    /// TCP + TLS connect deadline.
    pub connect_timeout: Duration,
    /// Deadline of one upstream call.
    pub request_timeout: Duration,
    /// Extra trusted root certificates, PEM.
    pub ca_cert: Option<PathBuf>,
    /// The floor of each endpoint's adaptive concurrency limit (its ceiling is `pool_size`).
    pub concurrency_min: usize,
}

/// `[[merchants]]`: whose money it is — the routing table's own record, as validated.
pub type MerchantSection = crate::tenants::Merchant;

/// `[[callers]]`: whoever signs requests to the switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerSection {
    /// Its `partner` towards the switch.
    pub id: String,
    /// A merchant for itself, or an SI for listed merchants.
    pub kind: CallerKind,
    /// The only sign type accepted from it.
    pub sign_type: SignType,
    /// MD5: the shared key; RSA/RSA2: the caller's public key.
    pub key: KeyRef,
    /// Default notification URL.
    pub notify_url: Option<String>,
    /// Its requests in flight at once.
    pub in_flight_max: usize,
    /// Its pays and refunds per second and burst; None: not limited.
    pub rate: Option<crate::admission::RateLimit>,
}

/// `[resolver]`: how unknown outcomes are driven to a final state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverSection {
    /// First query this long after the unknown answer.
    pub first_query_after: Duration,
    /// Then a query every this long…
    pub query_interval: Duration,
    /// …until this long after the unknown answer; then cancel.
    pub query_window: Duration,
    /// Delays between cancel attempts; the last one repeats.
    pub cancel_retry: Vec<Duration>,
    /// Most cancel attempts of one transaction; then it is left to an operator (alarm).
    pub cancel_attempts_max: u32,
    /// A cancel of the previous Beijing day's trade is accepted this long after midnight; later,
    /// the resolver refunds instead.
    pub cancel_grace_after_midnight: Duration,
    /// Most resends of one refund whose outcome is unknown; then it is left to an operator.
    pub refund_attempts_max: u32,
    /// Upstream calls the resolver makes at once.
    pub concurrency: usize,
    /// How often the whole pending table is read again, to pick up anything not scheduled.
    pub sweep_interval: Duration,
}

/// `[notify]`: asynchronous result notifications to merchants' `notify_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifySection {
    /// Delays before each resend; a notification is tried `retry.len() + 1` times, then left
    /// to an operator (exception).
    pub retry: Vec<Duration>,
    /// Deadline of one POST (connect, send, answer).
    pub timeout: Duration,
    /// POSTs in flight at once, over all merchants.
    pub concurrency: usize,
    /// POSTs in flight at once to one caller's endpoint.
    pub per_merchant: usize,
    /// Notifications queued in memory; beyond it they wait in the journal for the next sweep.
    pub queue_max: usize,
}

/// `[limits]`: process-wide bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Transactions the engine tracks in memory at once (in flight and being resolved).
    pub engine_in_flight_max: usize,
    /// The share of `engine_in_flight_max` new pays may take, percent; the rest is kept for
    /// queries, cancels, refunds and the resolver, so an overload of pays never starves them.
    pub pay_share_percent: u8,
}

/// `[simulator]`: the bundled Alipay simulator, run in-process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulatorSection {
    /// Start it with the switch (needs the `simulator` cargo feature).
    pub embedded: bool,
    /// Its configuration file; absent: the simulator's compiled-in default.
    pub config: Option<PathBuf>,
    /// Its HTTPS address.
    pub listen: SocketAddr,
    /// Its plain-HTTP address, if any.
    pub http_listen: Option<SocketAddr>,
    /// Where it writes its self-signed certificate (the accounts' `ca_cert`).
    pub cert_out: Option<PathBuf>,
    /// Simulated seconds per real second.
    pub time_scale: u32,
    /// Seed of its random dials.
    pub seed: u64,
}

impl Config {
    /// Reads, parses and validates the file at `path`; relative paths in it are relative to its
    /// folder. Key files are not read yet: see [`Config::tenants`].
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError::new(
                &origin,
                "",
                format!("cannot read the file: {e}"),
                None,
            )])
        })?;
        let base_dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        Config::parse(&text, &origin, &base_dir)
    }

    /// The compiled-in `config/switch.toml`; its relative paths resolve as if it lived at
    /// `./config/switch.toml`, i.e. against `./config` under the current directory.
    pub fn embedded() -> Result<Config, ConfigErrors> {
        Config::parse(EMBEDDED_CONFIG, EMBEDDED_CONFIG_NAME, Path::new("config"))
    }

    /// `path` if given; else `./config/switch.toml` if it exists (so edits to it take effect);
    /// else the compiled-in copy.
    pub fn load_or_default(path: Option<&Path>) -> Result<Config, ConfigErrors> {
        match path {
            Some(p) => Config::load(p),
            None if Path::new(DEFAULT_CONFIG_PATH).is_file() => {
                Config::load(Path::new(DEFAULT_CONFIG_PATH))
            }
            None => Config::embedded(),
        }
    }

    /// Parses and validates `text`. `origin` names it in messages; relative paths in it resolve
    /// against `base_dir`.
    pub fn parse(text: &str, origin: &str, base_dir: &Path) -> Result<Config, ConfigErrors> {
        let locator = Locator::new(text, origin).map_err(|e| ConfigErrors(vec![e]))?;
        let table: toml::Table = toml::from_str(text).map_err(|e| {
            ConfigErrors(vec![ConfigError::new(origin, "", e.message().trim(), None)])
        })?;
        validate::config(&table, origin, base_dir, locator)
    }

    /// The journal's options.
    pub fn journal_options(&self) -> ledger::JournalOptions {
        self.journal.options()
    }

    /// `path` resolved against [`Config::base_dir`] (see the module doc for the rule).
    pub fn resolve(&self, path: &Path) -> PathBuf {
        resolve(&self.base_dir, path)
    }

    /// An error about `key` of this configuration, with its line.
    pub(crate) fn error(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::new(&self.origin, key, message, self.locator.line(key))
    }

    /// The address `/metrics`, `/healthz` and `/readyz` are served on: `listen.admin`, else
    /// `listen.http`, else `listen.https`.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.listen.admin.or(self.listen.http).or(self.listen.https)
    }
}

/// `rel` joined to `base` (unless absolute), with `.` dropped and `..` resolved lexically.
pub(crate) fn resolve(base: &Path, rel: &Path) -> PathBuf {
    let joined = if rel.is_absolute() {
        rel.to_owned()
    } else {
        base.join(rel)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                let last_is_normal =
                    matches!(out.components().next_back(), Some(Component::Normal(_)));
                if last_is_normal {
                    out.pop();
                } else if !matches!(
                    out.components().next_back(),
                    Some(Component::RootDir | Component::Prefix(_))
                ) {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_lexically_against_the_base() {
        let r = |b: &str, p: &str| resolve(Path::new(b), Path::new(p)).display().to_string();
        assert_eq!(r("config", "../data/journal"), "data/journal");
        assert_eq!(r("config", "keys/a.pem"), "config/keys/a.pem");
        assert_eq!(r(".", "./x"), "x");
        assert_eq!(r("config", ".."), ".");
        assert_eq!(r("config", "../../x"), "../x");
        assert_eq!(r("/etc/switch", "../data"), "/etc/data");
        assert_eq!(r("/", "../x"), "/x");
        assert_eq!(r("config", "/abs/k.pem"), "/abs/k.pem");
    }
}
