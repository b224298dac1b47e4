//! Request pages and API: the new-request form with live validation and preview, the list of a
//! team's requests, and `POST`/`GET /api/v1/requests`. The request page itself (with its review,
//! changes and deployment) is in `approvals`, which sees all three.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;

use super::form::{self, Check};
use super::input::NewRequest;
use super::store::{self, Cursor, ListQuery, Part};
use super::views::{NewRequestForm, NewRequestPage, RequestListPage, RequestRow};
use super::{RequestStatus, actions};
use crate::error::{ApiError, AppError};
use crate::state::AppState;
use crate::web::{ApiJson, ApiUser, BADGE_CAP, CurrentUser, Layout, badge};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/requests/new", get(new_form))
        .route("/requests/new/preview", post(preview))
        .route("/requests", get(list_page).post(create))
        .route("/api/v1/requests", get(list_api).post(create_api))
        .route("/api/v1/environments", get(environments_api))
}

fn render(t: &impl Template) -> Result<String, AppError> {
    t.render().map_err(|e| AppError::Internal(e.into()))
}

async fn new_form(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(raw): Query<BTreeMap<String, String>>,
) -> Result<Html<String>, AppError> {
    let check = if raw.contains_key("name") {
        Check::All
    } else {
        Check::None
    };
    let form = form::build(&state, &user, &raw, check).await?;
    let layout = Layout::new(state.gate.as_ref(), &user, "catalog").await?;
    Ok(Html(render(&NewRequestPage { layout, form })?))
}

/// Validates and previews as the user types (htmx swaps the form) or on the Preview button.
async fn preview(
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    Form(raw): Form<BTreeMap<String, String>>,
) -> Result<Response, AppError> {
    let live = headers.contains_key("hx-request");
    let check = if live { Check::AsYouType } else { Check::All };
    let mut form = form::build(&state, &user, &raw, check).await?;
    if live {
        // Typing in the form refreshes only its feedback; changing the account re-renders it.
        form.oob = headers
            .get("hx-target")
            .is_none_or(|t| t.as_bytes() != b"request-form-wrap");
        return Ok(Html(render(&NewRequestForm { form })?).into_response());
    }
    let layout = Layout::new(state.gate.as_ref(), &user, "catalog").await?;
    Ok(Html(render(&NewRequestPage { layout, form })?).into_response())
}

async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    Form(raw): Form<BTreeMap<String, String>>,
) -> Result<Response, AppError> {
    match actions::submit(&state, &user, &NewRequest::from_form(&raw)).await {
        Ok((id, _)) => Ok(Redirect::to(&format!("/requests/{id}")).into_response()),
        Err(AppError::Invalid(_)) => {
            let form = form::build(&state, &user, &raw, Check::All).await?;
            let layout = Layout::new(state.gate.as_ref(), &user, "catalog").await?;
            let html = render(&NewRequestPage { layout, form })?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, Html(html)).into_response())
        }
        Err(e) => Err(e),
    }
}

/// The statuses of a request still on its way.
pub const OPEN: [RequestStatus; 4] = [
    RequestStatus::Draft,
    RequestStatus::PendingApproval,
    RequestStatus::Approved,
    RequestStatus::Deploying,
];

fn cursor(raw: &str) -> Result<Option<Cursor>, AppError> {
    match raw {
        "" => Ok(None),
        c => Cursor::decode(c).map(Some).ok_or_else(|| {
            AppError::BadRequest("This page link is not valid; start from the first page.".into())
        }),
    }
}

#[derive(Deserialize)]
struct ListParams {
    #[serde(default)]
    view: String,
    #[serde(default)]
    cursor: String,
}

/// Every request of the user's teams, a page at a time: `view` is `open`, `deployed` or all.
async fn list_page(
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
    let after = cursor(&p.cursor)?;
    let scope = user.scope();
    let review = user.review_scope();
    let mut q = ListQuery::new(scope.as_deref(), statuses);
    q.after = after.as_ref();
    q.limit = 50;
    let mut parts = vec![
        Part::List(q),
        Part::Count(ListQuery::new(scope.as_deref(), statuses), 1000),
    ];
    if user.roles.is_approver() {
        parts.push(Part::Count(
            store::inbox_query(&user.id, review.as_deref()),
            BADGE_CAP,
        ));
    }
    let mut read = store::batch(&state.db, &parts).await?;
    let inbox = if user.roles.is_approver() {
        read.counts.pop().unwrap_or(0)
    } else {
        0
    };
    let count = read.counts.pop().unwrap_or(0);
    let (items, next) = read.lists.pop().unwrap_or_default();
    let page = RequestListPage {
        layout: Layout::with_inbox(&user, "home", inbox),
        view: p.view,
        heading,
        rows: items.iter().map(RequestRow::from).collect(),
        next: next.map(|c| c.encode()),
        count: if count >= 1000 {
            "1000+".into()
        } else {
            badge(count)
        },
    };
    Ok(Html(render(&page)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiListParams {
    status: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

/// A page of the requests the user may see, newest first; `next` is the cursor of the page
/// after it (absent on the last page).
async fn list_api(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Query(p): Query<ApiListParams>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let statuses = match p.status.as_deref() {
        None | Some("") => vec![],
        Some(s) => vec![
            RequestStatus::parse(s)
                .ok_or_else(|| AppError::BadRequest(format!("unknown status '{s}'")))?,
        ],
    };
    let after = cursor(p.cursor.as_deref().unwrap_or_default())?;
    let limit = p.limit.unwrap_or(50);
    if !(1..=store::MAX_PAGE).contains(&limit) {
        return Err(
            AppError::BadRequest(format!("limit: between 1 and {}", store::MAX_PAGE)).into(),
        );
    }
    let scope = user.scope();
    let mut q = ListQuery::new(scope.as_deref(), &statuses);
    q.after = after.as_ref();
    q.limit = limit;
    let (rows, next) = store::list(&state.db, &q).await?;
    Ok(Json(serde_json::json!({
        "requests": rows,
        "next": next.map(|c| c.encode()),
    })))
}

/// The deployed environments of the caller's teams (every team for those who see all), each
/// with the outputs workloads take as inputs.
async fn environments_api(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
) -> Result<Json<serde_json::Value>, ApiError> {
    let scope = user.scope();
    let list = store::environments::list(&state.db, scope.as_deref()).await?;
    Ok(Json(serde_json::json!({ "environments": list })))
}

async fn create_api(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiJson(input): ApiJson<NewRequest>,
) -> Result<Response, ApiError> {
    let (id, _) = actions::submit(&state, &user, &input).await?;
    let r = super::visible(&state.db, &user, &id).await?;
    Ok((StatusCode::CREATED, Json(r)).into_response())
}
