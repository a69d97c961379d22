//! Local wall-clock time as flows see it.
//!
//! Contract: [`LocalDateTime`] is a proleptic-Gregorian date and time of day with
//! millisecond precision and no time zone: the business's local time. The
//! interpreter never reads a clock; the runtime hands it a `LocalDateTime` on
//! every call (derived from a monotonic clock plus the local time at the start
//! of the call, so it never runs backwards) and timer deadlines come back in the
//! same timeline. Also here: [`Weekday`], [`TimeOfDay`] and the duration syntax
//! of flow files (`500ms`, `5s`, `2m`, `1h`, or a bare number of seconds).

use std::fmt;
use std::ops::{Add, Sub};
use std::str::FromStr;
use std::time::Duration;

const MS_PER_DAY: i64 = 86_400_000;

/// A calendar date.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    year: i32,
    month: u8,
    day: u8,
}

impl Date {
    /// A date, if it exists in the Gregorian calendar.
    pub fn new(year: i32, month: u8, day: u8) -> Option<Date> {
        let valid = (1..=12).contains(&month) && day >= 1 && day <= days_in_month(year, month);
        valid.then_some(Date { year, month, day })
    }

    /// A date known to exist (for constants); out-of-range parts are clamped.
    pub(crate) fn known(year: i32, month: u8, day: u8) -> Date {
        let month = month.clamp(1, 12);
        Date {
            year,
            month,
            day: day.clamp(1, days_in_month(year, month)),
        }
    }

    /// The year.
    pub fn year(self) -> i32 {
        self.year
    }

    /// The month, 1 to 12.
    pub fn month(self) -> u8 {
        self.month
    }

    /// The day of the month, from 1.
    pub fn day(self) -> u8 {
        self.day
    }

    /// The day of the week.
    pub fn weekday(self) -> Weekday {
        // 1970-01-01 was a Thursday (index 3 with Monday = 0).
        let index = (days_from_civil(self) + 3).rem_euclid(7);
        Weekday::ALL[usize::try_from(index).unwrap_or(0)]
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl FromStr for Date {
    type Err = TimeParseError;

    fn from_str(s: &str) -> Result<Date, TimeParseError> {
        let bad = || TimeParseError::Date(s.to_owned());
        let mut parts = s.trim().splitn(3, '-');
        let (y, m, d) = (
            parts.next().ok_or_else(bad)?,
            parts.next().ok_or_else(bad)?,
            parts.next().ok_or_else(bad)?,
        );
        if y.len() != 4 || m.len() != 2 || d.len() != 2 {
            return Err(bad());
        }
        let year = y.parse().map_err(|_| bad())?;
        let month = m.parse().map_err(|_| bad())?;
        let day = d.parse().map_err(|_| bad())?;
        Date::new(year, month, day).ok_or_else(bad)
    }
}

/// A day of the week.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Weekday {
    /// Monday.
    Mon,
    /// Tuesday.
    Tue,
    /// Wednesday.
    Wed,
    /// Thursday.
    Thu,
    /// Friday.
    Fri,
    /// Saturday.
    Sat,
    /// Sunday.
    Sun,
}

impl Weekday {
    /// Monday first.
    pub const ALL: [Weekday; 7] = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ];

    /// Three-letter lowercase name, as written in flow files.
    pub fn short_name(self) -> &'static str {
        ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][self.index()]
    }

    /// Full lowercase name, the value of `${time.weekday}`.
    pub fn full_name(self) -> &'static str {
        [
            "monday",
            "tuesday",
            "wednesday",
            "thursday",
            "friday",
            "saturday",
            "sunday",
        ][self.index()]
    }

    /// 0 for Monday to 6 for Sunday.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Parse a short or full name, any case.
    pub fn parse(name: &str) -> Option<Weekday> {
        let lower = name.trim().to_ascii_lowercase();
        Weekday::ALL
            .into_iter()
            .find(|d| d.short_name() == lower || d.full_name() == lower)
    }
}

/// A time of day in minutes, `00:00` to `24:00` (the end of a day).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeOfDay(u16);

impl TimeOfDay {
    /// From hours and minutes; `24:00` is allowed.
    pub fn new(hour: u8, minute: u8) -> Option<TimeOfDay> {
        let valid = (hour < 24 && minute < 60) || (hour == 24 && minute == 0);
        valid.then(|| TimeOfDay(u16::from(hour) * 60 + u16::from(minute)))
    }

    /// Minutes since midnight.
    pub fn minutes(self) -> u16 {
        self.0
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

impl FromStr for TimeOfDay {
    type Err = TimeParseError;

    fn from_str(s: &str) -> Result<TimeOfDay, TimeParseError> {
        let bad = || TimeParseError::TimeOfDay(s.to_owned());
        let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
        if h.is_empty() || h.len() > 2 || m.len() != 2 {
            return Err(bad());
        }
        TimeOfDay::new(h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?).ok_or_else(bad)
    }
}

/// A local date and time with millisecond precision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LocalDateTime {
    /// Milliseconds since 1970-01-01T00:00 local time.
    ms: i64,
}

impl LocalDateTime {
    /// Midnight at the start of `date` plus a time of day.
    pub fn new(date: Date, hour: u8, minute: u8, second: u8) -> Option<LocalDateTime> {
        if hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        let day_ms = (i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second)) * 1000;
        Some(LocalDateTime {
            ms: days_from_civil(date) * MS_PER_DAY + day_ms,
        })
    }

    /// `date` at `hour:minute` (clamped to the day).
    pub(crate) fn at_minute(date: Date, hour: u8, minute: u8) -> LocalDateTime {
        let minutes = i64::from(hour.min(23)) * 60 + i64::from(minute.min(59));
        LocalDateTime {
            ms: days_from_civil(date) * MS_PER_DAY + minutes * 60_000,
        }
    }

    /// The date.
    pub fn date(self) -> Date {
        civil_from_days(self.ms.div_euclid(MS_PER_DAY))
    }

    /// The day of the week.
    pub fn weekday(self) -> Weekday {
        self.date().weekday()
    }

    /// Milliseconds since midnight.
    pub fn ms_of_day(self) -> u32 {
        u32::try_from(self.ms.rem_euclid(MS_PER_DAY)).unwrap_or(0)
    }

    /// The time of day, to the minute.
    pub fn time_of_day(self) -> TimeOfDay {
        TimeOfDay(u16::try_from(self.ms_of_day() / 60_000).unwrap_or(0))
    }

    /// `HH:MM`, the value of `${time.now}`.
    pub fn hhmm(self) -> String {
        self.time_of_day().to_string()
    }

    /// The time elapsed since `earlier` (zero if `earlier` is later).
    pub fn since(self, earlier: LocalDateTime) -> Duration {
        Duration::from_millis(u64::try_from(self.ms - earlier.ms).unwrap_or(0))
    }
}

impl Add<Duration> for LocalDateTime {
    type Output = LocalDateTime;

    fn add(self, rhs: Duration) -> LocalDateTime {
        LocalDateTime {
            ms: self
                .ms
                .saturating_add(i64::try_from(rhs.as_millis()).unwrap_or(i64::MAX)),
        }
    }
}

impl Sub for LocalDateTime {
    type Output = Duration;

    fn sub(self, rhs: LocalDateTime) -> Duration {
        self.since(rhs)
    }
}

impl fmt::Display for LocalDateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.ms_of_day();
        write!(
            f,
            "{}T{:02}:{:02}:{:02}",
            self.date(),
            ms / 3_600_000,
            ms / 60_000 % 60,
            ms / 1000 % 60
        )
    }
}

impl FromStr for LocalDateTime {
    type Err = TimeParseError;

    /// `YYYY-MM-DDTHH:MM[:SS]` (a space may replace the `T`).
    fn from_str(s: &str) -> Result<LocalDateTime, TimeParseError> {
        let bad = || TimeParseError::DateTime(s.to_owned());
        let s = s.trim();
        let (date, time) = s
            .split_once('T')
            .or_else(|| s.split_once(' '))
            .ok_or_else(bad)?;
        let date: Date = date.parse().map_err(|_| bad())?;
        let mut parts = time.split(':');
        let mut field = |required: bool| -> Result<u8, TimeParseError> {
            match parts.next() {
                Some(p) if p.len() == 2 => p.parse().map_err(|_| bad()),
                None if !required => Ok(0),
                _ => Err(bad()),
            }
        };
        let (h, m, sec) = (field(true)?, field(true)?, field(false)?);
        if parts.next().is_some() {
            return Err(bad());
        }
        LocalDateTime::new(date, h, m, sec).ok_or_else(bad)
    }
}

/// A date, time or duration that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TimeParseError {
    /// Not `YYYY-MM-DD`, or no such day.
    #[error("`{0}` is not a date like `2026-12-25`")]
    Date(String),
    /// Not `HH:MM`.
    #[error("`{0}` is not a time of day like `09:30`")]
    TimeOfDay(String),
    /// Not `YYYY-MM-DDTHH:MM[:SS]`.
    #[error("`{0}` is not a local date and time like `2026-11-23T09:00`")]
    DateTime(String),
    /// Not a duration.
    #[error("`{0}` is not a duration like `500ms`, `5s`, `2m` or `1h`")]
    Duration(String),
}

/// Parse the flow-file duration syntax: `500ms`, `5s`, `1.5s`, `2m`, `1h`, or a
/// bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, TimeParseError> {
    let bad = || TimeParseError::Duration(text.to_owned());
    let t = text.trim();
    let (number, scale_ms) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1000.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60_000.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3_600_000.0)
    } else {
        (t, 1000.0)
    };
    let number = number.trim();
    if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(bad());
    }
    let value: f64 = number.parse().map_err(|_| bad())?;
    let ms = value * scale_ms;
    if !ms.is_finite() || ms > 86_400_000.0 * 7.0 {
        return Err(bad());
    }
    // Bounded and non-negative above, so the cast is exact enough.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(Duration::from_millis(ms.round() as u64))
}

/// Print a duration the way flow files write it (`500ms`, `5s`, `1.5s`, `2m`).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(3_600_000) && ms > 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) && ms > 0 {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else if ms > 1000 && ms.is_multiple_of(100) {
        format!("{}.{}s", ms / 1000, ms % 1000 / 100)
    } else {
        format!("{ms}ms")
    }
}

fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 (era arithmetic on a March-based year).
fn days_from_civil(date: Date) -> i64 {
    let m = i64::from(date.month);
    let d = i64::from(date.day);
    let y = i64::from(date.year) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_from_march = (m + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + d - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn civil_from_days(days: i64) -> Date {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    Date {
        year: i32::try_from(year).unwrap_or(i32::MAX),
        month: u8::try_from(month).unwrap_or(1),
        day: u8::try_from(day).unwrap_or(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn weekdays_and_display() {
        let t: LocalDateTime = "2026-11-23T09:00".parse().unwrap();
        assert_eq!(t.weekday(), Weekday::Mon);
        assert_eq!(t.to_string(), "2026-11-23T09:00:00");
        let t2 = t + Duration::from_secs(86_400 * 6 + 61);
        assert_eq!(t2.weekday(), Weekday::Sun);
        assert_eq!(t2.to_string(), "2026-11-29T09:01:01");
        assert_eq!(
            "2024-02-29".parse::<Date>().unwrap().weekday(),
            Weekday::Thu
        );
        assert!("2026-02-29".parse::<Date>().is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert!(parse_duration("five").is_err());
        assert!(parse_duration("-1s").is_err());
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_secs(120)), "2m");
    }

    proptest! {
        #[test]
        fn date_roundtrip(days in -800_000i64..800_000) {
            let date = civil_from_days(days);
            prop_assert_eq!(days_from_civil(date), days);
            let text = date.to_string();
            if date.year() >= 1000 && date.year() <= 9999 {
                prop_assert_eq!(text.parse::<Date>().unwrap(), date);
            }
        }

        #[test]
        fn duration_roundtrip(ms in 0u64..86_400_000) {
            let d = Duration::from_millis(ms);
            prop_assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }
    }
}
