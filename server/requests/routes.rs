//! Request pages: the form with live validation and preview, the request page with its review
//! panel and live deployment, the decisions, and the approvals inbox.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use super::input::{NewRequest, prepare};
use super::views::*;
use super::{RequestStatus, ServiceRequest, actions, store};
use crate::accounts::{self, EnvClass};
use crate::approvals::{self, Decision};
use crate::auth::{CurrentUser, PassiveUser};
use crate::deployments;
use crate::error::AppError;
use crate::home::RequestRow;
use crate::http::layout::{BADGE_CAP, Layout, When};
use crate::requests::store::{Cursor, Part};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/requests/new", get(new_form))
        .route("/requests/new/preview", post(preview))
        .route("/requests", post(create))
        .route("/requests/{id}", get(show))
        .route("/requests/{id}/deployment", get(deployment_fragment))
        .route("/requests/{id}/cancel", post(cancel))
        .route("/requests/{id}/{decision}", post(decide))
        .route("/approvals", get(approvals_inbox))
}

fn render(t: &impl Template) -> Result<String, AppError> {
    t.render().map_err(|e| AppError::Internal(e.into()))
}

/// How much of the form to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Only draw it (first visit).
    None,
    /// As the user fills it in: everything but a name not typed yet.
    AsYouType,
    /// On submit or the Preview button: everything.
    All,
}

/// Builds the form from raw values, checks it as asked and previews it when it is valid.
async fn build_form(
    state: &AppState,
    user: &CurrentUser,
    raw: &BTreeMap<String, String>,
    check: Check,
) -> Result<RequestForm, AppError> {
    let slug = raw
        .get("blueprint")
        .map(String::as_str)
        .unwrap_or("network");
    let blueprint = state.catalog.get(slug).ok_or(AppError::NotFound)?.clone();
    let teams = user.roles.requester_teams.clone();
    let team = match raw.get("team").filter(|t| !t.is_empty()) {
        Some(t) => t.clone(),
        None => teams.first().cloned().unwrap_or_default(),
    };
    user.require_requester_for(&team)?;
    let accounts = accounts::store::for_team(&state.db, &team).await?;
    let mut general_errors = Vec::new();
    if accounts.is_empty() {
        general_errors.push(format!(
            "Team {team} has no accounts to deploy into yet. Ask the platform team to register one."
        ));
    }
    let account = accounts
        .iter()
        .find(|a| raw.get("account_id").is_some_and(|id| a.id.as_str() == id))
        .or_else(|| accounts.first());
    let env = account.map(|a| a.env_class).unwrap_or(EnvClass::Dev);
    let region = account.and_then(|a| {
        a.regions
            .iter()
            .find(|r| raw.get("region").is_some_and(|x| r.as_str() == x))
            .or_else(|| a.regions.first())
    });
    // Values still at the previous class's default follow the newly chosen account's class.
    let previous = raw
        .get("defaults_for")
        .and_then(|c| c.parse::<EnvClass>().ok());
    let mut values: BTreeMap<String, String> = raw
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("param.").map(|p| (p.to_string(), v.clone())))
        .collect();
    if let Some(prev) = previous.filter(|p| *p != env) {
        for p in &blueprint.parameters {
            if values
                .get(&p.name)
                .is_some_and(|v| Some(v) == p.default_for(prev).as_ref())
            {
                values.remove(&p.name);
            }
        }
    }
    let name = raw
        .get("name")
        .map(|n| n.trim().to_string())
        .unwrap_or_default();
    let mut field_errors = BTreeMap::new();
    let mut param_errors = Vec::new();
    let mut preview = None;
    if check != Check::None && account.is_some() {
        let mut input = NewRequest::from_form(raw);
        input.team = Some(team.clone());
        input.account_id = account.map(|a| a.id.to_string()).unwrap_or_default();
        input.region = region.map(|r| r.to_string()).unwrap_or_default();
        input.parameters = values.clone();
        match prepare(state, user, &input).await {
            Ok(p) => {
                preview = Some(Preview {
                    stack_name: p.stack_name.clone(),
                    total: p.rendered.resources.iter().map(|(_, n)| n).sum(),
                    resources: p.rendered.resources.clone(),
                    template_body: p.rendered.body.clone(),
                    digest: p.rendered.digest.clone(),
                    policy_passed: p.policy.passed,
                    policy: policy_rows(&p.policy),
                });
            }
            Err(AppError::Invalid(errors)) => {
                for e in errors {
                    if blueprint.param(&e.field).is_some() {
                        param_errors.push(e);
                    } else if ["name", "account_id", "region", "team"].contains(&e.field.as_str()) {
                        field_errors.insert(e.field.clone(), e.message.clone());
                    } else {
                        general_errors.push(e.message.clone());
                    }
                }
            }
            Err(other) => return Err(other),
        }
    }
    if check == Check::AsYouType && name.is_empty() {
        // Not typed yet: no error to shout about (submitting still needs it).
        field_errors.remove("name");
    }
    if let Some(p) = preview.as_ref().filter(|p| !p.policy_passed) {
        let failing: Vec<&str> = p
            .policy
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.rule.as_str())
            .collect();
        general_errors.push(format!("Policy rules fail: {}.", failing.join(", ")));
    }
    let can_submit =
        field_errors.is_empty() && param_errors.is_empty() && general_errors.is_empty();
    Ok(RequestForm {
        csrf_token: user.csrf_token.clone(),
        blueprint_slug: blueprint.slug.clone(),
        blueprint_name: blueprint.name.clone(),
        blueprint_version: blueprint.version.clone(),
        blueprint_summary: blueprint.summary.clone(),
        accounts: account_options(
            &accounts,
            account.map(|a| a.id.as_str()).unwrap_or_default(),
        ),
        regions: account
            .map(|a| {
                a.regions
                    .iter()
                    .map(|r| (r.to_string(), Some(r) == region))
                    .collect()
            })
            .unwrap_or_default(),
        params: param_fields(&blueprint, env, &values, &param_errors),
        teams,
        team,
        name,
        defaults_for: env.as_str().to_string(),
        field_errors,
        general_errors,
        preview,
        can_submit,
        oob: false,
    })
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
    let form = build_form(&state, &user, &raw, check).await?;
    let layout = Layout::new(&state, &user, "catalog").await?;
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
    let mut form = build_form(&state, &user, &raw, check).await?;
    if live {
        // Typing in the form refreshes only its feedback; changing the account re-renders it.
        form.oob = headers
            .get("hx-target")
            .is_none_or(|t| t.as_bytes() != b"request-form-wrap");
        return Ok(Html(render(&NewRequestForm { form })?).into_response());
    }
    let layout = Layout::new(&state, &user, "catalog").await?;
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
            let form = build_form(&state, &user, &raw, Check::All).await?;
            let layout = Layout::new(&state, &user, "catalog").await?;
            let html = render(&NewRequestPage { layout, form })?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, Html(html)).into_response())
        }
        Err(e) => Err(e),
    }
}

/// Loads a request the user may see; others' requests are "not found", not "forbidden".
pub async fn visible_request(
    state: &AppState,
    user: &CurrentUser,
    id: &str,
) -> Result<ServiceRequest, AppError> {
    store::get(&state.db, id)
        .await?
        .filter(|r| user.can_view_team(&r.team))
        .ok_or(AppError::NotFound)
}

async fn deployment_panel(
    state: &AppState,
    r: &ServiceRequest,
) -> Result<DeploymentPanel, AppError> {
    let deps = deployments::store::for_request(&state.db, &r.id).await?;
    let latest = deps.first();
    let events = match latest {
        Some(d) => deployments::store::events(&state.db, &d.id).await?,
        None => vec![],
    };
    let mut panel = DeploymentPanel::from_deployment(&r.id, latest, events);
    // Keep watching while anything can still happen to the request (approvals, deployment).
    panel.live = !r.status.is_terminal();
    panel.request_version = r.version;
    Ok(panel)
}

async fn show_page(
    state: &AppState,
    user: &CurrentUser,
    r: ServiceRequest,
    action_error: Option<String>,
) -> Result<ShowPage, AppError> {
    let decisions = approvals::store::for_request(&state.db, &r.id).await?;
    let approved_count = decisions
        .iter()
        .filter(|a| a.decision == "approve" && a.content_hash == r.content_hash)
        .map(|a| a.approver_id.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let refusal = approvals::refusal(user, &r);
    let already = decisions
        .iter()
        .any(|a| a.approver_id == user.id && a.content_hash == r.content_hash);
    let pending = r.status == RequestStatus::PendingApproval;
    let decide_note = match (&refusal, pending, already) {
        (_, false, _) => None,
        (_, true, true) => Some("You have decided on this version.".to_string()),
        (Some((action, msg)), true, false) if *action == "approval.denied_sod" => Some(msg.clone()),
        _ => None,
    };
    let timeline = crate::audit::store::for_object(&state.db, "request", &r.id)
        .await?
        .into_iter()
        .map(|rec| {
            let detail = rec
                .detail
                .get("comment")
                .and_then(|c| c.as_str())
                .unwrap_or_default();
            TimelineItem {
                actor: rec.actor_name.clone(),
                text: timeline_text(&rec.action, &rec.outcome),
                detail: detail.to_string(),
                kind: rec.action.replace('.', "-"),
                when: When::at(rec.at),
            }
        })
        .collect();
    Ok(ShowPage {
        layout: Layout::new(state, user, "home").await?,
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
        template_body: r.template_body.clone(),
        policy: stored_policy_rows(&r.policy),
        approvals: decisions
            .iter()
            .map(|a| ApprovalView {
                approver_name: a.approver_name.clone(),
                decision: a.decision.clone(),
                comment: a.comment.clone(),
                digest_short: a.content_hash.chars().take(12).collect(),
                current: a.content_hash == r.content_hash,
                when: When::at(a.created_at),
            })
            .collect(),
        required: state.config.approvals_for(r.env_class),
        approved_count,
        timeline,
        can_decide: pending && refusal.is_none() && !already,
        decide_note,
        can_cancel: (r.requester_id == user.id || user.roles.admin)
            && matches!(
                r.status,
                RequestStatus::PendingApproval | RequestStatus::Approved
            ),
        action_error,
        dep: deployment_panel(state, &r).await?,
        r: RequestRow::from(&r),
    })
}

fn timeline_text(action: &str, outcome: &str) -> String {
    match (action, outcome) {
        ("request.submitted", _) => "submitted the request for approval".into(),
        ("approval.approved", _) => "approved".into(),
        ("approval.rejected", _) => "rejected".into(),
        ("approval.denied_sod", _) => "tried to decide on their own request (refused)".into(),
        ("approval.denied_role", _) => "tried to decide without the approver role (refused)".into(),
        ("request.approved", _) => "— the request has its approvals".into(),
        ("request.rejected", _) => "— the request was rejected".into(),
        ("request.cancelled", _) => "cancelled the request".into(),
        ("deploy.started", _) => "started the deployment".into(),
        ("deploy.change_set_created", _) => "created the change set".into(),
        ("deploy.needs_attention", _) => "— the deployment needs attention".into(),
        ("deploy.succeeded", _) => "deployed the stack".into(),
        ("deploy.failed", _) => "— the deployment failed".into(),
        ("deploy.cancelled", _) => "— the deployment was cancelled".into(),
        (other, outcome) => format!("{other} ({outcome})"),
    }
}

fn display_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Resources by type in a stored template.
fn resource_summary(body: &str) -> Vec<(String, usize)> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    if let Ok(t) = serde_json::from_str::<serde_json::Value>(body)
        && let Some(res) = t.get("Resources").and_then(|r| r.as_object())
    {
        for r in res.values() {
            let ty = r.get("Type").and_then(|t| t.as_str()).unwrap_or("?");
            *counts.entry(ty.to_string()).or_default() += 1;
        }
    }
    counts.into_iter().collect()
}

fn stored_policy_rows(policy: &serde_json::Value) -> Vec<PolicyRow> {
    policy
        .get("results")
        .and_then(|r| r.as_array())
        .map(|rows| {
            rows.iter()
                .map(|r| PolicyRow {
                    rule: r
                        .get("rule")
                        .and_then(|v| v.as_str())
                        .unwrap_or("?")
                        .to_string(),
                    passed: r.get("passed").and_then(|v| v.as_bool()).unwrap_or(false),
                    messages: r
                        .get("messages")
                        .and_then(|m| m.as_array())
                        .map(|m| {
                            m.iter()
                                .filter_map(|x| x.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Html<String>, AppError> {
    let r = visible_request(&state, &user, &id).await?;
    Ok(Html(render(&show_page(&state, &user, r, None).await?)?))
}

#[derive(Deserialize)]
struct PanelQuery {
    version: Option<i64>,
}

/// The deployment panel alone, for htmx polling. When the request itself has moved on since the
/// page was drawn (approved, deployed…), htmx is told to reload the whole page instead.
async fn deployment_fragment(
    State(state): State<AppState>,
    PassiveUser(user): PassiveUser,
    Path(id): Path<String>,
    Query(q): Query<PanelQuery>,
) -> Result<Response, AppError> {
    let r = visible_request(&state, &user, &id).await?;
    if q.version.is_some_and(|v| v != r.version) {
        return Ok(([("hx-refresh", "true")], Html(String::new())).into_response());
    }
    let dep = deployment_panel(&state, &r).await?;
    Ok(Html(render(&DeploymentFragment { dep })?).into_response())
}

#[derive(Deserialize)]
struct CommentForm {
    #[serde(default)]
    comment: String,
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
    let r = visible_request(state, user, id).await?;
    let page = show_page(state, user, r, Some(text)).await?;
    Ok((status, Html(render(&page)?)).into_response())
}

/// Approve or reject (the form's action names which).
async fn decide(
    State(state): State<AppState>,
    mut user: CurrentUser,
    Path((id, decision)): Path<(String, String)>,
    Form(f): Form<CommentForm>,
) -> Result<Response, AppError> {
    let decision = Decision::from_path(&decision).ok_or(AppError::NotFound)?;
    // A decision counts only with roles the IdP confirms now.
    crate::auth::extract::confirm_groups(&state, &mut user, &format!("/requests/{id}")).await?;
    let result = approvals::decide(&state, &user, &id, decision, &f.comment).await;
    after_action(&state, &user, &id, result.map(|_| ())).await
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

async fn approvals_inbox(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(params): Query<InboxQuery>,
) -> Result<Html<String>, AppError> {
    user.require_approver()?;
    let class = match params.class.as_str() {
        "" => None,
        c => Some(c.parse::<EnvClass>().map_err(AppError::BadRequest)?),
    };
    let cursor = match params.cursor.as_str() {
        "" => None,
        c => Some(Cursor::decode(c).ok_or_else(|| {
            AppError::BadRequest("This page link is not valid; start from the first page.".into())
        })?),
    };
    let scope = approvals::review_scope(&user);
    let mut q = approvals::inbox_query(&user, scope.as_deref());
    q.env_class = class;
    q.after = cursor.as_ref();
    q.limit = 50;
    // The page and the badge (every class), in one statement.
    let badge = approvals::inbox_query(&user, scope.as_deref());
    let mut read = store::batch(&state.db, &[Part::List(q), Part::Count(badge, BADGE_CAP)]).await?;
    let (items, next) = read.lists.pop().unwrap_or_default();
    let page = InboxPage {
        layout: Layout::with_inbox(&user, "approvals", read.counts.pop().unwrap_or(0)),
        rows: items.iter().map(RequestRow::from).collect(),
        class_filter: params.class,
        next: next.map(|c| c.encode()),
    };
    Ok(Html(render(&page)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_are_counted_by_type() {
        let body = r#"{"Resources":{"A":{"Type":"AWS::EC2::Subnet"},"B":{"Type":"AWS::EC2::Subnet"},"C":{"Type":"AWS::EC2::VPC"}}}"#;
        assert_eq!(
            resource_summary(body),
            vec![
                ("AWS::EC2::Subnet".to_string(), 2),
                ("AWS::EC2::VPC".to_string(), 1)
            ]
        );
        assert!(resource_summary("not json").is_empty());
    }
}
