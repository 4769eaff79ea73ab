//! The simulated clock: `now = clock_start + real_elapsed × time_scale + jumps`.
//!
//! Every business time in the simulator (trade timeouts, buyer confirmations, the cancel window,
//! notification resends, reconciliation days) is read from here, so a test can run a 3-minute
//! trade timeout in 3 s at `--time-scale 60` or jump the clock past midnight through the admin
//! API. The clock never goes backwards. Latency, hangs and throttling stay in real time: they
//! are about the network, not about Alipay's business day.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use alipay::BeijingTime;

/// The largest time scale.
pub const TIME_SCALE_MAX: u32 = 1_000_000;
/// The latest simulated time, Unix ms: 9999-12-31 23:59:59 Beijing, the end of the calendar
/// `alipay::BeijingTime` can show. The clock stops there, and the admin API refuses to move it
/// further, so `now + any configured duration` stays far inside `i64`.
pub const CLOCK_MS_MAX: i64 = 253_402_271_999_000;

/// The admin API asked for a time the clock cannot show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockError {
    /// The target is before the current simulated time; carries that time.
    Backwards { now_ms: i64 },
    /// The target is past [`CLOCK_MS_MAX`]; carries the current simulated time.
    TooLate { now_ms: i64 },
}

/// Reads the machine's wall clock, in Unix milliseconds. The one place the simulator does so.
#[allow(clippy::disallowed_methods)] // the clock adapter: the only reader of the system clock
pub fn system_unix_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

#[derive(Debug)]
struct Inner {
    /// Simulated Unix ms at `real_start`, plus every jump so far.
    base_unix_ms: i64,
    real_start: Instant,
    /// The last value handed out, so readings never decrease.
    last_ms: i64,
}

/// A simulated clock.
#[derive(Debug)]
pub struct SimClock {
    scale: u32,
    inner: Mutex<Inner>,
}

impl SimClock {
    /// A clock reading `start_unix_ms` now and running `scale` times faster than real time.
    pub fn new(start_unix_ms: i64, scale: u32) -> SimClock {
        assert!((1..=TIME_SCALE_MAX).contains(&scale));
        let start_unix_ms = start_unix_ms.min(CLOCK_MS_MAX);
        SimClock {
            scale,
            inner: Mutex::new(Inner {
                base_unix_ms: start_unix_ms,
                real_start: Instant::now(),
                last_ms: start_unix_ms,
            }),
        }
    }

    /// The time scale.
    pub fn scale(&self) -> u32 {
        self.scale
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn read(&self, inner: &mut Inner) -> i64 {
        let real_ms = i64::try_from(inner.real_start.elapsed().as_millis()).unwrap_or(i64::MAX);
        let now = inner
            .base_unix_ms
            .saturating_add(real_ms.saturating_mul(i64::from(self.scale)))
            .min(CLOCK_MS_MAX);
        inner.last_ms = inner.last_ms.max(now);
        inner.last_ms
    }

    /// Simulated Unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        let mut inner = self.lock();
        self.read(&mut inner)
    }

    /// Simulated Beijing time.
    pub fn now(&self) -> BeijingTime {
        beijing(self.now_ms())
    }

    /// Moves the clock forward by `ms`; refused if that passes [`CLOCK_MS_MAX`].
    pub fn advance(&self, ms: u64) -> Result<i64, ClockError> {
        let mut inner = self.lock();
        let now = self.read(&mut inner);
        let target = i64::try_from(ms)
            .ok()
            .and_then(|ms| now.checked_add(ms))
            .filter(|&t| t <= CLOCK_MS_MAX)
            .ok_or(ClockError::TooLate { now_ms: now })?;
        Ok(self.jump(&mut inner, now, target))
    }

    /// Sets the clock to `target_unix_ms`; refused if that is in the simulated past or past
    /// [`CLOCK_MS_MAX`].
    pub fn set(&self, target_unix_ms: i64) -> Result<i64, ClockError> {
        let mut inner = self.lock();
        let now = self.read(&mut inner);
        if target_unix_ms < now {
            return Err(ClockError::Backwards { now_ms: now });
        }
        if target_unix_ms > CLOCK_MS_MAX {
            return Err(ClockError::TooLate { now_ms: now });
        }
        Ok(self.jump(&mut inner, now, target_unix_ms))
    }

    /// Moves the base so that the clock reads `target` (≥ `now`, ≤ [`CLOCK_MS_MAX`]).
    fn jump(&self, inner: &mut Inner, now: i64, target: i64) -> i64 {
        inner.base_unix_ms = inner.base_unix_ms.saturating_add(target - now);
        self.read(inner)
    }

    /// How long, in real time, until the simulated clock reaches `target_unix_ms`.
    pub fn real_until(&self, target_unix_ms: i64) -> Duration {
        let ahead = target_unix_ms.saturating_sub(self.now_ms()).max(0);
        let real_ms = ahead / i64::from(self.scale);
        Duration::from_millis(u64::try_from(real_ms).unwrap_or(0))
    }
}

/// Beijing time of simulated Unix ms; the epoch for values outside the calendar.
pub fn beijing(unix_ms: i64) -> BeijingTime {
    BeijingTime::from_unix_ms(unix_ms)
        .or_else(|| BeijingTime::from_unix_ms(0))
        .unwrap_or_else(unreachable_epoch)
}

fn unreachable_epoch() -> BeijingTime {
    // 1970-01-01 is inside the calendar: from_unix_ms(0) never fails.
    panic!("the Unix epoch is representable")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_jumps_and_never_backwards() {
        let clock = SimClock::new(1_767_196_800_000, 1000);
        std::thread::sleep(Duration::from_millis(20));
        let t = clock.now_ms();
        assert!(t >= 1_767_196_800_000 + 20_000, "{t}");
        let after = clock.advance(3_600_000).unwrap();
        assert!(after >= t + 3_600_000);
        assert!(matches!(
            clock.set(after - 1),
            Err(ClockError::Backwards { .. })
        ));
        let later = clock.set(after + 86_400_000).unwrap();
        assert!(later >= after + 86_400_000);
        assert!(matches!(
            clock.advance(u64::MAX),
            Err(ClockError::TooLate { .. })
        ));
        assert!(matches!(
            clock.set(CLOCK_MS_MAX + 1),
            Err(ClockError::TooLate { .. })
        ));
        assert_eq!(clock.set(CLOCK_MS_MAX).unwrap(), CLOCK_MS_MAX);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(clock.now_ms(), CLOCK_MS_MAX, "the clock stops at the end");
        assert_eq!(
            beijing(CLOCK_MS_MAX).dashed().to_string(),
            "9999-12-31 23:59:59"
        );
        assert_eq!(beijing(0).compact().to_string(), "19700101080000");
    }
}
