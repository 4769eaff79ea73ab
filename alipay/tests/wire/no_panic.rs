//! Decoding arbitrary input never panics: forms, requests, responses (random bytes and random
//! mutations of valid ones), notifications, amounts, times, keys and signatures. Each decoder
//! returns a value or an error; the point is that none of them panics, loops or overflows.
//! Where a decoder accepts, a few cheap consistency checks ride along.

use std::borrow::Cow;

use alipay::form::FormLimits;
use alipay::message::{GatewayErrorCode, COMMON_PARAMS};
use alipay::notify::NOTIFY_PARAMS;
use alipay::xml::DEFAULT_RESPONSE_BYTES_MAX;
use alipay::{
    read_response, Amount, BeijingTime, CancelAction, CancelResponse, Charset, Currency,
    ExtendInfo, Form, PayResponse, QueryResponse, RefundResponse, Request, ResponseWriter,
    ResultCode, Service, SignType, Signer, TradeStatus, TradeStatusSync, Verifier,
};
use proptest::prelude::*;
use proptest::sample::Index;

use crate::common::{any_char, encode_pairs, key, md5, rsa2, verifier_for, PARTNER};

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

/// Bytes that look like a form: names, `=`, `&`, escapes.
fn form_like() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        bytes(256),
        "[a-z_=&%+0-9A-Fa-f]{0,200}".prop_map(String::into_bytes)
    ]
}

fn limits() -> impl Strategy<Value = FormLimits> {
    prop_oneof![
        Just(FormLimits::default()),
        (0_usize..64, 0_usize..6, 0_usize..8, 0_usize..16).prop_map(|(b, p, n, v)| FormLimits {
            bytes_max: b,
            params_max: p,
            name_bytes_max: n,
            value_bytes_max: v,
        }),
    ]
}

const EXTEND_INFO: &str =
    r#"{"secondary_merchant_id":"S1","store_id":"ST1","secondary_merchant_industry":"5812"}"#;

/// Values that are valid for some field, so random forms get deep into validation.
fn value() -> impl Strategy<Value = String> {
    let samples: Vec<String> = [
        PARTNER,
        "USD",
        "JPY",
        "KRW",
        "12.30",
        "1200",
        "0.01",
        "100000000.00",
        "286648812345678901",
        "barcode",
        "qrcode",
        "20260101080000",
        "OVERSEAS_MBARCODE_PAY",
        EXTEND_INFO,
        "Y",
        "N",
        "1767225600000",
        "",
        "\"",
        "https://merchant.example/n",
        "UTF-8",
        "GBK",
        "MD5",
        "trade_status_sync",
        "TRADE_SUCCESS",
        "2026-01-01 08:00:00",
        "T1",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain(Service::ALL.iter().map(|s| s.name().to_owned()))
    .collect();
    prop_oneof![
        4 => proptest::sample::select(samples),
        2 => proptest::collection::vec(any_char(), 0..20).prop_map(String::from_iter),
        1 => "[0-9.]{0,20}",
        1 => "\\{[\"a-z_:,0-9\\[\\]{} ]{0,60}\\}?",
    ]
}

/// A form of known parameter names (plus some unknown ones) with plausible values.
fn form_pairs(names: Vec<&'static str>) -> impl Strategy<Value = Vec<(String, String)>> {
    let name = prop_oneof![
        8 => proptest::sample::select(names).prop_map(str::to_owned),
        1 => "[a-z_]{1,12}",
    ];
    proptest::collection::vec((name, value()), 0..24).prop_map(|mut pairs| {
        // Duplicates only make Form::parse stop early; keep the first of each name.
        let mut seen = std::collections::HashSet::new();
        pairs.retain(|(n, _)| seen.insert(n.clone()));
        pairs
    })
}

fn request_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = COMMON_PARAMS.to_vec();
    for s in Service::ALL {
        names.extend_from_slice(s.params());
    }
    names.extend([
        "service",
        "service",
        "service",
        "partner",
        "alipay_seller_id",
    ]);
    names
}

fn charset() -> impl Strategy<Value = Charset> {
    proptest::sample::select(vec![Charset::Utf8, Charset::Gbk, Charset::Gb2312])
}

/// Valid response bodies to mutate: every response type, UTF-8 and GBK, and rejections.
fn valid_bodies() -> Vec<Vec<u8>> {
    let signer = md5();
    let mut pay = PayResponse::bare(ResultCode::Success, None);
    pay.alipay_buyer_login_id = Some(Cow::Borrowed("张**<&>"));
    pay.currency = Some(Currency::JPY);
    pay.trans_amount = Some(Amount::from_minor(1200, Currency::JPY));
    pay.alipay_pay_time = BeijingTime::parse_compact("20260101080000");
    let mut query = QueryResponse::bare(ResultCode::Success, None);
    query.alipay_trans_status = Some(TradeStatus::TradeSuccess);
    query.out_trade_no = Some(Cow::Borrowed("单号1"));
    let cancel = CancelResponse {
        result_code: ResultCode::Fail,
        out_trade_no: Some(Cow::Borrowed("T1")),
        trade_no: None,
        retry_flag: Some(true),
        action: Some(CancelAction::Refund),
        detail_error_code: Some(Cow::Borrowed("SYSTEM_ERROR")),
        detail_error_des: Some(Cow::Borrowed("系统错误 😀")),
    };
    let mut refund = RefundResponse::bare(ResultCode::Unknown, Some("SYSTEM_ERROR"));
    refund.currency = Some(Currency::USD);
    refund.refund_amount = Some(Amount::from_minor(1, Currency::USD));
    let echo = [("service", "x"), ("trans_name", "咖啡")];
    let mut out = Vec::new();
    let mut w = ResponseWriter::new();
    for enc in [Charset::Utf8, Charset::Gbk] {
        out.push(w.write(enc, &echo, &pay, &signer).unwrap().to_vec());
        out.push(w.write(enc, &echo, &query, &signer).unwrap().to_vec());
        out.push(w.write(enc, &echo, &cancel, &signer).unwrap().to_vec());
        out.push(w.write(enc, &echo, &refund, &signer).unwrap().to_vec());
        out.push(
            w.write_gateway_error(enc, GatewayErrorCode::IllegalSign, Some(&signer))
                .unwrap()
                .to_vec(),
        );
    }
    out
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(Index, u8),
    Insert(Index, &'static [u8]),
    Delete(Index, usize),
    Duplicate(Index, usize),
    Truncate(Index),
}

const SNIPPETS: &[&[u8]] = &[
    b"<",
    b">",
    b"</",
    b"/>",
    b"<!DOCTYPE a>",
    b"&",
    b"&amp;",
    b"&#",
    b"&#x",
    b"&#128512;",
    b"&#0;",
    b"&#xD800;",
    b"<![CDATA[",
    b"]]>",
    b"<?",
    b"?>",
    b"\"",
    b"'",
    b"<alipay>",
    b"</alipay>",
    b"<sign>",
    b"<is_success>T</is_success>",
    b"<result_code>",
    b"<x/>",
    b"\xff",
    b"\x80",
    b"\xd6",
    b" encoding=\"GBK\"",
    b"<!--",
    b"-->",
    b"\x00",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<Index>(), proptest::sample::select(SNIPPETS))
            .prop_map(|(i, s)| Mutation::Insert(i, s)),
        (any::<Index>(), 1_usize..40).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<Index>(), 1_usize..60).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
        any::<Index>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(body: &mut Vec<u8>, m: &Mutation) {
    if body.is_empty() {
        return;
    }
    match m {
        Mutation::Flip(i, b) => {
            let at = i.index(body.len());
            body[at] = *b;
        }
        Mutation::Insert(i, s) => {
            let at = i.index(body.len() + 1);
            body.splice(at..at, s.iter().copied());
        }
        Mutation::Delete(i, n) => {
            let at = i.index(body.len());
            let end = (at + n).min(body.len());
            body.drain(at..end);
        }
        Mutation::Duplicate(i, n) => {
            let at = i.index(body.len());
            let end = (at + n).min(body.len());
            let copy = body[at..end].to_vec();
            body.splice(at..at, copy);
        }
        Mutation::Truncate(i) => body.truncate(i.index(body.len())),
    }
}

/// Reads, verifies and parses every way; must not panic.
fn read_everything(body: &[u8]) {
    let mut scratch = String::new();
    let Ok(doc) = read_response(body, &mut scratch, DEFAULT_RESPONSE_BYTES_MAX) else {
        return;
    };
    let _ = doc.verify(&verifier_for(&md5()), &mut Vec::new());
    let _ = doc.gateway_error();
    let _ = doc.parse::<PayResponse>();
    let _ = doc.parse::<QueryResponse>();
    let _ = doc.parse::<CancelResponse>();
    let _ = doc.parse::<RefundResponse>();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn form_parse_never_panics(query in form_like(), body in form_like(), limits in limits()) {
        if let Ok(form) = Form::parse(&query, &body, &limits) {
            prop_assert!(form.params().len() <= limits.params_max);
            prop_assert!(form.params().windows(2).all(|w| w[0].name() < w[1].name()));
            let _ = Request::from_form(&form);
            let _ = form.verify(&verifier_for(&md5()), &mut Vec::new());
        }
    }

    #[test]
    fn request_from_form_never_panics(pairs in form_pairs(request_names()), charset in charset()) {
        let body = encode_pairs(charset, &pairs);
        if let Ok(form) = Form::parse(b"", &body, &FormLimits::default()) {
            if let Ok(request) = Request::from_form(&form) {
                // Whatever validates writes itself back and validates again, the same.
                let mut b = alipay::FormBuilder::new(form.charset());
                request.write_form(&mut b);
                let again = b.finish(&md5()).unwrap();
                let form2 = Form::parse(b"", &again, &FormLimits::default()).unwrap();
                prop_assert_eq!(Request::from_form(&form2).unwrap(), request);
            }
            let _ = form.verify(&verifier_for(&md5()), &mut Vec::new());
        }
    }

    #[test]
    fn notification_from_form_never_panics(pairs in form_pairs(NOTIFY_PARAMS.to_vec()), charset in charset()) {
        let body = encode_pairs(charset, &pairs);
        if let Ok(form) = Form::parse(b"", &body, &FormLimits::default()) {
            let _ = TradeStatusSync::from_form(&form);
        }
    }

    #[test]
    fn extend_info_parse_never_panics(text in prop_oneof![".{0,80}", "\\{[\"a-z_:,0-9\\[\\]{} \\\\]{0,80}\\}"]) {
        let _ = ExtendInfo::parse(&text);
    }

    #[test]
    fn read_response_never_panics_on_random_bytes(
        body in prop_oneof![bytes(512), "[<>/a-z_=\"' &#;!?\\[\\]-]{0,300}".prop_map(String::into_bytes)],
    ) {
        read_everything(&body);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn read_response_never_panics_on_mutated_responses(
        which in any::<Index>(),
        mutations in proptest::collection::vec(mutation(), 1..5),
    ) {
        let bodies = valid_bodies();
        let mut body = bodies[which.index(bodies.len())].clone();
        for m in &mutations {
            mutate(&mut body, m);
        }
        read_everything(&body);
    }

    #[test]
    fn amount_parse_never_panics(text in prop_oneof![".{0,30}", "[0-9.+-]{0,30}"], c in proptest::sample::select(Currency::ALL.to_vec())) {
        if let Ok(a) = Amount::parse(&text, c) {
            prop_assert_eq!(a.to_string(), text);
        }
    }

    #[test]
    fn time_parse_never_panics(
        text in prop_oneof![
            ".{0,25}",
            "[0-9]{14}",
            "[+-]?[0-9]{1,6}-[0-9]{1,2}-[0-9]{1,2} [0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}",
            "[0-9 :+-]{0,22}",
        ],
    ) {
        // Accepted text is in canonical form: formatting gives it back.
        if let Some(t) = BeijingTime::parse_compact(&text) {
            prop_assert_eq!(t.compact().to_string(), text.clone());
        }
        if let Some(t) = BeijingTime::parse_dashed(&text) {
            prop_assert_eq!(t.dashed().to_string(), text);
        }
    }

    #[test]
    fn signature_verify_never_panics(sign in ".{0,400}", message in bytes(64)) {
        let _ = verifier_for(&md5()).verify(&message, &sign);
        let _ = verifier_for(rsa2()).verify(&message, &sign);
    }
}

/// Key texts: random, Base64-shaped, PEM-shaped, and the real keys with one character changed.
fn key_text() -> impl Strategy<Value = String> {
    let real = vec![
        key::RSA2048_PKCS8_B64,
        key::RSA2048_PUB_SPKI_B64,
        key::RSA1024_PKCS8_B64,
        key::RSA1024_PUB_SPKI_B64,
        key::RSA1024_PKCS1_PEM,
        key::RSA1024_PUB_PKCS1_PEM,
    ];
    let b64 = "[A-Za-z0-9+/]";
    prop_oneof![
        ".{0,200}",
        "[A-Za-z0-9+/=]{0,400}",
        "[A-Za-z0-9+/]{0,300}"
            .prop_map(|b| format!("-----BEGIN PRIVATE KEY-----\n{b}\n-----END PRIVATE KEY-----\n")),
        (
            proptest::sample::select(real),
            any::<Index>(),
            b64,
            any::<Index>()
        )
            .prop_map(|(k, i, c, cut)| {
                let k = k.trim();
                let at = i.index(k.len());
                let mut s = format!("{}{c}{}", &k[..at], &k[at + 1..]);
                if cut.index(4) == 0 {
                    s.truncate(cut.index(s.len() + 1));
                }
                s
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn key_parsing_never_panics(text in key_text()) {
        for t in [SignType::Md5, SignType::Rsa, SignType::Rsa2] {
            if let Ok(signer) = Signer::from_key_text(t, &text) {
                // A key that loads signs, and its own verifier accepts the signature.
                let mut sig = String::new();
                signer.sign(b"a=1", &mut sig).unwrap();
                signer.verifier().unwrap().verify(b"a=1", &sig).unwrap();
            }
            let _ = Verifier::from_key_text(t, &text);
        }
    }
}
