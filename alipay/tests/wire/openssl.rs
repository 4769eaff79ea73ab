//! Cross-check of `sign.rs` against an independent implementation: keys, signatures and MD5
//! digests made by the openssl CLI (`tests/fixtures/make-fixtures.sh`) and checked in.
//!
//! PKCS#1 v1.5 signing is deterministic, so our signer must reproduce openssl's bytes exactly,
//! from every key form; our verifier must accept openssl's signatures from every public-key
//! form, and refuse them once the message or the signature changes by one byte.

use alipay::form::FormLimits;
use alipay::{
    Amount, BeijingTime, Charset, Currency, Error, Form, FormBuilder, IdentityCodeType, PayRequest,
    Request, Secret, SignType, Signer, Verifier,
};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::common::key;

const MSG_ASCII: &[u8] = include_bytes!("../fixtures/msg-ascii.txt");
const MSG_GBK: &[u8] = include_bytes!("../fixtures/msg-gbk.bin");
const MSG_GBK_UTF8: &str = include_str!("../fixtures/msg-gbk.utf8.txt");
const MD5_TSV: &str = include_str!("../fixtures/md5.tsv");

const PRIVATE_2048: [(&str, &str); 3] = [
    ("PKCS#8 PEM", key::RSA2048_PKCS8_PEM),
    ("PKCS#1 PEM", key::RSA2048_PKCS1_PEM),
    ("single-line Base64 PKCS#8 DER", key::RSA2048_PKCS8_B64),
];
const PUBLIC_2048: [(&str, &str); 3] = [
    ("SubjectPublicKeyInfo PEM", key::RSA2048_PUB_SPKI_PEM),
    ("PKCS#1 PEM", key::RSA2048_PUB_PKCS1_PEM),
    (
        "single-line Base64 SubjectPublicKeyInfo DER",
        key::RSA2048_PUB_SPKI_B64,
    ),
];
const PRIVATE_1024: [(&str, &str); 3] = [
    ("PKCS#8 PEM", key::RSA1024_PKCS8_PEM),
    ("PKCS#1 PEM", key::RSA1024_PKCS1_PEM),
    ("single-line Base64 PKCS#8 DER", key::RSA1024_PKCS8_B64),
];
const PUBLIC_1024: [(&str, &str); 3] = [
    ("SubjectPublicKeyInfo PEM", key::RSA1024_PUB_SPKI_PEM),
    ("PKCS#1 PEM", key::RSA1024_PUB_PKCS1_PEM),
    (
        "single-line Base64 SubjectPublicKeyInfo DER",
        key::RSA1024_PUB_SPKI_B64,
    ),
];

/// One openssl signature: which key and algorithm, over which message.
struct Case {
    sign_type: SignType,
    private: &'static [(&'static str, &'static str)],
    public: &'static [(&'static str, &'static str)],
    message: &'static [u8],
    signature: &'static str,
    name: &'static str,
}

fn cases() -> Vec<Case> {
    macro_rules! case {
        ($st:ident, $bits:literal, $hash:literal, $msg:literal, $message:expr) => {
            Case {
                sign_type: SignType::$st,
                private: if $bits == 2048 {
                    &PRIVATE_2048
                } else {
                    &PRIVATE_1024
                },
                public: if $bits == 2048 {
                    &PUBLIC_2048
                } else {
                    &PUBLIC_1024
                },
                message: $message,
                signature: include_str!(concat!(
                    "../fixtures/sig-rsa",
                    $bits,
                    "-",
                    $hash,
                    "-",
                    $msg,
                    ".b64"
                ))
                .trim(),
                name: concat!("rsa", $bits, "-", $hash, "-", $msg),
            }
        };
    }
    vec![
        case!(Rsa2, 2048, "sha256", "ascii", MSG_ASCII),
        case!(Rsa2, 2048, "sha256", "gbk", MSG_GBK),
        case!(Rsa, 2048, "sha1", "ascii", MSG_ASCII),
        case!(Rsa, 2048, "sha1", "gbk", MSG_GBK),
        case!(Rsa, 1024, "sha1", "ascii", MSG_ASCII),
        case!(Rsa, 1024, "sha1", "gbk", MSG_GBK),
    ]
}

fn sign(signer: &Signer, message: &[u8]) -> String {
    let mut out = String::new();
    signer.sign(message, &mut out).unwrap();
    out
}

#[test]
fn signer_reproduces_openssl_signatures_from_every_private_key_form() {
    for case in cases() {
        for (form, text) in case.private {
            let signer = Signer::from_key_text(case.sign_type, text)
                .unwrap_or_else(|e| panic!("{}: {form}: {e}", case.name));
            assert_eq!(signer.sign_type(), case.sign_type);
            assert_eq!(
                sign(&signer, case.message),
                case.signature,
                "{}: signed from {form}",
                case.name
            );
            // The public half the signer derives accepts openssl's signature too.
            let own = signer.verifier().unwrap();
            own.verify(case.message, case.signature)
                .unwrap_or_else(|e| panic!("{}: own verifier from {form}: {e}", case.name));
        }
    }
}

#[test]
fn verifier_accepts_openssl_signatures_from_every_public_key_form() {
    for case in cases() {
        for (form, text) in case.public {
            let verifier = Verifier::from_key_text(case.sign_type, text)
                .unwrap_or_else(|e| panic!("{}: {form}: {e}", case.name));
            assert_eq!(verifier.sign_type(), case.sign_type);
            let what = format!("{}: {form}", case.name);
            verifier
                .verify(case.message, case.signature)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            // One byte of the message changed: first, middle (inside the GBK text for the GBK
            // message), last.
            let len = case.message.len();
            for at in [0, len / 2, len - 20, len - 1] {
                let mut message = case.message.to_vec();
                message[at] ^= 0x01;
                assert_eq!(
                    verifier.verify(&message, case.signature),
                    Err(Error::SignatureMismatch),
                    "{what}: message byte {at} changed"
                );
            }
            // One byte of the signature changed: first, middle, last.
            let sig = STANDARD.decode(case.signature).unwrap();
            for at in [0, sig.len() / 2, sig.len() - 1] {
                let mut bad = sig.clone();
                bad[at] ^= 0x80;
                assert_eq!(
                    verifier.verify(case.message, &STANDARD.encode(&bad)),
                    Err(Error::SignatureMismatch),
                    "{what}: signature byte {at} changed"
                );
            }
            // A message with one byte more or less.
            let mut longer = case.message.to_vec();
            longer.push(b'&');
            for message in [&case.message[..len - 1], &longer[..]] {
                assert_eq!(
                    verifier.verify(message, case.signature),
                    Err(Error::SignatureMismatch),
                    "{what}: message length changed"
                );
            }
        }
    }
}

#[test]
fn sha1_and_sha256_signatures_are_not_interchangeable() {
    let by_name = |name: &str| cases().into_iter().find(|c| c.name == name).unwrap();
    let sha256 = by_name("rsa2048-sha256-ascii");
    let sha1 = by_name("rsa2048-sha1-ascii");
    let rsa2 = Verifier::from_key_text(SignType::Rsa2, key::RSA2048_PUB_SPKI_PEM).unwrap();
    let rsa = Verifier::from_key_text(SignType::Rsa, key::RSA2048_PUB_SPKI_PEM).unwrap();
    assert_eq!(
        rsa2.verify(MSG_ASCII, sha1.signature),
        Err(Error::SignatureMismatch)
    );
    assert_eq!(
        rsa.verify(MSG_ASCII, sha256.signature),
        Err(Error::SignatureMismatch)
    );
    // A signature made with the other key pair is refused.
    let other = by_name("rsa1024-sha1-ascii");
    assert_eq!(
        rsa.verify(MSG_ASCII, other.signature),
        Err(Error::SignatureMismatch)
    );
}

#[test]
fn rsa2_refuses_a_1024_bit_key_and_rsa_accepts_it() {
    for (form, text) in PRIVATE_1024 {
        assert!(
            matches!(
                Signer::from_key_text(SignType::Rsa2, text),
                Err(Error::BadKey(_))
            ),
            "RSA2 signer from 1024-bit {form}"
        );
        Signer::from_key_text(SignType::Rsa, text).unwrap();
    }
    for (form, text) in PUBLIC_1024 {
        assert!(
            matches!(
                Verifier::from_key_text(SignType::Rsa2, text),
                Err(Error::BadKey(_))
            ),
            "RSA2 verifier from 1024-bit {form}"
        );
        Verifier::from_key_text(SignType::Rsa, text).unwrap();
    }
}

#[test]
fn a_plus_turned_into_a_space_still_verifies() {
    let mut seen_plus = 0;
    for case in cases() {
        if !case.signature.contains('+') {
            continue;
        }
        seen_plus += 1;
        let spaced = case.signature.replace('+', " ");
        let verifier = Verifier::from_key_text(case.sign_type, case.public[0].1).unwrap();
        verifier
            .verify(case.message, &spaced)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        // The space is restored as `+` only: a space where the signature had another character
        // is still a mismatch or malformed, never accepted.
        let wrong = case.signature.replacen(|c| c != '+', " ", 1);
        assert!(
            verifier.verify(case.message, &wrong).is_err(),
            "{}",
            case.name
        );
    }
    assert!(
        seen_plus >= 3,
        "regenerate the fixtures: too few signatures contain '+'"
    );
}

/// The realistic path: the ASCII fixture message is itself a valid form body; a client that
/// forgot to URL-encode `sign` sends its `+` raw, which the form decoder turns into a space.
#[test]
fn a_form_with_a_raw_plus_in_sign_verifies() {
    let sig = include_str!("../fixtures/sig-rsa2048-sha256-ascii.b64").trim();
    assert!(sig.contains('+'));
    let mut body = MSG_ASCII.to_vec();
    body.extend_from_slice(b"&sign_type=RSA2&sign=");
    body.extend_from_slice(sig.as_bytes());
    let form = Form::parse(b"", &body, &FormLimits::default()).unwrap();
    assert!(form.get("sign").unwrap().contains(' '));
    let mut to_sign = Vec::new();
    form.string_to_sign(&mut to_sign);
    assert_eq!(to_sign, MSG_ASCII);
    let verifier = Verifier::from_key_text(SignType::Rsa2, key::RSA2048_PUB_SPKI_B64).unwrap();
    form.verify(&verifier, &mut Vec::new()).unwrap();
    assert!(matches!(Request::from_form(&form), Ok(Request::Pay(_))));
}

/// The pay request that the fixture messages are the string to sign of.
fn fixture_pay(trans_name: &str, gbk: bool) -> PayRequest<'_> {
    let (id, currency, minor, code_type, time) = if gbk {
        (
            "T20260101000002",
            Currency::HKD,
            8800,
            IdentityCodeType::Qrcode,
            "20260101093000",
        )
    } else {
        (
            "T20260101000001",
            Currency::USD,
            1230,
            IdentityCodeType::Barcode,
            "20260101080000",
        )
    };
    PayRequest {
        partner: crate::common::PARTNER,
        partner_trans_id: id,
        trans_name,
        trans_amount: Amount::from_minor(minor, currency),
        buyer_identity_code: Secret::new("286648812345678901"),
        identity_code_type: code_type,
        trans_create_time: BeijingTime::parse_compact(time).unwrap(),
        extend_info: None,
        trans_currency: None,
        quantity: None,
        memo: None,
        trade_information: None,
        notify_url: None,
    }
}

/// End to end on the sending side: `Request::write_form` + `FormBuilder` produce the canonical
/// string openssl signed, in UTF-8 and in GBK, so the `sign` they send is openssl's.
#[test]
fn form_builder_sends_the_signature_openssl_makes() {
    let gbk_name = MSG_GBK_UTF8.rsplit_once("trans_name=").unwrap().1;
    let rows = [
        (
            Charset::Utf8,
            fixture_pay("Coffee", false),
            MSG_ASCII,
            "sig-rsa2048-sha256-ascii",
        ),
        (
            Charset::Gbk,
            fixture_pay(gbk_name, true),
            MSG_GBK,
            "sig-rsa2048-sha256-gbk",
        ),
    ];
    let signer = Signer::from_key_text(SignType::Rsa2, key::RSA2048_PKCS8_PEM).unwrap();
    for (charset, pay, message, sig_name) in rows {
        let want = match sig_name {
            "sig-rsa2048-sha256-ascii" => include_str!("../fixtures/sig-rsa2048-sha256-ascii.b64"),
            _ => include_str!("../fixtures/sig-rsa2048-sha256-gbk.b64"),
        };
        let request = Request::Pay(pay);
        let mut b = FormBuilder::new(charset);
        request.write_form(&mut b);
        let body = b.finish(&signer).unwrap();
        let form = Form::parse(b"", &body, &FormLimits::default()).unwrap();
        let mut to_sign = Vec::new();
        form.string_to_sign(&mut to_sign);
        assert_eq!(to_sign, message, "{sig_name}: string to sign");
        assert_eq!(form.get("sign"), Some(want.trim()), "{sig_name}");
        assert_eq!(form.get("sign_type"), Some("RSA2"));
        assert_eq!(Request::from_form(&form).unwrap(), request);
    }
}

#[test]
fn gbk_encoder_agrees_with_iconv() {
    let mut ours = Vec::new();
    Charset::Gbk.encode_into(MSG_GBK_UTF8, &mut ours);
    assert_eq!(ours, MSG_GBK);
    assert_eq!(Charset::Gbk.decode(MSG_GBK).unwrap(), MSG_GBK_UTF8);
    assert_eq!(Charset::Gb2312.decode(MSG_GBK).unwrap(), MSG_GBK_UTF8);
}

#[test]
fn md5_matches_the_spec_vectors_and_openssl() {
    let spec_key = format!("1{}", "0".repeat(31));
    let mut rows: Vec<(Vec<u8>, String, String)> = vec![
        (
            b"_input_charset=utf-8&partner=1000000000000000&partner_trans_id=2010121000000002&service=alipay.acquire.overseas.query".to_vec(),
            spec_key.clone(),
            "2a7f598bbb13d02f7de819ae689f80ba".into(),
        ),
        (
            b"_input_charset=utf-8&currency=USD&is_sync=Y&partner=1000000000000000&partner_refund_id=301012133000002&partner_trans_id=2010121000000002&refund_amount=0.01&service=alipay.acquire.overseas.spot.refund".to_vec(),
            spec_key,
            "397685a0c6b2d71d0d1f374ddba331a0".into(),
        ),
    ];
    for line in MD5_TSV.lines() {
        let mut cols = line.split('\t');
        let (file, key, digest) = (
            cols.next().unwrap(),
            cols.next().unwrap(),
            cols.next().unwrap(),
        );
        let message: &[u8] = match file {
            "msg-spec-query.txt" => include_bytes!("../fixtures/msg-spec-query.txt"),
            "msg-ascii.txt" => MSG_ASCII,
            "msg-gbk.bin" => MSG_GBK,
            "msg-gbk.utf8.txt" => MSG_GBK_UTF8.as_bytes(),
            other => panic!("unknown fixture {other}"),
        };
        rows.push((message.to_vec(), key.to_owned(), digest.to_owned()));
    }
    assert_eq!(rows.len(), 6);
    for (message, key, digest) in &rows {
        let signer = Signer::from_key_text(SignType::Md5, key).unwrap();
        assert_eq!(&sign(&signer, message), digest);
        let verifier = Verifier::from_key_text(SignType::Md5, key).unwrap();
        verifier.verify(message, digest).unwrap();
        verifier.verify(message, &digest.to_uppercase()).unwrap();
        let mut tampered = message.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(
            verifier.verify(&tampered, digest),
            Err(Error::SignatureMismatch)
        );
        let other_key = Verifier::from_key_text(SignType::Md5, "x").unwrap();
        assert_eq!(
            other_key.verify(message, digest),
            Err(Error::SignatureMismatch)
        );
        for malformed in ["", &digest[1..], "not hex at all, but 32 chars ok?"] {
            assert!(
                verifier.verify(message, malformed).is_err(),
                "{malformed:?}"
            );
        }
    }
    // The GBK and UTF-8 bytes of the same text are different strings to sign.
    assert_ne!(rows[4].2, rows[5].2);
}

#[test]
fn key_text_of_the_wrong_kind_is_refused_without_showing_key_material() {
    let private_b64 = key::RSA2048_PKCS8_B64.trim();
    let public_b64 = key::RSA2048_PUB_SPKI_B64.trim();
    let attempts: Vec<(&str, Result<(), Error>)> = vec![
        (
            "public key as signer",
            Signer::from_key_text(SignType::Rsa2, public_b64).map(drop),
        ),
        (
            "private key as verifier",
            Verifier::from_key_text(SignType::Rsa2, private_b64).map(drop),
        ),
        (
            "garbage",
            Signer::from_key_text(SignType::Rsa, "not a key!").map(drop),
        ),
        (
            "truncated DER",
            Signer::from_key_text(SignType::Rsa2, &private_b64[..400]).map(drop),
        ),
        (
            "empty MD5 key",
            Signer::from_key_text(SignType::Md5, "  ").map(drop),
        ),
        (
            "empty RSA key",
            Verifier::from_key_text(SignType::Rsa, "").map(drop),
        ),
    ];
    for (what, result) in attempts {
        let err = result.expect_err(what);
        assert!(matches!(err, Error::BadKey(_)), "{what}: {err:?}");
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(&private_b64[40..60]), "{what}: {shown}");
        assert!(!shown.contains(&public_b64[40..60]), "{what}: {shown}");
    }
    let signer = Signer::from_key_text(SignType::Rsa2, private_b64).unwrap();
    assert_eq!(format!("{signer:?}"), "Signer(RSA2, ***)");
}
