//! Typed requests of the four services, validated as spec §5 says, and the small enums of the
//! protocol (services, result codes, trade states, gateway error codes).
//!
//! A request borrows its strings from the parsed [`Form`]; parsing checks every rule once and
//! names the broken rule in its [`Error`]. The same types write themselves into a
//! [`FormBuilder`] for the sending side, so what one side writes the other reads.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::amount::{Amount, Currency};
use crate::error::{Error, Result};
use crate::form::{Form, FormBuilder};
use crate::secret::Secret;
use crate::time::BeijingTime;

/// Maximum characters of `partner_trans_id` and `partner_refund_id` (String(64)).
pub const TRANS_ID_CHARS_MAX: usize = 64;
/// Maximum characters of `trans_name` (String(256)).
pub const TRANS_NAME_CHARS_MAX: usize = 256;
/// Maximum characters of `refund_reason` (String(128)).
pub const REFUND_REASON_CHARS_MAX: usize = 128;
/// Maximum characters of `memo` (assumed, as `trans_name`).
pub const MEMO_CHARS_MAX: usize = 256;
/// Maximum characters of `trade_information` (assumed).
pub const TRADE_INFORMATION_CHARS_MAX: usize = 4000;
/// Maximum characters of `notify_url` (assumed).
pub const NOTIFY_URL_CHARS_MAX: usize = 1024;
/// Maximum characters of `extend_info` (assumed).
pub const EXTEND_INFO_CHARS_MAX: usize = 2048;
/// Maximum characters of an Alipay trade number (`alipay_trans_id`, `trade_no`) (assumed).
pub const ALIPAY_TRANS_ID_CHARS_MAX: usize = 64;

/// The four services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Service {
    /// `alipay.acquire.overseas.spot.pay`
    Pay,
    /// `alipay.acquire.overseas.query`
    Query,
    /// `alipay.acquire.cancel`
    Cancel,
    /// `alipay.acquire.overseas.spot.refund`
    Refund,
}

impl Service {
    /// Every service.
    pub const ALL: [Service; 4] = [
        Service::Pay,
        Service::Query,
        Service::Cancel,
        Service::Refund,
    ];

    /// The `service` parameter value.
    pub const fn name(self) -> &'static str {
        match self {
            Service::Pay => "alipay.acquire.overseas.spot.pay",
            Service::Query => "alipay.acquire.overseas.query",
            Service::Cancel => "alipay.acquire.cancel",
            Service::Refund => "alipay.acquire.overseas.spot.refund",
        }
    }

    /// A short label for metrics and logs.
    pub const fn label(self) -> &'static str {
        match self {
            Service::Pay => "pay",
            Service::Query => "query",
            Service::Cancel => "cancel",
            Service::Refund => "refund",
        }
    }

    /// Parses the `service` parameter.
    pub fn from_name(name: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The parameters this service defines, besides the common ones.
    pub const fn params(self) -> &'static [&'static str] {
        match self {
            Service::Pay => &[
                "alipay_seller_id",
                "biz_product",
                "buyer_identity_code",
                "currency",
                "extend_info",
                "identity_code_type",
                "memo",
                "partner_trans_id",
                "quantity",
                "trade_information",
                "trans_amount",
                "trans_create_time",
                "trans_currency",
                "trans_name",
            ],
            Service::Query => &["alipay_trans_id", "partner_trans_id"],
            Service::Cancel => &[
                "out_trade_no",
                "terminal_timestamp",
                "timestamp",
                "trade_no",
            ],
            Service::Refund => &[
                "alipay_trans_id",
                "currency",
                "is_sync",
                "partner_refund_id",
                "partner_trans_id",
                "refund_amount",
                "refund_reason",
                "refund_reson",
            ],
        }
    }
}

/// Parameters every service accepts.
pub const COMMON_PARAMS: [&str; 6] = [
    "_input_charset",
    "notify_url",
    "partner",
    "service",
    "sign",
    "sign_type",
];

/// `result_code` of a business response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ResultCode {
    /// Done (paid, cancelled, refunded, or the query worked).
    Success,
    /// Definitely not done.
    Fail,
    /// Outcome not known yet.
    Unknown,
}

impl ResultCode {
    /// The wire value.
    pub const fn as_str(self) -> &'static str {
        match self {
            ResultCode::Success => "SUCCESS",
            ResultCode::Fail => "FAIL",
            ResultCode::Unknown => "UNKNOWN",
        }
    }
    /// Parses the wire value.
    pub fn from_wire(s: &str) -> Option<ResultCode> {
        match s {
            "SUCCESS" => Some(ResultCode::Success),
            "FAIL" => Some(ResultCode::Fail),
            "UNKNOWN" => Some(ResultCode::Unknown),
            _ => None,
        }
    }
}

/// `alipay_trans_status` / `trade_status` of a trade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TradeStatus {
    /// Created, waiting for the buyer to confirm.
    WaitBuyerPay,
    /// Paid (stays so after partial refunds).
    TradeSuccess,
    /// Unpaid and timed out, cancelled, or fully refunded.
    TradeClosed,
    /// Paid, refund period over.
    TradeFinished,
}

impl TradeStatus {
    /// The wire value.
    pub const fn as_str(self) -> &'static str {
        match self {
            TradeStatus::WaitBuyerPay => "WAIT_BUYER_PAY",
            TradeStatus::TradeSuccess => "TRADE_SUCCESS",
            TradeStatus::TradeClosed => "TRADE_CLOSED",
            TradeStatus::TradeFinished => "TRADE_FINISHED",
        }
    }
    /// Parses the wire value.
    pub fn from_wire(s: &str) -> Option<TradeStatus> {
        [
            Self::WaitBuyerPay,
            Self::TradeSuccess,
            Self::TradeClosed,
            Self::TradeFinished,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

/// What a cancel did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelAction {
    /// The trade was unpaid (or never created) and is now closed.
    Close,
    /// The trade was paid and is now refunded in full.
    Refund,
}

impl CancelAction {
    /// The wire value.
    pub const fn as_str(self) -> &'static str {
        match self {
            CancelAction::Close => "close",
            CancelAction::Refund => "refund",
        }
    }
    /// Parses the wire value.
    pub fn from_wire(s: &str) -> Option<CancelAction> {
        match s {
            "close" => Some(CancelAction::Close),
            "refund" => Some(CancelAction::Refund),
            _ => None,
        }
    }
}

macro_rules! gateway_codes {
    ($($v:ident => $s:literal),+ $(,)?) => {
        /// Gateway-level rejection codes (`is_success=F`, spec §4).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum GatewayErrorCode { $(#[doc = $s] $v),+ }
        impl GatewayErrorCode {
            /// Every code.
            pub const ALL: &'static [GatewayErrorCode] = &[$(GatewayErrorCode::$v),+];
            /// The wire value.
            pub const fn as_str(self) -> &'static str { match self { $(GatewayErrorCode::$v => $s),+ } }
            /// Parses the wire value.
            pub fn from_wire(s: &str) -> Option<GatewayErrorCode> {
                match s { $($s => Some(GatewayErrorCode::$v),)+ _ => None }
            }
        }
    };
}

gateway_codes! {
    IllegalSign => "ILLEGAL_SIGN",
    IllegalArgument => "ILLEGAL_ARGUMENT",
    IllegalService => "ILLEGAL_SERVICE",
    IllegalPartner => "ILLEGAL_PARTNER",
    IllegalPartnerExterface => "ILLEGAL_PARTNER_EXTERFACE",
    IllegalSignType => "ILLEGAL_SIGN_TYPE",
    IllegalCharset => "ILLEGAL_CHARSET",
    IllegalSecurityProfile => "ILLEGAL_SECURITY_PROFILE",
    IllegalClientIp => "ILLEGAL_CLIENT_IP",
    HasNoPrivilege => "HAS_NO_PRIVILEGE",
    SystemError => "SYSTEM_ERROR",
}

impl GatewayErrorCode {
    /// Only `SYSTEM_ERROR` leaves the outcome unknown; every other code is a definite rejection.
    pub const fn is_outcome_unknown(self) -> bool {
        matches!(self, GatewayErrorCode::SystemError)
    }
}

impl fmt::Display for GatewayErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `identity_code_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentityCodeType {
    /// A scanned barcode.
    Barcode,
    /// A scanned QR code.
    Qrcode,
}

impl IdentityCodeType {
    /// The wire value.
    pub const fn as_str(self) -> &'static str {
        match self {
            IdentityCodeType::Barcode => "barcode",
            IdentityCodeType::Qrcode => "qrcode",
        }
    }
}

/// The fixed `biz_product` of barcode payments.
pub const BIZ_PRODUCT: &str = "OVERSEAS_MBARCODE_PAY";

/// `extend_info` of a pay: the secondary merchant and store, in acquirer mode.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ExtendInfo {
    /// Mandatory under current rules.
    pub secondary_merchant_id: String,
    /// The merchant's name as the buyer sees it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secondary_merchant_name: String,
    /// The 4-digit MCC.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secondary_merchant_industry: String,
    /// Mandatory under current rules.
    pub store_id: String,
    /// The store's name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub store_name: String,
    /// The terminal.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub terminal_id: String,
}

/// Maximum characters of one `extend_info` member (assumed).
pub const EXTEND_INFO_MEMBER_CHARS_MAX: usize = 128;

impl ExtendInfo {
    /// Parses and validates the JSON text.
    pub fn parse(text: &str) -> Result<ExtendInfo> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(default)]
            secondary_merchant_id: String,
            #[serde(default)]
            secondary_merchant_name: String,
            #[serde(default)]
            secondary_merchant_industry: String,
            #[serde(default)]
            store_id: String,
            #[serde(default)]
            store_name: String,
            #[serde(default)]
            terminal_id: String,
        }
        // A derived `Deserialize` also accepts a JSON array (members by position), which
        // Alipay does not: the text must be an object.
        if !text.trim_start().starts_with('{') {
            return Err(Error::BadExtendInfo("not a JSON object of string members"));
        }
        let raw: Raw = serde_json::from_str(text)
            .map_err(|_| Error::BadExtendInfo("not a JSON object of string members"))?;
        let info = ExtendInfo {
            secondary_merchant_id: raw.secondary_merchant_id,
            secondary_merchant_name: raw.secondary_merchant_name,
            secondary_merchant_industry: raw.secondary_merchant_industry,
            store_id: raw.store_id,
            store_name: raw.store_name,
            terminal_id: raw.terminal_id,
        };
        info.validate()?;
        Ok(info)
    }

    /// Checks the mandatory members, the MCC and the lengths.
    pub fn validate(&self) -> Result<()> {
        if self.secondary_merchant_id.is_empty() {
            return Err(Error::BadExtendInfo("secondary_merchant_id is required"));
        }
        if self.store_id.is_empty() {
            return Err(Error::BadExtendInfo("store_id is required"));
        }
        let mcc = &self.secondary_merchant_industry;
        if !mcc.is_empty() && (mcc.len() != 4 || !mcc.bytes().all(|b| b.is_ascii_digit())) {
            return Err(Error::BadExtendInfo(
                "secondary_merchant_industry must be a 4-digit MCC",
            ));
        }
        let members = [
            &self.secondary_merchant_id,
            &self.secondary_merchant_name,
            &self.store_id,
            &self.store_name,
            &self.terminal_id,
        ];
        if members
            .iter()
            .any(|m| m.chars().count() > EXTEND_INFO_MEMBER_CHARS_MAX)
        {
            return Err(Error::BadExtendInfo(
                "a member is longer than 128 characters",
            ));
        }
        Ok(())
    }

    /// The JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A pay request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayRequest<'f> {
    /// The account id (also `alipay_seller_id`).
    pub partner: &'f str,
    /// The merchant's order number.
    pub partner_trans_id: &'f str,
    /// Shown in the buyer's history.
    pub trans_name: &'f str,
    /// The amount, in the settlement currency (`currency`).
    pub trans_amount: Amount,
    /// The customer's dynamic payment code. Never logged.
    pub buyer_identity_code: Secret<&'f str>,
    /// How the code was scanned.
    pub identity_code_type: IdentityCodeType,
    /// When the merchant created the order.
    pub trans_create_time: BeijingTime,
    /// Secondary merchant and store.
    pub extend_info: Option<ExtendInfo>,
    /// The pricing currency when it differs from `currency`.
    pub trans_currency: Option<Currency>,
    /// Optional.
    pub quantity: Option<&'f str>,
    /// Optional.
    pub memo: Option<&'f str>,
    /// Optional JSON.
    pub trade_information: Option<&'f str>,
    /// Where to POST the asynchronous result.
    pub notify_url: Option<&'f str>,
}

/// A query request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryRequest<'f> {
    /// The account id.
    pub partner: &'f str,
    /// The merchant's order number.
    pub partner_trans_id: Option<&'f str>,
    /// Alipay's trade number; wins when both are given.
    pub alipay_trans_id: Option<&'f str>,
}

/// A cancel (reversal) request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelRequest<'f> {
    /// The account id.
    pub partner: &'f str,
    /// The original `partner_trans_id`.
    pub out_trade_no: Option<&'f str>,
    /// The original `alipay_trans_id`; wins when both are given.
    pub trade_no: Option<&'f str>,
    /// Epoch milliseconds.
    pub timestamp_ms: u64,
    /// Epoch milliseconds at the terminal.
    pub terminal_timestamp_ms: Option<u64>,
    /// Where to POST the asynchronous result.
    pub notify_url: Option<&'f str>,
}

/// A refund request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest<'f> {
    /// The account id.
    pub partner: &'f str,
    /// The original payment.
    pub partner_trans_id: &'f str,
    /// The original payment's Alipay number.
    pub alipay_trans_id: Option<&'f str>,
    /// One id = one refund; a retry reuses it.
    pub partner_refund_id: &'f str,
    /// The amount, in the payment's currency.
    pub refund_amount: Amount,
    /// Why (sent as `refund_reason`; `refund_reson` accepted on input).
    pub refund_reason: Option<&'f str>,
    /// `Y`: answer synchronously; `N` (default): accept now, finish later and notify.
    pub is_sync: bool,
    /// Where to POST the asynchronous result.
    pub notify_url: Option<&'f str>,
}

/// What a pay's `alipay_seller_id` may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SellerRule {
    /// Alipay's rule: the same value as `partner`.
    SameAsPartner,
    /// Any well-formed partner id (an acquirer's gateway, where an SI acts for merchants).
    AnyPartnerId,
}

/// Any of the four requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request<'f> {
    /// Pay.
    Pay(PayRequest<'f>),
    /// Query.
    Query(QueryRequest<'f>),
    /// Cancel.
    Cancel(CancelRequest<'f>),
    /// Refund.
    Refund(RefundRequest<'f>),
}

impl<'f> Request<'f> {
    /// Validates a parsed form as the request its `service` names. Signature verification is
    /// separate ([`Form::verify`]) because the key depends on `partner`.
    pub fn from_form(form: &'f Form<'_>) -> Result<Request<'f>> {
        Request::from_form_with(form, SellerRule::SameAsPartner)
    }

    /// Like [`Request::from_form`], with a choice of rule for a pay's `alipay_seller_id`. An
    /// acquirer's gateway uses [`SellerRule::AnyPartnerId`]: a system integrator signs as
    /// `partner` and names the merchant it acts for in `alipay_seller_id`; the acquirer then
    /// checks that the caller may act for that merchant (read it with `form.get`).
    pub fn from_form_with(form: &'f Form<'_>, seller: SellerRule) -> Result<Request<'f>> {
        let service = required(form, "service")?;
        let service =
            Service::from_name(service).ok_or_else(|| Error::UnknownService(clip(service)))?;
        check_common(form, service)?;
        Ok(match service {
            Service::Pay => Request::Pay(PayRequest::from_form(form, seller)?),
            Service::Query => Request::Query(QueryRequest::from_form(form)?),
            Service::Cancel => Request::Cancel(CancelRequest::from_form(form)?),
            Service::Refund => Request::Refund(RefundRequest::from_form(form)?),
        })
    }

    /// The service.
    pub fn service(&self) -> Service {
        match self {
            Request::Pay(_) => Service::Pay,
            Request::Query(_) => Service::Query,
            Request::Cancel(_) => Service::Cancel,
            Request::Refund(_) => Service::Refund,
        }
    }

    /// The partner.
    pub fn partner(&self) -> &'f str {
        match self {
            Request::Pay(r) => r.partner,
            Request::Query(r) => r.partner,
            Request::Cancel(r) => r.partner,
            Request::Refund(r) => r.partner,
        }
    }

    /// Writes every parameter (except `_input_charset`, `sign`, `sign_type`) into `b`.
    pub fn write_form(&self, b: &mut FormBuilder) {
        b.push("service", self.service().name())
            .push("partner", self.partner());
        match self {
            Request::Pay(r) => r.write_params(b),
            Request::Query(r) => {
                b.push_opt("partner_trans_id", r.partner_trans_id)
                    .push_opt("alipay_trans_id", r.alipay_trans_id);
            }
            Request::Cancel(r) => {
                b.push_opt("out_trade_no", r.out_trade_no)
                    .push_opt("trade_no", r.trade_no);
                b.push("timestamp", &r.timestamp_ms.to_string());
                if let Some(t) = r.terminal_timestamp_ms {
                    b.push("terminal_timestamp", &t.to_string());
                }
                b.push_opt("notify_url", r.notify_url);
            }
            Request::Refund(r) => r.write_params(b),
        }
    }
}

fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Parameters whose value is a JSON text, exempt from the "no raw `\"`" rule (JSON needs quotes).
pub const JSON_PARAMS: [&str; 2] = ["extend_info", "trade_information"];

/// Checks what every service shares: only defined parameters, no raw `"`, the partner id shape.
fn check_common(form: &Form<'_>, service: Service) -> Result<()> {
    for p in form.params() {
        let name = p.name();
        if !COMMON_PARAMS.contains(&name) && !service.params().contains(&name) {
            return Err(Error::UnexpectedParameter(name.to_owned()));
        }
        if p.value().contains('"') && !JSON_PARAMS.contains(&name) {
            return Err(Error::ContainsQuote(name.to_owned()));
        }
    }
    check_partner_id("partner", required(form, "partner")?)?;
    if let Some(url) = form.get_nonempty("notify_url") {
        check_len("notify_url", url, NOTIFY_URL_CHARS_MAX)?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Error::BadEnumValue("notify_url"));
        }
    }
    if service == Service::Cancel && form.get_nonempty("_input_charset").is_none() {
        return Err(Error::MissingField("_input_charset"));
    }
    Ok(())
}

/// A required, non-empty parameter.
fn required<'f>(form: &'f Form<'_>, name: &'static str) -> Result<&'f str> {
    form.get_nonempty(name).ok_or(Error::MissingField(name))
}

fn check_len(field: &'static str, value: &str, max_chars: usize) -> Result<()> {
    // Byte length bounds character count from above: skip counting for short values.
    if value.len() > max_chars && value.chars().count() > max_chars {
        return Err(Error::FieldTooLong { field, max_chars });
    }
    Ok(())
}

fn optional<'f>(
    form: &'f Form<'_>,
    name: &'static str,
    max_chars: usize,
) -> Result<Option<&'f str>> {
    let v = form.get_nonempty(name);
    if let Some(v) = v {
        check_len(name, v, max_chars)?;
    }
    Ok(v)
}

fn check_partner_id(field: &'static str, v: &str) -> Result<()> {
    if v.len() == 16 && v.starts_with("2088") && v.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(Error::BadPartnerId(field))
    }
}

fn check_trade_no(field: &'static str, v: Option<&str>) -> Result<()> {
    if let Some(v) = v {
        check_len(field, v, ALIPAY_TRANS_ID_CHARS_MAX)?;
        if !v.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(Error::BadNumber(field));
        }
    }
    Ok(())
}

fn currency_field(form: &Form<'_>, field: &'static str) -> Result<Currency> {
    let v = required(form, field)?;
    v.parse().map_err(|()| Error::BadCurrency {
        field,
        value: clip(v),
    })
}

fn amount_field(form: &Form<'_>, field: &'static str, currency: Currency) -> Result<Amount> {
    let v = required(form, field)?;
    Amount::parse(v, currency).map_err(|reason| Error::BadAmount { field, reason })
}

fn epoch_ms_field(field: &'static str, v: &str) -> Result<u64> {
    if v.is_empty() || v.len() > 15 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::BadNumber(field));
    }
    v.parse().map_err(|_| Error::BadNumber(field))
}

/// True for 16–24 digits starting with 25..=30 (spec §5.1).
pub fn is_buyer_code(code: &str) -> bool {
    let b = code.as_bytes();
    (16..=24).contains(&b.len())
        && b.iter().all(u8::is_ascii_digit)
        && (25..=30).contains(&(u32::from(b[0] - b'0') * 10 + u32::from(b[1] - b'0')))
}

impl<'f> PayRequest<'f> {
    fn from_form(form: &'f Form<'_>, rule: SellerRule) -> Result<PayRequest<'f>> {
        let partner = required(form, "partner")?;
        let seller = required(form, "alipay_seller_id")?;
        check_partner_id("alipay_seller_id", seller)?;
        if rule == SellerRule::SameAsPartner && seller != partner {
            return Err(Error::SellerIdMismatch);
        }
        let partner_trans_id = required(form, "partner_trans_id")?;
        check_len("partner_trans_id", partner_trans_id, TRANS_ID_CHARS_MAX)?;
        let trans_name = required(form, "trans_name")?;
        check_len("trans_name", trans_name, TRANS_NAME_CHARS_MAX)?;
        let currency = currency_field(form, "currency")?;
        let trans_amount = amount_field(form, "trans_amount", currency)?;
        let code = required(form, "buyer_identity_code")?;
        if !is_buyer_code(code) {
            return Err(Error::BadBuyerCode);
        }
        let identity_code_type = match required(form, "identity_code_type")? {
            "barcode" => IdentityCodeType::Barcode,
            "qrcode" => IdentityCodeType::Qrcode,
            _ => return Err(Error::BadIdentityCodeType),
        };
        let trans_create_time = BeijingTime::parse_compact(required(form, "trans_create_time")?)
            .ok_or(Error::BadTime("trans_create_time"))?;
        if required(form, "biz_product")? != BIZ_PRODUCT {
            return Err(Error::BadBizProduct);
        }
        let extend_info = match optional(form, "extend_info", EXTEND_INFO_CHARS_MAX)? {
            Some(text) => Some(ExtendInfo::parse(text)?),
            None => None,
        };
        let trans_currency = match form.get_nonempty("trans_currency") {
            Some(v) => Some(v.parse().map_err(|()| Error::BadCurrency {
                field: "trans_currency",
                value: clip(v),
            })?),
            None => None,
        };
        let quantity = optional(form, "quantity", 32)?;
        if quantity.is_some_and(|q| !q.bytes().all(|b| b.is_ascii_digit())) {
            return Err(Error::BadNumber("quantity"));
        }
        Ok(PayRequest {
            partner,
            partner_trans_id,
            trans_name,
            trans_amount,
            buyer_identity_code: Secret::new(code),
            identity_code_type,
            trans_create_time,
            extend_info,
            trans_currency,
            quantity,
            memo: optional(form, "memo", MEMO_CHARS_MAX)?,
            trade_information: optional(form, "trade_information", TRADE_INFORMATION_CHARS_MAX)?,
            notify_url: form.get_nonempty("notify_url"),
        })
    }

    fn write_params(&self, b: &mut FormBuilder) {
        b.push("alipay_seller_id", self.partner)
            .push("partner_trans_id", self.partner_trans_id)
            .push("trans_name", self.trans_name)
            .push("currency", self.trans_amount.currency().code())
            .push("trans_amount", &self.trans_amount.to_string())
            .push("buyer_identity_code", self.buyer_identity_code.expose())
            .push("identity_code_type", self.identity_code_type.as_str())
            .push(
                "trans_create_time",
                &self.trans_create_time.compact().to_string(),
            )
            .push("biz_product", BIZ_PRODUCT)
            .push_opt("trans_currency", self.trans_currency.map(Currency::code))
            .push_opt("quantity", self.quantity)
            .push_opt("memo", self.memo)
            .push_opt("trade_information", self.trade_information)
            .push_opt("notify_url", self.notify_url);
        if let Some(info) = &self.extend_info {
            b.push("extend_info", &info.to_json());
        }
    }
}

impl<'f> QueryRequest<'f> {
    fn from_form(form: &'f Form<'_>) -> Result<QueryRequest<'f>> {
        let partner_trans_id = optional(form, "partner_trans_id", TRANS_ID_CHARS_MAX)?;
        let alipay_trans_id = form.get_nonempty("alipay_trans_id");
        check_trade_no("alipay_trans_id", alipay_trans_id)?;
        if partner_trans_id.is_none() && alipay_trans_id.is_none() {
            return Err(Error::MissingTradeReference(
                "partner_trans_id",
                "alipay_trans_id",
            ));
        }
        Ok(QueryRequest {
            partner: required(form, "partner")?,
            partner_trans_id,
            alipay_trans_id,
        })
    }
}

impl<'f> CancelRequest<'f> {
    fn from_form(form: &'f Form<'_>) -> Result<CancelRequest<'f>> {
        let out_trade_no = optional(form, "out_trade_no", TRANS_ID_CHARS_MAX)?;
        let trade_no = form.get_nonempty("trade_no");
        check_trade_no("trade_no", trade_no)?;
        if out_trade_no.is_none() && trade_no.is_none() {
            return Err(Error::MissingTradeReference("out_trade_no", "trade_no"));
        }
        let timestamp_ms = epoch_ms_field("timestamp", required(form, "timestamp")?)?;
        let terminal_timestamp_ms = match form.get_nonempty("terminal_timestamp") {
            Some(v) => Some(epoch_ms_field("terminal_timestamp", v)?),
            None => None,
        };
        Ok(CancelRequest {
            partner: required(form, "partner")?,
            out_trade_no,
            trade_no,
            timestamp_ms,
            terminal_timestamp_ms,
            notify_url: form.get_nonempty("notify_url"),
        })
    }
}

impl<'f> RefundRequest<'f> {
    fn from_form(form: &'f Form<'_>) -> Result<RefundRequest<'f>> {
        let partner_trans_id = required(form, "partner_trans_id")?;
        check_len("partner_trans_id", partner_trans_id, TRANS_ID_CHARS_MAX)?;
        let alipay_trans_id = form.get_nonempty("alipay_trans_id");
        check_trade_no("alipay_trans_id", alipay_trans_id)?;
        let partner_refund_id = required(form, "partner_refund_id")?;
        check_len("partner_refund_id", partner_refund_id, TRANS_ID_CHARS_MAX)?;
        if partner_refund_id == partner_trans_id {
            return Err(Error::RefundIdEqualsTransId);
        }
        let currency = currency_field(form, "currency")?;
        let refund_amount = amount_field(form, "refund_amount", currency)?;
        let reason = optional(form, "refund_reason", REFUND_REASON_CHARS_MAX)?;
        let reson = optional(form, "refund_reson", REFUND_REASON_CHARS_MAX)?;
        if reason.is_some() && reson.is_some() {
            return Err(Error::DuplicateParameter("refund_reason".to_owned()));
        }
        let is_sync = match form.get_nonempty("is_sync") {
            None | Some("N") => false,
            Some("Y") => true,
            Some(_) => return Err(Error::BadEnumValue("is_sync")),
        };
        Ok(RefundRequest {
            partner: required(form, "partner")?,
            partner_trans_id,
            alipay_trans_id,
            partner_refund_id,
            refund_amount,
            refund_reason: reason.or(reson),
            is_sync,
            notify_url: form.get_nonempty("notify_url"),
        })
    }

    fn write_params(&self, b: &mut FormBuilder) {
        b.push("partner_trans_id", self.partner_trans_id)
            .push_opt("alipay_trans_id", self.alipay_trans_id)
            .push("partner_refund_id", self.partner_refund_id)
            .push("refund_amount", &self.refund_amount.to_string())
            .push("currency", self.refund_amount.currency().code())
            .push_opt("refund_reason", self.refund_reason)
            .push("is_sync", if self.is_sync { "Y" } else { "N" })
            .push_opt("notify_url", self.notify_url);
    }
}
