//! What the client was told: one [`Order`] per pay the generator sent, with every answer it got
//! about that order. The three-way check ([`crate::check`]) holds these against the switch's
//! journal and the simulator's trades; `loadtest run --orders-out FILE` writes them as JSON.

use serde::{Deserialize, Serialize};

/// One answer to one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Answer {
    /// `is_success=T`, `result_code=SUCCESS`. For a query: the trade status it reported.
    Success {
        /// `alipay_trans_status` of a query (`TRADE_SUCCESS`, `TRADE_CLOSED`, ...).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trade_status: Option<String>,
    },
    /// A definite failure (`result_code=FAIL`, or a gateway error such as `ILLEGAL_SIGN`).
    Fail {
        /// The error code.
        error: String,
    },
    /// `result_code=UNKNOWN`: the outcome is not known yet.
    Unknown {
        /// The error code, if any.
        error: String,
    },
    /// No usable answer: transport error, timeout, bad HTTP status, unreadable or badly signed
    /// body, or a send dropped by the generator (`why` says which).
    NoAnswer {
        /// What happened.
        why: String,
    },
}

impl Answer {
    /// True for a success.
    pub fn is_success(&self) -> bool {
        matches!(self, Answer::Success { .. })
    }

    /// The outcome label used in reports: `ok`, `fail:CODE`, `unknown:CODE`, `no_answer:WHY`.
    pub fn label(&self) -> String {
        match self {
            Answer::Success { .. } => "ok".to_owned(),
            Answer::Fail { error } => format!("fail:{error}"),
            Answer::Unknown { error } => format!("unknown:{error}"),
            Answer::NoAnswer { why } => format!("no_answer:{why}"),
        }
    }
}

/// A refund the client asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundTold {
    /// `partner_refund_id`.
    pub partner_refund_id: String,
    /// Amount in minor units (cents).
    pub amount_minor: u64,
    /// What the client was told.
    pub answer: Answer,
}

/// One order: a pay and everything later asked about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// The signing caller (`partner`).
    pub caller: String,
    /// The merchant (`alipay_seller_id`), for an integrator's order; else the caller.
    pub merchant: String,
    /// `partner_trans_id`.
    pub partner_trans_id: String,
    /// The pay's amount in minor units (cents).
    pub amount_minor: u64,
    /// ISO currency.
    pub currency: String,
    /// The buyer code sent (fault codes make the simulator misbehave on purpose).
    pub buyer_code: String,
    /// The pay's answer.
    pub pay: Answer,
    /// Every query's answer, in order.
    #[serde(default)]
    pub queries: Vec<Answer>,
    /// Every cancel's answer, in order.
    #[serde(default)]
    pub cancels: Vec<Answer>,
    /// Every refund, in order.
    #[serde(default)]
    pub refunds: Vec<RefundTold>,
}

impl Order {
    /// Minor units of the refunds the client was told succeeded.
    pub fn refunded_told_minor(&self) -> u64 {
        self.refunds
            .iter()
            .filter(|r| r.answer.is_success())
            .map(|r| r.amount_minor)
            .sum()
    }
}
