//! The catalog page and `GET /api/v1/blueprints`: the blueprints a team can request, with their
//! parameters. Generic over the application state: it needs only the catalog and the gate.

use std::sync::Arc;

use askama::Template;
use axum::extract::{FromRef, State};
use axum::response::Html;
use axum::routing::get;
use axum::{Json, Router};

use super::Catalog;
use super::views::{BlueprintCard, CatalogPage};
use crate::error::AppError;
use crate::web::{ApiUser, CurrentUser, Gate, Layout};

pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Catalog>: FromRef<S>,
    Arc<dyn Gate>: FromRef<S>,
{
    Router::new()
        .route("/catalog", get(page))
        .route("/api/v1/blueprints", get(api))
}

async fn page(
    State(catalog): State<Arc<Catalog>>,
    State(gate): State<Arc<dyn Gate>>,
    user: CurrentUser,
) -> Result<Html<String>, AppError> {
    let blueprints = catalog
        .list()
        .iter()
        .map(|b| BlueprintCard {
            slug: b.slug.clone(),
            name: b.name.clone(),
            version: b.version.clone(),
            summary: b.summary.clone(),
            digest_short: b.digest.chars().take(12).collect(),
            parameters: b.parameters.iter().map(|p| p.label.clone()).collect(),
        })
        .collect();
    let page = CatalogPage {
        layout: Layout::new(gate.as_ref(), &user, "catalog").await?,
        blueprints,
    };
    Ok(Html(page.render().map_err(anyhow::Error::from)?))
}

async fn api(State(catalog): State<Arc<Catalog>>, ApiUser(_): ApiUser) -> Json<serde_json::Value> {
    let list: Vec<_> = catalog
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
