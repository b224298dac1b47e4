//! The audit page and API: records a page at a time, the last recorded verification of the chain
//! (verifying on demand, not on every view), export. Reading is itself audited.

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{FromRef, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json};
use serde::Deserialize;

use super::store;
use super::views::{AuditPage, ChainStatus, Row};
use super::{Actor, Entry, Record};
use crate::db::Db;
use crate::error::{ApiError, AppError};
use crate::web::{ApiUser, CurrentUser, Gate, Layout, When};

/// The audit pages and API, for any application state that provides the database and the
/// gate of the user extractors.
pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Db: FromRef<S>,
    Arc<dyn Gate>: FromRef<S>,
{
    Router::new()
        .route("/audit", get(page))
        .route("/audit/verify", post(verify_page))
        .route("/audit/export", get(export))
        .route("/api/v1/audit/verify", get(verify_api))
}

#[derive(Deserialize)]
struct Filter {
    #[serde(default)]
    action: String,
    before: Option<i64>,
}

async fn page(
    State(db): State<Db>,
    State(gate): State<Arc<dyn Gate>>,
    user: CurrentUser,
    Query(f): Query<Filter>,
) -> Result<Html<String>, AppError> {
    user.require_audit_reader()?;
    store::append_alone(
        &db,
        Entry::new(&Actor::of(&user), "audit.read", "audit_log", "-")
            .detail(serde_json::json!({ "filter": f.action, "before": f.before }))
            .source_ip(user.source_ip.clone()),
    )
    .await?;
    let (records, next) = store::page(&db, f.before, &f.action, 50).await?;
    let rows = records
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
    let chain = store::last_verification(&db).await?.map(|v| ChainStatus {
        when: When::at(v.verified_at),
        verified: v,
    });
    let page = AuditPage {
        layout: Layout::new(gate.as_ref(), &user, "audit").await?,
        rows,
        chain,
        filter: f.action,
        next,
        undelivered: store::undelivered_notifications(&db).await?,
    };
    Ok(Html(page.render().map_err(anyhow::Error::from)?))
}

#[derive(Deserialize)]
struct VerifyForm {
    #[serde(default)]
    scope: String,
}

/// Verifies the records added since the last verification (or, with `scope=whole`, the whole
/// chain from its first record), records the result, and shows the page again.
async fn verify_page(
    State(db): State<Db>,
    user: CurrentUser,
    Form(f): Form<VerifyForm>,
) -> Result<Response, AppError> {
    user.require_audit_reader()?;
    store::verify_and_record(&db, &Actor::of(&user), f.scope == "whole").await?;
    Ok(Redirect::to("/audit").into_response())
}

/// The whole log as JSON Lines, one record per line, for offline verification; streamed a chunk
/// at a time.
async fn export(State(db): State<Db>, user: CurrentUser) -> Result<Response, AppError> {
    user.require_audit_reader()?;
    store::append_alone(
        &db,
        Entry::new(&Actor::of(&user), "audit.exported", "audit_log", "-")
            .source_ip(user.source_ip.clone()),
    )
    .await?;
    let db = db.clone();
    let chunks = futures_util::stream::unfold(Some(0_i64), move |after| {
        let db = db.clone();
        async move {
            let after = after?;
            match store::after(&db, after, store::CHUNK).await {
                Ok(records) if records.is_empty() => None,
                Ok(records) => {
                    let next = records.last().map(|r| r.seq);
                    let mut body = String::new();
                    for r in &records {
                        body.push_str(&serde_json::to_string(r).unwrap_or_default());
                        body.push('\n');
                    }
                    Some((Ok::<_, std::io::Error>(Bytes::from(body)), next))
                }
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "The audit export stopped.");
                    Some((Err(std::io::Error::other("the audit export stopped")), None))
                }
            }
        }
    });
    Ok((
        [
            ("content-type", "application/x-ndjson"),
            (
                "content-disposition",
                "attachment; filename=\"stackgate-audit.jsonl\"",
            ),
        ],
        Body::from_stream(chunks),
    )
        .into_response())
}

/// Verifies the whole chain (and records that it did).
async fn verify_api(
    State(db): State<Db>,
    ApiUser(user): ApiUser,
) -> Result<Json<super::Verification>, ApiError> {
    user.require_audit_reader()?;
    Ok(Json(
        store::verify_and_record(&db, &Actor::of(&user), true).await?,
    ))
}
