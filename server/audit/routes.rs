//! The audit page and API: records, chain verification, export. Reading is itself audited.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::{Entry, Record, store};
use crate::auth::CurrentUser;
use crate::error::{ApiError, AppError};
use crate::http::layout::{Layout, When};
use crate::requests::api::ApiUser;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/audit", get(page))
        .route("/audit/export", get(export))
        .route("/api/v1/audit/verify", get(verify_api))
}

struct Row {
    seq: i64,
    when: When,
    actor: String,
    action: String,
    object: String,
    outcome: String,
    detail: String,
    hash_short: String,
}

#[derive(Template)]
#[template(path = "audit/index.html")]
struct AuditPage {
    layout: Layout,
    rows: Vec<Row>,
    records: i64,
    verified_up_to: i64,
    broken: Option<String>,
    head_hash: String,
    filter: String,
}

#[derive(Deserialize)]
struct Filter {
    #[serde(default)]
    action: String,
}

async fn page(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(f): Query<Filter>,
) -> Result<Html<String>, AppError> {
    user.require_audit_reader()?;
    store::append_alone(
        &state.db,
        Entry::new(&user.actor(), "audit.read", "audit_log", "-")
            .detail(serde_json::json!({ "filter": f.action }))
            .source_ip(user.source_ip.clone()),
    )
    .await?;
    let v = store::verify(&state.db).await?;
    let rows = store::recent(&state.db, 200, &f.action)
        .await?
        .into_iter()
        .map(|r: Record| Row {
            seq: r.seq,
            when: When::at(r.at),
            actor: r.actor_name,
            action: r.action,
            object: format!("{} {}", r.object_type, r.object_id),
            outcome: r.outcome,
            detail: r.detail.to_string(),
            hash_short: r.hash.chars().take(12).collect(),
        })
        .collect();
    let page = AuditPage {
        layout: Layout::new(&state, &user, "audit").await?,
        rows,
        records: v.records,
        verified_up_to: v.verified_up_to,
        broken: v.broken_at.map(|(seq, why)| format!("#{seq}: {why}")),
        head_hash: v.head_hash,
        filter: f.action,
    };
    Ok(Html(page.render().map_err(anyhow::Error::from)?))
}

/// The whole log as JSON Lines, one record per line, for offline verification.
async fn export(State(state): State<AppState>, user: CurrentUser) -> Result<Response, AppError> {
    user.require_audit_reader()?;
    store::append_alone(
        &state.db,
        Entry::new(&user.actor(), "audit.exported", "audit_log", "-")
            .source_ip(user.source_ip.clone()),
    )
    .await?;
    let mut body = String::new();
    for r in store::all(&state.db).await? {
        body.push_str(&serde_json::to_string(&r).map_err(anyhow::Error::from)?);
        body.push('\n');
    }
    Ok((
        [
            ("content-type", "application/x-ndjson"),
            (
                "content-disposition",
                "attachment; filename=\"stackgate-audit.jsonl\"",
            ),
        ],
        body,
    )
        .into_response())
}

async fn verify_api(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
) -> Result<Json<super::Verification>, ApiError> {
    user.require_audit_reader()?;
    store::append_alone(
        &state.db,
        Entry::new(&user.actor(), "audit.verified", "audit_log", "-")
            .source_ip(user.source_ip.clone()),
    )
    .await?;
    Ok(Json(store::verify(&state.db).await?))
}
