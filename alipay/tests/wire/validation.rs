//! Every validation rule of `Form::parse`, `Request::from_form` and `Form::verify`, as one table
//! fed through one `check` helper: a row is a form (a valid base form of one service with one
//! thing changed, or raw bytes) and the expected outcome. A test at the end fails when an
//! `Error` variant has no row here and is not listed as covered by another module.

use alipay::form::FormLimits;
use alipay::{AmountError, Charset, Error, Form, FormBuilder, Request, Service, SignType};

use crate::common::{encode_pairs, md5, PARTNER};

/// A form given as decoded pairs (encoded by the test's own encoder in the charset that
/// `_input_charset` names) or as raw query and body bytes.
#[derive(Clone)]
enum Input {
    Pairs(Vec<(String, String)>),
    Raw { query: Vec<u8>, body: Vec<u8> },
}

impl Input {
    fn set(self, name: &str, value: impl Into<String>) -> Input {
        let Input::Pairs(mut pairs) = self else {
            unreachable!("only pairs are edited")
        };
        let value = value.into();
        match pairs.iter_mut().find(|(n, _)| n == name) {
            Some(pair) => pair.1 = value,
            None => pairs.push((name.to_owned(), value)),
        }
        Input::Pairs(pairs)
    }

    fn remove(self, name: &str) -> Input {
        let Input::Pairs(mut pairs) = self else {
            unreachable!("only pairs are edited")
        };
        let before = pairs.len();
        pairs.retain(|(n, _)| n != name);
        assert_ne!(
            before,
            pairs.len(),
            "row removes `{name}`, which the base lacks"
        );
        Input::Pairs(pairs)
    }

    fn bytes(&self) -> (Vec<u8>, Vec<u8>) {
        match self {
            Input::Raw { query, body } => (query.clone(), body.clone()),
            Input::Pairs(pairs) => {
                let charset = pairs
                    .iter()
                    .find(|(n, _)| n == "_input_charset")
                    .and_then(|(_, v)| Charset::from_label(v))
                    .unwrap_or(Charset::Utf8);
                (Vec::new(), encode_pairs(charset, pairs))
            }
        }
    }
}

/// Shows a row briefly: long values are cut.
impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fn short(bytes: &[u8]) -> String {
            let text = String::from_utf8_lossy(bytes);
            match text.char_indices().nth(80) {
                Some((at, _)) => format!("{}…({} bytes)", &text[..at], bytes.len()),
                None => text.into_owned(),
            }
        }
        match self {
            Input::Raw { query, body } => {
                write!(f, "query {:?} body {:?}", short(query), short(body))
            }
            Input::Pairs(pairs) => {
                let list: Vec<String> = pairs
                    .iter()
                    .map(|(n, v)| format!("{n}={}", short(v.as_bytes())))
                    .collect();
                write!(f, "{}", list.join("&"))
            }
        }
    }
}

fn raw(query: &str, body: impl Into<Vec<u8>>) -> Input {
    Input::Raw {
        query: query.as_bytes().to_vec(),
        body: body.into(),
    }
}

fn pairs(list: &[(&str, &str)]) -> Input {
    Input::Pairs(
        list.iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect(),
    )
}

const EXTEND_INFO: &str = r#"{"secondary_merchant_id":"S001","secondary_merchant_name":"Cafe","secondary_merchant_industry":"5812","store_id":"ST01","store_name":"Central","terminal_id":"T1"}"#;

/// A valid pay form.
fn pay() -> Input {
    pairs(&[
        ("service", Service::Pay.name()),
        ("partner", PARTNER),
        ("_input_charset", "UTF-8"),
        ("alipay_seller_id", PARTNER),
        ("partner_trans_id", "T20260101000001"),
        ("trans_name", "Coffee"),
        ("currency", "USD"),
        ("trans_amount", "12.30"),
        ("buyer_identity_code", "286648812345678901"),
        ("identity_code_type", "barcode"),
        ("trans_create_time", "20260101080000"),
        ("biz_product", "OVERSEAS_MBARCODE_PAY"),
        ("extend_info", EXTEND_INFO),
    ])
}

/// A valid query form.
fn query() -> Input {
    pairs(&[
        ("service", Service::Query.name()),
        ("partner", PARTNER),
        ("partner_trans_id", "T20260101000001"),
    ])
}

/// A valid cancel form.
fn cancel() -> Input {
    pairs(&[
        ("service", Service::Cancel.name()),
        ("partner", PARTNER),
        ("_input_charset", "UTF-8"),
        ("out_trade_no", "T20260101000001"),
        ("timestamp", "1767225600000"),
    ])
}

/// A valid refund form.
fn refund() -> Input {
    pairs(&[
        ("service", Service::Refund.name()),
        ("partner", PARTNER),
        ("partner_trans_id", "T20260101000001"),
        ("partner_refund_id", "R20260101000001"),
        ("refund_amount", "5.00"),
        ("currency", "USD"),
    ])
}

fn missing(field: &'static str) -> Result<Service, Error> {
    Err(Error::MissingField(field))
}
fn too_long(field: &'static str, max_chars: usize) -> Result<Service, Error> {
    Err(Error::FieldTooLong { field, max_chars })
}
fn bad_amount(field: &'static str, reason: AmountError) -> Result<Service, Error> {
    Err(Error::BadAmount { field, reason })
}
fn bad_currency(field: &'static str, value: &str) -> Result<Service, Error> {
    Err(Error::BadCurrency {
        field,
        value: value.to_owned(),
    })
}
fn bad_extend(why: &'static str) -> Result<Service, Error> {
    Err(Error::BadExtendInfo(why))
}
fn extend(json: &str) -> Input {
    pay().set("extend_info", json)
}

const NOT_JSON: &str = "not a JSON object of string members";
const PRECISION_2: AmountError = AmountError::WrongPrecision { expected: 2 };
const PRECISION_0: AmountError = AmountError::WrongPrecision { expected: 0 };

type Row = (Input, Result<Service, Error>);

fn form_rows() -> Vec<Row> {
    let ok_pay = Ok(Service::Pay);
    let x = |n: usize| "x".repeat(n);
    let many: String = (0..33).map(|i| format!("p{i}=1&")).collect();
    vec![
        // Limits (defaults: 16 KiB, 32 parameters, 64-byte names, 8 KiB values).
        (
            raw("", format!("memo={}", x(16 * 1024 - 4))),
            Err(Error::TooLarge {
                len_bytes: 16 * 1024 + 1,
                max_bytes: 16 * 1024,
            }),
        ),
        (
            raw(
                &format!("a={}", x(8 * 1024)),
                format!("b={}", x(8 * 1024 - 2)),
            ),
            Err(Error::TooLarge {
                len_bytes: 16 * 1024 + 2,
                max_bytes: 16 * 1024,
            }),
        ),
        (
            raw("", many.clone()),
            Err(Error::TooManyParameters { max: 32 }),
        ),
        (
            raw(&many[..many.len() / 2], many[many.len() / 2..].to_owned()),
            Err(Error::TooManyParameters { max: 32 }),
        ),
        (
            raw("", format!("{}=1", x(65))),
            Err(Error::ParameterTooLong {
                name: x(32),
                max_bytes: 64,
            }),
        ),
        (
            raw("", format!("memo={}", x(8 * 1024 + 1))),
            Err(Error::ParameterTooLong {
                name: "memo".into(),
                max_bytes: 8 * 1024,
            }),
        ),
        // The value limit counts decoded bytes, not encoded ones.
        (
            raw("", format!("memo={}{}", "%41".repeat(2000), x(6193))),
            Err(Error::ParameterTooLong {
                name: "memo".into(),
                max_bytes: 8 * 1024,
            }),
        ),
        (
            raw("", format!("memo={}", "%41".repeat(2800))),
            Err(Error::MissingField("service")),
        ),
        // Names.
        (raw("", "=1"), Err(Error::BadParameterName)),
        (raw("", "a b=1"), Err(Error::BadParameterName)),
        (raw("", "a%5Fb=1"), Err(Error::BadParameterName)),
        (raw("", "a-b=1"), Err(Error::BadParameterName)),
        (
            raw("", "名=1".as_bytes().to_vec()),
            Err(Error::BadParameterName),
        ),
        // Repeats, in the body, across query and body, and of the charset itself.
        (
            raw("", "partner=1&partner=1"),
            Err(Error::DuplicateParameter("partner".into())),
        ),
        (
            raw("partner=1", "partner=2"),
            Err(Error::DuplicateParameter("partner".into())),
        ),
        (
            raw("_input_charset=UTF-8", "_input_charset=GBK"),
            Err(Error::DuplicateParameter("_input_charset".into())),
        ),
        // Percent escapes.
        (
            raw("", "memo=%4"),
            Err(Error::BadPercentEncoding("memo".into())),
        ),
        (
            raw("", "memo=%zz"),
            Err(Error::BadPercentEncoding("memo".into())),
        ),
        (
            raw("", "memo=abc%"),
            Err(Error::BadPercentEncoding("memo".into())),
        ),
        // Charsets.
        (
            raw("_input_charset=latin1", ""),
            Err(Error::UnsupportedCharset("latin1".into())),
        ),
        (
            raw("_input_charset=", ""),
            Err(Error::UnsupportedCharset(String::new())),
        ),
        (raw("", "memo=%FF"), Err(Error::BadCharset("memo".into()))),
        (
            raw("", "memo=%E6%94"),
            Err(Error::BadCharset("memo".into())),
        ),
        (
            raw("_input_charset=GBK", "memo=%81%20"),
            Err(Error::BadCharset("memo".into())),
        ),
        (
            raw("_input_charset=gb2312", "memo=%D6"),
            Err(Error::BadCharset("memo".into())),
        ),
        // UTF-8 bytes of Chinese text are not valid GBK here ("支付" is E6 94 AF E4 BB 98).
        (
            raw("_input_charset=GBK", "memo=%E6%94%AF%E4%BB"),
            Err(Error::BadCharset("memo".into())),
        ),
        // Accepted charset spellings, and Chinese text in each charset.
        (pay().set("_input_charset", "utf-8"), ok_pay.clone()),
        (pay().set("_input_charset", "Utf-8"), ok_pay.clone()),
        (
            pay()
                .set("_input_charset", "gbk")
                .set("trans_name", "支付宝测试 咖啡"),
            ok_pay.clone(),
        ),
        (
            pay()
                .set("_input_charset", "GB2312")
                .set("trans_name", "支付宝测试"),
            ok_pay.clone(),
        ),
        (pay().set("trans_name", "支付宝测试 ☕"), ok_pay.clone()),
        (pay().remove("_input_charset"), ok_pay.clone()),
        // x-www-form-urlencoded details: `+` is a space, a bare name is an empty value.
        (
            raw(
                "",
                format!(
                    "service={}&partner={PARTNER}&partner_trans_id=T+1&alipay_trans_id",
                    Service::Query.name()
                ),
            ),
            Ok(Service::Query),
        ),
        (
            raw(
                "",
                format!(
                    "&&service={}&&partner={PARTNER}&partner_trans_id=T1&",
                    Service::Query.name()
                ),
            ),
            Ok(Service::Query),
        ),
        (
            raw(
                &format!("service={}", Service::Query.name()),
                format!("partner={PARTNER}&partner_trans_id=T1"),
            ),
            Ok(Service::Query),
        ),
    ]
}

fn common_rows() -> Vec<Row> {
    vec![
        // service
        (pay().remove("service"), missing("service")),
        (pay().set("service", ""), missing("service")),
        (
            pay().set("service", "alipay.trade.pay"),
            Err(Error::UnknownService("alipay.trade.pay".into())),
        ),
        (
            pay().set("service", "ALIPAY.ACQUIRE.OVERSEAS.SPOT.PAY"),
            Err(Error::UnknownService(
                "ALIPAY.ACQUIRE.OVERSEAS.SPOT.PAY".into(),
            )),
        ),
        // Only parameters the service defines.
        (
            pay().set("foo", "1"),
            Err(Error::UnexpectedParameter("foo".into())),
        ),
        (
            query().set("trans_amount", "1.00"),
            Err(Error::UnexpectedParameter("trans_amount".into())),
        ),
        (
            cancel().set("partner_trans_id", "T1"),
            Err(Error::UnexpectedParameter("partner_trans_id".into())),
        ),
        (
            refund().set("extend_info", EXTEND_INFO),
            Err(Error::UnexpectedParameter("extend_info".into())),
        ),
        (
            refund().set("trans_amount", ""),
            Err(Error::UnexpectedParameter("trans_amount".into())),
        ),
        // No raw double quote, except in the JSON-valued parameters.
        (
            pay().set("trans_name", "Cof\"fee"),
            Err(Error::ContainsQuote("trans_name".into())),
        ),
        (
            pay().set("memo", "\""),
            Err(Error::ContainsQuote("memo".into())),
        ),
        (
            query().set("partner_trans_id", "T\"1"),
            Err(Error::ContainsQuote("partner_trans_id".into())),
        ),
        (
            pay().set(
                "trade_information",
                r#"{"business_type":"5","other_business_type":"x"}"#,
            ),
            Ok(Service::Pay),
        ),
        // partner
        (pay().remove("partner"), missing("partner")),
        (refund().set("partner", ""), missing("partner")),
        (
            query().set("partner", "2087101122136241"),
            Err(Error::BadPartnerId("partner")),
        ),
        (
            query().set("partner", "208810112213624"),
            Err(Error::BadPartnerId("partner")),
        ),
        (
            query().set("partner", "20881011221362411"),
            Err(Error::BadPartnerId("partner")),
        ),
        (
            query().set("partner", "208810112213624a"),
            Err(Error::BadPartnerId("partner")),
        ),
        (
            query().set("partner", "２０８８101122136241"),
            Err(Error::BadPartnerId("partner")),
        ),
        // notify_url
        (
            pay().set("notify_url", "https://merchant.example/notify?a=1&b=2"),
            Ok(Service::Pay),
        ),
        (
            refund().set("notify_url", "http://merchant.example/n"),
            Ok(Service::Refund),
        ),
        (
            cancel().set("notify_url", "ftp://merchant.example/n"),
            Err(Error::BadEnumValue("notify_url")),
        ),
        (
            pay().set("notify_url", "javascript:alert(1)"),
            Err(Error::BadEnumValue("notify_url")),
        ),
        (
            pay().set("notify_url", format!("https://{}", "x".repeat(1016))),
            Ok(Service::Pay),
        ),
        (
            pay().set("notify_url", format!("https://{}", "x".repeat(1017))),
            too_long("notify_url", 1024),
        ),
        // _input_charset is required for cancel only.
        (cancel().remove("_input_charset"), missing("_input_charset")),
        (cancel().set("_input_charset", "GBK"), Ok(Service::Cancel)),
        (query().set("_input_charset", "GBK"), Ok(Service::Query)),
    ]
}

fn pay_rows() -> Vec<Row> {
    let ok = || Ok(Service::Pay);
    let mut rows = vec![(pay(), ok()), (pay().remove("extend_info"), ok())];
    for field in [
        "alipay_seller_id",
        "partner_trans_id",
        "trans_name",
        "currency",
        "trans_amount",
        "buyer_identity_code",
        "identity_code_type",
        "trans_create_time",
        "biz_product",
    ] {
        rows.push((pay().remove(field), missing(field)));
        rows.push((pay().set(field, ""), missing(field)));
    }
    rows.extend([
        // Seller.
        (pay().set("alipay_seller_id", "1088101122136241"), Err(Error::BadPartnerId("alipay_seller_id"))),
        (pay().set("alipay_seller_id", "2088101122136242"), Err(Error::SellerIdMismatch)),
        // Lengths are counted in characters, not bytes.
        (pay().set("partner_trans_id", "x".repeat(64)), ok()),
        (pay().set("partner_trans_id", "x".repeat(65)), too_long("partner_trans_id", 64)),
        (pay().set("partner_trans_id", "单".repeat(64)), ok()),
        (pay().set("partner_trans_id", "单".repeat(65)), too_long("partner_trans_id", 64)),
        (pay().set("trans_name", "咖".repeat(256)), ok()),
        (pay().set("trans_name", "x".repeat(257)), too_long("trans_name", 256)),
        (pay().set("memo", "备".repeat(256)), ok()),
        (pay().set("memo", "x".repeat(257)), too_long("memo", 256)),
        (pay().set("trade_information", "x".repeat(4000)), ok()),
        (pay().set("trade_information", "x".repeat(4001)), too_long("trade_information", 4000)),
        // Currency: supported ISO 4217 codes, upper case.
        (pay().set("currency", "usd"), bad_currency("currency", "usd")),
        (pay().set("currency", "CNH"), bad_currency("currency", "CNH")),
        (pay().set("currency", "USD "), bad_currency("currency", "USD ")),
        (pay().set("currency", "EUR").set("trans_amount", "0.01"), ok()),
        (pay().set("trans_currency", "EUR"), ok()),
        (pay().set("trans_currency", "eur"), bad_currency("trans_currency", "eur")),
        // Amounts: two decimals, 0.01..=100000000.00.
        (pay().set("trans_amount", "0.01"), ok()),
        (pay().set("trans_amount", "100000000.00"), ok()),
        (pay().set("trans_amount", "0.00"), bad_amount("trans_amount", AmountError::OutOfRange)),
        (pay().set("trans_amount", "100000000.01"), bad_amount("trans_amount", AmountError::OutOfRange)),
        (pay().set("trans_amount", "999999999.99"), bad_amount("trans_amount", AmountError::OutOfRange)),
        (pay().set("trans_amount", "18446744073709551616.00"), bad_amount("trans_amount", AmountError::OutOfRange)),
        (pay().set("trans_amount", "12"), bad_amount("trans_amount", PRECISION_2)),
        (pay().set("trans_amount", "12.3"), bad_amount("trans_amount", PRECISION_2)),
        (pay().set("trans_amount", "12.300"), bad_amount("trans_amount", PRECISION_2)),
        (pay().set("trans_amount", "12."), bad_amount("trans_amount", PRECISION_2)),
        (pay().set("trans_amount", "1e2"), bad_amount("trans_amount", AmountError::NotDecimal)),
        (pay().set("trans_amount", "-1.00"), bad_amount("trans_amount", AmountError::NotDecimal)),
        (pay().set("trans_amount", "+1.00"), bad_amount("trans_amount", AmountError::NotDecimal)),
        (pay().set("trans_amount", "01.00"), bad_amount("trans_amount", AmountError::NotDecimal)),
        (pay().set("trans_amount", ".50"), bad_amount("trans_amount", AmountError::NotDecimal)),
        (pay().set("trans_amount", "1,00"), bad_amount("trans_amount", AmountError::NotDecimal)),
        (pay().set("trans_amount", " 1.00"), bad_amount("trans_amount", AmountError::NotDecimal)),
        (pay().set("trans_amount", "1.0x"), bad_amount("trans_amount", AmountError::NotDecimal)),
        (pay().set("trans_amount", "1.2.3"), bad_amount("trans_amount", AmountError::NotDecimal)),
        (pay().set("trans_amount", "１.00"), bad_amount("trans_amount", AmountError::NotDecimal)),
        // JPY and KRW are integers.
        (pay().set("currency", "JPY").set("trans_amount", "1200"), ok()),
        (pay().set("currency", "JPY").set("trans_amount", "1"), ok()),
        (pay().set("currency", "JPY").set("trans_amount", "100000000"), ok()),
        (pay().set("currency", "JPY").set("trans_amount", "1200.00"), bad_amount("trans_amount", PRECISION_0)),
        (pay().set("currency", "JPY").set("trans_amount", "1200."), bad_amount("trans_amount", PRECISION_0)),
        (pay().set("currency", "JPY").set("trans_amount", "0"), bad_amount("trans_amount", AmountError::OutOfRange)),
        (pay().set("currency", "JPY").set("trans_amount", "100000001"), bad_amount("trans_amount", AmountError::OutOfRange)),
        (pay().set("currency", "KRW").set("trans_amount", "50000"), ok()),
        (pay().set("currency", "KRW").set("trans_amount", "5.5"), bad_amount("trans_amount", PRECISION_0)),
        (pay().set("currency", "KRW").set("trans_amount", "100000001"), bad_amount("trans_amount", AmountError::OutOfRange)),
        // Buyer code: 16..=24 digits starting 25..=30.
        (pay().set("buyer_identity_code", "2512345678901234"), ok()),
        (pay().set("buyer_identity_code", "301234567890123456789012"), ok()),
        (pay().set("buyer_identity_code", "251234567890123"), Err(Error::BadBuyerCode)),
        (pay().set("buyer_identity_code", "3012345678901234567890123"), Err(Error::BadBuyerCode)),
        (pay().set("buyer_identity_code", "2412345678901234"), Err(Error::BadBuyerCode)),
        (pay().set("buyer_identity_code", "3112345678901234"), Err(Error::BadBuyerCode)),
        (pay().set("buyer_identity_code", "28123456789012a4"), Err(Error::BadBuyerCode)),
        (pay().set("buyer_identity_code", " 286648812345678901"), Err(Error::BadBuyerCode)),
        // identity_code_type, biz_product, trans_create_time.
        (pay().set("identity_code_type", "qrcode"), ok()),
        (pay().set("identity_code_type", "QRCODE"), Err(Error::BadIdentityCodeType)),
        (pay().set("identity_code_type", "soundwave"), Err(Error::BadIdentityCodeType)),
        (pay().set("biz_product", "OVERSEAS_MBARCODE_PAY2"), Err(Error::BadBizProduct)),
        (pay().set("biz_product", "overseas_mbarcode_pay"), Err(Error::BadBizProduct)),
        (pay().set("trans_create_time", "2026-01-01 08:00:00"), Err(Error::BadTime("trans_create_time"))),
        (pay().set("trans_create_time", "2026010108000"), Err(Error::BadTime("trans_create_time"))),
        (pay().set("trans_create_time", "20261301080000"), Err(Error::BadTime("trans_create_time"))),
        (pay().set("trans_create_time", "20260230080000"), Err(Error::BadTime("trans_create_time"))),
        (pay().set("trans_create_time", "20260101240000"), Err(Error::BadTime("trans_create_time"))),
        (pay().set("trans_create_time", "+2026010108000"), Err(Error::BadTime("trans_create_time"))),
        // quantity
        (pay().set("quantity", "3"), ok()),
        (pay().set("quantity", "3.5"), Err(Error::BadNumber("quantity"))),
        (pay().set("quantity", "-3"), Err(Error::BadNumber("quantity"))),
        (pay().set("quantity", "9".repeat(33)), too_long("quantity", 32)),
        // extend_info: JSON, secondary merchant and store mandatory, 4-digit MCC.
        (extend(r#"{"secondary_merchant_id":"S1","store_id":"ST1"}"#), ok()),
        (extend(r#"{"secondary_merchant_id":"S1","store_id":"ST1","unknown":"x"}"#), ok()),
        (extend(r#"{"secondary_merchant_id":"S1","store_id":"ST1","secondary_merchant_name":"咖啡馆"}"#), ok()),
        (extend("secondary_merchant_id=S1"), bad_extend(NOT_JSON)),
        (extend(r#"{"secondary_merchant_id":"S1","store_id":"ST1""#), bad_extend(NOT_JSON)),
        (extend(r#"["S1","ST1"]"#), bad_extend(NOT_JSON)),
        (extend(r#"{"secondary_merchant_id":1,"store_id":"ST1"}"#), bad_extend(NOT_JSON)),
        (extend(r#"["S1","","","ST1"]"#), bad_extend(NOT_JSON)),
        (extend(r#"{"secondary_merchant_id":"S1","store_id":"ST1","store_id":"ST2"}"#), bad_extend(NOT_JSON)),
        (extend(r#"{"secondary_merchant_id":"S1","store_id":"ST1"} x"#), bad_extend(NOT_JSON)),
        (extend(r#"{"store_id":"ST1"}"#), bad_extend("secondary_merchant_id is required")),
        (extend(r#"{"secondary_merchant_id":"","store_id":"ST1"}"#), bad_extend("secondary_merchant_id is required")),
        (extend(r#"{"secondary_merchant_id":"S1"}"#), bad_extend("store_id is required")),
        (extend(r#"{"secondary_merchant_id":"S1","store_id":"ST1","secondary_merchant_industry":"581"}"#), bad_extend("secondary_merchant_industry must be a 4-digit MCC")),
        (extend(r#"{"secondary_merchant_id":"S1","store_id":"ST1","secondary_merchant_industry":"58120"}"#), bad_extend("secondary_merchant_industry must be a 4-digit MCC")),
        (extend(r#"{"secondary_merchant_id":"S1","store_id":"ST1","secondary_merchant_industry":"58a2"}"#), bad_extend("secondary_merchant_industry must be a 4-digit MCC")),
        (extend(&format!(r#"{{"secondary_merchant_id":"S1","store_id":"{}"}}"#, "店".repeat(128))), ok()),
        (extend(&format!(r#"{{"secondary_merchant_id":"S1","store_id":"{}"}}"#, "店".repeat(129))), bad_extend("a member is longer than 128 characters")),
        (extend(&format!(r#"{{"secondary_merchant_id":"S1","store_id":"ST1","terminal_id":"{}"}}"#, "x".repeat(2000))), too_long("extend_info", 2048)),
    ]);
    rows
}

fn query_rows() -> Vec<Row> {
    let ok = || Ok(Service::Query);
    let neither = || {
        Err(Error::MissingTradeReference(
            "partner_trans_id",
            "alipay_trans_id",
        ))
    };
    vec![
        (query(), ok()),
        (
            query()
                .remove("partner_trans_id")
                .set("alipay_trans_id", "2026010121001004440000000001"),
            ok(),
        ),
        (
            query().set("alipay_trans_id", "2026010121001004440000000001"),
            ok(),
        ),
        (query().remove("partner_trans_id"), neither()),
        (query().set("partner_trans_id", ""), neither()),
        (
            query()
                .set("partner_trans_id", "")
                .set("alipay_trans_id", ""),
            neither(),
        ),
        (
            query().set("partner_trans_id", "x".repeat(65)),
            too_long("partner_trans_id", 64),
        ),
        (query().set("alipay_trans_id", "1".repeat(64)), ok()),
        (
            query().set("alipay_trans_id", "1".repeat(65)),
            too_long("alipay_trans_id", 64),
        ),
        (
            query().set("alipay_trans_id", "2026-0101"),
            Err(Error::BadNumber("alipay_trans_id")),
        ),
    ]
}

fn cancel_rows() -> Vec<Row> {
    let ok = || Ok(Service::Cancel);
    vec![
        (cancel(), ok()),
        (
            cancel()
                .remove("out_trade_no")
                .set("trade_no", "2026010121001004440000000001"),
            ok(),
        ),
        (cancel().set("terminal_timestamp", "1767225599000"), ok()),
        (
            cancel().remove("out_trade_no"),
            Err(Error::MissingTradeReference("out_trade_no", "trade_no")),
        ),
        (
            cancel().set("out_trade_no", "x".repeat(65)),
            too_long("out_trade_no", 64),
        ),
        (
            cancel().set("trade_no", "2026_0101"),
            Err(Error::BadNumber("trade_no")),
        ),
        (
            cancel().set("trade_no", "1".repeat(65)),
            too_long("trade_no", 64),
        ),
        (cancel().remove("timestamp"), missing("timestamp")),
        (cancel().set("timestamp", ""), missing("timestamp")),
        (cancel().set("timestamp", "999999999999999"), ok()),
        (
            cancel().set("timestamp", "1000000000000000"),
            Err(Error::BadNumber("timestamp")),
        ),
        (
            cancel().set("timestamp", "1767225600000.5"),
            Err(Error::BadNumber("timestamp")),
        ),
        (
            cancel().set("timestamp", "-1"),
            Err(Error::BadNumber("timestamp")),
        ),
        (
            cancel().set("timestamp", "2026-01-01 08:00:00"),
            Err(Error::BadNumber("timestamp")),
        ),
        (
            cancel().set("terminal_timestamp", "now"),
            Err(Error::BadNumber("terminal_timestamp")),
        ),
    ]
}

fn refund_rows() -> Vec<Row> {
    let ok = || Ok(Service::Refund);
    let mut rows = vec![
        (refund(), ok()),
        (
            refund().set("alipay_trans_id", "2026010121001004440000000001"),
            ok(),
        ),
        (refund().set("is_sync", "Y"), ok()),
        (refund().set("is_sync", "N"), ok()),
        (refund().set("is_sync", ""), ok()),
        (
            refund().set("is_sync", "y"),
            Err(Error::BadEnumValue("is_sync")),
        ),
        (
            refund().set("is_sync", "YES"),
            Err(Error::BadEnumValue("is_sync")),
        ),
        (
            refund().set("alipay_trans_id", "2026 0101"),
            Err(Error::BadNumber("alipay_trans_id")),
        ),
        (
            refund().set("partner_refund_id", "T20260101000001"),
            Err(Error::RefundIdEqualsTransId),
        ),
        (
            refund().set("partner_trans_id", "x".repeat(65)),
            too_long("partner_trans_id", 64),
        ),
        (
            refund().set("partner_refund_id", "x".repeat(65)),
            too_long("partner_refund_id", 64),
        ),
        (
            refund().set("currency", "JPY").set("refund_amount", "500"),
            ok(),
        ),
        (
            refund().set("currency", "JPY").set("refund_amount", "5.00"),
            bad_amount("refund_amount", PRECISION_0),
        ),
        (
            refund().set("currency", "KRW").set("refund_amount", "5.00"),
            bad_amount("refund_amount", PRECISION_0),
        ),
        (
            refund().set("refund_amount", "5"),
            bad_amount("refund_amount", PRECISION_2),
        ),
        (
            refund().set("refund_amount", "0.00"),
            bad_amount("refund_amount", AmountError::OutOfRange),
        ),
        (
            refund().set("refund_amount", "100000000.01"),
            bad_amount("refund_amount", AmountError::OutOfRange),
        ),
        (
            refund().set("refund_amount", "5,00"),
            bad_amount("refund_amount", AmountError::NotDecimal),
        ),
        (
            refund().set("currency", "XXX"),
            bad_currency("currency", "XXX"),
        ),
        (refund().set("refund_reason", "退".repeat(128)), ok()),
        (
            refund().set("refund_reason", "x".repeat(129)),
            too_long("refund_reason", 128),
        ),
        (refund().set("refund_reson", "damaged"), ok()),
        (
            refund().set("refund_reson", "x".repeat(129)),
            too_long("refund_reson", 128),
        ),
        (
            refund().set("refund_reason", "a").set("refund_reson", "b"),
            Err(Error::DuplicateParameter("refund_reason".into())),
        ),
    ];
    for field in [
        "partner_trans_id",
        "partner_refund_id",
        "refund_amount",
        "currency",
    ] {
        rows.push((refund().remove(field), missing(field)));
    }
    rows
}

fn all_rows() -> Vec<Row> {
    let mut rows = form_rows();
    rows.extend(common_rows());
    rows.extend(pay_rows());
    rows.extend(query_rows());
    rows.extend(cancel_rows());
    rows.extend(refund_rows());
    rows
}

/// Parses the form with the default limits and validates it as a request.
fn check(input: &Input, expected: &Result<Service, Error>) -> Result<(), String> {
    let (query, body) = input.bytes();
    let got = Form::parse(&query, &body, &FormLimits::default())
        .and_then(|form| Request::from_form(&form).map(|r| r.service()));
    if &got == expected {
        Ok(())
    } else {
        Err(format!(
            "{input:?}\n    expected {expected:?}\n    got      {got:?}"
        ))
    }
}

#[test]
fn validation_table() {
    let rows = all_rows();
    let failures: Vec<String> = rows
        .iter()
        .filter_map(|(input, expected)| check(input, expected).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

/// Edits of decoded pairs: set a value, or remove the parameter (`None`).
type Edits = Vec<(&'static str, Option<&'static str>)>;

/// Rows of signature checking: a signed query form with its decoded pairs edited.
fn verify_rows() -> Vec<(SignType, Edits, Result<(), Error>)> {
    use SignType::{Md5, Rsa2};
    vec![
        (Md5, vec![], Ok(())),
        (Rsa2, vec![], Ok(())),
        (
            Md5,
            vec![("sign_type", None)],
            Err(Error::UnsupportedSignType(String::new())),
        ),
        (
            Md5,
            vec![("sign_type", Some("md5"))],
            Err(Error::UnsupportedSignType("md5".into())),
        ),
        (
            Md5,
            vec![("sign_type", Some("SHA256"))],
            Err(Error::UnsupportedSignType("SHA256".into())),
        ),
        (
            Md5,
            vec![("sign_type", Some("RSA2"))],
            Err(Error::SignTypeNotRegistered {
                got: "RSA2",
                registered: "MD5",
            }),
        ),
        (
            Rsa2,
            vec![("sign_type", Some("RSA"))],
            Err(Error::SignTypeNotRegistered {
                got: "RSA",
                registered: "RSA2",
            }),
        ),
        (
            Rsa2,
            vec![("sign_type", Some("MD5"))],
            Err(Error::SignTypeNotRegistered {
                got: "MD5",
                registered: "RSA2",
            }),
        ),
        (Md5, vec![("sign", None)], Err(Error::MissingSignature)),
        (Md5, vec![("sign", Some(""))], Err(Error::MissingSignature)),
        (Rsa2, vec![("sign", None)], Err(Error::MissingSignature)),
        (
            Md5,
            vec![("sign", Some("0123456789abcdef"))],
            Err(Error::MalformedSignature),
        ),
        (
            Md5,
            vec![("sign", Some("0123456789abcdef0123456789abcdef0"))],
            Err(Error::MalformedSignature),
        ),
        (
            Rsa2,
            vec![("sign", Some("not*base64"))],
            Err(Error::MalformedSignature),
        ),
        (
            Md5,
            vec![("sign", Some("0123456789abcdef0123456789abcdef"))],
            Err(Error::SignatureMismatch),
        ),
        (
            Md5,
            vec![("sign", Some("zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"))],
            Err(Error::SignatureMismatch),
        ),
        (
            Rsa2,
            vec![("sign", Some("AAAA"))],
            Err(Error::SignatureMismatch),
        ),
        (
            Md5,
            vec![("partner_trans_id", Some("T2"))],
            Err(Error::SignatureMismatch),
        ),
        // Empty parameters are not signed: adding one keeps the signature valid (spec §3).
        (Md5, vec![("alipay_trans_id", Some(""))], Ok(())),
    ]
}

#[test]
fn verification_table() {
    let mut failures = Vec::new();
    for (sign_type, edits, expected) in verify_rows() {
        let (signer, verifier) = match sign_type {
            SignType::Md5 => (md5(), crate::common::verifier_for(&md5())),
            _ => (
                crate::common::rsa2().clone(),
                crate::common::verifier_for(crate::common::rsa2()),
            ),
        };
        let mut b = FormBuilder::new(Charset::Utf8);
        b.push("service", Service::Query.name())
            .push("partner", PARTNER)
            .push("partner_trans_id", "T1");
        let body = b.finish(&signer).unwrap();
        let form = Form::parse(b"", &body, &FormLimits::default()).unwrap();
        let mut input = Input::Pairs(
            form.params()
                .iter()
                .map(|p| (p.name().to_owned(), p.value().to_owned()))
                .collect(),
        );
        for (name, value) in &edits {
            input = match value {
                Some(v) => input.set(name, *v),
                None => input.remove(name),
            };
        }
        let (query, body) = input.bytes();
        let form = Form::parse(&query, &body, &FormLimits::default()).unwrap();
        let got = form.verify(&verifier, &mut Vec::new());
        if got != expected {
            failures.push(format!(
                "{sign_type} {edits:?}: expected {expected:?}, got {got:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Variants checked by other modules of this binary, with where.
const COVERED_ELSEWHERE: &[(&str, &str)] = &[
    (
        "BadKey",
        "openssl.rs: key_text_of_the_wrong_kind…, rsa2_refuses_a_1024_bit_key…",
    ),
    (
        "SigningFailed",
        "not reachable from input: a loaded key always signs",
    ),
    ("MalformedXml", "xml_hostile.rs"),
    ("XmlDoctype", "xml_hostile.rs"),
    ("XmlRepeatedElement", "xml_hostile.rs"),
    ("XmlTooDeep", "xml_hostile.rs"),
];

fn variant_name(e: &Error) -> String {
    format!("{e:?}")
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect()
}

/// The variants of `Error`, read from its source (the enum is `#[non_exhaustive]`, so an
/// exhaustive `match` is not possible outside the crate).
fn declared_variants() -> Vec<String> {
    let src = include_str!("../../src/error.rs");
    let start = src.find("pub enum Error {").unwrap();
    let body = &src[start..];
    let body = &body[..body.find("\n}").unwrap()];
    body.lines()
        .skip(1)
        .map(str::trim)
        .filter(|l| l.starts_with(|c: char| c.is_ascii_uppercase()))
        .map(|l| l.chars().take_while(char::is_ascii_alphanumeric).collect())
        .collect()
}

#[test]
fn every_error_variant_has_a_row() {
    let mut covered: Vec<String> = all_rows()
        .iter()
        .filter_map(|(_, expected)| expected.as_ref().err().map(variant_name))
        .chain(
            verify_rows()
                .iter()
                .filter_map(|(_, _, e)| e.as_ref().err().map(variant_name)),
        )
        .chain(COVERED_ELSEWHERE.iter().map(|(v, _)| (*v).to_owned()))
        .collect();
    covered.sort();
    covered.dedup();
    let declared = declared_variants();
    assert!(
        declared.len() > 30,
        "the variant scan is broken: {declared:?}"
    );
    let missing: Vec<&String> = declared.iter().filter(|v| !covered.contains(v)).collect();
    assert!(
        missing.is_empty(),
        "Error variants without a validation row: {missing:?}"
    );
    let stale: Vec<&String> = covered.iter().filter(|v| !declared.contains(v)).collect();
    assert!(
        stale.is_empty(),
        "rows name variants that no longer exist: {stale:?}"
    );
}

/// Each class of error answers with the gateway code spec §4 documents for it.
#[test]
fn errors_map_to_gateway_codes() {
    use alipay::GatewayErrorCode as G;
    let rows = [
        (
            Error::UnsupportedCharset("latin1".into()),
            G::IllegalCharset,
        ),
        (Error::BadCharset("memo".into()), G::IllegalCharset),
        (
            Error::UnsupportedSignType("SHA1".into()),
            G::IllegalSignType,
        ),
        (
            Error::SignTypeNotRegistered {
                got: "MD5",
                registered: "RSA2",
            },
            G::IllegalSignType,
        ),
        (Error::MissingSignature, G::IllegalSign),
        (Error::MalformedSignature, G::IllegalSign),
        (Error::SignatureMismatch, G::IllegalSign),
        (Error::UnknownService("x".into()), G::IllegalService),
        (Error::BadKey("x"), G::SystemError),
        (Error::SigningFailed, G::SystemError),
        (Error::MissingField("partner"), G::IllegalArgument),
        (Error::BadPartnerId("partner"), G::IllegalArgument),
        (
            Error::DuplicateParameter("partner".into()),
            G::IllegalArgument,
        ),
        (
            Error::TooLarge {
                len_bytes: 2,
                max_bytes: 1,
            },
            G::IllegalArgument,
        ),
        (Error::BadBuyerCode, G::IllegalArgument),
    ];
    for (error, code) in rows {
        assert_eq!(error.gateway_code(), code, "{error:?}");
        assert!(!code.is_outcome_unknown() || code == G::SystemError);
    }
}
