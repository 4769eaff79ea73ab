//! Shared fixtures of the test binary: the openssl-made keys, cached signers, text strategies
//! and a small form encoder that is independent of the crate's own `FormBuilder`.

use std::sync::OnceLock;

use alipay::{Charset, SignType, Signer, Verifier};
use proptest::prelude::*;

/// The MD5 key of every MD5 test.
pub const MD5_KEY: &str = "0123456789abcdef0123456789abcdef";

/// A partner id of the right shape.
pub const PARTNER: &str = "2088101122136241";

/// The openssl-made keys (see `tests/fixtures/make-fixtures.sh`).
pub mod key {
    pub const RSA2048_PKCS8_PEM: &str = include_str!("../fixtures/rsa2048-pkcs8.pem");
    pub const RSA2048_PKCS1_PEM: &str = include_str!("../fixtures/rsa2048-pkcs1.pem");
    pub const RSA2048_PKCS8_B64: &str = include_str!("../fixtures/rsa2048-pkcs8.b64");
    pub const RSA2048_PUB_SPKI_PEM: &str = include_str!("../fixtures/rsa2048-pub-spki.pem");
    pub const RSA2048_PUB_PKCS1_PEM: &str = include_str!("../fixtures/rsa2048-pub-pkcs1.pem");
    pub const RSA2048_PUB_SPKI_B64: &str = include_str!("../fixtures/rsa2048-pub-spki.b64");
    pub const RSA1024_PKCS8_PEM: &str = include_str!("../fixtures/rsa1024-pkcs8.pem");
    pub const RSA1024_PKCS1_PEM: &str = include_str!("../fixtures/rsa1024-pkcs1.pem");
    pub const RSA1024_PKCS8_B64: &str = include_str!("../fixtures/rsa1024-pkcs8.b64");
    pub const RSA1024_PUB_SPKI_PEM: &str = include_str!("../fixtures/rsa1024-pub-spki.pem");
    pub const RSA1024_PUB_PKCS1_PEM: &str = include_str!("../fixtures/rsa1024-pub-pkcs1.pem");
    pub const RSA1024_PUB_SPKI_B64: &str = include_str!("../fixtures/rsa1024-pub-spki.b64");
}

/// An MD5 signer with [`MD5_KEY`].
pub fn md5() -> Signer {
    Signer::md5(MD5_KEY).unwrap()
}

/// The RSA2 signer of the 2048-bit fixture key (parsed once: key parsing is slow in debug).
pub fn rsa2() -> &'static Signer {
    static SIGNER: OnceLock<Signer> = OnceLock::new();
    SIGNER.get_or_init(|| Signer::from_key_text(SignType::Rsa2, key::RSA2048_PKCS8_B64).unwrap())
}

/// The legacy RSA signer of the 1024-bit fixture key.
pub fn rsa1024() -> &'static Signer {
    static SIGNER: OnceLock<Signer> = OnceLock::new();
    SIGNER.get_or_init(|| Signer::from_key_text(SignType::Rsa, key::RSA1024_PKCS8_B64).unwrap())
}

/// The verifier matching `signer`, built from the openssl public key text (not from the signer),
/// so a signer and verifier that agree only with each other would still be caught.
pub fn verifier_for(signer: &Signer) -> Verifier {
    match signer.sign_type() {
        SignType::Md5 => Verifier::from_key_text(SignType::Md5, MD5_KEY).unwrap(),
        SignType::Rsa2 => {
            Verifier::from_key_text(SignType::Rsa2, key::RSA2048_PUB_SPKI_B64).unwrap()
        }
        SignType::Rsa => Verifier::from_key_text(SignType::Rsa, key::RSA1024_PUB_SPKI_B64).unwrap(),
    }
}

/// Percent-encodes `value` in `charset` for a form: unreserved ASCII kept, everything else
/// `%XX`. Written here rather than borrowed from the crate, so both sides are not the same code.
pub fn encode_value(charset: Charset, value: &str, out: &mut Vec<u8>) {
    let mut raw = Vec::new();
    charset.encode_into(value, &mut raw);
    encode_raw(&raw, out);
}

/// Percent-encodes raw bytes.
pub fn encode_raw(raw: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in raw {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

/// `name=value&...` with every value percent-encoded in `charset`.
pub fn encode_pairs<N: AsRef<str>, V: AsRef<str>>(charset: Charset, pairs: &[(N, V)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(b'&');
        }
        out.extend_from_slice(name.as_ref().as_bytes());
        out.push(b'=');
        encode_value(charset, value.as_ref(), &mut out);
    }
    out
}

/// Characters that GBK can represent, weighted towards the interesting ones: ASCII letters and
/// digits, XML and form specials, whitespace, CJK ideographs.
pub fn gbk_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => proptest::char::range('a', 'z'),
        2 => proptest::char::range('0', '9'),
        2 => proptest::sample::select(vec!['<', '>', '&', '"', '\'', ' ', '+', '%', '=', '\n', '\t', '/', '€', '（', '·']),
        3 => proptest::char::range('\u{4e00}', '\u{9fa5}'),
    ]
}

/// Any character of [`gbk_char`], plus some that GBK cannot represent (emoji, Hangul, Thai).
pub fn any_char() -> impl Strategy<Value = char> {
    prop_oneof![
        6 => gbk_char(),
        1 => proptest::sample::select(vec!['😀', '한', 'ก', '\u{10FFFD}', 'ß']),
    ]
}

/// Non-empty text of up to `max_chars` characters from `chars`.
pub fn text_of(
    chars: impl Strategy<Value = char>,
    max_chars: usize,
) -> impl Strategy<Value = String> {
    proptest::collection::vec(chars, 1..=max_chars).prop_map(String::from_iter)
}
