//! Key material: where it is referenced ([`KeyRef`]), how it is read (bounded, never shown),
//! and the routing table built from it ([`Config::tenants`]).
//!
//! Every key of every record is read and checked, and every failure reported with the record's
//! key path, before [`Tenants::new`] sees anything; so `switch check-config` lists all missing or
//! broken key files at once. No message here contains key text: file errors name the path,
//! environment errors the variable, and `alipay`'s key errors only the expected form.

use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use alipay::{Secret, SignType, Signer, Verifier};

use super::{Config, ConfigError, ConfigErrors};
use crate::tenants::{Account, Caller, Tenants, TenantsError};

/// Largest key file read, bytes (an 8192-bit PEM private key is about 6.5 KiB).
pub const KEY_BYTES_MAX: u64 = 64 * 1024;
/// Largest certificate file read (`ca_cert`, `tls_cert`), bytes.
pub const CERT_BYTES_MAX: u64 = 1024 * 1024;

/// Where a key is: a file (PEM, Alipay's single-line Base64, or the MD5 key itself), or an
/// environment variable holding the same text.
#[derive(Clone, PartialEq, Eq)]
pub enum KeyRef {
    /// A file, already resolved against the configuration's folder.
    File(PathBuf),
    /// An environment variable's name.
    Env(String),
}

impl fmt::Debug for KeyRef {
    /// The reference, never the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyRef::File(p) => write!(f, "KeyRef::File({})", p.display()),
            KeyRef::Env(v) => write!(f, "KeyRef::Env({v})"),
        }
    }
}

impl fmt::Display for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyRef::File(p) => write!(f, "{}", p.display()),
            KeyRef::Env(v) => write!(f, "${v}"),
        }
    }
}

impl KeyRef {
    /// The key text. The error says what could not be read, never what was in it.
    pub fn read(&self) -> Result<Secret<String>, String> {
        match self {
            KeyRef::File(p) => read_bounded(p, KEY_BYTES_MAX)
                .and_then(|bytes| {
                    String::from_utf8(bytes).map_err(|_| "is not UTF-8 text".to_owned())
                })
                .map(Secret::new)
                .map_err(|m| format!("cannot read {}: {m}", p.display())),
            KeyRef::Env(var) => match std::env::var(var) {
                Ok(text) if !text.trim().is_empty() => Ok(Secret::new(text)),
                Ok(_) => Err(format!("environment variable {var} is empty")),
                Err(std::env::VarError::NotPresent) => {
                    Err(format!("environment variable {var} is not set"))
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    Err(format!("environment variable {var} is not UTF-8"))
                }
            },
        }
    }
}

/// Reads at most `max` bytes of `path`; a larger file is an error.
pub(crate) fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if u64::try_from(bytes.len()).map_or(true, |n| n > max) {
        return Err(format!("larger than {max} bytes"));
    }
    Ok(bytes)
}

/// The HTTPS listener's certificate chain and private key, PEM, as read from `listen.tls_cert`
/// and `listen.tls_key`.
#[derive(Debug, Clone)]
pub struct TlsPem {
    /// The certificate chain.
    pub cert_chain_pem: Vec<u8>,
    /// The private key (masked in `Debug`).
    pub key_pem: Secret<Vec<u8>>,
}

/// Where the certificate of an account whose `ca_cert` is the embedded simulator's `cert_out`
/// comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SimCert<'a> {
    /// Read the file like any other.
    Read,
    /// This PEM (the running simulator's).
    Given(&'a str),
    /// Not yet written (the simulator writes it at start): skip it (`check`).
    Later,
}

/// The switch's own RSA signers for answers to RSA and RSA2 callers, made once.
struct OwnSigners {
    rsa: Option<Signer>,
    rsa2: Option<Signer>,
}

impl Config {
    /// Reads every key, builds the accounts, merchants and callers, and the routing table.
    /// Accounts whose `ca_cert` is the embedded simulator's `cert_out` read that file, so start
    /// the simulator first, or use [`Config::tenants_with_simulator_cert`].
    pub fn tenants(&self) -> Result<Tenants, ConfigErrors> {
        self.build_tenants(SimCert::Read)
    }

    /// Like [`Config::tenants`], but accounts whose `ca_cert` is the embedded simulator's
    /// `cert_out` trust `simulator_cert_pem` (from the running simulator) without reading the
    /// file.
    pub fn tenants_with_simulator_cert(
        &self,
        simulator_cert_pem: &str,
    ) -> Result<Tenants, ConfigErrors> {
        self.build_tenants(SimCert::Given(simulator_cert_pem))
    }

    pub(crate) fn build_tenants(&self, sim: SimCert<'_>) -> Result<Tenants, ConfigErrors> {
        let mut errors = Vec::new();
        let own = self.own_signers(&mut errors);
        let mut accounts = Vec::new();
        for i in 0..self.accounts.len() {
            if let Some(account) = self.account(i, sim, &mut errors) {
                accounts.push(account);
            }
        }
        let mut callers = Vec::new();
        for i in 0..self.callers.len() {
            if let Some(caller) = self.caller(i, &own, &mut errors) {
                callers.push(caller);
            }
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        let merchants = self.merchants.clone();
        Tenants::new(accounts, merchants, callers)
            .map_err(|e| ConfigErrors(vec![self.tenants_error(&e)]))
    }

    /// Reads `key` for the record at `path`; errors are recorded.
    fn key_text(
        &self,
        path: &str,
        key: &super::KeyRef,
        errors: &mut Vec<ConfigError>,
    ) -> Option<Secret<String>> {
        key.read()
            .map_err(|m| errors.push(self.error(path, m)))
            .ok()
    }

    fn own_signers(&self, errors: &mut Vec<ConfigError>) -> OwnSigners {
        let mut own = OwnSigners {
            rsa: None,
            rsa2: None,
        };
        let Some(key) = &self.gateway.rsa_private_key else {
            return own;
        };
        let path = "gateway.rsa_private_key";
        let Some(text) = self.key_text(path, key, errors) else {
            return own;
        };
        // Check the key for each RSA sign type the callers use (RSA2 needs 2048 bits, legacy
        // RSA 1024); when none uses it yet, at least that it is an RSA private key.
        let used = |st: SignType| self.callers.iter().any(|c| c.sign_type == st);
        let mut types: Vec<SignType> = [SignType::Rsa2, SignType::Rsa]
            .into_iter()
            .filter(|st| used(*st))
            .collect();
        if types.is_empty() {
            types.push(SignType::Rsa);
        }
        for st in types {
            match Signer::from_key_text(st, text.expose()) {
                Ok(s) if st == SignType::Rsa2 => own.rsa2 = Some(s),
                Ok(s) => own.rsa = Some(s),
                Err(e) => {
                    errors.push(self.error(path, format!("{e} (read as an {st} private key)")))
                }
            }
        }
        own
    }

    fn account(
        &self,
        i: usize,
        sim: SimCert<'_>,
        errors: &mut Vec<ConfigError>,
    ) -> Option<Account> {
        let a = self.accounts.get(i)?;
        let k = |f: &str| format!("accounts[{i}].{f}");
        let before = errors.len();
        let signer = self.key_text(&k("key"), &a.key, errors).and_then(|text| {
            if a.sign_type == SignType::Md5 {
                md5_shape(text.expose())
                    .map_err(|m| errors.push(self.error(&k("key"), m)))
                    .ok()?;
            }
            Signer::from_key_text(a.sign_type, text.expose())
                .map_err(|e| errors.push(self.error(&k("key"), e.to_string())))
                .ok()
        });
        let verifier = match (&a.alipay_public_key, &signer) {
            (None, Some(s)) => s
                .verifier()
                .map_err(|e| errors.push(self.error(&k("key"), e.to_string())))
                .ok(),
            (Some(key), _) => self
                .key_text(&k("alipay_public_key"), key, errors)
                .and_then(|text| {
                    Verifier::from_key_text(a.sign_type, text.expose())
                        .map_err(|e| {
                            errors.push(self.error(&k("alipay_public_key"), e.to_string()))
                        })
                        .ok()
                }),
            (None, None) => None,
        };
        let ca_pem = self.ca_pem(i, sim, errors);
        if errors.len() > before {
            return None;
        }
        Some(Account {
            name: a.name.clone(),
            partner: a.partner.clone(),
            signer: signer?,
            verifier: verifier?,
            endpoints: a.endpoints.clone(),
            pool_size: a.pool_size,
            connect_timeout: a.connect_timeout,
            request_timeout: a.request_timeout,
            ca_pem,
        })
    }

    /// The account's extra trusted roots.
    fn ca_pem(&self, i: usize, sim: SimCert<'_>, errors: &mut Vec<ConfigError>) -> Option<Vec<u8>> {
        let path = self.accounts.get(i)?.ca_cert.as_ref()?;
        let is_sim = self.simulator_cert_out().is_some_and(|out| out == path);
        match sim {
            SimCert::Given(pem) if is_sim => return Some(pem.as_bytes().to_vec()),
            SimCert::Later if is_sim && !path.exists() => return None,
            _ => {}
        }
        let key = format!("accounts[{i}].ca_cert");
        let hint = if is_sim {
            " (the embedded simulator writes it when it starts)"
        } else {
            ""
        };
        match read_bounded(path, CERT_BYTES_MAX) {
            Ok(pem) if contains(&pem, b"-----BEGIN CERTIFICATE-----") => Some(pem),
            Ok(_) => {
                let message = format!("{} holds no PEM certificate", path.display());
                errors.push(self.error(&key, message));
                None
            }
            Err(m) => {
                let message = format!("cannot read {}: {m}{hint}", path.display());
                errors.push(self.error(&key, message));
                None
            }
        }
    }

    /// The embedded simulator's `cert_out`, if it runs and writes one.
    pub fn simulator_cert_out(&self) -> Option<&PathBuf> {
        self.simulator
            .as_ref()
            .filter(|s| s.embedded)
            .and_then(|s| s.cert_out.as_ref())
    }

    fn caller(&self, i: usize, own: &OwnSigners, errors: &mut Vec<ConfigError>) -> Option<Caller> {
        let c = self.callers.get(i)?;
        let k = format!("callers[{i}].key");
        let text = self.key_text(&k, &c.key, errors)?;
        if c.sign_type == SignType::Md5 {
            md5_shape(text.expose())
                .map_err(|m| errors.push(self.error(&k, m)))
                .ok()?;
        }
        let verifier = Verifier::from_key_text(c.sign_type, text.expose())
            .map_err(|e| errors.push(self.error(&k, e.to_string())))
            .ok()?;
        let signer = match c.sign_type {
            SignType::Md5 => Signer::from_key_text(SignType::Md5, text.expose())
                .map_err(|e| errors.push(self.error(&k, e.to_string())))
                .ok()?,
            // A missing or bad own key was reported once, at gateway.rsa_private_key.
            SignType::Rsa => own.rsa.clone()?,
            SignType::Rsa2 => own.rsa2.clone()?,
        };
        Some(Caller {
            id: c.id.clone(),
            kind: c.kind.clone(),
            verifier,
            signer,
            notify_url: c.notify_url.clone(),
            in_flight_max: c.in_flight_max,
        })
    }

    /// The TLS certificate and key of the HTTPS listener, if the file names them.
    pub fn tls_pem(&self) -> Result<Option<TlsPem>, ConfigErrors> {
        let (Some(cert), Some(key)) = (&self.listen.tls_cert, &self.listen.tls_key) else {
            return Ok(None);
        };
        let mut errors = Vec::new();
        let mut read = |field: &str, path: &Path, max: u64, marker: &[u8], what: &str| {
            let key = format!("listen.{field}");
            match read_bounded(path, max) {
                Ok(b) if contains(&b, marker) => Some(b),
                Ok(_) => {
                    let message = format!("{} holds no PEM {what}", path.display());
                    errors.push(self.error(&key, message));
                    None
                }
                Err(m) => {
                    let message = format!("cannot read {}: {m}", path.display());
                    errors.push(self.error(&key, message));
                    None
                }
            }
        };
        let cert_pem = read(
            "tls_cert",
            cert,
            CERT_BYTES_MAX,
            b"-----BEGIN CERTIFICATE-----",
            "certificate",
        );
        let key_pem = read(
            "tls_key",
            key,
            KEY_BYTES_MAX,
            b"PRIVATE KEY-----",
            "private key",
        );
        match (cert_pem, key_pem) {
            (Some(c), Some(k)) => Ok(Some(TlsPem {
                cert_chain_pem: c,
                key_pem: Secret::new(k),
            })),
            _ => Err(ConfigErrors(errors)),
        }
    }

    /// A [`TenantsError`] with the key of the record it is about (validation catches these
    /// first; this is the backstop).
    fn tenants_error(&self, e: &TenantsError) -> ConfigError {
        let last = |ids: Vec<&String>, id: &str| ids.iter().rposition(|x| *x == id);
        let key = match e {
            TenantsError::Duplicate {
                what: "account",
                id,
            } => last(self.accounts.iter().map(|a| &a.name).collect(), id)
                .map(|i| format!("accounts[{i}].name")),
            TenantsError::Duplicate {
                what: "account partner",
                id,
            } => last(self.accounts.iter().map(|a| &a.partner).collect(), id)
                .map(|i| format!("accounts[{i}].partner")),
            TenantsError::Duplicate {
                what: "merchant",
                id,
            }
            | TenantsError::Ambiguous { b: id, .. } => {
                last(self.merchants.iter().map(|m| &m.id).collect(), id)
                    .map(|i| format!("merchants[{i}]"))
            }
            TenantsError::Dangling {
                what: "merchant",
                id,
                ..
            } => last(self.merchants.iter().map(|m| &m.id).collect(), id)
                .map(|i| format!("merchants[{i}].account")),
            TenantsError::Duplicate { id, .. } | TenantsError::Dangling { id, .. } => {
                last(self.callers.iter().map(|c| &c.id).collect(), id)
                    .map(|i| format!("callers[{i}]"))
            }
        };
        self.error(key.as_deref().unwrap_or(""), e.to_string())
    }
}

/// Alipay's MD5 keys are 32 letters and digits; a PEM file or a truncated key given as an MD5
/// key is a mistake worth stopping for.
fn md5_shape(text: &str) -> Result<(), String> {
    let t = text.trim();
    if (16..=64).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(
            "an MD5 key must be 16 to 64 ASCII letters and digits (Alipay's are 32); \
             this one is not (its value is not shown)"
                .to_owned(),
        )
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
