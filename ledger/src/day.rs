//! Beijing calendar days, the unit of Alipay's settlement.
//!
//! Alipay settles and reconciles by the day in Beijing time (GMT+8, no daylight saving), so the
//! `by_day` index files every money-moving event under the Beijing day of its `at_ms`. The
//! conversion is plain integer arithmetic on the proleptic Gregorian calendar (Howard Hinnant's
//! `civil_from_days`); no clock is read and no time zone database is needed.

use std::fmt;

/// The earliest event time the journal accepts: 1970-01-01T00:00:00Z.
pub const AT_MS_MIN: i64 = 0;

/// The latest event time the journal accepts: 9999-12-31 23:59:59.999 in Beijing. Keeps every
/// Beijing day a four-digit year, so `yyyymmdd` sorts as a number.
pub const AT_MS_MAX: i64 = 253_402_271_999_999;

/// Beijing is UTC+8 all year.
pub const BEIJING_OFFSET_MS: i64 = 8 * 3_600_000;

const MS_PER_DAY: i64 = 86_400_000;

/// A day in Beijing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BeijingDay {
    year: u16,
    month: u8,
    day: u8,
}

impl BeijingDay {
    /// The day, if `year`-`month`-`day` is a real date in years 1..=9999.
    pub fn from_ymd(year: u16, month: u8, day: u8) -> Option<BeijingDay> {
        let valid_year = (1..=9999).contains(&year);
        let valid_month = (1..=12).contains(&month);
        if !valid_year || !valid_month || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        Some(BeijingDay { year, month, day })
    }

    /// The Beijing day of a UTC time in ms, for times in `AT_MS_MIN..=AT_MS_MAX` (others are
    /// clamped into that range first).
    pub fn of_ms(at_ms: i64) -> BeijingDay {
        let at_ms = at_ms.clamp(AT_MS_MIN, AT_MS_MAX);
        let days = (at_ms + BEIJING_OFFSET_MS).div_euclid(MS_PER_DAY);
        let (y, m, d) = civil_from_days(days);
        // In the clamped range the year is 1970..=9999 and month and day are calendar values,
        // so none of these conversions can fail.
        BeijingDay {
            year: u16::try_from(y).unwrap_or(9999),
            month: u8::try_from(m).unwrap_or(12),
            day: u8::try_from(d).unwrap_or(31),
        }
    }

    /// The year.
    pub fn year(self) -> u16 {
        self.year
    }

    /// The month, 1..=12.
    pub fn month(self) -> u8 {
        self.month
    }

    /// The day of the month, 1..=31.
    pub fn day(self) -> u8 {
        self.day
    }

    /// The day as the number `yyyymmdd`, which sorts like the date.
    pub fn yyyymmdd(self) -> u32 {
        u32::from(self.year) * 10_000 + u32::from(self.month) * 100 + u32::from(self.day)
    }

    /// The day from `yyyymmdd`, if it is a real date.
    pub fn from_yyyymmdd(n: u32) -> Option<BeijingDay> {
        let year = u16::try_from(n / 10_000).ok()?;
        let month = u8::try_from(n / 100 % 100).ok()?;
        let day = u8::try_from(n % 100).ok()?;
        BeijingDay::from_ymd(year, month, day)
    }
}

impl fmt::Display for BeijingDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

fn is_leap(year: u16) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// (year, month, day) of the day `z` days after 1970-01-01 (Hinnant, `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beijing_day_boundaries() {
        // 1970-01-01T00:00Z is 08:00 in Beijing.
        assert_eq!(BeijingDay::of_ms(0).yyyymmdd(), 19700101);
        // 2024-02-28T15:59:59.999Z is 23:59:59.999 in Beijing; one ms later is Feb 29.
        let t = 1_709_135_999_999;
        assert_eq!(BeijingDay::of_ms(t).yyyymmdd(), 20240228);
        assert_eq!(BeijingDay::of_ms(t + 1).yyyymmdd(), 20240229);
        assert_eq!(BeijingDay::of_ms(AT_MS_MAX).yyyymmdd(), 99991231);
        assert_eq!(BeijingDay::of_ms(i64::MAX).yyyymmdd(), 99991231);
        assert_eq!(BeijingDay::of_ms(i64::MIN).yyyymmdd(), 19700101);
    }

    #[test]
    fn from_ymd_checks_the_calendar() {
        assert!(BeijingDay::from_ymd(2023, 2, 29).is_none());
        assert!(BeijingDay::from_ymd(2024, 2, 29).is_some());
        assert!(BeijingDay::from_ymd(2024, 13, 1).is_none());
        assert!(BeijingDay::from_ymd(0, 1, 1).is_none());
        assert_eq!(
            BeijingDay::from_yyyymmdd(20240229).map(|d| d.day()),
            Some(29)
        );
        assert!(BeijingDay::from_yyyymmdd(20240230).is_none());
    }
}
