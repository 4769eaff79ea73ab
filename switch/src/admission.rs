//! Admission control at the gateway: which authenticated requests may start at all.
//!
//! Two limits, both checked after the caller's signature verified (an unauthenticated request
//! must not be able to spend a caller's allowance) and before the engine (a refused request
//! journals nothing and sends nothing):
//!
//! - **In-flight lanes.** The gateway's in-flight bounds (all callers, and per caller) have a
//!   lane for new pays: a pay may hold at most [`share_of`] the bound, the same share the engine
//!   gives new pays of its in-flight table. The rest is kept for the requests that finish or
//!   read transactions (queries, cancels, refunds), so a flood of pays, even ones the engine
//!   refuses at once, cannot take every slot from a cashier that wants to cancel.
//! - **Rates.** A caller with a `rate_per_s` has a token bucket ([`TokenBucket`]): each pay and
//!   each refund takes a token, replays included; a request that finds the bucket empty is
//!   refused. Queries and cancels never take a token: they move no money, a cancel is the
//!   cashier's way out of an unknown pay, a final transaction's query is answered from the
//!   journal and an unresolved one asks upstream at most once per query interval, and both are
//!   still bounded by the caller's in-flight limit.
//!
//! Every refusal is the gateway's "not processed, safe to retry" answer (`UNKNOWN` +
//! `SYSTEM_BUSY`, see [`crate::gateway`]) and is counted in
//! [`crate::telemetry::ADMISSION_REFUSALS`] by [`Refusal`] reason.
//!
//! The bucket is pure: it is given the time (a [`Duration`] since an origin of the caller's
//! choosing), so it is tested with an explicit clock; [`RateLimits`] reads a monotonic clock.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use alipay::Service;

/// Highest accepted `rate_per_s`.
pub const RATE_PER_S_MAX: f64 = 1_000_000.0;
/// Highest accepted `burst`.
pub const BURST_MAX: f64 = 1_000_000.0;

/// Why a rate or burst is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    /// `rate_per_s` is not a number above 0 and at most [`RATE_PER_S_MAX`].
    #[error("rate_per_s must be above 0 and at most 1000000")]
    Rate,
    /// `burst` is not a number from 1 to [`BURST_MAX`].
    #[error("burst must be from 1 to 1000000")]
    Burst,
}

/// A caller's allowance of pays and refunds: `rate_per_s` on average, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    rate_per_s: f64,
    burst: f64,
}

// The fields are checked finite by the constructor, so equality is an equivalence.
impl Eq for RateLimit {}

impl RateLimit {
    /// `rate_per_s` tokens a second, up to `burst` (default: one second's worth, at least 1).
    pub fn new(rate_per_s: f64, burst: Option<f64>) -> Result<RateLimit, RateError> {
        if !(rate_per_s.is_finite() && rate_per_s > 0.0 && rate_per_s <= RATE_PER_S_MAX) {
            return Err(RateError::Rate);
        }
        let burst = burst.unwrap_or(rate_per_s.max(1.0));
        if !(burst.is_finite() && (1.0..=BURST_MAX).contains(&burst)) {
            return Err(RateError::Burst);
        }
        Ok(RateLimit { rate_per_s, burst })
    }

    /// Tokens added per second.
    pub fn rate_per_s(&self) -> f64 {
        self.rate_per_s
    }

    /// The bucket's capacity.
    pub fn burst(&self) -> f64 {
        self.burst
    }
}

/// A token bucket, given the time: starts full, refills at the rate, holds at most the burst.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBucket {
    tokens: f64,
    updated: Duration,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(limit: &RateLimit, now: Duration) -> TokenBucket {
        TokenBucket {
            tokens: limit.burst,
            updated: now,
        }
    }

    /// Takes one token at `now` if there is one. A `now` earlier than the last one (it cannot be
    /// with a monotonic clock) adds nothing.
    pub fn try_take(&mut self, limit: &RateLimit, now: Duration) -> bool {
        let elapsed = now.saturating_sub(self.updated);
        self.updated = self.updated.max(now);
        self.tokens = (self.tokens + elapsed.as_secs_f64() * limit.rate_per_s).min(limit.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Tokens in the bucket as of the last take (for tests and logs).
    pub fn tokens(&self) -> f64 {
        self.tokens
    }
}

/// The per-caller buckets, on a monotonic clock. Callers without a rate are not limited.
#[derive(Debug)]
pub struct RateLimits {
    buckets: HashMap<String, (RateLimit, Mutex<TokenBucket>)>,
    origin: Instant,
}

impl Default for RateLimits {
    fn default() -> RateLimits {
        RateLimits::new(std::iter::empty())
    }
}

impl RateLimits {
    /// Buckets for these callers (by caller id), full now.
    pub fn new(limits: impl IntoIterator<Item = (String, RateLimit)>) -> RateLimits {
        let buckets = limits
            .into_iter()
            .map(|(id, limit)| {
                let bucket = TokenBucket::new(&limit, Duration::ZERO);
                (id, (limit, Mutex::new(bucket)))
            })
            .collect();
        RateLimits {
            buckets,
            origin: Instant::now(),
        }
    }

    /// True when `caller` has no rate, or had a token now (which it spent).
    pub fn admit(&self, caller: &str) -> bool {
        self.admit_at(caller, self.origin.elapsed())
    }

    /// [`RateLimits::admit`] at `now` since this table was made.
    pub fn admit_at(&self, caller: &str, now: Duration) -> bool {
        match self.buckets.get(caller) {
            None => true,
            Some((limit, bucket)) => bucket
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .try_take(limit, now),
        }
    }

    /// `caller`'s rate, if it has one.
    pub fn limit(&self, caller: &str) -> Option<RateLimit> {
        self.buckets.get(caller).map(|(l, _)| *l)
    }
}

/// Which lane and allowance a request uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A new pay: the pay lane of the in-flight bounds, and a token.
    Pay,
    /// A refund: moves money, so it takes a token; it finishes a transaction, so it uses the
    /// whole in-flight bound (as in the engine).
    Refund,
    /// A query or a cancel: the whole in-flight bound, no token.
    Finish,
}

impl Class {
    /// The class of a service.
    pub fn of(service: Service) -> Class {
        match service {
            Service::Pay => Class::Pay,
            Service::Refund => Class::Refund,
            Service::Query | Service::Cancel => Class::Finish,
        }
    }

    /// True when the request takes a token from its caller's bucket.
    pub fn is_rated(self) -> bool {
        matches!(self, Class::Pay | Class::Refund)
    }
}

/// Why the gateway refused a request before the engine (the `reason` label of
/// [`crate::telemetry::ADMISSION_REFUSALS`]; the engine's own refusals use
/// [`crate::engine::Busy::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The gateway's in-flight bound (or its pay lane) is full.
    GatewayInFlight,
    /// The caller's in-flight bound (or its pay lane) is full.
    CallerInFlight,
    /// The caller's token bucket is empty.
    CallerRate,
}

impl Refusal {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::GatewayInFlight => "gateway_in_flight",
            Refusal::CallerInFlight => "caller_in_flight",
            Refusal::CallerRate => "caller_rate",
        }
    }
}

/// The part of `max` a pay lane may hold: `percent` of it, at least 1 (as the engine's table).
pub fn share_of(max: usize, percent: u8) -> usize {
    let percent = usize::from(percent.min(100));
    (max.saturating_mul(percent) / 100).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn rates_and_bursts_are_checked() {
        assert_eq!(RateLimit::new(0.0, None), Err(RateError::Rate));
        assert_eq!(RateLimit::new(-1.0, None), Err(RateError::Rate));
        assert_eq!(RateLimit::new(f64::NAN, None), Err(RateError::Rate));
        assert_eq!(RateLimit::new(f64::INFINITY, None), Err(RateError::Rate));
        assert_eq!(RateLimit::new(2e6, None), Err(RateError::Rate));
        assert_eq!(RateLimit::new(1.0, Some(0.5)), Err(RateError::Burst));
        assert_eq!(RateLimit::new(1.0, Some(f64::NAN)), Err(RateError::Burst));
        assert_eq!(RateLimit::new(1.0, Some(2e6)), Err(RateError::Burst));
        // The default burst is one second's worth, at least one request.
        assert_eq!(RateLimit::new(0.2, None).unwrap().burst(), 1.0);
        assert_eq!(RateLimit::new(50.0, None).unwrap().burst(), 50.0);
        assert_eq!(RateLimit::new(2.5, None).unwrap().burst(), 2.5);
        assert_eq!(RateLimit::new(2.0, Some(7.0)).unwrap().burst(), 7.0);
    }

    #[test]
    fn a_burst_then_refusals_then_one_token_per_interval() {
        let limit = RateLimit::new(2.0, Some(3.0)).unwrap();
        let mut b = TokenBucket::new(&limit, ms(0));
        // The whole burst at once, then nothing.
        let at_once: Vec<bool> = (0..5).map(|_| b.try_take(&limit, ms(0))).collect();
        assert_eq!(at_once, [true, true, true, false, false]);
        // Half a token after 250 ms: still refused.
        assert!(!b.try_take(&limit, ms(250)));
        // One token after 500 ms, exactly one.
        assert!(b.try_take(&limit, ms(500)));
        assert!(!b.try_take(&limit, ms(500)));
        // A long pause refills to the burst, not beyond.
        let later: Vec<bool> = (0..4).map(|_| b.try_take(&limit, ms(60_000))).collect();
        assert_eq!(later, [true, true, true, false]);
    }

    #[test]
    fn a_slow_rate_admits_one_request_per_period() {
        let limit = RateLimit::new(0.5, None).unwrap();
        let mut b = TokenBucket::new(&limit, ms(0));
        assert!(b.try_take(&limit, ms(0)));
        assert!(!b.try_take(&limit, ms(1_000)));
        assert!(!b.try_take(&limit, ms(1_999)));
        assert!(b.try_take(&limit, ms(2_000)));
        assert!(!b.try_take(&limit, ms(2_001)));
    }

    #[test]
    fn a_clock_that_steps_back_adds_nothing() {
        let limit = RateLimit::new(1.0, Some(1.0)).unwrap();
        let mut b = TokenBucket::new(&limit, ms(10_000));
        assert!(b.try_take(&limit, ms(10_000)));
        assert!(!b.try_take(&limit, ms(0)));
        // Refill counts from the latest time seen, not from the step back.
        assert!(!b.try_take(&limit, ms(10_500)));
        assert!(b.try_take(&limit, ms(11_000)));
    }

    #[test]
    fn the_table_limits_only_callers_with_a_rate_and_each_on_its_own() {
        let limit = RateLimit::new(1.0, Some(2.0)).unwrap();
        let t = RateLimits::new([("A".to_owned(), limit), ("B".to_owned(), limit)]);
        let a: Vec<bool> = (0..3).map(|_| t.admit_at("A", ms(0))).collect();
        assert_eq!(a, [true, true, false]);
        // B's bucket is its own, and a caller without a rate is never limited.
        assert!(t.admit_at("B", ms(0)));
        assert!((0..1000).all(|_| t.admit_at("C", ms(0))));
        assert!(t.admit_at("A", ms(1_000)));
        assert_eq!(t.limit("A"), Some(limit));
        assert_eq!(t.limit("C"), None);
    }

    #[test]
    fn only_pays_and_refunds_take_tokens_and_only_pays_use_the_pay_lane() {
        assert_eq!(Class::of(Service::Pay), Class::Pay);
        assert_eq!(Class::of(Service::Refund), Class::Refund);
        assert_eq!(Class::of(Service::Query), Class::Finish);
        assert_eq!(Class::of(Service::Cancel), Class::Finish);
        assert!(Class::Pay.is_rated());
        assert!(Class::Refund.is_rated());
        assert!(!Class::Finish.is_rated());
    }

    #[test]
    fn shares() {
        assert_eq!(share_of(16, 50), 8);
        assert_eq!(share_of(16, 75), 12);
        assert_eq!(share_of(16, 100), 16);
        assert_eq!(share_of(16, 200), 16);
        assert_eq!(share_of(1, 50), 1);
        assert_eq!(share_of(3, 1), 1);
    }
}
