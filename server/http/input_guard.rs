//! Refuses text with control characters before any handler sees it: a NUL byte cannot be stored
//! in PostgreSQL text, and no field of the portal has a use for C0 controls other than tab and
//! line breaks. Query strings, form fields and JSON strings are all checked; the answer is a 400
//! naming the field, and nothing is stored.

use axum::body::{Body, Bytes, to_bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::BODY_LIMIT;
use crate::error::{ApiError, AppError};

/// Whether a character may appear in user input: anything but C0 controls (except tab, line
/// feed and carriage return) and DEL.
fn allowed(c: char) -> bool {
    !c.is_control() || matches!(c, '\t' | '\n' | '\r')
}

/// The first field (and its offending character) in `pairs` that holds a control character.
fn bad_pair<'a>(pairs: impl Iterator<Item = (String, String)> + 'a) -> Option<(String, char)> {
    pairs.into_iter().find_map(|(k, v)| {
        k.chars()
            .chain(v.chars())
            .find(|c| !allowed(*c))
            .map(|c| (k, c))
    })
}

/// The JSON path of the first string (key or value) holding a control character.
fn bad_json(value: &serde_json::Value, path: &str) -> Option<(String, char)> {
    match value {
        serde_json::Value::String(s) => s.chars().find(|c| !allowed(*c)).map(|c| (path.into(), c)),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| bad_json(v, &format!("{path}[{i}]"))),
        serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
            let here = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            match k.chars().find(|c| !allowed(*c)) {
                Some(c) => Some((here, c)),
                None => bad_json(v, &here),
            }
        }),
        _ => None,
    }
}

fn refusal(is_api: bool, field: &str, c: char) -> Response {
    let field = if field.is_empty() {
        "the request"
    } else {
        field
    };
    let e = AppError::BadRequest(format!(
        "{field} contains a control character (U+{:04X}); remove it and try again.",
        c as u32
    ));
    if is_api {
        ApiError(e).into_response()
    } else {
        e.into_response()
    }
}

fn content_type_is(headers: &HeaderMap, prefix: &[u8]) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(prefix))
}

/// The first field of a buffered form or JSON body that holds a control character.
fn check_body(headers: &HeaderMap, bytes: &Bytes) -> Option<(String, char)> {
    if content_type_is(headers, b"application/x-www-form-urlencoded") {
        bad_pair(url::form_urlencoded::parse(bytes).map(|(k, v)| (k.into_owned(), v.into_owned())))
    } else if content_type_is(headers, b"application/json") {
        // Malformed JSON is the extractor's to report; only well-formed strings are checked.
        serde_json::from_slice::<serde_json::Value>(bytes)
            .ok()
            .and_then(|v| bad_json(&v, ""))
    } else {
        None
    }
}

/// The middleware.
pub async fn refuse_control_characters(request: Request, next: Next) -> Response {
    let is_api = request.uri().path().starts_with("/api/");
    if let Some(query) = request.uri().query()
        && let Some((field, c)) = bad_pair(
            url::form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned())),
        )
    {
        return refusal(is_api, &field, c);
    }
    let checks_body = content_type_is(request.headers(), b"application/x-www-form-urlencoded")
        || content_type_is(request.headers(), b"application/json");
    if !checks_body {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, BODY_LIMIT).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response();
    };
    if let Some((field, c)) = check_body(&parts.headers, &bytes) {
        return refusal(is_api, &field, c);
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_found_with_their_field() {
        let json = serde_json::json!({"name": "ok", "parameters": {"x": ["fine", "bad\u{0}"]}});
        assert_eq!(
            bad_json(&json, ""),
            Some(("parameters.x[1]".to_string(), '\0'))
        );
        let ok = serde_json::json!({"comment": "line one\nline two\ttabbed\r\n ünïcødé \u{202e}"});
        assert_eq!(bad_json(&ok, ""), None);
        let pairs = vec![
            ("a".to_string(), "fine".to_string()),
            ("comment".to_string(), "esc\u{1b}[31m".to_string()),
        ];
        assert_eq!(
            bad_pair(pairs.into_iter()),
            Some(("comment".to_string(), '\u{1b}'))
        );
        assert!(!allowed('\u{7f}'));
        assert!(allowed('é'));
    }
}
