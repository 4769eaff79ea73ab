//! Unit tests of the pure ledger: every rule, in simulated time, without I/O.

use std::collections::BTreeMap;

use alipay::{
    Amount, BeijingTime, CancelAction, Currency, IdentityCodeType, PayRequest, RefundRequest,
    ResultCode, Secret, TradeStatus,
};

use super::cancel::{in_cancel_window, CANCEL_EXPIRED, CANCEL_FINISHED};
use super::pay::PayInput;
use super::*;
use crate::config::{Resubmit, Rules};
use crate::dials::{CancelFaultMode, PayOutcome, PayPlan};
use crate::money::Rate;

const P: &str = "2088101122136241";
/// 2026-01-01 23:50:00 Beijing.
const T0: i64 = 1_767_282_600_000;
const MIN: i64 = 60_000;

fn rules() -> Rules {
    let mut rates_to_cny = BTreeMap::new();
    rates_to_cny.insert(Currency::USD, Rate::parse("7.10650000").unwrap());
    rates_to_cny.insert(Currency::HKD, Rate::parse("0.91200000").unwrap());
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

fn req<'a>(id: &'a str, minor: u64, notify: Option<&'a str>) -> PayRequest<'a> {
    PayRequest {
        partner: P,
        partner_trans_id: id,
        trans_name: "coffee",
        trans_amount: Amount::from_minor(minor, Currency::USD),
        buyer_identity_code: Secret::new("286648812345678901"),
        identity_code_type: IdentityCodeType::Barcode,
        trans_create_time: BeijingTime::parse_compact("20260101235000").unwrap(),
        extend_info: None,
        trans_currency: None,
        quantity: None,
        memo: None,
        trade_information: None,
        notify_url: notify,
    }
}

fn pay(
    l: &mut Ledger,
    r: &PayRequest<'_>,
    outcome: PayOutcome,
    fp: u64,
    now: i64,
) -> alipay::PayResponse<'static> {
    let plan = PayPlan {
        outcome,
        ..PayPlan::PAID
    };
    let input = PayInput {
        request: r,
        fingerprint: fp,
        plan,
    };
    l.pay(&input, now).unwrap()
}

fn refund_req<'a>(id: &'a str, refund_id: &'a str, minor: u64, sync: bool) -> RefundRequest<'a> {
    RefundRequest {
        partner: P,
        partner_trans_id: id,
        alipay_trans_id: None,
        partner_refund_id: refund_id,
        refund_amount: Amount::from_minor(minor, Currency::USD),
        refund_reason: None,
        is_sync: sync,
        notify_url: None,
    }
}

fn status(l: &Ledger, id: &str, now: i64) -> Option<TradeStatus> {
    l.query(P, Some(id), None, now).alipay_trans_status
}

fn err<'a>(e: &'a Option<std::borrow::Cow<'static, str>>) -> &'a str {
    e.as_deref().unwrap_or("")
}

#[test]
fn a_successful_pay_answers_every_field_and_query_agrees() {
    let mut l = Ledger::new(rules());
    let r = pay(&mut l, &req("T1", 1_234, None), PayOutcome::Paid, 1, T0);
    assert_eq!(r.result_code, ResultCode::Success);
    let id = r.alipay_trans_id.clone().unwrap();
    assert_eq!(id, "2026010100000000000000000001");
    let login = r.alipay_buyer_login_id.clone().unwrap();
    assert!(login.len() == 11 && &login[3..7] == "****", "{login}");
    assert!(r
        .alipay_buyer_user_id
        .as_deref()
        .unwrap()
        .starts_with("2088"));
    assert_eq!(
        r.alipay_pay_time.unwrap().compact().to_string(),
        "20260101235000"
    );
    assert_eq!(r.exchange_rate.as_deref(), Some("7.10650000"));
    assert_eq!(r.trans_amount_cny.as_deref(), Some("87.69"));
    let q = l.query(P, Some("T1"), None, T0 + 1);
    assert_eq!(q.alipay_trans_status, Some(TradeStatus::TradeSuccess));
    assert_eq!(q.out_trade_no.as_deref(), Some("T1"));
    assert_eq!(q.payment_inst.as_deref(), Some("ALIPAYCN"));
    // The Alipay number wins over a wrong partner_trans_id; another partner sees nothing.
    let q = l.query(P, Some("nope"), Some(&id), T0);
    assert_eq!(q.result_code, ResultCode::Success);
    let q = l.query("2088000000000000", None, Some(&id), T0);
    assert_eq!(err(&q.error), "TRADE_NOT_EXIST");
    assert_eq!(
        err(&l.query(P, Some("T9"), None, T0).error),
        "TRADE_NOT_EXIST"
    );
}

#[test]
fn a_failed_pay_leaves_a_closed_trade() {
    let mut l = Ledger::new(rules());
    let r = pay(
        &mut l,
        &req("T1", 100, None),
        PayOutcome::Fail("PAYMENT_FAIL"),
        1,
        T0,
    );
    assert_eq!(
        (r.result_code, err(&r.error)),
        (ResultCode::Fail, "PAYMENT_FAIL")
    );
    assert_eq!(status(&l, "T1", T0), Some(TradeStatus::TradeClosed));
    let again = pay(&mut l, &req("T1", 100, None), PayOutcome::Paid, 1, T0);
    assert_eq!(err(&again.error), "TRADE_HAS_CLOSE");
}

#[test]
fn unknown_then_paid_resolves_after_the_delay_and_notifies() {
    let mut l = Ledger::new(rules());
    let r = pay(
        &mut l,
        &req("T1", 100, Some("http://127.0.0.1:1/n")),
        PayOutcome::UnknownThenPaid,
        1,
        T0,
    );
    assert_eq!(r.result_code, ResultCode::Unknown);
    assert!(l.fire_due(T0 + 9_999).is_empty());
    assert_eq!(
        status(&l, "T1", T0 + 9_999),
        Some(TradeStatus::WaitBuyerPay)
    );
    let jobs = l.fire_due(T0 + 10_000);
    assert_eq!(
        status(&l, "T1", T0 + 10_000),
        Some(TradeStatus::TradeSuccess)
    );
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].message.trade_status, TradeStatus::TradeSuccess);
    assert_eq!(jobs[0].url, "http://127.0.0.1:1/n");
    // The timeout that follows finds the trade paid and does nothing.
    assert!(l.fire_due(T0 + 3 * MIN).is_empty());
    assert_eq!(
        status(&l, "T1", T0 + 3 * MIN),
        Some(TradeStatus::TradeSuccess)
    );
}

#[test]
fn unknown_then_closed_and_auto_close_at_the_timeout() {
    let mut l = Ledger::new(rules());
    pay(
        &mut l,
        &req("T1", 100, None),
        PayOutcome::UnknownThenClosed,
        1,
        T0,
    );
    pay(
        &mut l,
        &req("T2", 100, Some("http://h/")),
        PayOutcome::UnknownNeverActs,
        2,
        T0,
    );
    l.fire_due(T0 + 10_000);
    assert_eq!(
        status(&l, "T1", T0 + 10_000),
        Some(TradeStatus::TradeClosed)
    );
    assert_eq!(
        status(&l, "T2", T0 + 10_000),
        Some(TradeStatus::WaitBuyerPay)
    );
    assert!(l.fire_due(T0 + 3 * MIN - 1).is_empty());
    let jobs = l.fire_due(T0 + 3 * MIN);
    assert_eq!(
        status(&l, "T2", T0 + 3 * MIN),
        Some(TradeStatus::TradeClosed)
    );
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].message.trade_status, TradeStatus::TradeClosed);
    assert_eq!(
        l.trade(P, "T2").unwrap().close_reason,
        Some(CloseReason::Timeout)
    );
    assert_eq!(l.scheduled(), 0);
}

#[test]
fn resubmissions_by_policy() {
    let mut l = Ledger::new(rules());
    pay(&mut l, &req("T1", 100, None), PayOutcome::Paid, 1, T0);
    pay(
        &mut l,
        &req("T2", 100, None),
        PayOutcome::UnknownNeverActs,
        2,
        T0,
    );
    let diff = pay(&mut l, &req("T1", 200, None), PayOutcome::Paid, 99, T0);
    assert_eq!(err(&diff.error), "CONTEXT_INCONSISTENT");
    let same = pay(&mut l, &req("T1", 100, None), PayOutcome::Paid, 1, T0);
    assert_eq!(
        (same.result_code, err(&same.error)),
        (ResultCode::Fail, "TRADE_HAS_SUCCESS")
    );
    let waiting = pay(&mut l, &req("T2", 100, None), PayOutcome::Paid, 2, T0);
    assert_eq!(waiting.result_code, ResultCode::Unknown);
    let mut replay = Ledger::new(Rules {
        resubmit: Resubmit::Replay,
        ..rules()
    });
    let first = pay(&mut replay, &req("T1", 100, None), PayOutcome::Paid, 1, T0);
    let again = pay(
        &mut replay,
        &req("T1", 100, None),
        PayOutcome::Fail("PAYMENT_FAIL"),
        1,
        T0 + 5,
    );
    assert_eq!(first, again);
    assert_eq!(replay.len(), 1);
}

#[test]
fn refunds_are_limited_to_the_paid_amount_and_idempotent_by_id() {
    let mut l = Ledger::new(rules());
    pay(&mut l, &req("T1", 1_000, None), PayOutcome::Paid, 1, T0);
    let ok = l.refund(&refund_req("T1", "R1", 300, true), T0).unwrap();
    assert_eq!(ok.result_code, ResultCode::Success);
    assert_eq!(ok.refund_amount_cny.as_deref(), Some("21.32"));
    let replay = l.refund(&refund_req("T1", "R1", 300, true), T0).unwrap();
    assert_eq!(replay.result_code, ResultCode::Success);
    let reused = l.refund(&refund_req("T1", "R1", 301, true), T0).unwrap();
    assert_eq!(err(&reused.error), "CONTEXT_INCONSISTENT");
    let exceed = l.refund(&refund_req("T1", "R2", 701, true), T0).unwrap();
    assert_eq!(err(&exceed.error), "RETURN_AMOUNT_EXCEED");
    let mut hkd = refund_req("T1", "R3", 100, true);
    hkd.refund_amount = Amount::from_minor(100, Currency::HKD);
    assert_eq!(err(&l.refund(&hkd, T0).unwrap().error), "CURRENCY_NOT_SAME");
    assert_eq!(status(&l, "T1", T0), Some(TradeStatus::TradeSuccess));
    let rest = l.refund(&refund_req("T1", "R4", 700, true), T0).unwrap();
    assert_eq!(rest.result_code, ResultCode::Success);
    assert_eq!(status(&l, "T1", T0), Some(TradeStatus::TradeClosed));
    let t = l.trade(P, "T1").unwrap();
    assert_eq!(t.refunds.len(), 2);
    assert_eq!(t.refunded_total().minor(), 1_000);
    let closed = l.refund(&refund_req("T1", "R5", 1, true), T0).unwrap();
    assert_eq!(err(&closed.error), "TRADE_HAS_CLOSE");
    let none = l.refund(&refund_req("T9", "R6", 1, true), T0).unwrap();
    assert_eq!(err(&none.error), "TRADE_NOT_EXIST");
    pay(
        &mut l,
        &req("T2", 100, None),
        PayOutcome::UnknownNeverActs,
        2,
        T0,
    );
    let unpaid = l.refund(&refund_req("T2", "R7", 1, true), T0).unwrap();
    assert_eq!(err(&unpaid.error), "TRADE_STATUS_ERROR");
}

#[test]
fn refunds_per_trade_are_limited() {
    let mut l = Ledger::new(Rules {
        refunds_per_trade_max: 3,
        ..rules()
    });
    pay(&mut l, &req("T1", 1_000, None), PayOutcome::Paid, 1, T0);
    for (i, sync) in [true, false, true].into_iter().enumerate() {
        let id = format!("R{i}");
        let ok = l.refund(&refund_req("T1", &id, 10, sync), T0).unwrap();
        assert_eq!(ok.result_code, ResultCode::Success, "{id}");
    }
    let over = l.refund(&refund_req("T1", "R3", 10, true), T0).unwrap();
    assert_eq!(
        (over.result_code, err(&over.error)),
        (ResultCode::Fail, "REFUND_AMT_RESTRICTION")
    );
    let replay = l.refund(&refund_req("T1", "R0", 10, true), T0).unwrap();
    assert_eq!(
        replay.result_code,
        ResultCode::Success,
        "a retry still replays"
    );
    let t = l.trade(P, "T1").unwrap();
    assert_eq!(t.refunds().len(), 3);
    assert_eq!(t.refunded_total().minor(), 30);
    assert_eq!(t.refunded_done().minor(), 20, "one is pending");
    l.fire_due(T0 + 5_000);
    assert_eq!(l.trade(P, "T1").unwrap().refunded_done().minor(), 30);
    // A cancel adds the rest to the same running totals.
    let c = l.cancel(P, Some("T1"), None, None, T0 + 5_000).unwrap();
    assert_eq!(c.action, Some(CancelAction::Refund));
    let t = l.trade(P, "T1").unwrap();
    assert_eq!(
        (t.refunded_total().minor(), t.refunded_done().minor()),
        (1_000, 1_000)
    );
}

#[test]
fn async_refunds_reserve_the_amount_then_complete_and_notify() {
    let mut l = Ledger::new(rules());
    pay(
        &mut l,
        &req("T1", 1_000, Some("http://h/n")),
        PayOutcome::Paid,
        1,
        T0,
    );
    let paid = l.fire_due(T0);
    assert_eq!(paid.len(), 1, "the pay itself is notified");
    let accepted = l.refund(&refund_req("T1", "R1", 1_000, false), T0).unwrap();
    assert_eq!(accepted.result_code, ResultCode::Success);
    assert_eq!(status(&l, "T1", T0), Some(TradeStatus::TradeSuccess));
    let more = l.refund(&refund_req("T1", "R2", 1, true), T0).unwrap();
    assert_eq!(err(&more.error), "RETURN_AMOUNT_EXCEED");
    assert!(l.fire_due(T0 + 4_999).is_empty(), "accepted is not done");
    let jobs = l.fire_due(T0 + 5_000);
    assert_eq!(jobs.len(), 1);
    let notice = jobs[0].message.refund.clone().unwrap();
    assert_eq!(notice.partner_refund_id, "R1");
    assert_eq!(jobs[0].message.trade_status, TradeStatus::TradeClosed);
    assert_eq!(status(&l, "T1", T0 + 5_000), Some(TradeStatus::TradeClosed));
}

#[test]
fn a_refund_answered_unknown_is_applied_once() {
    let mut l = Ledger::new(rules());
    let input = PayInput {
        request: &req("T1", 1_000, None),
        fingerprint: 1,
        plan: PayPlan {
            refund_unknown_once: true,
            ..PayPlan::PAID
        },
    };
    l.pay(&input, T0).unwrap();
    let first = l.refund(&refund_req("T1", "R1", 400, true), T0).unwrap();
    assert_eq!(first.result_code, ResultCode::Unknown);
    let retry = l.refund(&refund_req("T1", "R1", 400, true), T0).unwrap();
    assert_eq!(retry.result_code, ResultCode::Success);
    assert_eq!(l.trade(P, "T1").unwrap().refunded_total().minor(), 400);
}

#[test]
fn the_cancel_window_is_the_beijing_day_plus_grace() {
    // Created 23:50 Beijing; midnight is 10 minutes later.
    assert!(in_cancel_window(T0, T0 + 10 * MIN - 1, 15 * MIN));
    assert!(in_cancel_window(T0, T0 + 25 * MIN - 1, 15 * MIN));
    assert!(!in_cancel_window(T0, T0 + 25 * MIN, 15 * MIN));
    assert!(!in_cancel_window(T0, T0 + 10 * MIN, 0));
    let mut l = Ledger::new(rules());
    pay(&mut l, &req("T1", 100, None), PayOutcome::Paid, 1, T0);
    pay(&mut l, &req("T2", 100, None), PayOutcome::Paid, 2, T0);
    let late = l.cancel(P, Some("T1"), None, None, T0 + 25 * MIN).unwrap();
    assert_eq!(late.result_code, ResultCode::Fail);
    assert_eq!(late.retry_flag, Some(false));
    assert_eq!(late.detail_error_code.as_deref(), Some(CANCEL_EXPIRED));
    assert_eq!(
        status(&l, "T1", T0 + 25 * MIN),
        Some(TradeStatus::TradeSuccess)
    );
    let grace = l
        .cancel(P, Some("T2"), None, None, T0 + 25 * MIN - 1_000)
        .unwrap();
    assert_eq!(grace.action, Some(CancelAction::Refund));
}

#[test]
fn cancel_closes_refunds_and_repeats() {
    let mut l = Ledger::new(rules());
    let never = l.cancel(P, Some("T0"), None, None, T0).unwrap();
    assert_eq!(
        (never.result_code, never.action),
        (ResultCode::Success, Some(CancelAction::Close))
    );
    let late_pay = pay(&mut l, &req("T0", 100, None), PayOutcome::Paid, 1, T0);
    assert_eq!(err(&late_pay.error), "TRADE_HAS_CLOSE");
    pay(
        &mut l,
        &req("T1", 100, None),
        PayOutcome::UnknownNeverActs,
        2,
        T0,
    );
    let closed = l.cancel(P, Some("T1"), None, None, T0).unwrap();
    assert_eq!(closed.action, Some(CancelAction::Close));
    assert_eq!(status(&l, "T1", T0), Some(TradeStatus::TradeClosed));
    let r = pay(&mut l, &req("T2", 500, None), PayOutcome::Paid, 3, T0);
    l.refund(&refund_req("T2", "R1", 200, true), T0).unwrap();
    let by_no = r.alipay_trans_id.as_deref();
    let refunded = l.cancel(P, Some("ignored"), by_no, None, T0).unwrap();
    assert_eq!(refunded.action, Some(CancelAction::Refund));
    let t = l.trade(P, "T2").unwrap();
    assert_eq!(t.cancel.unwrap().refunded.unwrap().minor(), 300);
    assert_eq!(t.refunded_total().minor(), 500);
    let repeat = l.cancel(P, Some("T2"), None, None, T0 + 60 * MIN).unwrap();
    assert_eq!(
        (repeat.result_code, repeat.action),
        (ResultCode::Success, Some(CancelAction::Refund))
    );
    let unknown_no = l
        .cancel(P, None, Some("2026010199999999999999999999"), None, T0)
        .unwrap();
    assert_eq!(
        unknown_no.detail_error_code.as_deref(),
        Some("TRADE_NOT_EXIST")
    );
}

#[test]
fn misbehaving_cancels_fail_retryably_then_succeed() {
    for mode in [CancelFaultMode::FailRetry, CancelFaultMode::Unknown] {
        let mut l = Ledger::new(rules());
        let input = PayInput {
            request: &req("T1", 100, None),
            fingerprint: 1,
            plan: PayPlan {
                cancel_faults: Some((mode, 3)),
                ..PayPlan::PAID
            },
        };
        l.pay(&input, T0).unwrap();
        for _ in 0..3 {
            let r = l.cancel(P, Some("T1"), None, None, T0).unwrap();
            match mode {
                CancelFaultMode::FailRetry => {
                    assert_eq!(
                        (r.result_code, r.retry_flag),
                        (ResultCode::Fail, Some(true))
                    );
                    assert_eq!(r.detail_error_code.as_deref(), Some("SYSTEM_ERROR"));
                }
                CancelFaultMode::Unknown => assert_eq!(r.result_code, ResultCode::Unknown),
            }
            assert_eq!(status(&l, "T1", T0), Some(TradeStatus::TradeSuccess));
        }
        let r = l.cancel(P, Some("T1"), None, None, T0).unwrap();
        assert_eq!(r.action, Some(CancelAction::Refund));
    }
}

#[test]
fn notifications_follow_the_ladder_until_acked() {
    let mut l = Ledger::new(rules());
    pay(
        &mut l,
        &req("T1", 100, Some("http://h/n")),
        PayOutcome::UnknownThenPaid,
        1,
        T0,
    );
    let job = l.fire_due(T0 + 10_000).pop().unwrap();
    let key = job.key.clone();
    let mut now = T0 + 10_000;
    l.record_attempt(&key, 0, false, "status 500".into(), now);
    assert!(l.fire_due(now + 2 * MIN - 1).is_empty());
    now += 2 * MIN;
    let again = l.fire_due(now);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].message.notify_id, job.message.notify_id);
    l.record_attempt(&key, 0, true, "acked".into(), now);
    assert!(l.fire_due(now + 100 * 60 * MIN).is_empty());
    let n = &l.trade(P, "T1").unwrap().notifications[0];
    assert!(n.acked);
    assert_eq!(n.attempts.len(), 2);
    // A receiver that never acks gets 8 attempts in all.
    pay(
        &mut l,
        &req("T2", 100, Some("http://h/n")),
        PayOutcome::UnknownThenPaid,
        2,
        now,
    );
    let mut attempts = 0;
    for _ in 0..20 {
        now += 16 * 60 * MIN;
        for job in l.fire_due(now) {
            attempts += 1;
            l.record_attempt(&job.key, job.index, false, "body \"fail\"".into(), now);
        }
    }
    assert_eq!(attempts, 8);
}

#[test]
fn paid_trades_finish_after_the_refund_period() {
    let mut l = Ledger::new(rules());
    pay(&mut l, &req("T1", 100, None), PayOutcome::Paid, 1, T0);
    let later = T0 + rules().refund_period_ms;
    assert_eq!(status(&l, "T1", later - 1), Some(TradeStatus::TradeSuccess));
    assert_eq!(status(&l, "T1", later), Some(TradeStatus::TradeFinished));
    let r = l.refund(&refund_req("T1", "R1", 1, true), later).unwrap();
    assert_eq!(err(&r.error), "TRADE_STATUS_ERROR");
}

#[test]
fn pages_follow_creation_order() {
    let mut l = Ledger::new(rules());
    for (fp, id) in (1..).zip(["T1", "T2", "T3", "T4", "T5"]) {
        pay(&mut l, &req(id, 100, None), PayOutcome::Paid, fp, T0);
    }
    l.cancel("2088000000000009", Some("X1"), None, None, T0)
        .unwrap();
    let (first, more) = l.page(Some(P), 0, 2);
    let ids = |page: &[Trade]| -> Vec<String> {
        page.iter().map(|t| t.partner_trans_id.clone()).collect()
    };
    assert_eq!(
        (ids(&first), more),
        (vec!["T1".to_owned(), "T2".to_owned()], true)
    );
    let (rest, more) = l.page(Some(P), first[1].seq, 10);
    assert_eq!(ids(&rest), ["T3", "T4", "T5"]);
    assert!(!more);
    let (exact, more) = l.page(Some(P), first[1].seq, 3);
    assert_eq!(
        (exact.len(), more),
        (3, false),
        "the other partner's trade is not 'more'"
    );
    let (all, more) = l.page(None, 0, 100);
    assert_eq!((all.len(), more), (6, false));
    assert!(l.page(None, all[5].seq, 100).0.is_empty());
}

#[test]
fn capacity_is_bounded() {
    let mut l = Ledger::new(Rules {
        trades_max: 1,
        ..rules()
    });
    pay(&mut l, &req("T1", 100, None), PayOutcome::Paid, 1, T0);
    let input = PayInput {
        request: &req("T2", 100, None),
        fingerprint: 2,
        plan: PayPlan::PAID,
    };
    assert_eq!(l.pay(&input, T0), Err(Capacity));
    assert_eq!(l.cancel(P, Some("T3"), None, None, T0), Err(Capacity));
}

#[test]
fn time_arithmetic_saturates_at_the_end_of_time() {
    let mut l = Ledger::new(rules());
    let end = i64::MAX - 1;
    let r = pay(
        &mut l,
        &req("T1", 100, Some("http://h/n")),
        PayOutcome::UnknownThenPaid,
        1,
        end,
    );
    assert_eq!(r.result_code, ResultCode::Unknown);
    assert_eq!(status(&l, "T1", end), Some(TradeStatus::WaitBuyerPay));
    let jobs = l.fire_due(i64::MAX);
    assert_eq!(jobs.len(), 1);
    l.record_attempt(&jobs[0].key, 0, false, "status 500".into(), i64::MAX);
    // Paid at the last millisecond, and (saturated) finished at once.
    assert_eq!(l.trade(P, "T1").unwrap().status, TradeStatus::TradeSuccess);
    l.refund(&refund_req("T1", "R1", 10, false), i64::MAX)
        .unwrap();
    // Outside any calendar: the cancel window is computed, not overflowed.
    l.cancel(P, Some("T1"), None, None, i64::MAX).unwrap();
}

#[test]
fn every_final_state_is_notified_once_with_its_own_id() {
    let mut l = Ledger::new(rules());
    pay(
        &mut l,
        &req("T1", 1_000, Some("http://h/pay")),
        PayOutcome::Paid,
        1,
        T0,
    );
    let paid = l.fire_due(T0);
    assert_eq!(paid.len(), 1);
    assert_eq!(
        (paid[0].message.trade_status, paid[0].url.as_str()),
        (TradeStatus::TradeSuccess, "http://h/pay")
    );
    assert!(paid[0].message.gmt_payment.is_some());
    let mut partial = refund_req("T1", "R1", 300, true);
    partial.notify_url = Some("http://h/refund");
    l.refund(&partial, T0).unwrap();
    l.refund(&partial, T0).unwrap(); // a replay: not notified again
    let refunded = l.fire_due(T0);
    assert_eq!(refunded.len(), 1);
    let m = &refunded[0].message;
    assert_eq!(
        (m.trade_status, refunded[0].url.as_str()),
        (TradeStatus::TradeSuccess, "http://h/refund")
    );
    assert_eq!(m.refund.as_ref().unwrap().refund_amount.minor(), 300);
    let c = l.cancel(P, Some("T1"), None, None, T0).unwrap();
    assert_eq!(c.action, Some(CancelAction::Refund));
    let closed = l.fire_due(T0);
    assert_eq!(closed.len(), 1);
    assert_eq!(
        (closed[0].message.trade_status, closed[0].url.as_str()),
        (TradeStatus::TradeClosed, "http://h/pay"),
        "the cancel had no notify_url: the pay's"
    );
    assert!(closed[0].message.refund.is_none());
    l.cancel(P, Some("T1"), None, None, T0).unwrap(); // a repeat changes nothing
    assert!(l.fire_due(T0).is_empty());
    let ids: std::collections::BTreeSet<&str> = [&paid[0], &refunded[0], &closed[0]]
        .iter()
        .map(|j| j.message.notify_id.as_str())
        .collect();
    assert_eq!(ids.len(), 3);
    // Without a pay URL, a cancel's own URL is used; closing an unpaid trade is notified too.
    pay(
        &mut l,
        &req("T2", 100, None),
        PayOutcome::UnknownNeverActs,
        2,
        T0,
    );
    l.cancel(P, Some("T2"), None, Some("http://h/cancel"), T0)
        .unwrap();
    let jobs = l.fire_due(T0);
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        (jobs[0].message.trade_status, jobs[0].url.as_str()),
        (TradeStatus::TradeClosed, "http://h/cancel")
    );
    // No URL anywhere: nothing.
    pay(&mut l, &req("T3", 100, None), PayOutcome::Paid, 3, T0);
    l.cancel(P, Some("T3"), None, None, T0).unwrap();
    assert!(l.fire_due(T0).is_empty());
}

#[test]
fn a_cancel_uses_the_status_as_of_now() {
    let mut l = Ledger::new(Rules {
        refund_period_ms: MIN,
        ..rules()
    });
    pay(&mut l, &req("T1", 100, None), PayOutcome::Paid, 1, T0);
    let later = T0 + 2 * MIN; // inside the cancel window, past the refund period
    assert_eq!(status(&l, "T1", later), Some(TradeStatus::TradeFinished));
    let r = l.cancel(P, Some("T1"), None, None, later).unwrap();
    assert_eq!(
        (r.result_code, r.retry_flag),
        (ResultCode::Fail, Some(false))
    );
    assert_eq!(r.detail_error_code.as_deref(), Some(CANCEL_FINISHED));
    let t = l.trade(P, "T1").unwrap();
    assert!(t.cancel().is_none());
    assert!(t.refunded_total().is_zero());
    assert_eq!(status(&l, "T1", later), Some(TradeStatus::TradeFinished));
}

#[test]
fn a_cancel_after_pending_refunds_cover_the_payment_returns_nothing_more() {
    let mut l = Ledger::new(rules());
    pay(&mut l, &req("T1", 1_000, None), PayOutcome::Paid, 1, T0);
    l.refund(&refund_req("T1", "R1", 600, false), T0).unwrap();
    l.refund(&refund_req("T1", "R2", 400, false), T0).unwrap();
    let r = l.cancel(P, Some("T1"), None, None, T0 + 1).unwrap();
    assert_eq!(
        (r.result_code, r.action),
        (ResultCode::Success, Some(CancelAction::Refund))
    );
    let t = l.trade(P, "T1").unwrap();
    let record = t.cancel().unwrap();
    assert_eq!(
        (record.effect, record.refunded),
        (CancelEffect::Refunded, None),
        "no 0.00 reversal"
    );
    assert_eq!(t.status, TradeStatus::TradeClosed);
    assert_eq!(t.refunded_total().minor(), 1_000);
    l.fire_due(T0 + 5_000);
    let t = l.trade(P, "T1").unwrap();
    assert_eq!(
        (t.refunded_total().minor(), t.refunded_done().minor()),
        (1_000, 1_000)
    );
}
