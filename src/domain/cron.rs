//! A cron expression bound to an IANA time zone, and the instants it fires at.

use chrono::{DateTime, LocalResult, TimeZone, Utc};
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
            .map_err(|e| ValidationError::new("cron", format!("invalid cron expression: {e}")))?;
        let every_hour = hour_field(trimmed).is_some_and(|h| h == "*");
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

/// The hour field of a 5- or 6-field expression; `None` for shorthands like `@daily`.
fn hour_field(expr: &str) -> Option<&str> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    match fields.len() {
        5 => Some(fields[1]),
        6 => Some(fields[2]),
        _ => None,
    }
}
