//! What people do to requests, shared by the pages and the JSON API: submit and cancel.
//! (Approving and rejecting live in `approvals`.)

use crate::audit::{self, Entry};
use crate::auth::CurrentUser;
use crate::catalog::FieldError;
use crate::deployments;
use crate::error::AppError;
use crate::state::AppState;

use super::input::{NewRequest, Prepared, prepare};
use super::{RequestStatus, Transition, store};

/// Validates, renders and policy-checks the input, then stores the request as pending approval
/// with its audit record. Returns its id and number.
pub async fn submit(
    state: &AppState,
    user: &CurrentUser,
    input: &NewRequest,
) -> Result<(String, i64), AppError> {
    let p = prepare(state, user, input).await?;
    if !p.policy.passed {
        let failed: Vec<String> = p
            .policy
            .results
            .iter()
            .filter(|r| !r.passed)
            .map(|r| r.rule.clone())
            .collect();
        return Err(AppError::Invalid(vec![FieldError::new(
            "policy",
            format!(
                "The rendered template fails these policy rules: {}. Change the parameters or \
                 ask the platform team.",
                failed.join(", ")
            ),
        )]));
    }
    record_submission(state, user, &p).await
}

/// Stores a prepared, policy-passing request as pending approval with its audit record, in one
/// transaction. Returns its id and number.
pub async fn record_submission(
    state: &AppState,
    user: &CurrentUser,
    p: &Prepared,
) -> Result<(String, i64), AppError> {
    let status = RequestStatus::Draft
        .apply(Transition::Submit)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let policy = serde_json::json!({
        "passed": p.policy.passed,
        "results": p.policy.results.iter().map(|r| serde_json::json!({
            "rule": r.rule, "passed": r.passed, "messages": r.messages,
        })).collect::<Vec<_>>(),
    });
    let mut tx = state.db.begin().await?;
    let (id, number) = store::insert(&mut tx, p, &user.id, status, &policy).await?;
    let entry = Entry::new(&user.actor(), "request.submitted", "request", id.clone())
        .detail(serde_json::json!({
            "number": number, "team": p.team, "blueprint": p.blueprint.slug,
            "blueprint_version": p.blueprint.version, "account_id": p.account.id,
            "region": p.region, "stack_name": p.stack_name, "params": p.rendered.params,
            "template_digest": p.rendered.digest, "content_hash": p.content_hash,
        }))
        .source_ip(user.source_ip.clone());
    audit::store::append(&mut tx, entry).await?;
    tx.commit().await?;
    tracing::info!(request.id = %id, request.number = number, "A request was submitted for approval.");
    Ok((id, number))
}

/// Cancels a request that has not started deploying. The requester, or an admin, may cancel.
pub async fn cancel(state: &AppState, user: &CurrentUser, id: &str) -> Result<(), AppError> {
    let mut tx = state.db.begin().await?;
    let request = store::lock(&mut tx, state.db.backend(), id)
        .await?
        .filter(|r| user.can_view_team(&r.team))
        .ok_or(AppError::NotFound)?;
    if request.requester_id != user.id && !user.roles.admin {
        return Err(AppError::Forbidden(
            "Only the requester or an admin can cancel a request.".into(),
        ));
    }
    let next = request
        .status
        .apply(Transition::Cancel)
        .map_err(|e| AppError::Conflict(format!("{e}.")))?;
    store::set_status(
        &mut tx,
        &request.id,
        request.version,
        next,
        Some("cancelled"),
    )
    .await?;
    deployments::store::cancel_queued(&mut tx, &request.id).await?;
    let entry = Entry::new(
        &user.actor(),
        "request.cancelled",
        "request",
        request.id.clone(),
    )
    .detail(serde_json::json!({ "from": request.status }))
    .source_ip(user.source_ip.clone());
    audit::store::append(&mut tx, entry).await?;
    tx.commit().await?;
    Ok(())
}
