//! The configuration at its boundary: the shipped file loads and builds a routing table whose
//! keys really sign and verify; every kind of mistake is reported with its file and key, all of
//! them at once; keys can come from the environment; and no message or `Debug` output ever
//! contains key material.

// The helpers below panic on purpose (a panic is a failed test); clippy's allow-unwrap-in-tests
// covers only #[test] functions.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use alipay::{SignType, Signer, Verifier};
use switch::admission::RateLimit;
use switch::config::{check, Config, ConfigErrors, EMBEDDED_CONFIG};
use switch::tenants::{CallerKind, Mode, RouteError};

/// The repository's `config/` folder (tests run with the crate folder as working directory).
fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config")
}

fn key_text(name: &str) -> String {
    std::fs::read_to_string(config_dir().join("keys").join(name)).unwrap()
}

/// A certificate standing in for the one the embedded simulator writes when it starts.
fn sim_cert() -> String {
    rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .unwrap()
        .cert
        .pem()
}

/// Parses `text` as `switch.toml` in the repository's `config/` and builds its routing table.
fn load(text: &str) -> Result<Config, ConfigErrors> {
    let config = Config::parse(text, "switch.toml", &config_dir())?;
    config.tenants_with_simulator_cert(&sim_cert())?;
    Ok(config)
}

/// The shipped text with `from` (which must occur exactly once) replaced by `to`.
fn edit(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "`{from}` must occur once");
    text.replacen(from, to, 1)
}

fn errors_of(text: &str) -> String {
    match load(text) {
        Ok(_) => "ok".to_owned(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_shipped_config_builds_a_routing_table_whose_keys_work() {
    let config = load(EMBEDDED_CONFIG).unwrap();
    assert_eq!(config.node.id, "sw1");
    assert_eq!(config.accounts.len(), 2);
    assert_eq!(config.merchants.len(), 3);
    assert_eq!(config.callers.len(), 3);
    let acquirer_merchants = config
        .merchants
        .iter()
        .filter(|m| m.mode == Mode::Acquirer)
        .count();
    assert_eq!(acquirer_merchants, 2);
    assert_eq!(
        config.journal.path,
        switch_path(&config_dir(), "../data/journal")
    );
    let tenants = config.tenants_with_simulator_cert(&sim_cert()).unwrap();

    // An SI acts for its two merchants only; a merchant only for itself.
    let si = tenants.caller("2088000000000009").unwrap();
    assert!(matches!(si.kind, CallerKind::Integrator { .. }));
    let acquired = tenants.route(si, "2088000000000002").unwrap();
    assert_eq!(acquired.account.partner, "2088101122136241");
    let direct = tenants.route(si, "2088000000000003").unwrap();
    assert_eq!(direct.account.partner, "2088101122136242");
    assert_eq!(direct.merchant.mode, Mode::Direct);
    assert_eq!(
        tenants.route(si, "2088000000000001").unwrap_err(),
        RouteError::NotPermitted
    );
    let md5_merchant = tenants.caller("2088000000000001").unwrap();
    assert_eq!(
        tenants.route(md5_merchant, "2088000000000002").unwrap_err(),
        RouteError::NotPermitted
    );
    assert!(acquired.account.ca_pem.is_some());

    // The caller's RSA2 key verifies what the merchant's private key signs, and the switch's
    // answers verify with the switch's public key.
    let rsa2 = tenants.caller("2088000000000003").unwrap();
    let merchant_signer =
        Signer::from_key_text(SignType::Rsa2, &key_text("merchant_rsa2_private.pem")).unwrap();
    round_trip(&merchant_signer, &rsa2.verifier);
    let switch_verifier =
        Verifier::from_key_text(SignType::Rsa2, &key_text("switch_rsa_public.pem")).unwrap();
    round_trip(&rsa2.signer, &switch_verifier);
    // MD5 callers and accounts: the same key both ways.
    let caller_key = Signer::md5(key_text("caller_md5_2088000000000001.key").trim()).unwrap();
    round_trip(&caller_key, &md5_merchant.verifier);
    round_trip(&md5_merchant.signer, &caller_key.verifier().unwrap());
    let account_key = Signer::md5(key_text("md5_2088101122136241.key").trim()).unwrap();
    round_trip(&acquired.account.signer, &account_key.verifier().unwrap());
    // The direct account signs like the merchant and checks Alipay's answers with its key.
    round_trip(&direct.account.signer, &merchant_signer.verifier().unwrap());
    let alipay =
        Signer::from_key_text(SignType::Rsa2, &key_text("alipay_rsa2_private.pem")).unwrap();
    round_trip(&alipay, &direct.account.verifier);
}

/// `p` under `base`, with `..` resolved, for comparing paths.
fn switch_path(base: &Path, p: &str) -> PathBuf {
    let mut out = PathBuf::new();
    for c in base.join(p).components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn round_trip(signer: &Signer, verifier: &Verifier) {
    let mut sig = String::new();
    signer.sign(b"a=1&b=2", &mut sig).unwrap();
    verifier.verify(b"a=1&b=2", &sig).unwrap();
}

#[test]
fn the_embedded_copy_is_the_shipped_file_and_starts_the_simulator() {
    let on_disk = std::fs::read_to_string(config_dir().join("switch.toml")).unwrap();
    assert_eq!(on_disk, EMBEDDED_CONFIG);
    let config = Config::load(&config_dir().join("switch.toml")).unwrap();
    let sim = config.simulator.as_ref().unwrap();
    assert!(sim.embedded);
    assert_eq!(sim.listen.to_string(), "127.0.0.1:9443");
    // The accounts trust the certificate the simulator writes.
    assert_eq!(
        config.simulator_cert_out(),
        config.accounts[0].ca_cert.as_ref()
    );
    let options = config.simulator_options().unwrap().unwrap();
    assert_eq!(options.config.accounts.len(), 3);
    assert_eq!(options.cert_out.as_ref(), sim.cert_out.as_ref());
    assert_eq!(config.journal_options().queue_capacity, 4096);
    assert_eq!(
        config.admin_addr().map(|a| a.to_string()).as_deref(),
        Some("127.0.0.1:9090")
    );
}

#[test]
fn check_summarises_listeners_accounts_merchants_callers_and_journal() {
    let summary = check(Some(&config_dir().join("switch.toml"))).unwrap();
    for want in [
        "https 127.0.0.1:8443",
        "http 127.0.0.1:8080",
        "/metrics /healthz /readyz on 127.0.0.1:9090",
        "journal: ",
        "data/journal",
        "2 upstream accounts:",
        "acquirer: partner 2088101122136241, MD5",
        "pool 64 (adaptive concurrency 4 to 64)",
        "3 merchants:",
        "2088000000000001 Lucky Noodle Bar: acquirer mode on acquirer",
        "2088000000000003 Jade Garden Hotel: direct mode on direct-rsa2",
        "3 callers:",
        "2088000000000003: merchant, RSA2",
        "2088000000000009: integrator for 2088000000000002, 2088000000000003, MD5",
        "simulator: embedded, https 127.0.0.1:9443",
    ] {
        assert!(summary.contains(want), "missing `{want}` in:\n{summary}");
    }
}

/// Each broken configuration, and the start of the error line it must produce.
#[test]
fn each_mistake_names_the_file_and_key() {
    let t = EMBEDDED_CONFIG;
    let cases: Vec<(String, &str)> = vec![
        (
            edit(t, "body_bytes_max = 65536", "body_bytes_max = 65536\nbogus = 1"),
            "switch.toml: gateway.bogus: unknown field `bogus`",
        ),
        (
            edit(t, "name = \"backup\", url", "name = \"backup\", weight = 2, url"),
            "switch.toml: accounts[0].endpoints[1].weight: unknown field `weight`",
        ),
        (
            format!("{t}\n[extra]\nx = 1\n"),
            "switch.toml: extra: unknown section",
        ),
        (
            edit(t, "keys/caller_md5_2088000000000009.key", "keys/nope.key"),
            "switch.toml: callers[2].key: cannot read ",
        ),
        (
            edit(t, "partner = \"2088101122136241\"", "partner = \"1088101122136241\""),
            "switch.toml: accounts[0].partner: must be 16 digits starting 2088",
        ),
        (
            edit(t, "partner = \"2088101122136242\"", "partner = \"20881011221362\""),
            "switch.toml: accounts[1].partner: must be 16 digits",
        ),
        (
            edit(t, "account = \"acquirer\"\nsecondary_merchant_id = \"HB0002\"", "account = \"nope\"\nsecondary_merchant_id = \"HB0002\""),
            "switch.toml: merchants[1].account: names no account",
        ),
        (
            edit(t, "id = \"2088000000000002\"", "id = \"2088000000000001\""),
            "switch.toml: merchants[1].id: duplicate merchant id",
        ),
        (
            edit(t, "sign_type = \"RSA2\"\nkey = \"keys/merchant_rsa2_public.pem\"", "sign_type = \"SHA256\"\nkey = \"keys/merchant_rsa2_public.pem\""),
            "switch.toml: callers[1].sign_type: must be \"MD5\", \"RSA\"",
        ),
        (
            edit(t, "merchants = [\"2088000000000002\", \"2088000000000003\"]", "merchants = [\"2088000000000002\", \"2088000000000077\"]"),
            "switch.toml: callers[2].merchants[1]: names no [[merchants]] entry",
        ),
        (
            edit(t, "merchants = [\"2088000000000002\", \"2088000000000003\"]", "merchants = []"),
            "switch.toml: callers[2].merchants: an integrator must list",
        ),
        (
            edit(t, "id = \"2088000000000001\"\nkind = \"merchant\"", "id = \"2088000000000005\"\nkind = \"merchant\""),
            "switch.toml: callers[0].id: a merchant caller's id must be the id of a [[merchants]] entry",
        ),
        (
            edit(t, "kind = \"integrator\"", "kind = \"reseller\""),
            "switch.toml: callers[2].kind: must be \"merchant\" or \"integrator\"",
        ),
        (
            edit(t, "stores = [{ id = \"LNB-WFJ\", name = \"Lucky Noodle Bar Wangfujing\" }]", ""),
            "switch.toml: merchants[0].stores: at least one store is required in acquirer mode",
        ),
        (
            edit(t, "mcc = \"5942\"", "mcc = \"59420\""),
            "switch.toml: merchants[1].mcc: must be a 4-digit MCC",
        ),
        (
            edit(t, "mode = \"direct\"", "mode = \"indirect\""),
            "switch.toml: merchants[2].mode: must be \"acquirer\" or \"direct\"",
        ),
        (
            edit(t, "secondary_merchant_id = \"HB0002\"", "secondary_merchant_id = \"LNB0001\""),
            "switch.toml: merchants[1].secondary_merchant_id: the same account and secondary_merchant_id",
        ),
        (
            edit(t, "header_read_timeout_ms = 5000", "header_read_timeout_ms = 0"),
            "switch.toml: gateway.header_read_timeout_ms: must be 1 to",
        ),
        (
            edit(t, "url = \"https://localhost:9443/gateway.do\"", "url = \"ftp://localhost:9443/gateway.do\""),
            "switch.toml: accounts[0].endpoints[1].url: must be an http:// or https:// URL",
        ),
        (
            edit(t, "alipay_public_key = \"keys/alipay_rsa2_public.pem\"\n", ""),
            "switch.toml: accounts[1].alipay_public_key: is required for RSA2",
        ),
        (
            edit(t, "rsa_private_key = \"keys/switch_rsa_private.pem\"\n", ""),
            "switch.toml: gateway.rsa_private_key: is required: callers[1] uses RSA2",
        ),
        (
            edit(t, "pool_size = 64", "pool_size = 2"),
            "switch.toml: accounts[0].concurrency_min: must be 1 to pool_size (2)",
        ),
        (
            edit(t, "in_flight_max = 256", "in_flight_max = 256\nrate_per_s = 0"),
            "switch.toml: callers[0].rate_per_s: must be a number above 0",
        ),
        (
            edit(t, "in_flight_max = 256", "in_flight_max = 256\nburst = 5"),
            "switch.toml: callers[0].burst: is only used with rate_per_s",
        ),
        (
            edit(t, "in_flight_max = 256", "in_flight_max = 256\nrate_per_s = 10\nburst = 0.5"),
            "switch.toml: callers[0].burst: must be a number from 1",
        ),
        (
            edit(t, "pool_size = 64", "pool_size = \"big\""),
            "switch.toml: accounts[0].pool_size: invalid type: string \"big\", expected usize",
        ),
        (
            edit(t, "name = \"acquirer\"\n", ""),
            "switch.toml: accounts[0].name: is required",
        ),
        (
            edit(t, "path = \"../data/journal\"", "path = 7"),
            "switch.toml: journal.path: invalid type",
        ),
        (
            edit(t, "queue_capacity = 4096", "queue_capacity = 1024"),
            "switch.toml: gateway.in_flight_max: must be at most journal.queue_capacity (1024)",
        ),
        (
            edit(t, "request_timeout_ms = 15000", "request_timeout_ms = 25000"),
            "switch.toml: accounts[0].request_timeout_ms: must be less than gateway.request_timeout_ms",
        ),
        (
            edit(t, "admin = \"127.0.0.1:9090\"", "admin = \"127.0.0.1:8080\""),
            "switch.toml: listen.admin: the same address as listen.http",
        ),
        (
            edit(t, "http = \"127.0.0.1:8080\"", "http = \"localhost:8080\""),
            "switch.toml: listen.http: must be IP:port",
        ),
        (
            edit(t, "wal_recovery = \"strict\"", "wal_recovery = \"lenient\""),
            "switch.toml: journal.wal_recovery: must be \"strict\"",
        ),
        (
            edit(t, "id = \"sw1\"", "id = \"switch-one\""),
            "switch.toml: node.id: must be 1 to 8 ASCII letters or digits",
        ),
        (
            edit(t, "cancel_retry_ms = [1000, 2000, 5000, 10000, 30000]", "cancel_retry_ms = [1000, 500]"),
            "switch.toml: resolver.cancel_retry_ms: must not decrease",
        ),
        (
            edit(t, "per_merchant = 2", "per_merchant = 100"),
            "switch.toml: notify.per_merchant: must be at most notify.concurrency",
        ),
        (
            edit(t, "retry_ms = [15000, 60000", "retry_ms = [150000, 60000"),
            "switch.toml: notify.retry_ms: must not decrease",
        ),
        (
            edit(t, "pay_share_percent = 75", "pay_share_percent = 0"),
            "switch.toml: limits.pay_share_percent: must be 1 to 100",
        ),
        (
            edit(t, "refund_attempts_max = 20", "refund_attempts_max = 0"),
            "switch.toml: resolver.refund_attempts_max: must be at least 1",
        ),
        (
            edit(t, "admin_api = \"127.0.0.1:9091\"", "admin_api = \"localhost\""),
            "switch.toml: listen.admin_api:",
        ),
        (
            edit(t, "[journal]", "[journal_]"),
            "switch.toml: journal: the [journal] section is required",
        ),
        (
            edit(t, "key = \"keys/caller_md5_2088000000000001.key\"", "key = { env = \"SWITCH_TEST_UNSET_VARIABLE_0\" }"),
            "switch.toml: callers[0].key: environment variable SWITCH_TEST_UNSET_VARIABLE_0 is not set",
        ),
        (
            edit(t, "key = \"keys/caller_md5_2088000000000001.key\"", "key = { file = \"a\", env = \"B\" }"),
            "switch.toml: callers[0].key: must have exactly one of file and env",
        ),
        (
            // An RSA2 caller registered with an MD5 key file.
            edit(t, "key = \"keys/merchant_rsa2_public.pem\"", "key = \"keys/caller_md5_2088000000000001.key\""),
            "switch.toml: callers[1].key: key rejected",
        ),
        (
            // An MD5 caller registered with a PEM file.
            edit(t, "key = \"keys/caller_md5_2088000000000001.key\"", "key = \"keys/switch_rsa_public.pem\""),
            "switch.toml: callers[0].key: an MD5 key must be 16 to 64 ASCII letters and digits",
        ),
        (
            edit(t, "ca_cert = \"../data/alipay-sim-cert.pem\"\n\n[[accounts]]", "ca_cert = \"keys/md5_2088101122136241.key\"\n\n[[accounts]]"),
            "switch.toml: accounts[0].ca_cert: ",
        ),
        (
            edit(t, "id = \"sw1\"", "id = \"sw1\" oops"),
            "switch.toml: line 16, column ",
        ),
        (
            edit(t, "id = \"sw1\"", "id = 1979-05-27"),
            "switch.toml: line 16, column ",
        ),
    ];
    for (text, want) in &cases {
        let got = errors_of(text);
        assert!(
            got.lines().any(|l| l.starts_with(want)),
            "expected a line starting `{want}`, got:\n{got}"
        );
        assert_no_key_material(&got);
    }
}

#[test]
fn a_caller_rate_is_an_integer_or_a_float_and_its_burst_defaults_to_a_second_of_it() {
    let t = EMBEDDED_CONFIG;
    let c = load(&edit(
        t,
        "in_flight_max = 256",
        "in_flight_max = 256\nrate_per_s = 5",
    ))
    .unwrap();
    assert_eq!(
        c.callers[0].rate,
        Some(RateLimit::new(5.0, Some(5.0)).unwrap())
    );
    let text = edit(
        t,
        "in_flight_max = 256",
        "in_flight_max = 256\nrate_per_s = 0.5\nburst = 3",
    );
    let c = load(&text).unwrap();
    assert_eq!(
        c.callers[0].rate,
        Some(RateLimit::new(0.5, Some(3.0)).unwrap())
    );
    // Without the keys, not limited; the floor of the concurrency limit defaults to 4.
    assert_eq!(c.callers[1].rate, None);
    assert_eq!(c.accounts[0].concurrency_min, 4);
    assert_eq!(c.accounts[1].concurrency_min, 4);
}

#[test]
fn every_error_is_reported_together_with_its_line() {
    let t = EMBEDDED_CONFIG;
    let t = edit(
        t,
        "body_bytes_max = 65536",
        "body_bytes_max = 65536\nbogus = 1",
    );
    let t = edit(&t, "partner = \"2088101122136242\"", "partner = \"2088\"");
    let t = edit(&t, "mcc = \"5942\"", "mcc = \"bookshop\"");
    let t = edit(
        &t,
        "name = \"backup\", url",
        "name = \"backup\", weight = 2, url",
    );
    let t = edit(&t, "cancel_attempts_max = 20", "cancel_attempts_max = 0");
    let errors = load(&t).unwrap_err();
    let keys: Vec<&str> = errors.0.iter().map(|e| e.key.as_str()).collect();
    for want in [
        "gateway.bogus",
        "accounts[1].partner",
        "merchants[1].mcc",
        "accounts[0].endpoints[1].weight",
        "resolver.cancel_attempts_max",
    ] {
        assert!(keys.contains(&want), "{want} missing from {keys:?}");
    }
    let text = errors.to_string();
    assert_eq!(text.lines().count(), errors.0.len());
    let line_of = |needle: &str| t.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let partner = errors
        .0
        .iter()
        .find(|e| e.key == "accounts[1].partner")
        .unwrap();
    assert_eq!(partner.line, Some(line_of("partner = \"2088\"")));
    assert!(text.contains(&format!("(line {})", line_of("mcc = \"bookshop\""))));
}

#[test]
fn check_reads_every_key_and_reports_all_that_are_missing() {
    // The shipped file copied to a folder without keys: relative paths follow the file.
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("conf");
    std::fs::create_dir(&conf).unwrap();
    let file = conf.join("switch.toml");
    std::fs::write(&file, EMBEDDED_CONFIG).unwrap();
    let config = Config::load(&file).unwrap();
    assert_eq!(config.journal.path, dir.path().join("data/journal"));
    assert_eq!(config.base_dir, conf);
    let errors = check(Some(&file)).unwrap_err();
    let mut keys: Vec<&str> = errors.0.iter().map(|e| e.key.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "accounts[0].key",
            "accounts[1].alipay_public_key",
            "accounts[1].key",
            "callers[0].key",
            "callers[1].key",
            "callers[2].key",
            "gateway.rsa_private_key",
            "simulator.config",
        ]
    );
    let file_name = file.display().to_string();
    for e in &errors.0 {
        assert_eq!(e.file, file_name);
    }
    let missing = errors
        .0
        .iter()
        .find(|e| e.key == "callers[2].key")
        .unwrap()
        .to_string();
    let expected_path = conf.join("keys/caller_md5_2088000000000009.key");
    assert!(
        missing.starts_with(&format!(
            "{file_name}: callers[2].key: cannot read {}: ",
            expected_path.display()
        )),
        "{missing}"
    );
    // A file that is not there at all.
    let gone = check(Some(&conf.join("nope.toml")))
        .unwrap_err()
        .to_string();
    assert!(gone.contains("nope.toml: cannot read the file"), "{gone}");
}

#[test]
fn keys_can_come_from_the_environment() {
    let md5 = key_text("caller_md5_2088000000000001.key");
    let pem = key_text("merchant_rsa2_public.pem");
    std::env::set_var("SWITCH_TEST_CALLER_MD5_KEY", md5.trim());
    std::env::set_var("SWITCH_TEST_CALLER_RSA2_KEY", &pem);
    let t = edit(
        EMBEDDED_CONFIG,
        "key = \"keys/caller_md5_2088000000000001.key\"",
        "key = { env = \"SWITCH_TEST_CALLER_MD5_KEY\" }",
    );
    let t = edit(
        &t,
        "key = \"keys/merchant_rsa2_public.pem\"",
        "key = { env = \"SWITCH_TEST_CALLER_RSA2_KEY\" }",
    );
    let t = edit(
        &t,
        "rsa_private_key = \"keys/switch_rsa_private.pem\"",
        "rsa_private_key = { file = \"keys/switch_rsa_private.pem\" }",
    );
    let config = load(&t).unwrap();
    let tenants = config.tenants_with_simulator_cert(&sim_cert()).unwrap();
    let caller = tenants.caller("2088000000000001").unwrap();
    let signer = Signer::md5(md5.trim()).unwrap();
    round_trip(&signer, &caller.verifier);
    let debug = format!("{config:?}");
    assert!(
        debug.contains("KeyRef::Env(SWITCH_TEST_CALLER_MD5_KEY)"),
        "{debug}"
    );
    assert_no_key_material(&debug);
    assert_no_key_material(&format!("{tenants:?}"));

    std::env::set_var("SWITCH_TEST_EMPTY_KEY", "  ");
    let t = edit(
        EMBEDDED_CONFIG,
        "key = \"keys/caller_md5_2088000000000001.key\"",
        "key = { env = \"SWITCH_TEST_EMPTY_KEY\" }",
    );
    let got = errors_of(&t);
    assert!(
        got.contains(
            "switch.toml: callers[0].key: environment variable SWITCH_TEST_EMPTY_KEY is empty"
        ),
        "{got}"
    );
}

#[test]
fn key_material_never_appears_in_messages_or_debug_output() {
    let md5 = key_text("caller_md5_2088000000000001.key");
    let md5 = md5.trim();
    let pem_line = pem_body_line(&key_text("switch_rsa_private.pem"));
    let t = EMBEDDED_CONFIG;
    let cases = [
        // A key pasted where a path belongs.
        edit(
            t,
            "key = \"keys/caller_md5_2088000000000001.key\"",
            &format!("key = \"{md5}\""),
        ),
        edit(
            t,
            "rsa_private_key = \"keys/switch_rsa_private.pem\"",
            &format!("rsa_private_key = \"{pem_line}\""),
        ),
        edit(
            t,
            "rsa_private_key = \"keys/switch_rsa_private.pem\"",
            "rsa_private_key = \"-----BEGIN PRIVATE KEY-----\\nMIIE\"",
        ),
        // Not a string at all, or not TOML.
        edit(
            t,
            "key = \"keys/caller_md5_2088000000000001.key\"",
            &format!("key = {{ file = [\"{md5}\"] }}"),
        ),
        edit(
            t,
            "key = \"keys/caller_md5_2088000000000001.key\"",
            &format!("key = {md5}"),
        ),
        edit(
            t,
            "rsa_private_key = \"keys/switch_rsa_private.pem\"",
            &format!("rsa_private_key = {pem_line}"),
        ),
        edit(
            t,
            "key = \"keys/caller_md5_2088000000000001.key\"",
            &format!("key = \"{md5}"),
        ),
        // Key files of the wrong kind.
        edit(
            t,
            "key = \"keys/caller_md5_2088000000000001.key\"",
            "key = \"keys/switch_rsa_private.pem\"",
        ),
        edit(
            t,
            "key = \"keys/merchant_rsa2_public.pem\"",
            "key = \"keys/switch_rsa_private.pem\"",
        ),
        edit(
            t,
            "rsa_private_key = \"keys/switch_rsa_private.pem\"",
            "rsa_private_key = \"keys/md5_2088101122136241.key\"",
        ),
    ];
    for text in &cases {
        let got = errors_of(text);
        assert_ne!(got, "ok", "{text}");
        assert_no_key_material(&got);
        if let Err(e) = Config::parse(text, "switch.toml", &config_dir()) {
            assert_no_key_material(&format!("{e:?}"));
        }
    }
    let config = load(EMBEDDED_CONFIG).unwrap();
    assert_no_key_material(&format!("{config:?}"));
    assert_no_key_material(&config.explain());
    let tenants = config.tenants_with_simulator_cert(&sim_cert()).unwrap();
    assert_no_key_material(&format!("{tenants:?}"));
}

/// The second line of a PEM file (the first line of Base64 key material).
fn pem_body_line(pem: &str) -> String {
    pem.lines().nth(1).unwrap().to_owned()
}

/// Fails if `text` holds any part of any key shipped in `config/keys/`.
fn assert_no_key_material(text: &str) {
    for entry in std::fs::read_dir(config_dir().join("keys")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".key") {
            let key = std::fs::read_to_string(&path).unwrap();
            let key = key.trim();
            assert!(!text.contains(key), "{name}'s key leaked:\n{text}");
            assert!(!text.contains(&key[..12]), "part of {name} leaked:\n{text}");
        } else if name.ends_with(".pem") {
            let pem = std::fs::read_to_string(&path).unwrap();
            for part in pem.lines().filter_map(|l| l.get(..16)) {
                if !part.starts_with("-----") {
                    assert!(!text.contains(part), "part of {name} leaked:\n{text}");
                }
            }
        }
    }
}
