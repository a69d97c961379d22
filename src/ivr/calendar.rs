//! Business-hours calendars.
//!
//! Contract: a [`Calendar`] says, for a local date and time, whether the
//! business is open: opening hours per weekday, and holidays that close the
//! day or replace its hours. Calendars come from `calendars.yaml` in the flows
//! directory, or from the profile through [`super::Known::calendars`]. Pure
//! data and pure functions; no clock.
//!
//! ```yaml
//! calendars:
//!   office:
//!     description: Head office
//!     hours:
//!       mon-fri: "08:00-18:00"
//!       sat: "09:00-12:00, 13:00-15:00"
//!     holidays:
//!       - 2026-12-25
//!       - { date: 2026-12-24, hours: "08:00-12:00" }
//! ```

use std::collections::BTreeMap;

use super::error::FlowErrorKind;
use super::reader::Reader;
use super::time::{Date, LocalDateTime, TimeOfDay, Weekday};
use super::yaml::{Node, Pos, Value};

/// Opening hours per weekday and holidays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Calendar {
    name: String,
    hours: [Vec<(TimeOfDay, TimeOfDay)>; 7],
    holidays: BTreeMap<Date, Vec<(TimeOfDay, TimeOfDay)>>,
}

impl Calendar {
    /// A calendar that is never open.
    pub fn new(name: &str) -> Calendar {
        Calendar {
            name: name.to_owned(),
            hours: Default::default(),
            holidays: BTreeMap::new(),
        }
    }

    /// Add opening hours `from`..`to` on `day`.
    pub fn with_hours(mut self, day: Weekday, from: TimeOfDay, to: TimeOfDay) -> Calendar {
        self.hours[day.index()].push((from, to));
        self
    }

    /// Make `date` a holiday: closed, or open only during `hours`.
    pub fn with_holiday(mut self, date: Date, hours: Vec<(TimeOfDay, TimeOfDay)>) -> Calendar {
        self.holidays.insert(date, hours);
        self
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the business is open at `at`.
    pub fn is_open(&self, at: LocalDateTime) -> bool {
        let ranges = match self.holidays.get(&at.date()) {
            Some(hours) => hours,
            None => &self.hours[at.weekday().index()],
        };
        let minute = at.time_of_day();
        ranges
            .iter()
            .any(|(from, to)| *from <= minute && minute < *to)
    }

    /// Whether `date` is a holiday.
    pub fn is_holiday(&self, date: Date) -> bool {
        self.holidays.contains_key(&date)
    }
}

/// Parse `calendars.yaml`; returns each calendar with the position of its name.
pub(crate) fn parse_calendars(r: &mut Reader<'_>, root: &Node) -> Vec<(Calendar, Pos)> {
    let mut out = Vec::new();
    let Some(top) = r.fields(root, "calendars.yaml", "`calendars.yaml`", &["calendars"]) else {
        return out;
    };
    let Some(cals) = top.get("calendars") else {
        r.missing(&top, "calendars");
        return out;
    };
    let Value::Map(entries) = &cals.value else {
        r.wrong_type(cals, "calendars", "a mapping");
        return out;
    };
    r.check_duplicates(entries, |name, _| {
        FlowErrorKind::DuplicateCalendar(name.to_owned())
    });
    for (key, node) in entries {
        let context = format!("calendar `{}`", key.name);
        let Some(f) = r.fields(
            node,
            &key.name,
            &context,
            &["description", "hours", "holidays"],
        ) else {
            continue;
        };
        let mut cal = Calendar::new(&key.name);
        if let Some(description) = f.get("description") {
            r.string(description, "description");
        }
        match f.get("hours") {
            Some(hours) => parse_hours(r, hours, &mut cal),
            None => r.missing(&f, "hours"),
        }
        if let Some(holidays) = f.get("holidays") {
            parse_holidays(r, holidays, &mut cal);
        }
        out.push((cal, key.pos));
    }
    out
}

fn parse_hours(r: &mut Reader<'_>, node: &Node, cal: &mut Calendar) {
    let Value::Map(entries) = &node.value else {
        r.wrong_type(node, "hours", "a mapping of weekdays to hours");
        return;
    };
    for (key, value) in entries {
        let Some(days) = parse_days(&key.name) else {
            r.invalid(
                key.pos,
                "hours",
                format!(
                    "`{}` is not a weekday or range of weekdays like `mon` or `mon-fri`",
                    key.name
                ),
            );
            continue;
        };
        if let Some(ranges) = parse_ranges(r, value, "hours") {
            for day in days {
                if !cal.hours[day.index()].is_empty() {
                    r.invalid(
                        key.pos,
                        "hours",
                        format!("hours for `{}` are given twice", day.short_name()),
                    );
                }
                cal.hours[day.index()].extend(ranges.iter().copied());
            }
        }
    }
}

fn parse_holidays(r: &mut Reader<'_>, node: &Node, cal: &mut Calendar) {
    let Some(items) = r.list(node, "holidays", false) else {
        return;
    };
    for item in items {
        let (date_node, ranges) = match &item.value {
            Value::Map(_) => {
                let Some(f) = r.fields(item, "holidays", "a holiday", &["date", "hours", "name"])
                else {
                    continue;
                };
                let Some(date) = f.get("date") else {
                    r.missing(&f, "date");
                    continue;
                };
                if let Some(name) = f.get("name") {
                    r.string(name, "name");
                }
                let ranges = match f.get("hours") {
                    Some(h) => match parse_ranges(r, h, "hours") {
                        Some(ranges) => ranges,
                        None => continue,
                    },
                    None => Vec::new(),
                };
                (date, ranges)
            }
            _ => (item, Vec::new()),
        };
        let Some(text) = r.string(date_node, "date") else {
            continue;
        };
        match text.parse::<Date>() {
            Ok(date) => {
                if cal.holidays.insert(date, ranges).is_some() {
                    r.invalid(date_node.pos, "holidays", format!("{date} is listed twice"));
                }
            }
            Err(e) => r.invalid(date_node.pos, "date", e.to_string()),
        }
    }
}

fn parse_days(text: &str) -> Option<Vec<Weekday>> {
    let mut days = Vec::new();
    for part in text.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (Weekday::parse(a)?, Weekday::parse(b)?);
                if a > b {
                    return None;
                }
                days.extend(Weekday::ALL[a.index()..=b.index()].iter().copied());
            }
            None => days.push(Weekday::parse(part)?),
        }
    }
    Some(days)
}

/// `"08:00-12:00, 13:00-18:00"`, a list of such strings, or `closed`.
fn parse_ranges(
    r: &mut Reader<'_>,
    node: &Node,
    field: &str,
) -> Option<Vec<(TimeOfDay, TimeOfDay)>> {
    let texts: Vec<String> = match &node.value {
        Value::Seq(items) => items
            .iter()
            .map(|i| r.string(i, field))
            .collect::<Option<_>>()?,
        _ => vec![r.string(node, field)?],
    };
    let mut out = Vec::new();
    for text in texts.iter().flat_map(|t| t.split(',')) {
        let text = text.trim();
        if text.eq_ignore_ascii_case("closed") {
            continue;
        }
        let parsed = text.split_once('-').and_then(|(a, b)| {
            let a: TimeOfDay = a.trim().parse().ok()?;
            let b: TimeOfDay = b.trim().parse().ok()?;
            (a < b).then_some((a, b))
        });
        match parsed {
            Some(range) => out.push(range),
            None => {
                r.invalid(
                    node.pos,
                    field,
                    format!("`{text}` is not a range of hours like `08:00-18:00`"),
                );
                return None;
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn open_hours_and_holidays() {
        let text = "calendars:\n  office:\n    hours:\n      mon-fri: \"08:00-12:00, 13:00-18:00\"\n      sat: 09:00-12:00\n    holidays:\n      - 2026-12-25\n      - { date: 2026-12-24, hours: \"08:00-10:00\" }\n";
        let root = super::super::yaml::parse(text).unwrap();
        let mut r = Reader::new(Path::new("calendars.yaml"), text);
        let cals = parse_calendars(&mut r, &root);
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        let cal = &cals[0].0;
        let at = |s: &str| s.parse::<LocalDateTime>().unwrap();
        assert!(cal.is_open(at("2026-11-23T09:00")));
        assert!(!cal.is_open(at("2026-11-23T12:30")));
        assert!(!cal.is_open(at("2026-11-23T18:00")));
        assert!(cal.is_open(at("2026-11-28T11:59")));
        assert!(!cal.is_open(at("2026-11-29T10:00")));
        assert!(!cal.is_open(at("2026-12-25T10:00")));
        assert!(cal.is_open(at("2026-12-24T09:00")));
        assert!(!cal.is_open(at("2026-12-24T11:00")));
    }
}
