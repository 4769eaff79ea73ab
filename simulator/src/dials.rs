//! Behaviour dials: which fault or outcome a request gets, from a magic buyer code or from the
//! seeded random rates, and the latency added before answering.
//!
//! Every request draws the same fixed number of values from the simulator's one seeded `StdRng`
//! (see [`Draws`]), whatever its service or outcome, under the state lock, so the N-th request
//! to arrive always sees the N-th set of draws: a run is reproducible from its seed as long as
//! requests arrive in the same order (with concurrent clients the order is the arrival order at
//! the lock). A magic buyer code (`2800` + scenario) overrides the rates completely, so a test
//! that uses one is deterministic whatever the dials say.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Longest latency the dials may add, in real milliseconds.
pub const LATENCY_MS_MAX: u32 = 120_000;
/// Longest hang, in real milliseconds (one hour).
pub const HANG_MS_MAX: u64 = 3_600_000;
/// Longest slow-body trickle, in real milliseconds.
pub const SLOW_BODY_MS_MAX: u64 = 600_000;
/// Most failing cancels before the one that succeeds.
pub const CANCEL_RETRY_COUNT_MAX: u32 = 100;
/// Highest per-partner request rate of the token bucket.
pub const THROTTLE_RPS_MAX: u32 = 1_000_000;

/// The FAIL codes of magic codes 280010..=280019, in that order; `fail_rate` picks among them.
pub const FAIL_CODES: [&str; 10] = [
    "BUYER_BALANCE_NOT_ENOUGH",
    "BUYER_BANKCARD_BALANCE_NOT_ENOUGH",
    "SOUNDWAVE_PARSER_FAIL",
    "BUYER_ENABLE_STATUS_FORBID",
    "PAYMENT_FAIL",
    "PRODUCT_AMOUNT_LIMIT_ERROR",
    "BUYER_PAYMENT_AMOUNT_DAY_LIMIT_ERROR",
    "TRADE_BUYER_NOT_MATCH",
    "EXIST_FORBIDDEN_WORD",
    "CLIENT_VERSION_NOT_MATCH",
];

/// The added latency.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Latency {
    /// Answer at once.
    None,
    /// Always `fixed_ms`.
    Fixed {
        /// Milliseconds.
        fixed_ms: u32,
    },
    /// Uniform in `min_ms..=max_ms`.
    Uniform {
        /// Lower bound, milliseconds.
        min_ms: u32,
        /// Upper bound, milliseconds.
        max_ms: u32,
    },
    /// Log-normal with the given median and 99th percentile.
    Lognormal {
        /// Median, milliseconds.
        median_ms: u32,
        /// 99th percentile, milliseconds.
        p99_ms: u32,
    },
}

/// Every dial. Serialized as the `[dials]` table of the config and as `/admin/dials`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dials {
    /// Pay: UNKNOWN, then paid after `confirm_delay_s`.
    pub unknown_then_paid_rate: f64,
    /// Pay: UNKNOWN, then closed after `confirm_delay_s`.
    pub unknown_then_closed_rate: f64,
    /// Pay: FAIL with a random code of [`FAIL_CODES`].
    pub fail_rate: f64,
    /// Any service: gateway SYSTEM_ERROR; half processed, half not.
    pub system_error_rate: f64,
    /// Any service: no answer for `hang_ms`, then close; half processed, half not.
    pub hang_rate: f64,
    /// Any service: TCP reset after processing.
    pub reset_rate: f64,
    /// Any service: HTTP 502, not processed.
    pub http_502_rate: f64,
    /// Any service: body trickled over `slow_body_ms`, processed.
    pub slow_body_rate: f64,
    /// Any service: HTTP 429, not processed.
    pub throttle_rate: f64,
    /// Pay: the new trade's cancels fail retryably `cancel_retry_count` times first.
    pub cancel_retry_rate: f64,
    /// Per-partner token bucket, requests per second; 0 = off.
    pub throttle_rps: u32,
    /// `Retry-After` of a 429, seconds.
    pub retry_after_s: u32,
    /// Hang length, real milliseconds.
    pub hang_ms: u64,
    /// Slow-body trickle length, real milliseconds.
    pub slow_body_ms: u64,
    /// Failing cancels before the one that succeeds.
    pub cancel_retry_count: u32,
    /// Added latency.
    pub latency: Latency,
}

/// Default hang: ten minutes, past any sane client timeout.
pub const DEFAULT_HANG_MS: u64 = 600_000;
/// Default slow-body trickle.
pub const DEFAULT_SLOW_BODY_MS: u64 = 3_000;
/// Default failing cancels before success.
pub const DEFAULT_CANCEL_RETRY_COUNT: u32 = 3;
/// Default `Retry-After`.
pub const DEFAULT_RETRY_AFTER_S: u32 = 1;

impl Default for Dials {
    fn default() -> Dials {
        Dials {
            unknown_then_paid_rate: 0.0,
            unknown_then_closed_rate: 0.0,
            fail_rate: 0.0,
            system_error_rate: 0.0,
            hang_rate: 0.0,
            reset_rate: 0.0,
            http_502_rate: 0.0,
            slow_body_rate: 0.0,
            throttle_rate: 0.0,
            cancel_retry_rate: 0.0,
            throttle_rps: 0,
            retry_after_s: DEFAULT_RETRY_AFTER_S,
            hang_ms: DEFAULT_HANG_MS,
            slow_body_ms: DEFAULT_SLOW_BODY_MS,
            cancel_retry_count: DEFAULT_CANCEL_RETRY_COUNT,
            latency: Latency::None,
        }
    }
}

impl Dials {
    /// Checks ranges; the error names the dial.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let rates = [
            ("unknown_then_paid_rate", self.unknown_then_paid_rate),
            ("unknown_then_closed_rate", self.unknown_then_closed_rate),
            ("fail_rate", self.fail_rate),
            ("system_error_rate", self.system_error_rate),
            ("hang_rate", self.hang_rate),
            ("reset_rate", self.reset_rate),
            ("http_502_rate", self.http_502_rate),
            ("slow_body_rate", self.slow_body_rate),
            ("throttle_rate", self.throttle_rate),
            ("cancel_retry_rate", self.cancel_retry_rate),
        ];
        for (name, rate) in rates {
            if !(0.0..=1.0).contains(&rate) {
                return Err((name, format!("{rate} is not a probability in 0..1")));
            }
        }
        let limits = [
            ("hang_ms", self.hang_ms, HANG_MS_MAX),
            ("slow_body_ms", self.slow_body_ms, SLOW_BODY_MS_MAX),
            (
                "cancel_retry_count",
                u64::from(self.cancel_retry_count),
                u64::from(CANCEL_RETRY_COUNT_MAX),
            ),
            (
                "throttle_rps",
                u64::from(self.throttle_rps),
                u64::from(THROTTLE_RPS_MAX),
            ),
        ];
        for (name, value, max) in limits {
            if value > max {
                return Err((name, format!("{value} is over the limit of {max}")));
            }
        }
        self.validate_latency()
            .map_err(|message| ("latency", message))
    }

    fn validate_latency(&self) -> Result<(), String> {
        let (low, high) = match self.latency {
            Latency::None => (0, 0),
            Latency::Fixed { fixed_ms } => (fixed_ms, fixed_ms),
            Latency::Uniform { min_ms, max_ms } => (min_ms, max_ms),
            Latency::Lognormal { median_ms, p99_ms } => {
                if median_ms == 0 {
                    return Err("median_ms must be positive".into());
                }
                (median_ms, p99_ms)
            }
        };
        if low > high {
            return Err(format!("{low} ms is above {high} ms"));
        }
        if high > LATENCY_MS_MAX {
            return Err(format!("{high} ms is over the limit of {LATENCY_MS_MAX}"));
        }
        Ok(())
    }
}

/// What a magic buyer code asks for (see `simulator/README.md` for the table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Not a magic code: the random rates decide.
    Random,
    /// A magic code with an unassigned number: normal behaviour, no random faults.
    Normal,
    /// 280001.
    UnknownThenPaid,
    /// 280002.
    UnknownThenClosed,
    /// 280003.
    UnknownNeverActs,
    /// 280010..=280019.
    Fail(&'static str),
    /// 280020: SYSTEM_ERROR, the trade was paid.
    SystemErrorPaid,
    /// 280021: SYSTEM_ERROR, no trade.
    SystemErrorNotCreated,
    /// 280030: hang, the trade was paid.
    HangPaid,
    /// 280031: hang, no trade.
    HangNotCreated,
    /// 280032: TCP reset after processing, the trade was paid.
    Reset,
    /// 280033: HTTP 502, no trade.
    Http502,
    /// 280034: slow body, the trade was paid.
    SlowBody,
    /// 280035: HTTP 429, nothing processed.
    Throttle,
    /// 280040: cancels FAIL with retry_flag=Y first.
    CancelRetryFail,
    /// 280041: cancels answer UNKNOWN first.
    CancelRetryUnknown,
    /// 280050: the first refund is applied but answered UNKNOWN.
    RefundUnknownOnce,
}

/// The prefix of every magic buyer code.
pub const MAGIC_PREFIX: &str = "2800";

impl Scenario {
    /// The scenario of a (valid) buyer code.
    pub fn of_buyer_code(code: &str) -> Scenario {
        let Some(rest) = code.strip_prefix(MAGIC_PREFIX) else {
            return Scenario::Random;
        };
        let number: u8 = rest.get(..2).and_then(|n| n.parse().ok()).unwrap_or(255);
        match number {
            1 => Scenario::UnknownThenPaid,
            2 => Scenario::UnknownThenClosed,
            3 => Scenario::UnknownNeverActs,
            10..=19 => Scenario::Fail(FAIL_CODES[usize::from(number - 10)]),
            20 => Scenario::SystemErrorPaid,
            21 => Scenario::SystemErrorNotCreated,
            30 => Scenario::HangPaid,
            31 => Scenario::HangNotCreated,
            32 => Scenario::Reset,
            33 => Scenario::Http502,
            34 => Scenario::SlowBody,
            35 => Scenario::Throttle,
            40 => Scenario::CancelRetryFail,
            41 => Scenario::CancelRetryUnknown,
            50 => Scenario::RefundUnknownOnce,
            _ => Scenario::Normal,
        }
    }
}

/// A fault of the transport or the gateway front, applied to any service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportFault {
    /// Gateway `SYSTEM_ERROR`; `processed` says whether the request took effect.
    SystemError { processed: bool },
    /// No answer for `hang_ms`, then the connection is closed.
    Hang { processed: bool },
    /// A TCP reset after the request was read and processed.
    Reset,
    /// HTTP 502 from a load balancer; not processed.
    Http502,
    /// Headers at once, the body trickled; processed.
    SlowBody,
    /// HTTP 429; not processed.
    Throttle,
}

impl TransportFault {
    /// True when the request takes effect despite the fault.
    pub const fn processed(self) -> bool {
        match self {
            TransportFault::SystemError { processed } | TransportFault::Hang { processed } => {
                processed
            }
            TransportFault::Reset | TransportFault::SlowBody => true,
            TransportFault::Http502 | TransportFault::Throttle => false,
        }
    }

    /// A label for counters.
    pub const fn label(self) -> &'static str {
        match self {
            TransportFault::SystemError { processed: true } => "system_error_processed",
            TransportFault::SystemError { processed: false } => "system_error_not_processed",
            TransportFault::Hang { processed: true } => "hang_processed",
            TransportFault::Hang { processed: false } => "hang_not_processed",
            TransportFault::Reset => "reset",
            TransportFault::Http502 => "http_502",
            TransportFault::SlowBody => "slow_body",
            TransportFault::Throttle => "throttle",
        }
    }
}

/// How a pay's business outcome goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayOutcome {
    /// Paid at once.
    Paid,
    /// UNKNOWN; the buyer confirms after `confirm_delay_s`.
    UnknownThenPaid,
    /// UNKNOWN; the buyer declines after `confirm_delay_s`.
    UnknownThenClosed,
    /// UNKNOWN; the buyer never acts, the trade times out.
    UnknownNeverActs,
    /// FAIL with this code; the trade is closed.
    Fail(&'static str),
}

/// How a trade's cancels misbehave before succeeding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelFaultMode {
    /// FAIL, retry_flag=Y, detail_error_code SYSTEM_ERROR.
    FailRetry,
    /// UNKNOWN.
    Unknown,
}

/// Everything decided about a pay when it arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayPlan {
    /// The business outcome.
    pub outcome: PayOutcome,
    /// Cancel misbehaviour and how many cancels it lasts.
    pub cancel_faults: Option<(CancelFaultMode, u32)>,
    /// The first refund is answered UNKNOWN (though applied).
    pub refund_unknown_once: bool,
}

impl PayPlan {
    /// A plain successful pay.
    pub const PAID: PayPlan = PayPlan {
        outcome: PayOutcome::Paid,
        cancel_faults: None,
        refund_unknown_once: false,
    };
}

/// The random values one request draws, always all of them, in this order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Draws {
    transport: f64,
    processed: f64,
    outcome: f64,
    fail_code: usize,
    cancel: f64,
    cancel_mode: f64,
    latency_a: f64,
    latency_b: f64,
}

impl Draws {
    /// Draws from `rng`.
    pub fn draw(rng: &mut impl Rng) -> Draws {
        Draws {
            transport: rng.gen(),
            processed: rng.gen(),
            outcome: rng.gen(),
            fail_code: rng.gen_range(0..FAIL_CODES.len()),
            cancel: rng.gen(),
            cancel_mode: rng.gen(),
            latency_a: rng.gen(),
            latency_b: rng.gen(),
        }
    }
}

/// The decision for one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    /// The transport fault, if any.
    pub fault: Option<TransportFault>,
    /// For a pay: its plan.
    pub plan: PayPlan,
    /// Latency to add before answering.
    pub latency: Duration,
}

/// Picks the first of `items` whose cumulative rate exceeds `u`.
fn pick<T: Copy>(u: f64, items: &[(f64, T)]) -> Option<T> {
    let mut acc = 0.0;
    for &(rate, item) in items {
        acc += rate;
        if u < acc {
            return Some(item);
        }
    }
    None
}

/// Decides a request's fault, pay plan and latency.
pub fn decide(dials: &Dials, scenario: Scenario, d: &Draws) -> Decision {
    let latency = sample_latency(dials.latency, d.latency_a, d.latency_b);
    let retry = dials.cancel_retry_count;
    let mut plan = PayPlan::PAID;
    let fault = match scenario {
        Scenario::Random => return decide_random(dials, d, latency),
        Scenario::Normal => None,
        Scenario::UnknownThenPaid => {
            plan.outcome = PayOutcome::UnknownThenPaid;
            None
        }
        Scenario::UnknownThenClosed => {
            plan.outcome = PayOutcome::UnknownThenClosed;
            None
        }
        Scenario::UnknownNeverActs => {
            plan.outcome = PayOutcome::UnknownNeverActs;
            None
        }
        Scenario::Fail(code) => {
            plan.outcome = PayOutcome::Fail(code);
            None
        }
        Scenario::SystemErrorPaid => Some(TransportFault::SystemError { processed: true }),
        Scenario::SystemErrorNotCreated => Some(TransportFault::SystemError { processed: false }),
        Scenario::HangPaid => Some(TransportFault::Hang { processed: true }),
        Scenario::HangNotCreated => Some(TransportFault::Hang { processed: false }),
        Scenario::Reset => Some(TransportFault::Reset),
        Scenario::Http502 => Some(TransportFault::Http502),
        Scenario::SlowBody => Some(TransportFault::SlowBody),
        Scenario::Throttle => Some(TransportFault::Throttle),
        Scenario::CancelRetryFail => {
            plan.cancel_faults = Some((CancelFaultMode::FailRetry, retry));
            None
        }
        Scenario::CancelRetryUnknown => {
            plan.cancel_faults = Some((CancelFaultMode::Unknown, retry));
            None
        }
        Scenario::RefundUnknownOnce => {
            plan.refund_unknown_once = true;
            None
        }
    };
    Decision {
        fault,
        plan,
        latency,
    }
}

fn decide_random(dials: &Dials, d: &Draws, latency: Duration) -> Decision {
    let processed = d.processed < 0.5;
    let fault = pick(
        d.transport,
        &[
            (
                dials.system_error_rate,
                TransportFault::SystemError { processed },
            ),
            (dials.hang_rate, TransportFault::Hang { processed }),
            (dials.reset_rate, TransportFault::Reset),
            (dials.http_502_rate, TransportFault::Http502),
            (dials.slow_body_rate, TransportFault::SlowBody),
            (dials.throttle_rate, TransportFault::Throttle),
        ],
    );
    let fail_code = FAIL_CODES[d.fail_code % FAIL_CODES.len()];
    let outcome = pick(
        d.outcome,
        &[
            (dials.unknown_then_paid_rate, PayOutcome::UnknownThenPaid),
            (
                dials.unknown_then_closed_rate,
                PayOutcome::UnknownThenClosed,
            ),
            (dials.fail_rate, PayOutcome::Fail(fail_code)),
        ],
    )
    .unwrap_or(PayOutcome::Paid);
    let cancel_faults = (d.cancel < dials.cancel_retry_rate).then(|| {
        let mode = if d.cancel_mode < 0.5 {
            CancelFaultMode::FailRetry
        } else {
            CancelFaultMode::Unknown
        };
        (mode, dials.cancel_retry_count)
    });
    Decision {
        fault,
        plan: PayPlan {
            outcome,
            cancel_faults,
            refund_unknown_once: false,
        },
        latency,
    }
}

/// z of the 99th percentile of the standard normal distribution.
const Z_P99: f64 = 2.326_347_874_040_841;

/// Samples the latency from two uniform draws in `[0, 1)`.
pub fn sample_latency(latency: Latency, a: f64, b: f64) -> Duration {
    let ms = match latency {
        Latency::None => 0.0,
        Latency::Fixed { fixed_ms } => f64::from(fixed_ms),
        Latency::Uniform { min_ms, max_ms } => {
            f64::from(min_ms) + a * (f64::from(max_ms) - f64::from(min_ms))
        }
        Latency::Lognormal { median_ms, p99_ms } => {
            let mu = f64::from(median_ms).ln();
            let sigma = (f64::from(p99_ms.max(median_ms)) / f64::from(median_ms)).ln() / Z_P99;
            // Box-Muller; 1 - a is in (0, 1], so the logarithm is finite.
            let z = (-2.0 * (1.0 - a).ln()).sqrt() * (std::f64::consts::TAU * b).cos();
            (mu + sigma * z).exp()
        }
    };
    let ms = ms.clamp(0.0, f64::from(LATENCY_MS_MAX));
    Duration::try_from_secs_f64(ms / 1000.0).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn magic_codes_map_to_scenarios() {
        let cases = [
            ("280001000000000000", Scenario::UnknownThenPaid),
            (
                "280010123456789012",
                Scenario::Fail("BUYER_BALANCE_NOT_ENOUGH"),
            ),
            (
                "280019000000000000",
                Scenario::Fail("CLIENT_VERSION_NOT_MATCH"),
            ),
            ("280035000000000000", Scenario::Throttle),
            ("280050000000000000", Scenario::RefundUnknownOnce),
            ("280099000000000000", Scenario::Normal),
            ("286648812345678901", Scenario::Random),
        ];
        for (code, want) in cases {
            assert_eq!(Scenario::of_buyer_code(code), want, "{code}");
        }
    }

    #[test]
    fn rate_one_always_fires_and_zero_never() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let dials = Dials {
            reset_rate: 1.0,
            fail_rate: 1.0,
            ..Dials::default()
        };
        for _ in 0..200 {
            let d = decide(&dials, Scenario::Random, &Draws::draw(&mut rng));
            assert_eq!(d.fault, Some(TransportFault::Reset));
            assert!(matches!(d.plan.outcome, PayOutcome::Fail(_)));
            let d = decide(&Dials::default(), Scenario::Random, &Draws::draw(&mut rng));
            assert_eq!(d.fault, None);
            assert_eq!(d.plan, PayPlan::PAID);
        }
    }

    #[test]
    fn magic_codes_ignore_the_rates() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let dials = Dials {
            reset_rate: 1.0,
            ..Dials::default()
        };
        let d = decide(&dials, Scenario::Normal, &Draws::draw(&mut rng));
        assert_eq!(d.fault, None);
    }

    #[test]
    fn latency_distributions() {
        let fixed = Latency::Fixed { fixed_ms: 250 };
        assert_eq!(sample_latency(fixed, 0.3, 0.9), Duration::from_millis(250));
        let uniform = Latency::Uniform {
            min_ms: 100,
            max_ms: 200,
        };
        assert_eq!(
            sample_latency(uniform, 0.5, 0.0),
            Duration::from_millis(150)
        );
        let lognormal = Latency::Lognormal {
            median_ms: 100,
            p99_ms: 1000,
        };
        // z = 0 (b = 0.25 makes the cosine 0) gives the median.
        let median = sample_latency(lognormal, 0.5, 0.25);
        assert!(median.as_millis().abs_diff(100) <= 1, "{median:?}");
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut samples: Vec<Duration> = (0..10_000)
            .map(|_| sample_latency(lognormal, rng.gen(), rng.gen()))
            .collect();
        samples.sort();
        let p99 = samples[9_900].as_millis();
        assert!((700..1400).contains(&p99), "p99 {p99}");
    }
}
