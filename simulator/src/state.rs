//! The simulator's shared state: configuration, clock, and the one lock around the ledger,
//! counters, dials, the seeded RNG and the throttle buckets.
//!
//! One lock keeps the RNG draws, the ledger changes and the counters in one order — the arrival
//! order — which is what makes a seeded run reproducible. The critical sections are short: no
//! signing, no I/O and no waiting happen under the lock.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::clock::SimClock;
use crate::config::Config;
use crate::counters::Counters;
use crate::dials::Dials;
use crate::ledger::Ledger;

/// Most partners with a throttle bucket (one per configured account is all there can be).
pub const BUCKETS_MAX: usize = 10_000;

/// A per-partner token bucket, in real time, holding thousandths of a request.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    tokens_milli: u64,
    last: Instant,
}

impl Bucket {
    /// A full bucket.
    pub fn full(rps: u32, now: Instant) -> Bucket {
        Bucket {
            tokens_milli: u64::from(rps) * 1000,
            last: now,
        }
    }

    /// Refills for the time since the last call and takes one request's token if there is one.
    /// The burst is one second's worth.
    pub fn take(&mut self, rps: u32, now: Instant) -> bool {
        let capacity = u64::from(rps) * 1000;
        let elapsed_ms =
            u64::try_from(now.saturating_duration_since(self.last).as_millis()).unwrap_or(u64::MAX);
        self.tokens_milli = self
            .tokens_milli
            .saturating_add(elapsed_ms.saturating_mul(u64::from(rps)))
            .min(capacity);
        self.last = now;
        if self.tokens_milli >= 1000 {
            self.tokens_milli -= 1000;
            true
        } else {
            false
        }
    }
}

/// What the lock protects.
#[derive(Debug)]
pub struct Core {
    /// Trades and the schedule.
    pub ledger: Ledger,
    /// Counters.
    pub counters: Counters,
    /// Current dials.
    pub dials: Dials,
    /// The seeded RNG.
    pub rng: StdRng,
    /// The seed, for resets.
    pub seed: u64,
    /// Throttle buckets by partner.
    pub buckets: HashMap<String, Bucket>,
    /// Bumped by every reset, so late notification results of an earlier generation are dropped.
    pub generation: u64,
}

impl Core {
    /// Forgets trades, counters, schedule and buckets, and reseeds the RNG; keeps the dials.
    pub fn reset(&mut self) {
        self.ledger = Ledger::new(self.ledger.rules().clone());
        self.counters = Counters::default();
        self.rng = StdRng::seed_from_u64(self.seed);
        self.buckets.clear();
        self.generation += 1;
    }

    /// True when `partner` may send one more request under `throttle_rps`.
    pub fn admit(&mut self, partner: &str, now: Instant) -> bool {
        let rps = self.dials.throttle_rps;
        if rps == 0 {
            return true;
        }
        if !self.buckets.contains_key(partner) && self.buckets.len() >= BUCKETS_MAX {
            return true;
        }
        self.buckets
            .entry(partner.to_owned())
            .or_insert_with(|| Bucket::full(rps, now))
            .take(rps, now)
    }
}

/// Everything the tasks share.
#[derive(Debug)]
pub struct Shared {
    /// The configuration.
    pub config: Config,
    /// The simulated clock.
    pub clock: SimClock,
    /// Real time a request body may take to arrive, once its head is read.
    pub body_read_timeout: Duration,
    core: Mutex<Core>,
}

impl Shared {
    /// State for `config`, the clock and the seed; request bodies get `body_read_timeout`.
    pub fn new(config: Config, clock: SimClock, seed: u64, body_read_timeout: Duration) -> Shared {
        let core = Core {
            ledger: Ledger::new(config.rules.clone()),
            counters: Counters::default(),
            dials: config.dials.clone(),
            rng: StdRng::seed_from_u64(seed),
            seed,
            buckets: HashMap::new(),
            generation: 0,
        };
        Shared {
            config,
            clock,
            body_read_timeout,
            core: Mutex::new(core),
        }
    }

    /// Takes the lock. A poisoned lock means an invariant assertion failed while the state was
    /// being changed: the state can no longer be trusted, so every user stops too.
    pub fn lock(&self) -> MutexGuard<'_, Core> {
        match self.core.lock() {
            Ok(guard) => guard,
            Err(_) => panic!("the simulator state is poisoned by an earlier invariant failure"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_bucket_allows_a_second_then_refills() {
        let t0 = Instant::now();
        let mut b = Bucket::full(5, t0);
        assert_eq!((0..7).filter(|_| b.take(5, t0)).count(), 5);
        assert!(!b.take(5, t0 + Duration::from_millis(100)));
        assert!(b.take(5, t0 + Duration::from_millis(400)));
    }
}
