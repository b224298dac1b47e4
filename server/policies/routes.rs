//! The approval policy page (a form per class, and per risk flag) and the API
//! (`GET`/`PUT /api/v1/policies/approvals`). Admins only: the page answers 403 to other users,
//! the API 404.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Json, Router};
use serde_json::{Value, json};

use super::views::{PoliciesPage, VersionRow, inputs};
use super::{ApprovalRules, CLASSES, Policy, store};
use crate::audit::Actor;
use crate::error::{ApiError, AppError, FieldError};
use crate::state::AppState;
use crate::web::{ApiJson, ApiUser, CurrentUser, Layout};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/policies", get(page).post(save_page))
        .route("/api/v1/policies/approvals", get(show_api).put(save_api))
}

fn require_admin(user: &CurrentUser) -> Result<(), AppError> {
    if user.roles.admin {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "Only admins can change the approval policies.".into(),
        ))
    }
}

/// The current version; the settings' rules (as version 1) should none be stored yet.
async fn current(state: &AppState) -> Result<Policy, AppError> {
    Ok(store::current(&state.db).await?.unwrap_or_else(|| Policy {
        version: 1,
        rules: ApprovalRules::from_config(&state.config),
        created_by_name: "settings".into(),
        created_at: 0,
    }))
}

async fn render_page(
    state: &AppState,
    user: &CurrentUser,
    shown: Option<(BTreeMap<String, String>, Vec<FieldError>)>,
) -> Result<Html<String>, AppError> {
    let now = current(state).await?;
    let (mut classes, mut routes) = inputs(&now.rules);
    let errors = match shown {
        None => Vec::new(),
        // What the admin typed stays in the form, next to the messages.
        Some((form, errors)) => {
            for c in &mut classes {
                c.approvals = form
                    .get(&format!("{}_approvals", c.class))
                    .cloned()
                    .unwrap_or_default();
                c.groups = form
                    .get(&format!("{}_groups", c.class))
                    .cloned()
                    .unwrap_or_default();
            }
            for r in &mut routes {
                r.group = form
                    .get(&format!("route_{}", r.flag))
                    .cloned()
                    .unwrap_or_default();
            }
            errors
        }
    };
    let page = PoliciesPage {
        layout: Layout::new(state.gate.as_ref(), user, "admin").await?,
        version: now.version,
        classes,
        routes,
        history: store::recent(&state.db, 20)
            .await?
            .iter()
            .map(VersionRow::of)
            .collect(),
        errors,
    };
    Ok(Html(page.render().map_err(anyhow::Error::from)?))
}

async fn page(State(state): State<AppState>, user: CurrentUser) -> Result<Html<String>, AppError> {
    require_admin(&user)?;
    render_page(&state, &user, None).await
}

/// The form's fields as the API's JSON: `<class>_approvals`, `<class>_groups` (comma-separated;
/// an empty name between commas stays, to be refused), `route_<flag>` (empty: no route).
fn form_rules(form: &BTreeMap<String, String>) -> Value {
    let mut classes = serde_json::Map::new();
    for c in CLASSES {
        let approvals = form
            .get(&format!("{c}_approvals"))
            .map(|a| a.trim())
            .unwrap_or_default();
        let groups = form
            .get(&format!("{c}_groups"))
            .map(|g| g.trim())
            .unwrap_or_default();
        let groups: Vec<&str> = if groups.is_empty() {
            Vec::new()
        } else {
            groups.split(',').map(str::trim).collect()
        };
        let approvals = approvals.parse::<i64>().map_or(Value::Null, Value::from);
        classes.insert(
            c.as_str().into(),
            json!({ "approvals": approvals, "groups": groups }),
        );
    }
    let routes: serde_json::Map<String, Value> = form
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("route_")?.to_string(), v.trim())))
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k, Value::from(v)))
        .collect();
    json!({ "classes": classes, "routes": routes })
}

async fn save_page(
    State(state): State<AppState>,
    user: CurrentUser,
    Form(form): Form<BTreeMap<String, String>>,
) -> Result<Response, AppError> {
    require_admin(&user)?;
    match ApprovalRules::parse(&form_rules(&form)).and_then(|r| r.reachable(&state.config)) {
        Ok(rules) => {
            store::save(&state.db, &Actor::of(&user), user.source_ip.clone(), &rules).await?;
            Ok(Redirect::to("/admin/policies").into_response())
        }
        Err(errors) => {
            let html = render_page(&state, &user, Some((form, errors))).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, html).into_response())
        }
    }
}

fn api_admin(user: &CurrentUser) -> Result<(), ApiError> {
    require_admin(user).map_err(|_| ApiError(AppError::NotFound))
}

async fn show_api(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
) -> Result<Json<Policy>, ApiError> {
    api_admin(&user)?;
    Ok(Json(current(&state).await?))
}

async fn save_api(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<Policy>, ApiError> {
    api_admin(&user)?;
    let rules = ApprovalRules::parse(&body)
        .and_then(|r| r.reachable(&state.config))
        .map_err(AppError::Invalid)?;
    let saved = store::save(&state.db, &Actor::of(&user), user.source_ip.clone(), &rules).await?;
    tracing::info!(
        policy.version = saved.version,
        "An admin changed the approval rules."
    );
    Ok(Json(saved))
}
