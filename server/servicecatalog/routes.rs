//! The Service Catalog publication for admins: `GET /admin/service-catalog` (the portfolio as last
//! published), `POST /admin/service-catalog/publish` (a plain form), and
//! `POST /api/v1/service-catalog/publish`. Pages answer others 403, the API 404.

use axum::extract::State;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::publish::{Publication, PublishError, publish_configured};
use super::store;
use super::views::ServiceCatalogPage;
use crate::audit::Actor;
use crate::error::{ApiError, AppError};
use crate::state::AppState;
use crate::web::{ApiUser, CurrentUser, Layout, When};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/service-catalog", get(page))
        .route("/admin/service-catalog/publish", post(publish_page))
        .route("/api/v1/service-catalog/publish", post(publish_api))
}

fn require_admin(user: &CurrentUser) -> Result<(), AppError> {
    if user.roles.admin {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "Only platform admins publish the catalog to AWS Service Catalog.".into(),
        ))
    }
}

async fn publish(state: &AppState, user: &CurrentUser) -> Result<Publication, AppError> {
    let actor = Actor::of(user);
    let published = publish_configured(
        &state.db,
        &state.config,
        &state.library,
        state.policy.clone(),
        &actor,
        user.source_ip.clone(),
    )
    .await;
    match published {
        Ok(p) => {
            tracing::info!(
                portfolio.id = %p.portfolio_id,
                created = p.created.len(),
                "An admin published the catalog to AWS Service Catalog."
            );
            Ok(p)
        }
        Err(e @ PublishError::NoBucket) => Err(AppError::Conflict(e.to_string())),
        Err(PublishError::Failed(e)) => Err(AppError::Unavailable(format!(
            "Publishing to AWS Service Catalog failed (what was created so far stays; publish \
             again to finish): {e:#}"
        ))),
    }
}

async fn page(State(state): State<AppState>, user: CurrentUser) -> Result<Html<String>, AppError> {
    require_admin(&user)?;
    let last = store::last(&state.db).await?;
    let page = ServiceCatalogPage {
        layout: Layout::new(state.gate.as_ref(), &user, "admin").await?,
        portfolio_name: state.config.service_catalog_portfolio.clone(),
        bucket: state.config.service_catalog_bucket.clone(),
        when: last.as_ref().map(|l| When::at(l.at)),
        last,
    };
    let html = askama::Template::render(&page).map_err(|e| AppError::Internal(e.into()))?;
    Ok(Html(html))
}

async fn publish_page(
    State(state): State<AppState>,
    user: CurrentUser,
) -> Result<Response, AppError> {
    require_admin(&user)?;
    publish(&state, &user).await?;
    Ok(Redirect::to("/admin/service-catalog").into_response())
}

async fn publish_api(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !user.roles.admin {
        return Err(AppError::NotFound.into());
    }
    let p = publish(&state, &user).await?;
    Ok(Json(serde_json::json!({
        "portfolio_id": p.portfolio_id, "portfolio_name": p.portfolio_name,
        "created": p.created, "unchanged": p.unchanged, "deprecated": p.deprecated,
        "shared_with": p.shared_with, "skipped": p.skipped, "products": p.products,
    })))
}
