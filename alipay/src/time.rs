//! Alipay's time formats, all in Beijing time (GMT+8).
//!
//! The wire carries wall-clock times without an offset (`yyyyMMddHHmmss`, or `yyyy-MM-dd HH:mm:ss`
//! in notifications and reconciliation files); they are always GMT+8, and business days (the
//! cancel window, the settlement day) are Beijing calendar days. [`BeijingTime`] holds such a
//! time and converts it exactly to and from Unix milliseconds. Nothing here reads the clock: the
//! caller passes "now" in.

use std::fmt;

use time::macros::{format_description, offset};
use time::{Date, OffsetDateTime, PrimitiveDateTime, UtcOffset};

/// GMT+8, the offset of every Alipay wall-clock time.
pub const BEIJING: UtcOffset = offset!(+8);

const DASHED: &[time::format_description::BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
const DAY: &[time::format_description::BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]");
const DAY_COMPACT: &[time::format_description::BorrowedFormatItem<'static>] =
    format_description!("[year][month][day]");

/// A wall-clock time in Beijing (GMT+8), to the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BeijingTime(PrimitiveDateTime);

impl BeijingTime {
    /// The Beijing wall-clock time at `unix_ms` milliseconds since the epoch (sub-second part
    /// dropped). `None` outside the years 1..=9999.
    pub fn from_unix_ms(unix_ms: i64) -> Option<BeijingTime> {
        let secs = unix_ms.div_euclid(1000);
        let utc = OffsetDateTime::from_unix_timestamp(secs).ok()?;
        let local = utc.checked_to_offset(BEIJING)?;
        Some(BeijingTime(PrimitiveDateTime::new(
            local.date(),
            local.time(),
        )))
    }

    /// Milliseconds since the Unix epoch.
    pub fn unix_ms(self) -> i64 {
        self.0.assume_offset(BEIJING).unix_timestamp() * 1000
    }

    /// Parses `yyyyMMddHHmmss`, exactly 14 digits.
    pub fn parse_compact(text: &str) -> Option<BeijingTime> {
        let b = text.as_bytes();
        if b.len() != 14 || !b.iter().all(u8::is_ascii_digit) {
            return None;
        }
        // Fixed positions, all digits: read them directly; `time` checks the calendar (month
        // length, leap years). Several times faster than a format-description parse, and this is
        // on every pay request and response.
        let num = |at: usize, len: usize| {
            b[at..at + len]
                .iter()
                .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'))
        };
        let month = time::Month::try_from(u8::try_from(num(4, 2)).ok()?).ok()?;
        let date =
            Date::from_calendar_date(i32::from(num(0, 4)), month, u8::try_from(num(6, 2)).ok()?)
                .ok()?;
        let [h, mi, s] =
            [num(8, 2), num(10, 2), num(12, 2)].map(|v| u8::try_from(v).unwrap_or(u8::MAX));
        let time = time::Time::from_hms(h, mi, s).ok()?;
        Some(BeijingTime(PrimitiveDateTime::new(date, time)))
    }

    /// Parses `yyyy-MM-dd HH:mm:ss`, exactly that shape: 19 characters, digits where the
    /// pattern has digits (`time`'s year component alone would also take a sign, `+0000`).
    pub fn parse_dashed(text: &str) -> Option<BeijingTime> {
        let b = text.as_bytes();
        let shape_ok = b.len() == 19
            && b.iter().enumerate().all(|(i, c)| match i {
                4 | 7 => *c == b'-',
                10 => *c == b' ',
                13 | 16 => *c == b':',
                _ => c.is_ascii_digit(),
            });
        if !shape_ok {
            return None;
        }
        PrimitiveDateTime::parse(text, DASHED).ok().map(BeijingTime)
    }

    /// `yyyyMMddHHmmss`, as requests and responses carry it.
    pub fn compact(self) -> Formatted {
        Formatted(self, Style::Compact)
    }

    /// `yyyy-MM-dd HH:mm:ss`, as notifications and reconciliation files carry it.
    pub fn dashed(self) -> Formatted {
        Formatted(self, Style::Dashed)
    }

    /// The Beijing calendar day.
    pub fn day(self) -> BeijingDay {
        BeijingDay(self.0.date())
    }
}

/// A Beijing calendar day: the business and settlement day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BeijingDay(Date);

impl BeijingDay {
    /// Parses `yyyy-MM-dd`, exactly that shape (no sign on the year).
    pub fn parse(text: &str) -> Option<BeijingDay> {
        let b = text.as_bytes();
        let shape_ok = b.len() == 10
            && b.iter().enumerate().all(|(i, c)| match i {
                4 | 7 => *c == b'-',
                _ => c.is_ascii_digit(),
            });
        if !shape_ok {
            return None;
        }
        Date::parse(text, DAY).ok().map(BeijingDay)
    }

    /// Milliseconds since the epoch at 00:00:00 of this day in Beijing.
    pub fn start_unix_ms(self) -> i64 {
        BeijingTime(self.0.midnight()).unix_ms()
    }

    /// The next day. `None` after 9999-12-31.
    pub fn next(self) -> Option<BeijingDay> {
        self.0.next_day().map(BeijingDay)
    }

    /// `yyyyMMdd`, as reconciliation file names carry it.
    pub fn compact(self) -> String {
        self.0.format(DAY_COMPACT).unwrap_or_default()
    }
}

impl fmt::Display for BeijingDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        write!(
            f,
            "{:04}-{:02}-{:02}",
            d.year(),
            u8::from(d.month()),
            d.day()
        )
    }
}

#[derive(Debug, Clone, Copy)]
enum Style {
    Compact,
    Dashed,
}

/// A [`BeijingTime`] in one of the wire formats; `Display` writes it without allocating.
#[derive(Debug, Clone, Copy)]
pub struct Formatted(BeijingTime, Style);

impl fmt::Display for Formatted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0 .0;
        let (y, mo, d) = (t.year(), u8::from(t.month()), t.day());
        let (h, mi, s) = (t.hour(), t.minute(), t.second());
        match self.1 {
            Style::Compact => write!(f, "{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}"),
            Style::Dashed => write!(f, "{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_year_is_refused() {
        assert!(BeijingTime::parse_dashed("+0000-01-01 00:00:00").is_none());
        assert!(BeijingDay::parse("+2026-01-01").is_none());
        assert!(BeijingDay::parse("2026-01-01").is_some());
        assert!(BeijingTime::parse_dashed("2026-01-01 12:00:00").is_some());
    }

    #[test]
    fn beijing_is_utc_plus_8() {
        // 2026-01-01T00:00:00Z is 08:00 in Beijing.
        let t = BeijingTime::from_unix_ms(1_767_225_600_000).unwrap();
        assert_eq!(t.compact().to_string(), "20260101080000");
        assert_eq!(t.dashed().to_string(), "2026-01-01 08:00:00");
        assert_eq!(BeijingTime::parse_compact("20260101080000"), Some(t));
        assert_eq!(t.unix_ms(), 1_767_225_600_000);
        // 2025-12-31T16:00:00Z is the first second of the Beijing day 2026-01-01.
        let midnight = BeijingTime::from_unix_ms(1_767_196_800_000).unwrap();
        assert_eq!(midnight.day().to_string(), "2026-01-01");
        assert_eq!(midnight.day().start_unix_ms(), 1_767_196_800_000);
    }

    #[test]
    fn parses_calendar_edges() {
        for ok in [
            "20240229235959",
            "20261231000000",
            "00010101000000",
            "99991231235959",
        ] {
            let t = BeijingTime::parse_compact(ok).unwrap();
            assert_eq!(t.compact().to_string(), ok);
        }
    }

    #[test]
    fn rejects_malformed_times() {
        for bad in [
            "2026010108000",
            "202601010800000",
            "20261301080000",
            "20260230120000",
            "20250229120000",
            "20260101240000",
            "20260101126000",
            "20260101120060",
            "20260001120000",
            "20260100120000",
            "2026013208000x",
            "",
        ] {
            assert_eq!(BeijingTime::parse_compact(bad), None, "{bad}");
        }
    }
}
