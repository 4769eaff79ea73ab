//! Adaptive concurrency toward one endpoint: how many calls may be in flight there at once.
//!
//! The pool's `pool_size` is a hard ceiling chosen in advance; how much Alipay (or the balancer
//! in front of it) accepts from this account right now is not known in advance and changes. So
//! the bound moves, AIMD as in TCP congestion control ([`Aimd`], pure, given its observations):
//!
//! - **Additive increase.** A call answered within the latency target (twice the lowest latency
//!   seen lately, and at least that plus [`LATENCY_TARGET_SLACK`]) counts toward an increase;
//!   after as many of them as the limit, the limit grows by one, up to `pool_size`. A slower
//!   answer changes nothing: the endpoint is busy but not refusing.
//! - **Multiplicative decrease.** An overload signal — an HTTP 429 (`throttled`) or a call that
//!   got no answer before its deadline — cuts the limit to `backoff_percent` of itself, down to
//!   `concurrency_min`. Only calls that started after the last cut can cut again (an epoch is
//!   noted when a call starts): a wave of 429s answering calls that were all in flight at once
//!   is one signal, not one per call, so a short burst cannot drive the limit to its floor.
//! - Everything else (connect failures: the breaker's business; other statuses, bad bodies,
//!   calls abandoned by their caller) is neutral.
//!
//! The limit starts at `pool_size`: nothing changes until the endpoint pushes back.
//!
//! [`ConcurrencyLimiter`] applies the limit with a FIFO semaphore whose permits follow it: an
//! increase adds permits, a decrease takes back the free ones at once and the rest as the calls
//! holding them end. A call beyond the limit waits for a permit, but never past its deadline: a
//! call that could not start in time is `Call::NotSent`, nothing having been written.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Default `accounts[].concurrency_min`: the floor of the adaptive limit (at most `pool_size`).
pub const DEFAULT_CONCURRENCY_MIN: usize = 4;
/// Default multiplicative decrease, percent: an overload signal halves the limit.
pub const DEFAULT_BACKOFF_PERCENT: u8 = 50;
/// An answer within this factor of the lowest recent latency counts toward an increase.
pub const LATENCY_TARGET_FACTOR: u32 = 2;
/// …or within this much above it, whichever is more: at loopback latencies (a millisecond) a
/// factor alone would read scheduling noise as congestion.
pub const LATENCY_TARGET_SLACK: Duration = Duration::from_millis(10);
/// The lowest latency is taken over windows of this many answers, so that a lasting change of
/// the endpoint's latency moves the target within a window.
pub const LATENCY_WINDOW_ANSWERS: u32 = 1_000;

/// How the limit moves; [`Default`] is what production uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimiterOptions {
    /// The floor of the limit (clamped to 1..=`pool_size`).
    pub concurrency_min: usize,
    /// The limit after an overload signal, percent of what it was (1 to 99).
    pub backoff_percent: u8,
}

impl Default for LimiterOptions {
    fn default() -> LimiterOptions {
        LimiterOptions {
            concurrency_min: DEFAULT_CONCURRENCY_MIN,
            backoff_percent: DEFAULT_BACKOFF_PERCENT,
        }
    }
}

/// What one finished call says about the endpoint's capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Answered, after this long (from the start of the exchange, not of the wait for a slot).
    Answered(Duration),
    /// Throttled (HTTP 429) or no answer before the deadline.
    Overload,
    /// Says nothing about capacity.
    Neutral,
}

/// The AIMD limit, pure: a function of the observations given to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aimd {
    min: usize,
    max: usize,
    backoff_percent: usize,
    limit: usize,
    /// Answers within the target since the last change.
    good: usize,
    /// Bumped at every decrease; a call's overload counts only if it started in this epoch.
    epoch: u64,
    /// The lowest latency of the previous window and of this one.
    floor: Option<Duration>,
    window_floor: Option<Duration>,
    window_answers: u32,
}

impl Aimd {
    /// A limit between `options.concurrency_min` and `max` (at least 1), starting at `max`.
    pub fn new(max: usize, options: LimiterOptions) -> Aimd {
        let max = max.max(1);
        Aimd {
            min: options.concurrency_min.clamp(1, max),
            max,
            backoff_percent: usize::from(options.backoff_percent.clamp(1, 99)),
            limit: max,
            good: 0,
            epoch: 0,
            floor: None,
            window_floor: None,
            window_answers: 0,
        }
    }

    /// The limit now.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The floor of the limit.
    pub fn min(&self) -> usize {
        self.min
    }

    /// The ceiling of the limit.
    pub fn max(&self) -> usize {
        self.max
    }

    /// The epoch to note when a call starts, and give back with its [`Signal`].
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The latency under which an answer counts toward an increase, once one was seen.
    pub fn latency_target(&self) -> Option<Duration> {
        let floor = match (self.floor, self.window_floor) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        let scaled = floor.saturating_mul(LATENCY_TARGET_FACTOR);
        Some(scaled.max(floor.saturating_add(LATENCY_TARGET_SLACK)))
    }

    /// Takes the signal of a call that started in `epoch`; returns the new limit.
    pub fn observe(&mut self, epoch: u64, signal: Signal) -> usize {
        match signal {
            Signal::Neutral => {}
            Signal::Answered(latency) => self.answered(latency),
            Signal::Overload if epoch == self.epoch => {
                let cut = self.limit.saturating_mul(self.backoff_percent) / 100;
                // Strictly lower (down to the floor), even when the cut rounds to no change.
                self.limit = cut.min(self.limit.saturating_sub(1)).max(self.min);
                self.good = 0;
                self.epoch = self.epoch.wrapping_add(1);
            }
            // Started before the last cut: that cut already answered this wave.
            Signal::Overload => {}
        }
        self.limit
    }

    fn answered(&mut self, latency: Duration) {
        self.window_floor = Some(self.window_floor.map_or(latency, |f| f.min(latency)));
        self.window_answers = self.window_answers.saturating_add(1);
        let within = self.latency_target().is_some_and(|t| latency <= t);
        if self.window_answers >= LATENCY_WINDOW_ANSWERS {
            self.floor = self.window_floor.take();
            self.window_answers = 0;
        }
        if !within {
            return;
        }
        self.good = self.good.saturating_add(1);
        if self.good >= self.limit {
            self.good = 0;
            self.limit = self.limit.saturating_add(1).min(self.max);
        }
    }
}

/// Applies an [`Aimd`] limit to the calls of one endpoint.
#[derive(Debug)]
pub struct ConcurrencyLimiter {
    permits: Arc<Semaphore>,
    state: Mutex<LimiterState>,
    in_use: AtomicUsize,
}

#[derive(Debug)]
struct LimiterState {
    aimd: Aimd,
    /// Permits to take back as the calls holding them end (a decrease larger than the free
    /// permits). Invariant: free permits + permits held − debt = the limit, and while there is
    /// debt no permit is free.
    debt: usize,
}

/// One call's slot: hold it for the whole exchange, give it its [`Signal`], drop it.
#[derive(Debug)]
pub struct Slot<'l> {
    limiter: &'l ConcurrencyLimiter,
    permit: Option<OwnedSemaphorePermit>,
    epoch: u64,
    signal: Signal,
}

impl Slot<'_> {
    /// What the call came to (Neutral unless set).
    pub fn signal(&mut self, signal: Signal) {
        self.signal = signal;
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.limiter
            .finish(self.permit.take(), self.epoch, self.signal);
    }
}

impl ConcurrencyLimiter {
    /// A limiter starting at the AIMD's limit.
    pub fn new(aimd: Aimd) -> ConcurrencyLimiter {
        ConcurrencyLimiter {
            permits: Arc::new(Semaphore::new(aimd.limit())),
            state: Mutex::new(LimiterState { aimd, debt: 0 }),
            in_use: AtomicUsize::new(0),
        }
    }

    fn state(&self) -> MutexGuard<'_, LimiterState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The limit now.
    pub fn limit(&self) -> usize {
        self.state().aimd.limit()
    }

    /// Calls holding a slot now.
    pub fn in_use(&self) -> usize {
        self.in_use.load(Ordering::Acquire)
    }

    /// Waits for a slot until `deadline` (FIFO); None when none became free in time.
    pub async fn acquire_until(&self, deadline: Instant) -> Option<Slot<'_>> {
        let wait = Arc::clone(&self.permits).acquire_owned();
        let permit = tokio::time::timeout_at(deadline, wait).await.ok()?.ok()?;
        self.in_use.fetch_add(1, Ordering::AcqRel);
        let epoch = self.state().aimd.epoch();
        Some(Slot {
            limiter: self,
            permit: Some(permit),
            epoch,
            signal: Signal::Neutral,
        })
    }

    /// A slot ended: the AIMD takes its signal, the permits follow the limit, and the slot's
    /// permit goes back (or pays a debt).
    fn finish(&self, permit: Option<OwnedSemaphorePermit>, epoch: u64, signal: Signal) {
        let mut s = self.state();
        let before = s.aimd.limit();
        let after = s.aimd.observe(epoch, signal);
        if after > before {
            let raise = after - before;
            let paid = raise.min(s.debt);
            s.debt -= paid;
            self.permits.add_permits(raise - paid);
        } else if after < before {
            s.debt = s.debt.saturating_add(before - after);
            let taken = self.permits.forget_permits(s.debt);
            s.debt -= taken;
        }
        if let Some(p) = permit {
            if s.debt > 0 {
                p.forget();
                s.debt -= 1;
            } else {
                drop(p);
            }
            self.in_use.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn aimd(max: usize, min: usize) -> Aimd {
        Aimd::new(
            max,
            LimiterOptions {
                concurrency_min: min,
                backoff_percent: 50,
            },
        )
    }

    /// Feeds each signal as from a call started just before it (the current epoch); returns
    /// the limit after each.
    fn run(a: &mut Aimd, signals: &[Signal]) -> Vec<usize> {
        signals
            .iter()
            .map(|s| {
                let e = a.epoch();
                a.observe(e, *s)
            })
            .collect()
    }

    const OVER: Signal = Signal::Overload;
    const FAST: Signal = Signal::Answered(Duration::from_millis(20));

    #[test]
    fn starts_at_the_ceiling_and_halves_on_each_overload_down_to_the_floor() {
        let mut a = aimd(32, 4);
        assert_eq!(a.limit(), 32);
        assert_eq!(run(&mut a, &[OVER; 5]), [16, 8, 4, 4, 4]);
    }

    #[test]
    fn grows_by_one_after_as_many_good_answers_as_the_limit() {
        let mut a = aimd(8, 2);
        run(&mut a, &[OVER; 3]);
        assert_eq!(a.limit(), 2);
        // 2 answers at 2, then 3 at 3, then 4 at 4 …
        let limits = run(&mut a, &[FAST; 9]);
        assert_eq!(limits, [2, 3, 3, 3, 4, 4, 4, 4, 5]);
        // … and never past the ceiling.
        run(&mut a, &[FAST; 100]);
        assert_eq!(a.limit(), 8);
    }

    #[test]
    fn a_wave_of_overloads_from_calls_in_flight_together_cuts_once() {
        let mut a = aimd(16, 1);
        // Eight calls start together, all in epoch 0; all are throttled.
        let started = a.epoch();
        let limits: Vec<usize> = (0..8).map(|_| a.observe(started, OVER)).collect();
        assert_eq!(limits, [8; 8]);
        // A call started after the cut can cut again.
        let e = a.epoch();
        assert_eq!(a.observe(e, OVER), 4);
    }

    #[test]
    fn a_slow_answer_holds_the_limit() {
        let mut a = aimd(8, 2);
        run(&mut a, &[OVER; 2]);
        assert_eq!(a.limit(), 2);
        // The first answer sets the target: max(2 × 20 ms, 20 ms + 10 ms) = 40 ms.
        run(&mut a, &[FAST]);
        assert_eq!(a.latency_target(), Some(ms(40)));
        let slow = Signal::Answered(ms(41));
        assert_eq!(run(&mut a, &[slow; 10]), [2; 10]);
        // The good answer counted before the slow ones still counts.
        assert_eq!(run(&mut a, &[FAST]), [3]);
    }

    #[test]
    fn the_target_has_a_slack_at_small_latencies() {
        let mut a = aimd(8, 2);
        run(&mut a, &[Signal::Answered(ms(1))]);
        assert_eq!(a.latency_target(), Some(ms(11)));
    }

    #[test]
    fn neutral_signals_change_nothing() {
        let mut a = aimd(8, 2);
        let before = a.clone();
        run(&mut a, &[Signal::Neutral; 20]);
        assert_eq!(a, before);
    }

    #[test]
    fn the_latency_floor_follows_a_lasting_change_within_two_windows() {
        let mut a = aimd(8, 2);
        run(&mut a, &[Signal::Answered(ms(5))]);
        assert_eq!(a.latency_target(), Some(ms(15)));
        run(&mut a, &[OVER; 2]);
        assert_eq!(a.limit(), 2);
        // The endpoint becomes slower for good: 100 ms answers. While the 5 ms answer is in the
        // previous window or this one, they are too slow to count.
        let slow = Signal::Answered(ms(100));
        let window = usize::try_from(LATENCY_WINDOW_ANSWERS).unwrap();
        run(&mut a, &vec![slow; window * 2 - 1]);
        assert_eq!(a.limit(), 2);
        // Then the floor is theirs, and they count toward increases again.
        assert_eq!(a.latency_target(), Some(ms(200)));
        run(&mut a, &[slow; 2]);
        assert_eq!(a.limit(), 3);
    }

    #[test]
    fn bounds_are_clamped() {
        let a = aimd(3, 10);
        assert_eq!((a.min(), a.max(), a.limit()), (3, 3, 3));
        let a = aimd(0, 0);
        assert_eq!((a.min(), a.max(), a.limit()), (1, 1, 1));
        let mut a = Aimd::new(
            10,
            LimiterOptions {
                concurrency_min: 1,
                backoff_percent: 99,
            },
        );
        // 99 % of 10 rounds to 9; of 2 to 1: always strictly lower.
        assert_eq!(run(&mut a, &[OVER; 3]), [9, 8, 7]);
    }

    #[tokio::test]
    async fn permits_follow_the_limit_and_calls_beyond_it_wait_until_their_deadline() {
        let limiter = ConcurrencyLimiter::new(aimd(4, 1));
        let soon = || Instant::now() + ms(50);
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(limiter.acquire_until(soon()).await.unwrap());
        }
        assert_eq!(limiter.in_use(), 4);
        assert!(limiter.acquire_until(soon()).await.is_none());
        // One of them is throttled: 4 → 2. The free permits are none, so two are owed.
        let mut s = held.pop().unwrap();
        s.signal(OVER);
        drop(s);
        assert_eq!(limiter.limit(), 2);
        assert_eq!(limiter.in_use(), 3);
        // Its permit paid one of the debts; the next one to end pays the other.
        assert!(limiter.acquire_until(soon()).await.is_none());
        drop(held.pop());
        assert!(limiter.acquire_until(soon()).await.is_none());
        // Now 2 in use at a limit of 2: one more ends, one slot frees.
        drop(held.pop());
        assert_eq!(limiter.in_use(), 1);
        let again = limiter.acquire_until(soon()).await.unwrap();
        assert!(limiter.acquire_until(soon()).await.is_none());
        drop(again);
        drop(held);
        assert_eq!(limiter.in_use(), 0);
        // Two free permits at a limit of 2; good answers raise it and add permits.
        for _ in 0..2 {
            let mut s = limiter.acquire_until(soon()).await.unwrap();
            s.signal(FAST);
        }
        assert_eq!(limiter.limit(), 3);
        let three: Vec<_> = acquire_n(&limiter, 3, soon()).await;
        assert_eq!(three.len(), 3);
        assert!(limiter.acquire_until(soon()).await.is_none());
    }

    async fn acquire_n(limiter: &ConcurrencyLimiter, n: usize, deadline: Instant) -> Vec<Slot<'_>> {
        let mut out = Vec::new();
        for _ in 0..n {
            if let Some(s) = limiter.acquire_until(deadline).await {
                out.push(s);
            }
        }
        out
    }

    #[tokio::test]
    async fn a_cut_larger_than_the_free_permits_takes_the_free_ones_at_once() {
        let limiter = ConcurrencyLimiter::new(aimd(8, 1));
        let soon = || Instant::now() + ms(50);
        let mut s = limiter.acquire_until(soon()).await.unwrap();
        // 7 free; a cut to 4 takes 3 of them, and this slot's permit goes back.
        s.signal(OVER);
        drop(s);
        assert_eq!(limiter.limit(), 4);
        let four = acquire_n(&limiter, 5, soon()).await;
        assert_eq!(four.len(), 4);
    }
}
