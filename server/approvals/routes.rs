//! The request page (the review: request, changes, checks, conversation, deployment, decisions),
//! the decisions and the cancel, as pages and in the API side by side, and the approvals inbox.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;

use super::actions::DecisionInput;
use super::views::{
    ApprovalView, ChangeSetPanel, EmergencyView, InboxPage, ShowPage, TimelineItem, display_value,
    resource_summary, stored_policy_rows, timeline_text,
};
use super::{Decision, DecisionOutcome, actions, approval_hash, quorum, refusal, store};
use crate::auth::sessions::confirm_groups;
use crate::deployments::{self, change_set};
use crate::error::{ApiError, AppError};
use crate::ids::EnvClass;
use crate::requests::store::environments;
use crate::requests::store::{self as requests_store, Cursor, Part, inbox_query};
use crate::requests::views::RequestRow;
use crate::requests::{self, RequestStatus, ServiceRequest};
use crate::state::AppState;
use crate::web::{ApiJson, ApiUser, BADGE_CAP, CurrentUser, Layout, When};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/requests/{id}", get(show))
        .route("/requests/{id}/cancel", post(cancel))
        .route("/requests/{id}/emergency", post(emergency))
        .route("/requests/{id}/emergency-review", post(emergency_review))
        .route("/requests/{id}/{decision}", post(decide))
        .route("/approvals", get(inbox))
        .route("/api/v1/requests/{id}", get(show_api))
        .route("/api/v1/requests/{id}/cancel", post(cancel_api))
        .route("/api/v1/requests/{id}/emergency", post(emergency_api))
        .route(
            "/api/v1/requests/{id}/emergency-review",
            post(emergency_review_api),
        )
        .route("/api/v1/requests/{id}/{decision}", post(decide_api))
}

fn render(t: &impl Template) -> Result<String, AppError> {
    t.render().map_err(|e| AppError::Internal(e.into()))
}

/// The conversation tab: the request's audit records, oldest first.
async fn timeline(state: &AppState, r: &ServiceRequest) -> Result<Vec<TimelineItem>, AppError> {
    Ok(crate::audit::store::for_object(&state.db, "request", &r.id)
        .await?
        .into_iter()
        .map(|rec| TimelineItem {
            actor: rec.actor_name.clone(),
            text: timeline_text(&rec.action, &rec.outcome),
            detail: rec.detail["comment"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            kind: rec.action.replace('.', "-"),
            when: When::at(rec.at),
        })
        .collect())
}

/// The request's current change set as the review shows it (with the diff, computed on the CPU
/// pool), and its deployment row.
async fn change_set_panel(
    state: &AppState,
    r: &ServiceRequest,
    latest: Option<&deployments::Deployment>,
) -> Result<Option<ChangeSetPanel>, AppError> {
    let Some(d) = latest.filter(|d| d.change_set_arn.is_some()) else {
        return Ok(None);
    };
    let deployed = requests_store::deployed_params(&state.db, r).await?;
    let requested: BTreeMap<String, String> = r
        .params
        .iter()
        .map(|(k, v)| (k.clone(), display_value(v)))
        .collect();
    let diff = match d.base_template.clone() {
        Some(base) => {
            let new = r.template_body.clone();
            state
                .cpu
                .run(move || change_set::template_diff(&base, &new))
                .await?
        }
        None => String::new(),
    };
    Ok(Some(ChangeSetPanel {
        arn: d.change_set_arn.clone().unwrap_or_default(),
        status: change_set::status(d).to_string(),
        changes: d.changes.clone(),
        is_update: d.base_template.is_some(),
        diff,
        params: deployed
            .map(|p| change_set::param_changes(&p, &requested))
            .unwrap_or_default(),
    }))
}

async fn show_page(
    state: &AppState,
    user: &CurrentUser,
    r: ServiceRequest,
    action_error: Option<String>,
) -> Result<ShowPage, AppError> {
    let decisions = store::for_request(&state.db, &r.id).await?;
    let deps = deployments::store::for_request(&state.db, &r.id).await?;
    let latest = deps.first();
    let arn = latest
        .and_then(|d| d.change_set_arn.clone())
        .unwrap_or_default();
    let bound = approval_hash(&r.content_hash, &arn);
    let current = |a: &&super::Approval| a.content_hash == bound;
    let approvers = store::approvers(state.db.pool(), &r.id, &bound).await?;
    let now = crate::db::now_ms();
    let q = quorum(&r, &approvers, &state.config, now);
    let groups = store::groups_of(state.db.pool(), &user.id).await?;
    let refusal = refusal(user, &groups, &r, &state.config);
    let already = decisions
        .iter()
        .any(|a| current(&a) && a.approver_id == user.id);
    let pending = r.status == RequestStatus::PendingApproval;
    let decide_note = match (&refusal, pending, already) {
        (_, false, _) => None,
        (_, true, true) => Some("You have decided on this change set.".to_string()),
        (Some((action, msg)), true, false) if *action == "approval.denied_sod" => Some(msg.clone()),
        _ => None,
    };
    let environment = match &r.environment_id {
        Some(id) => environments::linked(&state.db, id).await?,
        None => None,
    };
    let workloads = if r.kind == "environment" {
        environments::workloads(&state.db, &r.id).await?
    } else {
        Vec::new()
    };
    let held_until = latest
        .filter(|d| {
            d.status == deployments::DeploymentStatus::Queued
                && d.step == deployments::Step::ChangeSetReady
                && d.next_attempt_at > now
        })
        .map(|d| When::at(d.next_attempt_at));
    let emergency = r.emergency.as_ref().map(|e| EmergencyView {
        released_by: e.released_by_name.clone(),
        reason: e.reason.clone(),
        when: When::at(e.released_at),
        reviewed_by: e.reviewed_by_name.clone(),
        review_comment: e.review_comment.clone().unwrap_or_default(),
    });
    let can_review_emergency = r
        .emergency
        .as_ref()
        .is_some_and(|e| e.reviewed_at.is_none() && e.released_by != user.id && refusal.is_none());
    Ok(ShowPage {
        layout: Layout::new(state.gate.as_ref(), user, "home").await?,
        environment,
        workloads,
        blueprint: format!("{}@{}", r.blueprint_slug, r.blueprint_version),
        content_hash_short: r.content_hash.chars().take(12).collect(),
        template_digest: r.template_digest.clone(),
        status_reason: r.status_reason.clone(),
        params: r
            .params
            .iter()
            .map(|(k, v)| (k.clone(), display_value(v)))
            .collect(),
        resources: resource_summary(&r.template_body),
        template_body: crate::catalog::render::readable(&r.template_body),
        policy: stored_policy_rows(&r.policy),
        approvals: decisions
            .iter()
            .map(|a| ApprovalView {
                approver_name: a.approver_name.clone(),
                decision: a.decision.clone(),
                comment: a.comment.clone(),
                digest_short: a.content_hash.chars().take(12).collect(),
                change_set_short: a
                    .change_set_arn
                    .as_deref()
                    .and_then(|a| a.rsplit('/').next())
                    .unwrap_or_default()
                    .chars()
                    .take(12)
                    .collect(),
                current: current(&a),
                when: When::at(a.created_at),
            })
            .collect(),
        required: q.need as u32,
        rule: q.rule(),
        policy_version: q.policy_version,
        approved_count: q.have,
        needs: q.needs(),
        risk_flags: r
            .risk_flags
            .iter()
            .map(|f| (f.as_str().to_string(), f.label().to_string()))
            .collect(),
        change_set: change_set_panel(state, &r, latest).await?,
        held_until,
        emergency,
        can_release_emergency: user.roles.admin && pending && !arn.is_empty(),
        can_review_emergency,
        timeline: timeline(state, &r).await?,
        can_decide: pending && refusal.is_none() && !already && !arn.is_empty(),
        decide_note,
        can_cancel: (r.requester_id == user.id || user.roles.admin)
            && matches!(
                r.status,
                RequestStatus::Preparing | RequestStatus::PendingApproval | RequestStatus::Approved
            ),
        action_error,
        dep: deployments::routes::panel(&state.db, &r).await?,
        r: RequestRow::from(&r),
    })
}

async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Html<String>, AppError> {
    let r = requests::visible(&state.db, &user, &id).await?;
    Ok(Html(render(&show_page(&state, &user, r, None).await?)?))
}

#[derive(Deserialize)]
struct CommentForm {
    #[serde(default)]
    comment: String,
    #[serde(default)]
    change_set_arn: String,
}

#[derive(Deserialize)]
struct EmergencyForm {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    change_set_arn: String,
}

/// Runs an action, then shows the request again: a redirect on success, the page with the
/// error next to the review panel (and its status code) on failure.
async fn after_action(
    state: &AppState,
    user: &CurrentUser,
    id: &str,
    result: Result<(), AppError>,
) -> Result<Response, AppError> {
    let message = match result {
        Ok(()) => return Ok(Redirect::to(&format!("/requests/{id}")).into_response()),
        Err(e @ (AppError::Forbidden(_) | AppError::Conflict(_) | AppError::Invalid(_))) => e,
        Err(other) => return Err(other),
    };
    let status = message.status();
    let text = match &message {
        AppError::Invalid(errors) => errors
            .iter()
            .map(|e| e.message.clone())
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    };
    let r = requests::visible(&state.db, user, id).await?;
    let page = show_page(state, user, r, Some(text)).await?;
    Ok((status, Html(render(&page)?)).into_response())
}

/// Approve or reject (the form's action names which). A decision counts only with roles the
/// IdP confirms now.
async fn decide(
    State(state): State<AppState>,
    mut user: CurrentUser,
    Path((id, decision)): Path<(String, String)>,
    Form(f): Form<CommentForm>,
) -> Result<Response, AppError> {
    let decision = Decision::from_path(&decision).ok_or(AppError::NotFound)?;
    confirm_groups(&state.auth, &mut user, &format!("/requests/{id}")).await?;
    let input = DecisionInput {
        decision,
        comment: &f.comment,
        change_set_arn: Some(&f.change_set_arn),
    };
    let result = actions::decide(&state, &user, &id, input).await;
    after_action(&state, &user, &id, result.map(|_| ())).await
}

/// Break-glass: an admin releases the change without approvals, with a reason.
async fn emergency(
    State(state): State<AppState>,
    mut user: CurrentUser,
    Path(id): Path<String>,
    Form(f): Form<EmergencyForm>,
) -> Result<Response, AppError> {
    confirm_groups(&state.auth, &mut user, &format!("/requests/{id}")).await?;
    let result =
        actions::release_emergency(&state, &user, &id, &f.reason, Some(&f.change_set_arn)).await;
    after_action(&state, &user, &id, result.map(|_| ())).await
}

/// A second person signs off an emergency release.
async fn emergency_review(
    State(state): State<AppState>,
    mut user: CurrentUser,
    Path(id): Path<String>,
    Form(f): Form<CommentForm>,
) -> Result<Response, AppError> {
    confirm_groups(&state.auth, &mut user, &format!("/requests/{id}")).await?;
    let result = actions::review_emergency(&state, &user, &id, &f.comment).await;
    after_action(&state, &user, &id, result).await
}

async fn cancel(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let result = actions::cancel(&state, &user, &id).await;
    after_action(&state, &user, &id, result).await
}

#[derive(Deserialize)]
struct InboxQuery {
    #[serde(default)]
    class: String,
    #[serde(default)]
    cursor: String,
}

/// Requests waiting for the user's review, oldest first, a page at a time.
async fn inbox(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(params): Query<InboxQuery>,
) -> Result<Html<String>, AppError> {
    user.require_approver()?;
    let class = match params.class.as_str() {
        "" => None,
        c => Some(EnvClass::named(c).map_err(AppError::BadRequest)?),
    };
    let after = match params.cursor.as_str() {
        "" => None,
        c => Some(Cursor::decode(c).ok_or_else(|| {
            AppError::BadRequest("This page link is not valid; start from the first page.".into())
        })?),
    };
    let scope = user.review_scope();
    let mut q = inbox_query(&user.id, scope.as_deref());
    q.env_class = class;
    q.after = after.as_ref();
    q.limit = 50;
    // The page and the badge (every class), in one statement.
    let badge = inbox_query(&user.id, scope.as_deref());
    let mut read =
        requests_store::batch(&state.db, &[Part::List(q), Part::Count(badge, BADGE_CAP)]).await?;
    let (items, next) = read.lists.pop().unwrap_or_default();
    let page = InboxPage {
        layout: Layout::with_inbox(&user, "approvals", read.counts.pop().unwrap_or(0)),
        rows: items.iter().map(RequestRow::from).collect(),
        class_filter: params.class,
        next: next.map(|c| c.encode()),
    };
    Ok(Html(render(&page)?))
}

/// The request, its rendered template, its decisions and its deployments.
async fn show_api(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let r = requests::visible(&state.db, &user, &id).await?;
    let approvals = store::for_request(&state.db, &r.id).await?;
    let deployments = deployments::store::for_request(&state.db, &r.id).await?;
    let latest = deployments.first();
    let arn = latest
        .and_then(|d| d.change_set_arn.clone())
        .unwrap_or_default();
    let approvers = store::approvers(
        state.db.pool(),
        &r.id,
        &approval_hash(&r.content_hash, &arn),
    )
    .await?;
    let q = quorum(&r, &approvers, &state.config, crate::db::now_ms());
    let change_set = latest
        .filter(|d| d.change_set_arn.is_some())
        .map(change_set::ChangeSetSummary::of);
    let risk_flags: Vec<serde_json::Value> = r
        .risk_flags
        .iter()
        .map(|f| serde_json::json!({ "flag": f, "label": f.label() }))
        .collect();
    Ok(Json(serde_json::json!({
        "request": r, "template": r.template_body, "approvals": approvals,
        "deployments": deployments, "change_set": change_set, "risk_flags": risk_flags,
        "quorum": { "approvals": q.have, "required": q.need, "groups_missing": q.groups_missing,
                    "groups": q.groups, "rule": q.rule(), "policy_version": q.policy_version,
                    "needs": q.needs(), "met": q.met() },
        "emergency": r.emergency,
    })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CommentBody {
    #[serde(default)]
    comment: String,
    /// The change set the decision is about (`change_set.arn` of the request).
    #[serde(default)]
    change_set_arn: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct EmergencyBody {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    change_set_arn: Option<String>,
}

/// Approve or reject, by the last path segment.
async fn decide_api(
    State(state): State<AppState>,
    ApiUser(mut user): ApiUser,
    Path((id, decision)): Path<(String, String)>,
    ApiJson(body): ApiJson<CommentBody>,
) -> Result<Json<DecisionOutcome>, ApiError> {
    let decision = Decision::from_path(&decision).ok_or(AppError::NotFound)?;
    confirm_groups(&state.auth, &mut user, &format!("/requests/{id}")).await?;
    let input = DecisionInput {
        decision,
        comment: &body.comment,
        change_set_arn: body.change_set_arn.as_deref(),
    };
    Ok(Json(actions::decide(&state, &user, &id, input).await?))
}

async fn emergency_api(
    State(state): State<AppState>,
    ApiUser(mut user): ApiUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<EmergencyBody>,
) -> Result<Json<DecisionOutcome>, ApiError> {
    confirm_groups(&state.auth, &mut user, &format!("/requests/{id}")).await?;
    let outcome = actions::release_emergency(
        &state,
        &user,
        &id,
        &body.reason,
        body.change_set_arn.as_deref(),
    )
    .await?;
    Ok(Json(outcome))
}

async fn emergency_review_api(
    State(state): State<AppState>,
    ApiUser(mut user): ApiUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CommentBody>,
) -> Result<StatusCode, ApiError> {
    confirm_groups(&state.auth, &mut user, &format!("/requests/{id}")).await?;
    actions::review_emergency(&state, &user, &id, &body.comment).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn cancel_api(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    actions::cancel(&state, &user, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
