//! Home and catalog handlers.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::response::Html;
use axum::routing::get;

use super::RequestRow;
use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::http::layout::{Layout, inbox};
use crate::requests::{self, RequestStatus};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/catalog", get(catalog))
}

#[derive(Template)]
#[template(path = "home/index.html")]
struct HomePage {
    layout: Layout,
    teams: Vec<String>,
    environments: Vec<RequestRow>,
    open: Vec<RequestRow>,
    waiting: Vec<RequestRow>,
    recent: Vec<RequestRow>,
}

async fn home(State(state): State<AppState>, user: CurrentUser) -> Result<Html<String>, AppError> {
    let teams = user.visible_teams();
    let scope = if user.sees_all_teams() {
        None
    } else {
        Some(teams.as_slice())
    };
    let rows =
        |v: Vec<requests::ServiceRequest>| v.iter().map(RequestRow::from).collect::<Vec<_>>();
    let environments =
        rows(requests::store::list(&state.db, scope, &[RequestStatus::Deployed], 50).await?);
    let open = rows(
        requests::store::list(
            &state.db,
            scope,
            &[
                RequestStatus::Draft,
                RequestStatus::PendingApproval,
                RequestStatus::Approved,
                RequestStatus::Deploying,
            ],
            50,
        )
        .await?,
    );
    let waiting = if user.roles.is_approver() {
        rows(inbox(&state, &user).await?)
    } else {
        vec![]
    };
    let recent = rows(requests::store::list(&state.db, scope, &[], 10).await?);
    let page = HomePage {
        layout: Layout::new(&state, &user, "home").await?,
        teams,
        environments,
        open,
        waiting,
        recent,
    };
    Ok(Html(page.render().map_err(anyhow::Error::from)?))
}

/// A blueprint as the catalog lists it.
struct BlueprintCard {
    slug: String,
    name: String,
    version: String,
    summary: String,
    digest_short: String,
    parameters: Vec<String>,
}

#[derive(Template)]
#[template(path = "home/catalog.html")]
struct CatalogPage {
    layout: Layout,
    blueprints: Vec<BlueprintCard>,
}

async fn catalog(
    State(state): State<AppState>,
    user: CurrentUser,
) -> Result<Html<String>, AppError> {
    let blueprints = state
        .catalog
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
        layout: Layout::new(&state, &user, "catalog").await?,
        blueprints,
    };
    Ok(Html(page.render().map_err(anyhow::Error::from)?))
}
