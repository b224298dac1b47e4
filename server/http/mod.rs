//! The top of the house: the router assembled from every domain, the middleware every response
//! passes through, and the application's [`gate::PortalGate`].

pub mod csrf;
pub mod gate;
pub mod headers;
pub mod input_guard;

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::error::AppError;
use crate::state::AppState;

/// Largest request body accepted (forms and JSON); larger bodies get 413.
pub const BODY_LIMIT: usize = 256 * 1024;

/// How long one HTTP request may take before it is answered 503.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The whole application, without a listener: tests and `serve` both start from here.
pub fn app(state: AppState) -> Router {
    let static_files = Router::new()
        .route_service(
            "/static/htmx.min.js",
            ServeFile::new(&state.config.htmx_path),
        )
        .nest_service("/static", ServeDir::new(&state.config.static_dir));
    let routes = Router::new()
        .merge(crate::auth::routes::router())
        .merge(crate::catalog::routes::router())
        .merge(crate::catalog::admin_routes::router())
        .merge(crate::audit::routes::router())
        .merge(crate::audit::evidence_routes::router())
        .merge(crate::home::routes::router())
        .merge(crate::requests::routes::router())
        .merge(crate::deployments::routes::router())
        .merge(crate::approvals::routes::router())
        .merge(crate::admin::routes::router())
        .merge(crate::accounts::routes::router())
        .merge(crate::users::routes::router())
        .merge(crate::policies::routes::router())
        .merge(crate::servicecatalog::routes::router())
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(static_files)
        .fallback(not_found);
    with_edge_layers(routes, &state, REQUEST_TIMEOUT).with_state(state)
}

/// The middleware every response passes through, innermost first: anti-forgery checks, the body
/// limit, refusal of control characters, the request timeout, and outermost the security
/// headers, so that every answer carries them (a timeout's 503 included).
pub fn with_edge_layers(
    routes: Router<AppState>,
    state: &AppState,
    timeout: Duration,
) -> Router<AppState> {
    routes
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            csrf::protect,
        ))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(
            input_guard::refuse_control_characters,
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            headers::security_headers,
        ))
        .layer(TraceLayer::new_for_http())
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.db.ping().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(e) => {
            tracing::warn!(error = %e, "The readiness check could not reach the database.");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}

async fn not_found() -> AppError {
    AppError::NotFound
}
