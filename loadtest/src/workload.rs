//! Which request comes next, and its signed form.
//!
//! Every send slot of the profile takes the earliest follow-up that is due, else starts a new
//! order with a pay. Follow-ups are planned when a pay is answered, the way cashiers behave:
//!
//! - with chance `mix.query` the pay is queried 0.1–1 s later (every pay answered UNKNOWN or
//!   not answered at all is queried, as a cashier must);
//! - a paid order is refunded with chance `mix.refund`: in one full refund, or in two or three
//!   partial ones that sometimes leave part of the amount, 0.5–3 s apart;
//! - an order not refunded is cancelled with chance `mix.cancel`, 0.2–2 s later.
//!
//! So queries and refunds always name earlier orders, and refunds only paid ones.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use alipay::{Charset, FormBuilder};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::fleet::Fleet;
use crate::report::Mix;

pub use alipay::Service;

/// The fault-injecting buyer codes a `--fault-share` picks from (simulator scenarios): unknown
/// then paid, unknown then closed, a FAIL, SYSTEM_ERROR after paying, 502 with no trade, and
/// cancels answered retry first.
pub const FAULT_CODES: [&str; 6] = ["280001", "280002", "280010", "280020", "280033", "280040"];

/// One order's fixed facts.
#[derive(Debug, Clone)]
pub struct OrderSpec {
    /// Index of the caller in the fleet.
    pub caller: usize,
    /// The merchant it is for.
    pub merchant: String,
    /// `partner_trans_id`.
    pub partner_trans_id: String,
    /// Amount, cents.
    pub amount_minor: u64,
    /// The buyer code.
    pub buyer_code: String,
}

/// What to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpKind {
    /// A new pay (the order was just created).
    Pay,
    /// A query.
    Query,
    /// A cancel.
    Cancel,
    /// A refund.
    Refund {
        /// `partner_refund_id`.
        partner_refund_id: String,
        /// Cents.
        amount_minor: u64,
    },
}

impl OpKind {
    /// Its service.
    pub fn service(&self) -> Service {
        match self {
            OpKind::Pay => Service::Pay,
            OpKind::Query => Service::Query,
            OpKind::Cancel => Service::Cancel,
            OpKind::Refund { .. } => Service::Refund,
        }
    }
}

/// One request to send: which order, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// Index of the order.
    pub order: usize,
    /// What.
    pub kind: OpKind,
}

/// The generator's plan: orders so far, and the follow-ups waiting to be due.
#[derive(Debug)]
pub struct Workload {
    rng: StdRng,
    mix: Mix,
    callers: usize,
    merchants_of: Vec<usize>,
    fault_share: f64,
    prefix: String,
    /// Every order created, by index.
    pub orders: Vec<OrderSpec>,
    due: BinaryHeap<Reverse<(Duration, u64, usize, FollowUp)>>,
    seq: u64,
    fleet_merchants: Vec<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum FollowUp {
    Query,
    Cancel,
    Refund(u32, u64),
}

impl Workload {
    /// A plan over `fleet`; order ids start with `prefix` (unique per run).
    pub fn new(fleet: &Fleet, mix: Mix, fault_share: f64, seed: u64, prefix: &str) -> Workload {
        Workload {
            rng: StdRng::seed_from_u64(seed),
            mix,
            callers: fleet.callers.len(),
            merchants_of: fleet.callers.iter().map(|c| c.merchants.len()).collect(),
            fault_share,
            prefix: prefix.to_owned(),
            orders: Vec::new(),
            due: BinaryHeap::new(),
            seq: 0,
            fleet_merchants: fleet.callers.iter().map(|c| c.merchants.clone()).collect(),
        }
    }

    /// The request for the send slot at `now` (since the start).
    pub fn next(&mut self, now: Duration) -> Op {
        if let Some(Reverse((at, _, _, _))) = self.due.peek() {
            if *at <= now {
                if let Some(Reverse((_, _, order, f))) = self.due.pop() {
                    let kind = match f {
                        FollowUp::Query => OpKind::Query,
                        FollowUp::Cancel => OpKind::Cancel,
                        FollowUp::Refund(n, amount_minor) => OpKind::Refund {
                            partner_refund_id: format!(
                                "{}-r{n}",
                                self.orders
                                    .get(order)
                                    .map(|o| o.partner_trans_id.as_str())
                                    .unwrap_or("")
                            ),
                            amount_minor,
                        },
                    };
                    return Op { order, kind };
                }
            }
        }
        let order = self.new_order();
        Op {
            order,
            kind: OpKind::Pay,
        }
    }

    /// Follow-ups waiting.
    pub fn waiting(&self) -> usize {
        self.due.len()
    }

    fn new_order(&mut self) -> usize {
        let caller = self.rng.gen_range(0..self.callers.max(1));
        let merchants = self.merchants_of.get(caller).copied().unwrap_or(1).max(1);
        let m = self.rng.gen_range(0..merchants);
        let merchant = self
            .fleet_merchants
            .get(caller)
            .and_then(|v| v.get(m))
            .cloned()
            .unwrap_or_default();
        let index = self.orders.len();
        let amount_minor = self.rng.gen_range(100..=50_000);
        let buyer_code = if self.fault_share > 0.0 && self.rng.gen_bool(self.fault_share.min(1.0)) {
            let i = self.rng.gen_range(0..FAULT_CODES.len());
            format!(
                "{}{:012}",
                FAULT_CODES[i],
                self.rng.gen_range(0..1_000_000_000_000_u64)
            )
        } else {
            // 28 then 16 digits, never starting 2800 (the simulator's magic codes).
            format!(
                "28{:02}{:014}",
                self.rng.gen_range(10..100),
                self.rng.gen_range(0..100_000_000_000_000_u64)
            )
        };
        self.orders.push(OrderSpec {
            caller,
            merchant,
            partner_trans_id: format!("{}{index}", self.prefix),
            amount_minor,
            buyer_code,
        });
        index
    }

    fn plan(&mut self, at: Duration, order: usize, f: FollowUp) {
        self.seq += 1;
        self.due.push(Reverse((at, self.seq, order, f)));
    }

    fn after(&mut self, now: Duration, from_ms: u64, to_ms: u64) -> Duration {
        now + Duration::from_millis(self.rng.gen_range(from_ms..=to_ms))
    }

    /// Plans the follow-ups of `order`'s pay, answered at `now`: `paid` when it succeeded,
    /// `undecided` when the answer was UNKNOWN or missing.
    pub fn pay_answered(&mut self, order: usize, now: Duration, paid: bool, undecided: bool) {
        if undecided || self.rng.gen_bool(self.mix.query.clamp(0.0, 1.0)) {
            let at = self.after(now, 100, 1000);
            self.plan(at, order, FollowUp::Query);
        }
        if paid && self.rng.gen_bool(self.mix.refund.clamp(0.0, 1.0)) {
            let amount = self.orders.get(order).map(|o| o.amount_minor).unwrap_or(0);
            let parts = self.refund_parts(amount);
            let mut at = now;
            for (n, part) in parts.into_iter().enumerate() {
                at = self.after(at, 500, 3000);
                let n = u32::try_from(n + 1).unwrap_or(u32::MAX);
                self.plan(at, order, FollowUp::Refund(n, part));
            }
        } else if self.rng.gen_bool(self.mix.cancel.clamp(0.0, 1.0)) {
            let at = self.after(now, 200, 2000);
            self.plan(at, order, FollowUp::Cancel);
        }
    }

    /// One full refund (a third of the time), or two or three partial ones that sometimes leave
    /// part of the amount.
    fn refund_parts(&mut self, amount: u64) -> Vec<u64> {
        let parts = self.rng.gen_range(1..=3_u64);
        if parts == 1 || amount < 10 {
            return vec![amount];
        }
        let refundable = if self.rng.gen_bool(0.5) {
            amount
        } else {
            amount - self.rng.gen_range(1..amount / 2)
        };
        let mut left = refundable;
        let mut out = Vec::new();
        for i in 0..parts {
            let part = if i + 1 == parts {
                left
            } else {
                self.rng.gen_range(1..=left / 2)
            };
            left -= part;
            out.push(part);
        }
        out.retain(|&p| p > 0);
        out
    }
}

/// Cents as `12.34`.
pub fn cents(minor: u64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}

/// The request's parameters (unsigned), in the order a cashier sends them. `now_ms` is the
/// wall clock (Unix ms) for `trans_create_time` and the cancel's `timestamp`.
pub fn params(
    fleet: &Fleet,
    order: &OrderSpec,
    kind: &OpKind,
    now_ms: i64,
) -> Vec<(&'static str, String)> {
    let Some(caller) = fleet.callers.get(order.caller) else {
        return Vec::new();
    };
    let mut p: Vec<(&'static str, String)> = Vec::with_capacity(14);
    // Only a pay names its seller; later requests name the order, which the caller owns.
    match kind {
        OpKind::Pay => {
            p.push(("service", Service::Pay.name().into()));
            p.push(("partner", caller.id.clone()));
            // A pay always names its seller: the merchant, or the account itself when the
            // merchant travels in extend_info.
            let seller = if caller.extend_info {
                &caller.id
            } else {
                &order.merchant
            };
            p.push(("alipay_seller_id", seller.clone()));
            p.push(("partner_trans_id", order.partner_trans_id.clone()));
            p.push(("trans_name", "Noodles and tea".into()));
            p.push(("currency", "USD".into()));
            p.push(("trans_amount", cents(order.amount_minor)));
            p.push(("buyer_identity_code", order.buyer_code.clone()));
            p.push(("identity_code_type", "barcode".into()));
            let created = alipay::BeijingTime::from_unix_ms(now_ms)
                .map(|t| t.compact().to_string())
                .unwrap_or_default();
            p.push(("trans_create_time", created));
            p.push(("biz_product", "OVERSEAS_MBARCODE_PAY".into()));
            if caller.extend_info {
                let store = format!(
                    "ST{}",
                    &order.merchant[order.merchant.len().saturating_sub(4)..]
                );
                p.push((
                    "extend_info",
                    format!(
                        "{{\"secondary_merchant_id\":\"{m}\",\"secondary_merchant_name\":\"Load merchant {m}\",\"secondary_merchant_industry\":\"5812\",\"store_id\":\"{store}\",\"store_name\":\"Store {store}\"}}",
                        m = order.merchant
                    ),
                ));
            }
        }
        OpKind::Query => {
            p.push(("service", Service::Query.name().into()));
            p.push(("partner", caller.id.clone()));
            p.push(("partner_trans_id", order.partner_trans_id.clone()));
        }
        OpKind::Cancel => {
            p.push(("service", Service::Cancel.name().into()));
            p.push(("partner", caller.id.clone()));
            p.push(("out_trade_no", order.partner_trans_id.clone()));
            p.push(("timestamp", now_ms.to_string()));
        }
        OpKind::Refund {
            partner_refund_id,
            amount_minor,
        } => {
            p.push(("service", Service::Refund.name().into()));
            p.push(("partner", caller.id.clone()));
            p.push(("partner_trans_id", order.partner_trans_id.clone()));
            p.push(("partner_refund_id", partner_refund_id.clone()));
            p.push(("refund_amount", cents(*amount_minor)));
            p.push(("currency", "USD".into()));
            p.push(("is_sync", "Y".into()));
        }
    }
    p
}

/// Signs `params` with the order's caller: `(query, body)` for a POST, `_input_charset` in the
/// query as cashier SDKs send it.
pub fn sign(
    fleet: &Fleet,
    order: &OrderSpec,
    params: &[(&'static str, String)],
) -> Result<(String, Vec<u8>), alipay::Error> {
    let mut b = FormBuilder::new(Charset::Utf8);
    for (n, v) in params {
        b.push(n, v);
    }
    match fleet.callers.get(order.caller) {
        Some(c) => b.finish_post(&c.signer),
        None => Err(alipay::Error::MissingField("partner")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::fleet::Caller;

    fn fleet() -> Fleet {
        let c = Caller::new(
            "2088000000000001".into(),
            alipay::SignType::Md5,
            "k".repeat(32),
            None,
            None,
            vec!["2088000000000001".into()],
            false,
        )
        .unwrap();
        Fleet { callers: vec![c] }
    }

    const MIX: Mix = Mix {
        query: 0.5,
        refund: 0.5,
        cancel: 0.5,
    };

    #[test]
    fn follow_ups_come_when_due_and_name_earlier_orders() {
        let mut w = Workload::new(&fleet(), MIX, 0.0, 7, "lt-");
        let first = w.next(Duration::ZERO);
        assert_eq!(first.kind, OpKind::Pay);
        w.pay_answered(first.order, Duration::ZERO, true, false);
        // Nothing is due at once: the next slot is a new pay.
        assert_eq!(w.next(Duration::ZERO).kind, OpKind::Pay);
        let mut later = Vec::new();
        for s in 1..20 {
            let op = w.next(Duration::from_secs(s * 10));
            if op.kind != OpKind::Pay {
                later.push(op);
            }
        }
        assert!(!later.is_empty());
        assert!(later.iter().all(|op| op.order == first.order));
    }

    #[test]
    fn refunds_never_exceed_the_amount_and_are_positive() {
        let mut w = Workload::new(&fleet(), MIX, 0.0, 1, "lt-");
        for amount in [10, 11, 99, 100, 12_345, 50_000] {
            for _ in 0..200 {
                let parts = w.refund_parts(amount);
                assert!(!parts.is_empty());
                assert!(parts.iter().all(|&p| p > 0));
                assert!(parts.iter().sum::<u64>() <= amount, "{parts:?} of {amount}");
            }
        }
    }

    #[test]
    fn an_undecided_pay_is_always_queried() {
        let mix = Mix {
            query: 0.0,
            refund: 0.0,
            cancel: 0.0,
        };
        let mut w = Workload::new(&fleet(), mix, 0.0, 3, "lt-");
        let op = w.next(Duration::ZERO);
        w.pay_answered(op.order, Duration::ZERO, false, true);
        assert_eq!(w.next(Duration::from_secs(5)).kind, OpKind::Query);
    }

    #[test]
    fn every_request_is_a_valid_signed_alipay_request() {
        let mut integrator = fleet();
        integrator.callers[0].merchants = vec!["2088000000000002".into()];
        for fleet in [fleet(), integrator] {
            valid_requests(&fleet);
        }
    }

    fn valid_requests(fleet: &Fleet) {
        let fleet = fleet.clone();
        let mut w = Workload::new(&fleet, MIX, 0.0, 3, "lt-");
        let op = w.next(Duration::ZERO);
        let spec = w.orders[op.order].clone();
        let verifier = fleet.callers[0].signer.verifier().unwrap();
        for kind in [
            OpKind::Pay,
            OpKind::Query,
            OpKind::Cancel,
            OpKind::Refund {
                partner_refund_id: "lt-0-r1".into(),
                amount_minor: 1,
            },
        ] {
            let p = params(&fleet, &spec, &kind, 1_795_000_000_000);
            let (query, body) = sign(&fleet, &spec, &p).unwrap();
            let form = alipay::Form::parse(query.as_bytes(), &body, &alipay::FormLimits::default())
                .unwrap();
            form.verify(&verifier, &mut Vec::new()).unwrap();
            let req = alipay::Request::from_form_with(&form, alipay::SellerRule::AnyPartnerId)
                .unwrap_or_else(|e| panic!("{kind:?}: {e}: {}", String::from_utf8_lossy(&body)));
            assert_eq!(req.service(), kind.service());
        }
    }

    #[test]
    fn buyer_codes_are_ordinary_unless_faults_are_asked_for() {
        let mut w = Workload::new(&fleet(), MIX, 0.0, 3, "lt-");
        for _ in 0..500 {
            let op = w.next(Duration::ZERO);
            let code = &w.orders[op.order].buyer_code;
            assert_eq!(code.len(), 18);
            assert!(
                code.starts_with("28") && !code.starts_with("2800"),
                "{code}"
            );
        }
        let mut w = Workload::new(&fleet(), MIX, 1.0, 3, "lt-");
        let op = w.next(Duration::ZERO);
        assert!(w.orders[op.order].buyer_code.starts_with("2800"));
    }
}
