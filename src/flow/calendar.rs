//! Business-hours calendars: weekly opening hours in a named time zone, and closed dates.
//! A schedule node asks `is_open(at)`; the clock is always passed in.

use jiff::Timestamp;
use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;

#[derive(Debug, Clone)]
pub struct Calendar {
    pub timezone: TimeZone,
    /// Minutes since local midnight, `[start, end)`, per weekday (Monday first).
    open: [Vec<(u16, u16)>; 7],
    closed_dates: Vec<Date>,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl Calendar {
    /// Builds a calendar from its config; the error says which value is wrong and why.
    pub fn new(
        timezone: &str,
        open: &[(String, String)],
        closed_dates: &[String],
    ) -> Result<Calendar, String> {
        let tz = TimeZone::get(timezone).map_err(|_| {
            format!("unknown time zone \"{timezone}\" (use an IANA name such as \"Europe/Madrid\")")
        })?;
        let mut days: [Vec<(u16, u16)>; 7] = Default::default();
        for (day, hours) in open {
            let d = DAYS
                .iter()
                .position(|x| x.eq_ignore_ascii_case(day))
                .ok_or_else(|| {
                    format!("unknown day \"{day}\" (use mon, tue, wed, thu, fri, sat, sun)")
                })?;
            for range in hours.split(',').map(str::trim).filter(|r| !r.is_empty()) {
                if range.eq_ignore_ascii_case("closed") {
                    continue;
                }
                let (a, b) = range.split_once('-').ok_or_else(|| {
                    format!("{day}: \"{range}\" is not a range like \"09:00-18:00\"")
                })?;
                let (a, b) = (minutes(a.trim(), day)?, minutes(b.trim(), day)?);
                if a == b {
                    return Err(format!("{day}: \"{range}\" is empty"));
                }
                if a < b {
                    days[d].push((a, b));
                } else {
                    // Past midnight: the rest of this day, then the start of the next.
                    days[d].push((a, 24 * 60));
                    days[(d + 1) % 7].push((0, b));
                }
            }
        }
        let closed_dates = closed_dates
            .iter()
            .map(|s| {
                s.parse::<Date>()
                    .map_err(|_| format!("closed date \"{s}\" is not a date like \"2026-12-25\""))
            })
            .collect::<Result<_, _>>()?;
        Ok(Calendar {
            timezone: tz,
            open: days,
            closed_dates,
        })
    }

    pub fn is_open(&self, at: Timestamp) -> bool {
        let local = at.to_zoned(self.timezone.clone());
        if self.closed_dates.contains(&local.date()) {
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
        let t: Time = local.time();
        let m = t.hour() as u16 * 60 + t.minute() as u16;
        self.open[day].iter().any(|&(a, b)| a <= m && m < b)
    }
}

fn minutes(hhmm: &str, day: &str) -> Result<u16, String> {
    let bad = || format!("{day}: \"{hhmm}\" is not a time like \"09:30\"");
    let (h, m) = hhmm.split_once(':').ok_or_else(bad)?;
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if m >= 60 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn madrid() -> Calendar {
        let open = [
            ("mon", "09:00-18:00"),
            ("fri", "09:00-14:00, 15:00-17:00"),
            ("sat", "22:00-02:00"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()));
        Calendar::new("Europe/Madrid", &open, &["2026-12-25".to_string()]).unwrap()
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn opening_hours_are_local_time() {
        let c = madrid();
        // Monday 23 Nov 2026, Madrid is UTC+1 in winter.
        assert!(c.is_open(at("2026-11-23T08:00:00Z")));
        assert!(!c.is_open(at("2026-11-23T07:59:00Z")));
        assert!(!c.is_open(at("2026-11-23T17:00:00Z")));
        // In summer Madrid is UTC+2.
        assert!(c.is_open(at("2026-06-01T07:00:00Z")));
        assert!(!c.is_open(at("2026-06-01T06:59:00Z")));
    }

    #[test]
    fn split_days_overnight_ranges_and_closed_dates() {
        let c = madrid();
        assert!(!c.is_open(at("2026-11-27T13:30:00Z"))); // Friday 14:30 lunch
        assert!(c.is_open(at("2026-11-27T14:30:00Z"))); // Friday 15:30
        assert!(c.is_open(at("2026-11-28T22:30:00Z"))); // Saturday 23:30
        assert!(c.is_open(at("2026-11-29T00:30:00Z"))); // Sunday 01:30
        assert!(!c.is_open(at("2026-11-29T01:30:00Z"))); // Sunday 02:30
        assert!(!c.is_open(at("2026-12-25T10:00:00Z"))); // Friday, but Christmas
    }

    #[test]
    fn bad_values_say_what_is_wrong() {
        let e = Calendar::new("Mars/Olympus", &[], &[]).unwrap_err();
        assert!(e.contains("Mars/Olympus"), "{e}");
        let open = [("mon".to_string(), "9-18".to_string())];
        assert!(
            Calendar::new("UTC", &open, &[])
                .unwrap_err()
                .contains("mon")
        );
        let open = [("funday".to_string(), "09:00-18:00".to_string())];
        assert!(
            Calendar::new("UTC", &open, &[])
                .unwrap_err()
                .contains("funday")
        );
        assert!(Calendar::new("UTC", &[], &["25/12".to_string()]).is_err());
    }
}
