//! Cron previews, for the editor and for checking an expression before saving it.

use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::ApiQuery;
use super::views::time;
use crate::domain::{CronSchedule, ValidationError};
use crate::error::{ApiError, ErrorBody};

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PreviewQuery {
    /// A 5- or 6-field cron expression (seconds optional) or a shorthand such as `@daily`. An
    /// expression that never fires (30 February) is refused.
    #[param(required = true, nullable = false, min_length = 1, pattern = r"\S")]
    cron: Option<String>,
    #[param(schema_with = crate::domain::timezone_names)]
    timezone: Option<String>,
    /// Times after this one (default: now); empty means now.
    #[param(schema_with = super::api_doc::blank_or_time)]
    from: Option<String>,
    /// How many times (default 5).
    #[param(minimum = 1, maximum = 100)]
    count: Option<usize>,
}

/// When an expression fires.
#[derive(Serialize, ToSchema)]
pub struct SchedulePreview {
    /// The expression as it would be stored (trimmed).
    cron: String,
    timezone: String,
    /// The next fire times, at most `count`; none past the year 9999.
    #[schema(value_type = Vec<String>, format = DateTime)]
    times: Vec<String>,
}

/// Next fire times of a cron expression
#[utoipa::path(get, path = "/api/admin/scripts/schedule-preview", operation_id = "previewSchedule",
    tag = "scripts",
    params(PreviewQuery),
    responses(
        (status = 200, description = "The next fire times", body = SchedulePreview,
            example = json!({"cron": "0 3 * * *", "timezone": "Europe/Berlin", "times": [
                "2026-11-26T02:00:00.000Z", "2026-11-27T02:00:00.000Z"]})),
        (status = 400, description = "The expression, time zone or a parameter is refused; `field` names it", body = ErrorBody),
        (status = 401, description = "Admin credentials missing or wrong", body = ErrorBody),
        (status = 429, description = "Too many failed logins from this client", body = ErrorBody),
    ),
    security(("basicAuth" = [])))]
pub async fn preview(
    ApiQuery(q): ApiQuery<PreviewQuery>,
) -> Result<Json<SchedulePreview>, ApiError> {
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
    Ok(Json(SchedulePreview {
        cron: schedule.expr().to_string(),
        timezone: schedule.timezone().to_string(),
        times,
    }))
}
