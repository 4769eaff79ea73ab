//! The records of the configuration: `[[accounts]]`, `[[merchants]]` and `[[callers]]`, each
//! checked on its own and against the others (unique ids, references that resolve, merchants
//! Alipay can tell apart), every error collected with its key.

use std::collections::{BTreeSet, HashMap};

use alipay::message::ExtendInfo;
use alipay::SignType;

use super::raw::*;
use super::validate::{key_ref, ms, positive, Ctx};
use super::{AccountSection, CallerSection, Errors, MerchantSection};
use crate::admission::{RateError, RateLimit};
use crate::tenants::{CallerKind, EndpointSpec, Mode, Store};
use crate::upstream::limiter::DEFAULT_CONCURRENCY_MIN;

/// Most characters of an account or endpoint name (they label metrics).
pub const NAME_CHARS_MAX: usize = 32;

/// 16 digits starting 2088: Alipay's partner id, and the shape of every id the switch uses as a
/// `partner`.
pub fn is_partner_id(id: &str) -> bool {
    id.len() == 16 && id.starts_with("2088") && id.bytes().all(|b| b.is_ascii_digit())
}

fn partner(e: &mut Errors<'_>, key: &str, id: &str) {
    if !is_partner_id(id) {
        e.push(
            key,
            "must be 16 digits starting 2088, e.g. \"2088000000000001\"",
        );
    }
}

fn sign_type(e: &mut Errors<'_>, key: &str, text: &str) -> SignType {
    SignType::from_wire(text).unwrap_or_else(|| {
        e.push(
            key,
            "must be \"MD5\", \"RSA\" (SHA1withRSA) or \"RSA2\" (SHA256withRSA)",
        );
        SignType::Md5
    })
}

/// A short name: 1 to [`NAME_CHARS_MAX`] of `A-Z a-z 0-9 _ -`.
fn name(e: &mut Errors<'_>, key: &str, text: &str) {
    let ok = (1..=NAME_CHARS_MAX).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !ok {
        let message = format!("must be 1 to {NAME_CHARS_MAX} of A-Z a-z 0-9 _ -");
        e.push(key, message);
    }
}

/// An `http://` or `https://` URL with a host and no user info.
fn url(e: &mut Errors<'_>, key: &str, text: &str) {
    let ok = text.parse::<hyper::Uri>().ok().is_some_and(|u| {
        matches!(u.scheme_str(), Some("http" | "https"))
            && u.host().is_some_and(|h| !h.is_empty())
            && !u.authority().is_some_and(|a| a.as_str().contains('@'))
    });
    if !ok {
        let message = "must be an http:// or https:// URL with a host, e.g. \
                       \"https://globalmapi.alipay.com/gateway.do\"";
        e.push(key, message);
    }
}

pub(super) fn accounts(ctx: &Ctx<'_>, e: &mut Errors<'_>) -> Vec<AccountSection> {
    let mut out = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut partners: HashMap<String, usize> = HashMap::new();
    for (i, r) in ctx.array::<RawAccount>("accounts", e) {
        let k = |f: &str| format!("accounts[{i}].{f}");
        name(e, &k("name"), &r.name);
        if let Some(j) = names.insert(r.name.clone(), i) {
            e.push(
                &k("name"),
                format!("duplicate account name, also accounts[{j}]"),
            );
        }
        partner(e, &k("partner"), &r.partner);
        if let Some(j) = partners.insert(r.partner.clone(), i) {
            let message = format!("duplicate partner, also accounts[{j}]; one account each");
            e.push(&k("partner"), message);
        }
        let st = sign_type(e, &k("sign_type"), &r.sign_type);
        let key = key_ref(ctx, e, &k("key"), &r.key);
        let alipay_public_key = match (st, &r.alipay_public_key) {
            (SignType::Md5, Some(_)) => {
                let message = "is not used by an MD5 account (Alipay's answers are checked \
                               with `key`); remove it";
                e.push(&k("alipay_public_key"), message);
                None
            }
            (SignType::Rsa | SignType::Rsa2, None) => {
                e.push(&k("alipay_public_key"), format!("is required for {st}"));
                None
            }
            (_, Some(r)) => key_ref(ctx, e, &k("alipay_public_key"), r),
            (SignType::Md5, None) => None,
        };
        let endpoints = endpoints(e, i, &r.endpoints);
        if !(1..=POOL_SIZE_LIMIT).contains(&r.pool_size) {
            e.push(&k("pool_size"), format!("must be 1 to {POOL_SIZE_LIMIT}"));
        }
        let concurrency_min = r
            .concurrency_min
            .unwrap_or(DEFAULT_CONCURRENCY_MIN.min(r.pool_size));
        if concurrency_min == 0 || concurrency_min > r.pool_size {
            let message = format!("must be 1 to pool_size ({})", r.pool_size);
            e.push(&k("concurrency_min"), message);
        }
        let connect_timeout = ms(e, &k("connect_timeout_ms"), r.connect_timeout_ms);
        let request_timeout = ms(e, &k("request_timeout_ms"), r.request_timeout_ms);
        if r.connect_timeout_ms >= r.request_timeout_ms {
            e.push(
                &k("connect_timeout_ms"),
                "must be less than request_timeout_ms",
            );
        }
        let ca_cert = r
            .ca_cert
            .as_deref()
            .and_then(|p| ctx.path(e, &k("ca_cert"), p));
        let Some(key) = key else { continue };
        out.push(AccountSection {
            name: r.name,
            partner: r.partner,
            sign_type: st,
            key,
            alipay_public_key,
            endpoints,
            pool_size: r.pool_size,
            connect_timeout,
            request_timeout,
            ca_cert,
            concurrency_min,
        });
    }
    out
}

fn endpoints(e: &mut Errors<'_>, i: usize, raw: &[RawEndpoint]) -> Vec<EndpointSpec> {
    let key = format!("accounts[{i}].endpoints");
    if !(1..=ENDPOINTS_MAX).contains(&raw.len()) {
        let message = format!(
            "must list 1 to {ENDPOINTS_MAX} endpoints, primary first: \
             [{{ name = \"primary\", url = \"https://…\" }}, …]"
        );
        e.push(&key, message);
    }
    let mut names = BTreeSet::new();
    for (j, ep) in raw.iter().enumerate() {
        name(e, &format!("{key}[{j}].name"), &ep.name);
        if !names.insert(ep.name.as_str()) {
            e.push(&format!("{key}[{j}].name"), "duplicate endpoint name");
        }
        url(e, &format!("{key}[{j}].url"), &ep.url);
    }
    raw.iter()
        .map(|ep| EndpointSpec {
            name: ep.name.clone(),
            url: ep.url.clone(),
        })
        .collect()
}

pub(super) fn merchants(ctx: &Ctx<'_>, e: &mut Errors<'_>) -> Vec<MerchantSection> {
    let account_names = ctx.ids("accounts", "name");
    let mut out = Vec::new();
    let mut ids: HashMap<String, usize> = HashMap::new();
    for (i, r) in ctx.array::<RawMerchant>("merchants", e) {
        let k = |f: &str| format!("merchants[{i}].{f}");
        partner(e, &k("id"), &r.id);
        if let Some(j) = ids.insert(r.id.clone(), i) {
            e.push(
                &k("id"),
                format!("duplicate merchant id, also merchants[{j}]"),
            );
        }
        if let Some(names) = account_names.as_ref().filter(|n| !n.contains(&r.account)) {
            let message = format!("names no account; expected one of: {}", list(names));
            e.push(&k("account"), message);
        }
        let mode = match r.mode.as_str() {
            "acquirer" => Mode::Acquirer,
            "direct" => Mode::Direct,
            _ => {
                e.push(&k("mode"), "must be \"acquirer\" or \"direct\"");
                Mode::Acquirer
            }
        };
        let m = MerchantSection {
            id: r.id,
            secondary_merchant_id: r.secondary_merchant_id.unwrap_or_default(),
            name: r.name,
            mcc: r.mcc.unwrap_or_default(),
            stores: r
                .stores
                .into_iter()
                .map(|s| Store {
                    id: s.id,
                    name: s.name,
                })
                .collect(),
            account: r.account,
            mode,
        };
        merchant_fields(e, i, &m);
        out.push(m);
    }
    upstream_ambiguity(e, &out);
    out
}

/// The secondary-merchant fields, checked as `extend_info` would be for each store.
fn merchant_fields(e: &mut Errors<'_>, i: usize, m: &MerchantSection) {
    let k = |f: &str| format!("merchants[{i}].{f}");
    let max = alipay::message::EXTEND_INFO_MEMBER_CHARS_MAX;
    let chars_ok = |s: &str| (1..=max).contains(&s.chars().count());
    if !chars_ok(&m.name) {
        e.push(&k("name"), format!("must be 1 to {max} characters"));
    }
    let mcc_ok = m.mcc.len() == 4 && m.mcc.bytes().all(|b| b.is_ascii_digit());
    if (m.mode == Mode::Acquirer || !m.mcc.is_empty()) && !mcc_ok {
        e.push(&k("mcc"), "must be a 4-digit MCC, e.g. \"5812\"");
    }
    if m.mode == Mode::Acquirer && !chars_ok(&m.secondary_merchant_id) {
        let message = format!("is required in acquirer mode, 1 to {max} characters");
        e.push(&k("secondary_merchant_id"), message);
    }
    if m.mode == Mode::Acquirer && m.stores.is_empty() {
        let message = "at least one store is required in acquirer mode: \
                       [{ id = \"S1\", name = \"…\" }]";
        e.push(&k("stores"), message);
    }
    let mut seen = BTreeSet::new();
    for (j, s) in m.stores.iter().enumerate() {
        if !chars_ok(&s.id) {
            e.push(
                &k(&format!("stores[{j}].id")),
                format!("must be 1 to {max} characters"),
            );
        } else if !seen.insert(s.id.as_str()) {
            e.push(&k(&format!("stores[{j}].id")), "duplicate store id");
        }
        if !chars_ok(&s.name) {
            let message = format!("must be 1 to {max} characters");
            e.push(&k(&format!("stores[{j}].name")), message);
        }
        if m.mode == Mode::Acquirer && mcc_ok && chars_ok(&m.secondary_merchant_id) {
            let info = ExtendInfo {
                secondary_merchant_id: m.secondary_merchant_id.clone(),
                secondary_merchant_name: m.name.clone(),
                secondary_merchant_industry: m.mcc.clone(),
                store_id: s.id.clone(),
                store_name: s.name.clone(),
                terminal_id: String::new(),
            };
            if let Err(err) = info.validate() {
                e.push(
                    &k(&format!("stores[{j}]")),
                    format!("as extend_info: {err}"),
                );
            }
        }
    }
}

/// Two merchants Alipay could not tell apart: the same account and secondary merchant id, or
/// two direct merchants on one account.
fn upstream_ambiguity(e: &mut Errors<'_>, merchants: &[MerchantSection]) {
    let mut seen: HashMap<(&str, &str), usize> = HashMap::new();
    for (i, m) in merchants.iter().enumerate() {
        let secondary = match m.mode {
            Mode::Acquirer => m.secondary_merchant_id.as_str(),
            Mode::Direct => "",
        };
        if let Some(j) = seen.insert((m.account.as_str(), secondary), i) {
            let (key, message) = match m.mode {
                Mode::Acquirer => (
                    "secondary_merchant_id",
                    format!(
                        "the same account and secondary_merchant_id as merchant {}; \
                         their transactions could not be told apart",
                        merchants[j].id
                    ),
                ),
                Mode::Direct => (
                    "account",
                    format!(
                        "already the account of direct merchant {}; a direct account \
                         belongs to one merchant",
                        merchants[j].id
                    ),
                ),
            };
            e.push(&format!("merchants[{i}].{key}"), message);
        }
    }
}

fn list(names: &BTreeSet<String>) -> String {
    if names.is_empty() {
        return "(none)".to_owned();
    }
    names.iter().cloned().collect::<Vec<_>>().join(", ")
}

pub(super) fn callers(ctx: &Ctx<'_>, e: &mut Errors<'_>) -> Vec<CallerSection> {
    let merchant_ids = ctx.ids("merchants", "id");
    let mut out = Vec::new();
    let mut ids: HashMap<String, usize> = HashMap::new();
    for (i, r) in ctx.array::<RawCaller>("callers", e) {
        let k = |f: &str| format!("callers[{i}].{f}");
        partner(e, &k("id"), &r.id);
        if let Some(j) = ids.insert(r.id.clone(), i) {
            e.push(&k("id"), format!("duplicate caller id, also callers[{j}]"));
        }
        let kind = caller_kind(e, i, &r, merchant_ids.as_ref());
        let st = sign_type(e, &k("sign_type"), &r.sign_type);
        let key = key_ref(ctx, e, &k("key"), &r.key);
        if let Some(u) = &r.notify_url {
            url(e, &k("notify_url"), u);
        }
        positive(e, &k("in_flight_max"), r.in_flight_max);
        let rate = caller_rate(e, i, &r);
        let (Some(kind), Some(key)) = (kind, key) else {
            continue;
        };
        out.push(CallerSection {
            id: r.id,
            kind,
            sign_type: st,
            key,
            notify_url: r.notify_url,
            in_flight_max: r.in_flight_max,
            rate,
        });
    }
    out
}

/// `rate_per_s` and `burst`: both absent, not limited.
fn caller_rate(e: &mut Errors<'_>, i: usize, r: &RawCaller) -> Option<RateLimit> {
    let k = |f: &str| format!("callers[{i}].{f}");
    let rate_per_s = match (r.rate_per_s, r.burst) {
        (None, None) => return None,
        (None, Some(_)) => {
            e.push(
                &k("burst"),
                "is only used with rate_per_s; set both or neither",
            );
            return None;
        }
        (Some(rate_per_s), _) => rate_per_s,
    };
    match RateLimit::new(rate_per_s, r.burst) {
        Ok(limit) => Some(limit),
        Err(err) => {
            let key = match err {
                RateError::Rate => "rate_per_s",
                RateError::Burst => "burst",
            };
            let message = match err {
                RateError::Rate => "must be a number above 0 and at most 1000000, e.g. 50 or 0.5",
                RateError::Burst => "must be a number from 1 to 1000000",
            };
            e.push(&k(key), message);
            None
        }
    }
}

fn caller_kind(
    e: &mut Errors<'_>,
    i: usize,
    r: &RawCaller,
    merchant_ids: Option<&BTreeSet<String>>,
) -> Option<CallerKind> {
    let k = |f: &str| format!("callers[{i}].{f}");
    // When a merchant record could not be read, references to merchants are not judged.
    let known = |id: &str| merchant_ids.is_none_or(|ids| ids.contains(id));
    let is_merchant = |id: &str| merchant_ids.is_some_and(|ids| ids.contains(id));
    match r.kind.as_str() {
        "merchant" => {
            if r.merchants.is_some() {
                let message = "is only for kind = \"integrator\"; a merchant caller acts for \
                               itself (its id)";
                e.push(&k("merchants"), message);
            }
            if !known(&r.id) {
                let message = "a merchant caller's id must be the id of a [[merchants]] entry";
                e.push(&k("id"), message);
            }
            Some(CallerKind::Merchant)
        }
        "integrator" => {
            if is_merchant(&r.id) {
                let message = "is a merchant id; an integrator needs an id of its own";
                e.push(&k("id"), message);
            }
            let merchants = r.merchants.clone().unwrap_or_default();
            if merchants.is_empty() {
                let message = "an integrator must list the merchant ids it acts for";
                e.push(&k("merchants"), message);
            }
            let mut seen = BTreeSet::new();
            for (j, m) in merchants.iter().enumerate() {
                if !known(m) {
                    e.push(
                        &k(&format!("merchants[{j}]")),
                        "names no [[merchants]] entry",
                    );
                } else if !seen.insert(m.as_str()) {
                    e.push(&k(&format!("merchants[{j}]")), "listed twice");
                }
            }
            Some(CallerKind::Integrator { merchants })
        }
        _ => {
            e.push(&k("kind"), "must be \"merchant\" or \"integrator\"");
            None
        }
    }
}
