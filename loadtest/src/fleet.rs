//! The callers that sign the generator's requests: who they are, their keys, and the merchants
//! they act for.
//!
//! A fleet comes from a TOML file (`--fleet`; the shipped `config/loadtest-fleet.toml` matches
//! the callers of the shipped `config/switch.toml`, and `config/loadtest-fleet-simulator.toml`
//! the simulator's own accounts), or is generated for a switch the tool starts itself
//! ([`Fleet::generate`]): many merchants, each its own caller, a share of them signing with RSA2.
//!
//! ```toml
//! [[callers]]
//! id = "2088000000000001"          # partner
//! sign_type = "MD5"                # MD5, RSA or RSA2
//! key = "keys/caller_md5_2088000000000001.key"   # MD5 key, or the RSA private key (PEM)
//! # answer_key = "keys/switch_rsa_public.pem"    # RSA: the public key that checks answers
//! # merchants = ["2088000000000002"]            # an integrator names one per request
//! # extend_info = true               # send extend_info with the merchant as secondary merchant
//! ```

use std::path::Path;

use alipay::{SignType, Signer, Verifier};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;

/// Errors loading or making a fleet.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid fleet.
    #[error("{path}: {why}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// A key is unusable.
    #[error("caller {caller}: {source}")]
    Key {
        /// The caller.
        caller: String,
        /// Why.
        source: alipay::Error,
    },
}

/// One caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// `partner`.
    pub id: String,
    /// Its sign type.
    pub sign_type: SignType,
    /// Signs its requests.
    pub signer: Signer,
    /// Checks the answers it gets (the MD5 key, or the answering side's RSA public key); `None`
    /// accepts answers unchecked.
    pub verifier: Option<Verifier>,
    /// The merchants it acts for. When it names one other than itself, requests carry
    /// `alipay_seller_id`.
    pub merchants: Vec<String>,
    /// Send `extend_info` naming the merchant as secondary merchant (an acquirer account called
    /// directly, without the switch).
    pub extend_info: bool,
    /// The signing key's text: the MD5 key, or the RSA private key PEM.
    pub key_text: String,
    /// RSA: the public half of the signing key (what a switch registers for this caller).
    pub public_pem: Option<String>,
}

/// A set of callers.
#[derive(Debug, Clone)]
pub struct Fleet {
    /// Every caller.
    pub callers: Vec<Caller>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FleetFile {
    callers: Vec<CallerFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallerFile {
    id: String,
    sign_type: String,
    key: String,
    answer_key: Option<String>,
    public_key: Option<String>,
    #[serde(default)]
    merchants: Vec<String>,
    #[serde(default)]
    extend_info: bool,
}

impl Fleet {
    /// Reads a fleet file; key paths are relative to its folder.
    pub fn load(path: &Path) -> Result<Fleet, FleetError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| FleetError::Read {
            path: shown.clone(),
            source,
        })?;
        let file: FleetFile = toml::from_str(&text).map_err(|e| FleetError::Invalid {
            path: shown.clone(),
            why: e.to_string(),
        })?;
        if file.callers.is_empty() {
            return Err(FleetError::Invalid {
                path: shown,
                why: "no [[callers]]".into(),
            });
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        let read = |rel: &str| -> Result<String, FleetError> {
            let p = dir.join(rel);
            std::fs::read_to_string(&p).map_err(|source| FleetError::Read {
                path: p.display().to_string(),
                source,
            })
        };
        let mut callers = Vec::with_capacity(file.callers.len());
        for c in file.callers {
            let sign_type =
                SignType::from_wire(&c.sign_type).ok_or_else(|| FleetError::Invalid {
                    path: shown.clone(),
                    why: format!("caller {}: unknown sign_type {:?}", c.id, c.sign_type),
                })?;
            let key_text = read(&c.key)?;
            let answer = c.answer_key.as_deref().map(read).transpose()?;
            let public_pem = c.public_key.as_deref().map(read).transpose()?;
            let merchants = if c.merchants.is_empty() {
                vec![c.id.clone()]
            } else {
                c.merchants
            };
            callers.push(Caller::new(
                c.id,
                sign_type,
                key_text,
                answer.as_deref(),
                public_pem,
                merchants,
                c.extend_info,
            )?);
        }
        Ok(Fleet { callers })
    }

    /// A fleet of `merchants` merchants, each its own caller: the first `rsa2` of every 100 (by
    /// `rsa2_share`, spread evenly) sign with RSA2 using `rsa2_private_pem` (public half
    /// `rsa2_public_pem`) and check answers with `answer_public_pem`; the rest sign with MD5
    /// keys made from `seed`. Merchant ids are `2088` followed by 12 digits from 700000000001.
    pub fn generate(
        merchants: usize,
        rsa2_share: f64,
        seed: u64,
        rsa2_private_pem: &str,
        rsa2_public_pem: &str,
        answer_public_pem: &str,
    ) -> Result<Fleet, FleetError> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut callers = Vec::with_capacity(merchants);
        let mut rsa2_so_far = 0.0_f64;
        for i in 0..merchants {
            let id = format!(
                "2088{:012}",
                700_000_000_001_u64 + u64::try_from(i).unwrap_or(0)
            );
            // Spread the RSA2 callers evenly: caller i is RSA2 when the running share is behind.
            let n = f64::from(u32::try_from(i + 1).unwrap_or(u32::MAX));
            let rsa2 = rsa2_so_far < (rsa2_share * n).round();
            let caller = if rsa2 {
                rsa2_so_far += 1.0;
                Caller::new(
                    id.clone(),
                    SignType::Rsa2,
                    rsa2_private_pem.to_owned(),
                    Some(answer_public_pem),
                    Some(rsa2_public_pem.to_owned()),
                    vec![id],
                    false,
                )?
            } else {
                let key: String = (0..32)
                    .map(|_| char::from(rng.sample(rand::distributions::Alphanumeric)))
                    .collect();
                Caller::new(id.clone(), SignType::Md5, key, None, None, vec![id], false)?
            };
            callers.push(caller);
        }
        Ok(Fleet { callers })
    }

    /// How many callers sign with each sign type (`MD5`, `RSA2`, ...).
    pub fn by_sign_type(&self) -> std::collections::BTreeMap<String, u64> {
        let mut m = std::collections::BTreeMap::new();
        for c in &self.callers {
            *m.entry(c.sign_type.as_str().to_owned()).or_insert(0) += 1;
        }
        m
    }

    /// How many distinct merchants.
    pub fn merchants(&self) -> u64 {
        let set: std::collections::BTreeSet<&str> = self
            .callers
            .iter()
            .flat_map(|c| c.merchants.iter().map(String::as_str))
            .collect();
        u64::try_from(set.len()).unwrap_or(u64::MAX)
    }
}

impl Caller {
    /// A caller from its key texts. MD5 answers are checked with the same key; RSA answers with
    /// `answer_public_pem` when given.
    pub fn new(
        id: String,
        sign_type: SignType,
        key_text: String,
        answer_public_pem: Option<&str>,
        public_pem: Option<String>,
        merchants: Vec<String>,
        extend_info: bool,
    ) -> Result<Caller, FleetError> {
        let key_err = |source| FleetError::Key {
            caller: id.clone(),
            source,
        };
        let key_text = if sign_type == SignType::Md5 {
            key_text.trim().to_owned()
        } else {
            key_text
        };
        let signer = Signer::from_key_text(sign_type, &key_text).map_err(key_err)?;
        let verifier = match (sign_type, answer_public_pem) {
            (SignType::Md5, _) => Some(signer.verifier().map_err(key_err)?),
            (t, Some(pem)) => Some(Verifier::from_key_text(t, pem).map_err(key_err)?),
            (_, None) => None,
        };
        Ok(Caller {
            id,
            sign_type,
            signer,
            verifier,
            merchants,
            extend_info,
            key_text,
            public_pem,
        })
    }
}
