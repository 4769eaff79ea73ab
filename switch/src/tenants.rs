//! Tenants and routing: who may call the switch, for which merchants, and where each merchant's
//! traffic goes upstream.
//!
//! Alipay's four integration modes are one routing table, not four code paths:
//!
//! | mode | caller (`partner` towards the switch) | upstream account |
//! |---|---|---|
//! | direct merchant | the merchant | the merchant's own partner account |
//! | via system integrator | the SI, naming the merchant | the merchant's own partner account |
//! | via acquirer | the merchant | the acquirer's account; the merchant goes in `extend_info` |
//! | via SI and acquirer | the SI, naming the merchant | the acquirer's account, `extend_info` |
//!
//! A [`Caller`] is whoever signs requests to the switch: a merchant acting for itself, or a
//! system integrator acting for the merchants listed in its record. A pay names its merchant in
//! `alipay_seller_id` (Alipay's own field, which a merchant sets to its own id, as towards
//! Alipay); query, cancel and refund find the transaction in the caller's namespace. The
//! idempotency namespace is the caller: `(caller, partner_trans_id)`, Alipay's own rule
//! (`partner_trans_id` is unique per `partner`). A [`Merchant`] says how its traffic is sent:
//! [`Mode::Acquirer`] (under the acquirer's account, with the secondary-merchant fields filled in
//! from the merchant's record) or [`Mode::Direct`] (under its own account, carried as is).
//!
//! This module is pure data and lookups; it is built from the configuration
//! ([`crate::config`]) and never changes while the switch runs.

use std::collections::HashMap;
use std::sync::Arc;

use alipay::message::ExtendInfo;
use alipay::{Signer, Verifier};

/// How a merchant's traffic is sent upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Under the acquirer's partner account; the merchant is a secondary merchant in
    /// `extend_info`, filled in from its record.
    Acquirer,
    /// Under the merchant's own partner account; `extend_info` is carried as the caller sent it.
    Direct,
}

/// A store of a merchant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    /// `store_id` as sent upstream.
    pub id: String,
    /// `store_name` as sent upstream.
    pub name: String,
}

/// A merchant: whose money it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merchant {
    /// The merchant's id in the switch; `alipay_seller_id` in its pays, and its `partner` when it
    /// calls the switch itself.
    pub id: String,
    /// `secondary_merchant_id` upstream (acquirer mode).
    pub secondary_merchant_id: String,
    /// `secondary_merchant_name`.
    pub name: String,
    /// `secondary_merchant_industry`: the 4-digit MCC.
    pub mcc: String,
    /// Its stores; a pay names one in `extend_info.store_id`, or gets the first.
    pub stores: Vec<Store>,
    /// The name of the upstream account its traffic goes to.
    pub account: String,
    /// Acquirer or direct.
    pub mode: Mode,
}

/// What a caller is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerKind {
    /// A merchant acting for itself: its `partner` is its merchant id.
    Merchant,
    /// A system integrator acting for these merchants (ids).
    Integrator {
        /// The merchants it may act for.
        merchants: Vec<String>,
    },
}

/// Whoever signs requests to the switch.
#[derive(Debug)]
pub struct Caller {
    /// Its `partner` towards the switch.
    pub id: String,
    /// Merchant or SI.
    pub kind: CallerKind,
    /// Checks its requests' signatures (its registered sign type only).
    pub verifier: Verifier,
    /// Signs the switch's answers to it (MD5: the shared key; RSA/RSA2: the switch's own key).
    pub signer: Signer,
    /// Where its asynchronous notifications go when a request does not name one.
    pub notify_url: Option<String>,
    /// Most requests of this caller in flight at once.
    pub in_flight_max: usize,
}

impl Caller {
    /// True when this caller may act for `merchant`.
    pub fn may_act_for(&self, merchant: &str) -> bool {
        match &self.kind {
            CallerKind::Merchant => self.id == merchant,
            CallerKind::Integrator { merchants } => merchants.iter().any(|m| m == merchant),
        }
    }
}

/// One upstream endpoint of an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSpec {
    /// A short name for logs, metrics and the journal (`primary`, `backup`).
    pub name: String,
    /// The gateway URL, e.g. `https://globalmapi.alipay.com/gateway.do`.
    pub url: String,
}

/// An upstream partner account at Alipay.
#[derive(Debug)]
pub struct Account {
    /// The account's name in the configuration.
    pub name: String,
    /// The partner id at Alipay.
    pub partner: String,
    /// Signs requests to Alipay.
    pub signer: Signer,
    /// Checks Alipay's answers (MD5: the same key; RSA/RSA2: Alipay's public key).
    pub verifier: Verifier,
    /// Primary first, then backups.
    pub endpoints: Vec<EndpointSpec>,
    /// Most pooled connections per endpoint.
    pub pool_size: usize,
    /// TCP + TLS connect deadline.
    pub connect_timeout: std::time::Duration,
    /// Whole-request deadline for one upstream call.
    pub request_timeout: std::time::Duration,
    /// Extra trusted root certificates (PEM), e.g. the bundled simulator's self-signed one.
    pub ca_pem: Option<Vec<u8>>,
}

/// Where one request goes: the merchant, and the upstream account and mode.
#[derive(Debug, Clone)]
pub struct Route {
    /// The merchant the request is for.
    pub merchant: Arc<Merchant>,
    /// The upstream account.
    pub account: Arc<Account>,
}

/// Why a request cannot be routed. Both variants answer the same (`HAS_NO_PRIVILEGE`), so a
/// caller cannot probe which merchant ids exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// No merchant with this id.
    #[error("no such merchant")]
    UnknownMerchant,
    /// The caller may not act for this merchant.
    #[error("the caller may not act for this merchant")]
    NotPermitted,
    /// `extend_info` names a store the merchant does not have.
    #[error("the merchant has no such store")]
    UnknownStore,
}

/// The routing table.
#[derive(Debug, Default)]
pub struct Tenants {
    callers: HashMap<String, Arc<Caller>>,
    merchants: HashMap<String, Arc<Merchant>>,
    accounts: HashMap<String, Arc<Account>>,
    /// (upstream partner, secondary merchant id or "") → merchant id: who owns a journaled
    /// transaction.
    by_upstream: HashMap<(String, String), String>,
}

/// Why a routing table cannot be built (the configuration reports these with file and key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantsError {
    /// Two records share an id.
    #[error("duplicate {what} `{id}`")]
    Duplicate {
        /// `caller`, `merchant` or `account`.
        what: &'static str,
        /// The id.
        id: String,
    },
    /// A record names one that does not exist.
    #[error("{what} `{id}` names unknown {target} `{name}`")]
    Dangling {
        /// The kind of the record.
        what: &'static str,
        /// Its id.
        id: String,
        /// The kind it names.
        target: &'static str,
        /// The missing name.
        name: String,
    },
    /// Two merchants would be indistinguishable upstream.
    #[error("merchants `{a}` and `{b}` share account and secondary merchant id")]
    Ambiguous {
        /// One merchant.
        a: String,
        /// The other.
        b: String,
    },
}

impl Tenants {
    /// Builds the table and checks its references.
    pub fn new(
        accounts: Vec<Account>,
        merchants: Vec<Merchant>,
        callers: Vec<Caller>,
    ) -> Result<Tenants, TenantsError> {
        let mut t = Tenants::default();
        for a in accounts {
            if t.accounts.contains_key(&a.name) {
                return Err(TenantsError::Duplicate {
                    what: "account",
                    id: a.name,
                });
            }
            // A journaled transaction names its account by partner id: one account per partner.
            if t.accounts.values().any(|b| b.partner == a.partner) {
                return Err(TenantsError::Duplicate {
                    what: "account partner",
                    id: a.partner,
                });
            }
            t.accounts.insert(a.name.clone(), Arc::new(a));
        }
        for m in merchants {
            let Some(account) = t.accounts.get(&m.account) else {
                return Err(TenantsError::Dangling {
                    what: "merchant",
                    id: m.id,
                    target: "account",
                    name: m.account,
                });
            };
            if t.merchants.contains_key(&m.id) {
                return Err(TenantsError::Duplicate {
                    what: "merchant",
                    id: m.id,
                });
            }
            let secondary = match m.mode {
                Mode::Acquirer => m.secondary_merchant_id.clone(),
                Mode::Direct => String::new(),
            };
            let key = (account.partner.clone(), secondary);
            if let Some(other) = t.by_upstream.insert(key, m.id.clone()) {
                return Err(TenantsError::Ambiguous { a: other, b: m.id });
            }
            t.merchants.insert(m.id.clone(), Arc::new(m));
        }
        for c in callers {
            if let CallerKind::Integrator { merchants } = &c.kind {
                if let Some(missing) = merchants.iter().find(|m| !t.merchants.contains_key(*m)) {
                    return Err(TenantsError::Dangling {
                        what: "caller",
                        id: c.id.clone(),
                        target: "merchant",
                        name: missing.clone(),
                    });
                }
            }
            if t.callers.contains_key(&c.id) {
                return Err(TenantsError::Duplicate {
                    what: "caller",
                    id: c.id,
                });
            }
            t.callers.insert(c.id.clone(), Arc::new(c));
        }
        Ok(t)
    }

    /// The caller whose `partner` this is.
    pub fn caller(&self, partner: &str) -> Option<&Arc<Caller>> {
        self.callers.get(partner)
    }

    /// Every caller.
    pub fn callers(&self) -> impl Iterator<Item = &Arc<Caller>> {
        self.callers.values()
    }

    /// The merchant with this id.
    pub fn merchant(&self, id: &str) -> Option<&Arc<Merchant>> {
        self.merchants.get(id)
    }

    /// The upstream account with this name.
    pub fn account(&self, name: &str) -> Option<&Arc<Account>> {
        self.accounts.get(name)
    }

    /// Every upstream account.
    pub fn accounts(&self) -> impl Iterator<Item = &Arc<Account>> {
        self.accounts.values()
    }

    /// The upstream account with this partner id (for the journal's `upstream_partner`).
    pub fn account_by_partner(&self, partner: &str) -> Option<&Arc<Account>> {
        self.accounts.values().find(|a| a.partner == partner)
    }

    /// The route of a request by `caller` for merchant `merchant_id`.
    pub fn route(&self, caller: &Caller, merchant_id: &str) -> Result<Route, RouteError> {
        let merchant = self
            .merchants
            .get(merchant_id)
            .ok_or(RouteError::UnknownMerchant)?;
        if !caller.may_act_for(merchant_id) {
            return Err(RouteError::NotPermitted);
        }
        let account = self
            .accounts
            .get(&merchant.account)
            .ok_or(RouteError::UnknownMerchant)?;
        Ok(Route {
            merchant: Arc::clone(merchant),
            account: Arc::clone(account),
        })
    }

    /// The merchant that owns a journaled transaction, from its upstream partner and secondary
    /// merchant id (`None` for direct mode).
    pub fn owner(&self, upstream_partner: &str, secondary: Option<&str>) -> Option<&Arc<Merchant>> {
        let key = (
            upstream_partner.to_owned(),
            secondary.unwrap_or("").to_owned(),
        );
        self.by_upstream
            .get(&key)
            .and_then(|id| self.merchants.get(id))
    }
}

/// The `extend_info` to send upstream for a pay on `route`, from what the caller sent.
///
/// Acquirer mode: the secondary merchant's id, name and MCC always come from the merchant's
/// record (a caller cannot claim to be another merchant); the store is the one the caller named
/// if the merchant has it, else the merchant's first store; `terminal_id` is carried. Direct
/// mode: the caller's `extend_info` is carried unchanged.
pub fn extend_info(
    route: &Route,
    sent: Option<&ExtendInfo>,
) -> Result<Option<ExtendInfo>, RouteError> {
    let m = &route.merchant;
    match m.mode {
        Mode::Direct => Ok(sent.cloned()),
        Mode::Acquirer => {
            let named = sent.map(|e| e.store_id.as_str()).filter(|s| !s.is_empty());
            let store = match named {
                Some(id) => m
                    .stores
                    .iter()
                    .find(|s| s.id == id)
                    .ok_or(RouteError::UnknownStore)?,
                None => m.stores.first().ok_or(RouteError::UnknownStore)?,
            };
            Ok(Some(ExtendInfo {
                secondary_merchant_id: m.secondary_merchant_id.clone(),
                secondary_merchant_name: m.name.clone(),
                secondary_merchant_industry: m.mcc.clone(),
                store_id: store.id.clone(),
                store_name: store.name.clone(),
                terminal_id: sent.map(|e| e.terminal_id.clone()).unwrap_or_default(),
            }))
        }
    }
}
