//! The one error type of the wire-format crate.
//!
//! Every rule the crate enforces has its own variant, so a caller (the gateway, the simulator, a
//! test table) can tell exactly which rule a message broke and map it to the Alipay code it
//! documents: form and charset problems and validation failures are `ILLEGAL_ARGUMENT`-class,
//! signature problems are `ILLEGAL_SIGN`-class (see [`Error::gateway_code`]).

use crate::message::GatewayErrorCode;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can be wrong with a message on the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- form encoding --------------------------------------------------------------------
    /// The body or query is larger than the configured limit.
    #[error("the message is {len_bytes} bytes, over the limit of {max_bytes}")]
    TooLarge { len_bytes: usize, max_bytes: usize },
    /// More parameters than the configured limit.
    #[error("more than {max} parameters")]
    TooManyParameters { max: usize },
    /// A parameter name or value is longer than the configured limit.
    #[error("parameter `{name}` is longer than {max_bytes} bytes")]
    ParameterTooLong { name: String, max_bytes: usize },
    /// A parameter name is empty or has characters outside `[A-Za-z0-9_]`.
    #[error("a parameter name is empty or not of the form [A-Za-z0-9_]+")]
    BadParameterName,
    /// The same parameter name appears twice (a signature-confusion attack vector).
    #[error("parameter `{0}` is repeated")]
    DuplicateParameter(String),
    /// A `%` escape is truncated or not hexadecimal.
    #[error("parameter `{0}` has a malformed percent escape")]
    BadPercentEncoding(String),
    /// `_input_charset` is not UTF-8, GBK or GB2312.
    #[error("unsupported _input_charset `{0}`")]
    UnsupportedCharset(String),
    /// A value's bytes are not valid in the declared charset.
    #[error("parameter `{0}` is not valid in the declared charset")]
    BadCharset(String),

    // ---- signatures and keys --------------------------------------------------------------
    /// `sign_type` is missing or not MD5, RSA or RSA2.
    #[error("unsupported or missing sign_type `{0}`")]
    UnsupportedSignType(String),
    /// `sign_type` differs from the one registered for the account.
    #[error("sign_type {got} is not the one registered for this account ({registered})")]
    SignTypeNotRegistered {
        got: &'static str,
        registered: &'static str,
    },
    /// No `sign` parameter or element.
    #[error("the message carries no signature")]
    MissingSignature,
    /// The signature is not hexadecimal (MD5) or Base64 (RSA).
    #[error("the signature is not well-formed")]
    MalformedSignature,
    /// The signature does not match the message.
    #[error("the signature does not match")]
    SignatureMismatch,
    /// A key could not be read; the text says which form was expected. Never contains key bytes.
    #[error("key rejected: {0}")]
    BadKey(&'static str),
    /// The private-key operation failed.
    #[error("signing failed")]
    SigningFailed,

    // ---- validation -------------------------------------------------------------------------
    /// `service` is not one of the four services.
    #[error("unknown service `{0}`")]
    UnknownService(String),
    /// A parameter that the service does not define.
    #[error("parameter `{0}` is not defined for this service")]
    UnexpectedParameter(String),
    /// A required field is missing or empty.
    #[error("required field `{0}` is missing")]
    MissingField(&'static str),
    /// A field is longer than the spec allows (counted in characters).
    #[error("field `{field}` is longer than {max_chars} characters")]
    FieldTooLong {
        field: &'static str,
        max_chars: usize,
    },
    /// A value contains a raw double quote, which the spec forbids.
    #[error("field `{0}` contains a double quote")]
    ContainsQuote(String),
    /// `partner` or `alipay_seller_id` is not 16 digits starting with 2088.
    #[error("field `{0}` is not a partner id (16 digits starting with 2088)")]
    BadPartnerId(&'static str),
    /// `alipay_seller_id` differs from `partner`.
    #[error("alipay_seller_id must equal partner")]
    SellerIdMismatch,
    /// The currency is not a supported ISO 4217 settlement currency.
    #[error("field `{field}`: unsupported currency `{value}`")]
    BadCurrency { field: &'static str, value: String },
    /// An amount is malformed, has the wrong precision, or is out of range.
    #[error("field `{field}`: {reason}")]
    BadAmount {
        field: &'static str,
        reason: AmountError,
    },
    /// `buyer_identity_code` is not 16-24 digits starting with 25-30.
    #[error("buyer_identity_code is not 16-24 digits starting with 25-30")]
    BadBuyerCode,
    /// `identity_code_type` is not `barcode` or `qrcode`.
    #[error("identity_code_type must be barcode or qrcode")]
    BadIdentityCodeType,
    /// `biz_product` is not `OVERSEAS_MBARCODE_PAY`.
    #[error("biz_product must be OVERSEAS_MBARCODE_PAY")]
    BadBizProduct,
    /// A time field is not `yyyyMMddHHmmss` (or the format the field documents).
    #[error("field `{0}` is not a valid time")]
    BadTime(&'static str),
    /// `extend_info` is not a JSON object of strings or lacks a mandatory member.
    #[error("extend_info: {0}")]
    BadExtendInfo(&'static str),
    /// Neither of the two trade references was given.
    #[error("one of `{0}` or `{1}` is required")]
    MissingTradeReference(&'static str, &'static str),
    /// `partner_refund_id` equals `partner_trans_id`.
    #[error("partner_refund_id must differ from partner_trans_id")]
    RefundIdEqualsTransId,
    /// A flag field has a value other than the documented ones.
    #[error("field `{0}` has a value outside its documented set")]
    BadEnumValue(&'static str),
    /// A numeric field is not a non-negative integer in range.
    #[error("field `{0}` is not a valid number")]
    BadNumber(&'static str),

    // ---- XML responses ------------------------------------------------------------------------
    /// The XML is not well-formed, or its structure is not Alipay's envelope.
    #[error("malformed XML response: {0}")]
    MalformedXml(String),
    /// The XML carries a DOCTYPE (refused: entity expansion and external entities).
    #[error("XML with a DOCTYPE is refused")]
    XmlDoctype,
    /// An element that must appear once appears again.
    #[error("XML element `{0}` is repeated")]
    XmlRepeatedElement(String),
    /// The XML is nested deeper than any Alipay response.
    #[error("XML is nested too deeply")]
    XmlTooDeep,
}

/// Why an amount string was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// Not digits with an optional `.` and decimals.
    #[error("not a decimal amount")]
    NotDecimal,
    /// The number of decimals is not the currency's precision.
    #[error("must have exactly {expected} decimals")]
    WrongPrecision { expected: u8 },
    /// Below 0.01 (one minor unit) or above 100000000.00.
    #[error("out of range 0.01..=100000000.00")]
    OutOfRange,
    /// Arithmetic on two different currencies.
    #[error("currencies differ")]
    CurrencyMismatch,
    /// Arithmetic overflowed or went negative.
    #[error("arithmetic overflow")]
    Overflow,
}

impl Error {
    /// The gateway-level Alipay error code that answers a request failing with this error.
    pub fn gateway_code(&self) -> GatewayErrorCode {
        match self {
            Error::UnsupportedCharset(_) | Error::BadCharset(_) => GatewayErrorCode::IllegalCharset,
            Error::UnsupportedSignType(_) | Error::SignTypeNotRegistered { .. } => {
                GatewayErrorCode::IllegalSignType
            }
            Error::MissingSignature | Error::MalformedSignature | Error::SignatureMismatch => {
                GatewayErrorCode::IllegalSign
            }
            Error::UnknownService(_) => GatewayErrorCode::IllegalService,
            Error::BadKey(_) | Error::SigningFailed => GatewayErrorCode::SystemError,
            _ => GatewayErrorCode::IllegalArgument,
        }
    }
}

/// An error and its sources on one line, `outer: inner: innermost` (tells a reset from a
/// close). For transport errors, which describe the connection and never a request's content.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
