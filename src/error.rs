//! The one place where failures become HTTP responses: `{"error":{"code","message","field"}}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::domain::ValidationError;
use crate::engine::EngineError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Validation(#[from] ValidationError),
    #[error("{0}")]
    BadRequest(String),
    #[error("authentication required")]
    Unauthorized,
    #[error("a valid trigger token is required")]
    BadToken,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{message}")]
    Conflict {
        message: String,
        field: Option<String>,
    },
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("too many failed attempts; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("too many runs are waiting in the queue; retry later")]
    QueueFull,
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    #[error("service unavailable")]
    Unavailable,
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn conflict(message: impl Into<String>) -> Self {
        ApiError::Conflict {
            message: message.into(),
            field: None,
        }
    }

    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(err.into())
    }

    fn parts(&self) -> (StatusCode, &'static str, Option<&str>) {
        match self {
            ApiError::Validation(v) if v.too_large => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                Some(&v.field),
            ),
            ApiError::Validation(v) => {
                (StatusCode::BAD_REQUEST, "validation_failed", Some(&v.field))
            }
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request", None),
            ApiError::Unauthorized | ApiError::BadToken => {
                (StatusCode::UNAUTHORIZED, "unauthorized", None)
            }
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", None),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found", None),
            ApiError::Conflict { field, .. } => {
                (StatusCode::CONFLICT, "conflict", field.as_deref())
            }
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", None),
            ApiError::UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                None,
            ),
            ApiError::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", None),
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited", None),
            ApiError::QueueFull => (StatusCode::TOO_MANY_REQUESTS, "queue_full", None),
            ApiError::RequestTimeout => (StatusCode::REQUEST_TIMEOUT, "request_timeout", None),
            ApiError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", None),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", None),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, field) = self.parts();
        if let ApiError::Internal(err) = &self {
            // The cause chain goes to the log once; the client sees nothing of it.
            tracing::error!(error = format!("{err:#}"), "request failed");
        }
        let mut body = json!({"error": {"code": code, "message": self.to_string()}});
        if let Some(f) = field {
            body["error"]["field"] = json!(f);
        }
        let mut resp = (status, axum::Json(body)).into_response();
        match &self {
            ApiError::Unauthorized => {
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"scriptd\", charset=\"UTF-8\""),
                );
            }
            ApiError::BadToken => {
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"scriptd\""),
                );
            }
            ApiError::RateLimited { retry_after_secs } => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            ApiError::QueueFull => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            _ => {}
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::NotFound(what),
            StoreError::Conflict { field, message } => ApiError::Conflict {
                message,
                field: Some(field.to_string()),
            },
            StoreError::Backend(err) => ApiError::Internal(err.into()),
            StoreError::Corrupt(msg) => ApiError::Internal(anyhow::anyhow!(msg)),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::ScriptDisabled => ApiError::conflict("the script is disabled"),
            EngineError::RunnerNotAllowed(runner) => ApiError::Forbidden(format!(
                "the {runner} runner is not allowed on this server (--allowed-runners)"
            )),
            EngineError::AlreadyRunning => {
                ApiError::conflict("the script is already running and its concurrency is 'single'")
            }
            EngineError::BrowserScript => ApiError::BadRequest(
                "browser scripts run only in the admin page, not on the server".into(),
            ),
            EngineError::AlreadyFinished => ApiError::conflict("the run has already finished"),
            EngineError::RunNotFound => ApiError::NotFound("run"),
            EngineError::QueueFull => ApiError::QueueFull,
            EngineError::ShuttingDown => ApiError::Unavailable,
            EngineError::Store(s) => s.into(),
        }
    }
}
