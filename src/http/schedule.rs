//! Cron previews, for the editor and for checking an expression before saving it.

use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::extract::ApiQuery;
use super::views::time;
use crate::domain::{CronSchedule, ValidationError};
use crate::error::ApiError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviewQuery {
    cron: Option<String>,
    timezone: Option<String>,
    from: Option<String>,
    count: Option<usize>,
}

pub async fn preview(ApiQuery(q): ApiQuery<PreviewQuery>) -> Result<Json<Value>, ApiError> {
    let cron = q.cron.unwrap_or_default();
    let timezone = q.timezone.unwrap_or_else(|| "UTC".into());
    let schedule = CronSchedule::parse(&cron, &timezone)?;
    let from = match q.from.as_deref().filter(|f| !f.is_empty()) {
        Some(f) => DateTime::parse_from_rfc3339(f)
            .map_err(|_| ValidationError::new("from", "must be an RFC 3339 time"))?
            .with_timezone(&Utc),
        None => Utc::now(),
    };
    let count = q.count.unwrap_or(5);
    if !(1..=100).contains(&count) {
        return Err(ValidationError::new("count", "must be between 1 and 100").into());
    }
    // RFC 3339 has four-digit years: times past 9999 are not listed.
    let times: Vec<String> = schedule
        .upcoming(from, count)
        .into_iter()
        .filter(|t| chrono::Datelike::year(t) <= 9999)
        .map(time)
        .collect();
    Ok(Json(json!({
        "cron": schedule.expr(),
        "timezone": schedule.timezone(),
        "times": times,
    })))
}
