//! The deployment panel of a request, alone, for htmx polling while anything can still happen
//! to the request; and the panel as the request page shows it.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use super::store;
use super::views::{DeploymentFragment, DeploymentPanel};
use crate::db::Db;
use crate::error::AppError;
use crate::requests::{self, ServiceRequest};
use crate::state::AppState;
use crate::web::PassiveUser;

pub fn router() -> Router<AppState> {
    Router::new().route("/requests/{id}/deployment", get(fragment))
}

/// The panel of the request's latest deployment, live while the request can still change.
pub async fn panel(db: &Db, r: &ServiceRequest) -> Result<DeploymentPanel, AppError> {
    let deps = store::for_request(db, &r.id).await?;
    let latest = deps.first();
    let events = match latest {
        Some(d) => store::events(db, &d.id).await?,
        None => vec![],
    };
    let mut panel = DeploymentPanel::from_deployment(&r.id, latest, events);
    // Keep watching while anything can still happen to the request (approvals, deployment).
    panel.live = !r.status.is_terminal();
    panel.request_version = r.version;
    Ok(panel)
}

#[derive(Deserialize)]
struct PanelQuery {
    version: Option<i64>,
}

/// The deployment panel alone. When the request itself has moved on since the page was drawn
/// (approved, deployed…), htmx is told to reload the whole page instead. A poll does not keep
/// an idle session alive.
async fn fragment(
    State(state): State<AppState>,
    PassiveUser(user): PassiveUser,
    Path(id): Path<String>,
    Query(q): Query<PanelQuery>,
) -> Result<Response, AppError> {
    let r = requests::visible(&state.db, &user, &id).await?;
    if q.version.is_some_and(|v| v != r.version) {
        return Ok(([("hx-refresh", "true")], Html(String::new())).into_response());
    }
    let dep = panel(&state.db, &r).await?;
    let html = DeploymentFragment { dep }
        .render()
        .map_err(|e| AppError::Internal(e.into()))?;
    Ok(Html(html).into_response())
}
