//! UTC calendar times for the server log and rotated log names.
//!
//! Two formats only, so no date crate: the civil-from-days conversion
//! below is the standard one (H. Hinnant, "chrono-Compatible Low-Level
//! Date Algorithms") and is exact for every `i64` day count we can meet.

use std::time::{SystemTime, UNIX_EPOCH};

/// Year, month, day, hour, minute, second (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utc {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

impl Utc {
    /// The calendar time of `t`, to the second (times before 1970 too:
    /// a file's mtime can be anything `touch` set).
    pub fn of(t: SystemTime) -> Utc {
        let secs = match t.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(e) => {
                let before = e.duration();
                // Round towards the past, as a clock reading does.
                let whole = i64::try_from(before.as_secs()).unwrap_or(i64::MAX);
                let extra = i64::from(before.subsec_nanos() > 0);
                -whole.saturating_add(extra)
            }
        };
        Utc::from_unix(secs)
    }

    pub fn from_unix(secs: i64) -> Utc {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        Utc {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: (rem % 3600 / 60) as u32,
            second: (rem % 60) as u32,
        }
    }

    pub fn now() -> Utc {
        Utc::of(SystemTime::now())
    }

    /// `2024-05-01T12:30:00Z`
    pub fn rfc3339(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// `20240501123000`, the stamp of a rotated log.
    pub fn compact(&self) -> String {
        format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian
/// calendar.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Shift the epoch to 0000-03-01 so leap days fall at the end of a year.
    let z = days.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn known_instants() {
        assert_eq!(Utc::from_unix(0).rfc3339(), "1970-01-01T00:00:00Z");
        assert_eq!(
            Utc::from_unix(951_782_400).rfc3339(),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            Utc::from_unix(1_700_000_000).rfc3339(),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(Utc::from_unix(1_700_000_000).compact(), "20231114221320");
        assert_eq!(Utc::from_unix(-1).rfc3339(), "1969-12-31T23:59:59Z");
        assert_eq!(
            Utc::from_unix(253_402_300_800).rfc3339(),
            "10000-01-01T00:00:00Z"
        );
    }

    #[test]
    fn before_the_epoch_rounds_down() {
        let t = UNIX_EPOCH - Duration::from_millis(500);
        assert_eq!(Utc::of(t).rfc3339(), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn extreme_values_do_not_panic() {
        let _ = Utc::from_unix(i64::MAX).rfc3339();
        let _ = Utc::from_unix(i64::MIN).rfc3339();
    }
}
