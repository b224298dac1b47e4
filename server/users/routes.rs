//! The users pages and API, side by side: list, one user with their sessions, and the actions
//! (disable, enable, end sessions). Admins only: pages answer 403 to other users, the API 404.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::store::{self, Cursor};
use super::views::{SessionRow, UserPage, UserRow, UsersPage};
use super::{ActionOutcome, UserAction, refusal, require_admin};
use crate::audit::Actor;
use crate::error::{ApiError, AppError};
use crate::state::AppState;
use crate::web::{ApiUser, CurrentUser, Layout};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/users", get(list_page))
        .route("/admin/users/{id}", get(show_page))
        .route("/admin/users/{id}/{action}", post(act_page))
        .route("/api/v1/users", get(list_api))
        .route("/api/v1/users/{id}", get(show_api))
        .route("/api/v1/users/{id}/{action}", post(act_api))
}

fn render(t: &impl Template) -> Result<Html<String>, AppError> {
    Ok(Html(t.render().map_err(anyhow::Error::from)?))
}

/// The API hides its existence from non-admins.
fn api_admin(user: &CurrentUser) -> Result<(), ApiError> {
    require_admin(user).map_err(|_| ApiError(AppError::NotFound))
}

#[derive(Deserialize)]
struct PageQuery {
    after: Option<String>,
    limit: Option<i64>,
}

impl PageQuery {
    fn cursor(&self) -> Result<Option<Cursor>, AppError> {
        self.after
            .as_deref()
            .filter(|a| !a.is_empty())
            .map(|a| {
                Cursor::decode(a).ok_or_else(|| {
                    AppError::BadRequest("after: not a position this portal handed out.".into())
                })
            })
            .transpose()
    }
}

async fn list_page(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(q): Query<PageQuery>,
) -> Result<Html<String>, AppError> {
    require_admin(&user)?;
    let (users, next) = store::page(&state.db, q.cursor()?.as_ref(), 50).await?;
    render(&UsersPage {
        layout: Layout::new(state.gate.as_ref(), &user, "admin").await?,
        rows: users
            .iter()
            .map(|u| UserRow::of(u, &state.config))
            .collect(),
        next: next.map(|c| c.encode()),
    })
}

async fn show_page(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Html<String>, AppError> {
    require_admin(&user)?;
    let target = store::find(&state.db, &id)
        .await?
        .ok_or(AppError::NotFound)?;
    let sessions = store::sessions(&state.db, &id).await?;
    render(&UserPage {
        layout: Layout::new(state.gate.as_ref(), &user, "admin").await?,
        user: UserRow::of(&target, &state.config),
        sessions: sessions.iter().map(SessionRow::of).collect(),
        pending_requests: store::pending_requests(&state.db, &id).await?,
        is_self: target.id == user.id,
    })
}

/// Takes the action, then makes this replica's session cache forget the ended sessions (other
/// replicas re-check within `STACKGATE_SESSION_CACHE_MS`).
async fn act(
    state: &AppState,
    user: &CurrentUser,
    id: &str,
    action: &str,
) -> Result<ActionOutcome, AppError> {
    let action = UserAction::from_path(action).ok_or(AppError::NotFound)?;
    if let Some(why) = refusal(user, id, action) {
        return Err(AppError::Forbidden(why));
    }
    let outcome = store::act(
        &state.db,
        &Actor::of(user),
        user.source_ip.clone(),
        id,
        action,
    )
    .await?
    .ok_or(AppError::NotFound)?;
    for id_hash in &outcome.ended {
        state.auth.sessions.forget(id_hash);
    }
    tracing::info!(
        user.id = %outcome.user_id,
        sessions = outcome.sessions_ended,
        "An admin {} a user.",
        match action {
            UserAction::Disable => "disabled",
            UserAction::Enable => "enabled",
            UserAction::RevokeSessions => "ended the sessions of",
        }
    );
    Ok(outcome)
}

async fn act_page(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((id, action)): Path<(String, String)>,
) -> Result<Response, AppError> {
    require_admin(&user)?;
    act(&state, &user, &id, &action).await?;
    Ok(Redirect::to(&format!("/admin/users/{id}")).into_response())
}

async fn list_api(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Query(q): Query<PageQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    api_admin(&user)?;
    let (users, next) = store::page(&state.db, q.cursor()?.as_ref(), q.limit.unwrap_or(50)).await?;
    Ok(Json(serde_json::json!({
        "users": users,
        "next": next.map(|c| c.encode()),
    })))
}

async fn show_api(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    api_admin(&user)?;
    let target = store::find(&state.db, &id)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(Json(serde_json::json!({
        "user": target,
        "sessions": store::sessions(&state.db, &id).await?,
        "pending_requests": store::pending_requests(&state.db, &id).await?,
    })))
}

async fn act_api(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path((id, action)): Path<(String, String)>,
) -> Result<Json<ActionOutcome>, ApiError> {
    api_admin(&user)?;
    Ok(Json(act(&state, &user, &id, &action).await?))
}
