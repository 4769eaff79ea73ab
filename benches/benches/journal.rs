//! Durable appends to the journal under concurrency: the group commit's throughput.
//!
//! Each iteration is one realistic payment's journal traffic: an append of the intent
//! (`PayReceived`, synced before the request would leave) and then an append of its outcome
//! (`PayOutcome`), so two durable records and two acknowledgements per payment, as the engine
//! does them. `N` appenders (threads) run payments back to back; criterion reports records per
//! second (median), and after each `N` the writer's own counters give syncs per second and the
//! mean group size over the measured runs.
//!
//! Run: `cargo bench -p switch-benches --bench journal` (`LEDGER_BENCH_LINGER_US=0` to compare
//! without the commit delay, `LEDGER_BENCH_SYNC_INTERVAL_US=0` without the sync pacing).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ledger::{Draft, EventBody, Journal, JournalOptions, Money, Outcome, StatsSnapshot, TxnKey};

/// Concurrent appenders measured.
const APPENDERS: [u64; 4] = [1, 16, 64, 256];
/// Durable records per payment (intent, outcome).
const RECORDS_PER_PAYMENT: u64 = 2;

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn intent(n: u64) -> Vec<Draft> {
    vec![Draft::new(
        1_718_000_000_000,
        EventBody::PayReceived {
            upstream_partner: "2088101122136241".into(),
            upstream_trans_id: format!("SW{n:020}"),
            fingerprint: [7; 32],
            amount: Money::new(1_999 + n % 1000, *b"USD"),
            trans_create_time: "20240610153000".into(),
            secondary_merchant_id: Some(format!("SM{}", n % 97)),
            store_id: Some("store-0042".into()),
            notify_url: Some("https://merchant.example.com/alipay/notify".into()),
        },
    )]
}

fn outcome(n: u64) -> Vec<Draft> {
    vec![Draft::new(
        1_718_000_000_900,
        EventBody::PayOutcome {
            result: Outcome::Success,
            alipay_trans_id: Some(format!("2024061022001{n:016}")),
            amount: None,
            paid_at_ms: Some(1_718_000_000_800),
            fee: Some(Money::new(40, *b"USD")),
            error_code: None,
        },
    )]
}

fn payment(journal: &Journal) {
    let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let txn = TxnKey::new("2088000000000042", format!("ORDER-{n:016}"));
    journal
        .append(txn.clone(), intent(n))
        .wait()
        .unwrap_or_else(|e| panic!("{e}"));
    journal
        .append(txn, outcome(n))
        .wait()
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Totals over the measured runs of one `N`.
#[derive(Default)]
struct Measured {
    stats: StatsSnapshot,
    elapsed: Duration,
}

/// Runs `iters` payments over `appenders` threads; returns the time they took.
fn run(journal: &Arc<Journal>, appenders: u64, iters: u64, measured: &Mutex<Measured>) -> Duration {
    let per_thread = iters.div_ceil(appenders);
    let barrier = Arc::new(Barrier::new(
        usize::try_from(appenders + 1).unwrap_or(usize::MAX),
    ));
    let threads: Vec<_> = (0..appenders)
        .map(|_| {
            let journal = Arc::clone(journal);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                for _ in 0..per_thread {
                    payment(&journal);
                }
            })
        })
        .collect();
    barrier.wait();
    let before = journal.stats();
    let started = Instant::now();
    for t in threads {
        t.join().unwrap_or_else(|_| panic!("appender panicked"));
    }
    let elapsed = started.elapsed();
    let delta = journal.stats().since(&before);
    let mut m = measured.lock().unwrap_or_else(|p| p.into_inner());
    m.stats = StatsSnapshot {
        groups: m.stats.groups + delta.groups,
        appends: m.stats.appends + delta.appends,
        events: m.stats.events + delta.events,
        sync_nanos: m.stats.sync_nanos + delta.sync_nanos,
    };
    m.elapsed += elapsed;
    // Criterion wants the time of `iters` payments; we ran `per_thread * appenders`.
    let total = per_thread * appenders;
    elapsed.mul_f64(ratio(iters, total))
}

/// A reporting ratio (not money).
#[allow(clippy::as_conversions)]
fn ratio(a: u64, b: u64) -> f64 {
    a as f64 / b.max(1) as f64
}

/// The journal's defaults; `LEDGER_BENCH_LINGER_US` overrides the commit delay and
/// `LEDGER_BENCH_SYNC_INTERVAL_US` the sync pacing (0 turns either off) to show what each buys.
fn options() -> JournalOptions {
    let mut opts = JournalOptions::default();
    let micros = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_micros)
    };
    if let Some(d) = micros("LEDGER_BENCH_LINGER_US") {
        opts.group_linger = d;
    }
    if let Some(d) = micros("LEDGER_BENCH_SYNC_INTERVAL_US") {
        opts.sync_interval_min = d;
    }
    opts
}

fn durable_appends(c: &mut Criterion) {
    let mut group = c.benchmark_group("journal");
    group.throughput(Throughput::Elements(RECORDS_PER_PAYMENT));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    for appenders in APPENDERS {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let journal =
            Arc::new(Journal::open(dir.path(), options()).unwrap_or_else(|e| panic!("{e}")));
        let measured = Mutex::new(Measured::default());
        group.bench_with_input(
            BenchmarkId::new("durable_pay_records", appenders),
            &appenders,
            |b, &n| b.iter_custom(|iters| run(&journal, n, iters, &measured)),
        );
        let m = measured.into_inner().unwrap_or_else(|p| p.into_inner());
        let secs = m.elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
        eprintln!(
            "journal/{appenders} appenders: {:.0} records/s, {:.0} appends/s, {:.0} syncs/s, \
             mean group {:.1} appends, mean write+sync {:.0} µs (over {:.1} s measured)",
            ratio(m.stats.events, 1) / secs,
            ratio(m.stats.appends, 1) / secs,
            ratio(m.stats.groups, 1) / secs,
            m.stats.mean_group_size(),
            ratio(m.stats.sync_nanos, m.stats.groups) / 1000.0,
            secs,
        );
    }
    group.finish();
}

criterion_group!(benches, durable_appends);
criterion_main!(benches);
