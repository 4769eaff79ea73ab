//! The journal's records: what happened to a transaction, as typed values.
//!
//! The journal stores its own types rather than the wire crate's (`ledger` depends on neither
//! `alipay` nor `switch`), so a change in how Alipay spells a field never changes what is on disk.
//! Every record here is `serde`-encoded with postcard behind a one-byte format version
//! ([`crate::codec`]); a field is only ever added by a new format version with a decoder for the
//! old one, never by changing a type in place. Money is integer minor units with its ISO
//! currency code; times are UTC milliseconds passed in by the caller (the journal never reads the
//! clock for a record).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest merchant id, `partner_trans_id`, partner or refund id the journal accepts in a key,
/// in bytes. Alipay's own ids are at most 64 characters; the margin is for SI-prefixed ids.
pub const KEY_FIELD_BYTES_MAX: usize = 256;

/// Longest free-text field in an event (URLs, error codes, reasons, operator notes), in bytes.
/// Keeps one transaction's snapshot bounded: see [`crate::state::REFUNDS_PER_TXN_MAX`].
pub const FIELD_BYTES_MAX: usize = 1024;

/// A SHA-256 digest: fingerprints of request parameters and links of the hash chain.
pub type Hash = [u8; 32];

/// An amount of money: integer minor units (cents; yen for zero-decimal currencies) of one
/// ISO 4217 currency. No floats anywhere; arithmetic on amounts is checked by the callers
/// ([`crate::state::TxnState::apply`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    /// Minor units.
    pub minor: u64,
    /// ISO 4217 code as upper-case ASCII bytes, e.g. `*b"USD"`.
    pub currency: [u8; 3],
}

impl Money {
    /// `minor` units of `currency`.
    pub const fn new(minor: u64, currency: [u8; 3]) -> Money {
        Money { minor, currency }
    }

    /// The currency code as text (`"???"` if the bytes are not ASCII, which a valid record never
    /// has; kept total so `Display` cannot fail).
    pub fn currency_code(&self) -> &str {
        std::str::from_utf8(&self.currency).unwrap_or("???")
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} minor {}", self.minor, self.currency_code())
    }
}

/// The idempotency key of a payment: the merchant and its order number. One key is one
/// transaction for ever (INV-2).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TxnKey {
    /// The merchant's id in the switch (its partner id towards the switch).
    pub merchant: String,
    /// The merchant's order number, `partner_trans_id` in MAPI.
    pub partner_trans_id: String,
}

impl TxnKey {
    /// A key from its two parts.
    pub fn new(merchant: impl Into<String>, partner_trans_id: impl Into<String>) -> TxnKey {
        TxnKey {
            merchant: merchant.into(),
            partner_trans_id: partner_trans_id.into(),
        }
    }
}

/// The idempotency key of a refund: the merchant and its `partner_refund_id`. Each applies at
/// most once (INV-5).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RefundKey {
    /// The merchant's id in the switch; always the merchant of the refunded transaction.
    pub merchant: String,
    /// The merchant's refund number, `partner_refund_id` in MAPI.
    pub partner_refund_id: String,
}

impl RefundKey {
    /// A key from its two parts.
    pub fn new(merchant: impl Into<String>, partner_refund_id: impl Into<String>) -> RefundKey {
        RefundKey {
            merchant: merchant.into(),
            partner_refund_id: partner_refund_id.into(),
        }
    }
}

/// How a call to Alipay ended, as far as the switch can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Outcome {
    /// Alipay answered and the operation took effect.
    Success,
    /// Alipay answered and the operation did not take effect (definite).
    Fail,
    /// No definite answer: the request may or may not have taken effect.
    Unknown,
}

/// A trade's status as Alipay reports it to a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TradeStatus {
    /// Created, the buyer has not paid (yet).
    WaitBuyerPay,
    /// Paid; refunds are still possible.
    TradeSuccess,
    /// Closed unpaid, or fully refunded.
    TradeClosed,
    /// Paid and no longer refundable.
    TradeFinished,
    /// Alipay has no trade with this id.
    NotExist,
}

/// What a successful cancel did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CancelAction {
    /// The trade was unpaid and is now closed.
    Close,
    /// The trade was paid and the whole payment went back to the buyer.
    Refund,
}

/// How one attempt to notify the merchant's `notify_url` ended.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NotifyResult {
    /// The merchant answered `success`.
    Delivered,
    /// Anything else; the text says what (status, timeout, body), never a secret.
    Failed(String),
}

/// One thing that happened to one transaction. The journal assigns `seq` and `prev_hash` when
/// it appends; callers submit [`Draft`]s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the journal, from 1, without gaps.
    pub seq: u64,
    /// Hash of the event at `seq - 1` (all zeros for seq 1); see [`crate::chain`].
    pub prev_hash: Hash,
    /// When it happened, UTC milliseconds, as the switch saw it.
    pub at_ms: i64,
    /// The transaction it happened to.
    pub txn: TxnKey,
    /// What happened.
    pub body: EventBody,
}

/// An event as a caller submits it: the journal adds `seq`, `prev_hash` and the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Draft {
    /// When it happened, UTC milliseconds.
    pub at_ms: i64,
    /// What happened.
    pub body: EventBody,
}

impl Draft {
    /// A draft from its parts.
    pub fn new(at_ms: i64, body: EventBody) -> Draft {
        Draft { at_ms, body }
    }
}

/// Everything that can happen in a transaction's life, from the merchant's request to the
/// last notification. Each variant is what the switch knew at that moment; the state it leads
/// to is [`crate::state::TxnState::apply`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventBody {
    /// The merchant's pay request, journaled before anything is sent upstream (INV-3).
    PayReceived {
        /// The partner account the trade is sent under.
        upstream_partner: String,
        /// The id the switch assigns upstream: unique in that account, stable across retries.
        upstream_trans_id: String,
        /// Hash of the request's canonical parameters (idempotency check).
        fingerprint: Hash,
        /// The amount asked for.
        amount: Money,
        /// The merchant's `trans_create_time`, as sent.
        trans_create_time: String,
        /// Secondary merchant, when sent under the acquirer's account.
        secondary_merchant_id: Option<String>,
        /// The merchant's store id, if any.
        store_id: Option<String>,
        /// Where to notify the merchant of the result, if anywhere.
        notify_url: Option<String>,
    },
    /// A pay request is about to be written to an upstream endpoint.
    PaySent {
        /// 1 for the first send; a failover before the request was written adds one.
        attempt: u32,
        /// Which endpoint (a name from the configuration, not a secret).
        endpoint: String,
    },
    /// What the pay call returned.
    PayOutcome {
        /// Success and Fail are final; Unknown goes to the resolver.
        result: Outcome,
        /// Alipay's trade number, when it gave one.
        alipay_trans_id: Option<String>,
        /// The amount Alipay says was paid (defaults to the amount asked for).
        amount: Option<Money>,
        /// When Alipay says it was paid.
        paid_at_ms: Option<i64>,
        /// Alipay's fee, if reported.
        fee: Option<Money>,
        /// Alipay's error code on Fail or Unknown.
        error_code: Option<String>,
    },
    /// What a query to Alipay answered.
    QueryResult {
        /// The trade's status at Alipay.
        status: TradeStatus,
        /// Alipay's trade number, when it gave one.
        alipay_trans_id: Option<String>,
        /// When Alipay says it was paid.
        paid_at_ms: Option<i64>,
        /// The amount Alipay says was paid.
        amount: Option<Money>,
        /// Alipay's fee, if reported.
        fee: Option<Money>,
    },
    /// A cancel request is about to be sent.
    CancelAttempt {
        /// 1 for the first cancel.
        attempt: u32,
    },
    /// What the cancel call returned.
    CancelResult {
        /// Success is final; Fail with `retry` means send again later.
        result: Outcome,
        /// What the cancel did, on Success.
        action: Option<CancelAction>,
        /// Alipay's `retry_flag`: the cancel may be retried.
        retry: bool,
        /// Alipay's error code on Fail or Unknown.
        error_code: Option<String>,
    },
    /// A refund request, journaled before it is sent; it reserves `amount` of the paid amount
    /// until its result releases (Fail) or consumes (Success) the reservation (INV-5).
    RefundIntent {
        /// The merchant's refund key.
        refund: RefundKey,
        /// The refund id the switch assigns upstream, stable across retries.
        upstream_refund_id: String,
        /// The amount to refund.
        amount: Money,
        /// Hash of the refund request's canonical parameters.
        fingerprint: Hash,
        /// The merchant's reason, if any.
        reason: Option<String>,
    },
    /// What the refund call returned.
    RefundResult {
        /// The refund this answers.
        refund: RefundKey,
        /// Success consumes the reservation, Fail releases it, Unknown keeps it.
        result: Outcome,
        /// Fee returned with the refund, if reported.
        fee: Option<Money>,
        /// Alipay's error code on Fail or Unknown.
        error_code: Option<String>,
    },
    /// One attempt to notify the merchant.
    NotifyAttempt {
        /// 1 for the first attempt.
        attempt: u32,
        /// The URL posted to.
        url: String,
        /// How it ended.
        result: NotifyResult,
    },
    /// An operator did something by hand; recorded, changes no money.
    OperatorAction {
        /// Who (operator id).
        who: String,
        /// Why (ticket, reason).
        why: String,
        /// What.
        action: String,
    },
    /// The merchant is owed a notification: the transaction reached a final state (or a refund
    /// its result) that the merchant was not told in the answer to its own request. Journaled in
    /// the same append as the event that made it so; cleared by a delivered [`EventBody::NotifyAttempt`].
    NotifyDue {
        /// The refund the notification is about (`None`: the trade's own status).
        refund: Option<RefundKey>,
    },
    /// The resolver or the notifier gave up on this transaction: it stays in the `pending` table
    /// and in the exceptions list until an operator acts ([`EventBody::OperatorAction`] clears
    /// it and the work starts again).
    Exception {
        /// What was given up, and why.
        reason: String,
    },
}

impl EventBody {
    /// The variant's name, for errors and metrics (a small closed set).
    pub fn kind(&self) -> &'static str {
        match self {
            EventBody::PayReceived { .. } => "PayReceived",
            EventBody::PaySent { .. } => "PaySent",
            EventBody::PayOutcome { .. } => "PayOutcome",
            EventBody::QueryResult { .. } => "QueryResult",
            EventBody::CancelAttempt { .. } => "CancelAttempt",
            EventBody::CancelResult { .. } => "CancelResult",
            EventBody::RefundIntent { .. } => "RefundIntent",
            EventBody::RefundResult { .. } => "RefundResult",
            EventBody::NotifyAttempt { .. } => "NotifyAttempt",
            EventBody::OperatorAction { .. } => "OperatorAction",
            EventBody::NotifyDue { .. } => "NotifyDue",
            EventBody::Exception { .. } => "Exception",
        }
    }

    /// Every free-text field of the body, with its name, for the length limits.
    pub(crate) fn text_fields(&self) -> Vec<(&'static str, &str)> {
        let mut out: Vec<(&'static str, &str)> = Vec::new();
        fn opt<'a>(
            out: &mut Vec<(&'static str, &'a str)>,
            name: &'static str,
            v: &'a Option<String>,
        ) {
            if let Some(s) = v {
                out.push((name, s.as_str()));
            }
        }
        match self {
            EventBody::PayReceived {
                secondary_merchant_id,
                store_id,
                notify_url,
                ..
            } => {
                opt(&mut out, "secondary_merchant_id", secondary_merchant_id);
                opt(&mut out, "store_id", store_id);
                opt(&mut out, "notify_url", notify_url);
            }
            EventBody::PayOutcome {
                alipay_trans_id,
                error_code,
                ..
            } => {
                opt(&mut out, "alipay_trans_id", alipay_trans_id);
                opt(&mut out, "error_code", error_code);
            }
            EventBody::QueryResult {
                alipay_trans_id, ..
            } => opt(&mut out, "alipay_trans_id", alipay_trans_id),
            EventBody::CancelResult { error_code, .. } => opt(&mut out, "error_code", error_code),
            EventBody::RefundIntent { reason, .. } => opt(&mut out, "reason", reason),
            EventBody::RefundResult { error_code, .. } => opt(&mut out, "error_code", error_code),
            EventBody::NotifyAttempt {
                result: NotifyResult::Failed(text),
                ..
            } => out.push(("notify_error", text.as_str())),
            _ => {}
        }
        self.push_plain_fields(&mut out);
        out
    }

    fn push_plain_fields<'a>(&'a self, out: &mut Vec<(&'static str, &'a str)>) {
        match self {
            EventBody::PayReceived {
                upstream_partner,
                upstream_trans_id,
                trans_create_time,
                ..
            } => {
                out.push(("upstream_partner", upstream_partner));
                out.push(("upstream_trans_id", upstream_trans_id));
                out.push(("trans_create_time", trans_create_time));
            }
            EventBody::PaySent { endpoint, .. } => out.push(("endpoint", endpoint)),
            EventBody::RefundIntent {
                upstream_refund_id, ..
            } => out.push(("upstream_refund_id", upstream_refund_id)),
            EventBody::NotifyAttempt { url, .. } => out.push(("url", url)),
            EventBody::OperatorAction { who, why, action } => {
                out.push(("who", who));
                out.push(("why", why));
                out.push(("action", action));
            }
            EventBody::Exception { reason } => out.push(("reason", reason)),
            _ => {}
        }
    }

    /// The refund key this event is about, if any.
    pub fn refund_key(&self) -> Option<&RefundKey> {
        match self {
            EventBody::RefundIntent { refund, .. }
            | EventBody::RefundResult { refund, .. }
            | EventBody::NotifyDue {
                refund: Some(refund),
            } => Some(refund),
            _ => None,
        }
    }
}
