//! Exchange rates and fees in integer arithmetic: the one place their rounding is written.
//!
//! Alipay's files and answers write rates as decimal strings with exactly 8 decimals
//! (`7.10650000`) and charge fees in basis points of an amount. The simulator (playing Alipay)
//! and the ledger's finance exports (checking Alipay) must round the same inputs to the same
//! cents, so both use this crate rather than each its own copy. Rates are integers scaled by
//! 1e8; every computation is done in `u128` with one rounding, half up, at the end. No float.
//!
//! Amounts here are bare minor units: each caller wraps them in its own money type
//! (`alipay::Amount` in the simulator, `ledger::Money` in the ledger), which is why this crate
//! depends on nothing.
//!
//! **Architecture Invariant:** this crate depends on no other crate, and does no I/O.

use std::fmt;

/// The scale of a [`Rate`]: 8 decimals.
pub const RATE_SCALE: u64 = 100_000_000;

/// Basis points in one whole; the largest valid fee rate.
pub const BPS_PER_WHOLE: u32 = 10_000;

/// Most integer digits a rate may have.
pub const RATE_INTEGER_DIGITS_MAX: usize = 10;

/// An exchange rate scaled by 1e8: `7.10650000` is `710_650_000`. Always positive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rate(u64);

impl Rate {
    /// One to one.
    pub const ONE: Rate = Rate(RATE_SCALE);

    /// Parses `digits.dddddddd` (exactly 8 decimals, positive, at most
    /// [`RATE_INTEGER_DIGITS_MAX`] integer digits).
    pub fn parse(text: &str) -> Option<Rate> {
        let (int_part, frac) = text.split_once('.')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(int_part) || int_part.len() > RATE_INTEGER_DIGITS_MAX {
            return None;
        }
        if frac.len() != 8 || !digits(frac) {
            return None;
        }
        let int_part: u64 = int_part.parse().ok()?;
        let frac: u64 = frac.parse().ok()?;
        let scaled = int_part.checked_mul(RATE_SCALE)?.checked_add(frac)?;
        (scaled > 0).then_some(Rate(scaled))
    }

    /// The rate scaled by 1e8.
    pub const fn scaled(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:08}", self.0 / RATE_SCALE, self.0 % RATE_SCALE)
    }
}

/// `numerator / denominator` rounded half up; `None` on a zero denominator or a result beyond
/// `u64`.
pub fn div_round_half_up(numerator: u128, denominator: u128) -> Option<u64> {
    if denominator == 0 {
        return None;
    }
    let q = numerator.checked_add(denominator / 2)? / denominator;
    u64::try_from(q).ok()
}

/// Converts `minor` units of a currency with `from_minor_per_major` minor units per major unit
/// at `rate` (units of the target per unit of the source) into minor units of a currency with
/// `to_minor_per_major`, rounded half up once. `None` on overflow or a zero minor-unit count.
pub fn convert_minor(
    minor: u64,
    rate: Rate,
    from_minor_per_major: u64,
    to_minor_per_major: u64,
) -> Option<u64> {
    let numerator = u128::from(minor)
        .checked_mul(u128::from(rate.0))?
        .checked_mul(u128::from(to_minor_per_major))?;
    let denominator = u128::from(from_minor_per_major).checked_mul(u128::from(RATE_SCALE))?;
    div_round_half_up(numerator, denominator)
}

/// The rate from a pricing currency to a settlement currency given both rates to CNY: how many
/// units of the settlement currency one unit of the pricing currency is worth, 8 decimals, half
/// up. `None` when it rounds to zero or overflows.
pub fn cross_rate(pricing_to_cny: Rate, settlement_to_cny: Rate) -> Option<Rate> {
    let numerator = u128::from(pricing_to_cny.0).checked_mul(u128::from(RATE_SCALE))?;
    div_round_half_up(numerator, u128::from(settlement_to_cny.0))
        .filter(|&r| r > 0)
        .map(Rate)
}

/// Alipay's fee on `amount_minor` at `fee_rate_bps` basis points, half up to the minor unit,
/// never more than the amount.
pub fn fee_minor(amount_minor: u64, fee_rate_bps: u32) -> u64 {
    let numerator = u128::from(amount_minor) * u128::from(fee_rate_bps);
    div_round_half_up(numerator, u128::from(BPS_PER_WHOLE))
        .unwrap_or(u64::MAX)
        .min(amount_minor)
}

/// The fee one refund returns: the fee on everything refunded so far (`refunded_after_minor`,
/// this refund included), capped at the fee the payment was charged, less what earlier refunds
/// already returned. Rounding happens on the cumulative amounts, so the returns of a fully
/// refunded payment add up to exactly its fee, however it was split.
pub fn refund_fee_minor(
    charged_minor: u64,
    refunded_after_minor: u64,
    returned_before_minor: u64,
    fee_rate_bps: u32,
) -> u64 {
    let due = fee_minor(refunded_after_minor, fee_rate_bps).min(charged_minor);
    due.saturating_sub(returned_before_minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_and_format_exactly() {
        for (text, scaled) in [("7.10650000", 710_650_000), ("0.00043500", 43_500)] {
            let r = Rate::parse(text).unwrap();
            assert_eq!(r.scaled(), scaled);
            assert_eq!(r.to_string(), text);
        }
        for bad in [
            "7.1065",
            "7",
            ".10650000",
            "-1.00000000",
            "0.00000000",
            "1.0000000x",
            "12345678901.00000000",
        ] {
            assert_eq!(Rate::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn conversion_rounds_half_up_once() {
        let rate = Rate::parse("7.10650000").unwrap();
        // 12.34 * 7.1065 = 87.69421 -> 87.69
        assert_eq!(convert_minor(1_234, rate, 100, 100), Some(8_769));
        assert_eq!(convert_minor(10_000, rate, 100, 100), Some(71_065));
        // No minor unit (JPY) to cents: 1000 * 0.0475 = 47.50
        let rate = Rate::parse("0.04750000").unwrap();
        assert_eq!(convert_minor(1_000, rate, 1, 100), Some(4_750));
        // half up: 0.05 * 0.10000000 = 0.005 -> 0.01
        let rate = Rate::parse("0.10000000").unwrap();
        assert_eq!(convert_minor(5, rate, 100, 100), Some(1));
        assert_eq!(convert_minor(5, rate, 0, 100), None, "no minor units");
    }

    #[test]
    fn fees_round_half_up_and_never_exceed_the_amount() {
        let cases = [
            (10_000, 180, 180),
            (25, 180, 0),
            (28, 180, 1),
            (84, 180, 2),
            (1, 10_000, 1),
            (u64::MAX, u32::MAX, u64::MAX),
        ];
        for (minor, bps, want) in cases {
            assert_eq!(fee_minor(minor, bps), want, "{minor} at {bps}");
        }
    }

    #[test]
    fn refund_fees_add_up_to_the_payment_fee() {
        // 0.84 at 180 bps: 1.512 cents -> 0.02. Rounded per refund, three 0.28 refunds would
        // return 0.01 each, 0.03 in all: more than was charged.
        let charged = fee_minor(84, 180);
        let mut returned = 0;
        let mut each = Vec::new();
        for refunded_after in [28, 56, 84] {
            let r = refund_fee_minor(charged, refunded_after, returned, 180);
            each.push(r);
            returned += r;
        }
        assert_eq!(each, [1, 0, 1]);
        assert_eq!(returned, charged, "exactly the payment's fee");
        // Never above the charged fee, and never negative.
        assert_eq!(refund_fee_minor(charged, 84, 2, 180), 0);
        assert_eq!(refund_fee_minor(charged, 28, 2, 180), 0);
    }

    #[test]
    fn cross_rates() {
        let usd = Rate::parse("7.10650000").unwrap();
        let hkd = Rate::parse("0.91200000").unwrap();
        assert_eq!(cross_rate(usd, hkd).unwrap().to_string(), "7.79221491");
        assert_eq!(cross_rate(usd, usd), Some(Rate::ONE));
    }

    #[test]
    fn rounding_half_up() {
        assert_eq!(div_round_half_up(5, 10), Some(1));
        assert_eq!(div_round_half_up(4, 10), Some(0));
        assert_eq!(div_round_half_up(15, 10), Some(2));
        assert_eq!(div_round_half_up(1, 0), None);
        assert_eq!(div_round_half_up(u128::MAX, 1), None);
    }
}
