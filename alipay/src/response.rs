//! Typed business responses (the children of `<response><alipay>`) for the four services.
//!
//! Each type lists its fields in alphabetical order through [`BusinessResponse::for_each_field`],
//! which is exactly the order Alipay emits and signs them in, so the XML writer needs no sorting
//! and no intermediate strings. Reading goes the other way: [`BusinessResponse::from_fields`]
//! takes the fields the XML reader found, borrowing wherever the reader could.

use std::borrow::Cow;
use std::fmt::Display;

use crate::amount::{Amount, Currency};
use crate::error::{Error, Result};
use crate::message::{CancelAction, ResultCode, Service, TradeStatus};
use crate::time::BeijingTime;

/// The callback a response writes its fields into: `(name, value)`.
pub type FieldSink<'s> = dyn FnMut(&'static str, &dyn Display) + 's;

/// A typed business response.
pub trait BusinessResponse<'a>: Sized {
    /// The service it answers.
    const SERVICE: Service;
    /// Calls `sink` for each present field, in ascending name order.
    fn for_each_field(&self, sink: &mut FieldSink<'_>);
    /// Builds the response from the fields of a parsed document.
    fn from_fields(fields: &Fields<'_, 'a>) -> Result<Self>;
}

/// The business fields of a parsed response, sorted by name.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'d, 'a> {
    pub(crate) sorted: &'d [(Cow<'a, str>, Cow<'a, str>)],
}

impl<'a> Fields<'_, 'a> {
    /// Every field as `(name, value)`, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.sorted.iter().map(|(n, v)| (n.as_ref(), v.as_ref()))
    }

    /// The value of `name`, if present and not empty.
    pub fn get(&self, name: &str) -> Option<Cow<'a, str>> {
        let i = self
            .sorted
            .binary_search_by(|(n, _)| n.as_ref().cmp(name))
            .ok()?;
        let v = &self.sorted[i].1;
        (!v.is_empty()).then(|| v.clone())
    }

    fn required(&self, name: &'static str) -> Result<Cow<'a, str>> {
        self.get(name).ok_or(Error::MissingField(name))
    }

    fn result_code(&self) -> Result<ResultCode> {
        ResultCode::from_wire(&self.required("result_code")?)
            .ok_or(Error::BadEnumValue("result_code"))
    }

    fn currency(&self, name: &'static str) -> Result<Option<Currency>> {
        self.get(name)
            .map(|v| {
                v.parse().map_err(|()| Error::BadCurrency {
                    field: name,
                    value: v.into_owned(),
                })
            })
            .transpose()
    }

    fn amount(&self, name: &'static str, currency: Option<Currency>) -> Result<Option<Amount>> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        let currency = currency.ok_or(Error::MissingField("currency"))?;
        Amount::parse(&v, currency)
            .map(Some)
            .map_err(|reason| Error::BadAmount {
                field: name,
                reason,
            })
    }

    fn time(&self, name: &'static str) -> Result<Option<BeijingTime>> {
        self.get(name)
            .map(|v| BeijingTime::parse_compact(&v).ok_or(Error::BadTime(name)))
            .transpose()
    }
}

fn opt<T: Display>(sink: &mut FieldSink<'_>, name: &'static str, v: &Option<T>) {
    if let Some(v) = v {
        sink(name, v);
    }
}

fn opt_time(sink: &mut FieldSink<'_>, name: &'static str, v: Option<BeijingTime>) {
    if let Some(t) = v {
        sink(name, &t.compact());
    }
}

/// Answer to a pay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayResponse<'a> {
    /// `SUCCESS` paid, `FAIL` not paid, `UNKNOWN` not known yet.
    pub result_code: ResultCode,
    /// The business error code on FAIL or UNKNOWN.
    pub error: Option<Cow<'a, str>>,
    /// The merchant's order number.
    pub partner_trans_id: Option<Cow<'a, str>>,
    /// Alipay's trade number.
    pub alipay_trans_id: Option<Cow<'a, str>>,
    /// The buyer's masked login.
    pub alipay_buyer_login_id: Option<Cow<'a, str>>,
    /// The buyer's user id.
    pub alipay_buyer_user_id: Option<Cow<'a, str>>,
    /// When it was paid.
    pub alipay_pay_time: Option<BeijingTime>,
    /// The settlement currency.
    pub currency: Option<Currency>,
    /// The amount.
    pub trans_amount: Option<Amount>,
    /// 8 decimals.
    pub exchange_rate: Option<Cow<'a, str>>,
    /// The amount in CNY.
    pub trans_amount_cny: Option<Cow<'a, str>>,
}

impl<'a> PayResponse<'a> {
    /// A response with only a result code (and error), every other field absent.
    pub fn bare(result_code: ResultCode, error: Option<&'a str>) -> PayResponse<'a> {
        PayResponse {
            result_code,
            error: error.map(Cow::Borrowed),
            partner_trans_id: None,
            alipay_trans_id: None,
            alipay_buyer_login_id: None,
            alipay_buyer_user_id: None,
            alipay_pay_time: None,
            currency: None,
            trans_amount: None,
            exchange_rate: None,
            trans_amount_cny: None,
        }
    }
}

impl<'a> BusinessResponse<'a> for PayResponse<'a> {
    const SERVICE: Service = Service::Pay;

    fn for_each_field(&self, sink: &mut FieldSink<'_>) {
        opt(sink, "alipay_buyer_login_id", &self.alipay_buyer_login_id);
        opt(sink, "alipay_buyer_user_id", &self.alipay_buyer_user_id);
        opt_time(sink, "alipay_pay_time", self.alipay_pay_time);
        opt(sink, "alipay_trans_id", &self.alipay_trans_id);
        opt(sink, "currency", &self.currency);
        opt(sink, "error", &self.error);
        opt(sink, "exchange_rate", &self.exchange_rate);
        opt(sink, "partner_trans_id", &self.partner_trans_id);
        sink("result_code", &self.result_code.as_str());
        opt(sink, "trans_amount", &self.trans_amount);
        opt(sink, "trans_amount_cny", &self.trans_amount_cny);
    }

    fn from_fields(f: &Fields<'_, 'a>) -> Result<Self> {
        let currency = f.currency("currency")?;
        Ok(PayResponse {
            result_code: f.result_code()?,
            error: f.get("error"),
            partner_trans_id: f.get("partner_trans_id"),
            alipay_trans_id: f.get("alipay_trans_id"),
            alipay_buyer_login_id: f.get("alipay_buyer_login_id"),
            alipay_buyer_user_id: f.get("alipay_buyer_user_id"),
            alipay_pay_time: f.time("alipay_pay_time")?,
            currency,
            trans_amount: f.amount("trans_amount", currency)?,
            exchange_rate: f.get("exchange_rate"),
            trans_amount_cny: f.get("trans_amount_cny"),
        })
    }
}

/// Answer to a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryResponse<'a> {
    /// `SUCCESS`: the query worked (the trade state is in `alipay_trans_status`).
    pub result_code: ResultCode,
    /// The error code on FAIL (e.g. `TRADE_NOT_EXIST`).
    pub error: Option<Cow<'a, str>>,
    /// The trade state.
    pub alipay_trans_status: Option<TradeStatus>,
    /// The merchant's order number.
    pub partner_trans_id: Option<Cow<'a, str>>,
    /// Same as `partner_trans_id`.
    pub out_trade_no: Option<Cow<'a, str>>,
    /// Alipay's trade number.
    pub alipay_trans_id: Option<Cow<'a, str>>,
    /// The buyer's masked login.
    pub alipay_buyer_login_id: Option<Cow<'a, str>>,
    /// The buyer's user id.
    pub alipay_buyer_user_id: Option<Cow<'a, str>>,
    /// When it was paid.
    pub alipay_pay_time: Option<BeijingTime>,
    /// The settlement currency.
    pub currency: Option<Currency>,
    /// The amount.
    pub trans_amount: Option<Amount>,
    /// 8 decimals.
    pub exchange_rate: Option<Cow<'a, str>>,
    /// The amount in CNY.
    pub trans_amount_cny: Option<Cow<'a, str>>,
    /// `ALIPAYCN` or `ALIPAYHK`.
    pub payment_inst: Option<Cow<'a, str>>,
    /// The pricing currency.
    pub trans_currency: Option<Cow<'a, str>>,
    /// Pricing to settlement rate.
    pub trans_forex_rate: Option<Cow<'a, str>>,
    /// Amount in the pricing currency.
    pub forex_total_fee: Option<Cow<'a, str>>,
}

impl<'a> QueryResponse<'a> {
    /// A response with only a result code (and error), every other field absent.
    pub fn bare(result_code: ResultCode, error: Option<&'a str>) -> QueryResponse<'a> {
        QueryResponse {
            result_code,
            error: error.map(Cow::Borrowed),
            alipay_trans_status: None,
            partner_trans_id: None,
            out_trade_no: None,
            alipay_trans_id: None,
            alipay_buyer_login_id: None,
            alipay_buyer_user_id: None,
            alipay_pay_time: None,
            currency: None,
            trans_amount: None,
            exchange_rate: None,
            trans_amount_cny: None,
            payment_inst: None,
            trans_currency: None,
            trans_forex_rate: None,
            forex_total_fee: None,
        }
    }
}

impl<'a> BusinessResponse<'a> for QueryResponse<'a> {
    const SERVICE: Service = Service::Query;

    fn for_each_field(&self, sink: &mut FieldSink<'_>) {
        opt(sink, "alipay_buyer_login_id", &self.alipay_buyer_login_id);
        opt(sink, "alipay_buyer_user_id", &self.alipay_buyer_user_id);
        opt_time(sink, "alipay_pay_time", self.alipay_pay_time);
        opt(sink, "alipay_trans_id", &self.alipay_trans_id);
        opt(
            sink,
            "alipay_trans_status",
            &self.alipay_trans_status.map(TradeStatus::as_str),
        );
        opt(sink, "currency", &self.currency);
        opt(sink, "error", &self.error);
        opt(sink, "exchange_rate", &self.exchange_rate);
        opt(sink, "forex_total_fee", &self.forex_total_fee);
        opt(sink, "out_trade_no", &self.out_trade_no);
        opt(sink, "partner_trans_id", &self.partner_trans_id);
        opt(sink, "payment_inst", &self.payment_inst);
        sink("result_code", &self.result_code.as_str());
        opt(sink, "trans_amount", &self.trans_amount);
        opt(sink, "trans_amount_cny", &self.trans_amount_cny);
        opt(sink, "trans_currency", &self.trans_currency);
        opt(sink, "trans_forex_rate", &self.trans_forex_rate);
    }

    fn from_fields(f: &Fields<'_, 'a>) -> Result<Self> {
        let currency = f.currency("currency")?;
        let status = f
            .get("alipay_trans_status")
            .map(|s| TradeStatus::from_wire(&s).ok_or(Error::BadEnumValue("alipay_trans_status")))
            .transpose()?;
        Ok(QueryResponse {
            result_code: f.result_code()?,
            error: f.get("error"),
            alipay_trans_status: status,
            partner_trans_id: f.get("partner_trans_id"),
            out_trade_no: f.get("out_trade_no"),
            alipay_trans_id: f.get("alipay_trans_id"),
            alipay_buyer_login_id: f.get("alipay_buyer_login_id"),
            alipay_buyer_user_id: f.get("alipay_buyer_user_id"),
            alipay_pay_time: f.time("alipay_pay_time")?,
            currency,
            trans_amount: f.amount("trans_amount", currency)?,
            exchange_rate: f.get("exchange_rate"),
            trans_amount_cny: f.get("trans_amount_cny"),
            payment_inst: f.get("payment_inst"),
            trans_currency: f.get("trans_currency"),
            trans_forex_rate: f.get("trans_forex_rate"),
            forex_total_fee: f.get("forex_total_fee"),
        })
    }
}

/// Answer to a cancel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelResponse<'a> {
    /// `SUCCESS`, `FAIL` or `UNKNOWN`.
    pub result_code: ResultCode,
    /// The original `partner_trans_id`.
    pub out_trade_no: Option<Cow<'a, str>>,
    /// Alipay's trade number.
    pub trade_no: Option<Cow<'a, str>>,
    /// `Some(true)`: a retryable failure, send the same cancel again.
    pub retry_flag: Option<bool>,
    /// What the cancel did.
    pub action: Option<CancelAction>,
    /// The error code on failure.
    pub detail_error_code: Option<Cow<'a, str>>,
    /// Its description.
    pub detail_error_des: Option<Cow<'a, str>>,
}

impl<'a> CancelResponse<'a> {
    /// A response with only a result code, every other field absent.
    pub fn bare(result_code: ResultCode) -> CancelResponse<'a> {
        CancelResponse {
            result_code,
            out_trade_no: None,
            trade_no: None,
            retry_flag: None,
            action: None,
            detail_error_code: None,
            detail_error_des: None,
        }
    }
}

impl<'a> BusinessResponse<'a> for CancelResponse<'a> {
    const SERVICE: Service = Service::Cancel;

    fn for_each_field(&self, sink: &mut FieldSink<'_>) {
        opt(sink, "action", &self.action.map(CancelAction::as_str));
        opt(sink, "detail_error_code", &self.detail_error_code);
        opt(sink, "detail_error_des", &self.detail_error_des);
        opt(sink, "out_trade_no", &self.out_trade_no);
        sink("result_code", &self.result_code.as_str());
        opt(
            sink,
            "retry_flag",
            &self.retry_flag.map(|r| if r { "Y" } else { "N" }),
        );
        opt(sink, "trade_no", &self.trade_no);
    }

    fn from_fields(f: &Fields<'_, 'a>) -> Result<Self> {
        let retry_flag = match f.get("retry_flag").as_deref() {
            None => None,
            Some("Y") => Some(true),
            Some("N") => Some(false),
            Some(_) => return Err(Error::BadEnumValue("retry_flag")),
        };
        let action = f
            .get("action")
            .map(|a| CancelAction::from_wire(&a).ok_or(Error::BadEnumValue("action")))
            .transpose()?;
        Ok(CancelResponse {
            result_code: f.result_code()?,
            out_trade_no: f.get("out_trade_no"),
            trade_no: f.get("trade_no"),
            retry_flag,
            action,
            detail_error_code: f.get("detail_error_code"),
            detail_error_des: f.get("detail_error_des"),
        })
    }
}

/// Answer to a refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundResponse<'a> {
    /// `SUCCESS`, `FAIL` or `UNKNOWN` (UNKNOWN assumed, spec §5.4).
    pub result_code: ResultCode,
    /// The error code on FAIL.
    pub error: Option<Cow<'a, str>>,
    /// The original payment.
    pub partner_trans_id: Option<Cow<'a, str>>,
    /// The refund's id.
    pub partner_refund_id: Option<Cow<'a, str>>,
    /// Alipay's trade number.
    pub alipay_trans_id: Option<Cow<'a, str>>,
    /// The currency.
    pub currency: Option<Currency>,
    /// The refunded amount.
    pub refund_amount: Option<Amount>,
    /// 8 decimals.
    pub exchange_rate: Option<Cow<'a, str>>,
    /// The refund in CNY.
    pub refund_amount_cny: Option<Cow<'a, str>>,
}

impl<'a> RefundResponse<'a> {
    /// A response with only a result code (and error), every other field absent.
    pub fn bare(result_code: ResultCode, error: Option<&'a str>) -> RefundResponse<'a> {
        RefundResponse {
            result_code,
            error: error.map(Cow::Borrowed),
            partner_trans_id: None,
            partner_refund_id: None,
            alipay_trans_id: None,
            currency: None,
            refund_amount: None,
            exchange_rate: None,
            refund_amount_cny: None,
        }
    }
}

impl<'a> BusinessResponse<'a> for RefundResponse<'a> {
    const SERVICE: Service = Service::Refund;

    fn for_each_field(&self, sink: &mut FieldSink<'_>) {
        opt(sink, "alipay_trans_id", &self.alipay_trans_id);
        opt(sink, "currency", &self.currency);
        opt(sink, "error", &self.error);
        opt(sink, "exchange_rate", &self.exchange_rate);
        opt(sink, "partner_refund_id", &self.partner_refund_id);
        opt(sink, "partner_trans_id", &self.partner_trans_id);
        opt(sink, "refund_amount", &self.refund_amount);
        opt(sink, "refund_amount_cny", &self.refund_amount_cny);
        sink("result_code", &self.result_code.as_str());
    }

    fn from_fields(f: &Fields<'_, 'a>) -> Result<Self> {
        let currency = f.currency("currency")?;
        Ok(RefundResponse {
            result_code: f.result_code()?,
            error: f.get("error"),
            partner_trans_id: f.get("partner_trans_id"),
            partner_refund_id: f.get("partner_refund_id"),
            alipay_trans_id: f.get("alipay_trans_id"),
            currency,
            refund_amount: f.amount("refund_amount", currency)?,
            exchange_rate: f.get("exchange_rate"),
            refund_amount_cny: f.get("refund_amount_cny"),
        })
    }
}
