//! Deciding on a request and cancelling it, shared by the request page and the JSON API. Each is
//! one transaction that locks the request row first, then the deployment rows, and appends to
//! the audit chain last.

use super::store;
use super::{Decision, DecisionOutcome, refusal};
use crate::audit::{self, Actor, Entry};
use crate::deployments;
use crate::error::{AppError, FieldError};
use crate::requests::{self, RequestStatus, Transition};
use crate::state::AppState;
use crate::web::CurrentUser;

/// Records `user`'s decision on the request, with everything it causes, in one transaction.
pub async fn decide(
    state: &AppState,
    user: &CurrentUser,
    request_id: &str,
    decision: Decision,
    comment: &str,
) -> Result<DecisionOutcome, AppError> {
    let comment = comment.trim();
    if decision == Decision::Reject && comment.is_empty() {
        return Err(AppError::Invalid(vec![FieldError::new(
            "comment",
            "Say why you reject the request, so the requester can fix it.",
        )]));
    }
    if comment.chars().count() > 2000 {
        return Err(AppError::Invalid(vec![FieldError::new(
            "comment",
            "Keep the comment under 2000 characters.",
        )]));
    }
    let mut tx = state.db.begin().await?;
    let request = requests::store::lock(&mut tx, state.db.backend(), request_id)
        .await?
        .filter(|r| user.can_view_team(&r.team))
        .ok_or(AppError::NotFound)?;
    if let Some((action, message)) = refusal(user, &request) {
        tx.rollback().await?;
        let entry = Entry::new(&Actor::of(user), action, "request", request.id.clone())
            .outcome("denied")
            .detail(serde_json::json!({ "decision": decision.as_str() }))
            .source_ip(user.source_ip.clone());
        audit::store::append_alone(&state.db, entry).await?;
        return Err(AppError::Forbidden(message));
    }
    let transition = match decision {
        Decision::Approve => Transition::Approve,
        Decision::Reject => Transition::Reject,
    };
    let next = request
        .status
        .apply(transition)
        .map_err(|e| AppError::Conflict(format!("{e}.")))?;
    store::insert(&mut tx, &request, &user.id, decision, comment).await?;
    let required = state.config.approvals_for(request.env_class);
    let approvals = store::distinct_approvers(&mut tx, &request.id, &request.content_hash).await?;
    let mut entries = vec![
        Entry::new(
            &Actor::of(user),
            match decision {
                Decision::Approve => "approval.approved",
                Decision::Reject => "approval.rejected",
            },
            "request",
            request.id.clone(),
        )
        .detail(serde_json::json!({
            "comment": comment, "content_hash": request.content_hash,
            "approvals": approvals, "required": required,
        }))
        .source_ip(user.source_ip.clone()),
    ];
    let mut outcome = DecisionOutcome {
        status: request.status,
        approvals,
        required,
        deployment_id: None,
    };
    if decision == Decision::Reject || approvals >= required as usize {
        requests::store::set_status(&mut tx, &request.id, request.version, next, None).await?;
        if next == RequestStatus::Approved {
            outcome.deployment_id = Some(deployments::store::enqueue(&mut tx, &request).await?);
        }
        let action = match next {
            RequestStatus::Approved => "request.approved",
            _ => "request.rejected",
        };
        entries.push(
            Entry::new(&Actor::of(user), action, "request", request.id.clone())
                .detail(serde_json::json!({ "from": request.status, "to": next })),
        );
        outcome.status = next;
    }
    // The audit chain's lock is always taken last (after the request and deployment rows).
    for entry in entries {
        audit::store::append(&mut tx, entry).await?;
    }
    tx.commit().await?;
    Ok(outcome)
}

/// Cancels a request that has not started deploying. The requester, or an admin, may cancel.
pub async fn cancel(state: &AppState, user: &CurrentUser, id: &str) -> Result<(), AppError> {
    let mut tx = state.db.begin().await?;
    let request = requests::store::lock(&mut tx, state.db.backend(), id)
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
    requests::store::set_status(
        &mut tx,
        &request.id,
        request.version,
        next,
        Some("cancelled"),
    )
    .await?;
    deployments::store::cancel_queued(&mut tx, &request.id).await?;
    let entry = Entry::new(
        &Actor::of(user),
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
