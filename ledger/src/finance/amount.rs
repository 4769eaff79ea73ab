//! Money, fees and exchange rates as Alipay's files spell them, in integer arithmetic.
//!
//! The journal's [`Money`] is minor units and an ISO code; Alipay's files write decimal strings
//! in major units with exactly the currency's decimals (spec §9: none for JPY and KRW, two for
//! every other supported currency). Fees are basis points of an amount rounded half up, and a
//! refund returns fees cumulatively, exactly as the simulator charges them: both use the
//! `switch-money` crate's rounding, so an export computed from a fee rate agrees with Alipay's
//! file to the cent. Rates have 8 decimals and are integers scaled by 1e8. No float anywhere.

use crate::record::Money;

/// Rates, fees and their rounding are the `switch-money` crate's, which the simulator uses too:
/// one piece of code, so an export computed from a fee rate cannot round differently from
/// Alipay's (simulated) file.
pub use switch_money::{fee_minor, refund_fee_minor, Rate, BPS_PER_WHOLE, RATE_SCALE};

/// The settlement currencies of spec §9.
pub const SUPPORTED_CURRENCIES: [&str; 26] = [
    "GBP", "HKD", "USD", "SGD", "JPY", "CAD", "AUD", "EUR", "NZD", "KRW", "THB", "CHF", "SEK",
    "DKK", "NOK", "MYR", "IDR", "PHP", "MUR", "ILS", "LKR", "RUB", "AED", "CZK", "ZAR", "CNY",
];

/// Longest decimal amount accepted, in characters (integer digits, point and decimals). Far above
/// Alipay's maximum of 100000000.00 and far below what overflows `u64` minor units.
pub const AMOUNT_CHARS_MAX: usize = 16;

/// CNY, the currency `Rmb_*` columns are in.
pub const CNY: [u8; 3] = *b"CNY";

/// The number of decimals `currency` is written with: 0 for JPY and KRW, 2 otherwise.
pub fn decimals(currency: [u8; 3]) -> u32 {
    match &currency {
        b"JPY" | b"KRW" => 0,
        _ => 2,
    }
}

/// Minor units in one major unit of `currency`.
pub fn minor_per_major(currency: [u8; 3]) -> u64 {
    10_u64.pow(decimals(currency))
}

/// A supported currency code from its text.
pub fn parse_currency(text: &str) -> Option<[u8; 3]> {
    if !SUPPORTED_CURRENCIES.contains(&text) {
        return None;
    }
    let bytes: [u8; 3] = text.as_bytes().try_into().ok()?;
    Some(bytes)
}

/// `minor` units of `currency` as Alipay writes them: `12.30`, `1230` (JPY).
pub fn format_minor(minor: u64, currency: [u8; 3]) -> String {
    let per = minor_per_major(currency);
    if per == 1 {
        minor.to_string()
    } else {
        format!("{}.{:02}", minor / per, minor % per)
    }
}

/// An amount as Alipay writes it.
pub fn format_money(money: Money) -> String {
    format_minor(money.minor, money.currency)
}

/// A signed amount of minor units (net figures), with a leading `-` when negative.
pub fn format_signed(minor: i128, currency: [u8; 3]) -> String {
    let magnitude = u64::try_from(minor.unsigned_abs()).unwrap_or(u64::MAX);
    let text = format_minor(magnitude, currency);
    if minor < 0 {
        format!("-{text}")
    } else {
        text
    }
}

/// Why a decimal amount was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// Empty text.
    #[error("empty amount")]
    Empty,
    /// Longer than [`AMOUNT_CHARS_MAX`].
    #[error("amount longer than {AMOUNT_CHARS_MAX} characters")]
    TooLong,
    /// Not `digits[.decimals]`.
    #[error("`{0}` is not a decimal amount")]
    NotDecimal(String),
    /// The wrong number of decimals for the currency.
    #[error("`{text}` must have {want} decimals in {currency}")]
    Decimals {
        /// The amount as written.
        text: String,
        /// Decimals the currency takes.
        want: u32,
        /// The currency.
        currency: String,
    },
}

/// Parses an amount written with exactly the decimals of `currency` (`0.00` is allowed: fees).
pub fn parse_money(text: &str, currency: [u8; 3]) -> Result<Money, AmountError> {
    if text.is_empty() {
        return Err(AmountError::Empty);
    }
    if text.len() > AMOUNT_CHARS_MAX {
        return Err(AmountError::TooLong);
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (int_part, frac) = match text.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (text, None),
    };
    if !digits(int_part) || frac.is_some_and(|f| !digits(f)) {
        return Err(AmountError::NotDecimal(text.to_owned()));
    }
    let want = decimals(currency);
    let got = frac.map_or(0, str::len);
    if u32::try_from(got).ok() != Some(want) {
        return Err(AmountError::Decimals {
            text: text.to_owned(),
            want,
            currency: String::from_utf8_lossy(&currency).into_owned(),
        });
    }
    let not_decimal = || AmountError::NotDecimal(text.to_owned());
    let int_value: u64 = int_part.parse().map_err(|_| not_decimal())?;
    let frac_value: u64 = frac.map_or(Ok(0), str::parse).map_err(|_| not_decimal())?;
    let minor = int_value
        .checked_mul(minor_per_major(currency))
        .and_then(|m| m.checked_add(frac_value))
        .ok_or_else(not_decimal)?;
    Ok(Money::new(minor, currency))
}

/// Converts `money` at `rate` (units of `to` per unit of its currency), half up to the minor
/// unit of `to`. `None` only on overflow.
pub fn convert(money: Money, rate: Rate, to: [u8; 3]) -> Option<Money> {
    let minor = switch_money::convert_minor(
        money.minor,
        rate,
        minor_per_major(money.currency),
        minor_per_major(to),
    )?;
    Some(Money::new(minor, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    const USD: [u8; 3] = *b"USD";
    const JPY: [u8; 3] = *b"JPY";

    #[test]
    fn amounts_round_trip_with_the_currency_decimals() {
        assert_eq!(format_minor(1230, USD), "12.30");
        assert_eq!(format_minor(5, USD), "0.05");
        assert_eq!(format_minor(1230, JPY), "1230");
        assert_eq!(format_signed(-1230, USD), "-12.30");
        assert_eq!(parse_money("12.30", USD), Ok(Money::new(1230, USD)));
        assert_eq!(parse_money("0.00", USD), Ok(Money::new(0, USD)));
        assert_eq!(parse_money("1230", JPY), Ok(Money::new(1230, JPY)));
        assert!(parse_money("12.3", USD).is_err());
        assert!(parse_money("12", USD).is_err());
        assert!(parse_money("12.00", JPY).is_err());
        assert!(parse_money("-1.00", USD).is_err());
        assert!(parse_money("1e3", USD).is_err());
        assert!(parse_money(".50", USD).is_err());
        assert!(parse_money("99999999999999.99", USD).is_err());
    }

    #[test]
    fn conversion_uses_each_currency_s_decimals() {
        let rate = Rate::parse("7.10650000").unwrap();
        assert_eq!(
            convert(Money::new(10_000, USD), rate, CNY),
            Some(Money::new(71_065, CNY))
        );
        let rate = Rate::parse("0.04750000").unwrap();
        assert_eq!(
            convert(Money::new(1_000, JPY), rate, CNY),
            Some(Money::new(4_750, CNY))
        );
    }
}
