//! One error type for every handler, one status mapping, logged once here at the edge.
//! Pages get an HTML error page; the JSON API wraps it in [`ApiError`].

use axum::Json;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};

use std::fmt;

use crate::db::StoreError;

/// A problem with one field of a request, worded for the person filling in the form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The parameter (or context field such as `name`) the message belongs next to.
    pub field: String,
    /// What is wrong and what to do about it.
    pub message: String,
}

impl FieldError {
    /// A message for one field.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    /// Not signed in: pages redirect to the sign-in page, the API answers 401.
    #[error("sign in first")]
    Unauthenticated { return_to: String },
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    BadRequest(String),
    /// Input that failed validation, field by field.
    #[error("some fields need attention")]
    Invalid(Vec<FieldError>),
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Db(e) => e.into(),
            StoreError::Conflict(message) => AppError::Conflict(message),
            other @ (StoreError::Corrupt { .. }
            | StoreError::Encode { .. }
            | StoreError::LeaseLost(_)) => AppError::Internal(anyhow::Error::new(other)),
        }
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                AppError::Unavailable("The database is not answering; try again shortly.".into())
            }
            other => AppError::Internal(anyhow::Error::new(other).context("database")),
        }
    }
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the user is told. Internal errors get a reference instead of details.
    fn public_message(&self, reference: &str) -> String {
        match self {
            AppError::NotFound => "There is nothing here, or you may not see it.".into(),
            AppError::Internal(_) => format!(
                "Something went wrong on our side. Nothing was changed. Reference: {reference}"
            ),
            AppError::Invalid(errors) => errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("; "),
            other => other.to_string(),
        }
    }

    fn log(&self) -> String {
        let reference = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        match self {
            AppError::Internal(e) => {
                tracing::error!(error.reference = %reference, error = format!("{e:#}"), "A request failed with an internal error.");
            }
            AppError::Unavailable(m) => {
                tracing::warn!(error.reference = %reference, "A request failed: {m}");
            }
            _ => {}
        }
        reference
    }
}

#[derive(askama::Template)]
#[template(path = "error.html")]
struct ErrorPage {
    title: String,
    message: String,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let AppError::Unauthenticated { return_to } = &self {
            let target = format!("/login?return_to={}", urlencode(return_to));
            return Redirect::to(&target).into_response();
        }
        let reference = self.log();
        let status = self.status();
        let page = ErrorPage {
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            message: self.public_message(&reference),
        };
        let mut response = match askama::Template::render(&page) {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => (status, page.message).into_response(),
        };
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("5"));
        }
        response
    }
}

/// The same errors for the JSON API: `{"error": "...", "fields": [...]}`.
#[derive(Debug)]
pub struct ApiError(pub AppError);

impl<E: Into<AppError>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let reference = self.0.log();
        let status = self.0.status();
        let fields = match &self.0 {
            AppError::Invalid(errors) => errors
                .iter()
                .map(|e| serde_json::json!({ "field": e.field, "message": e.message }))
                .collect(),
            _ => serde_json::Value::Array(vec![]),
        };
        let body = serde_json::json!({
            "error": self.0.public_message(&reference),
            "fields": fields,
        });
        (status, Json(body)).into_response()
    }
}

/// Percent-encodes a query value.
pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use axum::response::IntoResponse;

    use super::*;

    /// Collects what the log subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    async fn body_text(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn an_internal_error_logs_its_whole_cause_chain_and_the_user_sees_only_a_reference() {
        let cause = serde_json::from_str::<serde_json::Value>("{\"half").unwrap_err();
        let cause_text = cause.to_string();
        let error = AppError::from(StoreError::unreadable("request's parameters", cause));
        let log = Captured::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let response = tracing::subscriber::with_default(subscriber, || error.into_response());
        let logged = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        assert!(
            logged.contains(&format!(
                "stored request's parameters is unreadable: {cause_text}"
            )),
            "the log line names the outer error and its cause: {logged}"
        );
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let page = body_text(response).await;
        let reference = logged
            .split("error.reference=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap();
        assert!(
            page.contains(reference),
            "the page quotes the log's reference"
        );
        assert!(
            !page.contains(&cause_text),
            "the page does not show the cause"
        );
    }

    #[tokio::test]
    async fn a_database_error_keeps_the_drivers_message_in_the_log() {
        let error = AppError::from(StoreError::Db(sqlx::Error::Protocol(
            "unexpected message 'Z'".into(),
        )));
        let log = Captured::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let response =
            tracing::subscriber::with_default(subscriber, || ApiError(error).into_response());
        let logged = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        assert!(
            logged.contains(
                "database: encountered unexpected or invalid data: unexpected message 'Z'"
            ),
            "{logged}"
        );
        let body = body_text(response).await;
        assert!(!body.contains("unexpected message"), "{body}");
    }
}
