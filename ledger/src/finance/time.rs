//! Beijing wall-clock times and days as Alipay's files and the CLI write them.
//!
//! Alipay's files give times as `yyyy-MM-dd HH:mm:ss` in GMT+8 and name days `yyyy-MM-dd` in
//! headers and `yyyyMMdd` in file names. Everything here is integer arithmetic over
//! [`BeijingDay`] (no time zone database, no clock); the inverse of `BeijingDay::of_ms` is
//! Hinnant's `days_from_civil`.

use crate::day::{BeijingDay, AT_MS_MAX, AT_MS_MIN, BEIJING_OFFSET_MS};

const MS_PER_DAY: i64 = 86_400_000;
const MS_PER_SECOND: i64 = 1_000;

/// Days from 1970-01-01 to `year-month-day` (Hinnant, `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// UTC milliseconds of 00:00:00 Beijing time on `day`.
pub fn day_start_ms(day: BeijingDay) -> i64 {
    let days = days_from_civil(
        i64::from(day.year()),
        i64::from(day.month()),
        i64::from(day.day()),
    );
    days * MS_PER_DAY - BEIJING_OFFSET_MS
}

/// UTC milliseconds of the first instant after `day` (its exclusive end).
pub fn day_end_ms(day: BeijingDay) -> i64 {
    day_start_ms(day) + MS_PER_DAY
}

/// The day after `day`, if it is in the journal's range.
pub fn next_day(day: BeijingDay) -> Option<BeijingDay> {
    let end = day_end_ms(day);
    (end <= AT_MS_MAX).then(|| BeijingDay::of_ms(end))
}

/// The day before `day`, if it is in the journal's range.
pub fn previous_day(day: BeijingDay) -> Option<BeijingDay> {
    let before = day_start_ms(day) - 1;
    (before >= AT_MS_MIN).then(|| BeijingDay::of_ms(before))
}

/// `yyyyMMdd`, as in file names.
pub fn compact(day: BeijingDay) -> String {
    format!("{:08}", day.yyyymmdd())
}

/// `yyyy-MM-dd HH:mm:ss` in Beijing time of UTC milliseconds (clamped to the journal's range).
pub fn format_beijing(at_ms: i64) -> String {
    let at_ms = at_ms.clamp(AT_MS_MIN, AT_MS_MAX);
    let day = BeijingDay::of_ms(at_ms);
    let seconds = (at_ms + BEIJING_OFFSET_MS).rem_euclid(MS_PER_DAY) / MS_PER_SECOND;
    format!(
        "{day} {:02}:{:02}:{:02}",
        seconds / 3_600,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// Parses `yyyy-MM-dd` into a day.
pub fn parse_day(text: &str) -> Option<BeijingDay> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = u16::try_from(number(&b[0..4])?).ok()?;
    let month = u8::try_from(number(&b[5..7])?).ok()?;
    let day = u8::try_from(number(&b[8..10])?).ok()?;
    BeijingDay::from_ymd(year, month, day)
}

/// Parses `yyyy-MM-dd HH:mm:ss` (Beijing) into UTC milliseconds.
pub fn parse_beijing(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 19 || b[10] != b' ' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let day = parse_day(text.get(0..10)?)?;
    let hour = number(&b[11..13])?;
    let minute = number(&b[14..16])?;
    let second = number(&b[17..19])?;
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let seconds = i64::from(hour * 3_600 + minute * 60 + second);
    let at_ms = day_start_ms(day) + seconds * MS_PER_SECOND;
    (AT_MS_MIN..=AT_MS_MAX).contains(&at_ms).then_some(at_ms)
}

/// A run of ASCII digits as a number (at most 9 digits, so it fits).
fn number(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || digits.len() > 9 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0_u32, |n, d| {
        n.checked_mul(10)?.checked_add(u32::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_through_beijing_text() {
        // 2024-02-28T15:59:59Z is 23:59:59 in Beijing.
        let t = 1_709_135_999_000;
        assert_eq!(format_beijing(t), "2024-02-28 23:59:59");
        assert_eq!(parse_beijing("2024-02-28 23:59:59"), Some(t));
        assert_eq!(format_beijing(t + 1_999), "2024-02-29 00:00:00");
        assert_eq!(parse_beijing("2024-02-30 00:00:00"), None);
        assert_eq!(parse_beijing("2024-02-28 24:00:00"), None);
        assert_eq!(parse_beijing("2024-02-28T23:59:59"), None);
        assert_eq!(parse_beijing("1970-01-01 07:59:59"), None);
    }

    #[test]
    fn days_have_starts_ends_and_neighbours() {
        let day = parse_day("2024-02-29").unwrap();
        assert_eq!(BeijingDay::of_ms(day_start_ms(day)), day);
        assert_eq!(BeijingDay::of_ms(day_end_ms(day) - 1), day);
        assert_eq!(next_day(day).map(compact).as_deref(), Some("20240301"));
        assert_eq!(previous_day(day).map(compact).as_deref(), Some("20240228"));
        assert_eq!(parse_day("2024-2-29"), None);
        assert_eq!(compact(parse_day("0999-01-02").unwrap()), "09990102");
    }
}
