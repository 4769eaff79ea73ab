//! Shared inputs for the criterion benchmarks: a typical pay request and pay response, and the
//! keys that sign them, built once so every benchmark measures the same bytes.
//!
//! The benchmarks themselves live in `benches/`; run them with `cargo bench -p switch-benches`.

use std::borrow::Cow;

use alipay::{
    Amount, BeijingTime, Charset, Currency, ExtendInfo, FormBuilder, IdentityCodeType, PayRequest,
    PayResponse, Request, ResultCode, Secret, SignType, Signer,
};

/// The MD5 key of the benchmark merchant (32 characters, like Alipay's).
pub const MD5_KEY: &str = "8a6f2c1e9b7d4f03a5c8e1b2d4f6a7c9";
/// The benchmark's RSA2 private key (TEST ONLY, see `fixtures/README.md`).
pub const RSA2_PRIVATE_PEM: &str = include_str!("../fixtures/rsa2-private.pem");
/// Its public half.
pub const RSA2_PUBLIC_PEM: &str = include_str!("../fixtures/rsa2-public.pem");

/// An MD5 signer with [`MD5_KEY`].
pub fn md5_signer() -> Signer {
    Signer::md5(MD5_KEY).unwrap_or_else(|e| panic!("benchmark MD5 key: {e}"))
}

/// An RSA2 signer with [`RSA2_PRIVATE_PEM`].
pub fn rsa2_signer() -> Signer {
    Signer::from_key_text(SignType::Rsa2, RSA2_PRIVATE_PEM)
        .unwrap_or_else(|e| panic!("benchmark RSA2 key: {e}"))
}

/// Which pay request to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayShape {
    /// What a cashier register sends to the switch in acquirer mode: every required parameter
    /// and a Chinese `trans_name`, no `extend_info` (the switch fills it from the merchant's
    /// record) and no `notify_url`. About 440 bytes.
    Typical,
    /// A direct-mode request with the optional `extend_info` JSON, `quantity` and `notify_url`
    /// as well. About 790 bytes, most of it percent-escaped JSON.
    Full,
}

impl PayShape {
    /// Both shapes, with their benchmark labels.
    pub const ALL: [(PayShape, &'static str); 2] =
        [(PayShape::Typical, "typical"), (PayShape::Full, "full")];
}

/// A cashier pay request, as a signed `application/x-www-form-urlencoded` body.
pub fn pay_request_body(signer: &Signer, shape: PayShape) -> Vec<u8> {
    let full = shape == PayShape::Full;
    let info = ExtendInfo {
        secondary_merchant_id: "SM-000123".into(),
        secondary_merchant_name: "Harbour Tea House".into(),
        secondary_merchant_industry: "5812".into(),
        store_id: "ST-0042".into(),
        store_name: "Central Pier 7".into(),
        terminal_id: "POS-07".into(),
    };
    let pay = PayRequest {
        partner: "2088101122136241",
        partner_trans_id: "20261127104512000123",
        trans_name: "奶茶 x2 / milk tea",
        trans_amount: Amount::from_minor(4_250, Currency::HKD),
        buyer_identity_code: Secret::new("286648812345678901"),
        identity_code_type: IdentityCodeType::Barcode,
        trans_create_time: BeijingTime::parse_compact("20261127104512")
            .unwrap_or_else(|| panic!("time")),
        extend_info: full.then_some(info),
        trans_currency: None,
        quantity: full.then_some("2"),
        memo: None,
        trade_information: None,
        notify_url: full.then_some("https://pos.example.com/alipay/notify"),
    };
    let mut b = FormBuilder::new(Charset::Utf8);
    Request::Pay(pay).write_form(&mut b);
    b.finish(signer)
        .unwrap_or_else(|e| panic!("signing the benchmark request: {e}"))
}

/// A typical SUCCESS answer to [`pay_request_body`].
pub fn pay_response() -> PayResponse<'static> {
    PayResponse {
        result_code: ResultCode::Success,
        error: None,
        partner_trans_id: Some(Cow::Borrowed("20261127104512000123")),
        alipay_trans_id: Some(Cow::Borrowed("2026112721001004920512345678")),
        alipay_buyer_login_id: Some(Cow::Borrowed("186****1234")),
        alipay_buyer_user_id: Some(Cow::Borrowed("2088102122524333")),
        alipay_pay_time: BeijingTime::parse_compact("20261127104513"),
        currency: Some(Currency::HKD),
        trans_amount: Some(Amount::from_minor(4_250, Currency::HKD)),
        exchange_rate: Some(Cow::Borrowed("0.91234500")),
        trans_amount_cny: Some(Cow::Borrowed("38.77")),
    }
}

/// The parameters a response echoes in `<request>`: the request's own, minus its signature.
pub const ECHO: &[(&str, &str)] = &[
    ("_input_charset", "UTF-8"),
    ("alipay_seller_id", "2088101122136241"),
    ("currency", "HKD"),
    ("partner", "2088101122136241"),
    ("partner_trans_id", "20261127104512000123"),
    ("service", "alipay.acquire.overseas.spot.pay"),
    ("trans_amount", "42.50"),
];
