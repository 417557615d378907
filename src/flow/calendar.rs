//! Business-hours calendars: weekly opening hours in a named time zone, closed dates and
//! one-off openings. A date is a day (`2026-12-25`), the same day every year (`01-06`) or a
//! range (`2026-08-10..2026-08-21`); any of them may be a part of the day only
//! (`12-24 14:00-24:00`). An opening beats a closure, and a closure beats the weekly hours.
//! A schedule node asks `is_open(at)`; the clock is always passed in.

use jiff::Timestamp;
use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;

#[derive(Debug, Clone)]
pub struct Calendar {
    pub timezone: TimeZone,
    /// Minutes since local midnight, `[start, end)`, per weekday (Monday first).
    open: [Vec<(u16, u16)>; 7],
    closed: Vec<Exception>,
    opened: Vec<Exception>,
}

/// Days a calendar is closed, or open, against its weekly hours.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Days {
    On(Date),
    /// Month and day, every year (29 February only in leap years).
    Yearly(i8, i8),
    /// First to last, both included.
    Range(Date, Date),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Exception {
    days: Days,
    /// Minutes `[start, end)` of those days; none: the whole day.
    span: Option<(u16, u16)>,
}

impl Exception {
    /// `2026-12-25`, `01-06`, `2026-08-10..2026-08-21`, each optionally followed by a span
    /// of the day (`14:00-24:00`).
    fn parse(s: &str, what: &str) -> Result<Exception, String> {
        let bad = |why: &str| {
            format!(
                "{what} \"{s}\" {why} (a date \"2026-12-25\", every year \"01-06\", a range \"2026-08-10..2026-08-21\", optionally with hours \"14:00-24:00\")"
            )
        };
        let mut parts = s.split_whitespace();
        let day = parts.next().ok_or_else(|| bad("is empty"))?;
        let span = match parts.next() {
            None => None,
            Some(hours) => {
                let (a, b) = hours
                    .split_once('-')
                    .ok_or_else(|| bad("has hours that are not a range"))?;
                let (a, b) = (minutes(a, what)?, minutes(b, what)?);
                if a >= b {
                    return Err(bad(
                        "has hours that end before they start (one day at a time)",
                    ));
                }
                Some((a, b))
            }
        };
        if parts.next().is_some() {
            return Err(bad("has more than a date and its hours"));
        }
        let date = |d: &str| d.parse::<Date>().map_err(|_| bad("is not a date"));
        let days = if let Some((a, b)) = day.split_once("..") {
            let (a, b) = (date(a)?, date(b)?);
            if a > b {
                return Err(bad("ends before it starts"));
            }
            Days::Range(a, b)
        } else if day.len() == 5 && day.as_bytes()[2] == b'-' {
            let (m, d) = (&day[..2], &day[3..]);
            let (m, d): (i8, i8) = (
                m.parse().map_err(|_| bad("is not a date"))?,
                d.parse().map_err(|_| bad("is not a date"))?,
            );
            // Any leap year says whether the day exists at all.
            Date::new(2024, m, d).map_err(|_| bad("is no day of the year"))?;
            Days::Yearly(m, d)
        } else {
            Days::On(date(day)?)
        };
        Ok(Exception { days, span })
    }

    fn covers(&self, date: Date, minute: u16) -> bool {
        let day = match self.days {
            Days::On(d) => d == date,
            Days::Yearly(m, d) => date.month() == m && date.day() == d,
            Days::Range(a, b) => a <= date && date <= b,
        };
        day && self.span.is_none_or(|(a, b)| a <= minute && minute < b)
    }

    /// Whether it falls on a day within `[from, to]`.
    fn falls_within(&self, from: Date, to: Date) -> bool {
        match self.days {
            Days::On(d) => from <= d && d <= to,
            Days::Range(a, b) => a <= to && from <= b,
            Days::Yearly(..) => true,
        }
    }
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// `mon` … `sun`, as calendars and the `weekday` variable write a day.
pub fn weekday_name(day: Weekday) -> &'static str {
    DAYS[day.to_monday_zero_offset() as usize]
}

impl Calendar {
    /// Builds a calendar from its config; the error says which value is wrong and why.
    pub fn new(
        timezone: &str,
        open: &[(String, String)],
        closed_dates: &[String],
    ) -> Result<Calendar, String> {
        Calendar::with_openings(timezone, open, closed_dates, &[])
    }

    /// The same, with one-off openings (`open_dates`).
    pub fn with_openings(
        timezone: &str,
        open: &[(String, String)],
        closed_dates: &[String],
        open_dates: &[String],
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
        let closed = closed_dates
            .iter()
            .map(|s| Exception::parse(s, "closed date"))
            .collect::<Result<_, _>>()?;
        let opened = open_dates
            .iter()
            .map(|s| Exception::parse(s, "open date"))
            .collect::<Result<_, _>>()?;
        Ok(Calendar {
            timezone: tz,
            open: days,
            closed,
            opened,
        })
    }

    /// Whether it closes, for a day or part of one, on some day within the year from
    /// `today`: a line whose holidays were typed for one year only is told so.
    pub fn closes_within_a_year(&self, today: Date) -> bool {
        let to = today.saturating_add(jiff::Span::new().days(365));
        self.closed.iter().any(|e| e.falls_within(today, to))
    }

    /// Whether it is open every minute of the week (a 24/7 line has no holidays to keep).
    pub fn always_open(&self) -> bool {
        self.open
            .iter()
            .all(|d| d.iter().any(|&(a, b)| a == 0 && b == 24 * 60))
    }

    pub fn is_open(&self, at: Timestamp) -> bool {
        let local = at.to_zoned(self.timezone.clone());
        let (date, time) = (local.date(), local.time());
        let minute = time.hour() as u16 * 60 + time.minute() as u16;
        if self.opened.iter().any(|e| e.covers(date, minute)) {
            return true;
        }
        if self.closed.iter().any(|e| e.covers(date, minute)) {
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

/// The events of an iCalendar file (RFC 5545) as closed dates: an all-day event closes its
/// days (`DTEND` is the day after, as the format says), a timed one the hours it covers on
/// its day (in `zone`, the calendar's: a `Z` time is UTC, a local time or `TZID` is taken as
/// the calendar's own); `RRULE:FREQ=YEARLY` makes it every year. Any other repetition is
/// refused, with the event's summary: weekly hours are written in `open`.
pub fn closed_dates_from_ics(text: &str, zone: &TimeZone) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for cal in ical::IcalParser::new(std::io::BufReader::new(text.as_bytes())) {
        let cal = cal.map_err(|e| format!("not an iCalendar file: {e}"))?;
        for event in cal.events {
            let get = |name: &str| {
                event
                    .properties
                    .iter()
                    .find(|p| p.name.eq_ignore_ascii_case(name))
                    .and_then(|p| p.value.clone())
            };
            let summary = get("SUMMARY").unwrap_or_else(|| "an event".to_string());
            let summary: String = summary
                .chars()
                .filter(|c| !c.is_control())
                .take(60)
                .collect();
            let yearly = match get("RRULE") {
                None => false,
                Some(rule) if rule.to_ascii_uppercase().contains("FREQ=YEARLY") => true,
                Some(rule) => {
                    return Err(format!(
                        "\"{summary}\": RRULE {rule} is not supported (holidays once, or every year)"
                    ));
                }
            };
            let start = get("DTSTART").ok_or_else(|| format!("\"{summary}\": no DTSTART"))?;
            let end = get("DTEND");
            let day_of = |d: Date| {
                if yearly {
                    format!("{:02}-{:02}", d.month(), d.day())
                } else {
                    d.to_string()
                }
            };
            match ics_time(&start, zone) {
                Some(IcsTime::Day(first)) => {
                    let last = match end.as_deref().and_then(|e| ics_time(e, zone)) {
                        Some(IcsTime::Day(after)) => after.yesterday().unwrap_or(first),
                        _ => first,
                    };
                    let days = (last - first).get_days().clamp(0, 366);
                    for n in 0..=days {
                        let d = first
                            .checked_add(jiff::Span::new().days(n))
                            .map_err(|e| format!("\"{summary}\": {e}"))?;
                        out.push(day_of(d));
                    }
                }
                Some(IcsTime::At(date, from)) => {
                    let to = match end.as_deref().and_then(|e| ics_time(e, zone)) {
                        Some(IcsTime::At(d, t)) if d == date => t,
                        _ => 24 * 60,
                    };
                    if to > from {
                        out.push(format!(
                            "{} {:02}:{:02}-{:02}:{:02}",
                            day_of(date),
                            from / 60,
                            from % 60,
                            to / 60,
                            to % 60
                        ));
                    }
                }
                None => {
                    return Err(format!(
                        "\"{summary}\": DTSTART {start} is not a date or time"
                    ));
                }
            }
        }
    }
    Ok(out)
}

enum IcsTime {
    Day(Date),
    /// A local date and minutes since its midnight.
    At(Date, u16),
}

/// `20270106` (a day), `20271224T140000` (local) or `20271224T130000Z` (UTC).
fn ics_time(value: &str, zone: &TimeZone) -> Option<IcsTime> {
    let v = value.trim();
    let date = |s: &str| -> Option<Date> {
        let (y, m, d) = (s.get(..4)?, s.get(4..6)?, s.get(6..8)?);
        Date::new(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?).ok()
    };
    if v.len() == 8 {
        return date(v).map(IcsTime::Day);
    }
    let (d, t) = v.split_once(['T', 't'])?;
    let (utc, t) = match t.strip_suffix(['Z', 'z']) {
        Some(t) => (true, t),
        None => (false, t),
    };
    let (h, m): (i8, i8) = (t.get(..2)?.parse().ok()?, t.get(2..4)?.parse().ok()?);
    let local = date(d)?.to_datetime(Time::new(h, m, 0, 0).ok()?);
    let local = if utc {
        local
            .to_zoned(TimeZone::UTC)
            .ok()?
            .with_time_zone(zone.clone())
            .datetime()
    } else {
        local
    };
    Some(IcsTime::At(
        local.date(),
        local.hour() as u16 * 60 + local.minute() as u16,
    ))
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

    /// Holidays every year, ranges, part days and one-off openings, in local time.
    #[test]
    fn yearly_dates_ranges_part_days_and_openings() {
        let open = [
            ("mon", "09:00-18:00"),
            ("tue", "09:00-18:00"),
            ("wed", "09:00-18:00"),
            ("thu", "09:00-18:00"),
            ("fri", "09:00-18:00"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()));
        let closed = [
            "01-06",
            "2027-08-09..2027-08-13",
            "12-24 14:00-24:00",
            "02-29",
        ]
        .map(String::from);
        let opened = ["2027-01-09 10:00-14:00", "2027-08-11 09:00-12:00"].map(String::from);
        let c = Calendar::with_openings("Europe/Madrid", &open, &closed, &opened).unwrap();
        // Epiphany, a Wednesday in 2027 and a Thursday in 2028: closed both years.
        assert!(!c.is_open(at("2027-01-06T10:00:00Z")));
        assert!(!c.is_open(at("2028-01-06T10:00:00Z")));
        assert!(c.is_open(at("2027-01-07T10:00:00Z")));
        // The August week, first and last day included.
        assert!(!c.is_open(at("2027-08-09T08:00:00Z")));
        assert!(!c.is_open(at("2027-08-13T15:00:00Z")));
        assert!(c.is_open(at("2027-08-16T08:00:00Z")));
        // Christmas Eve (a Friday in 2027): the morning only (Madrid is UTC+1).
        assert!(c.is_open(at("2027-12-24T12:59:00Z")));
        assert!(!c.is_open(at("2027-12-24T13:00:00Z")));
        // One-off openings: a Saturday morning, and an opening inside the closed week.
        assert!(c.is_open(at("2027-01-09T10:00:00Z")));
        assert!(!c.is_open(at("2027-01-09T13:00:00Z")));
        assert!(c.is_open(at("2027-08-11T08:00:00Z")));
        assert!(!c.is_open(at("2027-08-11T12:00:00Z")));
        // 29 February, in a leap year (a Tuesday in 2028).
        assert!(!c.is_open(at("2028-02-29T10:00:00Z")));
        // It closes within any year ahead; a calendar whose dates are past does not.
        let today = |s: &str| s.parse::<Date>().unwrap();
        assert!(c.closes_within_a_year(today("2030-03-01")));
        let old = Calendar::new("UTC", &open, &["2026-12-25".to_string()]).unwrap();
        assert!(old.closes_within_a_year(today("2026-06-01")));
        assert!(!old.closes_within_a_year(today("2026-12-26")));
        assert!(!old.always_open());
        let all_day: Vec<(String, String)> = DAYS
            .iter()
            .map(|d| (d.to_string(), "00:00-24:00".to_string()))
            .collect();
        assert!(Calendar::new("UTC", &all_day, &[]).unwrap().always_open());
    }

    #[test]
    fn bad_dates_say_what_is_wrong() {
        for bad in [
            "25/12",
            "13-01",
            "02-30",
            "2027-08-13..2027-08-09",
            "12-24 14:00",
            "12-24 18:00-14:00",
            "12-24 14:00-24:00 extra",
            "2027-02-30",
        ] {
            let e = Calendar::new("UTC", &[], &[bad.to_string()]).unwrap_err();
            assert!(
                e.contains(bad.split_whitespace().next().unwrap()),
                "{bad}: {e}"
            );
        }
        let e = Calendar::with_openings("UTC", &[], &[], &["soon".to_string()]).unwrap_err();
        assert!(e.starts_with("open date \"soon\""), "{e}");
    }

    const ICS: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n\
BEGIN:VEVENT\r\nUID:1\r\nSUMMARY:Año Nuevo\r\nDTSTART;VALUE=DATE:20270101\r\nDTEND;VALUE=DATE:20270102\r\nRRULE:FREQ=YEARLY\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:2\r\nSUMMARY:Inventory\r\nDTSTART;VALUE=DATE:20270809\r\nDTEND;VALUE=DATE:20270811\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:3\r\nSUMMARY:Nochebuena\r\nDTSTART:20271224T130000Z\r\nDTEND:20271224T230000Z\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:4\r\nSUMMARY:Town fair\r\nDTSTART;TZID=Europe/Madrid:20270915T090000\r\nDTEND;TZID=Europe/Madrid:20270915T120000\r\nEND:VEVENT\r\n\
END:VCALENDAR\r\n";

    /// Holidays from an iCalendar file: all-day events (every year with a yearly rule),
    /// several days, and hours of a day, in the calendar's local time.
    #[test]
    fn holidays_come_from_an_icalendar_file() {
        let madrid = TimeZone::get("Europe/Madrid").unwrap();
        let dates = closed_dates_from_ics(ICS, &madrid).unwrap();
        assert_eq!(
            dates,
            [
                "01-01",
                "2027-08-09",
                "2027-08-10",
                "2027-12-24 14:00-24:00",
                "2027-09-15 09:00-12:00"
            ]
        );
        let open = [
            ("mon", "09:00-18:00"),
            ("tue", "09:00-18:00"),
            ("fri", "09:00-18:00"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()));
        let c = Calendar::new("Europe/Madrid", &open, &dates).unwrap();
        assert!(!c.is_open(at("2030-01-01T10:00:00Z")), "every year");
        assert!(!c.is_open(at("2027-08-10T10:00:00Z")));
        assert!(
            c.is_open(at("2027-08-13T10:00:00Z")),
            "the Friday after is open"
        );
        assert!(
            c.is_open(at("2027-12-24T12:30:00Z")),
            "Christmas Eve morning"
        );
        assert!(
            !c.is_open(at("2027-12-24T13:30:00Z")),
            "and not its afternoon"
        );
        // Weekly repetition is not a holiday; garbage is not a calendar.
        let weekly = ICS.replace("RRULE:FREQ=YEARLY", "RRULE:FREQ=WEEKLY;BYDAY=MO");
        let e = closed_dates_from_ics(&weekly, &madrid).unwrap_err();
        assert!(e.contains("Año Nuevo") && e.contains("WEEKLY"), "{e}");
        assert!(closed_dates_from_ics("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY:x\r\nDTSTART:soon\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n", &madrid).is_err());
    }
}
