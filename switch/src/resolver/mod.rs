//! The resolver: drives every pending transaction to a final state on Alipay's schedule
//! (spec §6) and hands owed notifications to the notifier.
//!
//! * Intake: the engine tells it about every transaction an answer leaves pending
//!   ([`Resolver::track`], never blocking); a sweep of the journal's `pending` table at start
//!   (crash recovery) and every `sweep_interval` picks up anything else, so nothing depends on
//!   memory alone — the journal is the queue.
//! * Each transaction is due at a monotonic instant. When it is due, a worker (at most
//!   `concurrency` at once) takes its lock in the engine's finishing lane, reads its state,
//!   asks [`plan::plan`] (pure) what to do, does it through the engine (which journals every
//!   step), and plans again to learn when it is next due.
//! * A transaction given up on gets an `Exception` in the journal, an ERROR log and the
//!   `switch_resolver_gave_up_total` alarm; it stays pending and listed until an operator acts
//!   ([`Resolver::resolve_now`], [`Resolver::operator_cancel`]).

pub mod plan;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use ledger::{TxnKey, TxnState};
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

use crate::config::ResolverSection;
use crate::engine::{Acted, Busy, Engine};
use crate::telemetry;
use plan::{Memory, Phase, Schedule, Step};

/// Receives transactions that owe their merchant a notification (the notifier's intake). It
/// must not block.
pub type Offer = Arc<dyn Fn(&TxnKey) + Send + Sync>;

/// Priorities of due work: 0 cancels, 1 refunds and reversals, 2 queries and the rest.
const PRIORITIES: usize = 3;

/// How long a step that found its transaction busy waits before trying again.
const BUSY_RETRY: Duration = Duration::from_millis(500);

/// Most plan-act rounds of one worker visit (a step is always followed by a wait, so two are
/// the most a visit needs; the bound only guards against a planning bug).
const ROUNDS_MAX: usize = 4;

/// Why an operator's request was not carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperatorError {
    /// No such transaction.
    #[error("no such transaction")]
    NotFound,
    /// The transaction is final: nothing to resolve.
    #[error("the transaction is final")]
    Final,
    /// The transaction cannot be cancelled (refunded, or already closed).
    #[error("the transaction cannot be cancelled in its state ({0})")]
    NotCancellable(String),
    /// Busy or the journal is down; nothing was done.
    #[error("not done: {0}")]
    Busy(&'static str),
}

#[derive(Debug, Default)]
struct Inner {
    memory: HashMap<TxnKey, Memory>,
    /// (due, priority, key); stale entries are skipped against `due`.
    /// One queue per priority (cancels, refunds and reversals, queries), each of (due, key);
    /// stale entries are skipped against `due`. Of the transactions due, a cancel starts first.
    queues: [BinaryHeap<Reverse<(i64, TxnKey)>>; PRIORITIES],
    due: HashMap<TxnKey, i64>,
    running: HashSet<TxnKey>,
}

impl Inner {
    /// Queues `key` at `at` with priority `prio` (the latest call wins; older entries go stale).
    fn push(&mut self, key: &TxnKey, at: i64, prio: u8) {
        self.due.insert(key.clone(), at);
        let lane = usize::from(prio).min(PRIORITIES - 1);
        self.queues[lane].push(Reverse((at, key.clone())));
    }

    /// The next due key if one is due at `now`, marked running — cancels first, then refunds
    /// and reversals, then queries; or when the next one will be due.
    fn pop_due(&mut self, now: i64) -> Result<TxnKey, Option<i64>> {
        let mut next: Option<i64> = None;
        for queue in &mut self.queues {
            while let Some(Reverse((at, key))) = queue.peek().cloned() {
                if self.due.get(&key) != Some(&at) {
                    queue.pop();
                    continue;
                }
                if at > now {
                    next = Some(next.map_or(at, |n| n.min(at)));
                    break;
                }
                queue.pop();
                self.due.remove(&key);
                self.running.insert(key.clone());
                return Ok(key);
            }
        }
        Err(next)
    }
}

/// The resolver.
pub struct Resolver {
    engine: Arc<Engine>,
    schedule: Schedule,
    sweep_interval: Duration,
    workers: Arc<Semaphore>,
    tracked_max: usize,
    epoch: Instant,
    inner: Mutex<Inner>,
    wake: Notify,
    notifier: OnceLock<Offer>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("schedule", &self.schedule)
            .finish_non_exhaustive()
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Schedule {
    /// The schedule of a `[resolver]` section.
    pub fn from_config(r: &ResolverSection) -> Schedule {
        Schedule {
            first_query_after_ms: ms(r.first_query_after),
            query_interval_ms: ms(r.query_interval),
            query_window_ms: ms(r.query_window),
            retry_ms: r.cancel_retry.iter().map(|d| ms(*d)).collect(),
            cancel_attempts_max: r.cancel_attempts_max,
            cancel_grace_ms: ms(r.cancel_grace_after_midnight),
            refund_attempts_max: r.refund_attempts_max,
        }
    }
}

fn priority(phase: Option<Phase>) -> u8 {
    match phase {
        Some(Phase::Cancel) => 0,
        Some(Phase::Refund | Phase::Reverse) => 1,
        _ => 2,
    }
}

impl Resolver {
    /// A resolver over `engine`; it tracks at most `tracked_max` transactions in memory (more
    /// wait in the journal for the next sweep). Call [`Resolver::run`] to start it.
    pub fn new(engine: Arc<Engine>, config: &ResolverSection, tracked_max: usize) -> Arc<Resolver> {
        let resolver = Arc::new(Resolver {
            engine: Arc::clone(&engine),
            schedule: Schedule::from_config(config),
            sweep_interval: config.sweep_interval,
            workers: Arc::new(Semaphore::new(config.concurrency.max(1))),
            tracked_max: tracked_max.max(1),
            epoch: Instant::now(),
            inner: Mutex::new(Inner::default()),
            wake: Notify::new(),
            notifier: OnceLock::new(),
        });
        let weak = Arc::downgrade(&resolver);
        engine.set_tracker(Arc::new(move |key: &TxnKey| {
            if let Some(r) = weak.upgrade() {
                r.track(key);
            }
        }));
        resolver
    }

    /// Installs the notifier's intake.
    pub fn set_notifier(&self, offer: Offer) {
        let _ = self.notifier.set(offer);
    }

    fn mono_ms(&self) -> i64 {
        ms(self.epoch.elapsed())
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Schedules `key` now (when it is not already scheduled sooner or being worked on).
    pub fn track(&self, key: &TxnKey) {
        let now = self.mono_ms();
        if self.schedule_at(key, now, 2) {
            self.wake.notify_one();
        }
    }

    fn schedule_at(&self, key: &TxnKey, at: i64, prio: u8) -> bool {
        let mut inner = self.inner();
        if inner.running.contains(key) {
            // The worker plans again when it is done.
            return false;
        }
        match inner.due.get(key) {
            Some(&due) if due <= at => return false,
            None if inner.due.len() >= self.tracked_max => return false,
            _ => {}
        }
        inner.push(key, at, prio);
        metrics::gauge!(telemetry::RESOLVER_TRACKED).set(crate::engine::usize_f64(inner.due.len()));
        true
    }

    /// The next due key if it is due now, marked running; or when the next one is due.
    fn pop_due(&self, now: i64) -> Result<TxnKey, Option<i64>> {
        self.inner().pop_due(now)
    }

    /// Runs until `shutdown` resolves: the sweep at start (crash recovery), the due
    /// transactions, and a sweep every `sweep_interval`.
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut next_sweep = Instant::now();
        loop {
            if Instant::now() >= next_sweep {
                self.sweep().await;
                next_sweep = Instant::now() + self.sweep_interval;
            }
            // Start every due transaction a worker is free for.
            let next_due = loop {
                let Ok(permit) = Arc::clone(&self.workers).try_acquire_owned() else {
                    break Some(self.mono_ms().saturating_add(10));
                };
                match self.pop_due(self.mono_ms()) {
                    Ok(key) => {
                        let me = Arc::clone(&self);
                        tokio::spawn(async move {
                            me.visit(&key).await;
                            drop(permit);
                        });
                    }
                    Err(next) => break next,
                }
            };
            let until_due = next_due
                .map(|at| Duration::from_millis(u64::try_from(at - self.mono_ms()).unwrap_or(0)))
                .unwrap_or(self.sweep_interval);
            let until_sweep = next_sweep.saturating_duration_since(Instant::now());
            tokio::select! {
                () = &mut shutdown => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(until_due.min(until_sweep)) => {}
            }
        }
    }

    /// Reads the whole pending table: schedules what is not scheduled, offers owed
    /// notifications, and counts the exceptions.
    pub async fn sweep(&self) {
        let journal = Arc::clone(self.engine.journal());
        let found = tokio::task::spawn_blocking(move || {
            let mut out: Vec<(TxnKey, bool, bool)> = Vec::new();
            let iter = match journal.pending() {
                Ok(i) => i,
                Err(e) => {
                    tracing::error!(error = %e, "pending table unreadable");
                    return out;
                }
            };
            for item in iter {
                match item {
                    Ok(s) => out.push((s.txn.clone(), s.exception.is_some(), owes_notice(&s))),
                    Err(e) => tracing::error!(error = %e, "pending entry unreadable"),
                }
            }
            out
        })
        .await
        .unwrap_or_default();
        let mut exceptions = 0usize;
        for (key, exception, notice) in &found {
            if *exception {
                exceptions += 1;
            } else {
                self.track(key);
            }
            if *notice {
                self.offer(key);
            }
        }
        metrics::gauge!(telemetry::PENDING).set(crate::engine::usize_f64(found.len()));
        metrics::gauge!(telemetry::EXCEPTIONS).set(crate::engine::usize_f64(exceptions));
        if exceptions != 0 {
            tracing::warn!(
                exceptions,
                "transactions wait for an operator (exceptions list)"
            );
        }
    }

    fn offer(&self, key: &TxnKey) {
        if let Some(n) = self.notifier.get() {
            n(key);
        }
    }

    fn finish_visit(&self, key: &TxnKey, next: Option<(i64, u8)>) {
        {
            let mut inner = self.inner();
            inner.running.remove(key);
            if next.is_none() {
                inner.memory.remove(key);
            }
        }
        if let Some((at, prio)) = next {
            if self.schedule_at(key, at, prio) {
                self.wake.notify_one();
            } else if !self.inner().due.contains_key(key) {
                // Not scheduled (the table is full): the next sweep takes it up again, afresh.
                self.inner().memory.remove(key);
            }
        }
    }

    /// One visit of a due transaction: plan, act, plan again, until it waits or is done.
    async fn visit(&self, key: &TxnKey) {
        // Gives the key back even if the visit panics, so it is never stuck as running.
        struct Running<'r>(&'r Resolver, &'r TxnKey, Option<Option<(i64, u8)>>);
        impl Drop for Running<'_> {
            fn drop(&mut self) {
                let next = self
                    .2
                    .take()
                    .unwrap_or(Some((self.0.mono_ms() + ms(BUSY_RETRY), 1)));
                self.0.finish_visit(self.1, next);
            }
        }
        let mut guard = Running(self, key, None);
        guard.2 = Some(self.visit_locked(key).await);
    }

    async fn visit_locked(&self, key: &TxnKey) -> Option<(i64, u8)> {
        let (held, mut state) = match self.engine.hold(key).await {
            Ok(h) => h,
            Err(Acted::Gone) => return None,
            Err(_) => return Some((self.mono_ms() + ms(BUSY_RETRY), 1)),
        };
        // Should every round act (a planning bug), look again a little later.
        let mut next = Some((self.mono_ms() + ms(BUSY_RETRY), 1));
        for _ in 0..ROUNDS_MAX {
            let (wall, mono) = (self.engine.now_ms(), self.mono_ms());
            let memory = *self
                .inner()
                .memory
                .entry(key.clone())
                .or_insert_with(|| Memory::seen(&state, wall, mono));
            let step = plan::plan(&state, &memory, wall, mono, &self.schedule);
            let phase = step.phase();
            let acted = match step {
                Step::Done | Step::Parked => {
                    next = None;
                    break;
                }
                Step::Wait { at_mono_ms } => {
                    next = Some((at_mono_ms, priority(memory.phase)));
                    break;
                }
                Step::GiveUp { reason } => {
                    tracing::error!(
                        merchant = %key.merchant,
                        partner_trans_id = %key.partner_trans_id,
                        %reason,
                        "resolver gives up: left to an operator (exceptions list)"
                    );
                    metrics::counter!(telemetry::RESOLVER_GAVE_UP).increment(1);
                    self.engine.give_up(key, reason).await
                }
                Step::Query => self.engine.resolve_query(key, state.clone()).await,
                Step::Cancel => self.engine.resolve_cancel(key, state.clone()).await,
                Step::Refund { partner_refund_id } => {
                    self.engine
                        .resolve_refund(key, state.clone(), &partner_refund_id)
                        .await
                }
                Step::Reverse => self.engine.resolve_reverse(key, state.clone()).await,
            };
            let name = phase.map_or("give_up", phase_name);
            if let Some(p) = phase {
                if let Some(m) = self.inner().memory.get_mut(key) {
                    m.called(p, self.mono_ms());
                }
            }
            match acted {
                Acted::Done(s) => {
                    metrics::counter!(telemetry::RESOLVER_STEPS, "step" => name, "result" => "done")
                        .increment(1);
                    state = *s;
                }
                Acted::Gone => return None,
                Acted::Busy(b) => {
                    tracing::debug!(busy = b.as_str(), "resolver step not done; retrying");
                    metrics::counter!(telemetry::RESOLVER_STEPS, "step" => name, "result" => "busy")
                        .increment(1);
                    next = Some((self.mono_ms() + retry_after(b), priority(phase)));
                    break;
                }
            }
        }
        drop(held);
        if owes_notice(&state) {
            self.offer(key);
        }
        next
    }

    /// An operator's "resolve now": journals the action (which clears an exception) and
    /// starts the schedule again from the beginning, now.
    pub async fn resolve_now(
        &self,
        key: &TxnKey,
        who: String,
        why: String,
    ) -> Result<TxnState, OperatorError> {
        let (held, state) = self.engine.hold(key).await.map_err(operator_error)?;
        if !state.is_pending() {
            return Err(OperatorError::Final);
        }
        let state = match self
            .engine
            .operator_action(key, who, why, "resolve now".to_owned())
            .await
        {
            Acted::Done(s) => *s,
            other => return Err(operator_error(other)),
        };
        // Forgotten under the lock, so no visit can plan with the old counts in between.
        self.inner().memory.remove(key);
        drop(held);
        self.track(key);
        if owes_notice(&state) {
            self.offer(key);
        }
        Ok(state)
    }

    /// An operator's "cancel": journals the action, sends the cancel, and leaves it to the
    /// resolver to resend until it gets a definite answer.
    pub async fn operator_cancel(
        &self,
        key: &TxnKey,
        who: String,
        why: String,
    ) -> Result<TxnState, OperatorError> {
        let (held, state) = self.engine.hold(key).await.map_err(operator_error)?;
        if !Engine::cancellable(&state) {
            return Err(OperatorError::NotCancellable(format!("{:?}", state.status)));
        }
        let state = match self
            .engine
            .operator_action(key, who, why, "cancel".to_owned())
            .await
        {
            Acted::Done(s) => *s,
            other => return Err(operator_error(other)),
        };
        let state = match self.engine.resolve_cancel(key, state).await {
            Acted::Done(s) => *s,
            other => {
                // The action is journaled but the cancel was not sent: the resolver goes on
                // with whatever the transaction still needs; the operator may ask again.
                drop(held);
                self.track(key);
                return Err(operator_error(other));
            }
        };
        self.inner().memory.remove(key);
        drop(held);
        self.track(key);
        Ok(state)
    }
}

fn operator_error(a: Acted) -> OperatorError {
    match a {
        Acted::Gone => OperatorError::NotFound,
        Acted::Busy(b) => OperatorError::Busy(b.as_str()),
        Acted::Done(_) => OperatorError::Busy("unexpected"),
    }
}

fn retry_after(b: Busy) -> i64 {
    match b {
        Busy::Upstream => 2_000,
        _ => ms(BUSY_RETRY),
    }
}

fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Query => "query",
        Phase::Cancel => "cancel",
        Phase::Refund => "refund",
        Phase::Reverse => "reverse",
    }
}

/// True when the merchant is owed a notification the notifier should work on.
pub fn owes_notice(state: &TxnState) -> bool {
    state.notify.due.is_some() && state.notify_url.is_some() && state.exception.is_none()
}

#[cfg(test)]
mod tests;
