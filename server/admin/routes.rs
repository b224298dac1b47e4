//! `GET /admin`: the admin front page (admins only; others get 403).

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::response::Html;
use axum::routing::get;

use super::views::AdminPage;
use crate::error::AppError;
use crate::state::AppState;
use crate::web::{CurrentUser, Layout};

pub fn router() -> Router<AppState> {
    Router::new().route("/admin", get(page))
}

async fn page(State(state): State<AppState>, user: CurrentUser) -> Result<Html<String>, AppError> {
    if !user.roles.admin {
        return Err(AppError::Forbidden(
            "Only admins can open the admin pages.".into(),
        ));
    }
    let page = AdminPage {
        layout: Layout::new(state.gate.as_ref(), &user, "admin").await?,
        areas: super::AREAS,
    };
    Ok(Html(page.render().map_err(anyhow::Error::from)?))
}
