//! The JSON API (`/api/v1`): the same actions as the pages, with the same authorization.
//! Authenticated by the session cookie; writes also need the `X-CSRF-Token` header.

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::input::NewRequest;
use super::routes::visible_request;
use super::store::{Cursor, ListQuery};
use super::{RequestStatus, actions, store};
use crate::approvals::{self, Decision};
use crate::auth::CurrentUser;
use crate::deployments;
use crate::error::{ApiError, AppError};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/me", get(me))
        .route("/api/v1/blueprints", get(blueprints))
        .route("/api/v1/requests", get(list).post(create))
        .route("/api/v1/requests/{id}", get(show))
        .route("/api/v1/requests/{id}/cancel", post(cancel))
        .route("/api/v1/requests/{id}/{decision}", post(decide))
}

/// The signed-in user, answering 401 JSON instead of redirecting.
pub struct ApiUser(pub CurrentUser);

impl FromRequestParts<AppState> for ApiUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        CurrentUser::from_request_parts(parts, state)
            .await
            .map(ApiUser)
            .map_err(ApiError)
    }
}

/// A JSON body whose rejection (malformed JSON, unknown fields) is a 400/422 JSON error.
pub struct ApiJson<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(e) => Err(ApiError(AppError::BadRequest(e.body_text()))),
        }
    }
}

async fn me(ApiUser(user): ApiUser) -> Json<CurrentUser> {
    Json(user)
}

async fn blueprints(State(state): State<AppState>, ApiUser(_): ApiUser) -> Json<serde_json::Value> {
    let list: Vec<_> = state
        .catalog
        .list()
        .iter()
        .map(|b| {
            serde_json::json!({
                "slug": b.slug, "name": b.name, "version": b.version, "summary": b.summary,
                "digest": b.digest,
                "parameters": b.parameters.iter().map(|p| serde_json::json!({
                    "name": p.name, "label": p.label, "help": p.help,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Json(serde_json::json!({ "blueprints": list }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    status: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

/// A page of the requests the user may see, newest first; `next` is the cursor of the page
/// after it (absent on the last page).
async fn list(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Query(p): Query<ListParams>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let statuses = match p.status.as_deref() {
        None | Some("") => vec![],
        Some(s) => vec![
            RequestStatus::parse(s)
                .ok_or_else(|| AppError::BadRequest(format!("unknown status '{s}'")))?,
        ],
    };
    let cursor = match p.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(
            Cursor::decode(c)
                .ok_or_else(|| AppError::BadRequest("cursor: not a cursor from this API".into()))?,
        ),
    };
    let limit = p.limit.unwrap_or(50);
    if !(1..=store::MAX_PAGE).contains(&limit) {
        return Err(
            AppError::BadRequest(format!("limit: between 1 and {}", store::MAX_PAGE)).into(),
        );
    }
    let scope = crate::home::routes::scope(&user);
    let mut q = ListQuery::new(scope.as_deref(), &statuses);
    q.after = cursor.as_ref();
    q.limit = limit;
    let (rows, next) = store::list(&state.db, &q).await?;
    Ok(Json(serde_json::json!({
        "requests": rows,
        "next": next.map(|c| c.encode()),
    })))
}

async fn create(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiJson(input): ApiJson<NewRequest>,
) -> Result<Response, ApiError> {
    let (id, _) = actions::submit(&state, &user, &input).await?;
    let r = visible_request(&state, &user, &id).await?;
    Ok((StatusCode::CREATED, Json(r)).into_response())
}

async fn show(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let r = visible_request(&state, &user, &id).await?;
    let approvals = approvals::store::for_request(&state.db, &r.id).await?;
    let deployments = deployments::store::for_request(&state.db, &r.id).await?;
    Ok(Json(serde_json::json!({
        "request": r, "template": r.template_body, "approvals": approvals,
        "deployments": deployments,
    })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CommentBody {
    #[serde(default)]
    comment: String,
}

/// Approve or reject, by the last path segment.
async fn decide(
    State(state): State<AppState>,
    ApiUser(mut user): ApiUser,
    Path((id, decision)): Path<(String, String)>,
    ApiJson(body): ApiJson<CommentBody>,
) -> Result<Json<approvals::DecisionOutcome>, ApiError> {
    let decision = Decision::from_path(&decision).ok_or(AppError::NotFound)?;
    // A decision counts only with roles the IdP confirms now.
    crate::auth::extract::confirm_groups(&state, &mut user, &format!("/requests/{id}")).await?;
    Ok(Json(
        approvals::decide(&state, &user, &id, decision, &body.comment).await?,
    ))
}

async fn cancel(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    actions::cancel(&state, &user, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
