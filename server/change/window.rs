//! Change windows: when approved changes of an environment class may run (UTC). An approved prod
//! change outside its window is held until the window opens; the request page says when.
//!
//! Written `Mon-Thu 09:00-16:00` (days, then hours); several windows separated by `;` in
//! `STACKGATE_CHANGE_WINDOWS` as `prod=Mon-Thu 09:00-16:00;prod=Sat 08:00-10:00`.

use chrono::{DateTime, Datelike, Duration, NaiveTime, TimeZone, Utc, Weekday};

/// One weekly window: on these days, from `start` until `end` (UTC, `end` after `start`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeWindow {
    pub days: Vec<Weekday>,
    pub start: NaiveTime,
    pub end: NaiveTime,
}

const DAYS: [(&str, Weekday); 7] = [
    ("mon", Weekday::Mon),
    ("tue", Weekday::Tue),
    ("wed", Weekday::Wed),
    ("thu", Weekday::Thu),
    ("fri", Weekday::Fri),
    ("sat", Weekday::Sat),
    ("sun", Weekday::Sun),
];

fn day(s: &str) -> Result<usize, String> {
    let lower = s.trim().to_ascii_lowercase();
    DAYS.iter()
        .position(|(name, _)| lower.starts_with(name) && lower.len() <= 9)
        .ok_or_else(|| format!("'{s}' is not a day (Mon … Sun)"))
}

impl ChangeWindow {
    /// Parses `Mon-Thu 09:00-16:00` or `Mon,Wed 22:00-23:30`.
    pub fn parse(s: &str) -> Result<ChangeWindow, String> {
        let (days_part, hours) = s
            .trim()
            .split_once(' ')
            .ok_or_else(|| format!("'{s}': write days then hours, as in 'Mon-Thu 09:00-16:00'"))?;
        let mut days = Vec::new();
        for part in days_part.split(',') {
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (day(a)?, day(b)?);
                    let mut i = a;
                    loop {
                        days.push(DAYS[i].1);
                        if i == b {
                            break;
                        }
                        i = (i + 1) % 7;
                    }
                }
                None => days.push(DAYS[day(part)?].1),
            }
        }
        let (a, b) = hours
            .trim()
            .split_once('-')
            .ok_or_else(|| format!("'{hours}': write hours as 09:00-16:00"))?;
        let time = |t: &str| {
            NaiveTime::parse_from_str(t.trim(), "%H:%M")
                .map_err(|_| format!("'{t}' is not a time (HH:MM, UTC)"))
        };
        let (start, end) = (time(a)?, time(b)?);
        if end <= start {
            return Err(format!(
                "'{hours}': the window must end after it starts on the same day"
            ));
        }
        Ok(ChangeWindow { days, start, end })
    }

    fn contains(&self, t: DateTime<Utc>) -> bool {
        self.days.contains(&t.weekday()) && t.time() >= self.start && t.time() < self.end
    }

    /// The first moment at or after `t` inside this window.
    fn next_open(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        if self.contains(t) {
            return t;
        }
        (0..=7)
            .filter_map(|d| {
                let date = (t + Duration::days(d)).date_naive();
                let open = Utc.from_utc_datetime(&date.and_time(self.start));
                (self.days.contains(&date.weekday()) && open >= t).then_some(open)
            })
            .next()
            .unwrap_or(t)
    }
}

/// When a change may run, given the windows of its class (none: at once). `now_ms` and the
/// answer are milliseconds since the epoch.
pub fn next_opening(windows: &[ChangeWindow], now_ms: i64) -> i64 {
    let Some(now) = Utc.timestamp_millis_opt(now_ms).single() else {
        return now_ms;
    };
    windows
        .iter()
        .map(|w| w.next_open(now))
        .min()
        .map_or(now_ms, |t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .timestamp_millis()
    }

    #[test]
    fn windows_parse_ranges_lists_and_wrapping_days() {
        let w = ChangeWindow::parse("Mon-Thu 09:00-16:00").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(w.days, vec![Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu]);
        let w = ChangeWindow::parse("Sat-Mon 22:00-23:30").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(w.days, vec![Weekday::Sat, Weekday::Sun, Weekday::Mon]);
        let w = ChangeWindow::parse("tuesday,Fri 08:00-09:00").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(w.days, vec![Weekday::Tue, Weekday::Fri]);
        for bad in ["Mon", "Mon 9-16", "Funday 09:00-10:00", "Mon 16:00-09:00", "Mon 09:00"] {
            assert!(ChangeWindow::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_change_inside_the_window_runs_at_once_and_outside_waits_for_the_next_opening() {
        let w = [ChangeWindow::parse("Mon-Thu 09:00-16:00").unwrap_or_else(|e| panic!("{e}"))];
        // 2026-12-01 is a Tuesday.
        let inside = at("2026-12-01T10:00:00Z");
        assert_eq!(next_opening(&w, inside), inside);
        assert_eq!(next_opening(&w, at("2026-12-01T07:30:00Z")), at("2026-12-01T09:00:00Z"));
        assert_eq!(next_opening(&w, at("2026-12-01T16:00:00Z")), at("2026-12-02T09:00:00Z"), "the end is excluded");
        assert_eq!(next_opening(&w, at("2026-12-03T17:00:00Z")), at("2026-12-07T09:00:00Z"), "Thursday evening → Monday");
        assert_eq!(next_opening(&[], inside), inside, "no window: at once");
        let two = [
            w[0].clone(),
            ChangeWindow::parse("Sat 08:00-10:00").unwrap_or_else(|e| panic!("{e}")),
        ];
        assert_eq!(next_opening(&two, at("2026-12-03T17:00:00Z")), at("2026-12-05T08:00:00Z"), "the earliest of several");
    }
}
