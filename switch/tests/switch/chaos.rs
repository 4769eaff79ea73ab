//! Crash chaos: the `switch` binary killed with SIGKILL at random points during mixed, faulty
//! merchant traffic, round after round, then started once more and left to finish its work.
//! Every transaction must end final, and the journal, the simulator's trades and what the
//! cashiers were told must agree exactly: no lost acknowledgement (INV-1), no double charge
//! (INV-2), no trade at the simulator the journal does not know (INV-3), convergence (INV-4),
//! refund conservation (INV-5), and a replayed pay answered as it was first answered (INV-6).
//!
//! `CHAOS_ROUNDS` sets the number of rounds (default 20) and `CHAOS_SEED` replays a run: the
//! seed is printed first. A seed fixes the orders' scenarios and amounts, the cashiers' choices
//! and the kill times; where exactly each kill lands among concurrent requests still varies,
//! and with it some of the answers.
//!
//! The file is past the house's ~800 lines: the traffic (rounds, cashiers) and the final checks
//! share the record of what was sent and told; if it grows, split it as `chaos/` along that line.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alipay_sim::client::HttpClient;
use alipay_sim::{GatewayClient, SimOptions, Simulator};
use ledger::{EventBody, RefundStatus, TxnState, TxnStatus};
use serde_json::{json, Value};

use crate::common::*;
use crate::crash::{spawn_with_stderr, stop_gracefully, Ports};

/// Rounds of traffic and kill when `CHAOS_ROUNDS` is not set.
const ROUNDS_DEFAULT: u32 = 20;
/// Concurrent cashiers in one round, drawn between these.
const CASHIERS_MIN: u64 = 6;
const CASHIERS_MAX: u64 = 8;
/// Requests one cashier sends in one round at most: keeps the whole run to a few hundred.
const REQUESTS_PER_CASHIER_MAX: u32 = 4;
/// The kill comes this long after the round's traffic starts, drawn between these.
const KILL_AFTER_MS_MIN: u64 = 150;
const KILL_AFTER_MS_MAX: u64 = 1500;
/// A cashier's pause before each request, drawn up to this: spreads the traffic over the
/// window in which the kill may land.
const THINK_MS_MAX: u64 = 120;
/// Between a cashier's polls of an unknown pay.
const POLL_MS: u64 = 300;
/// The client's deadline: above the switch's own (`gateway.request_timeout_ms`, 10 s), so a
/// missing answer means the switch died, not that the client gave up first.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(15);
/// Upper bound for the last run to finish every transaction (it takes seconds).
const SETTLE_WITHIN: Duration = Duration::from_secs(90);
/// Upper bound for a started switch to be ready, and for the cashiers to stop after a kill.
const READY_WITHIN: Duration = Duration::from_secs(120);
const CASHIERS_STOP_WITHIN: Duration = Duration::from_secs(60);
/// Disagreements shown in a failure, each with its evidence; the count says how many in all.
const PROBLEMS_SHOWN_MAX: usize = 25;

/// A quick resolver (as in the resolver tests): query after 200 ms, every 200 ms, cancel after
/// 1.5 s, cancels resent after 100 then 200 ms.
const RESOLVER: &str = "\n[resolver]\nfirst_query_after_ms = 200\nquery_interval_ms = 200\n\
                        query_window_ms = 1500\ncancel_retry_ms = [100, 200]\n";

/// The pays' scenarios: the two-digit magic of the buyer code (simulator README), `None` for a
/// plain code that is paid at once, and each one's weight in the draw.
const SCENARIOS: [(Option<&str>, u64); 11] = [
    (None, 30),
    (Some("01"), 8), // UNKNOWN, the buyer confirms 1 s later (time scale 10)
    (Some("02"), 6), // UNKNOWN, the buyer declines
    (Some("10"), 8), // FAIL
    (Some("30"), 5), // no answer for hang_ms (past the switch's 2 s), paid
    (Some("31"), 5), // the same hang, nothing created
    (Some("32"), 7), // TCP reset after the pay was processed: paid
    (Some("33"), 6), // HTTP 502, nothing created
    (Some("40"), 9), // the first cancels answer FAIL retry_flag=Y
    (Some("41"), 8), // the first cancels answer UNKNOWN
    (Some("50"), 8), // the first refund is applied but answered UNKNOWN
];

/// xorshift64: small, seedable, and the same on every machine.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // Odd, so never zero: xorshift would stay at zero for ever.
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Inclusive of both ends.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }

    fn index(&mut self, len: usize) -> usize {
        usize::try_from(self.below(u64::try_from(len).unwrap())).unwrap()
    }

    /// An independent generator for a task, drawn from this one.
    fn fork(&mut self) -> Rng {
        Rng::new(self.next())
    }
}

/// What a cashier was told.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Told {
    Success,
    /// `result_code` FAIL, with the error.
    Fail(String),
    /// `result_code` UNKNOWN, with the error.
    Unknown(String),
    /// A gateway rejection (`is_success=F`), with its error.
    Rejected(String),
    /// An HTTP status other than 200.
    Status(u16),
    /// A connection error or no answer in time: the switch died under the request.
    NoAnswer,
}

impl Told {
    fn label(&self) -> &'static str {
        match self {
            Told::Success => "success",
            Told::Fail(_) => "fail",
            Told::Unknown(_) => "unknown",
            Told::Rejected(_) => "rejected",
            Told::Status(_) => "http-status",
            Told::NoAnswer => "no-answer",
        }
    }

    /// "Not processed, safe to retry": the one answer that promises nothing was journaled.
    fn busy(&self) -> bool {
        matches!(self, Told::Unknown(e) if e == "SYSTEM_BUSY")
    }
}

/// What a cashier asked.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Pay,
    /// The same pay again in a later round: a cashier retrying, or asking what became of it.
    PayAgain,
    Query,
    Refund {
        id: String,
        minor: u64,
    },
    Cancel,
}

/// One request and its answer.
#[derive(Debug, Clone)]
struct Exchange {
    round: u32,
    op: Op,
    told: Told,
    body: Vec<u8>,
    /// A query's `alipay_trans_status`.
    trade_status: Option<String>,
}

/// One order number and everything its cashier sent about it.
#[derive(Debug)]
struct Order {
    ptid: String,
    minor: u64,
    magic: Option<&'static str>,
    pay: Vec<(String, String)>,
    log: Vec<Exchange>,
}

impl Order {
    fn new(rng: &mut Rng, round: u32, cashier: u64, n: u32) -> Order {
        let total: u64 = SCENARIOS.iter().map(|(_, w)| w).sum();
        let mut draw = rng.below(total);
        let mut magic = None;
        for (m, w) in SCENARIOS {
            if draw < w {
                magic = m;
                break;
            }
            draw -= w;
        }
        let code = match magic {
            Some(m) => format!("2800{m}{:012}", rng.below(1_000_000_000_000)),
            None => CODE.to_owned(),
        };
        let minor = rng.between(100, 50_000);
        let ptid = format!("CHAOS-{round}-{cashier}-{n}");
        let pay = pay(M1, M1, &ptid, &money(minor), &code);
        Order {
            ptid,
            minor,
            magic,
            pay,
            log: Vec::new(),
        }
    }

    fn sent(&self, f: impl Fn(&Op) -> bool) -> bool {
        self.log.iter().any(|e| f(&e.op))
    }

    /// The first pay's answer when it was definite (SUCCESS or FAIL).
    fn definite_pay(&self) -> Option<&Exchange> {
        self.log
            .iter()
            .find(|e| e.op == Op::Pay)
            .filter(|e| matches!(e.told, Told::Success | Told::Fail(_)))
    }
}

/// Minor units as a USD wire amount.
fn money(minor: u64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}

/// One round's client side.
struct Round {
    number: u32,
    client: GatewayClient,
    /// Set just before the kill: cashiers send nothing more this round.
    killed: AtomicBool,
}

impl Round {
    /// Sends `p` signed by M1 and records the answer; `None` (nothing sent) once the switch
    /// has been killed or the cashier's budget is spent.
    async fn send(&self, budget: &mut u32, op: Op, p: &[(String, String)]) -> Option<Exchange> {
        if *budget == 0 || self.killed.load(Ordering::SeqCst) {
            return None;
        }
        *budget -= 1;
        let (query, body) = signed(p, M1);
        let mut e = Exchange {
            round: self.number,
            op,
            told: Told::NoAnswer,
            body: Vec::new(),
            trade_status: None,
        };
        let Ok(r) = self.client.post_raw(&query, body).await else {
            return Some(e);
        };
        e.body = r.body.to_vec();
        if r.status != 200 {
            e.told = Told::Status(r.status);
            return Some(e);
        }
        let a = Answer {
            status: r.status,
            body: e.body.clone(),
        };
        // `verify` also checks the signature: a badly signed answer fails the test at once.
        if !a.verify(M1) {
            e.told = Told::Rejected(a.gateway_error().unwrap_or_default());
            return Some(e);
        }
        let error = || {
            a.field("error")
                .or_else(|| a.field("detail_error_code"))
                .unwrap_or_default()
        };
        e.told = match a.result().as_str() {
            "SUCCESS" => Told::Success,
            "FAIL" => Told::Fail(error()),
            "UNKNOWN" => Told::Unknown(error()),
            other => panic!(
                "{}: result_code {other:?}",
                String::from_utf8_lossy(&a.body)
            ),
        };
        e.trade_status = a.field("alipay_trans_status");
        Some(e)
    }
}

async fn think(rng: &mut Rng) {
    tokio::time::sleep(Duration::from_millis(rng.below(THINK_MS_MAX + 1))).await;
}

/// Sends one request about `o` and records it; false when nothing more should be sent about
/// it this round (nothing sent, or the switch died under it).
async fn ask(
    round: &Round,
    budget: &mut u32,
    o: &mut Order,
    op: Op,
    p: &[(String, String)],
) -> bool {
    match round.send(budget, op, p).await {
        Some(e) => {
            let alive = e.told != Told::NoAnswer;
            o.log.push(e);
            alive
        }
        None => false,
    }
}

/// A cashier: maybe one more request about an order of an earlier round, then new orders
/// until its budget is spent or the switch is killed. Returns every order it sent anything
/// about.
async fn cashier(round: Arc<Round>, mut rng: Rng, id: u64, carried: Option<Order>) -> Vec<Order> {
    let mut budget = REQUESTS_PER_CASHIER_MAX;
    let mut orders = Vec::new();
    if let Some(mut o) = carried {
        think(&mut rng).await;
        carry_on(&round, &mut rng, &mut budget, &mut o).await;
        orders.push(o);
    }
    let mut n = 0;
    while budget > 0 && !round.killed.load(Ordering::SeqCst) {
        let mut o = Order::new(&mut rng, round.number, id, n);
        n += 1;
        serve(&round, &mut rng, &mut budget, &mut o).await;
        let died = o.log.iter().any(|e| e.told == Told::NoAnswer);
        if !o.log.is_empty() {
            orders.push(o);
        }
        if died {
            break;
        }
    }
    orders
}

/// An order of an earlier round, after a crash: a pay that was answered is replayed (it must
/// read the same), one that was not is sent again or queried, as a cashier would.
async fn carry_on(round: &Round, rng: &mut Rng, budget: &mut u32, o: &mut Order) {
    let replay = o.definite_pay().is_some() && !o.sent(|op| *op == Op::Cancel);
    let p = o.pay.clone();
    if replay || rng.percent(50) {
        ask(round, budget, o, Op::PayAgain, &p).await;
    } else {
        ask(round, budget, o, Op::Query, &query(M1, &o.ptid)).await;
    }
}

/// A new order: the pay, then what a cashier does next given the answer.
async fn serve(round: &Round, rng: &mut Rng, budget: &mut u32, o: &mut Order) {
    think(rng).await;
    let p = o.pay.clone();
    if !ask(round, budget, o, Op::Pay, &p).await {
        return;
    }
    let told = o.log.last().map(|e| e.told.clone());
    match told {
        Some(Told::Success) => after_paid(round, rng, budget, o).await,
        Some(Told::Fail(_)) => {
            if rng.percent(20) {
                think(rng).await;
                ask(round, budget, o, Op::Query, &query(M1, &o.ptid)).await;
            }
        }
        _ => after_unknown(round, rng, budget, o).await,
    }
}

/// A pay without a definite answer: poll it, cancel it, or leave it to the switch.
async fn after_unknown(round: &Round, rng: &mut Rng, budget: &mut u32, o: &mut Order) {
    let roll = rng.below(100);
    if roll < 50 {
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
            if !ask(round, budget, o, Op::Query, &query(M1, &o.ptid)).await {
                return;
            }
            let status = o.log.last().and_then(|e| e.trade_status.clone());
            if matches!(status.as_deref(), Some("TRADE_SUCCESS" | "TRADE_CLOSED")) {
                return;
            }
        }
    } else if roll < 70 {
        think(rng).await;
        ask(round, budget, o, Op::Cancel, &cancel(M1, &o.ptid)).await;
    }
}

/// A paid order: nothing, a query, partial refunds, a full refund in two parts, or a cancel.
async fn after_paid(round: &Round, rng: &mut Rng, budget: &mut u32, o: &mut Order) {
    let roll = rng.below(100);
    think(rng).await;
    match (o.magic, roll) {
        (Some("40" | "41"), 0..=69) | (_, 80..) => cancels(round, rng, budget, o).await,
        (Some("50"), 0..=69) | (_, 45..=69) => {
            let first = rng.between(1, o.minor / 2);
            let second = match rng.below(3) {
                0 => None,
                1 => Some(rng.between(1, o.minor - first)),
                // More than is left: must be refused, never applied (INV-5).
                _ => Some(o.minor),
            };
            refunds(round, rng, budget, o, first, second).await;
        }
        (_, 70..=79) => {
            let first = rng.between(1, o.minor - 1);
            refunds(round, rng, budget, o, first, Some(o.minor - first)).await;
        }
        (_, 25..=44) => {
            ask(round, budget, o, Op::Query, &query(M1, &o.ptid)).await;
        }
        _ => {}
    }
}

/// A cancel of a paid order; one without a definite answer is sometimes sent again, as spec
/// §6 asks of a cashier.
async fn cancels(round: &Round, rng: &mut Rng, budget: &mut u32, o: &mut Order) {
    let alive = ask(round, budget, o, Op::Cancel, &cancel(M1, &o.ptid)).await;
    let definite = o.log.last().is_some_and(|e| e.told == Told::Success);
    if alive && !definite && rng.percent(50) {
        think(rng).await;
        ask(round, budget, o, Op::Cancel, &cancel(M1, &o.ptid)).await;
    }
}

/// One or two refunds of `o`, the two one after the other or at once; a refund answered
/// UNKNOWN is sometimes retried with its id, as a merchant would.
async fn refunds(
    round: &Round,
    rng: &mut Rng,
    budget: &mut u32,
    o: &mut Order,
    first: u64,
    second: Option<u64>,
) {
    let op = |k: u32, minor: u64| {
        let id = format!("{}-r{k}", o.ptid);
        let p = refund(M1, &o.ptid, &id, &money(minor));
        (Op::Refund { id, minor }, p)
    };
    let (op1, p1) = op(1, first);
    let Some(second) = second else {
        ask(round, budget, o, op1, &p1).await;
        return retry_unknown_refund(round, rng, budget, o).await;
    };
    let (op2, p2) = op(2, second);
    if rng.percent(50) {
        // Each of the two has its own share of the budget, so both can be in flight at once.
        let shares = (u32::from(*budget > 0), u32::from(*budget > 1));
        let (mut b1, mut b2) = shares;
        let (e1, e2) = tokio::join!(round.send(&mut b1, op1, &p1), round.send(&mut b2, op2, &p2));
        *budget -= (shares.0 - b1) + (shares.1 - b2);
        o.log.extend(e1.into_iter().chain(e2));
    } else if ask(round, budget, o, op1, &p1).await {
        think(rng).await;
        ask(round, budget, o, op2, &p2).await;
    }
    retry_unknown_refund(round, rng, budget, o).await;
}

async fn retry_unknown_refund(round: &Round, rng: &mut Rng, budget: &mut u32, o: &mut Order) {
    let unknown = o
        .log
        .iter()
        .rev()
        .find(|e| matches!(e.op, Op::Refund { .. }) && matches!(e.told, Told::Unknown(_)));
    let Some(Op::Refund { id, minor }) = unknown.map(|e| e.op.clone()) else {
        return;
    };
    if rng.percent(50) {
        think(rng).await;
        let p = refund(M1, &o.ptid, &id, &money(minor));
        ask(round, budget, o, Op::Refund { id, minor }, &p).await;
    }
}

/// The switch as a child process, killed when dropped (a failing test leaves none behind).
struct Switch {
    child: Child,
    log: PathBuf,
}

impl Switch {
    /// Starts the binary, its log appended to `log`, and waits until it is ready.
    async fn start(config: &Path, log: &Path, ports: &Ports) -> Switch {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let mut s = Switch {
            child: spawn_with_stderr(config, Stdio::from(file)),
            log: log.to_owned(),
        };
        let ops = HttpClient::new(&format!("http://{}", ports.admin), None)
            .unwrap()
            .with_timeout(Duration::from_secs(2));
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            s.assert_running("starting");
            if let Ok(r) = ops
                .request(hyper::Method::GET, "/readyz", None, Vec::new())
                .await
            {
                if r.status == 200 {
                    return s;
                }
            }
            assert!(Instant::now() < deadline, "the switch did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Fails the test, with the end of the switch's log, if it exited by itself.
    fn assert_running(&mut self, when: &str) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!(
                "the switch exited by itself ({status}) while {when}; its log ends:\n{}",
                log_tail(&self.log)
            );
        }
    }

    /// SIGKILL, and wait for the exit.
    fn kill(mut self, round: u32) {
        self.assert_running(&format!("serving round {round}"));
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Polls the journal (read beside the running switch) until nothing is pending, at most
/// `within`; returns what is still pending.
async fn wait_settled(journal: &Path, within: Duration) -> Vec<TxnState> {
    let mut ro = ledger::Journal::open_read_only(journal).unwrap();
    let deadline = Instant::now() + within;
    loop {
        ro.catch_up().unwrap();
        let pending: Vec<TxnState> = ro.pending().unwrap().map(Result::unwrap).collect();
        if pending.is_empty() || Instant::now() >= deadline {
            return pending;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `CHAOS_SEED`, else a fresh one: the standard library's per-process random hash keys, so
/// each run explores other traffic (and prints the seed to replay it).
fn seed() -> u64 {
    match std::env::var("CHAOS_SEED") {
        Ok(s) => s.parse().expect("CHAOS_SEED is an unsigned integer"),
        Err(_) => std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish(),
    }
}

fn rounds() -> u32 {
    std::env::var("CHAOS_ROUNDS").map_or(ROUNDS_DEFAULT, |s| {
        s.parse().expect("CHAOS_ROUNDS is an unsigned integer")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkills_during_faulty_traffic_leave_journal_simulator_and_cashiers_agreeing() {
    let started = Instant::now();
    let (seed, rounds) = (seed(), rounds());
    eprintln!("chaos: seed {seed} (CHAOS_SEED={seed} replays it), {rounds} rounds");
    let mut options = SimOptions::for_tests().unwrap();
    options.time_scale = 10;
    let sim = Simulator::start(options).await.unwrap();
    let sim_admin = HttpClient::new(&sim.https_url(), Some(sim.cert_pem().as_bytes())).unwrap();
    let dials = json!({ "hang_ms": 2500, "cancel_retry_count": 2 });
    let (status, body) = sim_admin
        .send_json(hyper::Method::PUT, "/admin/dials", &dials)
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let dir = tempfile::tempdir().unwrap();
    let ports = Ports::free();
    let (path, config) = write_config(dir.path(), &sim, |t| ports.apply(t) + RESOLVER);
    let log = dir.path().join("switch.log");

    let mut rng = Rng::new(seed);
    let mut orders: Vec<Order> = Vec::new();
    for number in 1..=rounds {
        let switch = Switch::start(&path, &log, &ports).await;
        play_round(&mut rng, number, &ports, &mut orders, switch).await;
    }

    // The last start: nothing sent, the switch finishes what the crashes left.
    let mut switch = Switch::start(&path, &log, &ports).await;
    let left = wait_settled(&config.journal.path, SETTLE_WITHIN).await;
    switch.assert_running("settling");
    stop_gracefully(&mut switch.child);
    let trades = sim_admin.get_all_trades(None).await.unwrap();
    let counters = sim_admin.get_json("/admin/counters").await.unwrap().1;
    let ro = ledger::Journal::open_read_only(&config.journal.path).unwrap();
    let report = check(&ro, &orders, &trades, &counters, &left);

    let mut told: BTreeMap<&str, u64> = BTreeMap::new();
    for e in orders.iter().flat_map(|o| &o.log) {
        *told.entry(e.told.label()).or_default() += 1;
    }
    eprintln!(
        "chaos: seed {seed}, {rounds} rounds, {rounds} kills, {} orders, {} requests, \
         answers {told:?}, final {:?}, {} trades at the simulator, {:.1} s",
        orders.len(),
        told.values().sum::<u64>(),
        report.finals,
        trades.len(),
        started.elapsed().as_secs_f64(),
    );
    let shown = &report.problems[..report.problems.len().min(PROBLEMS_SHOWN_MAX)];
    assert!(
        report.problems.is_empty(),
        "chaos seed {seed} (CHAOS_SEED={seed} to replay): {} disagreements, the first {}:\n{}\n\
         the switch's log ends:\n{}",
        report.problems.len(),
        shown.len(),
        shown.join("\n"),
        log_tail(&log)
    );
    sim.shutdown().await;
}

/// One round: 6 to 8 cashiers (some taking up an order of an earlier round) against `switch`,
/// killed with SIGKILL 150 to 1500 ms in; every order sent anything about lands in `orders`.
async fn play_round(
    rng: &mut Rng,
    number: u32,
    ports: &Ports,
    orders: &mut Vec<Order>,
    switch: Switch,
) {
    let round = Arc::new(Round {
        number,
        // A new client each round: the last round's pooled connections died with the switch.
        client: GatewayClient::new(&format!("http://{}", ports.http), None)
            .unwrap()
            .with_timeout(CLIENT_TIMEOUT),
        killed: AtomicBool::new(false),
    });
    let mut tasks = Vec::new();
    for id in 0..rng.between(CASHIERS_MIN, CASHIERS_MAX) {
        let carried = (!orders.is_empty() && rng.percent(30)).then(|| {
            let i = rng.index(orders.len());
            orders.swap_remove(i)
        });
        let cashier = cashier(Arc::clone(&round), rng.fork(), id, carried);
        tasks.push(tokio::spawn(cashier));
    }
    let kill_after = rng.between(KILL_AFTER_MS_MIN, KILL_AFTER_MS_MAX);
    tokio::time::sleep(Duration::from_millis(kill_after)).await;
    round.killed.store(true, Ordering::SeqCst);
    switch.kill(number);
    for t in tasks {
        let done = tokio::time::timeout(CASHIERS_STOP_WITHIN, t).await;
        orders.extend(
            done.expect("cashiers stop once the switch is dead")
                .unwrap(),
        );
    }
}

/// The outcome of the final checks.
struct Report {
    /// Final statuses in the journal, by name.
    finals: BTreeMap<String, u64>,
    /// Every disagreement, one line (with the evidence) each.
    problems: Vec<String>,
}

/// The journal as read at the end: every transaction by order number, and its event kinds.
struct Journaled {
    states: BTreeMap<String, TxnState>,
    kinds: BTreeMap<String, Vec<&'static str>>,
    pay_sends: u64,
    cancel_attempts: u64,
}

fn read_journal(ro: &ledger::ReadOnlyJournal) -> Journaled {
    let mut j = Journaled {
        states: BTreeMap::new(),
        kinds: BTreeMap::new(),
        pay_sends: 0,
        cancel_attempts: 0,
    };
    let mut keys = BTreeSet::new();
    let mut after = 0;
    loop {
        let page = ro.events_since(after, 10_000).unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        for e in &page {
            keys.insert(e.txn.clone());
            let kinds = j.kinds.entry(e.txn.partner_trans_id.clone()).or_default();
            kinds.push(e.body.kind());
            match e.body {
                EventBody::PaySent { .. } => j.pay_sends += 1,
                EventBody::CancelAttempt { .. } => j.cancel_attempts += 1,
                _ => {}
            }
        }
    }
    for k in keys {
        assert_eq!(k.merchant, M1, "only M1 sends in this test");
        let s = ro
            .txn(&k)
            .unwrap()
            .expect("an event's transaction is in txns");
        j.states.insert(k.partner_trans_id.clone(), s);
    }
    j
}

/// Requests of `service` the simulator accepted, whatever their outcome.
fn sim_requests(counters: &Value, service: &str) -> u64 {
    counters["requests"][service]
        .as_object()
        .map_or(0, |m| m.values().filter_map(Value::as_u64).sum())
}

fn minor(v: &Value) -> Option<u64> {
    v["minor"].as_u64()
}

fn check(
    ro: &ledger::ReadOnlyJournal,
    orders: &[Order],
    trades: &[Value],
    counters: &Value,
    left: &[TxnState],
) -> Report {
    let mut problems = Vec::new();
    let j = read_journal(ro);
    let by_upstream: BTreeMap<&str, &Value> = trades
        .iter()
        .map(|t| (t["partner_trans_id"].as_str().unwrap_or(""), t))
        .collect();
    let evidence = |ptid: &str| -> String {
        let s = j.states.get(ptid);
        let trade = s.and_then(|s| by_upstream.get(s.upstream_trans_id.as_str()));
        format!(
            "\n    journal: {:?} {:?}\n    events: {:?}\n    simulator: {}",
            s.map(|s| s.status),
            s.map(|s| (s.paid.map(|m| m.minor), s.refunded_minor, &s.refunds)),
            j.kinds.get(ptid),
            trade.map_or("no trade".to_owned(), |t| t.to_string()),
        )
    };

    // 1. Everything final, nothing pending, the chain intact.
    let verified = ro.verify().unwrap();
    if !verified.is_ok() {
        problems.push(format!("the journal's chain does not verify: {verified:?}"));
    }
    for s in left {
        let ptid = &s.txn.partner_trans_id;
        problems.push(format!(
            "{ptid}: still pending {:?} after {SETTLE_WITHIN:?}{}",
            s.status,
            evidence(ptid)
        ));
    }
    let mut finals = BTreeMap::new();
    for (ptid, s) in &j.states {
        *finals.entry(format!("{:?}", s.status)).or_default() += 1;
        if !s.is_final() || s.is_pending() {
            problems.push(format!(
                "{ptid}: not final: {:?}{}",
                s.status,
                evidence(ptid)
            ));
        }
    }

    // 2. No trade at the simulator the journal does not know, at most one per order.
    for (ptid, n) in trades_per_order(ro, trades, &mut problems) {
        if n > 1 {
            problems.push(format!(
                "{ptid}: {n} trades at the simulator{}",
                evidence(&ptid)
            ));
        }
    }
    problems.extend(sends_journaled_once(&j, orders, trades, counters));

    // 3. and 5. The journal and the simulator agree on every transaction's money.
    for (ptid, s) in &j.states {
        let trade = by_upstream.get(s.upstream_trans_id.as_str()).copied();
        if let Err(why) = agrees(s, trade) {
            problems.push(format!("{ptid}: {why}{}", evidence(ptid)));
        }
    }

    // 4. What each cashier was told holds.
    for o in orders {
        for why in told_holds(o, j.states.get(&o.ptid)) {
            problems.push(format!("{}: {why}{}", o.ptid, evidence(&o.ptid)));
        }
    }
    Report { finals, problems }
}

/// The simulator's trades counted by the order they belong to; an orphan (a trade the journal
/// does not know) or a trade under another partner is a problem.
fn trades_per_order(
    ro: &ledger::ReadOnlyJournal,
    trades: &[Value],
    problems: &mut Vec<String>,
) -> BTreeMap<String, u32> {
    let mut per_order = BTreeMap::new();
    for t in trades {
        let upstream = t["partner_trans_id"].as_str().unwrap_or("");
        if t["partner"] != ACQUIRER {
            problems.push(format!("a trade under another partner: {t}"));
            continue;
        }
        match ro.by_upstream_id(ACQUIRER, upstream).unwrap() {
            Some(s) => *per_order.entry(s.txn.partner_trans_id).or_default() += 1,
            None => problems.push(format!("orphan trade at the simulator: {t}")),
        }
    }
    per_order
}

/// Every pay and cancel the simulator saw was journaled before it left (INV-3), and no pay
/// was sent twice (INV-2: after a crash an unconfirmed pay is queried, never sent again).
fn sends_journaled_once(
    j: &Journaled,
    orders: &[Order],
    trades: &[Value],
    counters: &Value,
) -> Vec<String> {
    let mut out = Vec::new();
    let (pays, cancels) = (
        sim_requests(counters, "pay"),
        sim_requests(counters, "cancel"),
    );
    if pays > j.pay_sends || cancels > j.cancel_attempts {
        out.push(format!(
            "the simulator saw {pays} pays and {cancels} cancels, the journal sent {} and {}",
            j.pay_sends, j.cancel_attempts
        ));
    }
    // A pay that reached the simulator made a trade with an amount, except the scenarios
    // that create nothing (a hang or a 502): any pay beyond those was a second one.
    let created = trades.iter().filter(|t| !t["amount"].is_null()).count();
    let sent = |o: &&Order| j.kinds.get(&o.ptid).is_some_and(|k| k.contains(&"PaySent"));
    let creating_nothing = orders
        .iter()
        .filter(|o| matches!(o.magic, Some("31" | "33")))
        .filter(sent)
        .count();
    let once = u64::try_from(created + creating_nothing).unwrap();
    if pays > once {
        out.push(format!(
            "the simulator saw {pays} pays for {created} trades paid or declined and \
             {creating_nothing} pays that create nothing: a pay was sent twice"
        ));
    }
    out
}

/// Whether a final transaction and its simulator trade (if any) say the same.
fn agrees(s: &TxnState, trade: Option<&Value>) -> Result<(), String> {
    let paid = s.paid.map_or(0, |m| m.minor);
    if s.refunded_minor > paid {
        return Err(format!("refunded {} of {paid}", s.refunded_minor));
    }
    let unpaid = |t: &Value| t["status"] == "TRADE_CLOSED" && t["paid_at"].is_null();
    let Some(t) = trade else {
        return match s.status {
            TxnStatus::Closed | TxnStatus::Failed => Ok(()),
            other => Err(format!(
                "{other:?} in the journal, no trade at the simulator"
            )),
        };
    };
    let (amount, refunded) = (minor(&t["amount"]), minor(&t["refunded"]));
    if refunded > amount {
        return Err("the simulator refunded more than was paid".into());
    }
    let ok = match s.status {
        TxnStatus::Paid => {
            t["status"] == "TRADE_SUCCESS"
                && amount == Some(paid)
                && refunded == Some(s.refunded_minor)
        }
        TxnStatus::Refunded => {
            t["status"] == "TRADE_CLOSED"
                && amount == Some(paid)
                && refunded == Some(paid)
                && s.refunded_minor == paid
        }
        TxnStatus::Reversed => {
            t["status"] == "TRADE_CLOSED"
                && t["cancel"]["action"] == "refund"
                && !t["paid_at"].is_null()
                && refunded == amount
        }
        TxnStatus::Closed | TxnStatus::Failed => unpaid(t),
        TxnStatus::Received | TxnStatus::Sent | TxnStatus::Unknown => false,
    };
    if !ok {
        return Err(format!(
            "{:?} in the journal, not at the simulator",
            s.status
        ));
    }
    // Refund by refund: each one the journal holds as succeeded is at the simulator, once,
    // for its amount, and the simulator has no other.
    let journaled: BTreeMap<&str, u64> = s
        .refunds
        .values()
        .filter(|r| r.status == RefundStatus::Succeeded)
        .map(|r| (r.upstream_refund_id.as_str(), r.amount.minor))
        .collect();
    let at_sim: Vec<(&str, u64)> = t["refunds"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| {
                    let id = r["partner_refund_id"].as_str().unwrap_or("");
                    (id, minor(&r["amount"]).unwrap_or(0))
                })
                .collect()
        })
        .unwrap_or_default();
    let at_sim_map: BTreeMap<&str, u64> = at_sim.iter().copied().collect();
    if at_sim.len() != at_sim_map.len() || at_sim_map != journaled {
        return Err(format!(
            "refunds: journal {journaled:?}, simulator {at_sim:?}"
        ));
    }
    Ok(())
}

/// Every way in which the final state contradicts what the cashier of `o` was told.
fn told_holds(o: &Order, s: Option<&TxnState>) -> Vec<String> {
    let Some(s) = s else {
        // Nothing journaled is fine for a pay that died with the switch or was refused as
        // busy; an answered pay must have been journaled first (INV-1).
        let answered = o.log.iter().find(|e| {
            matches!(e.op, Op::Pay | Op::PayAgain)
                && matches!(e.told, Told::Success | Told::Fail(_) | Told::Unknown(_))
                && !e.told.busy()
        });
        return answered
            .map(|e| {
                format!(
                    "the pay was answered {:?} in round {}, the journal has no such order",
                    e.told, e.round
                )
            })
            .into_iter()
            .collect();
    };
    let mut out: Vec<String> = o
        .log
        .iter()
        .filter_map(|e| exchange_holds(o, e, s))
        .collect();
    let told_refunded: u64 = o
        .log
        .iter()
        .filter(|e| e.told == Told::Success)
        .filter_map(|e| match &e.op {
            Op::Refund { id, minor } => Some((id, *minor)),
            _ => None,
        })
        .collect::<BTreeMap<_, _>>()
        .values()
        .sum();
    if told_refunded > o.minor {
        out.push(format!(
            "refunds of {told_refunded} answered SUCCESS for a pay of {}",
            o.minor
        ));
    }
    out.extend(replays_hold(o));
    out
}

/// Whether the final state `s` contradicts one answer `e` about `o`.
fn exchange_holds(o: &Order, e: &Exchange, s: &TxnState) -> Option<String> {
    use TxnStatus::{Closed, Failed, Paid, Refunded, Reversed};
    let cancelled = o.sent(|op| *op == Op::Cancel);
    let refunded = o.sent(|op| matches!(op, Op::Refund { .. }));
    let allowed: Vec<TxnStatus> = match (&e.op, &e.told) {
        // Paid stays paid unless the cashier itself refunded or cancelled it.
        (Op::Pay | Op::PayAgain, Told::Success) => [
            Some(Paid),
            refunded.then_some(Refunded),
            cancelled.then_some(Reversed),
        ]
        .into_iter()
        .flatten()
        .collect(),
        (Op::Pay, Told::Fail(_)) => vec![Failed, Closed],
        // A pay repeated after the switch reversed it reads as closed: not paid for good.
        (Op::PayAgain, Told::Fail(_)) => vec![Failed, Closed, Reversed],
        (Op::Cancel, Told::Success) => vec![Closed, Reversed],
        (Op::Query, Told::Success) => match e.trade_status.as_deref() {
            Some("TRADE_SUCCESS") => vec![Paid, Refunded, Reversed],
            Some("TRADE_CLOSED") => vec![Failed, Closed, Reversed, Refunded],
            _ => return None,
        },
        (Op::Refund { id, minor }, told) => return refund_holds(id, *minor, told, e.round, s),
        _ => return None,
    };
    (!allowed.contains(&s.status)).then(|| {
        format!(
            "{:?} answered {:?} (trade status {:?}) in round {}, but the journal ends {:?}",
            e.op, e.told, e.trade_status, e.round, s.status
        )
    })
}

/// A refund answered SUCCESS succeeded for its amount; one answered FAIL was never applied.
fn refund_holds(id: &str, minor: u64, told: &Told, round: u32, s: &TxnState) -> Option<String> {
    let r = s.refunds.get(id);
    let journaled = r.map(|r| (r.status, r.amount.minor));
    let ok = match told {
        Told::Success => journaled == Some((RefundStatus::Succeeded, minor)),
        Told::Fail(_) => r.is_none_or(|r| r.status == RefundStatus::Failed),
        _ => true,
    };
    (!ok).then(|| {
        format!(
            "refund {id} of {minor} answered {told:?} in round {round}, journaled {journaled:?}"
        )
    })
}

/// A pay answered for good reads the same when sent again, across crashes (INV-1, INV-6),
/// unless its cashier cancelled it (then it reads as closed).
fn replays_hold(o: &Order) -> Vec<String> {
    let Some(first) = o.definite_pay() else {
        return Vec::new();
    };
    if o.sent(|op| *op == Op::Cancel) {
        return Vec::new();
    }
    o.log
        .iter()
        .filter(|e| e.op == Op::PayAgain)
        .filter(|e| !matches!(e.told, Told::NoAnswer | Told::Status(_)) && !e.told.busy())
        .filter(|e| e.body != first.body)
        .map(|e| {
            format!(
                "the pay answered {:?} in round {} was answered {:?} in round {}: {}",
                first.told,
                first.round,
                e.told,
                e.round,
                String::from_utf8_lossy(&e.body)
            )
        })
        .collect()
}
