//! Pay (spec §5.1) and query (§5.2): creating a trade, its idempotency by
//! (partner, partner_trans_id), and reading it back.
//!
//! Resubmissions: the fingerprint of a pay is a hash of every request parameter except `sign`,
//! `sign_type`, `notify_url` and `_input_charset` (the last only changes the bytes, not the
//! content). A different fingerprint is `CONTEXT_INCONSISTENT`. An identical one is answered by
//! the `resubmit` policy, because Alipay's real behaviour is undocumented (spec §9): `reject`
//! (paid: FAIL `TRADE_HAS_SUCCESS`, closed: FAIL `TRADE_HAS_CLOSE`, waiting: UNKNOWN) or
//! `replay` (the first answer again, with the trade's current fields).

use std::borrow::Cow;

use alipay::{Currency, PayRequest, PayResponse, QueryResponse, ResultCode, TradeStatus};

use super::{Buyer, Capacity, CloseReason, Event, Ledger, PayInfo, Trade};
use crate::clock::beijing;
use crate::config::Resubmit;
use crate::dials::{PayOutcome, PayPlan};
use crate::money::{self, Rate};

/// The error code of an UNKNOWN pay while the buyer confirms on the phone (assumed: the code
/// Alipay's newer APIs use for "order created, payment in process").
pub const PAY_IN_PROCESS: &str = "ORDER_SUCCESS_PAY_INPROCESS";
/// The error of a pay in a currency without a configured exchange rate.
pub const INVALID_PARAMETER: &str = "INVALID_PARAMETER";
/// The payment institution answered by query.
pub const PAYMENT_INST: &str = "ALIPAYCN";

/// A pay as the ledger needs it: the validated request and what the gateway derived from it.
#[derive(Debug)]
pub struct PayInput<'r, 'f> {
    /// The request.
    pub request: &'r PayRequest<'f>,
    /// The canonical-parameter hash.
    pub fingerprint: u64,
    /// The outcome and trade behaviour decided by the dials.
    pub plan: PayPlan,
}

fn owned(s: &str) -> Option<Cow<'static, str>> {
    Some(Cow::Owned(s.to_owned()))
}

impl Ledger {
    /// Handles a pay at `now_ms`.
    pub fn pay(
        &mut self,
        input: &PayInput<'_, '_>,
        now_ms: i64,
    ) -> Result<PayResponse<'static>, Capacity> {
        let req = input.request;
        let key = (req.partner.to_owned(), req.partner_trans_id.to_owned());
        if let Some(trade) = self.trades.get(&key) {
            return Ok(self.resubmitted(trade, input.fingerprint));
        }
        let currency = req.trans_amount.currency();
        let Some(&rate_to_cny) = self.rules.rates_to_cny.get(&currency) else {
            let mut r = PayResponse::bare(ResultCode::Fail, Some(INVALID_PARAMETER));
            r.partner_trans_id = owned(req.partner_trans_id);
            return Ok(r);
        };
        let forex_rate = req.trans_currency.and_then(|pricing| {
            let pricing_rate = self.rules.rates_to_cny.get(&pricing)?;
            money::cross_rate(*pricing_rate, rate_to_cny)
        });
        let events = match input.plan.outcome {
            PayOutcome::UnknownThenPaid | PayOutcome::UnknownThenClosed => 2,
            PayOutcome::UnknownNeverActs => 1,
            // Paid at once: notified at once, when there is a URL.
            PayOutcome::Paid => usize::from(req.notify_url.is_some()),
            PayOutcome::Fail(_) => 0,
        };
        if !self.has_room(events) {
            return Err(Capacity);
        }
        let first_answer = match input.plan.outcome {
            PayOutcome::Paid => (ResultCode::Success, None),
            PayOutcome::Fail(code) => (ResultCode::Fail, Some(code)),
            _ => (ResultCode::Unknown, Some(PAY_IN_PROCESS)),
        };
        let info = PayInfo {
            fingerprint: input.fingerprint,
            amount: req.trans_amount,
            trans_name: req.trans_name.to_owned(),
            trans_currency: req.trans_currency,
            rate_to_cny,
            forex_rate,
            trans_create_time: req.trans_create_time.compact().to_string(),
            buyer: buyer_of(req.buyer_identity_code.expose()),
            extend_info: req.extend_info.clone(),
            notify_url: req.notify_url.map(str::to_owned),
            first_answer,
        };
        let key = self.insert(req.partner, req.partner_trans_id, now_ms);
        self.start(&key, info, input.plan, now_ms);
        if input.plan.outcome == PayOutcome::Paid {
            self.notify(&key, None, None, now_ms);
        }
        let trade = &self.trades[&key];
        Ok(pay_response(trade, first_answer.0, first_answer.1))
    }

    /// Applies the plan to a freshly inserted trade.
    fn start(&mut self, key: &super::TradeKey, info: PayInfo, plan: PayPlan, now_ms: i64) {
        let timeout_ms = now_ms.saturating_add(self.rules.trade_timeout_ms);
        let resolve_ms = now_ms.saturating_add(self.rules.confirm_delay_ms);
        let mut events = Vec::with_capacity(2);
        let Some(trade) = self.trades.get_mut(key) else {
            return;
        };
        trade.pay = Some(info);
        trade.cancel_faults = plan.cancel_faults.filter(|(_, n)| *n > 0);
        trade.refund_unknown_once = plan.refund_unknown_once;
        match plan.outcome {
            PayOutcome::Paid => {
                trade.status = TradeStatus::TradeSuccess;
                trade.paid_ms = Some(now_ms);
            }
            PayOutcome::Fail(code) => {
                trade.status = TradeStatus::TradeClosed;
                trade.closed_ms = Some(now_ms);
                trade.close_reason = Some(CloseReason::PayFailed(code));
            }
            PayOutcome::UnknownThenPaid | PayOutcome::UnknownThenClosed => {
                let paid = plan.outcome == PayOutcome::UnknownThenPaid;
                events.push((
                    resolve_ms,
                    Event::Resolve {
                        key: key.clone(),
                        paid,
                    },
                ));
                events.push((timeout_ms, Event::Timeout { key: key.clone() }));
            }
            PayOutcome::UnknownNeverActs => {
                events.push((timeout_ms, Event::Timeout { key: key.clone() }));
            }
        }
        for (due, event) in events {
            // Room was checked before the trade was inserted.
            let pushed = self.schedule.push(due, event);
            assert!(
                pushed.is_ok(),
                "the schedule filled up between check and push"
            );
        }
    }

    /// The answer to a pay whose partner_trans_id already exists.
    fn resubmitted(&self, trade: &Trade, fingerprint: u64) -> PayResponse<'static> {
        let fail = |code: &'static str| {
            let mut r = PayResponse::bare(ResultCode::Fail, Some(code));
            r.partner_trans_id = owned(&trade.partner_trans_id);
            r
        };
        let Some(pay) = &trade.pay else {
            return fail("TRADE_HAS_CLOSE"); // closed by a cancel before any pay
        };
        if pay.fingerprint != fingerprint {
            return fail("CONTEXT_INCONSISTENT");
        }
        if self.rules.resubmit == Resubmit::Replay {
            return pay_response(trade, pay.first_answer.0, pay.first_answer.1);
        }
        match trade.status {
            TradeStatus::TradeSuccess | TradeStatus::TradeFinished => fail("TRADE_HAS_SUCCESS"),
            TradeStatus::TradeClosed => fail("TRADE_HAS_CLOSE"),
            TradeStatus::WaitBuyerPay => {
                pay_response(trade, ResultCode::Unknown, Some(PAY_IN_PROCESS))
            }
        }
    }

    /// Handles a query at `now_ms` (the Alipay number wins when both are given).
    pub fn query(
        &self,
        partner: &str,
        partner_trans_id: Option<&str>,
        alipay_trans_id: Option<&str>,
        now_ms: i64,
    ) -> QueryResponse<'static> {
        let Some(trade) = self
            .find_key(partner, alipay_trans_id, partner_trans_id)
            .and_then(|k| self.trades.get(&k))
        else {
            return QueryResponse::bare(ResultCode::Fail, Some("TRADE_NOT_EXIST"));
        };
        let mut r = QueryResponse::bare(ResultCode::Success, None);
        r.alipay_trans_status = Some(trade.status_at(now_ms, &self.rules));
        r.partner_trans_id = owned(&trade.partner_trans_id);
        r.out_trade_no = owned(&trade.partner_trans_id);
        r.alipay_trans_id = owned(&trade.alipay_trans_id);
        let Some(pay) = &trade.pay else {
            return r;
        };
        r.currency = Some(pay.amount.currency());
        r.trans_amount = Some(pay.amount);
        r.payment_inst = owned(PAYMENT_INST);
        if let (Some(pricing), Some(rate)) = (pay.trans_currency, pay.forex_rate) {
            r.trans_currency = owned(pricing.code());
            r.trans_forex_rate = owned(&rate.to_string());
            r.forex_total_fee = forex_amount(pay, pricing, rate);
        }
        if let Some(paid_ms) = trade.paid_ms {
            r.alipay_buyer_login_id = owned(&pay.buyer.login_id);
            r.alipay_buyer_user_id = owned(&pay.buyer.user_id);
            r.alipay_pay_time = Some(beijing(paid_ms));
            r.exchange_rate = owned(&pay.rate_to_cny.to_string());
            r.trans_amount_cny = cny(pay.amount, pay.rate_to_cny);
        }
        r
    }
}

/// The amount in the pricing currency: settlement amount divided by the pricing→settlement rate.
fn forex_amount(pay: &PayInfo, pricing: Currency, rate: Rate) -> Option<Cow<'static, str>> {
    let inverse = money::cross_rate(Rate::ONE, rate)?;
    let a = money::convert(pay.amount, inverse, pricing)?;
    owned(&a.to_string())
}

/// `amount` in CNY as a wire string.
pub fn cny(amount: alipay::Amount, rate: Rate) -> Option<Cow<'static, str>> {
    money::convert(amount, rate, Currency::CNY).map(|a| Cow::Owned(a.to_string()))
}

/// The pay answer for `trade` with the given result: every §5.1 field when paid.
pub fn pay_response(
    trade: &Trade,
    code: ResultCode,
    error: Option<&'static str>,
) -> PayResponse<'static> {
    let mut r = PayResponse::bare(code, error);
    r.partner_trans_id = owned(&trade.partner_trans_id);
    r.alipay_trans_id = owned(&trade.alipay_trans_id);
    let Some(pay) = &trade.pay else {
        return r;
    };
    r.currency = Some(pay.amount.currency());
    r.trans_amount = Some(pay.amount);
    if code == ResultCode::Success {
        if let Some(paid_ms) = trade.paid_ms {
            r.alipay_buyer_login_id = owned(&pay.buyer.login_id);
            r.alipay_buyer_user_id = owned(&pay.buyer.user_id);
            r.alipay_pay_time = Some(beijing(paid_ms));
            r.exchange_rate = owned(&pay.rate_to_cny.to_string());
            r.trans_amount_cny = cny(pay.amount, pay.rate_to_cny);
        }
    }
    r
}

/// FNV-1a, 64 bits: a stable hash (the same in every run and build), for fingerprints and
/// buyer derivation. Not a security boundary.
pub fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff; // separator, so ("ab","c") and ("a","bc") differ
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A stable simulated buyer for a buyer code: the same code is always the same buyer; the code
/// itself is not kept.
pub fn buyer_of(code: &str) -> Buyer {
    let h = fnv1a(&[b"buyer", code.as_bytes()]);
    let prefix = 130 + h % 70; // 130..=199, like Chinese mobile prefixes
    let tail = (h >> 16) % 10_000;
    let user = (h >> 8) % 1_000_000_000_000;
    Buyer {
        login_id: format!("{prefix}****{tail:04}"),
        user_id: format!("2088{user:012}"),
    }
}
