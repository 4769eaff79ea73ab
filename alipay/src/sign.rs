//! Signing and verification: MD5, RSA (SHA1withRSA) and RSA2 (SHA256withRSA).
//!
//! * MD5: `lowercase_hex(md5(string_to_sign ++ key))`, verified in constant time.
//! * RSA2: PKCS#1 v1.5 with SHA-256, signed and verified with `ring`.
//! * RSA: PKCS#1 v1.5 with SHA-1. `ring` verifies it (its legacy 1024..8192-bit SHA-1 algorithm,
//!   because Alipay's RSA keys are often 1024 bits) but does not sign with SHA-1 at all, so
//!   signing uses the RustCrypto `rsa` crate, with blinding from the OS random source. That crate
//!   carries RUSTSEC-2023-0071 (the Marvin timing attack, about recovering a key from many timed
//!   private-key operations on attacker-chosen input, chiefly decryption); here it only ever signs
//!   our own canonical strings, blinded, for legacy 1024-bit RSA accounts, and RSA2 never uses it.
//!
//! Keys are accepted as PEM text (`PRIVATE KEY`, `RSA PRIVATE KEY`, `PUBLIC KEY`,
//! `RSA PUBLIC KEY`) or as Alipay's single-line Base64 of the DER (PKCS#8 private key,
//! X.509 SubjectPublicKeyInfo public key). No error message ever contains key material.

use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use md5::{Digest as _, Md5};
use ring::signature::{self, UnparsedPublicKey};
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey, EncodeRsaPublicKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey};
use rsa::signature::{RandomizedSigner, SignatureEncoding};
use rsa::traits::PublicKeyParts;
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};
use crate::secret::Secret;

/// The signature algorithm of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignType {
    /// MD5 over the string with the shared key appended.
    Md5,
    /// SHA1withRSA.
    Rsa,
    /// SHA256withRSA.
    Rsa2,
}

impl SignType {
    /// Parses the wire name (`MD5`, `RSA`, `RSA2`), exactly as Alipay spells it.
    pub fn from_wire(text: &str) -> Option<SignType> {
        match text {
            "MD5" => Some(SignType::Md5),
            "RSA" => Some(SignType::Rsa),
            "RSA2" => Some(SignType::Rsa2),
            _ => None,
        }
    }

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            SignType::Md5 => "MD5",
            SignType::Rsa => "RSA",
            SignType::Rsa2 => "RSA2",
        }
    }
}

impl fmt::Display for SignType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The smallest RSA modulus accepted for RSA2, in bits (Alipay requires 2048).
pub const RSA2_MODULUS_BITS_MIN: usize = 2048;
/// The smallest RSA modulus accepted for legacy RSA, in bits.
pub const RSA_MODULUS_BITS_MIN: usize = 1024;

/// Something that signs: a private key, or an MD5 shared key.
#[derive(Clone)]
pub enum Signer {
    /// MD5 with the shared key.
    Md5(Secret<Arc<[u8]>>),
    /// SHA1withRSA.
    Rsa(Arc<rsa::pkcs1v15::SigningKey<sha1::Sha1>>),
    /// SHA256withRSA.
    Rsa2(Arc<ring::rsa::KeyPair>),
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signer({}, ***)", self.sign_type())
    }
}

impl Signer {
    /// An MD5 signer with the merchant's shared key.
    pub fn md5(key: &str) -> Result<Signer> {
        if key.is_empty() {
            return Err(Error::BadKey("an MD5 key must not be empty"));
        }
        Ok(Signer::Md5(Secret::new(Arc::from(key.as_bytes()))))
    }

    /// A signer of `sign_type` from key text: the MD5 key itself, or an RSA private key in PEM or
    /// single-line Base64 DER.
    pub fn from_key_text(sign_type: SignType, text: &str) -> Result<Signer> {
        match sign_type {
            SignType::Md5 => Signer::md5(text.trim()),
            SignType::Rsa => {
                let key = parse_private_key(text)?;
                if key.size() * 8 < RSA_MODULUS_BITS_MIN {
                    return Err(Error::BadKey("RSA key shorter than 1024 bits"));
                }
                Ok(Signer::Rsa(Arc::new(rsa::pkcs1v15::SigningKey::new(key))))
            }
            SignType::Rsa2 => {
                let key = parse_private_key(text)?;
                let der = key
                    .to_pkcs8_der()
                    .map_err(|_| Error::BadKey("RSA private key"))?;
                let pair = ring::rsa::KeyPair::from_pkcs8(der.as_bytes())
                    .map_err(|_| Error::BadKey("RSA2 needs an RSA key of 2048 to 8192 bits"))?;
                Ok(Signer::Rsa2(Arc::new(pair)))
            }
        }
    }

    /// The algorithm.
    pub fn sign_type(&self) -> SignType {
        match self {
            Signer::Md5(_) => SignType::Md5,
            Signer::Rsa(_) => SignType::Rsa,
            Signer::Rsa2(_) => SignType::Rsa2,
        }
    }

    /// Signs `message` (the string to sign, in its charset) and appends the wire signature (hex
    /// for MD5, Base64 for RSA) to `out`.
    pub fn sign(&self, message: &[u8], out: &mut String) -> Result<()> {
        match self {
            Signer::Md5(key) => {
                push_hex(&md5_digest(message, key.expose()), out);
                Ok(())
            }
            Signer::Rsa(key) => {
                let sig = key
                    .try_sign_with_rng(&mut rand_core::OsRng, message)
                    .map_err(|_| Error::SigningFailed)?;
                STANDARD.encode_string(sig.to_bytes(), out);
                Ok(())
            }
            Signer::Rsa2(pair) => {
                let mut sig = vec![0; pair.public().modulus_len()];
                let rng = ring::rand::SystemRandom::new();
                pair.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut sig)
                    .map_err(|_| Error::SigningFailed)?;
                STANDARD.encode_string(&sig, out);
                Ok(())
            }
        }
    }

    /// The verifier that checks this signer's signatures (for MD5 the same key; for RSA the
    /// public half).
    pub fn verifier(&self) -> Result<Verifier> {
        match self {
            Signer::Md5(key) => Ok(Verifier::Md5(key.clone())),
            Signer::Rsa(key) => {
                let public = rsa::RsaPublicKey::from(key.as_ref().as_ref());
                let der = public
                    .to_pkcs1_der()
                    .map_err(|_| Error::BadKey("RSA public key"))?;
                Ok(Verifier::rsa_from_pkcs1(
                    SignType::Rsa,
                    der.as_bytes().to_vec(),
                ))
            }
            Signer::Rsa2(pair) => {
                let der = pair.public().as_ref().to_vec();
                Ok(Verifier::rsa_from_pkcs1(SignType::Rsa2, der))
            }
        }
    }
}

/// Something that verifies: a public key, or an MD5 shared key.
#[derive(Clone)]
pub enum Verifier {
    /// MD5 with the shared key.
    Md5(Secret<Arc<[u8]>>),
    /// SHA1withRSA, public key as PKCS#1 DER.
    Rsa(Arc<UnparsedPublicKey<Vec<u8>>>),
    /// SHA256withRSA, public key as PKCS#1 DER.
    Rsa2(Arc<UnparsedPublicKey<Vec<u8>>>),
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Verifier({})", self.sign_type())
    }
}

impl Verifier {
    /// A verifier of `sign_type` from key text: the MD5 key itself, or an RSA public key in PEM
    /// or single-line Base64 DER (SubjectPublicKeyInfo).
    pub fn from_key_text(sign_type: SignType, text: &str) -> Result<Verifier> {
        match sign_type {
            SignType::Md5 => Ok(Signer::md5(text.trim())?.verifier()?.clone()),
            SignType::Rsa | SignType::Rsa2 => {
                let key = parse_public_key(text)?;
                let min = if sign_type == SignType::Rsa2 {
                    RSA2_MODULUS_BITS_MIN
                } else {
                    RSA_MODULUS_BITS_MIN
                };
                if key.size() * 8 < min {
                    return Err(Error::BadKey("RSA public key too short for its sign type"));
                }
                let der = key
                    .to_pkcs1_der()
                    .map_err(|_| Error::BadKey("RSA public key"))?;
                Ok(Verifier::rsa_from_pkcs1(sign_type, der.as_bytes().to_vec()))
            }
        }
    }

    fn rsa_from_pkcs1(sign_type: SignType, der: Vec<u8>) -> Verifier {
        if sign_type == SignType::Rsa2 {
            Verifier::Rsa2(Arc::new(UnparsedPublicKey::new(
                &signature::RSA_PKCS1_2048_8192_SHA256,
                der,
            )))
        } else {
            let alg = &signature::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY;
            Verifier::Rsa(Arc::new(UnparsedPublicKey::new(alg, der)))
        }
    }

    /// The algorithm.
    pub fn sign_type(&self) -> SignType {
        match self {
            Verifier::Md5(_) => SignType::Md5,
            Verifier::Rsa(_) => SignType::Rsa,
            Verifier::Rsa2(_) => SignType::Rsa2,
        }
    }

    /// Checks the wire signature `sign` over `message`. A `+` turned into a space by a careless
    /// URL decoder is restored before Base64 decoding.
    pub fn verify(&self, message: &[u8], sign: &str) -> Result<()> {
        match self {
            Verifier::Md5(key) => {
                if sign.len() != 32 {
                    return Err(Error::MalformedSignature);
                }
                let mut expected = String::with_capacity(32);
                push_hex(&md5_digest(message, key.expose()), &mut expected);
                let mut got = [0u8; 32];
                for (g, b) in got.iter_mut().zip(sign.bytes()) {
                    *g = b.to_ascii_lowercase();
                }
                if bool::from(expected.as_bytes().ct_eq(&got)) {
                    Ok(())
                } else {
                    Err(Error::SignatureMismatch)
                }
            }
            Verifier::Rsa(key) | Verifier::Rsa2(key) => {
                let sig = decode_base64_signature(sign)?;
                key.verify(message, &sig)
                    .map_err(|_| Error::SignatureMismatch)
            }
        }
    }
}

fn decode_base64_signature(sign: &str) -> Result<Vec<u8>> {
    // The largest signature is 8192 bits: 1024 bytes, 1368 Base64 characters.
    if sign.is_empty() || sign.len() > 1368 {
        return Err(Error::MalformedSignature);
    }
    let restored;
    let text = if sign.contains(' ') {
        restored = sign.replace(' ', "+");
        restored.as_str()
    } else {
        sign
    };
    STANDARD.decode(text).map_err(|_| Error::MalformedSignature)
}

fn md5_digest(message: &[u8], key: &[u8]) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(message);
    h.update(key);
    h.finalize().into()
}

fn push_hex(bytes: &[u8], out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
}

/// Strips PEM armour if present; otherwise decodes the single-line Base64 form.
enum KeyText {
    Pem(String),
    Der(Vec<u8>),
}

fn classify(text: &str) -> Result<KeyText> {
    let text = text.trim();
    if text.starts_with("-----BEGIN") {
        Ok(KeyText::Pem(text.to_owned()))
    } else {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        STANDARD
            .decode(compact)
            .map(KeyText::Der)
            .map_err(|_| Error::BadKey("neither PEM nor single-line Base64"))
    }
}

fn parse_private_key(text: &str) -> Result<rsa::RsaPrivateKey> {
    let key = match classify(text)? {
        KeyText::Pem(pem) => rsa::RsaPrivateKey::from_pkcs8_pem(&pem)
            .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(&pem))
            .ok(),
        KeyText::Der(der) => rsa::RsaPrivateKey::from_pkcs8_der(&der)
            .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_der(&der))
            .ok(),
    };
    key.ok_or(Error::BadKey("not an RSA private key (PKCS#8 or PKCS#1)"))
}

fn parse_public_key(text: &str) -> Result<rsa::RsaPublicKey> {
    let key = match classify(text)? {
        KeyText::Pem(pem) => rsa::RsaPublicKey::from_public_key_pem(&pem)
            .or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(&pem))
            .ok(),
        KeyText::Der(der) => rsa::RsaPublicKey::from_public_key_der(&der)
            .or_else(|_| rsa::RsaPublicKey::from_pkcs1_der(&der))
            .ok(),
    };
    key.ok_or(Error::BadKey(
        "not an RSA public key (SubjectPublicKeyInfo or PKCS#1)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_vectors_of_spec_section_3() {
        let key = format!("1{}", "0".repeat(31));
        let signer = Signer::md5(&key).unwrap();
        let cases = [
            (
                "_input_charset=utf-8&partner=1000000000000000&partner_trans_id=2010121000000002&service=alipay.acquire.overseas.query",
                "2a7f598bbb13d02f7de819ae689f80ba",
            ),
            (
                "_input_charset=utf-8&currency=USD&is_sync=Y&partner=1000000000000000&partner_refund_id=301012133000002&partner_trans_id=2010121000000002&refund_amount=0.01&service=alipay.acquire.overseas.spot.refund",
                "397685a0c6b2d71d0d1f374ddba331a0",
            ),
        ];
        let verifier = signer.verifier().unwrap();
        for (text, want) in cases {
            let mut got = String::new();
            signer.sign(text.as_bytes(), &mut got).unwrap();
            assert_eq!(got, want);
            verifier.verify(text.as_bytes(), want).unwrap();
            verifier
                .verify(text.as_bytes(), &want.to_uppercase())
                .unwrap();
            let mut tampered = text.as_bytes().to_vec();
            tampered[20] ^= 1;
            assert_eq!(
                verifier.verify(&tampered, want),
                Err(Error::SignatureMismatch)
            );
        }
    }

    #[test]
    fn debug_never_shows_keys() {
        let s = Signer::md5("secretsecretsecretsecretsecret12").unwrap();
        assert_eq!(format!("{s:?}"), "Signer(MD5, ***)");
        assert!(!format!("{:?}", s.verifier().unwrap()).contains("secret"));
    }
}
