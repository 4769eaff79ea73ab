//! Criterion benchmarks of the small pure steps every request through the switch takes besides
//! the wire format: the canonical string to sign of a pay form, amount parsing and formatting,
//! and the engine's decisions (what to do with a pay, which journal event an upstream answer
//! becomes, and the resolver's next step for an unknown pay).
//!
//! Run: `cargo bench -p switch-benches --bench engine`.

use std::fmt::Write as _;

use alipay::{read_response, Amount, Charset, Currency, Form, FormLimits, ResponseWriter};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use ledger::{Event, EventBody, Money, Outcome, TxnKey, TxnState};
use switch::engine::decide::{self, PayStep};
use switch::resolver::plan::{plan, Memory, Schedule, Step};
use switch_benches::{md5_signer, pay_request_body, pay_response, PayShape, ECHO};

/// 2026-11-27 12:00:00 Beijing (04:00 UTC), when the benchmark's unknown pay was received.
const RECEIVED_MS: i64 = 1_795_752_000_000;

fn canonical_string(c: &mut Criterion) {
    let body = pay_request_body(&md5_signer(), PayShape::Typical);
    let form = Form::parse(b"", &body, &FormLimits::default()).unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::with_capacity(1024);
    form.string_to_sign(&mut out);
    // Every signed parameter, so the benchmark measures the real string and not an empty one.
    assert!(out.starts_with(b"_input_charset=UTF-8&"), "{out:?}");
    assert!(
        !out.windows(5).any(|w| w == b"sign="),
        "the signature is not signed"
    );
    c.bench_function("form/string_to_sign/typical", |b| {
        b.iter(|| {
            out.clear();
            black_box(&form).string_to_sign(&mut out);
            out.len()
        })
    });
}

fn amounts(c: &mut Criterion) {
    let mut text = String::with_capacity(32);
    for (currency, wire) in [(Currency::USD, "1234.50"), (Currency::JPY, "123450")] {
        let label = currency.code();
        let amount = Amount::parse(wire, currency).unwrap_or_else(|e| panic!("{e}"));
        text.clear();
        write!(text, "{amount}").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(text, wire, "an amount formats as it was written");
        c.bench_function(&format!("amount/parse/{label}"), |b| {
            b.iter(|| Amount::parse(black_box(wire), currency).map(Amount::minor))
        });
        c.bench_function(&format!("amount/format/{label}"), |b| {
            b.iter(|| {
                text.clear();
                write!(text, "{}", black_box(amount)).unwrap_or_else(|e| panic!("{e}"));
                text.len()
            })
        });
    }
}

/// The journal of one pay whose upstream answer never came: received, then unknown.
fn unknown_pay() -> TxnState {
    let key = TxnKey::new("2088000000000001", "20261127104512000123");
    let bodies = [
        EventBody::PayReceived {
            upstream_partner: "2088101122136241".into(),
            upstream_trans_id: "sw1P20261127104512000123".into(),
            fingerprint: [1; 32],
            amount: Money::new(4_250, *b"HKD"),
            trans_create_time: "20261127120000".into(),
            secondary_merchant_id: Some("LNB0001".into()),
            store_id: Some("LNB-WFJ".into()),
            notify_url: None,
        },
        EventBody::PayOutcome {
            result: Outcome::Unknown,
            alipay_trans_id: None,
            amount: None,
            paid_at_ms: None,
            fee: None,
            error_code: None,
        },
    ];
    let events: Vec<Event> = (1u64..)
        .zip(bodies)
        .map(|(seq, body)| Event {
            seq,
            prev_hash: [0; 32],
            at_ms: RECEIVED_MS,
            txn: key.clone(),
            body,
        })
        .collect();
    TxnState::replay(&events).unwrap_or_else(|e| panic!("{e:?}"))
}

/// The shipped `[resolver]` defaults' shape: query at 5 s, every 5 s, cancel after 30 s.
fn schedule() -> Schedule {
    Schedule {
        first_query_after_ms: 5_000,
        query_interval_ms: 5_000,
        query_window_ms: 30_000,
        retry_ms: vec![1_000, 2_000, 5_000],
        cancel_attempts_max: 5,
        cancel_grace_ms: 15 * 60_000,
        refund_attempts_max: 3,
    }
}

fn decisions(c: &mut Criterion) {
    // The upstream's signed SUCCESS answer to a pay, as the engine receives it.
    let signer = md5_signer();
    let mut writer = ResponseWriter::new();
    let response = pay_response();
    let body = writer
        .write(Charset::Utf8, ECHO, &response, &signer)
        .unwrap_or_else(|e| panic!("{e}"))
        .to_vec();
    let asked = decide::money(Amount::from_minor(4_250, Currency::HKD));
    let mut scratch = String::new();
    {
        let doc = read_response(&body, &mut scratch, 64 * 1024).unwrap_or_else(|e| panic!("{e}"));
        let event = decide::pay_outcome(Some(&doc), asked);
        assert!(
            matches!(
                &event,
                EventBody::PayOutcome { result: Outcome::Success, amount: Some(m), .. } if *m == asked
            ),
            "a SUCCESS answer becomes a paid outcome: {event:?}"
        );
    }
    c.bench_function("engine/pay_outcome/success", |b| {
        let doc = read_response(&body, &mut scratch, 64 * 1024).unwrap_or_else(|e| panic!("{e}"));
        b.iter(|| decide::pay_outcome(Some(black_box(&doc)), asked))
    });
    let mut scratch = String::new();
    c.bench_function("engine/read_response+pay_outcome/success", |b| {
        b.iter(|| {
            let doc = read_response(black_box(&body), &mut scratch, 64 * 1024)
                .unwrap_or_else(|e| panic!("{e}"));
            decide::pay_outcome(Some(&doc), asked)
        })
    });

    let state = unknown_pay();
    let same = state.fingerprint;
    let mut other = same;
    other[0] ^= 1;
    assert_eq!(decide::pay_step(None, &same), PayStep::Start);
    assert_eq!(decide::pay_step(Some(&state), &same), PayStep::Replay);
    assert_eq!(decide::pay_step(Some(&state), &other), PayStep::Conflict);
    c.bench_function("engine/pay_step/start", |b| {
        b.iter(|| decide::pay_step(black_box(None), black_box(&same)))
    });
    c.bench_function("engine/pay_step/replay", |b| {
        b.iter(|| decide::pay_step(Some(black_box(&state)), black_box(&same)))
    });

    // Taken up by the resolver at once, asked about 6 s after the pay: time for the first query.
    let schedule = schedule();
    let memory = Memory::seen(&state, RECEIVED_MS, 0);
    let (wall, mono) = (RECEIVED_MS + 6_000, 6_000);
    assert_eq!(plan(&state, &memory, wall, mono, &schedule), Step::Query);
    c.bench_function("resolver/plan/unknown_pay", |b| {
        b.iter(|| {
            plan(
                black_box(&state),
                black_box(&memory),
                black_box(wall),
                mono,
                &schedule,
            )
        })
    });
}

criterion_group!(benches, canonical_string, amounts, decisions);
criterion_main!(benches);
