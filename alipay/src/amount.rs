//! Money: integer minor units with their currency, exact decimal parsing and formatting.
//!
//! Alipay sends amounts as decimal strings in major units. A float would silently turn
//! `0.29` into `0.28999…`; here an amount is a `u64` count of minor units (cents, or yen for the
//! zero-decimal currencies) carried together with its [`Currency`], so two currencies can never be
//! added and no rounding ever happens. Arithmetic is checked and returns an error instead of
//! wrapping or going negative.

use std::fmt;
use std::str::FromStr;

use crate::error::AmountError;

macro_rules! currencies {
    ($($code:ident => $decimals:expr),+ $(,)?) => {
        /// A supported settlement currency (spec §9), ISO 4217 upper case.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[allow(clippy::upper_case_acronyms)]
        pub enum Currency { $($code),+ }

        impl Currency {
            /// Every supported currency.
            pub const ALL: &'static [Currency] = &[$(Currency::$code),+];

            /// The ISO 4217 code.
            pub const fn code(self) -> &'static str {
                match self { $(Currency::$code => stringify!($code)),+ }
            }

            /// Decimals in the wire format: 0 for JPY and KRW, 2 for every other currency.
            pub const fn decimals(self) -> u8 {
                match self { $(Currency::$code => $decimals),+ }
            }
        }

        impl FromStr for Currency {
            type Err = ();
            fn from_str(s: &str) -> Result<Self, ()> {
                match s { $(stringify!($code) => Ok(Currency::$code),)+ _ => Err(()) }
            }
        }
    };
}

currencies! {
    GBP => 2, HKD => 2, USD => 2, SGD => 2, JPY => 0, CAD => 2, AUD => 2, EUR => 2, NZD => 2,
    KRW => 0, THB => 2, CHF => 2, SEK => 2, DKK => 2, NOK => 2, MYR => 2, IDR => 2, PHP => 2,
    MUR => 2, ILS => 2, LKR => 2, RUB => 2, AED => 2, CZK => 2, ZAR => 2, CNY => 2,
}

impl Currency {
    /// Minor units in one major unit (100 or 1).
    pub const fn minor_per_major(self) -> u64 {
        if self.decimals() == 0 {
            1
        } else {
            100
        }
    }

    /// The largest amount the spec allows: 100000000 major units.
    pub const fn max_minor(self) -> u64 {
        MAX_MAJOR_UNITS * self.minor_per_major()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The largest transaction amount in major units (spec §5.1: 0.01–100000000.00).
pub const MAX_MAJOR_UNITS: u64 = 100_000_000;

/// An amount of money: minor units of one currency. Zero is representable (a running total
/// starts there), but [`Amount::parse`] accepts only the spec's transaction range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Amount {
    minor: u64,
    currency: Currency,
}

impl Amount {
    /// An amount of `minor` units of `currency`.
    pub const fn from_minor(minor: u64, currency: Currency) -> Amount {
        Amount { minor, currency }
    }

    /// Zero of `currency`.
    pub const fn zero(currency: Currency) -> Amount {
        Amount { minor: 0, currency }
    }

    /// Minor units.
    pub const fn minor(self) -> u64 {
        self.minor
    }

    /// The currency.
    pub const fn currency(self) -> Currency {
        self.currency
    }

    /// True for zero.
    pub const fn is_zero(self) -> bool {
        self.minor == 0
    }

    /// Parses a wire amount exactly: digits, and for two-decimal currencies a `.` followed by
    /// exactly two digits; no sign, no exponent, no leading zeros (other than `0.xx`), within
    /// 0.01..=100000000.00.
    pub fn parse(text: &str, currency: Currency) -> Result<Amount, AmountError> {
        let decimals = usize::from(currency.decimals());
        let (int_part, frac_part) = match text.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (text, None),
        };
        if int_part.is_empty() || !int_part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AmountError::NotDecimal);
        }
        if int_part.len() > 1 && int_part.starts_with('0') {
            return Err(AmountError::NotDecimal);
        }
        let frac_len = frac_part.map_or(0, str::len);
        if let Some(frac) = frac_part {
            if !frac.bytes().all(|b| b.is_ascii_digit()) {
                return Err(AmountError::NotDecimal);
            }
        }
        if frac_part.is_some() && decimals == 0 || frac_len != decimals {
            return Err(AmountError::WrongPrecision {
                expected: currency.decimals(),
            });
        }
        // 9 integer digits is the most 100000000 can have; more is out of range for sure and
        // must not overflow the accumulator below.
        if int_part.len() > 9 {
            return Err(AmountError::OutOfRange);
        }
        let mut minor: u64 = 0;
        for b in int_part.bytes().chain(frac_part.unwrap_or("").bytes()) {
            minor = minor * 10 + u64::from(b - b'0');
        }
        if minor == 0 || minor > currency.max_minor() {
            return Err(AmountError::OutOfRange);
        }
        Ok(Amount { minor, currency })
    }

    /// `self + other`, refusing different currencies and overflow.
    pub fn checked_add(self, other: Amount) -> Result<Amount, AmountError> {
        self.same_currency(other)?;
        let minor = self
            .minor
            .checked_add(other.minor)
            .ok_or(AmountError::Overflow)?;
        Ok(Amount {
            minor,
            currency: self.currency,
        })
    }

    /// `self - other`, refusing different currencies and a negative result.
    pub fn checked_sub(self, other: Amount) -> Result<Amount, AmountError> {
        self.same_currency(other)?;
        let minor = self
            .minor
            .checked_sub(other.minor)
            .ok_or(AmountError::Overflow)?;
        Ok(Amount {
            minor,
            currency: self.currency,
        })
    }

    fn same_currency(self, other: Amount) -> Result<(), AmountError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(AmountError::CurrencyMismatch)
        }
    }
}

/// Formats as the wire decimal in major units (`12.30`, or `1200` for JPY), without allocating.
impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let per_major = self.currency.minor_per_major();
        if per_major == 1 {
            write!(f, "{}", self.minor)
        } else {
            write!(
                f,
                "{}.{:02}",
                self.minor / per_major,
                self.minor % per_major
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_format_round_trip() {
        for (text, cur, minor) in [
            ("0.01", Currency::USD, 1),
            ("12.30", Currency::HKD, 1230),
            ("100000000.00", Currency::EUR, 10_000_000_000),
            ("1200", Currency::JPY, 1200),
            ("100000000", Currency::KRW, 100_000_000),
        ] {
            let a = Amount::parse(text, cur).unwrap();
            assert_eq!(a.minor(), minor);
            assert_eq!(a.to_string(), text);
        }
    }

    #[test]
    fn arithmetic_is_checked() {
        let a = Amount::from_minor(5, Currency::USD);
        let b = Amount::from_minor(7, Currency::USD);
        assert_eq!(a.checked_add(b).unwrap().minor(), 12);
        assert_eq!(a.checked_sub(b), Err(AmountError::Overflow));
        let y = Amount::from_minor(5, Currency::JPY);
        assert_eq!(a.checked_add(y), Err(AmountError::CurrencyMismatch));
        let max = Amount::from_minor(u64::MAX, Currency::USD);
        assert_eq!(max.checked_add(a), Err(AmountError::Overflow));
    }
}
