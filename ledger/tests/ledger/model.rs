//! Model test: random sequences of appends (valid and invalid, alone and in bursts that share a
//! group), reads of every kind, and close/reopen, checked against a plain in-memory model built
//! with the same pure fold. The model decides every expected rejection itself.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::common::*;
use ledger::chain::seal;
use ledger::{
    fold, moves_money, AppendError, BeijingDay, CancelAction, ChainHead, Draft, Event, EventBody,
    Journal, JournalOptions, NotifyResult, Outcome, RefundKey, Rejected, TradeStatus, TxnKey,
    TxnState,
};
use proptest::prelude::*;

const PARTNER: &str = "2088000000000001";
/// 2024-06-10 23:59:59.000 in Beijing: day 0 is just before, day 1 just after midnight.
const MIDNIGHT_MS: i64 = 1_718_035_199_000;

fn txn_of(i: u8) -> TxnKey {
    TxnKey::new(format!("m{}", i / 2), format!("o{}", i % 2))
}

#[derive(Debug, Clone)]
enum Kind {
    Pay(u64),
    Sent,
    PayOutcome(Outcome, Option<u64>),
    Query(TradeStatus),
    CancelAttempt,
    Cancel(Outcome, Option<CancelAction>),
    RefundIntent { id: u8, minor: u64, fp: u8 },
    RefundResult { id: u8, result: Outcome },
    Notify(bool),
    Operator,
}

#[derive(Debug, Clone)]
struct AppendOp {
    txn: u8,
    upstream: u8,
    day: u8,
    kinds: Vec<Kind>,
}

#[derive(Debug, Clone)]
enum Op {
    Append(AppendOp),
    Burst(Vec<AppendOp>),
    Reopen,
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        Just(Outcome::Success),
        Just(Outcome::Fail),
        Just(Outcome::Unknown)
    ]
}

fn kind() -> impl Strategy<Value = Kind> {
    let status = prop_oneof![
        Just(TradeStatus::WaitBuyerPay),
        Just(TradeStatus::TradeSuccess),
        Just(TradeStatus::TradeClosed),
        Just(TradeStatus::TradeFinished),
        Just(TradeStatus::NotExist),
    ];
    let action = prop_oneof![
        Just(None),
        Just(Some(CancelAction::Close)),
        Just(Some(CancelAction::Refund))
    ];
    prop_oneof![
        3 => prop_oneof![Just(100u64), Just(250), Just(1000)].prop_map(Kind::Pay),
        1 => Just(Kind::Sent),
        3 => (outcome(), prop_oneof![Just(None), Just(Some(250u64))]).prop_map(|(o, a)| Kind::PayOutcome(o, a)),
        1 => status.prop_map(Kind::Query),
        1 => Just(Kind::CancelAttempt),
        1 => (outcome(), action).prop_map(|(o, a)| Kind::Cancel(o, a)),
        4 => (0u8..3, prop_oneof![Just(0u64), Just(1), Just(50), Just(100), Just(300), Just(1001)], 0u8..2)
            .prop_map(|(id, minor, fp)| Kind::RefundIntent { id, minor, fp }),
        3 => (0u8..3, outcome()).prop_map(|(id, result)| Kind::RefundResult { id, result }),
        1 => any::<bool>().prop_map(Kind::Notify),
        1 => Just(Kind::Operator),
    ]
}

fn append_op() -> impl Strategy<Value = AppendOp> {
    (0u8..4, 0u8..4, 0u8..2, prop::collection::vec(kind(), 0..4)).prop_map(
        |(txn, upstream, day, kinds)| AppendOp {
            txn,
            upstream,
            day,
            kinds,
        },
    )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => append_op().prop_map(Op::Append),
        2 => prop::collection::vec(append_op(), 2..6).prop_map(Op::Burst),
        1 => Just(Op::Reopen),
    ]
}

fn body(op: &AppendOp, kind: &Kind) -> EventBody {
    let txn = txn_of(op.txn);
    match kind {
        Kind::Pay(minor) => {
            let mut b = pay_received(&txn, *minor);
            if let EventBody::PayReceived {
                upstream_trans_id, ..
            } = &mut b
            {
                *upstream_trans_id = format!("U{}", op.upstream);
            }
            b
        }
        Kind::Sent => EventBody::PaySent {
            attempt: 1,
            endpoint: "primary".into(),
        },
        Kind::PayOutcome(o, a) => pay_outcome(*o, *a),
        Kind::Query(status) => EventBody::QueryResult {
            status: *status,
            alipay_trans_id: Some("A".into()),
            paid_at_ms: None,
            amount: None,
            fee: None,
        },
        Kind::CancelAttempt => EventBody::CancelAttempt { attempt: 1 },
        Kind::Cancel(result, action) => EventBody::CancelResult {
            result: *result,
            action: *action,
            retry: false,
            error_code: None,
        },
        Kind::RefundIntent { id, minor, fp } => {
            refund_intent(&txn.merchant, &format!("r{id}"), *minor, *fp)
        }
        Kind::RefundResult { id, result } => {
            refund_result(&txn.merchant, &format!("r{id}"), *result)
        }
        Kind::Notify(ok) => EventBody::NotifyAttempt {
            attempt: 1,
            url: "https://m.example/n".into(),
            result: if *ok {
                NotifyResult::Delivered
            } else {
                NotifyResult::Failed("503".into())
            },
        },
        Kind::Operator => EventBody::OperatorAction {
            who: "ops".into(),
            why: "t".into(),
            action: "a".into(),
        },
    }
}

fn drafts(op: &AppendOp) -> Vec<Draft> {
    let base = if op.day == 0 {
        MIDNIGHT_MS - 10_000
    } else {
        MIDNIGHT_MS + 2_000
    };
    op.kinds
        .iter()
        .zip(0i64..)
        .map(|(k, i)| Draft::new(base + i, body(op, k)))
        .collect()
}

#[derive(Default)]
struct Model {
    events: Vec<Event>,
    states: HashMap<TxnKey, TxnState>,
    upstream: HashMap<String, TxnKey>,
    refunds: HashMap<RefundKey, TxnKey>,
    money: BTreeMap<u32, Vec<u64>>,
    head: Option<ChainHead>,
}

impl Model {
    fn head(&self) -> ChainHead {
        self.head.unwrap_or(ChainHead::GENESIS)
    }

    /// What the journal must answer, and the model's new state when it accepts.
    fn append(
        &mut self,
        txn: &TxnKey,
        drafts: &[Draft],
    ) -> Result<(Vec<u64>, TxnState), AppendError> {
        if drafts.is_empty() {
            return Err(AppendError::Invalid(String::new()));
        }
        let mut state = self.states.get(txn).cloned();
        let mut link = self.head();
        let (mut events, mut money, mut ups, mut refs) = (vec![], vec![], vec![], vec![]);
        for d in drafts {
            let event = Event {
                seq: link.seq + 1,
                prev_hash: link.hash,
                at_ms: d.at_ms,
                txn: txn.clone(),
                body: d.body.clone(),
            };
            let next = fold(state.as_ref(), &event).map_err(AppendError::Rejected)?;
            match &event.body {
                EventBody::PayReceived {
                    upstream_trans_id, ..
                } => {
                    if self.upstream.contains_key(upstream_trans_id) {
                        return Err(AppendError::Rejected(Rejected::UpstreamIdTaken));
                    }
                    ups.push(upstream_trans_id.clone());
                }
                EventBody::RefundIntent { refund, .. } => {
                    if self.refunds.get(refund).is_some_and(|owner| owner != txn) {
                        return Err(AppendError::Rejected(Rejected::RefundOfOtherTxn));
                    }
                    refs.push(refund.clone());
                }
                _ => {}
            }
            if moves_money(state.as_ref(), &next) {
                money.push((BeijingDay::of_ms(event.at_ms).yyyymmdd(), event.seq));
            }
            let (_, hash) = seal(&event).unwrap();
            link = ChainHead {
                seq: event.seq,
                hash,
            };
            state = Some(next);
            events.push(event);
        }
        let state = state.unwrap();
        let seqs = events.iter().map(|e| e.seq).collect();
        self.events.extend(events);
        self.states.insert(txn.clone(), state.clone());
        ups.into_iter()
            .for_each(|u| drop(self.upstream.insert(u, txn.clone())));
        refs.into_iter()
            .for_each(|r| drop(self.refunds.insert(r, txn.clone())));
        money
            .into_iter()
            .for_each(|(d, s)| self.money.entry(d).or_default().push(s));
        self.head = Some(link);
        Ok((seqs, state))
    }
}

fn same_result(
    got: Result<ledger::Appended, AppendError>,
    want: Result<(Vec<u64>, TxnState), AppendError>,
) -> Result<(), TestCaseError> {
    match (got, want) {
        (Ok(a), Ok((seqs, state))) => {
            prop_assert_eq!(a.seqs, seqs);
            prop_assert_eq!(a.state, state);
        }
        (Err(AppendError::Invalid(_)), Err(AppendError::Invalid(_))) => {}
        (got, want) => prop_assert_eq!(got.map(|a| a.seqs), want.map(|w| w.0)),
    }
    Ok(())
}

fn check_reads(journal: &Journal, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(&journal.events_since(0, 100_000).unwrap(), &model.events);
    for i in 0..4 {
        let k = txn_of(i);
        prop_assert_eq!(journal.txn(&k).unwrap(), model.states.get(&k).cloned());
        let mine: Vec<Event> = model
            .events
            .iter()
            .filter(|e| e.txn == k)
            .cloned()
            .collect();
        prop_assert_eq!(journal.events_of(&k).unwrap(), mine);
        for r in 0..3 {
            let rk = RefundKey::new(k.merchant.clone(), format!("r{r}"));
            let want = model.refunds.get(&rk).map(|t| model.states[t].clone());
            prop_assert_eq!(journal.by_refund(&rk).unwrap(), want);
        }
    }
    for u in 0..4 {
        let id = format!("U{u}");
        let want = model.upstream.get(&id).map(|t| model.states[t].clone());
        prop_assert_eq!(journal.by_upstream_id(PARTNER, &id).unwrap(), want);
    }
    let pending: BTreeSet<TxnKey> = journal.pending().unwrap().map(|s| s.unwrap().txn).collect();
    let want: BTreeSet<TxnKey> = model
        .states
        .values()
        .filter(|s| s.is_pending())
        .map(|s| s.txn.clone())
        .collect();
    prop_assert_eq!(pending, want);
    for at in [MIDNIGHT_MS - 10_000, MIDNIGHT_MS + 2_000] {
        let d = BeijingDay::of_ms(at);
        let got: Vec<u64> = journal
            .day(d.year(), d.month(), d.day())
            .unwrap()
            .map(|e| e.unwrap().seq)
            .collect();
        prop_assert_eq!(
            got,
            model.money.get(&d.yyyymmdd()).cloned().unwrap_or_default()
        );
    }
    prop_assert_eq!(journal.chain_head().unwrap(), model.head());
    let report = journal.verify().unwrap();
    prop_assert!(report.is_ok(), "{:?}", report);
    prop_assert_eq!(report.checked, u64::try_from(model.events.len()).unwrap());
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let open = || Journal::open(dir.path(), JournalOptions::default()).unwrap();
    let mut journal = open();
    let mut model = Model::default();
    for op in ops {
        match op {
            Op::Append(a) => {
                let d = drafts(&a);
                let got = journal.append(txn_of(a.txn), d.clone()).wait();
                same_result(got, model.append(&txn_of(a.txn), &d))?;
            }
            Op::Burst(appends) => {
                // Submitted without waiting, so they share groups; the model applies them in
                // submission order, which is the order the writer must apply them in.
                let inflight: Vec<_> = appends
                    .iter()
                    .map(|a| (a, journal.append(txn_of(a.txn), drafts(a))))
                    .collect();
                for (a, pending) in inflight {
                    same_result(pending.wait(), model.append(&txn_of(a.txn), &drafts(a)))?;
                }
            }
            Op::Reopen => {
                drop(journal);
                journal = open();
            }
        }
        check_reads(&journal, &model)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn journal_matches_the_model(ops in prop::collection::vec(op(), 1..30)) {
        run(ops)?;
    }
}
