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
    /// The decision needs a more recent or stronger sign-in at the IdP (step-up, bar B9). Pages
    /// send the user to `login_url` (a fresh sign-in, then back) unless `needs` says what a
    /// fresh sign-in alone cannot give (e.g. MFA); the API answers 401 with
    /// `WWW-Authenticate: Bearer error="insufficient_user_authentication"` (RFC 9470).
    #[error("{}", needs.clone().unwrap_or_else(|| format!(
        "Sign in again to confirm it is you: this decision needs a sign-in within the last {}.",
        crate::auth::step_up::age_words(*max_age)
    )))]
    StepUpRequired {
        login_url: String,
        max_age: i64,
        needs: Option<String>,
    },
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
            AppError::Unauthenticated { .. } | AppError::StepUpRequired { .. } => {
                StatusCode::UNAUTHORIZED
            }
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
    /// A way forward besides the home page: (address, words).
    link: Option<(String, String)>,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let AppError::Unauthenticated { return_to } = &self {
            let target = format!("/login?return_to={}", urlencode(return_to));
            return Redirect::to(&target).into_response();
        }
        let mut link = None;
        if let AppError::StepUpRequired {
            login_url, needs, ..
        } = &self
        {
            if needs.is_none() {
                return Redirect::to(login_url).into_response();
            }
            link = Some((login_url.clone(), "Sign in again".to_string()));
        }
        let reference = self.log();
        let status = self.status();
        let page = ErrorPage {
            title: match &self {
                AppError::StepUpRequired { .. } => "Stronger sign-in needed".to_string(),
                _ => status.canonical_reason().unwrap_or("Error").to_string(),
            },
            message: self.public_message(&reference),
            link,
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
        if let AppError::StepUpRequired {
            login_url, max_age, ..
        } = &self.0
        {
            return step_up_response(&self.0, login_url, *max_age);
        }
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

/// 401 for the API when a decision needs a fresher or stronger sign-in, in RFC 9470's terms: the
/// client sends the user through `login_url` and retries.
fn step_up_response(error: &AppError, login_url: &str, max_age: i64) -> Response {
    let body = serde_json::json!({
        "error": "step_up_required",
        "message": error.to_string(),
        "login_url": login_url,
        "max_age": max_age,
        "fields": [],
    });
    let challenge = format!(
        "Bearer error=\"insufficient_user_authentication\", \
         error_description=\"A more recent or stronger sign-in is required\", max_age=\"{max_age}\""
    );
    let mut response = (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    if let Ok(v) = axum::http::HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(axum::http::header::WWW_AUTHENTICATE, v);
    }
    response
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

    #[tokio::test]
    async fn a_step_up_redirects_pages_and_challenges_the_api() {
        let stale = || AppError::StepUpRequired {
            login_url: "/auth/login?max_age=900&return_to=%2Frequests%2Fr%23decision".into(),
            max_age: 900,
            needs: None,
        };
        let page = stale().into_response();
        assert_eq!(page.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            page.headers()["location"],
            "/auth/login?max_age=900&return_to=%2Frequests%2Fr%23decision"
        );
        let api = ApiError(stale()).into_response();
        assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
        let challenge = api.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            challenge.starts_with("Bearer error=\"insufficient_user_authentication\"")
                && challenge.contains("max_age=\"900\""),
            "{challenge}"
        );
        let body: serde_json::Value = serde_json::from_str(&body_text(api).await).unwrap();
        assert_eq!(body["error"], "step_up_required");
        assert_eq!(
            body["login_url"],
            "/auth/login?max_age=900&return_to=%2Frequests%2Fr%23decision"
        );
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("within the last 15 minutes"),
            "{body}"
        );
        // What a fresh sign-in alone cannot give is said on the page, with the way to sign in.
        let mfa = AppError::StepUpRequired {
            login_url: "/auth/login?max_age=900&return_to=%2F".into(),
            max_age: 900,
            needs: Some("This decision needs MFA (multi-factor authentication).".into()),
        }
        .into_response();
        assert_eq!(mfa.status(), StatusCode::UNAUTHORIZED);
        let html = body_text(mfa).await;
        assert!(html.contains("This decision needs MFA"), "{html}");
        assert!(
            html.contains("href=\"/auth/login?max_age=900&#38;return_to=%2F\""),
            "{html}"
        );
    }
}
