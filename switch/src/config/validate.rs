//! From the file as written ([`super::raw`]) to the checked [`Config`]: shapes, ranges,
//! references between records and relations between limits, every error collected with its key.
//!
//! Each section and each element of an array of tables is read on its own, so an unknown key in
//! `accounts[0]` does not hide a bad partner id in `merchants[3]`. A record that could not be
//! read at all still counts for references (its `id` or `name` is looked up in the raw TOML), so
//! one typo does not cascade into "unknown merchant" errors elsewhere.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use alipay::{Charset, SignType};
use serde::de::DeserializeOwned;

use super::keys::KeyRef;
use super::locate::{deserialize_part, Locator};
use super::raw::*;
use super::records;
use super::{
    resolve, Config, ConfigErrors, Errors, GatewaySection, JournalSection, Limits, Listen, Node,
    NotifySection, ResolverSection, SimulatorSection, WalRecovery,
};

/// Most characters of `node.id`.
pub const NODE_ID_CHARS_MAX: usize = 8;

/// Reads and checks every section of `table`.
pub(super) fn config(
    table: &toml::Table,
    origin: &str,
    base_dir: &Path,
    locator: Locator,
) -> Result<Config, ConfigErrors> {
    let mut e = Errors::new(origin, &locator);
    for key in table.keys() {
        if !SECTIONS.contains(&key.as_str()) {
            let expected = SECTIONS.join(", ");
            e.push(key, format!("unknown section; expected one of {expected}"));
        }
    }
    let ctx = Ctx { table, base_dir };
    let node = ctx
        .section::<RawNode>("node", true, &mut e)
        .map(|r| node(&r, &mut e));
    let listen = ctx
        .section::<RawListen>("listen", true, &mut e)
        .map(|r| listen(&ctx, &r, &mut e));
    let journal = ctx
        .section::<RawJournal>("journal", true, &mut e)
        .map(|r| journal(&ctx, &r, &mut e));
    let gateway = ctx
        .section::<RawGateway>("gateway", false, &mut e)
        .map(|r| gateway(&ctx, &r, &mut e));
    let resolver = ctx
        .section::<RawResolver>("resolver", false, &mut e)
        .map(|r| resolver(&r, &mut e));
    let notify = ctx
        .section::<RawNotify>("notify", false, &mut e)
        .map(|r| notify(&r, &mut e));
    let limits = ctx
        .section::<RawLimits>("limits", false, &mut e)
        .map(|r| limits(&r, &mut e));
    let simulator = match table.get("simulator") {
        None => Some(None),
        Some(_) => ctx
            .section::<RawSimulator>("simulator", true, &mut e)
            .map(|r| Some(simulator(&ctx, &r, &mut e))),
    };
    let accounts = records::accounts(&ctx, &mut e);
    let merchants = records::merchants(&ctx, &mut e);
    let callers = records::callers(&ctx, &mut e);
    let (
        Some(node),
        Some(listen),
        Some(journal),
        Some(gateway),
        Some(resolver),
        Some(notify),
        Some(limits),
        Some(simulator),
    ) = (
        node, listen, journal, gateway, resolver, notify, limits, simulator,
    )
    else {
        return Err(e.into_result(()).err().unwrap_or(ConfigErrors(Vec::new())));
    };
    let config = Config {
        origin: origin.to_owned(),
        base_dir: base_dir.to_owned(),
        node,
        listen,
        journal,
        gateway,
        accounts,
        merchants,
        callers,
        resolver,
        notify,
        limits,
        simulator,
        locator: locator.clone(),
    };
    relations(&config, &mut e);
    e.into_result(config)
}

pub(super) struct Ctx<'a> {
    table: &'a toml::Table,
    base_dir: &'a Path,
}

impl Ctx<'_> {
    /// The section `name`; when absent, an error if `required`, else its defaults (an empty
    /// table). `None` when it could not be read (the error is recorded).
    pub(super) fn section<T: DeserializeOwned>(
        &self,
        name: &str,
        required: bool,
        e: &mut Errors<'_>,
    ) -> Option<T> {
        let empty = toml::Value::Table(toml::Table::new());
        let value = match self.table.get(name) {
            Some(v) => v,
            None if required => {
                e.push(name, format!("the [{name}] section is required"));
                return None;
            }
            None => &empty,
        };
        deserialize_part(value, name)
            .map_err(|(key, message)| e.push(&key, message))
            .ok()
    }

    /// Every element of the array of tables `name`, with its index; elements that cannot be
    /// read are reported and skipped.
    pub(super) fn array<T: DeserializeOwned>(
        &self,
        name: &str,
        e: &mut Errors<'_>,
    ) -> Vec<(usize, T)> {
        let items = match self.table.get(name) {
            None => {
                e.push(name, format!("at least one [[{name}]] is required"));
                return Vec::new();
            }
            Some(toml::Value::Array(items)) => items,
            Some(_) => {
                e.push(
                    name,
                    format!("must be an array of tables, written [[{name}]]"),
                );
                return Vec::new();
            }
        };
        if items.is_empty() {
            e.push(name, format!("at least one [[{name}]] is required"));
        }
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match deserialize_part(item, &format!("{name}[{i}]")) {
                Ok(v) => out.push((i, v)),
                Err((key, message)) => e.push(&key, message),
            }
        }
        out
    }

    /// The string `field` of every element of `name` (read or not), for reference checks;
    /// `None` when some element has none, so references to it cannot be judged.
    pub(super) fn ids(&self, name: &str, field: &str) -> Option<BTreeSet<String>> {
        let Some(toml::Value::Array(items)) = self.table.get(name) else {
            return None;
        };
        items
            .iter()
            .map(|i| i.get(field)?.as_str().map(str::to_owned))
            .collect()
    }

    pub(super) fn path(
        &self,
        e: &mut Errors<'_>,
        key: &str,
        text: &str,
    ) -> Option<std::path::PathBuf> {
        if text.trim().is_empty() {
            e.push(key, "must be a path, not empty");
            return None;
        }
        Some(resolve(self.base_dir, Path::new(text)))
    }
}

fn node(r: &RawNode, e: &mut Errors<'_>) -> Node {
    let ok = (1..=NODE_ID_CHARS_MAX).contains(&r.id.len())
        && r.id.bytes().all(|b| b.is_ascii_alphanumeric());
    if !ok {
        let message =
            format!("must be 1 to {NODE_ID_CHARS_MAX} ASCII letters or digits, e.g. \"sw1\"");
        e.push("node.id", message);
    }
    Node { id: r.id.clone() }
}

pub(super) fn addr(e: &mut Errors<'_>, key: &str, text: &str) -> Option<SocketAddr> {
    match text.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            let message = "must be IP:port, e.g. \"127.0.0.1:8443\" or \"[::1]:8443\" \
                           (host names are not resolved)";
            e.push(key, message);
            None
        }
    }
}

pub(super) fn opt_addr(e: &mut Errors<'_>, key: &str, text: Option<&String>) -> Option<SocketAddr> {
    text.and_then(|t| addr(e, key, t))
}

fn listen(ctx: &Ctx<'_>, r: &RawListen, e: &mut Errors<'_>) -> Listen {
    if r.https.is_none() && r.http.is_none() {
        e.push("listen", "at least one of https and http is required");
    }
    let path = |e: &mut Errors<'_>, key: &str, v: &Option<String>| {
        v.as_deref().and_then(|t| ctx.path(e, key, t))
    };
    let l = Listen {
        https: opt_addr(e, "listen.https", r.https.as_ref()),
        http: opt_addr(e, "listen.http", r.http.as_ref()),
        admin: opt_addr(e, "listen.admin", r.admin.as_ref()),
        admin_api: opt_addr(e, "listen.admin_api", r.admin_api.as_ref()),
        tls_cert: path(e, "listen.tls_cert", &r.tls_cert),
        tls_key: path(e, "listen.tls_key", &r.tls_key),
        cert_out: path(e, "listen.cert_out", &r.cert_out),
    };
    match (&r.tls_cert, &r.tls_key) {
        (Some(_), None) => e.push("listen.tls_key", "is required with tls_cert"),
        (None, Some(_)) => e.push("listen.tls_cert", "is required with tls_key"),
        _ => {}
    }
    if r.https.is_none() {
        for (key, v) in [("tls_cert", &r.tls_cert), ("cert_out", &r.cert_out)] {
            if v.is_some() {
                e.push(&format!("listen.{key}"), "is only used with listen.https");
            }
        }
    } else if r.tls_cert.is_some() && r.cert_out.is_some() {
        let message = "is only used with a generated certificate; remove it or tls_cert";
        e.push("listen.cert_out", message);
    }
    l
}

fn journal(ctx: &Ctx<'_>, r: &RawJournal, e: &mut Errors<'_>) -> JournalSection {
    use ledger::options::{GROUP_LINGER_LIMIT, GROUP_SIZE_LIMIT};
    let path = ctx.path(e, "journal.path", &r.path).unwrap_or_default();
    if !(1..=GROUP_SIZE_LIMIT).contains(&r.queue_capacity) {
        e.push(
            "journal.queue_capacity",
            format!("must be 1 to {GROUP_SIZE_LIMIT}"),
        );
    }
    if r.group_size_max == 0 || r.group_size_max > r.queue_capacity {
        let message = "must be at least 1 and at most journal.queue_capacity";
        e.push("journal.group_size_max", message);
    }
    let linger_limit_ms = GROUP_LINGER_LIMIT.as_millis();
    if u128::from(r.group_linger_ms) > linger_limit_ms {
        let message = format!("must be at most {linger_limit_ms} (it delays every commit)");
        e.push("journal.group_linger_ms", message);
    }
    positive(
        e,
        "journal.state_cache_entries_max",
        r.state_cache_entries_max,
    );
    if r.write_buffer_bytes < 1024 * 1024 {
        e.push(
            "journal.write_buffer_bytes",
            "must be at least 1048576 (1 MiB)",
        );
    }
    if r.memtables_bytes_max < 1024 * 1024 {
        e.push(
            "journal.memtables_bytes_max",
            "must be at least 1048576 (1 MiB)",
        );
    }
    if r.wal_total_bytes_max < 1024 * 1024 {
        e.push(
            "journal.wal_total_bytes_max",
            "must be at least 1048576 (1 MiB)",
        );
    }
    let wal_recovery = match r.wal_recovery.as_str() {
        "strict" => WalRecovery::Strict,
        "torn-tail-tolerated" => WalRecovery::TornTailTolerated,
        _ => {
            let message = "must be \"strict\" (the default) or \"torn-tail-tolerated\"";
            e.push("journal.wal_recovery", message);
            WalRecovery::Strict
        }
    };
    JournalSection {
        path,
        queue_capacity: r.queue_capacity,
        group_size_max: r.group_size_max,
        group_linger: Duration::from_millis(r.group_linger_ms),
        state_cache_entries_max: r.state_cache_entries_max,
        tail_verify_events: r.tail_verify_events,
        wal_total_bytes_max: r.wal_total_bytes_max,
        write_buffer_bytes: r.write_buffer_bytes,
        memtables_bytes_max: r.memtables_bytes_max,
        wal_recovery,
    }
}

pub(super) fn positive(e: &mut Errors<'_>, key: &str, v: usize) {
    if v == 0 {
        e.push(key, "must be at least 1");
    }
}

/// A duration key: 1 ms to [`DURATION_MS_LIMIT`].
pub(super) fn ms(e: &mut Errors<'_>, key: &str, v: u64) -> Duration {
    if v == 0 || v > DURATION_MS_LIMIT {
        e.push(
            key,
            format!("must be 1 to {DURATION_MS_LIMIT} milliseconds"),
        );
    }
    Duration::from_millis(v)
}

fn gateway(ctx: &Ctx<'_>, r: &RawGateway, e: &mut Errors<'_>) -> GatewaySection {
    if !(1024..=BODY_BYTES_LIMIT).contains(&r.body_bytes_max) {
        let message = format!("must be 1024 to {BODY_BYTES_LIMIT} bytes");
        e.push("gateway.body_bytes_max", message);
    }
    let header_read_timeout = ms(
        e,
        "gateway.header_read_timeout_ms",
        r.header_read_timeout_ms,
    );
    let request_timeout = ms(e, "gateway.request_timeout_ms", r.request_timeout_ms);
    positive(e, "gateway.connections_max", r.connections_max);
    positive(e, "gateway.in_flight_max", r.in_flight_max);
    let response_encoding = match r.response_encoding.as_str() {
        "UTF-8" => Charset::Utf8,
        "GBK" => Charset::Gbk,
        _ => {
            e.push("gateway.response_encoding", "must be \"UTF-8\" or \"GBK\"");
            Charset::Utf8
        }
    };
    let rsa_private_key = r
        .rsa_private_key
        .as_ref()
        .and_then(|k| key_ref(ctx, e, "gateway.rsa_private_key", k));
    GatewaySection {
        body_bytes_max: r.body_bytes_max,
        header_read_timeout,
        request_timeout,
        connections_max: r.connections_max,
        in_flight_max: r.in_flight_max,
        response_encoding,
        rsa_private_key,
    }
}

/// A key reference; a plain string or `file` is a path. A value that looks like key material
/// pasted in place of a path is refused without being shown.
pub(super) fn key_ref(
    ctx: &Ctx<'_>,
    e: &mut Errors<'_>,
    key: &str,
    r: &RawKeyRef,
) -> Option<KeyRef> {
    let file = |e: &mut Errors<'_>, key: &str, text: &str| {
        if looks_like_key_material(text) {
            let message = "looks like key material, not a file path (the value is not shown); \
                           put the key in a file, or use { env = \"VARIABLE\" }";
            e.push(key, message);
            return None;
        }
        ctx.path(e, key, text).map(KeyRef::File)
    };
    match r {
        RawKeyRef::Path(p) => file(e, key, p),
        RawKeyRef::Table(RawKeyTable {
            file: Some(p),
            env: None,
        }) => file(e, &format!("{key}.file"), p),
        RawKeyRef::Table(RawKeyTable {
            file: None,
            env: Some(var),
        }) => {
            let ok = !var.is_empty()
                && !var.starts_with(|c: char| c.is_ascii_digit())
                && var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if ok {
                Some(KeyRef::Env(var.clone()))
            } else {
                let message = "must be an environment variable name (letters, digits, _)";
                e.push(&format!("{key}.env"), message);
                None
            }
        }
        RawKeyRef::Table(_) => {
            let message = "must have exactly one of file and env: { file = \"PATH\" } or \
                           { env = \"VARIABLE\" }";
            e.push(key, message);
            None
        }
    }
}

/// PEM armour, a line break, or a long run of Base64 characters without a file extension: a key
/// pasted where a path belongs. (A path of that shape is refused too; rename the file.)
fn looks_like_key_material(text: &str) -> bool {
    let base64ish = text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b));
    text.contains("-----")
        || text.contains('\n')
        || (base64ish && text.len() >= 24 && (text.len() >= 40 || !text.contains('/')))
}

fn resolver(r: &RawResolver, e: &mut Errors<'_>) -> ResolverSection {
    let first_query_after = ms(e, "resolver.first_query_after_ms", r.first_query_after_ms);
    let query_interval = ms(e, "resolver.query_interval_ms", r.query_interval_ms);
    let query_window = ms(e, "resolver.query_window_ms", r.query_window_ms);
    if r.query_window_ms < r.first_query_after_ms {
        let message = "must be at least first_query_after_ms (else no query is ever sent)";
        e.push("resolver.query_window_ms", message);
    }
    if r.cancel_retry_ms.is_empty() {
        e.push("resolver.cancel_retry_ms", "must list at least one delay");
    }
    let mut cancel_retry = Vec::new();
    for (i, v) in r.cancel_retry_ms.iter().enumerate() {
        cancel_retry.push(ms(e, &format!("resolver.cancel_retry_ms[{i}]"), *v));
    }
    if r.cancel_retry_ms.windows(2).any(|w| w[1] < w[0]) {
        e.push(
            "resolver.cancel_retry_ms",
            "must not decrease (a backoff ladder)",
        );
    }
    if r.cancel_attempts_max == 0 {
        e.push("resolver.cancel_attempts_max", "must be at least 1");
    }
    let grace_key = "resolver.cancel_grace_after_midnight_ms";
    let grace = ms(e, grace_key, r.cancel_grace_after_midnight_ms);
    if r.refund_attempts_max == 0 {
        e.push("resolver.refund_attempts_max", "must be at least 1");
    }
    if !(1..=CONCURRENCY_LIMIT).contains(&r.concurrency) {
        e.push(
            "resolver.concurrency",
            format!("must be 1 to {CONCURRENCY_LIMIT}"),
        );
    }
    let sweep_interval = ms(e, "resolver.sweep_interval_ms", r.sweep_interval_ms);
    if r.sweep_interval_ms == 0 {
        e.push("resolver.sweep_interval_ms", "must be at least 1");
    }
    ResolverSection {
        first_query_after,
        query_interval,
        query_window,
        cancel_retry,
        cancel_attempts_max: r.cancel_attempts_max,
        cancel_grace_after_midnight: grace,
        refund_attempts_max: r.refund_attempts_max,
        concurrency: r.concurrency,
        sweep_interval,
    }
}

/// The most a concurrency setting may be.
const CONCURRENCY_LIMIT: usize = 65_536;

fn notify(r: &RawNotify, e: &mut Errors<'_>) -> NotifySection {
    let mut retry = Vec::new();
    for (i, v) in r.retry_ms.iter().enumerate() {
        retry.push(ms(e, &format!("notify.retry_ms[{i}]"), *v));
    }
    if r.retry_ms.windows(2).any(|w| w[1] < w[0]) {
        e.push("notify.retry_ms", "must not decrease (a backoff ladder)");
    }
    if r.timeout_ms == 0 {
        e.push("notify.timeout_ms", "must be at least 1");
    }
    let timeout = ms(e, "notify.timeout_ms", r.timeout_ms);
    for (key, v) in [
        ("notify.concurrency", r.concurrency),
        ("notify.per_merchant", r.per_merchant),
        ("notify.queue_max", r.queue_max),
    ] {
        if !(1..=CONCURRENCY_LIMIT).contains(&v) {
            e.push(key, format!("must be 1 to {CONCURRENCY_LIMIT}"));
        }
    }
    if r.per_merchant > r.concurrency {
        e.push("notify.per_merchant", "must be at most notify.concurrency");
    }
    NotifySection {
        retry,
        timeout,
        concurrency: r.concurrency,
        per_merchant: r.per_merchant,
        queue_max: r.queue_max,
    }
}

fn limits(r: &RawLimits, e: &mut Errors<'_>) -> Limits {
    if !(1..=ENGINE_IN_FLIGHT_LIMIT).contains(&r.engine_in_flight_max) {
        let message = format!("must be 1 to {ENGINE_IN_FLIGHT_LIMIT}");
        e.push("limits.engine_in_flight_max", message);
    }
    if !(1..=100).contains(&r.pay_share_percent) {
        e.push("limits.pay_share_percent", "must be 1 to 100");
    }
    Limits {
        engine_in_flight_max: r.engine_in_flight_max,
        pay_share_percent: r.pay_share_percent,
    }
}

fn simulator(ctx: &Ctx<'_>, r: &RawSimulator, e: &mut Errors<'_>) -> SimulatorSection {
    if r.embedded && !cfg!(feature = "simulator") {
        let message = "this switch was built without the `simulator` feature; set \
                       embedded = false and run alipay-sim on its own, or rebuild with it";
        e.push("simulator.embedded", message);
    }
    if r.time_scale == 0 {
        e.push("simulator.time_scale", "must be at least 1");
    }
    let path = |e: &mut Errors<'_>, key: &str, v: &Option<String>| {
        v.as_deref().and_then(|t| ctx.path(e, key, t))
    };
    SimulatorSection {
        embedded: r.embedded,
        config: path(e, "simulator.config", &r.config),
        listen: addr(e, "simulator.listen", &r.listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))),
        http_listen: opt_addr(e, "simulator.http_listen", r.http_listen.as_ref()),
        cert_out: path(e, "simulator.cert_out", &r.cert_out),
        time_scale: r.time_scale,
        seed: r.seed,
    }
}

/// Relations between sections: limits that must nest, keys that become required, listeners
/// that must not collide.
fn relations(c: &Config, e: &mut Errors<'_>) {
    let g = &c.gateway;
    if g.in_flight_max > c.journal.queue_capacity {
        let message = format!(
            "must be at most journal.queue_capacity ({}), so the journal's queue never fills",
            c.journal.queue_capacity
        );
        e.push("gateway.in_flight_max", message);
    }
    if g.in_flight_max > c.limits.engine_in_flight_max {
        let message = format!(
            "must be at most limits.engine_in_flight_max ({})",
            c.limits.engine_in_flight_max
        );
        e.push("gateway.in_flight_max", message);
    }
    if g.header_read_timeout > g.request_timeout {
        let message = "must be at most gateway.request_timeout_ms";
        e.push("gateway.header_read_timeout_ms", message);
    }
    for (i, a) in c.accounts.iter().enumerate() {
        if a.request_timeout >= g.request_timeout {
            let message = format!(
                "must be less than gateway.request_timeout_ms ({} ms), so a caller gets the \
                 upstream outcome (or UNKNOWN) before its own request times out",
                g.request_timeout.as_millis()
            );
            e.push(&format!("accounts[{i}].request_timeout_ms"), message);
        }
    }
    for (i, caller) in c.callers.iter().enumerate() {
        if caller.in_flight_max > g.in_flight_max {
            let message = "must be at most gateway.in_flight_max";
            e.push(&format!("callers[{i}].in_flight_max"), message);
        }
    }
    let rsa_caller = c.callers.iter().position(|c| c.sign_type != SignType::Md5);
    if let (Some(i), None) = (rsa_caller, &g.rsa_private_key) {
        let message = format!(
            "is required: callers[{i}] uses {} and the switch signs its answers with its own RSA \
             private key",
            c.callers[i].sign_type
        );
        e.push("gateway.rsa_private_key", message);
    }
    listeners_distinct(c, e);
}

fn listeners_distinct(c: &Config, e: &mut Errors<'_>) {
    let mut all: Vec<(&str, SocketAddr)> = Vec::new();
    let l = &c.listen;
    for (key, a) in [
        ("listen.https", l.https),
        ("listen.http", l.http),
        ("listen.admin", l.admin),
    ] {
        all.extend(a.map(|a| (key, a)));
    }
    if let Some(s) = c.simulator.as_ref().filter(|s| s.embedded) {
        all.push(("simulator.listen", s.listen));
        all.extend(s.http_listen.map(|a| ("simulator.http_listen", a)));
    }
    for (i, (key, a)) in all.iter().enumerate() {
        if a.port() == 0 {
            continue;
        }
        if let Some((other, _)) = all[..i].iter().find(|(_, b)| b == a) {
            e.push(key, format!("the same address as {other}"));
        }
    }
}
