//! The catalog page and `GET /api/v1/blueprints`: the blueprints a team can request, with their
//! parameters (the newest published version of each). Generic over the application state: it
//! needs only the version library and the gate.

use std::sync::Arc;

use askama::Template;
use axum::extract::{FromRef, State};
use axum::response::Html;
use axum::routing::get;
use axum::{Json, Router};

use super::versions::Library;
use super::views::{BlueprintCard, CatalogPage};
use super::{Audience, Blueprint, ParamKind, ParamSpec};
use crate::error::AppError;
use crate::ids::EnvClass;
use crate::web::{ApiUser, CurrentUser, Gate, Layout};

pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Library>: FromRef<S>,
    Arc<dyn Gate>: FromRef<S>,
{
    Router::new()
        .route("/catalog", get(page))
        .route("/api/v1/blueprints", get(api))
}

async fn page(
    State(library): State<Arc<Library>>,
    State(gate): State<Arc<dyn Gate>>,
    user: CurrentUser,
) -> Result<Html<String>, AppError> {
    let catalog = library.published().await?;
    let blueprints = visible(&catalog, &user)
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

/// The blueprints this user may request: admin-only ones (account controls) for admins only.
fn visible<'a>(
    catalog: &'a [Arc<Blueprint>],
    user: &'a CurrentUser,
) -> impl Iterator<Item = &'a Blueprint> {
    catalog
        .iter()
        .map(|b| b.as_ref())
        .filter(|b| b.audience == Audience::Teams || user.roles.admin)
}

fn parameter_json(p: &ParamSpec, classes: &[EnvClass]) -> serde_json::Value {
    let kind = match &p.kind {
        ParamKind::Boolean => "boolean",
        ParamKind::Cidr => "cidr",
        ParamKind::Choice(_) => "choice",
        ParamKind::Integer { .. } => "integer",
        ParamKind::String { .. } => "string",
    };
    let options: Vec<&str> = match &p.kind {
        ParamKind::Choice(options) => options.iter().map(|(v, _)| v.as_str()).collect(),
        _ => Vec::new(),
    };
    // What the parameter takes when it is left out, per class (absent: required there).
    let defaults: serde_json::Map<String, serde_json::Value> = classes
        .iter()
        .filter_map(|c| {
            let value = p.check(&p.default_for(*c)?).ok()?;
            Some((c.to_string(), value))
        })
        .collect();
    serde_json::json!({
        "name": p.name, "label": p.label, "help": p.help, "kind": kind,
        "options": options, "defaults": defaults,
    })
}

async fn api(
    State(library): State<Arc<Library>>,
    ApiUser(user): ApiUser,
) -> Result<Json<serde_json::Value>, AppError> {
    let catalog = library.published().await?;
    let list: Vec<_> = visible(&catalog, &user)
        .map(|b| {
            serde_json::json!({
                "slug": b.slug, "name": b.name, "version": b.version, "summary": b.summary,
                "digest": b.digest, "kind": b.kind, "audience": b.audience,
                "classes": b.classes.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
                "inputs": b.inputs,
                "examples": b.examples.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
                "parameters": b.parameters.iter().map(|p| parameter_json(p, &b.classes))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(serde_json::json!({ "blueprints": list })))
}
