//! Home, the catalog page, and the request list the home sections link to.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::Html;
use axum::routing::get;
use serde::Deserialize;

use super::RequestRow;
use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::http::layout::{BADGE_CAP, Layout, badge};
use crate::requests::RequestStatus;
use crate::requests::store::{self as requests_store, Cursor, ListQuery, Part};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/catalog", get(catalog))
        .route("/requests", get(request_list))
}

/// Rows each home section shows; the full lists are paginated at `/requests`.
const SECTION_ROWS: i64 = 10;

/// The statuses of a request still on its way.
pub const OPEN: [RequestStatus; 4] = [
    RequestStatus::Draft,
    RequestStatus::PendingApproval,
    RequestStatus::Approved,
    RequestStatus::Deploying,
];

#[derive(Template)]
#[template(path = "home/index.html")]
struct HomePage {
    layout: Layout,
    teams: Vec<String>,
    environments: Vec<RequestRow>,
    more_environments: bool,
    open: Vec<RequestRow>,
    more_open: bool,
    waiting: Vec<RequestRow>,
    more_waiting: bool,
    waiting_badge: String,
    recent: Vec<RequestRow>,
}

fn rows(v: &[requests_store::Summary]) -> Vec<RequestRow> {
    v.iter().map(RequestRow::from).collect()
}

/// The teams whose requests `user` sees: `None` for every team.
pub fn scope(user: &CurrentUser) -> Option<Vec<String>> {
    (!user.sees_all_teams()).then(|| user.visible_teams())
}

async fn home(State(state): State<AppState>, user: CurrentUser) -> Result<Html<String>, AppError> {
    let teams = user.visible_teams();
    let scope = scope(&user);
    let section = |statuses: &'static [RequestStatus]| {
        let mut q = ListQuery::new(scope.as_deref(), statuses);
        q.limit = SECTION_ROWS;
        Part::List(q)
    };
    let review = crate::approvals::review_scope(&user);
    let mut parts = vec![
        section(&[RequestStatus::Deployed]),
        section(&OPEN),
        section(&[]),
    ];
    if user.roles.is_approver() {
        let mut waiting = crate::approvals::inbox_query(&user, review.as_deref());
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

#[derive(Deserialize)]
struct ListParams {
    #[serde(default)]
    view: String,
    #[serde(default)]
    cursor: String,
}

#[derive(Template)]
#[template(path = "home/requests.html")]
struct RequestListPage {
    layout: Layout,
    view: String,
    heading: &'static str,
    rows: Vec<RequestRow>,
    next: Option<String>,
    count: String,
}

/// Every request of the user's teams, a page at a time: `view` is `open`, `deployed` or all.
async fn request_list(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(p): Query<ListParams>,
) -> Result<Html<String>, AppError> {
    let (statuses, heading): (&[RequestStatus], _) = match p.view.as_str() {
        "open" => (&OPEN, "Open requests"),
        "deployed" => (&[RequestStatus::Deployed], "Deployed"),
        "" | "all" => (&[], "All requests"),
        other => return Err(AppError::BadRequest(format!("unknown view '{other}'"))),
    };
    let cursor = match p.cursor.as_str() {
        "" => None,
        c => Some(Cursor::decode(c).ok_or_else(|| {
            AppError::BadRequest("This page link is not valid; start from the first page.".into())
        })?),
    };
    let scope = scope(&user);
    let mut q = ListQuery::new(scope.as_deref(), statuses);
    q.after = cursor.as_ref();
    q.limit = 50;
    let (items, next) = requests_store::list(&state.db, &q).await?;
    let count =
        requests_store::count(&state.db, &ListQuery::new(scope.as_deref(), statuses), 1000).await?;
    let page = RequestListPage {
        layout: Layout::new(&state, &user, "home").await?,
        view: p.view,
        heading,
        rows: rows(&items),
        next: next.map(|c| c.encode()),
        count: if count >= 1000 {
            "1000+".into()
        } else {
            badge(count)
        },
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
