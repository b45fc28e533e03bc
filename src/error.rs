//! The one place where failures become HTTP responses: `{"error":{"code","message","field"}}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

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
    #[error("this method is not allowed here; the Allow header lists those that are")]
    MethodNotAllowed,
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

    fn parts(&self) -> (StatusCode, ErrorCode, Option<&str>) {
        match self {
            ApiError::Validation(v) if v.too_large => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                Some(&v.field),
            ),
            ApiError::Validation(v) => (
                StatusCode::BAD_REQUEST,
                ErrorCode::ValidationFailed,
                Some(&v.field),
            ),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, ErrorCode::BadRequest, None),
            ApiError::Unauthorized | ApiError::BadToken => {
                (StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, None)
            }
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, ErrorCode::Forbidden, None),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, ErrorCode::NotFound, None),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::MethodNotAllowed,
                None,
            ),
            ApiError::Conflict { field, .. } => {
                (StatusCode::CONFLICT, ErrorCode::Conflict, field.as_deref())
            }
            ApiError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                None,
            ),
            ApiError::UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
                None,
            ),
            ApiError::Unprocessable(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::InvalidBody,
                None,
            ),
            ApiError::RateLimited { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, ErrorCode::RateLimited, None)
            }
            ApiError::QueueFull => (StatusCode::TOO_MANY_REQUESTS, ErrorCode::QueueFull, None),
            ApiError::RequestTimeout => {
                (StatusCode::REQUEST_TIMEOUT, ErrorCode::RequestTimeout, None)
            }
            ApiError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                None,
            ),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal, None),
        }
    }
}

/// What went wrong, for programs; the message says it for people.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// A field breaks a rule; `field` names it.
    ValidationFailed,
    /// The request is malformed (query string, JSON syntax, body shape).
    BadRequest,
    /// Credentials or trigger token missing or wrong.
    Unauthorized,
    /// Not allowed here: a cross-origin request, or a runner this server does not allow.
    Forbidden,
    /// No such script, run, route or enabled trigger.
    NotFound,
    /// The route exists, but not with this method.
    MethodNotAllowed,
    /// The state refuses it: a duplicate codeIdentifier, a `single` script already active, a disabled script, a run that already ended.
    Conflict,
    /// The body, or a field of it, is over its limit.
    PayloadTooLarge,
    /// The body is not declared as JSON.
    UnsupportedMediaType,
    /// The JSON does not have the expected shape (a wrong type, an array for an object).
    InvalidBody,
    /// Too many failed attempts from this client; `Retry-After` says when to retry.
    RateLimited,
    /// Too many runs are waiting; `Retry-After` says when to retry.
    QueueFull,
    /// The body did not arrive in time.
    RequestTimeout,
    /// The store is unreachable.
    Unavailable,
    /// Something failed on the server; the log has the cause.
    Internal,
}

/// The body of every error answer.
#[derive(Serialize, ToSchema)]
#[schema(as = Error, example = json!({"error": {"code": "validation_failed", "field": "cron",
    "message": "needs 5 or 6 fields: minute, hour, day of month, month and day of week"}}))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
    /// The request field at fault, when there is one (`env[2].key`, `cron`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub field: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, field) = self.parts();
        if let ApiError::Internal(err) = &self {
            // The cause chain goes to the log once; the client sees nothing of it.
            tracing::error!(error = format!("{err:#}"), "request failed");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message: self.to_string(),
                field: field.map(str::to_string),
            },
        };
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

impl From<crate::catalog::CatalogError> for ApiError {
    fn from(e: crate::catalog::CatalogError) -> Self {
        use crate::catalog::CatalogError;
        match e {
            CatalogError::Invalid(v) => ApiError::Validation(v),
            CatalogError::Store(s) => s.into(),
            CatalogError::File { file, message } => {
                ApiError::Validation(ValidationError::new(file, message))
            }
            CatalogError::Passphrase(message) => ApiError::BadRequest(message),
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
            EngineError::DefinitionChanged => ApiError::conflict(
                "the script was edited several times while the run was being started; try again",
            ),
            EngineError::ShuttingDown => ApiError::Unavailable,
            EngineError::Input(v) => ApiError::Validation(v),
            EngineError::Store(s) => s.into(),
        }
    }
}
