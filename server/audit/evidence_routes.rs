//! `GET /requests/{id}/evidence` (a download) and `GET /api/v1/requests/{id}/evidence`: the
//! request's evidence pack, for whoever may view the request. Reading it is audited.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{Actor, Entry, evidence, store};
use crate::error::{ApiError, AppError};
use crate::requests;
use crate::state::AppState;
use crate::web::{ApiUser, CurrentUser};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/requests/{id}/evidence", get(download))
        .route("/api/v1/requests/{id}/evidence", get(api))
}

/// Records the read, then builds the pack (signed when a key is configured) as JSON bytes.
async fn pack(state: &AppState, user: &CurrentUser, id: &str) -> Result<(i64, Vec<u8>), AppError> {
    let r = requests::visible(&state.db, user, id).await?;
    let actor = Actor::of(user);
    store::append_alone(
        &state.db,
        Entry::new(&actor, "evidence.read", "request", r.id.clone())
            .source_ip(user.source_ip.clone()),
    )
    .await?;
    let pack = evidence::build(
        &state.db,
        &r,
        &actor,
        state.config.audit_signing_key.as_ref(),
    )
    .await?;
    let bytes = serde_json::to_vec_pretty(&pack).map_err(|e| AppError::Internal(e.into()))?;
    Ok((r.number, bytes))
}

async fn download(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let (number, bytes) = pack(&state, &user, &id).await?;
    let disposition = format!("attachment; filename=\"evidence-request-{number}.json\"");
    Ok((
        [
            ("content-type", "application/json".to_string()),
            ("content-disposition", disposition),
            ("cache-control", "no-store".to_string()),
        ],
        bytes,
    )
        .into_response())
}

async fn api(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (_, bytes) = pack(&state, &user, &id).await?;
    Ok(([("content-type", "application/json")], bytes).into_response())
}
