//! Exchange rates and fees on [`Amount`]s.
//!
//! Rates are configured and answered as decimal strings with exactly 8 decimals (`7.10650000`).
//! The arithmetic and its one rounding (half up) live in the `switch-money` crate, which the
//! ledger's finance exports use too, so the simulator and the ledger always compute the same
//! cents from the same inputs; this module only carries the currencies of `alipay::Amount`.
//! No float on the money path.

use alipay::{Amount, Currency};

pub use switch_money::{cross_rate, Rate};

/// Converts `amount` at `rate` (units of `to` per unit of the amount's currency), rounded half
/// up to the minor unit of `to`.
pub fn convert(amount: Amount, rate: Rate, to: Currency) -> Option<Amount> {
    let from = amount.currency();
    let minor = switch_money::convert_minor(
        amount.minor(),
        rate,
        from.minor_per_major(),
        to.minor_per_major(),
    )?;
    Some(Amount::from_minor(minor, to))
}

/// Alipay's fee on `amount` at `fee_rate_bps` basis points, rounded half up to the minor unit
/// (never more than the amount).
pub fn fee(amount: Amount, fee_rate_bps: u32) -> Amount {
    let minor = switch_money::fee_minor(amount.minor(), fee_rate_bps);
    Amount::from_minor(minor, amount.currency())
}

/// The fee returned by one refund of a payment of `paid`: see
/// [`switch_money::refund_fee_minor`] (cumulative, so the returns of a fully refunded payment
/// add up to its fee exactly, however it is split).
pub fn refund_fee(
    paid: Amount,
    refunded_after: Amount,
    returned_before: Amount,
    fee_rate_bps: u32,
) -> Amount {
    let charged = switch_money::fee_minor(paid.minor(), fee_rate_bps);
    let minor = switch_money::refund_fee_minor(
        charged,
        refunded_after.minor(),
        returned_before.minor(),
        fee_rate_bps,
    );
    Amount::from_minor(minor, paid.currency())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversion_uses_each_currency_s_minor_unit() {
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
    }

    #[test]
    fn fees_keep_the_payment_s_currency() {
        let usd = |minor| Amount::from_minor(minor, Currency::USD);
        assert_eq!(fee(usd(84), 180), usd(2));
        let returned: Vec<u64> = [(28, 0), (56, 1), (84, 1)]
            .into_iter()
            .map(|(after, before)| refund_fee(usd(84), usd(after), usd(before), 180).minor())
            .collect();
        assert_eq!(returned, [1, 0, 1]);
    }
}
