//! The asynchronous result notification, `trade_status_sync` (spec §7, format assumed).
//!
//! Alipay POSTs it as a signed form to the `notify_url` of a request; the receiver verifies it,
//! handles it idempotently (the `notify_id` stays the same across resends) and answers with the
//! exact body [`NOTIFY_ACK`]. The switch sends the same form to its merchants.

use crate::amount::{Amount, Currency};
use crate::charset::Charset;
use crate::error::{Error, Result};
use crate::form::{Form, FormBuilder};
use crate::message::TradeStatus;
use crate::sign::Signer;
use crate::time::BeijingTime;

/// The `notify_type` value.
pub const NOTIFY_TYPE: &str = "trade_status_sync";
/// The body a receiver answers with to stop the resends.
pub const NOTIFY_ACK: &[u8] = b"success";
/// Parameters a notification may carry.
pub const NOTIFY_PARAMS: &[&str] = &[
    "_input_charset",
    "currency",
    "gmt_payment",
    "notify_id",
    "notify_time",
    "notify_type",
    "out_trade_no",
    "partner_refund_id",
    "refund_amount",
    "refund_status",
    "sign",
    "sign_type",
    "total_fee",
    "trade_no",
    "trade_status",
];

/// A `trade_status_sync` notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TradeStatusSync {
    /// When it was sent (`yyyy-MM-dd HH:mm:ss`, GMT+8).
    pub notify_time: BeijingTime,
    /// Stable across resends of the same notification.
    pub notify_id: String,
    /// The merchant's order number (`partner_trans_id`).
    pub out_trade_no: String,
    /// Alipay's trade number.
    pub trade_no: String,
    /// The trade's state.
    pub trade_status: TradeStatus,
    /// The payment amount.
    pub total_fee: Amount,
    /// When it was paid.
    pub gmt_payment: Option<BeijingTime>,
    /// For a refund notification: the refund.
    pub refund: Option<RefundNotice>,
}

/// The refund part of a notification about an asynchronous refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundNotice {
    /// The merchant's refund id.
    pub partner_refund_id: String,
    /// The refunded amount.
    pub refund_amount: Amount,
    /// `REFUND_SUCCESS` or `REFUND_FAIL` (assumed).
    pub refund_status: String,
}

impl TradeStatusSync {
    /// The signed form body.
    pub fn to_form(&self, charset: Charset, signer: &Signer) -> Result<Vec<u8>> {
        let mut b = FormBuilder::new(charset);
        b.push("notify_time", &self.notify_time.dashed().to_string())
            .push("notify_type", NOTIFY_TYPE)
            .push("notify_id", &self.notify_id)
            .push("out_trade_no", &self.out_trade_no)
            .push("trade_no", &self.trade_no)
            .push("trade_status", self.trade_status.as_str())
            .push("total_fee", &self.total_fee.to_string())
            .push("currency", self.total_fee.currency().code());
        if let Some(t) = self.gmt_payment {
            b.push("gmt_payment", &t.dashed().to_string());
        }
        if let Some(r) = &self.refund {
            b.push("partner_refund_id", &r.partner_refund_id)
                .push("refund_amount", &r.refund_amount.to_string())
                .push("refund_status", &r.refund_status);
        }
        b.finish(signer)
    }

    /// Reads a notification form (verify its signature first, with [`Form::verify`]).
    pub fn from_form(form: &Form<'_>) -> Result<TradeStatusSync> {
        for p in form.params() {
            if !NOTIFY_PARAMS.contains(&p.name()) {
                return Err(Error::UnexpectedParameter(p.name().to_owned()));
            }
        }
        let get = |name: &'static str| form.get_nonempty(name).ok_or(Error::MissingField(name));
        if get("notify_type")? != NOTIFY_TYPE {
            return Err(Error::BadEnumValue("notify_type"));
        }
        let currency_text = get("currency")?;
        let currency: Currency = currency_text.parse().map_err(|()| Error::BadCurrency {
            field: "currency",
            value: currency_text.chars().take(16).collect(),
        })?;
        let amount = |name: &'static str| {
            Amount::parse(get(name)?, currency).map_err(|reason| Error::BadAmount {
                field: name,
                reason,
            })
        };
        let gmt_payment = match form.get_nonempty("gmt_payment") {
            Some(t) => Some(BeijingTime::parse_dashed(t).ok_or(Error::BadTime("gmt_payment"))?),
            None => None,
        };
        let refund = match form.get_nonempty("partner_refund_id") {
            Some(id) => Some(RefundNotice {
                partner_refund_id: id.to_owned(),
                refund_amount: amount("refund_amount")?,
                refund_status: get("refund_status")?.to_owned(),
            }),
            None => None,
        };
        Ok(TradeStatusSync {
            notify_time: BeijingTime::parse_dashed(get("notify_time")?)
                .ok_or(Error::BadTime("notify_time"))?,
            notify_id: get("notify_id")?.to_owned(),
            out_trade_no: get("out_trade_no")?.to_owned(),
            trade_no: get("trade_no")?.to_owned(),
            trade_status: TradeStatus::from_wire(get("trade_status")?)
                .ok_or(Error::BadEnumValue("trade_status"))?,
            total_fee: amount("total_fee")?,
            gmt_payment,
            refund,
        })
    }
}
