//! A cron expression bound to an IANA time zone, and the instants it fires at.

use chrono::{DateTime, Duration, FixedOffset, LocalResult, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;

use super::ValidationError;

/// A parsed schedule: 5 fields, or 6 with seconds first, or an `@daily`-style shorthand.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    expr: String,
    tz: Tz,
    cron: Cron,
    /// Whether the hour field matches every hour. Such schedules fire in every real hour, the
    /// repeated one of a DST fall-back included; fixed-hour ones fire once (classic cron).
    every_hour: bool,
}

impl CronSchedule {
    pub fn parse(expr: &str, timezone: &str) -> Result<Self, ValidationError> {
        let tz = parse_timezone(timezone)?;
        let trimmed = expr.trim();
        if trimmed.is_empty() {
            return Err(ValidationError::new("cron", "must not be empty"));
        }
        let cron = Cron::new(trimmed)
            .with_seconds_optional()
            .parse()
            .map_err(|e| ValidationError::new("cron", plain_cron_error(&e)))?;
        let every_hour = trimmed.eq_ignore_ascii_case("@hourly")
            || hour_field(trimmed).is_some_and(|h| h == "*");
        Ok(Self {
            expr: trimmed.to_string(),
            tz,
            cron,
            every_hour,
        })
    }

    pub fn expr(&self) -> &str {
        &self.expr
    }

    pub fn timezone(&self) -> &str {
        self.tz.name()
    }

    /// The first fire time strictly after `after`.
    ///
    /// Gaps (spring forward): a time that does not exist fires once at the next valid instant.
    /// Folds (fall back): a fixed time fires once, at its first occurrence; a schedule whose
    /// hour field is `*` fires in both passes, so every real hour gets its runs.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let base = self.next_by_wall_clock(after)?;
        if !self.every_hour {
            return Some(base);
        }
        // Stepping by wall-clock time from the first pass of a fold jumps over the second
        // pass. Search the second pass on its own, at its fixed offset.
        let (before, later) = (self.offset_at(after), self.offset_at(base));
        if later >= before {
            return Some(base);
        }
        let fold_start = self.transition_between(after, base, before);
        let fold_end = fold_start + Duration::seconds(i64::from(before - later));
        let fixed = FixedOffset::east_opt(later)?;
        let from = (fold_start - Duration::seconds(1)).with_timezone(&fixed);
        let in_fold = self
            .cron
            .find_next_occurrence(&from, false)
            .ok()?
            .with_timezone(&Utc);
        Some(if in_fold > after && in_fold < fold_end && in_fold < base {
            in_fold
        } else {
            base
        })
    }

    /// Steps through local wall-clock times (croner), resolving gaps forward and folds to
    /// their first pass (or, for every-hour schedules, to the second when the first is past).
    fn next_by_wall_clock(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut from = after.with_timezone(&self.tz);
        for _ in 0..1000 {
            let candidate = self.cron.find_next_occurrence(&from, false).ok()?;
            let naive = candidate.naive_local();
            match self.tz.from_local_datetime(&naive) {
                LocalResult::Ambiguous(first, second) => {
                    let (first, second) = (first.with_timezone(&Utc), second.with_timezone(&Utc));
                    if first > after {
                        return Some(first);
                    }
                    if self.every_hour && second > after {
                        return Some(second);
                    }
                    from = second.with_timezone(&self.tz);
                }
                _ => {
                    let utc = candidate.with_timezone(&Utc);
                    if utc > after {
                        return Some(utc);
                    }
                    from = candidate;
                }
            }
        }
        None
    }

    /// Seconds east of UTC in this zone at `t`.
    fn offset_at(&self, t: DateTime<Utc>) -> i32 {
        self.tz
            .offset_from_utc_datetime(&t.naive_utc())
            .fix()
            .local_minus_utc()
    }

    /// The first instant in `(lo, hi]` whose offset is no longer `old`, to the second.
    fn transition_between(
        &self,
        mut lo: DateTime<Utc>,
        mut hi: DateTime<Utc>,
        old: i32,
    ) -> DateTime<Utc> {
        while hi - lo > Duration::seconds(1) {
            let mid = lo + (hi - lo) / 2;
            if self.offset_at(mid) == old {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        hi
    }

    /// Up to `count` fire times after `after`.
    pub fn upcoming(&self, after: DateTime<Utc>, count: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(count);
        let mut cursor = after;
        while out.len() < count {
            match self.next_after(cursor) {
                Some(t) => {
                    out.push(t);
                    cursor = t;
                }
                None => break,
            }
        }
        out
    }
}

/// An IANA zone name such as `Europe/Berlin`; empty means UTC.
pub fn parse_timezone(name: &str) -> Result<Tz, ValidationError> {
    let name = name.trim();
    if name.is_empty() {
        return Ok(Tz::UTC);
    }
    name.parse::<Tz>()
        .map_err(|_| ValidationError::new("timezone", format!("unknown IANA time zone '{name}'")))
}

/// What is wrong with an expression, in words for the person who typed it rather than the
/// parser's.
fn plain_cron_error(e: &croner::errors::CronError) -> String {
    use croner::errors::CronError;
    const FIELDS: &str = "minute, hour, day of month, month and day of week, with an optional \
        seconds field first (e.g. `0 3 * * *` for 03:00 every day)";
    match e {
        CronError::InvalidPattern(_) | CronError::EmptyPattern => {
            format!("needs 5 or 6 fields: {FIELDS}")
        }
        CronError::IllegalCharacters(_) => {
            "may hold only digits, letters of names (MON, JAN), spaces and * , - / ? L W #".into()
        }
        CronError::ComponentError(detail) if detail.contains("out of bounds") => {
            "has a value out of range: seconds and minutes go 0-59, hours 0-23, days 1-31, \
             months 1-12, days of week 0-7"
                .into()
        }
        _ => format!("is not a valid cron expression ({FIELDS})"),
    }
}

/// The time zone names `parse_timezone` accepts, for the API's schema: every IANA name, and
/// blank for UTC.
pub fn timezone_names() -> utoipa::openapi::schema::Object {
    let names = std::iter::once("").chain(chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()));
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(names))
        .description(Some("An IANA time zone; blank means UTC."))
        .build()
}

/// The hour field of a 5- or 6-field expression; `None` for shorthands like `@daily`.
fn hour_field(expr: &str) -> Option<&str> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    match fields.len() {
        5 => Some(fields[1]),
        6 => Some(fields[2]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn fires(expr: &str, tz: &str, from: &str, n: usize) -> Vec<String> {
        CronSchedule::parse(expr, tz)
            .unwrap()
            .upcoming(utc(from), n)
            .into_iter()
            .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .collect()
    }

    #[test]
    fn new_york_spring_forward_fires_a_skipped_time_once_at_the_next_valid_instant() {
        // 2026-03-08 02:00 EST jumps to 03:00 EDT; 02:30 does not exist that day.
        assert_eq!(
            fires("30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z", 3),
            [
                "2026-03-08T07:00:00Z",
                "2026-03-09T06:30:00Z",
                "2026-03-10T06:30:00Z"
            ]
        );
    }

    #[test]
    fn new_york_fall_back_fires_a_fixed_time_once() {
        // 2026-11-01 02:00 EDT falls back to 01:00 EST; 01:30 happens twice.
        assert_eq!(
            fires("30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z", 3),
            [
                "2026-11-01T05:30:00Z",
                "2026-11-02T06:30:00Z",
                "2026-11-03T06:30:00Z"
            ]
        );
    }

    #[test]
    fn new_york_fall_back_fires_every_real_hour_for_wildcard_hours() {
        assert_eq!(
            fires("0 * * * *", "America/New_York", "2026-11-01T04:30:00Z", 4),
            [
                "2026-11-01T05:00:00Z",
                "2026-11-01T06:00:00Z",
                "2026-11-01T07:00:00Z",
                "2026-11-01T08:00:00Z"
            ]
        );
        assert_eq!(
            fires(
                "*/30 * * * *",
                "America/New_York",
                "2026-11-01T05:10:00Z",
                4
            ),
            [
                "2026-11-01T05:30:00Z",
                "2026-11-01T06:00:00Z",
                "2026-11-01T06:30:00Z",
                "2026-11-01T07:00:00Z"
            ]
        );
        assert_eq!(
            fires("@hourly", "America/New_York", "2026-11-01T05:59:59Z", 2),
            ["2026-11-01T06:00:00Z", "2026-11-01T07:00:00Z"]
        );
    }

    #[test]
    fn london_spring_forward_and_berlin_fall_back() {
        // London 2026-03-29 01:00 GMT -> 02:00 BST.
        assert_eq!(
            fires("30 1 * * *", "Europe/London", "2026-03-28T12:00:00Z", 2),
            ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"]
        );
        // Berlin 2026-10-25 03:00 CEST -> 02:00 CET; 02:30 fires once, in CEST.
        assert_eq!(
            fires("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", 2),
            ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]
        );
    }

    #[test]
    fn lord_howe_half_hour_shifts() {
        // DST ends 2026-04-05 02:00 (+11) -> 01:30 (+10:30): 01:30-02:00 repeats.
        assert_eq!(
            fires(
                "45 1 * * *",
                "Australia/Lord_Howe",
                "2026-04-04T12:00:00Z",
                2
            ),
            ["2026-04-04T14:45:00Z", "2026-04-05T15:15:00Z"]
        );
        assert_eq!(
            fires(
                "*/15 * * * *",
                "Australia/Lord_Howe",
                "2026-04-04T14:40:00Z",
                4
            ),
            [
                "2026-04-04T14:45:00Z",
                "2026-04-04T15:00:00Z",
                "2026-04-04T15:15:00Z",
                "2026-04-04T15:30:00Z"
            ]
        );
        // DST starts 2026-10-04 02:00 (+10:30) -> 02:30 (+11): 02:15 fires at 02:30.
        assert_eq!(
            fires(
                "15 2 * * *",
                "Australia/Lord_Howe",
                "2026-10-03T12:00:00Z",
                2
            ),
            ["2026-10-03T15:30:00Z", "2026-10-04T15:15:00Z"]
        );
    }

    #[test]
    fn leap_day_waits_for_a_leap_year() {
        assert_eq!(
            fires("0 12 29 2 *", "UTC", "2026-01-01T00:00:00Z", 2),
            ["2028-02-29T12:00:00Z", "2032-02-29T12:00:00Z"]
        );
    }

    #[test]
    fn every_syntax_form_parses_and_fires_as_classic_cron() {
        let from = "2026-11-23T00:00:00Z"; // a Monday
        assert_eq!(fires("@daily", "UTC", from, 1), ["2026-11-24T00:00:00Z"]);
        assert_eq!(fires("@hourly", "UTC", from, 1), ["2026-11-23T01:00:00Z"]);
        assert_eq!(
            fires("*/15 9-10 * * *", "UTC", from, 3),
            [
                "2026-11-23T09:00:00Z",
                "2026-11-23T09:15:00Z",
                "2026-11-23T09:30:00Z"
            ]
        );
        assert_eq!(
            fires("0 8 * * MON,WED", "UTC", from, 2),
            ["2026-11-23T08:00:00Z", "2026-11-25T08:00:00Z"]
        );
        assert_eq!(
            fires("0 0 1 JAN *", "UTC", from, 1),
            ["2027-01-01T00:00:00Z"]
        );
        assert_eq!(
            fires("30 0 0 * * *", "UTC", from, 1),
            ["2026-11-23T00:00:30Z"]
        );
        assert_eq!(
            fires("* * * * * *", "UTC", from, 2),
            ["2026-11-23T00:00:01Z", "2026-11-23T00:00:02Z"]
        );
        // Day of month and day of week both restricted: either matches (OR), as classic cron.
        assert_eq!(
            fires("0 0 13 * FRI", "UTC", from, 2),
            ["2026-11-27T00:00:00Z", "2026-12-04T00:00:00Z"]
        );
        for bad in [
            "",
            "* * *",
            "60 * * * *",
            "* 24 * * *",
            "* * * * FOO",
            "not cron",
        ] {
            assert!(CronSchedule::parse(bad, "UTC").is_err(), "{bad}");
        }
        assert_eq!(
            CronSchedule::parse("* * * * *", "Nowhere/City")
                .unwrap_err()
                .field,
            "timezone"
        );
    }
}
