//! Opening hours: weekly intervals in a time zone, minus holidays.
//!
//! `open` entries read `"mon-fri 08:00-18:00"`, `"sat 09:00-13:00"`,
//! `"sun 00:00-24:00"` (day names mon..sun, a range or a comma list; times
//! local to `timezone`, end exclusive, 24:00 for midnight). `holidays` are
//! whole local days `"2026-12-25"`, or part of one `"2026-12-31 12:00-24:00"`:
//! closed then whatever `open` says.

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::Deserialize;

/// `[[schedules]]` as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// Referenced by routes' `schedule`.
    pub name: String,
    /// IANA time zone, e.g. `"Europe/Berlin"`; default `"UTC"`.
    #[serde(default = "utc")]
    pub timezone: String,
    /// When it is open, e.g. `["mon-fri 08:00-18:00"]`.
    pub open: Vec<String>,
    /// Closed days (or parts of days), e.g. `["2026-12-25"]`.
    #[serde(default)]
    pub holidays: Vec<String>,
}

fn utc() -> String {
    "UTC".into()
}

/// Minutes from local midnight, end exclusive.
type Span = (u16, u16);

/// A schedule ready to answer "open at this instant?".
#[derive(Debug, Clone)]
pub struct Compiled {
    tz: TimeZone,
    /// Per weekday (Monday = 0) the open spans.
    week: [Vec<Span>; 7],
    holidays: Vec<(Date, Span)>,
}

fn day_index(name: &str) -> Result<usize, String> {
    const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    DAYS.iter()
        .position(|d| name.eq_ignore_ascii_case(d))
        .ok_or_else(|| format!("{name:?} is not a day (mon, tue, wed, thu, fri, sat, sun)"))
}

fn minutes(hhmm: &str) -> Result<u16, String> {
    let (h, m) = hhmm
        .split_once(':')
        .ok_or_else(|| format!("{hhmm:?} is not HH:MM"))?;
    let (h, m): (u16, u16) = (
        h.parse().map_err(|_| format!("{hhmm:?} is not HH:MM"))?,
        m.parse().map_err(|_| format!("{hhmm:?} is not HH:MM"))?,
    );
    if m > 59 || h > 24 || (h == 24 && m > 0) {
        return Err(format!("{hhmm:?} is not a time of day"));
    }
    Ok(h * 60 + m)
}

fn span(text: &str) -> Result<Span, String> {
    let (a, b) = text
        .split_once('-')
        .ok_or_else(|| format!("{text:?} is not HH:MM-HH:MM"))?;
    let (a, b) = (minutes(a)?, minutes(b)?);
    if a >= b {
        return Err(format!("{text:?} ends before it starts"));
    }
    Ok((a, b))
}

impl Schedule {
    /// Checks and compiles it; the error says which entry is wrong.
    pub fn compile(&self) -> Result<Compiled, (&'static str, String)> {
        let tz = TimeZone::get(&self.timezone)
            .map_err(|_| ("timezone", format!("unknown time zone {:?}", self.timezone)))?;
        let mut week: [Vec<Span>; 7] = Default::default();
        for entry in &self.open {
            let bad = |e: String| ("open", format!("{entry:?}: {e}"));
            let (days, times) = entry
                .trim()
                .split_once(' ')
                .ok_or_else(|| bad("expected \"mon-fri 08:00-18:00\"".into()))?;
            let s = span(times.trim()).map_err(bad)?;
            for part in days.split(',') {
                let (from, to) = match part.split_once('-') {
                    Some((a, b)) => (day_index(a).map_err(bad)?, day_index(b).map_err(bad)?),
                    None => {
                        let d = day_index(part).map_err(bad)?;
                        (d, d)
                    }
                };
                if to < from {
                    return Err(bad(format!("{part:?} runs backwards")));
                }
                for day in &mut week[from..=to] {
                    day.push(s);
                }
            }
        }
        let mut holidays = Vec::new();
        for h in &self.holidays {
            let bad = |e: String| ("holidays", format!("{h:?}: {e}"));
            let (day, part) = match h.trim().split_once(' ') {
                Some((d, t)) => (d, span(t.trim()).map_err(bad)?),
                None => (h.trim(), (0, 24 * 60)),
            };
            let date: Date = day
                .parse()
                .map_err(|_| bad("expected a date like 2026-12-25".into()))?;
            holidays.push((date, part));
        }
        Ok(Compiled { tz, week, holidays })
    }
}

impl Compiled {
    /// Open at `at`?
    pub fn is_open(&self, at: Timestamp) -> bool {
        let local = self.tz.to_datetime(at);
        let date = local.date();
        let m = local.hour() as u16 * 60 + local.minute() as u16;
        let within = |(a, b): &Span| *a <= m && m < *b;
        if self.holidays.iter().any(|(d, s)| *d == date && within(s)) {
            return false;
        }
        let day = match local.weekday() {
            Weekday::Monday => 0,
            Weekday::Tuesday => 1,
            Weekday::Wednesday => 2,
            Weekday::Thursday => 3,
            Weekday::Friday => 4,
            Weekday::Saturday => 5,
            Weekday::Sunday => 6,
        };
        self.week[day].iter().any(within)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn office() -> Compiled {
        Schedule {
            name: "office".into(),
            timezone: "Europe/Berlin".into(),
            open: vec!["mon-fri 08:00-18:00".into(), "sat 09:00-13:00".into()],
            holidays: vec!["2026-12-24 12:00-24:00".into(), "2026-12-25".into()],
        }
        .compile()
        .unwrap()
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn weekly_hours_in_the_time_zone() {
        let o = office();
        // Tuesday 2026-11-24: Berlin is UTC+1 in winter.
        assert!(!o.is_open(at("2026-11-24T06:59:00Z")), "07:59 local");
        assert!(o.is_open(at("2026-11-24T07:00:00Z")), "08:00 local");
        assert!(o.is_open(at("2026-11-24T16:59:00Z")), "17:59 local");
        assert!(!o.is_open(at("2026-11-24T17:00:00Z")), "18:00 local");
        assert!(o.is_open(at("2026-11-28T08:30:00Z")), "Saturday 09:30");
        assert!(!o.is_open(at("2026-11-29T10:00:00Z")), "Sunday");
        // Summer time: UTC+2.
        assert!(o.is_open(at("2026-07-01T06:00:00Z")), "08:00 CEST");
    }

    #[test]
    fn holidays_close_whole_days_or_parts() {
        let o = office();
        assert!(
            o.is_open(at("2026-12-24T10:00:00Z")),
            "Christmas Eve morning"
        );
        assert!(
            !o.is_open(at("2026-12-24T12:00:00Z")),
            "Christmas Eve afternoon"
        );
        assert!(!o.is_open(at("2026-12-25T10:00:00Z")), "Christmas Day");
    }

    #[test]
    fn mistakes_name_the_entry() {
        let s = |open: &str, tz: &str, hol: &str| Schedule {
            name: "x".into(),
            timezone: tz.into(),
            open: vec![open.into()],
            holidays: if hol.is_empty() {
                vec![]
            } else {
                vec![hol.into()]
            },
        };
        assert_eq!(
            s("mon 08:00-18:00", "Mars/Olympus", "")
                .compile()
                .unwrap_err()
                .0,
            "timezone"
        );
        assert!(s("moon 08:00-18:00", "UTC", "")
            .compile()
            .unwrap_err()
            .1
            .contains("not a day"));
        assert!(s("mon 18:00-08:00", "UTC", "")
            .compile()
            .unwrap_err()
            .1
            .contains("ends before"));
        assert_eq!(
            s("mon 08:00-18:00", "UTC", "xmas").compile().unwrap_err().0,
            "holidays"
        );
    }
}
