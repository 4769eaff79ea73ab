//! The circuit breaker of one upstream endpoint, as a pure state machine: time is an argument,
//! nothing here reads a clock, sleeps or locks, so every transition is tested with made-up
//! instants.
//!
//! ```text
//!            failures_max consecutive failures
//!   Closed ─────────────────────────────────────▶ Open { until = now + cool_down }
//!     ▲                                             │
//!     │ probe answered                              │ now ≥ until: the next request
//!     │                                             ▼ is admitted as the one probe
//!     └──────────────────────────────────────── HalfOpen ──── probe failed ──▶ Open
//! ```
//!
//! A *failure* is a connect failure (TCP or TLS, including the connect deadline) or a request
//! timeout: signs that the endpoint cannot take traffic. An *answer* (any HTTP 200 with a
//! document, even a gateway error) is a success. Everything else the endpoint can do (reset a
//! connection, answer 502 or 429, send a body that is not a document or does not verify) is
//! *neutral*: the endpoint is reachable, so it does not count towards opening, and a probe that
//! ends neutral only gives its slot back so that the next request probes again.
//!
//! Only the probe decides a half-open breaker: requests admitted while it was still closed may
//! finish after it opened, and their outcomes are ignored there.

use std::time::{Duration, Instant};

/// Default consecutive failures that open a breaker.
pub const DEFAULT_FAILURES_MAX: u32 = 5;
/// Default time an open breaker stays open before it lets a probe through.
pub const DEFAULT_COOL_DOWN: Duration = Duration::from_secs(5);

/// When a breaker opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker (at least 1).
    pub failures_max: u32,
    /// How long it stays open before one probe is let through.
    pub cool_down: Duration,
}

impl Default for BreakerConfig {
    fn default() -> BreakerConfig {
        BreakerConfig {
            failures_max: DEFAULT_FAILURES_MAX,
            cool_down: DEFAULT_COOL_DOWN,
        }
    }
}

/// The state as reported to metrics and the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Traffic flows.
    Closed,
    /// One probe may go (or is out); others are refused.
    HalfOpen,
    /// Refused until the cool-down ends.
    Open,
}

impl BreakerState {
    /// The gauge value of `telemetry::BREAKER_STATE`: 0 closed, 1 half-open, 2 open.
    pub const fn gauge(self) -> u8 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }

    /// A label for logs and the admin API.
    pub const fn label(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::HalfOpen => "half_open",
            BreakerState::Open => "open",
        }
    }
}

/// How a request was let through; given back to [`Breaker::record`] with its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Through a closed breaker.
    Normal,
    /// As the one probe of a half-open breaker.
    Probe,
}

/// What became of an admitted request, as far as the breaker cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The endpoint answered.
    Success,
    /// Connect failure or timeout.
    Failure,
    /// Reachable but misbehaving, or abandoned: no verdict.
    Neutral,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probe_out: bool },
}

/// One endpoint's breaker.
#[derive(Debug, Clone)]
pub struct Breaker {
    config: BreakerConfig,
    state: State,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Breaker {
        Breaker {
            config: BreakerConfig {
                failures_max: config.failures_max.max(1),
                cool_down: config.cool_down,
            },
            state: State::Closed { failures: 0 },
        }
    }

    /// The state at `now` (an open breaker whose cool-down is over reads half-open).
    pub fn state(&self, now: Instant) -> BreakerState {
        match self.state {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { until } if now < until => BreakerState::Open,
            State::Open { .. } | State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// True when a request may be admitted at `now` (without admitting it).
    pub fn would_admit(&self, now: Instant) -> bool {
        match self.state {
            State::Closed { .. } => true,
            State::Open { until } => now >= until,
            State::HalfOpen { probe_out } => !probe_out,
        }
    }

    /// Admits a request at `now`, or refuses it (`None`).
    pub fn admit(&mut self, now: Instant) -> Option<Admission> {
        match self.state {
            State::Closed { .. } => Some(Admission::Normal),
            State::Open { until } if now < until => None,
            State::Open { .. } | State::HalfOpen { probe_out: false } => {
                self.state = State::HalfOpen { probe_out: true };
                Some(Admission::Probe)
            }
            State::HalfOpen { probe_out: true } => None,
        }
    }

    /// Records the outcome of a request admitted as `admission`, at `now`.
    pub fn record(&mut self, admission: Admission, outcome: Outcome, now: Instant) {
        self.state = match (self.state, admission, outcome) {
            (State::Closed { .. }, _, Outcome::Success) => State::Closed { failures: 0 },
            (State::Closed { failures }, _, Outcome::Failure) => {
                let failures = failures.saturating_add(1);
                if failures >= self.config.failures_max {
                    self.open(now)
                } else {
                    State::Closed { failures }
                }
            }
            (State::HalfOpen { .. }, Admission::Probe, Outcome::Success) => {
                State::Closed { failures: 0 }
            }
            (State::HalfOpen { .. }, Admission::Probe, Outcome::Failure) => self.open(now),
            (State::HalfOpen { .. }, Admission::Probe, Outcome::Neutral) => {
                State::HalfOpen { probe_out: false }
            }
            // Neutral outcomes in a closed breaker, and late outcomes of requests admitted
            // before the breaker opened: no change.
            (state, _, _) => state,
        };
    }

    fn open(&self, now: Instant) -> State {
        State::Open {
            until: now + self.config.cool_down,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOL: Duration = Duration::from_secs(5);

    fn breaker(failures_max: u32) -> Breaker {
        Breaker::new(BreakerConfig {
            failures_max,
            cool_down: COOL,
        })
    }

    fn fail(b: &mut Breaker, now: Instant) {
        let a = b.admit(now).expect("admitted");
        b.record(a, Outcome::Failure, now);
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let t0 = Instant::now();
        let mut b = breaker(3);
        fail(&mut b, t0);
        fail(&mut b, t0);
        // A success in between starts the count again.
        b.record(Admission::Normal, Outcome::Success, t0);
        fail(&mut b, t0);
        fail(&mut b, t0);
        assert_eq!(b.state(t0), BreakerState::Closed);
        // Neutral outcomes neither count nor reset.
        b.record(Admission::Normal, Outcome::Neutral, t0);
        assert_eq!(b.state(t0), BreakerState::Closed);
        fail(&mut b, t0);
        assert_eq!(b.state(t0), BreakerState::Open);
        assert_eq!(b.admit(t0), None);
        assert!(!b.would_admit(t0 + COOL - Duration::from_millis(1)));
    }

    #[test]
    fn half_open_lets_one_probe_through_and_closes_on_success() {
        let t0 = Instant::now();
        let mut b = breaker(1);
        fail(&mut b, t0);
        let later = t0 + COOL;
        assert_eq!(b.state(later), BreakerState::HalfOpen);
        assert!(b.would_admit(later));
        assert_eq!(b.admit(later), Some(Admission::Probe));
        // Only one probe at a time.
        assert_eq!(b.admit(later), None);
        assert!(!b.would_admit(later));
        b.record(Admission::Probe, Outcome::Success, later);
        assert_eq!(b.state(later), BreakerState::Closed);
        assert_eq!(b.admit(later), Some(Admission::Normal));
    }

    #[test]
    fn a_failed_probe_opens_again_for_a_full_cool_down() {
        let t0 = Instant::now();
        let mut b = breaker(1);
        fail(&mut b, t0);
        let t1 = t0 + COOL + Duration::from_secs(1);
        assert_eq!(b.admit(t1), Some(Admission::Probe));
        b.record(Admission::Probe, Outcome::Failure, t1);
        assert_eq!(b.state(t1), BreakerState::Open);
        assert_eq!(b.admit(t1 + COOL - Duration::from_millis(1)), None);
        assert_eq!(b.admit(t1 + COOL), Some(Admission::Probe));
    }

    #[test]
    fn a_neutral_probe_gives_its_slot_back() {
        let t0 = Instant::now();
        let mut b = breaker(1);
        fail(&mut b, t0);
        let t1 = t0 + COOL;
        assert_eq!(b.admit(t1), Some(Admission::Probe));
        b.record(Admission::Probe, Outcome::Neutral, t1);
        assert_eq!(b.state(t1), BreakerState::HalfOpen);
        assert_eq!(b.admit(t1), Some(Admission::Probe));
    }

    #[test]
    fn late_outcomes_of_normal_requests_do_not_decide() {
        let t0 = Instant::now();
        let mut b = breaker(1);
        // Two requests admitted while closed; the first fails and opens the breaker.
        let a1 = b.admit(t0).expect("admitted");
        let a2 = b.admit(t0).expect("admitted");
        b.record(a1, Outcome::Failure, t0);
        // The second's late success does not close it.
        b.record(a2, Outcome::Success, t0);
        assert_eq!(b.state(t0), BreakerState::Open);
        // Nor does a late success while a probe is out.
        let t1 = t0 + COOL;
        assert_eq!(b.admit(t1), Some(Admission::Probe));
        b.record(Admission::Normal, Outcome::Success, t1);
        b.record(Admission::Normal, Outcome::Failure, t1);
        assert_eq!(b.state(t1), BreakerState::HalfOpen);
        assert_eq!(b.admit(t1), None);
    }

    #[test]
    fn zero_failures_max_means_one() {
        let t0 = Instant::now();
        let mut b = breaker(0);
        assert_eq!(b.state(t0), BreakerState::Closed);
        fail(&mut b, t0);
        assert_eq!(b.state(t0), BreakerState::Open);
    }

    #[test]
    fn gauge_values() {
        assert_eq!(BreakerState::Closed.gauge(), 0);
        assert_eq!(BreakerState::HalfOpen.gauge(), 1);
        assert_eq!(BreakerState::Open.gauge(), 2);
    }
}
