//! Security headers on every response, including errors and static files.

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

use crate::state::AppState;

/// Scripts and styles only from our own origin; no plugins, no framing, no `<base>` games.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; form-action 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

pub async fn security_headers(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let is_static = request.uri().path().starts_with("/static/");
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    let mut set = |name: &'static str, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set("content-security-policy", CSP);
    set("x-content-type-options", "nosniff");
    set("referrer-policy", "strict-origin-when-cross-origin");
    set("cross-origin-opener-policy", "same-origin");
    set("x-frame-options", "DENY");
    set(
        "permissions-policy",
        "camera=(), microphone=(), geolocation=()",
    );
    if state.config.secure_cookies() {
        set(
            "strict-transport-security",
            "max-age=31536000; includeSubDomains",
        );
    }
    if is_static {
        set("cache-control", "public, max-age=3600");
    } else {
        set("cache-control", "no-store");
    }
    response
}
