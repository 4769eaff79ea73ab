//! What the journal does not know about money: Alipay's fee rate per upstream partner and the
//! exchange rates to CNY.
//!
//! Alipay's pay response carries no fee, so a journal event reports one only when the switch
//! learned it somewhere (`PayOutcome::fee`, `QueryResult::fee`, `RefundResult::fee`). When it did
//! not, finance computes the fee from the partner's contracted rate, given here, with Alipay's
//! rounding (see [`crate::finance::amount`]); with no rate the fee is unknown, written as zero
//! and marked so ([`crate::finance::rows::FeeSource::Unknown`]). The settlement file's `Rate`
//! and `Rmb_*` columns likewise need a rate to CNY per currency; CNY itself is always 1.

use std::collections::BTreeMap;

use crate::finance::amount::{parse_currency, Rate, BPS_PER_WHOLE, CNY};

/// Fee rates and exchange rates, as given on the command line (`--fee-rate PARTNER=BPS`,
/// `--rate CCY=RATE`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pricing {
    fee_rate_bps: BTreeMap<String, u32>,
    rates_to_cny: BTreeMap<[u8; 3], Rate>,
}

/// Why a pricing input was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    /// Not `NAME=VALUE`.
    #[error("`{0}` is not NAME=VALUE")]
    NotPair(String),
    /// A fee rate that is not an integer in 0..=10000.
    #[error("fee rate `{0}` is not a whole number of basis points in 0..=10000")]
    FeeRate(String),
    /// An unsupported currency.
    #[error("`{0}` is not a supported currency")]
    Currency(String),
    /// A rate without exactly 8 decimals.
    #[error("rate `{0}` is not a positive decimal with exactly 8 decimals")]
    Rate(String),
}

impl Pricing {
    /// No fee rates, no exchange rates.
    pub fn new() -> Pricing {
        Pricing::default()
    }

    /// Sets the fee rate of `partner`.
    pub fn with_fee_rate(
        mut self,
        partner: impl Into<String>,
        bps: u32,
    ) -> Result<Pricing, PricingError> {
        if bps > BPS_PER_WHOLE {
            return Err(PricingError::FeeRate(bps.to_string()));
        }
        self.fee_rate_bps.insert(partner.into(), bps);
        Ok(self)
    }

    /// Sets the rate of `currency` to CNY.
    pub fn with_rate(mut self, currency: [u8; 3], rate: Rate) -> Pricing {
        self.rates_to_cny.insert(currency, rate);
        self
    }

    /// Adds `PARTNER=BPS`.
    pub fn add_fee_flag(self, text: &str) -> Result<Pricing, PricingError> {
        let (partner, bps) = split_pair(text)?;
        let bps: u32 = bps
            .parse()
            .map_err(|_| PricingError::FeeRate(bps.to_owned()))?;
        self.with_fee_rate(partner, bps)
    }

    /// Adds `CCY=RATE`.
    pub fn add_rate_flag(self, text: &str) -> Result<Pricing, PricingError> {
        let (currency, rate) = split_pair(text)?;
        let code = parse_currency(currency).ok_or(PricingError::Currency(currency.to_owned()))?;
        let rate = Rate::parse(rate).ok_or(PricingError::Rate(rate.to_owned()))?;
        Ok(self.with_rate(code, rate))
    }

    /// The fee rate of `partner`, if known.
    pub fn fee_rate_bps(&self, partner: &str) -> Option<u32> {
        self.fee_rate_bps.get(partner).copied()
    }

    /// The rate of `currency` to CNY, if known (always 1 for CNY).
    pub fn rate_to_cny(&self, currency: [u8; 3]) -> Option<Rate> {
        if currency == CNY {
            return Some(Rate::ONE);
        }
        self.rates_to_cny.get(&currency).copied()
    }
}

fn split_pair(text: &str) -> Result<(&str, &str), PricingError> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() && !value.is_empty() => Ok((name, value)),
        _ => Err(PricingError::NotPair(text.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_or_say_why_not() {
        let p = Pricing::new()
            .add_fee_flag("2088101122136241=180")
            .and_then(|p| p.add_rate_flag("USD=7.10650000"))
            .unwrap();
        assert_eq!(p.fee_rate_bps("2088101122136241"), Some(180));
        assert_eq!(p.fee_rate_bps("other"), None);
        assert_eq!(
            p.rate_to_cny(*b"USD").map(|r| r.to_string()).as_deref(),
            Some("7.10650000")
        );
        assert_eq!(p.rate_to_cny(*b"CNY"), Some(Rate::ONE));
        assert_eq!(p.rate_to_cny(*b"EUR"), None);
        let bad = Pricing::new();
        assert!(matches!(
            bad.clone().add_fee_flag("p=10001"),
            Err(PricingError::FeeRate(_))
        ));
        assert!(matches!(
            bad.clone().add_fee_flag("p"),
            Err(PricingError::NotPair(_))
        ));
        assert!(matches!(
            bad.clone().add_rate_flag("XXX=1.00000000"),
            Err(PricingError::Currency(_))
        ));
        assert!(matches!(
            bad.add_rate_flag("USD=7.1"),
            Err(PricingError::Rate(_))
        ));
    }
}
