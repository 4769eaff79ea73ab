//! Every response the writer emits reads back to the same typed response and verifies: all four
//! response types, arbitrary field values (CJK, XML specials, whitespace, characters outside
//! GBK), echoed request parameters, UTF-8, GBK and GB2312 output, MD5, RSA2 and RSA signers.
//!
//! On characters GBK cannot represent: the writer emits them as XML character references
//! (`&#128512;`), which any XML reader resolves, so the typed value still round-trips exactly;
//! the signature covers the GBK bytes of the value, where such a character is its reference
//! text (`charset.rs`). `unrepresentable_characters_travel_as_character_references` pins that
//! down on concrete bytes.

use std::borrow::Cow;

use alipay::message::GatewayErrorCode;
use alipay::xml::DEFAULT_RESPONSE_BYTES_MAX;
use alipay::{
    read_response, Amount, BeijingTime, CancelAction, CancelResponse, Charset, Currency, Error,
    PayResponse, QueryResponse, RefundResponse, ResponseDoc, ResponseWriter, ResultCode, SignType,
    Signer, TradeStatus, Verifier,
};
use proptest::prelude::*;

use crate::common::{any_char, md5, rsa1024, rsa2, text_of, verifier_for, MD5_KEY};

const ENCODINGS: [Charset; 3] = [Charset::Utf8, Charset::Gbk, Charset::Gb2312];

type Text = Option<Cow<'static, str>>;

fn text() -> impl Strategy<Value = Text> {
    proptest::option::of(text_of(any_char(), 16).prop_map(Cow::Owned))
}

fn time() -> impl Strategy<Value = Option<BeijingTime>> {
    // 2000-01-01 .. 2100-01-01, whole seconds (the wire has no sub-second part).
    proptest::option::of(
        (946_684_800_i64..4_102_444_800).prop_map(|s| BeijingTime::from_unix_ms(s * 1000).unwrap()),
    )
}

fn result_code() -> impl Strategy<Value = ResultCode> {
    proptest::sample::select(vec![
        ResultCode::Success,
        ResultCode::Fail,
        ResultCode::Unknown,
    ])
}

/// A currency and an amount in it: both absent, currency only, or both.
fn money() -> impl Strategy<Value = (Option<Currency>, Option<Amount>)> {
    let currency = proptest::sample::select(Currency::ALL.to_vec());
    prop_oneof![
        Just((None, None)),
        currency.clone().prop_map(|c| (Some(c), None)),
        currency.prop_flat_map(|c| {
            prop_oneof![1..=1000_u64, 1..=c.max_minor()]
                .prop_map(move |m| (Some(c), Some(Amount::from_minor(m, c))))
        }),
    ]
}

fn pay_response() -> impl Strategy<Value = PayResponse<'static>> {
    (
        (result_code(), text(), text(), text(), text(), text()),
        (time(), money(), text(), text()),
    )
        .prop_map(
            |((code, error, ptid, atid, login, user), (time, money, rate, cny))| PayResponse {
                result_code: code,
                error,
                partner_trans_id: ptid,
                alipay_trans_id: atid,
                alipay_buyer_login_id: login,
                alipay_buyer_user_id: user,
                alipay_pay_time: time,
                currency: money.0,
                trans_amount: money.1,
                exchange_rate: rate,
                trans_amount_cny: cny,
            },
        )
}

fn query_response() -> impl Strategy<Value = QueryResponse<'static>> {
    let status = proptest::option::of(proptest::sample::select(vec![
        TradeStatus::WaitBuyerPay,
        TradeStatus::TradeSuccess,
        TradeStatus::TradeClosed,
        TradeStatus::TradeFinished,
    ]));
    (
        (result_code(), text(), status, text(), text(), text()),
        (text(), text(), time(), money(), text(), text()),
        (text(), text(), text(), text()),
    )
        .prop_map(
            |(
                (code, error, status, ptid, otn, atid),
                (login, user, time, money, rate, cny),
                (inst, tcur, forex, fee),
            )| QueryResponse {
                result_code: code,
                error,
                alipay_trans_status: status,
                partner_trans_id: ptid,
                out_trade_no: otn,
                alipay_trans_id: atid,
                alipay_buyer_login_id: login,
                alipay_buyer_user_id: user,
                alipay_pay_time: time,
                currency: money.0,
                trans_amount: money.1,
                exchange_rate: rate,
                trans_amount_cny: cny,
                payment_inst: inst,
                trans_currency: tcur,
                trans_forex_rate: forex,
                forex_total_fee: fee,
            },
        )
}

fn cancel_response() -> impl Strategy<Value = CancelResponse<'static>> {
    let action = proptest::option::of(proptest::sample::select(vec![
        CancelAction::Close,
        CancelAction::Refund,
    ]));
    (
        result_code(),
        text(),
        text(),
        proptest::option::of(any::<bool>()),
        action,
        text(),
        text(),
    )
        .prop_map(
            |(code, otn, tn, retry, action, dcode, ddes)| CancelResponse {
                result_code: code,
                out_trade_no: otn,
                trade_no: tn,
                retry_flag: retry,
                action,
                detail_error_code: dcode,
                detail_error_des: ddes,
            },
        )
}

fn refund_response() -> impl Strategy<Value = RefundResponse<'static>> {
    (
        result_code(),
        text(),
        text(),
        text(),
        text(),
        money(),
        text(),
        text(),
    )
        .prop_map(
            |(code, error, ptid, prid, atid, money, rate, cny)| RefundResponse {
                result_code: code,
                error,
                partner_trans_id: ptid,
                partner_refund_id: prid,
                alipay_trans_id: atid,
                currency: money.0,
                refund_amount: money.1,
                exchange_rate: rate,
                refund_amount_cny: cny,
            },
        )
}

/// Echoed request parameters: form-shaped names, any value (possibly empty).
fn echo() -> impl Strategy<Value = Vec<(String, String)>> {
    proptest::collection::vec(
        (
            "[a-z_]{1,16}",
            proptest::collection::vec(any_char(), 0..16).prop_map(String::from_iter),
        ),
        0..6,
    )
}

/// Reads `body` back and checks what every response must satisfy: valid bytes in the declared
/// encoding, the envelope fields, the echo, and the signature.
fn read_verified<'a>(
    body: &'a [u8],
    scratch: &'a mut String,
    encoding: Charset,
    echo: &[(String, String)],
    signer: &Signer,
) -> Result<ResponseDoc<'a>, TestCaseError> {
    prop_assert!(
        encoding.decode(body).is_some(),
        "not valid {}",
        encoding.label()
    );
    let doc = read_response(body, scratch, DEFAULT_RESPONSE_BYTES_MAX).map_err(|e| {
        TestCaseError::fail(format!("read: {e}: {}", String::from_utf8_lossy(body)))
    })?;
    prop_assert_eq!(doc.encoding, encoding);
    prop_assert!(doc.is_success);
    prop_assert_eq!(doc.gateway_error(), None);
    prop_assert_eq!(doc.sign_type.as_deref(), Some(signer.sign_type().as_str()));
    let echoed: Vec<(&str, &str)> = doc.request.iter().map(|(n, v)| (&**n, &**v)).collect();
    let sent: Vec<(&str, &str)> = echo.iter().map(|(n, v)| (&**n, &**v)).collect();
    prop_assert_eq!(echoed, sent);
    prop_assert_eq!(doc.verify(&verifier_for(signer), &mut Vec::new()), Ok(()));
    // A verifier with another key refuses it.
    let other = match signer.sign_type() {
        SignType::Md5 => Verifier::from_key_text(SignType::Md5, "another key").unwrap(),
        _ => return Ok(doc),
    };
    prop_assert_eq!(
        doc.verify(&other, &mut Vec::new()),
        Err(Error::SignatureMismatch)
    );
    Ok(doc)
}

macro_rules! round_trip {
    ($ty:ident, $resp:expr, $echo:expr, $signer:expr) => {{
        let (resp, echo, signer): (&$ty<'static>, &Vec<(String, String)>, &Signer) =
            ($resp, $echo, $signer);
        let echo_refs: Vec<(&str, &str)> = echo.iter().map(|(n, v)| (&**n, &**v)).collect();
        // One writer for every encoding, with a gateway error in between: buffers are reused.
        let mut writer = ResponseWriter::new();
        for encoding in ENCODINGS {
            let body = writer
                .write(encoding, &echo_refs, resp, signer)
                .unwrap()
                .to_vec();
            let mut scratch = String::new();
            let doc = read_verified(&body, &mut scratch, encoding, echo, signer)?;
            let back: $ty<'_> = doc.parse().unwrap();
            prop_assert_eq!(&back, resp, "{}", String::from_utf8_lossy(&body));
            writer
                .write_gateway_error(encoding, GatewayErrorCode::SystemError, None)
                .unwrap();
        }
    }};
}

macro_rules! round_trip_tests {
    ($md5_test:ident, $rsa_test:ident, $ty:ident, $strategy:expr) => {
        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]
            #[test]
            fn $md5_test(resp in $strategy, echo in echo()) {
                round_trip!($ty, &resp, &echo, &md5());
            }
        }
        proptest! {
            // RSA signing is slow in a debug build: fewer cases, alternating RSA2 and RSA.
            #![proptest_config(ProptestConfig::with_cases(12))]
            #[test]
            fn $rsa_test(resp in $strategy, echo in echo(), legacy in any::<bool>()) {
                let signer = if legacy { rsa1024() } else { rsa2() };
                round_trip!($ty, &resp, &echo, signer);
            }
        }
    };
}

round_trip_tests!(pay_md5, pay_rsa, PayResponse, pay_response());
round_trip_tests!(query_md5, query_rsa, QueryResponse, query_response());
round_trip_tests!(cancel_md5, cancel_rsa, CancelResponse, cancel_response());
round_trip_tests!(refund_md5, refund_rsa, RefundResponse, refund_response());

#[test]
fn gateway_errors_read_back_and_verify() {
    let signers: [Option<&Signer>; 4] = [None, Some(&md5()), Some(rsa2()), Some(rsa1024())]
        .map(|s| s.map(|s: &Signer| -> &Signer { Box::leak(Box::new(s.clone())) }));
    let mut writer = ResponseWriter::new();
    for &code in GatewayErrorCode::ALL {
        for encoding in ENCODINGS {
            for signer in signers {
                let body = writer
                    .write_gateway_error(encoding, code, signer)
                    .unwrap()
                    .to_vec();
                let what = format!(
                    "{code} {} {:?}",
                    encoding.label(),
                    signer.map(Signer::sign_type)
                );
                let mut scratch = String::new();
                let doc = read_response(&body, &mut scratch, DEFAULT_RESPONSE_BYTES_MAX).unwrap();
                assert!(!doc.is_success, "{what}");
                assert_eq!(doc.encoding, encoding, "{what}");
                assert_eq!(doc.gateway_error(), Some(code), "{what}");
                assert_eq!(doc.error.as_deref(), Some(code.as_str()), "{what}");
                assert!(doc.request.is_empty(), "{what}");
                assert!(
                    matches!(doc.parse::<PayResponse>(), Err(Error::MalformedXml(_))),
                    "{what}"
                );
                match signer {
                    None => {
                        assert_eq!(doc.sign, None, "{what}");
                        // Unsigned rejections pass (Alipay does not always sign them).
                        doc.verify(&verifier_for(&md5()), &mut Vec::new()).unwrap();
                    }
                    Some(s) => {
                        doc.verify(&verifier_for(s), &mut Vec::new())
                            .unwrap_or_else(|e| panic!("{what}: {e}"));
                        assert_eq!(doc.sign_type.as_deref(), Some(s.sign_type().as_str()));
                    }
                }
            }
        }
    }
}

/// A GBK response carries a character outside GBK as a character reference; the signature is
/// over the reference text; the reader resolves it back to the character.
#[test]
fn unrepresentable_characters_travel_as_character_references() {
    let signer = Signer::md5(MD5_KEY).unwrap();
    let mut resp = PayResponse::bare(ResultCode::Success, None);
    resp.alipay_buyer_login_id = Some(Cow::Borrowed("咖啡😀&#128512;<한>"));
    let mut writer = ResponseWriter::new();
    let body = writer
        .write(Charset::Gbk, &[("trans_name", "😀")], &resp, &signer)
        .unwrap()
        .to_vec();
    // Pure GBK bytes: 咖啡 in GBK, the emoji and the Hangul as references, the literal reference
    // text and the angle brackets escaped.
    let mut want = Vec::new();
    Charset::Gbk.encode_into("<alipay_buyer_login_id>咖啡", &mut want);
    want.extend_from_slice(b"&#128512;&amp;#128512;&lt;&#54620;&gt;</alipay_buyer_login_id>");
    assert!(
        body.windows(want.len()).any(|w| w == want),
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert!(body
        .windows(26)
        .any(|w| w == b"name=\"trans_name\">&#128512;"[..26].as_ref()));
    // The signed string is the GBK bytes with references for what GBK lacks.
    let mut to_sign = Vec::new();
    Charset::Gbk.encode_into(
        "alipay_buyer_login_id=咖啡&#128512;&#128512;<&#54620;>&result_code=SUCCESS",
        &mut to_sign,
    );
    let mut sign = String::new();
    signer.sign(&to_sign, &mut sign).unwrap();
    let mut scratch = String::new();
    let doc = read_response(&body, &mut scratch, DEFAULT_RESPONSE_BYTES_MAX).unwrap();
    assert_eq!(doc.sign.as_deref(), Some(sign.as_str()));
    doc.verify(&signer.verifier().unwrap(), &mut Vec::new())
        .unwrap();
    assert_eq!(doc.request[0].1, "😀");
    assert_eq!(doc.parse::<PayResponse>().unwrap(), resp);
}
