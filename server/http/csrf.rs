//! Request-forgery protection for every non-safe method: the request must come from our own
//! origin and carry the session's anti-forgery token, in the `X-CSRF-Token` header (htmx, API)
//! or the `csrf_token` form field (plain forms). No route can forget it: this is middleware.

use axum::body::{Body, to_bytes};
use axum::extract::{FromRequest, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::BODY_LIMIT;
use crate::error::AppError;
use crate::state::AppState;
use crate::web::Use;

fn forbidden() -> Response {
    AppError::Forbidden(
        "This form has expired or did not come from stackgate. Reload the page and try again."
            .into(),
    )
    .into_response()
}

/// The origin (`scheme://host[:port]`) of the public URL.
fn public_origin(state: &AppState) -> String {
    state.config.public_url.origin().ascii_serialization()
}

pub async fn protect(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    let headers = request.headers();
    if headers
        .get(header::ORIGIN)
        .is_some_and(|origin| origin.as_bytes() != public_origin(&state).as_bytes())
    {
        return forbidden();
    }
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site")
    {
        return forbidden();
    }
    let (mut parts, body) = request.into_parts();
    let user = match state.gate.user(&parts, Use::Write).await {
        Ok(Some(user)) => user,
        Ok(None) if parts.uri.path().starts_with("/api/") => {
            return crate::error::ApiError(AppError::Unauthenticated {
                return_to: "/".into(),
            })
            .into_response();
        }
        Ok(None) => {
            return AppError::Unauthenticated {
                return_to: "/".into(),
            }
            .into_response();
        }
        Err(e) => return e.into_response(),
    };
    let from_header = parts
        .headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let is_form = parts.headers.get(header::CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes()
            .starts_with(b"application/x-www-form-urlencoded")
    });
    let is_multipart = parts
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"multipart/form-data"));
    let (presented, body) = match from_header {
        Some(token) => (Some(token), body),
        // A file upload form (blueprint versions): the token is one of its fields.
        None if is_multipart => {
            let Ok(bytes) = to_bytes(body, BODY_LIMIT).await else {
                return (
                    axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                    "request body too large",
                )
                    .into_response();
            };
            let token = multipart_token(&parts.headers, bytes.clone()).await;
            (token, Body::from(bytes))
        }
        None if is_form => {
            let Ok(bytes) = to_bytes(body, BODY_LIMIT).await else {
                return (
                    axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                    "request body too large",
                )
                    .into_response();
            };
            let token = url::form_urlencoded::parse(&bytes)
                .find(|(k, _)| k == "csrf_token")
                .map(|(_, v)| v.into_owned());
            (token, Body::from(bytes))
        }
        None => (None, body),
    };
    let valid =
        presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(user.csrf_token.as_bytes())));
    if !valid {
        return forbidden();
    }
    parts.extensions.insert(user);
    next.run(Request::from_parts(parts, body)).await
}

/// The `csrf_token` field of a buffered `multipart/form-data` body, if it has one.
async fn multipart_token(
    headers: &axum::http::HeaderMap,
    bytes: axum::body::Bytes,
) -> Option<String> {
    let content_type = headers.get(header::CONTENT_TYPE)?.clone();
    let request = Request::builder()
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(bytes))
        .ok()?;
    let mut form = axum::extract::Multipart::from_request(request, &())
        .await
        .ok()?;
    while let Ok(Some(field)) = form.next_field().await {
        if field.name() == Some("csrf_token") {
            return field.text().await.ok();
        }
    }
    None
}
