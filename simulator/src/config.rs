//! The simulator's configuration: one TOML file (`config/alipay-sim.toml`), validated at load
//! with errors that name the file and the key.
//!
//! The file says what the simulated Alipay does: its accounts and their keys, its timeouts and
//! windows, its exchange rates and the default dials. How the process runs (addresses, TLS, time
//! scale, seed) is given by command-line flags instead. The shipped file and the TEST ONLY keys
//! it references are also compiled into the binary, so `alipay-sim` with no flags and no file
//! present still runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use alipay::{Charset, Currency, Service, SignType, Signer, Verifier};
use serde::Deserialize;

use crate::dials::Dials;
use crate::error::{Result, SimError};
use crate::money::Rate;

/// The shipped configuration, compiled in.
pub const EMBEDDED_CONFIG: &str = include_str!("../../config/alipay-sim.toml");
/// The name under which the compiled-in configuration reports errors.
pub const EMBEDDED_CONFIG_NAME: &str = "<embedded config/alipay-sim.toml>";
/// The default configuration path, relative to the working directory.
pub const DEFAULT_CONFIG_PATH: &str = "config/alipay-sim.toml";

/// The TEST ONLY key files the shipped configuration references, compiled in.
const EMBEDDED_KEYS: &[(&str, &str)] = &[
    (
        "keys/md5_2088101122136241.key",
        include_str!("../../config/keys/md5_2088101122136241.key"),
    ),
    (
        "keys/merchant_rsa2_public.pem",
        include_str!("../../config/keys/merchant_rsa2_public.pem"),
    ),
    (
        "keys/alipay_rsa2_private.pem",
        include_str!("../../config/keys/alipay_rsa2_private.pem"),
    ),
    (
        "keys/merchant_rsa_public.pem",
        include_str!("../../config/keys/merchant_rsa_public.pem"),
    ),
    (
        "keys/alipay_rsa_private.pem",
        include_str!("../../config/keys/alipay_rsa_private.pem"),
    ),
];

/// Default `trade_timeout_s`: Alipay closes unpaid trades after 3 minutes.
pub const DEFAULT_TRADE_TIMEOUT_S: u64 = 180;
/// Default `cancel_grace_minutes`.
pub const DEFAULT_CANCEL_GRACE_MINUTES: u64 = 15;
/// Default `refund_period_days` (assumed).
pub const DEFAULT_REFUND_PERIOD_DAYS: u64 = 90;
/// Default `confirm_delay_s`.
pub const DEFAULT_CONFIRM_DELAY_S: u64 = 10;
/// Default `async_refund_delay_s` (assumed).
pub const DEFAULT_ASYNC_REFUND_DELAY_S: u64 = 5;
/// Default `trades_max`.
pub const DEFAULT_TRADES_MAX: usize = 1_000_000;
/// Default `scheduled_events_max`.
pub const DEFAULT_SCHEDULED_EVENTS_MAX: usize = 2_000_000;
/// Default `notify_queue_max`.
pub const DEFAULT_NOTIFY_QUEUE_MAX: usize = 10_000;
/// Default `refunds_per_trade_max`.
pub const DEFAULT_REFUNDS_PER_TRADE_MAX: usize = 100;
/// Largest `refunds_per_trade_max`: refunds, their ids and notifications per trade stay bounded.
pub const REFUNDS_PER_TRADE_LIMIT: usize = 10_000;
/// Largest accepted value of any duration key, in seconds (one year), so `*_ms` never overflows.
pub const DURATION_S_MAX: u64 = 366 * 24 * 3600;
/// Largest `trades_max`.
pub const TRADES_MAX_LIMIT: usize = 50_000_000;

/// What an identical pay resubmission is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Resubmit {
    /// Paid: FAIL TRADE_HAS_SUCCESS; closed: FAIL TRADE_HAS_CLOSE; waiting: UNKNOWN.
    Reject,
    /// The original answer again.
    Replay,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default = "d_trade_timeout_s")]
    trade_timeout_s: u64,
    #[serde(default = "d_cancel_grace_minutes")]
    cancel_grace_minutes: u64,
    #[serde(default = "d_refund_period_days")]
    refund_period_days: u64,
    #[serde(default = "d_confirm_delay_s")]
    confirm_delay_s: u64,
    #[serde(default = "d_async_refund_delay_s")]
    async_refund_delay_s: u64,
    #[serde(default = "d_response_encoding")]
    response_encoding: String,
    #[serde(default = "d_resubmit")]
    resubmit: Resubmit,
    #[serde(default = "d_trades_max")]
    trades_max: usize,
    #[serde(default = "d_scheduled_events_max")]
    scheduled_events_max: usize,
    #[serde(default = "d_notify_queue_max")]
    notify_queue_max: usize,
    #[serde(default = "d_refunds_per_trade_max")]
    refunds_per_trade_max: usize,
    #[serde(default)]
    exchange_rates_to_cny: BTreeMap<String, String>,
    #[serde(default)]
    dials: Dials,
    accounts: Vec<FileAccount>,
}

fn d_trade_timeout_s() -> u64 {
    DEFAULT_TRADE_TIMEOUT_S
}
fn d_cancel_grace_minutes() -> u64 {
    DEFAULT_CANCEL_GRACE_MINUTES
}
fn d_refund_period_days() -> u64 {
    DEFAULT_REFUND_PERIOD_DAYS
}
fn d_confirm_delay_s() -> u64 {
    DEFAULT_CONFIRM_DELAY_S
}
fn d_async_refund_delay_s() -> u64 {
    DEFAULT_ASYNC_REFUND_DELAY_S
}
fn d_response_encoding() -> String {
    "GBK".to_owned()
}
fn d_resubmit() -> Resubmit {
    Resubmit::Reject
}
fn d_trades_max() -> usize {
    DEFAULT_TRADES_MAX
}
fn d_scheduled_events_max() -> usize {
    DEFAULT_SCHEDULED_EVENTS_MAX
}
fn d_notify_queue_max() -> usize {
    DEFAULT_NOTIFY_QUEUE_MAX
}
fn d_refunds_per_trade_max() -> usize {
    DEFAULT_REFUNDS_PER_TRADE_MAX
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAccount {
    partner: String,
    sign_type: String,
    md5_key: Option<String>,
    md5_key_file: Option<PathBuf>,
    merchant_public_key_file: Option<PathBuf>,
    alipay_private_key_file: Option<PathBuf>,
    #[serde(default)]
    require_extend_info: bool,
    #[serde(default)]
    fee_rate_bps: u32,
    services: Option<Vec<Service>>,
}

/// The business rules the ledger applies: plain values, so unit tests can build them.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// Unpaid trades close after this, simulated milliseconds.
    pub trade_timeout_ms: i64,
    /// Cancels are accepted until this long after the Beijing midnight ending the trade's day.
    pub cancel_grace_ms: i64,
    /// Refunds are accepted until this long after payment; then TRADE_FINISHED.
    pub refund_period_ms: i64,
    /// An UNKNOWN pay resolves after this.
    pub confirm_delay_ms: i64,
    /// An asynchronous refund completes after this.
    pub async_refund_delay_ms: i64,
    /// The identical-resubmission policy.
    pub resubmit: Resubmit,
    /// Most trades kept.
    pub trades_max: usize,
    /// Most pending events.
    pub scheduled_events_max: usize,
    /// Most refunds of one trade.
    pub refunds_per_trade_max: usize,
    /// Rates to CNY.
    pub rates_to_cny: BTreeMap<Currency, Rate>,
}

/// One merchant account.
#[derive(Debug)]
pub struct Account {
    /// The partner id.
    pub partner: String,
    /// The registered sign type.
    pub sign_type: SignType,
    /// Verifies the merchant's requests.
    pub verifier: Verifier,
    /// Signs responses and notifications (the MD5 key, or the simulated Alipay's private key).
    pub signer: Signer,
    /// Pays must carry extend_info with secondary_merchant_id and store_id.
    pub require_extend_info: bool,
    /// Alipay's fee, basis points.
    pub fee_rate_bps: u32,
    /// Services the partner may call.
    pub services: Vec<Service>,
}

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from (a path, or the embedded name).
    pub source: String,
    /// The ledger's rules.
    pub rules: Rules,
    /// Encoding of responses and notifications.
    pub response_encoding: Charset,
    /// Capacity of the notification queue.
    pub notify_queue_max: usize,
    /// The initial dials.
    pub dials: Dials,
    /// Accounts by partner id.
    pub accounts: BTreeMap<String, Arc<Account>>,
}

/// Where key files are read from.
enum KeySource<'a> {
    Dir(&'a Path),
    Embedded,
}

impl Config {
    /// Loads `path`; key files are relative to its folder.
    pub fn from_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|source| SimError::File {
            path: path.to_owned(),
            source,
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        Config::from_text(&path.display().to_string(), &text, KeySource::Dir(dir))
    }

    /// The shipped configuration, with its keys, as compiled in.
    pub fn embedded() -> Result<Config> {
        Config::from_text(EMBEDDED_CONFIG_NAME, EMBEDDED_CONFIG, KeySource::Embedded)
    }

    /// `path` if given; else `config/alipay-sim.toml` if present; else the embedded copy.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        match path {
            Some(p) => Config::from_file(p),
            None if Path::new(DEFAULT_CONFIG_PATH).is_file() => {
                Config::from_file(Path::new(DEFAULT_CONFIG_PATH))
            }
            None => Config::embedded(),
        }
    }

    fn from_text(file: &str, text: &str, keys: KeySource<'_>) -> Result<Config> {
        let raw: FileConfig = toml::from_str(text).map_err(|e| SimError::ConfigParse {
            file: file.to_owned(),
            message: parse_error(text, &e),
        })?;
        let err = |key: &str, message: String| SimError::Config {
            file: file.to_owned(),
            key: key.to_owned(),
            message,
        };
        let rules = rules_of(&raw, &err)?;
        let response_encoding = Charset::from_label(&raw.response_encoding).ok_or_else(|| {
            err(
                "response_encoding",
                "must be GBK, UTF-8 or GB2312".to_owned(),
            )
        })?;
        raw.dials
            .validate()
            .map_err(|(key, message)| err(&format!("dials.{key}"), message))?;
        if raw.notify_queue_max == 0 {
            return Err(err("notify_queue_max", "must be positive".to_owned()));
        }
        if raw.accounts.is_empty() {
            return Err(err(
                "accounts",
                "at least one account is required".to_owned(),
            ));
        }
        let mut accounts = BTreeMap::new();
        for (i, a) in raw.accounts.iter().enumerate() {
            let account = account_of(a, &keys, &|key: &str, message: String| {
                err(&format!("accounts[{i}].{key}"), message)
            })?;
            let partner = account.partner.clone();
            if accounts.insert(partner, Arc::new(account)).is_some() {
                let message = "the same partner appears twice".to_owned();
                return Err(err(&format!("accounts[{i}].partner"), message));
            }
        }
        Ok(Config {
            source: file.to_owned(),
            rules,
            response_encoding,
            notify_queue_max: raw.notify_queue_max,
            dials: raw.dials,
            accounts,
        })
    }
}

/// A TOML error as "line L, column C: message" — never the source text, which `toml`'s own
/// `Display` quotes and which may hold an inline `md5_key`. On a line that sets `md5_key` even
/// the message is withheld, since messages about a bad value can quote the value.
fn parse_error(text: &str, e: &toml::de::Error) -> String {
    let Some(span) = e.span() else {
        return e.message().trim().to_owned();
    };
    let at = span.start.min(text.len());
    let before = text.get(..at).unwrap_or("");
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    let column = before.get(line_start..).map_or(0, |l| l.chars().count()) + 1;
    let line_text = text.get(line_start..).unwrap_or("");
    let line_text = line_text.split('\n').next().unwrap_or("").trim_start();
    let is_key_line = line_text
        .strip_prefix("md5_key")
        .is_some_and(|rest| rest.trim_start().starts_with('='));
    let message = if is_key_line {
        "md5_key is not a valid TOML string (its value is not shown)"
    } else {
        e.message().trim()
    };
    format!("line {line}, column {column}: {message}")
}

fn rules_of(raw: &FileConfig, err: &dyn Fn(&str, String) -> SimError) -> Result<Rules> {
    let ms = |key: &str, value: u64, unit_ms: u64| -> Result<i64> {
        if value > DURATION_S_MAX {
            return Err(err(key, format!("{value} is too large")));
        }
        i64::try_from(value * unit_ms).map_err(|_| err(key, "too large".to_owned()))
    };
    let trade_timeout_ms = ms("trade_timeout_s", raw.trade_timeout_s, 1000)?;
    if trade_timeout_ms == 0 {
        return Err(err("trade_timeout_s", "must be positive".to_owned()));
    }
    let mut rates_to_cny = BTreeMap::new();
    for (code, text) in &raw.exchange_rates_to_cny {
        let key = format!("exchange_rates_to_cny.{code}");
        let currency: Currency = code
            .parse()
            .map_err(|()| err(&key, "not a supported currency".to_owned()))?;
        let rate = Rate::parse(text).ok_or_else(|| {
            err(
                &key,
                "must be a positive decimal with 8 decimals".to_owned(),
            )
        })?;
        rates_to_cny.insert(currency, rate);
    }
    if !(1..=TRADES_MAX_LIMIT).contains(&raw.trades_max) {
        let message = format!("must be in 1..={TRADES_MAX_LIMIT}");
        return Err(err("trades_max", message));
    }
    if !(1..=REFUNDS_PER_TRADE_LIMIT).contains(&raw.refunds_per_trade_max) {
        let message = format!("must be in 1..={REFUNDS_PER_TRADE_LIMIT}");
        return Err(err("refunds_per_trade_max", message));
    }
    if raw.scheduled_events_max < raw.trades_max {
        let message = "must be at least trades_max (each unpaid trade needs a timeout)";
        return Err(err("scheduled_events_max", message.to_owned()));
    }
    Ok(Rules {
        trade_timeout_ms,
        cancel_grace_ms: ms("cancel_grace_minutes", raw.cancel_grace_minutes, 60_000)?,
        refund_period_ms: ms("refund_period_days", raw.refund_period_days, 86_400_000)?,
        confirm_delay_ms: ms("confirm_delay_s", raw.confirm_delay_s, 1000)?,
        async_refund_delay_ms: ms("async_refund_delay_s", raw.async_refund_delay_s, 1000)?,
        resubmit: raw.resubmit,
        trades_max: raw.trades_max,
        scheduled_events_max: raw.scheduled_events_max,
        refunds_per_trade_max: raw.refunds_per_trade_max,
        rates_to_cny,
    })
}

fn account_of(
    a: &FileAccount,
    keys: &KeySource<'_>,
    err: &dyn Fn(&str, String) -> SimError,
) -> Result<Account> {
    let p = a.partner.as_bytes();
    if p.len() != 16 || !a.partner.starts_with("2088") || !p.iter().all(u8::is_ascii_digit) {
        return Err(err("partner", "must be 16 digits starting 2088".to_owned()));
    }
    let sign_type = SignType::from_wire(&a.sign_type)
        .ok_or_else(|| err("sign_type", "must be MD5, RSA or RSA2".to_owned()))?;
    if a.fee_rate_bps > 10_000 {
        return Err(err("fee_rate_bps", "must be at most 10000".to_owned()));
    }
    let key_err = |key: &str, e: alipay::Error| err(key, e.to_string());
    let (verifier, signer) = match sign_type {
        SignType::Md5 => {
            let text = match (&a.md5_key, &a.md5_key_file) {
                (Some(k), None) => k.clone(),
                (None, Some(f)) => read_key(keys, f).map_err(|m| err("md5_key_file", m))?,
                _ => {
                    let message = "exactly one of md5_key and md5_key_file is required";
                    return Err(err("md5_key", message.to_owned()));
                }
            };
            for key in [&a.merchant_public_key_file, &a.alipay_private_key_file] {
                if key.is_some() {
                    let message = "RSA key files are not used by an MD5 account".to_owned();
                    return Err(err("merchant_public_key_file", message));
                }
            }
            let signer = Signer::md5(text.trim()).map_err(|e| key_err("md5_key", e))?;
            let verifier = signer.verifier().map_err(|e| key_err("md5_key", e))?;
            (verifier, signer)
        }
        SignType::Rsa | SignType::Rsa2 => {
            if a.md5_key.is_some() || a.md5_key_file.is_some() {
                let message = "an RSA account takes no MD5 key".to_owned();
                return Err(err("md5_key", message));
            }
            let file = |key: &'static str, f: &Option<PathBuf>| -> Result<String> {
                let f = f
                    .as_ref()
                    .ok_or_else(|| err(key, "is required".to_owned()))?;
                read_key(keys, f).map_err(|m| err(key, m))
            };
            let public = file("merchant_public_key_file", &a.merchant_public_key_file)?;
            let private = file("alipay_private_key_file", &a.alipay_private_key_file)?;
            let verifier = Verifier::from_key_text(sign_type, &public)
                .map_err(|e| key_err("merchant_public_key_file", e))?;
            let signer = Signer::from_key_text(sign_type, &private)
                .map_err(|e| key_err("alipay_private_key_file", e))?;
            (verifier, signer)
        }
    };
    Ok(Account {
        partner: a.partner.clone(),
        sign_type,
        verifier,
        signer,
        require_extend_info: a.require_extend_info,
        fee_rate_bps: a.fee_rate_bps,
        services: a.services.clone().unwrap_or_else(|| Service::ALL.to_vec()),
    })
}

/// Reads a key file; the error message never contains key material.
fn read_key(keys: &KeySource<'_>, file: &Path) -> std::result::Result<String, String> {
    match keys {
        KeySource::Dir(dir) => {
            let path = dir.join(file);
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))
        }
        KeySource::Embedded => {
            let name = file.to_string_lossy();
            EMBEDDED_KEYS
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, text)| (*text).to_owned())
                .ok_or_else(|| format!("{name} is not among the embedded keys"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_config_loads_from_disk_and_embedded() {
        let embedded = Config::embedded().unwrap();
        assert_eq!(embedded.accounts.len(), 3);
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/alipay-sim.toml");
        let disk = Config::from_file(&path).unwrap();
        assert_eq!(disk.rules, embedded.rules);
        let md5 = &disk.accounts["2088101122136241"];
        assert_eq!(md5.sign_type, SignType::Md5);
        assert!(md5.require_extend_info);
        assert_eq!(disk.accounts["2088101122136242"].sign_type, SignType::Rsa2);
        assert_eq!(disk.accounts["2088101122136243"].sign_type, SignType::Rsa);
        assert_eq!(disk.rules.trade_timeout_ms, 180_000);
        assert_eq!(disk.response_encoding, Charset::Gbk);
    }

    fn load(text: &str) -> String {
        match Config::from_text("t.toml", text, KeySource::Embedded) {
            Ok(_) => "ok".to_owned(),
            Err(e) => e.to_string(),
        }
    }

    const ACCOUNT: &str =
        "[[accounts]]\npartner = \"2088000000000001\"\nsign_type = \"MD5\"\nmd5_key = \"k\"\n";

    #[test]
    fn errors_name_the_file_and_key() {
        assert_eq!(load(ACCOUNT), "ok");
        let cases = [
            ("bogus = 1\n", "unknown field `bogus`"),
            (
                "trade_timeout_s = 0\n",
                "t.toml: trade_timeout_s: must be positive",
            ),
            (
                "response_encoding = \"latin1\"\n",
                "t.toml: response_encoding:",
            ),
            (
                "[exchange_rates_to_cny]\nUSD = \"7.1\"\n",
                "exchange_rates_to_cny.USD",
            ),
            ("[dials]\nfail_rate = 1.5\n", "t.toml: dials.fail_rate:"),
            (
                "refunds_per_trade_max = 0\n",
                "t.toml: refunds_per_trade_max: must be in 1..=10000",
            ),
            ("[dials]\nnope = 1\n", "unknown field `nope`"),
        ];
        for (prefix, want) in cases {
            let got = load(&format!("{prefix}{ACCOUNT}"));
            assert!(got.contains(want), "{prefix}: {got}");
        }
        let bad_partner = ACCOUNT.replace("2088000000000001", "1088000000000001");
        assert!(load(&bad_partner).contains("accounts[0].partner"));
        let twice = format!("{ACCOUNT}{ACCOUNT}");
        assert!(load(&twice).contains("accounts[1].partner"));
        let no_key = ACCOUNT.replace("md5_key = \"k\"\n", "");
        assert!(load(&no_key).contains("accounts[0].md5_key"));
    }

    #[test]
    fn syntax_errors_name_the_line_and_never_show_the_source() {
        const SECRET: &str = "SECRETKEY0123456789abcdef0123456";
        let broken_values = [
            format!("\"{SECRET}\" trailing"),
            SECRET.to_owned(),
            format!("\"{SECRET}"),
            "12345678901234567890123456789012".to_owned(),
            format!("[\"{SECRET}\"]"),
        ];
        for value in broken_values {
            let text = format!(
                "trade_timeout_s = 180\n[[accounts]]\npartner = \"2088000000000001\"\n\
                 sign_type = \"MD5\"\nmd5_key = {value}\n"
            );
            let got = load(&text);
            assert!(got.starts_with("t.toml: line "), "{value}: {got}");
            assert!(!got.contains(SECRET), "{value}: {got}");
            assert!(!got.contains("1234567890"), "{value}: {got}");
            assert!(!got.contains("md5_key = "), "{value}: {got}");
        }
        let got = load(&format!("trade_timeout_s = = 1\n{ACCOUNT}"));
        assert!(got.starts_with("t.toml: line 1, column "), "{got}");
        assert!(!got.contains("trade_timeout_s = ="), "{got}");
    }
}
