//! The open-loop dispatcher and the recorder.
//!
//! The dispatcher walks the profile's intended send times. For each it picks the next request
//! ([`Workload::next`]), takes an in-flight slot, and starts a task that signs the request,
//! waits for the intended instant, sends it, reads and checks the answer, and records it. The
//! task starts [`SIGN_LEAD`] early so a caller's signature (0.6 ms for RSA2) is ready on time.
//!
//! **No coordinated omission.** Latency runs from the *intended* send time, never from when the
//! generator got round to sending: a target that stalls holds the in-flight slots, later sends
//! wait for a slot, and their waiting counts. A send that cannot start within `lag_max` of its
//! intended time is dropped and counted as an error (`dropped`); it is never silently skipped.
//! What a closed-loop tool would report (from the actual send) is kept beside it as
//! `service_time`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alipay_sim::client::{HttpClient, HttpResponse, GATEWAY_PATH};
use alipay_sim::SimError;
use hdrhistogram::Histogram;
use hyper::Method;
use tokio::sync::Semaphore;

use crate::fleet::Fleet;
use crate::profile::Profile;
use crate::report::{
    spectrum, us_to_ms, LatencySection, Lateness, LoadSpec, Mix, Report, Second, Stats, Summary,
    Target, SCHEMA,
};
use crate::told::{Answer, Order, RefundTold};
use crate::workload::{self, OpKind, Service, Workload};

/// A send that starts more than this after its intended time is counted late.
pub const LATE_AFTER_MS: u64 = 2;
/// How early a request's task starts, to sign before its intended time.
pub const SIGN_LEAD: Duration = Duration::from_millis(5);
/// Largest answer read.
const ANSWER_BYTES_MAX: usize = 1 << 20;
/// Histograms span 1 µs to 1 hour.
const HIST_MAX_US: u64 = 3_600_000_000;

/// What to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The gateway's base URL (`https://127.0.0.1:8443`); requests go to `/gateway.do`.
    pub target_url: String,
    /// `switch`, `simulator`, `nginx` or `external` (for the report).
    pub target_kind: String,
    /// PEM certificates to trust for an `https` target.
    pub trust_pem: Option<Vec<u8>>,
    /// The rate over time.
    pub profile: Profile,
    /// The follow-up mix.
    pub mix: Mix,
    /// Who signs.
    pub fleet: Arc<Fleet>,
    /// Most requests in flight.
    pub in_flight_max: usize,
    /// A send later than this is dropped.
    pub lag_max: Duration,
    /// Whole-request timeout.
    pub request_timeout: Duration,
    /// Random seed.
    pub seed: u64,
    /// Share of pays with fault-injecting buyer codes.
    pub fault_share: f64,
    /// Prefix of every `partner_trans_id` (unique per run).
    pub order_prefix: String,
    /// Print a progress line every second on stderr.
    pub progress: bool,
}

/// The result of a run.
#[derive(Debug)]
pub struct RunOutcome {
    /// The report (no check or baseline yet).
    pub report: Report,
    /// What the client was told, per order.
    pub orders: Vec<Order>,
    /// Latency histograms (µs) by name: `all`, each service, each `service/outcome`.
    pub histograms: BTreeMap<String, Histogram<u64>>,
}

/// Errors that stop a run before it starts.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The target URL or certificate is unusable.
    #[error("target: {0}")]
    Target(#[from] SimError),
    /// Bad options.
    #[error("{0}")]
    Options(String),
}

/// A histogram of microseconds, 1 µs to 1 hour, with `digits` significant digits.
#[allow(clippy::expect_used)] // constant bounds, valid by construction
fn hist_of(digits: u8) -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_US, digits).expect("constant histogram bounds")
}

/// 3 significant digits: lossless at that precision, about 80 KB each.
fn hist() -> Histogram<u64> {
    hist_of(3)
}

/// The time series needs fewer digits: 2 significant digits, about 10 KB per second.
fn second_hist() -> Histogram<u64> {
    hist_of(2)
}

/// The CPU time this process has used so far, seconds (0 where `/proc` is missing).
fn self_cpu_seconds() -> f64 {
    crate::procs::sample(crate::procs::Target::Myself).map_or(0.0, |s| s.cpu_seconds())
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

#[derive(Debug)]
struct SecondAcc {
    sent: u64,
    ok: u64,
    errors: u64,
    latency: Histogram<u64>,
    in_flight: u64,
}

impl SecondAcc {
    fn new() -> SecondAcc {
        SecondAcc {
            sent: 0,
            ok: 0,
            errors: 0,
            latency: second_hist(),
            in_flight: 0,
        }
    }
}

/// Everything measured, under one lock (held for microseconds per answer).
#[derive(Debug)]
struct Recorder {
    all: Histogram<u64>,
    service_time: Histogram<u64>,
    lateness: Histogram<u64>,
    by_service: BTreeMap<&'static str, Histogram<u64>>,
    by_outcome: BTreeMap<String, Histogram<u64>>,
    errors: BTreeMap<String, u64>,
    seconds: Vec<SecondAcc>,
    intended: u64,
    sent: u64,
    completed: u64,
    ok: u64,
    failed: u64,
    dropped: u64,
    late: u64,
    in_flight: u64,
}

impl Recorder {
    fn new() -> Recorder {
        Recorder {
            all: hist(),
            service_time: hist(),
            lateness: hist(),
            by_service: BTreeMap::new(),
            by_outcome: BTreeMap::new(),
            errors: BTreeMap::new(),
            seconds: Vec::new(),
            intended: 0,
            sent: 0,
            completed: 0,
            ok: 0,
            failed: 0,
            dropped: 0,
            late: 0,
            in_flight: 0,
        }
    }

    fn second(&mut self, since_start: Duration) -> &mut SecondAcc {
        let i = usize::try_from(since_start.as_secs()).unwrap_or(usize::MAX);
        // A run is bounded by its profile plus the request timeout: at most a few thousand rows.
        let i = i.min(1_000_000);
        while self.seconds.len() <= i {
            self.seconds.push(SecondAcc::new());
        }
        let in_flight = self.in_flight;
        let s = &mut self.seconds[i];
        s.in_flight = in_flight;
        s
    }

    fn sent(&mut self, since_start: Duration, lateness: Duration) {
        self.sent += 1;
        self.in_flight += 1;
        let _ = self.lateness.record(micros(lateness).min(HIST_MAX_US));
        if lateness > Duration::from_millis(LATE_AFTER_MS) {
            self.late += 1;
        }
        self.second(since_start).sent += 1;
    }

    fn dropped(&mut self, service: Service, since_start: Duration) {
        self.dropped += 1;
        self.failed += 1;
        *self
            .errors
            .entry(format!("{}/dropped", service.label()))
            .or_insert(0) += 1;
        self.second(since_start).errors += 1;
    }

    fn answered(
        &mut self,
        service: Service,
        answer: &Answer,
        since_start: Duration,
        latency: Duration,
        service_time: Duration,
    ) {
        self.completed += 1;
        self.in_flight = self.in_flight.saturating_sub(1);
        let us = micros(latency).min(HIST_MAX_US);
        let _ = self.all.record(us);
        let _ = self
            .service_time
            .record(micros(service_time).min(HIST_MAX_US));
        let _ = self
            .by_service
            .entry(service.label())
            .or_insert_with(hist)
            .record(us);
        let label = format!("{}/{}", service.label(), answer.label());
        let _ = self
            .by_outcome
            .entry(label.clone())
            .or_insert_with(hist)
            .record(us);
        let ok = answer.is_success();
        if ok {
            self.ok += 1;
        } else {
            self.failed += 1;
            *self.errors.entry(label).or_insert(0) += 1;
        }
        let s = self.second(since_start);
        let _ = s.latency.record(us);
        if ok {
            s.ok += 1;
        } else {
            s.errors += 1;
        }
    }
}

/// Shared state of a run.
#[derive(Debug)]
struct Shared {
    start: Instant,
    fleet: Arc<Fleet>,
    client: HttpClient,
    recorder: Mutex<Recorder>,
    plan: Mutex<Plan>,
}

#[derive(Debug)]
struct Plan {
    workload: Workload,
    orders: Vec<Order>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The wall clock. The load generator is an adapter: it stamps its requests with real time.
#[allow(clippy::disallowed_methods)]
pub fn wall_clock() -> SystemTime {
    SystemTime::now()
}

fn unix_ms() -> i64 {
    wall_clock()
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .unwrap_or(0)
}

/// Reads the answer to one request: its status, signature and result.
pub fn classify(
    service: Service,
    result: Result<HttpResponse, SimError>,
    verifier: Option<&alipay::Verifier>,
) -> Answer {
    let response = match result {
        Ok(r) => r,
        Err(e) => {
            let why = match e {
                SimError::Timeout { .. } => "timeout",
                SimError::Connect { .. } => "connect",
                SimError::OutcomeUnknown { .. } => "reset",
                SimError::ResponseTooLarge { .. } => "too_large",
                _ => "transport",
            };
            return Answer::NoAnswer { why: why.into() };
        }
    };
    if response.status != 200 {
        return Answer::NoAnswer {
            why: format!("http_{}", response.status),
        };
    }
    let mut scratch = String::new();
    let Ok(doc) = alipay::read_response(&response.body, &mut scratch, ANSWER_BYTES_MAX) else {
        return Answer::NoAnswer {
            why: "unreadable".into(),
        };
    };
    if let Some(v) = verifier {
        if doc.is_success && doc.sign.is_none() {
            return Answer::NoAnswer {
                why: "unsigned".into(),
            };
        }
        if doc.sign.is_some() && doc.verify(v, &mut Vec::new()).is_err() {
            return Answer::NoAnswer {
                why: "bad_signature".into(),
            };
        }
    }
    if !doc.is_success {
        return Answer::Fail {
            error: doc.error.as_deref().unwrap_or("").to_owned(),
        };
    }
    let fields = doc.fields();
    let error = || {
        fields
            .get("error")
            .or_else(|| fields.get("detail_error_code"))
            .map(|e| e.into_owned())
            .unwrap_or_default()
    };
    match fields.get("result_code").as_deref() {
        Some("SUCCESS") => Answer::Success {
            trade_status: (service == Service::Query)
                .then(|| fields.get("alipay_trans_status").map(|s| s.into_owned()))
                .flatten(),
        },
        Some("FAIL") => Answer::Fail { error: error() },
        Some("UNKNOWN") => Answer::Unknown { error: error() },
        _ => Answer::NoAnswer {
            why: "no_result_code".into(),
        },
    }
}

/// Runs the load and returns what it measured.
pub async fn run(opts: RunOptions) -> Result<RunOutcome, RunError> {
    if opts.fleet.callers.is_empty() {
        return Err(RunError::Options("the fleet has no callers".into()));
    }
    if opts.in_flight_max == 0 {
        return Err(RunError::Options("in_flight_max must be at least 1".into()));
    }
    let client = HttpClient::new(&opts.target_url, opts.trust_pem.as_deref())?
        .with_timeout(opts.request_timeout)
        .with_idle_max(opts.in_flight_max)
        .with_response_bytes_max(ANSWER_BYTES_MAX);
    let started_at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let cpu_before = self_cpu_seconds();
    let start = Instant::now() + SIGN_LEAD * 2;
    let shared = Arc::new(Shared {
        start,
        fleet: Arc::clone(&opts.fleet),
        client,
        recorder: Mutex::new(Recorder::new()),
        plan: Mutex::new(Plan {
            workload: Workload::new(
                &opts.fleet,
                opts.mix,
                opts.fault_share,
                opts.seed,
                &opts.order_prefix,
            ),
            orders: Vec::new(),
        }),
    });
    let slots = Arc::new(Semaphore::new(opts.in_flight_max));
    let progress = opts
        .progress
        .then(|| tokio::spawn(progress_line(Arc::clone(&shared), opts.profile.clone())));

    for at in opts.profile.send_times() {
        let intended = start + at;
        // Wake a little early so the task can sign before the intended instant.
        tokio::time::sleep_until(tokio::time::Instant::from_std(
            intended.checked_sub(SIGN_LEAD).unwrap_or(intended),
        ))
        .await;
        lock(&shared.recorder).intended += 1;
        let op = lock(&shared.plan).workload.next(at);
        let deadline = tokio::time::Instant::from_std(intended + opts.lag_max);
        let permit = match Arc::clone(&slots).try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => tokio::time::timeout_at(deadline, Arc::clone(&slots).acquire_owned())
                .await
                .ok()
                .and_then(Result::ok),
        };
        let Some(permit) = permit else {
            let since = Instant::now().saturating_duration_since(start);
            lock(&shared.recorder).dropped(op.kind.service(), since);
            note_answer(
                &shared,
                &op,
                Answer::NoAnswer {
                    why: "dropped".into(),
                },
                since,
            );
            continue;
        };
        let task_shared = Arc::clone(&shared);
        tokio::spawn(async move {
            send_one(&task_shared, op, intended).await;
            drop(permit);
        });
    }
    // Wait for every request still in flight (each is bounded by the request timeout).
    let all = u32::try_from(opts.in_flight_max).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
    if let Some(p) = progress {
        p.abort();
    }
    let elapsed = start.elapsed();
    let cpu = self_cpu_seconds() - cpu_before;
    // Every request has answered (all slots are back); a finished task may still be dropping
    // its handle, so take the contents rather than waiting for the last reference.
    let orders = std::mem::take(&mut lock(&shared.plan).orders);
    let recorder = std::mem::replace(&mut *lock(&shared.recorder), Recorder::new());
    Ok(finish(&opts, recorder, orders, started_at, elapsed, cpu))
}

/// The signed `(query, body)` of one request, stamped with the wall clock.
pub fn prepare(
    fleet: &Fleet,
    spec: &workload::OrderSpec,
    kind: &OpKind,
) -> Result<(String, Vec<u8>), alipay::Error> {
    let params = workload::params(fleet, spec, kind, unix_ms());
    workload::sign(fleet, spec, &params)
}

/// POSTs a prepared request to `/gateway.do` and reads the answer, checking its signature with
/// the order's caller's verifier.
pub async fn deliver(
    client: &HttpClient,
    fleet: &Fleet,
    spec: &workload::OrderSpec,
    service: Service,
    signed: Result<(String, Vec<u8>), alipay::Error>,
) -> Answer {
    let result = match signed {
        Ok((query, body)) => {
            let path = format!("{GATEWAY_PATH}?{query}");
            client
                .request(
                    Method::POST,
                    &path,
                    Some(alipay_sim::client::FORM_CONTENT_TYPE),
                    body,
                )
                .await
        }
        Err(e) => Err(SimError::Wire(e)),
    };
    let verifier = fleet
        .callers
        .get(spec.caller)
        .and_then(|c| c.verifier.as_ref());
    classify(service, result, verifier)
}

async fn send_one(shared: &Shared, op: workload::Op, intended: Instant) {
    let spec = {
        let plan = lock(&shared.plan);
        plan.workload.orders.get(op.order).cloned()
    };
    let Some(spec) = spec else { return };
    let service = op.kind.service();
    let signed = prepare(&shared.fleet, &spec, &op.kind);
    tokio::time::sleep_until(tokio::time::Instant::from_std(intended)).await;
    let sent_at = Instant::now();
    {
        let mut r = lock(&shared.recorder);
        r.sent(
            sent_at.saturating_duration_since(shared.start),
            sent_at.saturating_duration_since(intended),
        );
    }
    let answer = deliver(&shared.client, &shared.fleet, &spec, service, signed).await;
    let done = Instant::now();
    let since = done.saturating_duration_since(shared.start);
    lock(&shared.recorder).answered(
        service,
        &answer,
        since,
        done.saturating_duration_since(intended),
        done.saturating_duration_since(sent_at),
    );
    note_answer(shared, &op, answer, since);
}

/// Files the answer under its order, and plans a pay's follow-ups.
fn note_answer(shared: &Shared, op: &workload::Op, answer: Answer, since: Duration) {
    let mut plan = lock(&shared.plan);
    let Plan { workload, orders } = &mut *plan;
    if op.kind == OpKind::Pay {
        let paid = answer.is_success();
        let undecided = matches!(answer, Answer::Unknown { .. })
            || matches!(&answer, Answer::NoAnswer { why } if why != "dropped");
        let never_sent = matches!(&answer, Answer::NoAnswer { why } if why == "dropped");
        if let Some(spec) = workload.orders.get(op.order) {
            let caller = shared
                .fleet
                .callers
                .get(spec.caller)
                .map(|c| c.id.clone())
                .unwrap_or_default();
            let order = Order {
                caller,
                merchant: spec.merchant.clone(),
                partner_trans_id: spec.partner_trans_id.clone(),
                amount_minor: spec.amount_minor,
                currency: "USD".into(),
                buyer_code: spec.buyer_code.clone(),
                pay: answer,
                queries: Vec::new(),
                cancels: Vec::new(),
                refunds: Vec::new(),
            };
            // Orders are filed in the order their pays were answered; keep an index.
            while orders.len() <= op.order {
                orders.push(placeholder());
            }
            if let Some(slot) = orders.get_mut(op.order) {
                *slot = order;
            }
        }
        if !never_sent {
            workload.pay_answered(op.order, since, paid, undecided);
        }
        return;
    }
    while orders.len() <= op.order {
        orders.push(placeholder());
    }
    let Some(order) = orders.get_mut(op.order) else {
        return;
    };
    match &op.kind {
        OpKind::Query => order.queries.push(answer),
        OpKind::Cancel => order.cancels.push(answer),
        OpKind::Refund {
            partner_refund_id,
            amount_minor,
        } => order.refunds.push(RefundTold {
            partner_refund_id: partner_refund_id.clone(),
            amount_minor: *amount_minor,
            answer,
        }),
        OpKind::Pay => {}
    }
}

fn placeholder() -> Order {
    Order {
        caller: String::new(),
        merchant: String::new(),
        partner_trans_id: String::new(),
        amount_minor: 0,
        currency: String::new(),
        buyer_code: String::new(),
        pay: Answer::NoAnswer {
            why: "not_answered".into(),
        },
        queries: Vec::new(),
        cancels: Vec::new(),
        refunds: Vec::new(),
    }
}

async fn progress_line(shared: Arc<Shared>, profile: Profile) {
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::from_std(shared.start + Duration::from_secs(1)),
        Duration::from_secs(1),
    );
    let mut last = (0_u64, 0_u64, 0_u64);
    loop {
        tick.tick().await;
        let t = shared.start.elapsed();
        let (line, now) = {
            let r = lock(&shared.recorder);
            let p99 = r
                .seconds
                .get(usize::try_from(t.as_secs().saturating_sub(1)).unwrap_or(0))
                .map(|s| us_to_ms(s.latency.value_at_quantile(0.99)))
                .unwrap_or(0.0);
            let now = (r.sent, r.ok, r.failed);
            (
                format!(
                    "t={:>4}s target {:>7.0}/s sent {:>6}/s ok {:>6}/s errors {:>4}/s p99 {:>8.2} ms in flight {:>5} late {} dropped {}",
                    t.as_secs(),
                    profile.rate_at(t.saturating_sub(Duration::from_millis(500))),
                    now.0 - last.0,
                    now.1 - last.1,
                    now.2 - last.2,
                    p99,
                    r.in_flight,
                    r.late,
                    r.dropped
                ),
                now,
            )
        };
        last = now;
        eprintln!("{line}");
    }
}

/// Turns what was recorded into the report.
fn finish(
    opts: &RunOptions,
    r: Recorder,
    orders: Vec<Order>,
    started_at: String,
    elapsed: Duration,
    cpu_seconds: f64,
) -> RunOutcome {
    let duration = opts.profile.length().as_secs_f64().max(f64::MIN_POSITIVE);
    let mut histograms = BTreeMap::new();
    let mut by_service = BTreeMap::new();
    let mut spectra = BTreeMap::new();
    spectra.insert("all".to_owned(), spectrum(&r.all));
    for (name, h) in &r.by_service {
        by_service.insert((*name).to_owned(), Stats::of(h));
        spectra.insert((*name).to_owned(), spectrum(h));
        histograms.insert((*name).to_owned(), h.clone());
    }
    let by_outcome = r
        .by_outcome
        .iter()
        .map(|(k, h)| (k.clone(), Stats::of(h)))
        .collect();
    for (k, h) in &r.by_outcome {
        histograms.insert(k.clone(), h.clone());
    }
    histograms.insert("all".to_owned(), r.all.clone());
    let timeseries: Vec<Second> = r
        .seconds
        .iter()
        .enumerate()
        .map(|(t, s)| {
            let t = u64::try_from(t).unwrap_or(u64::MAX);
            let q = |x: f64| {
                if s.latency.is_empty() {
                    0.0
                } else {
                    us_to_ms(s.latency.value_at_quantile(x))
                }
            };
            Second {
                t,
                target_rate: opts
                    .profile
                    .rate_at(Duration::from_secs(t) + Duration::from_millis(500)),
                sent: s.sent,
                ok: s.ok,
                errors: s.errors,
                p50: q(0.5),
                p90: q(0.9),
                p99: q(0.99),
                p999: q(0.999),
                max: if s.latency.is_empty() {
                    0.0
                } else {
                    us_to_ms(s.latency.max())
                },
                in_flight: s.in_flight,
            }
        })
        .collect();
    #[allow(clippy::as_conversions)] // counts far below 2^53
    let per_s = |n: u64| n as f64 / duration;
    let intended = r.intended.max(r.sent + r.dropped);
    #[allow(clippy::as_conversions)] // counts far below 2^53
    let error_rate = if intended == 0 {
        0.0
    } else {
        r.failed as f64 / intended as f64
    };
    let lateness = Lateness {
        p50: us_to_ms(r.lateness.value_at_quantile(0.5)),
        p99: us_to_ms(r.lateness.value_at_quantile(0.99)),
        max: us_to_ms(r.lateness.max()),
    };
    let generator_cpu_percent = cpu_seconds / elapsed.as_secs_f64().max(f64::MIN_POSITIVE) * 100.0;
    let mut warnings = Vec::new();
    #[allow(clippy::as_conversions)] // counts far below 2^53
    let late_share = if r.sent == 0 {
        0.0
    } else {
        r.late as f64 / r.sent as f64
    };
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let cores = f64::from(u32::try_from(cores).unwrap_or(1));
    if r.dropped > 0 {
        warnings.push(format!(
            "{} sends were dropped: they could not start within {} ms of their intended time \
             ({} requests in flight at most); they count as errors.",
            r.dropped,
            opts.lag_max.as_millis(),
            opts.in_flight_max
        ));
    }
    if lateness.p99 > 10.0 || late_share > 0.05 {
        warnings.push(format!(
            "The generator fell behind: {:.1}% of sends started more than {LATE_AFTER_MS} ms late \
             (p99 lateness {:.1} ms, max {:.1} ms). Latency still counts from the intended send \
             time, but the target was offered less load than asked, in bursts.",
            late_share * 100.0,
            lateness.p99,
            lateness.max
        ));
    }
    if generator_cpu_percent > 0.8 * 100.0 * cores {
        warnings.push(format!(
            "The generator used {generator_cpu_percent:.0}% CPU (of {cores} cores): it is \
             saturated and its own delays are part of the figures."
        ));
    }
    let saturated = !warnings.is_empty();
    let summary = Summary {
        elapsed_s: elapsed.as_secs_f64(),
        intended,
        sent: r.sent,
        completed: r.completed,
        ok: r.ok,
        errors: r.failed,
        error_rate,
        dropped: r.dropped,
        late: r.late,
        target_rate: opts.profile.mean_rate(),
        achieved_rate: per_s(r.completed),
        ok_rate: per_s(r.ok),
        lateness_ms: lateness,
        generator_cpu_percent,
        saturated,
    };
    let report = Report {
        schema: SCHEMA.to_owned(),
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        started_at,
        target: Target {
            url: opts.target_url.clone(),
            kind: opts.target_kind.clone(),
        },
        load: LoadSpec {
            profile: opts.profile.spec().to_owned(),
            duration_s: duration,
            mix: opts.mix,
            callers_by_sign_type: opts.fleet.by_sign_type(),
            merchants: opts.fleet.merchants(),
            in_flight_max: u64::try_from(opts.in_flight_max).unwrap_or(u64::MAX),
            seed: opts.seed,
            fault_share: opts.fault_share,
        },
        summary,
        latency: LatencySection {
            all: Stats::of(&r.all),
            service_time: Stats::of(&r.service_time),
            by_service,
            by_outcome,
            spectra,
        },
        timeseries,
        errors: r.errors,
        warnings,
        check: None,
        baseline: None,
    };
    RunOutcome {
        report,
        orders: orders
            .into_iter()
            .filter(|o| !o.partner_trans_id.is_empty())
            .collect(),
        histograms,
    }
}
