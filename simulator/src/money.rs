//! Exchange rates and fees in integer arithmetic.
//!
//! Rates are configured and answered as decimal strings with exactly 8 decimals (`7.10650000`);
//! here they are integers scaled by 1e8, and every conversion is done in `u128` with one rounding
//! (half up) at the end, so the simulator never touches a float on the money path and the same
//! inputs always give the same cents.

use std::fmt;

use alipay::{Amount, Currency};

/// The scale of a [`Rate`]: 8 decimals.
pub const RATE_SCALE: u64 = 100_000_000;
/// Basis points in one whole.
pub const BPS_PER_WHOLE: u64 = 10_000;

/// An exchange rate, scaled by 1e8: `7.10650000` is `710_650_000`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rate(u64);

impl Rate {
    /// One to one.
    pub const ONE: Rate = Rate(RATE_SCALE);

    /// Parses `digits.dddddddd` (exactly 8 decimals, positive, at most 10 integer digits).
    pub fn parse(text: &str) -> Option<Rate> {
        let (int_part, frac) = text.split_once('.')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(int_part) || int_part.len() > 10 || frac.len() != 8 || !digits(frac) {
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

/// `numerator / denominator` rounded half up, in `u128`; `None` on a zero denominator or a
/// result beyond `u64`.
fn div_round_half_up(numerator: u128, denominator: u128) -> Option<u64> {
    if denominator == 0 {
        return None;
    }
    let q = numerator
        .checked_add(denominator / 2)?
        .checked_div(denominator)?;
    u64::try_from(q).ok()
}

/// Converts `amount` at `rate` (units of `to` per unit of the amount's currency), rounded half
/// up to the minor unit of `to`.
pub fn convert(amount: Amount, rate: Rate, to: Currency) -> Option<Amount> {
    let from = amount.currency();
    let numerator = u128::from(amount.minor())
        .checked_mul(u128::from(rate.0))?
        .checked_mul(u128::from(to.minor_per_major()))?;
    let denominator = u128::from(from.minor_per_major()) * u128::from(RATE_SCALE);
    Some(Amount::from_minor(
        div_round_half_up(numerator, denominator)?,
        to,
    ))
}

/// The rate from `pricing` to `settlement` given both rates to CNY: how many units of the
/// settlement currency one unit of the pricing currency is worth, 8 decimals, half up.
pub fn cross_rate(pricing_to_cny: Rate, settlement_to_cny: Rate) -> Option<Rate> {
    let numerator = u128::from(pricing_to_cny.0).checked_mul(u128::from(RATE_SCALE))?;
    div_round_half_up(numerator, u128::from(settlement_to_cny.0))
        .filter(|&r| r > 0)
        .map(Rate)
}

/// Alipay's fee on `amount` at `fee_rate_bps` basis points, rounded half up to the minor unit.
pub fn fee(amount: Amount, fee_rate_bps: u32) -> Amount {
    let numerator = u128::from(amount.minor()) * u128::from(fee_rate_bps);
    // fee_rate_bps is validated to be at most 10000, so the fee never exceeds the amount and
    // fits in u64.
    let minor = div_round_half_up(numerator, u128::from(BPS_PER_WHOLE)).unwrap_or(u64::MAX);
    Amount::from_minor(minor.min(amount.minor()), amount.currency())
}

/// The fee returned by one refund of a payment of `paid`: the fee on everything refunded so far
/// (`refunded_after`, this refund included) less the fee already returned (`returned_before`),
/// capped so that all returns together never exceed the payment's own fee. Rounding happens on
/// the cumulative amounts, so the returns add up to the payment's fee exactly when it is
/// refunded in full, however it is split.
pub fn refund_fee(
    paid: Amount,
    refunded_after: Amount,
    returned_before: Amount,
    fee_rate_bps: u32,
) -> Amount {
    let charged = fee(paid, fee_rate_bps).minor();
    let due = fee(refunded_after, fee_rate_bps).minor().min(charged);
    Amount::from_minor(due.saturating_sub(returned_before.minor()), paid.currency())
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
        ] {
            assert_eq!(Rate::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn conversion_rounds_half_up_once() {
        let usd = Amount::from_minor(1_234, Currency::USD); // 12.34
        let rate = Rate::parse("7.10650000").unwrap();
        // 12.34 * 7.1065 = 87.69421 -> 87.69
        assert_eq!(convert(usd, rate, Currency::CNY).unwrap().minor(), 8_769);
        let jpy = Amount::from_minor(1_000, Currency::JPY);
        let rate = Rate::parse("0.04750000").unwrap();
        assert_eq!(
            convert(jpy, rate, Currency::CNY).unwrap().to_string(),
            "47.50"
        );
        // half up: 0.05 * 0.10000000 = 0.005 -> 0.01
        let tiny = Amount::from_minor(5, Currency::USD);
        let rate = Rate::parse("0.10000000").unwrap();
        assert_eq!(convert(tiny, rate, Currency::CNY).unwrap().minor(), 1);
    }

    #[test]
    fn fees_round_half_up() {
        let cases = [
            (10_000, 180, 180),
            (25, 180, 0),
            (28, 180, 1),
            (1, 10_000, 1),
        ];
        for (minor, bps, want) in cases {
            let got = fee(Amount::from_minor(minor, Currency::USD), bps);
            assert_eq!(got.minor(), want, "{minor} at {bps}");
        }
    }

    #[test]
    fn refund_fees_add_up_to_the_payment_fee() {
        let usd = |minor| Amount::from_minor(minor, Currency::USD);
        // 0.84 at 180 bps: 1.512 cents -> 0.02. Rounded per refund, three 0.28 refunds would
        // return 0.01 each, 0.03 in all: more than was charged.
        assert_eq!(fee(usd(84), 180).minor(), 2);
        assert_eq!(fee(usd(28), 180).minor(), 1);
        let mut returned = usd(0);
        let mut each = Vec::new();
        for refunded_after in [28, 56, 84] {
            let r = refund_fee(usd(84), usd(refunded_after), returned, 180);
            each.push(r.minor());
            returned = returned.checked_add(r).unwrap();
        }
        assert_eq!(each, [1, 0, 1]);
        assert_eq!(returned.minor(), 2, "exactly the payment's fee");
        // Never above the charged fee, and never negative.
        assert_eq!(refund_fee(usd(84), usd(84), usd(2), 180).minor(), 0);
        assert_eq!(refund_fee(usd(84), usd(28), usd(2), 180).minor(), 0);
    }

    #[test]
    fn cross_rates() {
        let usd = Rate::parse("7.10650000").unwrap();
        let hkd = Rate::parse("0.91200000").unwrap();
        assert_eq!(cross_rate(usd, hkd).unwrap().to_string(), "7.79221491");
        assert_eq!(cross_rate(usd, usd), Some(Rate::ONE));
    }
}
