//! The home page: a team's environments, its open requests, what waits for the user's review and
//! recent activity, every section and the inbox badge read in one statement.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::response::Html;
use axum::routing::get;

use super::views::HomePage;
use crate::error::AppError;
use crate::requests::RequestStatus;
use crate::requests::routes::OPEN;
use crate::requests::store::{self as requests_store, ListQuery, Part, Summary, inbox_query};
use crate::requests::views::RequestRow;
use crate::state::AppState;
use crate::web::{BADGE_CAP, CurrentUser, Layout};

pub fn router() -> Router<AppState> {
    Router::new().route("/", get(home))
}

/// Rows each home section shows; the full lists are paginated at `/requests`.
const SECTION_ROWS: i64 = 10;

fn rows(v: &[Summary]) -> Vec<RequestRow> {
    v.iter().map(RequestRow::from).collect()
}

async fn home(State(state): State<AppState>, user: CurrentUser) -> Result<Html<String>, AppError> {
    let teams = user.visible_teams();
    let scope = user.scope();
    let section = |statuses: &'static [RequestStatus]| {
        let mut q = ListQuery::new(scope.as_deref(), statuses);
        q.limit = SECTION_ROWS;
        Part::List(q)
    };
    let review = user.review_scope();
    let mut parts = vec![
        section(&[RequestStatus::Deployed]),
        section(&OPEN),
        section(&[]),
    ];
    if user.roles.is_approver() {
        let mut waiting = inbox_query(&user.id, review.as_deref());
        waiting.limit = SECTION_ROWS;
        parts.push(Part::List(waiting.clone()));
        parts.push(Part::Count(waiting, BADGE_CAP));
    }
    // Every section and the inbox badge: one statement.
    let mut read = requests_store::batch(&state.db, &parts).await?;
    let inbox = read.counts.pop().unwrap_or(0);
    let (waiting, more_waiting) = if user.roles.is_approver() {
        read.lists.pop().unwrap_or_default()
    } else {
        Default::default()
    };
    let mut lists = read.lists.into_iter();
    let (environments, more_env) = lists.next().unwrap_or_default();
    let (open, more_open) = lists.next().unwrap_or_default();
    let (recent, _) = lists.next().unwrap_or_default();
    let layout = Layout::with_inbox(&user, "home", inbox);
    let page = HomePage {
        waiting_badge: layout.inbox_badge.clone(),
        layout,
        teams,
        environments: rows(&environments),
        more_environments: more_env.is_some(),
        open: rows(&open),
        more_open: more_open.is_some(),
        waiting: rows(&waiting),
        more_waiting: more_waiting.is_some(),
        recent: rows(&recent),
    };
    Ok(Html(page.render().map_err(anyhow::Error::from)?))
}
