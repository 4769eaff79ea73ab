//! Interop with the simulator's reconciliation files: the simulator's own ledger (`alipay-sim`,
//! a dev-dependency only) plays a day of trades; its `files` functions write Alipay's files;
//! the journal records the same day as the switch would; our parser must read the simulator's
//! file, and our `alipay-transactions` and `alipay-settlement` exports of the journal must be
//! the same text, byte for byte.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use alipay::{
    Amount, BeijingTime, CancelAction as SimCancelAction, Currency, IdentityCodeType, PayRequest,
    RefundRequest, ResultCode, Secret,
};
use alipay_sim::config::{Resubmit, Rules};
use alipay_sim::dials::{PayOutcome, PayPlan};
use alipay_sim::ledger::pay::PayInput;
use alipay_sim::ledger::{Ledger, Trade};
use ledger::finance::alipay_file::parse_transactions;
use ledger::finance::amount::Rate;
use ledger::finance::export::{export, ExportFormat};
use ledger::finance::pricing::Pricing;
use ledger::finance::rows::{rows_of_events, RowType};
use ledger::finance::time::{parse_beijing, parse_day};
use ledger::{CancelAction, Event, EventBody, Money, Outcome, RefundKey, TradeStatus, TxnKey};

const P: &str = "2088101122136241";
const FEE_BPS: u32 = 180;
const MIN: i64 = 60_000;

fn bj(text: &str) -> i64 {
    parse_beijing(text).unwrap()
}

fn rules() -> Rules {
    let mut rates_to_cny = BTreeMap::new();
    rates_to_cny.insert(Currency::USD, Rate::parse("7.10650000").unwrap());
    rates_to_cny.insert(Currency::JPY, Rate::parse("0.04700000").unwrap());
    Rules {
        trade_timeout_ms: 3 * MIN,
        cancel_grace_ms: 15 * MIN,
        refund_period_ms: 90 * 24 * 60 * MIN,
        confirm_delay_ms: 10_000,
        async_refund_delay_ms: 5_000,
        resubmit: Resubmit::Reject,
        trades_max: 100,
        scheduled_events_max: 100,
        refunds_per_trade_max: 100,
        rates_to_cny,
    }
}

/// The simulator and the journal, driven together as the switch would drive them.
struct Day {
    sim: Ledger,
    events: Vec<Event>,
}

impl Day {
    fn event(&mut self, txn: &TxnKey, at_ms: i64, body: EventBody) {
        let seq = u64::try_from(self.events.len()).unwrap() + 1;
        self.events.push(Event {
            seq,
            prev_hash: [0; 32],
            at_ms,
            txn: txn.clone(),
            body,
        });
    }

    /// The merchant's order `order` is sent upstream as `upstream`.
    fn pay(
        &mut self,
        order: &str,
        upstream: &str,
        amount: Amount,
        outcome: PayOutcome,
        at: i64,
    ) -> TxnKey {
        let txn = TxnKey::new("M1", order);
        let currency: [u8; 3] = amount.currency().code().as_bytes().try_into().unwrap();
        let money = Money::new(amount.minor(), currency);
        self.event(
            &txn,
            at - 100,
            EventBody::PayReceived {
                upstream_partner: P.into(),
                upstream_trans_id: upstream.into(),
                fingerprint: [1; 32],
                amount: money,
                trans_create_time: "20260102000000".into(),
                secondary_merchant_id: None,
                store_id: None,
                notify_url: None,
            },
        );
        self.event(
            &txn,
            at - 50,
            EventBody::PaySent {
                attempt: 1,
                endpoint: "primary".into(),
            },
        );
        let request = PayRequest {
            partner: P,
            partner_trans_id: upstream,
            trans_name: "coffee",
            trans_amount: amount,
            buyer_identity_code: Secret::new("286648812345678901"),
            identity_code_type: IdentityCodeType::Barcode,
            trans_create_time: BeijingTime::parse_compact("20260102000000").unwrap(),
            extend_info: None,
            trans_currency: None,
            quantity: None,
            memo: None,
            trade_information: None,
            notify_url: None,
        };
        let plan = PayPlan {
            outcome,
            ..PayPlan::PAID
        };
        let input = PayInput {
            request: &request,
            fingerprint: 1,
            plan,
        };
        let r = self.sim.pay(&input, at).unwrap();
        let result = match r.result_code {
            ResultCode::Success => Outcome::Success,
            ResultCode::Fail => Outcome::Fail,
            _ => Outcome::Unknown,
        };
        self.event(
            &txn,
            at,
            EventBody::PayOutcome {
                result,
                alipay_trans_id: r.alipay_trans_id.map(|c| c.into_owned()),
                amount: None,
                paid_at_ms: r.alipay_pay_time.map(|t| t.unix_ms()),
                fee: None,
                error_code: None,
            },
        );
        txn
    }

    fn query(&mut self, txn: &TxnKey, upstream: &str, at: i64) {
        let q = self.sim.query(P, Some(upstream), None, at);
        let status = match q.alipay_trans_status {
            Some(alipay::TradeStatus::WaitBuyerPay) => TradeStatus::WaitBuyerPay,
            Some(alipay::TradeStatus::TradeSuccess) => TradeStatus::TradeSuccess,
            Some(alipay::TradeStatus::TradeClosed) => TradeStatus::TradeClosed,
            Some(alipay::TradeStatus::TradeFinished) => TradeStatus::TradeFinished,
            None => TradeStatus::NotExist,
        };
        self.event(
            txn,
            at,
            EventBody::QueryResult {
                status,
                alipay_trans_id: q.alipay_trans_id.map(|c| c.into_owned()),
                paid_at_ms: None,
                amount: None,
                fee: None,
            },
        );
    }

    fn cancel(&mut self, txn: &TxnKey, upstream: &str, at: i64) {
        self.event(txn, at - 10, EventBody::CancelAttempt { attempt: 1 });
        let r = self.sim.cancel(P, Some(upstream), None, None, at).unwrap();
        assert_eq!(r.result_code, ResultCode::Success);
        let action = match r.action {
            Some(SimCancelAction::Close) => CancelAction::Close,
            Some(SimCancelAction::Refund) => CancelAction::Refund,
            None => panic!("a successful cancel names its action"),
        };
        self.event(
            txn,
            at,
            EventBody::CancelResult {
                result: Outcome::Success,
                action: Some(action),
                retry: false,
                error_code: None,
            },
        );
    }

    fn refund(
        &mut self,
        txn: &TxnKey,
        upstream: &str,
        id: &str,
        amount: Amount,
        reason: Option<&str>,
        at: i64,
    ) {
        let key = RefundKey::new("M1", format!("m-{id}"));
        let currency: [u8; 3] = amount.currency().code().as_bytes().try_into().unwrap();
        self.event(
            txn,
            at - 10,
            EventBody::RefundIntent {
                refund: key.clone(),
                upstream_refund_id: id.into(),
                amount: Money::new(amount.minor(), currency),
                fingerprint: [2; 32],
                reason: reason.map(Into::into),
            },
        );
        let request = RefundRequest {
            partner: P,
            partner_trans_id: upstream,
            alipay_trans_id: None,
            partner_refund_id: id,
            refund_amount: amount,
            refund_reason: reason,
            is_sync: true,
            notify_url: None,
        };
        let r = self.sim.refund(&request, at).unwrap();
        assert_eq!(r.result_code, ResultCode::Success);
        self.event(
            txn,
            at,
            EventBody::RefundResult {
                refund: key,
                result: Outcome::Success,
                fee: None,
                error_code: None,
            },
        );
    }
}

fn usd(minor: u64) -> Amount {
    Amount::from_minor(minor, Currency::USD)
}

/// A day of trades: payments, a reversal, a closing cancel, refunds whose fees round.
fn play() -> Day {
    let mut d = Day {
        sim: Ledger::new(rules()),
        events: Vec::new(),
    };
    let t1 = d.pay(
        "o-1",
        "SW-1",
        usd(10_000),
        PayOutcome::Paid,
        bj("2026-01-02 10:00:05"),
    );
    let t2 = d.pay(
        "o-2",
        "SW-2",
        usd(1_000),
        PayOutcome::Paid,
        bj("2026-01-02 11:00:00"),
    );
    d.cancel(&t2, "SW-2", bj("2026-01-02 11:00:30"));
    let t3 = d.pay(
        "o-3",
        "SW-3",
        usd(500),
        PayOutcome::UnknownNeverActs,
        bj("2026-01-02 11:29:05"),
    );
    d.query(&t3, "SW-3", bj("2026-01-02 11:29:10"));
    d.cancel(&t3, "SW-3", bj("2026-01-02 11:30:00"));
    d.refund(
        &t1,
        "SW-1",
        "SWR-1",
        usd(2_500),
        Some("damaged"),
        bj("2026-01-02 12:00:00"),
    );
    // 0.84 is charged 0.02; three refunds of 0.28 return 0.01, 0.00, 0.01.
    let t4 = d.pay(
        "o-4",
        "SW-4",
        usd(84),
        PayOutcome::Paid,
        bj("2026-01-02 13:00:00"),
    );
    for (i, at) in ["13:10:00", "13:20:00", "13:30:00"].iter().enumerate() {
        let id = format!("SWR-4{i}");
        d.refund(
            &t4,
            "SW-4",
            &id,
            usd(28),
            None,
            bj(&format!("2026-01-02 {at}")),
        );
    }
    let jpy = Amount::from_minor(1_000, Currency::JPY);
    d.pay(
        "o-5",
        "SW-5",
        jpy,
        PayOutcome::Paid,
        bj("2026-01-02 14:00:00"),
    );
    // Tomorrow's pay is not in today's files.
    d.pay(
        "o-6",
        "SW-6",
        usd(700),
        PayOutcome::Paid,
        bj("2026-01-03 00:00:00"),
    );
    d
}

fn pricing() -> Pricing {
    Pricing::new()
        .with_fee_rate(P, FEE_BPS)
        .unwrap()
        .with_rate(*b"USD", Rate::parse("7.10650000").unwrap())
        .with_rate(*b"JPY", Rate::parse("0.04700000").unwrap())
}

#[test]
fn the_simulators_transaction_file_parses_and_equals_our_export() {
    let d = play();
    let trades: Vec<&Trade> = d.sim.trades_after(0).collect();
    let sim_day = alipay::BeijingDay::parse("2026-01-02").unwrap();
    let theirs = alipay_sim::files::transactions_file(P, sim_day, FEE_BPS, &trades);
    let parsed = parse_transactions(theirs.as_bytes()).unwrap();
    assert_eq!(parsed.partner, P);
    let types: Vec<RowType> = parsed.rows.iter().map(|r| r.row_type).collect();
    use RowType::*;
    assert_eq!(
        types,
        [Payment, Payment, Reversal, Cancel, Refund, Payment, Refund, Refund, Refund, Payment]
    );
    let charges: Vec<u64> = parsed.rows.iter().map(|r| r.charge.minor).collect();
    assert_eq!(charges, [180, 18, 18, 0, 45, 2, 1, 0, 1, 18]);

    let rows = rows_of_events(&d.events, &pricing()).unwrap();
    let day = parse_day("2026-01-02").unwrap();
    let ours = export(ExportFormat::AlipayTransactions, day, &rows, &pricing());
    assert_eq!(ours.len(), 1);
    assert_eq!(
        ours[0].name,
        alipay_sim::files::transactions_file_name(P, sim_day)
    );
    assert_eq!(ours[0].contents, theirs);
    assert_eq!(
        parse_transactions(ours[0].contents.as_bytes()).unwrap(),
        parsed
    );
}

#[test]
fn our_settlement_export_equals_the_simulators_settlement_file() {
    let d = play();
    let trades: Vec<&Trade> = d.sim.trades_after(0).collect();
    let sim_day = alipay::BeijingDay::parse("2026-01-02").unwrap();
    let theirs = alipay_sim::files::settlement_file(sim_day, FEE_BPS, &trades);
    let rows = rows_of_events(&d.events, &pricing()).unwrap();
    let day = parse_day("2026-01-02").unwrap();
    let ours = export(ExportFormat::AlipaySettlement, day, &rows, &pricing());
    assert_eq!(
        ours[0].name,
        alipay_sim::files::settlement_file_name(P, sim_day)
    );
    assert_eq!(ours[0].contents, theirs);
}
