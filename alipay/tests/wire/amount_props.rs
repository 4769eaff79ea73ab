//! Money: for every currency, formatting then parsing is the identity on the whole valid
//! range, the parser accepts exactly one spelling per amount, and checked arithmetic agrees
//! with exact (u128) arithmetic.

use alipay::{Amount, AmountError, Currency};
use proptest::prelude::*;

fn currency() -> impl Strategy<Value = Currency> {
    proptest::sample::select(Currency::ALL.to_vec())
}

/// A currency and a valid amount of it, weighted towards the edges of the range.
fn valid_amount() -> impl Strategy<Value = Amount> {
    currency().prop_flat_map(|c| {
        let max = c.max_minor();
        prop_oneof![1..=200_u64, (max - 200)..=max, 1..=max]
            .prop_map(move |m| Amount::from_minor(m, c))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn format_then_parse_is_the_identity(a in valid_amount()) {
        let text = a.to_string();
        prop_assert_eq!(Amount::parse(&text, a.currency()), Ok(a));
        // The shape of the text: exactly the currency's decimals.
        match a.currency().decimals() {
            0 => prop_assert!(text.bytes().all(|b| b.is_ascii_digit())),
            d => {
                let (_, frac) = text.split_once('.').unwrap();
                prop_assert_eq!(frac.len(), usize::from(d));
            }
        }
    }

    #[test]
    fn amounts_outside_the_range_format_but_do_not_parse(c in currency(), extra in 1..=u64::MAX / 1000) {
        for minor in [0, c.max_minor() + extra] {
            let text = Amount::from_minor(minor, c).to_string();
            prop_assert_eq!(Amount::parse(&text, c), Err(AmountError::OutOfRange), "{}", text);
        }
    }

    /// Whatever the parser accepts, it accepts in canonical form only.
    #[test]
    fn parse_accepts_only_the_canonical_spelling(text in "[0-9.]{1,14}|[0-9]{1,10}\\.[0-9]{0,3}", c in currency()) {
        if let Ok(a) = Amount::parse(&text, c) {
            prop_assert_eq!(a.to_string(), text);
            prop_assert_eq!(a.currency(), c);
        }
    }

    #[test]
    fn wrong_decimals_are_wrong_precision(
        int in 1..=99_999_999_u64,
        frac in proptest::option::of("[0-9]{0,5}"),
        c in currency(),
    ) {
        // `None`: no decimal point at all.
        let given = frac.as_ref().map(String::len);
        let right = (c.decimals() > 0).then(|| usize::from(c.decimals()));
        prop_assume!(given != right);
        let text = match &frac {
            None => int.to_string(),
            Some(f) => format!("{int}.{f}"),
        };
        prop_assert_eq!(
            Amount::parse(&text, c),
            Err(AmountError::WrongPrecision { expected: c.decimals() }),
            "{}", text
        );
    }

    #[test]
    fn checked_arithmetic_agrees_with_u128(a in any::<u64>(), b in any::<u64>(), c in currency()) {
        let (x, y) = (Amount::from_minor(a, c), Amount::from_minor(b, c));
        let sum = u128::from(a) + u128::from(b);
        match x.checked_add(y) {
            Ok(s) => {
                prop_assert_eq!(u128::from(s.minor()), sum);
                prop_assert_eq!(s.currency(), c);
            }
            Err(e) => {
                prop_assert_eq!(e, AmountError::Overflow);
                prop_assert!(sum > u128::from(u64::MAX));
            }
        }
        match x.checked_sub(y) {
            Ok(d) => {
                prop_assert!(a >= b);
                prop_assert_eq!(d.minor(), a - b);
                prop_assert_eq!(d.currency(), c);
            }
            Err(e) => {
                prop_assert_eq!(e, AmountError::Overflow);
                prop_assert!(a < b);
            }
        }
    }

    #[test]
    fn arithmetic_on_two_currencies_is_refused(a in any::<u64>(), b in any::<u64>(), c in currency(), d in currency()) {
        prop_assume!(c != d);
        let (x, y) = (Amount::from_minor(a, c), Amount::from_minor(b, d));
        prop_assert_eq!(x.checked_add(y), Err(AmountError::CurrencyMismatch));
        prop_assert_eq!(x.checked_sub(y), Err(AmountError::CurrencyMismatch));
    }

    /// Small values: add and sub on parsed amounts agree with the decimal strings' arithmetic.
    #[test]
    fn sums_of_parsed_amounts(a in 1..=10_000_000_000_u64, b in 1..=10_000_000_000_u64) {
        let (x, y) = (Amount::from_minor(a, Currency::USD), Amount::from_minor(b, Currency::USD));
        let x = Amount::parse(&x.to_string(), Currency::USD).unwrap();
        let y = Amount::parse(&y.to_string(), Currency::USD).unwrap();
        prop_assert_eq!(x.checked_add(y).unwrap().minor(), a + b);
        prop_assert_eq!(x.checked_add(y).unwrap().checked_sub(y), Ok(x));
    }
}

#[test]
fn every_currency_has_its_precision() {
    assert_eq!(Currency::ALL.len(), 26);
    for &c in Currency::ALL {
        let (decimals, one) = match c {
            Currency::JPY | Currency::KRW => (0, "1"),
            _ => (2, "0.01"),
        };
        assert_eq!(c.decimals(), decimals, "{c}");
        assert_eq!(Amount::parse(one, c).map(Amount::minor), Ok(1), "{c}");
        assert_eq!(c.code().parse::<Currency>(), Ok(c));
        let max = if decimals == 0 {
            "100000000"
        } else {
            "100000000.00"
        };
        assert_eq!(
            Amount::parse(max, c).map(Amount::minor),
            Ok(c.max_minor()),
            "{c}"
        );
    }
}
