//! Deciding on a request, cancelling it, releasing it in an emergency and signing that off, and
//! expiring what waited too long; shared by the request page and the JSON API. Each is one
//! transaction that locks the request row first, then the deployment rows, and appends to the
//! audit chain last.

use super::store::{self, NewDecision};
use super::{Decision, DecisionOutcome, approval_hash, quorum, refusal};
use crate::audit::{self, Actor, Entry};
use crate::auth::step_up;
use crate::change::window;
use crate::db::{Db, Tx, now_ms};
use crate::deployments::{self, Deployment, DeploymentStatus};
use crate::error::{AppError, FieldError};
use crate::ids::EnvClass;
use crate::requests::{self, Emergency, RequestStatus, ServiceRequest, Transition};
use crate::state::AppState;
use crate::web::CurrentUser;

/// What a person decides on: the decision, their comment, and the change set they reviewed.
pub struct DecisionInput<'a> {
    pub decision: Decision,
    pub comment: &'a str,
    /// The ARN of the change set the decision is about (the page sends the one it showed).
    pub change_set_arn: Option<&'a str>,
}

fn checked_comment(decision: Decision, comment: &str) -> Result<&str, AppError> {
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
    Ok(comment)
}

/// Locks a request the user may see (others' are "not found").
async fn locked(
    state: &AppState,
    tx: &mut Tx,
    user: &CurrentUser,
    id: &str,
) -> Result<ServiceRequest, AppError> {
    requests::store::lock(tx, state.db.backend(), id)
        .await?
        .filter(|r| user.can_view_team(&r.team))
        .ok_or(AppError::NotFound)
}

/// A decision on a production request needs a recent (and, by policy, strong) sign-in at the
/// IdP: otherwise the decider signs in again and comes back to the decision (step-up, B9).
fn stepped_up(
    state: &AppState,
    user: &CurrentUser,
    request: &ServiceRequest,
) -> Result<(), AppError> {
    if request.env_class != EnvClass::Prod {
        return Ok(());
    }
    step_up::check(user, &state.config, now_ms())
        .map_err(|s| s.into_error(&format!("/requests/{}#decision", request.id)))
}

/// The change set waiting for review, and that the one the decision names is it (bar C3).
fn reviewed_change_set(
    request: &ServiceRequest,
    current: Option<&Deployment>,
    named: Option<&str>,
) -> Result<String, AppError> {
    let waiting = current
        .filter(|d| d.status == DeploymentStatus::AwaitingApproval)
        .and_then(|d| d.change_set_arn.clone());
    let Some(arn) = waiting else {
        return Err(AppError::Conflict(match request.status {
            RequestStatus::Preparing => {
                "The change set is still being prepared; decide once it is ready.".into()
            }
            s => format!("A request that is {s} cannot be decided on."),
        }));
    };
    match named.map(str::trim).filter(|n| !n.is_empty()) {
        None => Err(AppError::Invalid(vec![FieldError::new(
            "change_set_arn",
            "Name the change set you reviewed (the request's change_set.arn).",
        )])),
        Some(n) if n != arn => Err(AppError::Conflict(
            "The change set you reviewed has been replaced by a newer one: review the current \
             change set and decide again."
                .into(),
        )),
        Some(_) => Ok(arn),
    }
}

/// Records `user`'s decision on the request, with everything it causes, in one transaction.
pub async fn decide(
    state: &AppState,
    user: &CurrentUser,
    request_id: &str,
    input: DecisionInput<'_>,
) -> Result<DecisionOutcome, AppError> {
    let decision = input.decision;
    let comment = checked_comment(decision, input.comment)?;
    let mut tx = state.db.begin().await?;
    let request = locked(state, &mut tx, user, request_id).await?;
    let groups = store::groups_of(&mut *tx, &user.id).await?;
    if let Some((action, message)) = refusal(user, &groups, &request, &state.config) {
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
    let current = deployments::store::current(&mut tx, &request.id).await?;
    let arn = reviewed_change_set(&request, current.as_ref(), input.change_set_arn)?;
    stepped_up(state, user, &request)?;
    store::insert(
        &mut tx,
        &request,
        NewDecision {
            approver_id: &user.id,
            decision,
            comment,
            change_set_arn: &arn,
            auth_time: user.auth_time,
        },
    )
    .await?;
    let now = now_ms();
    let bound = approval_hash(&request.content_hash, &arn);
    let approvers = store::approvers(&mut *tx, &request.id, &bound).await?;
    let q = quorum(&request, &approvers, &state.config, now);
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
            "comment": comment, "content_hash": bound, "request_content_hash": request.content_hash,
            "change_set_arn": arn, "auth_time": user.auth_time,
            "approvals": q.have, "required": q.need, "needs": q.needs(),
            "policy_version": q.policy_version, "rule": q.rule(),
        }))
        .source_ip(user.source_ip.clone()),
    ];
    let mut outcome = DecisionOutcome {
        status: request.status,
        approvals: q.have,
        required: q.need as u32,
        deployment_id: None,
        held_until: None,
    };
    if decision == Decision::Reject || q.met() {
        requests::store::set_status(&mut tx, &request.id, request.version, next, None).await?;
        if next == RequestStatus::Approved {
            let (id, held) = release(&mut tx, state, &request, now).await?;
            outcome.deployment_id = id;
            outcome.held_until = held;
        } else {
            deployments::store::withdraw(&mut tx, &request.id).await?;
        }
        let action = match next {
            RequestStatus::Approved => "request.approved",
            _ => "request.rejected",
        };
        entries.push(
            Entry::new(&Actor::of(user), action, "request", request.id.clone()).detail(
                serde_json::json!({
                    "from": request.status, "to": next, "change_set_arn": arn,
                    "held_until": outcome.held_until,
                }),
            ),
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

/// Queues the approved request's parked deployment, held until the class's change window opens
/// (break-glass releases pass `now` through [`release_at`]). Returns its id and the hold.
async fn release(
    tx: &mut Tx,
    state: &AppState,
    request: &ServiceRequest,
    now: i64,
) -> Result<(Option<String>, Option<i64>), AppError> {
    let windows = state
        .config
        .change_windows
        .get(&request.env_class)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let opens = window::next_opening(windows, now);
    let id = deployments::store::release(tx, request, opens).await?;
    Ok((id, (opens > now).then_some(opens)))
}

/// Cancels a request that has not started deploying. The requester, or an admin, may cancel.
/// Its change set (and an empty stack under review) is deleted by the worker.
pub async fn cancel(state: &AppState, user: &CurrentUser, id: &str) -> Result<(), AppError> {
    let mut tx = state.db.begin().await?;
    let request = locked(state, &mut tx, user, id).await?;
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
    deployments::store::withdraw(&mut tx, &request.id).await?;
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

/// Break-glass (bar C7): an admin releases a change whose change set is ready, with a written
/// reason and no approvals, ignoring change windows. It is flagged everywhere, notifies the
/// approvers (through the audit record), and stays unreviewed until a second person signs it
/// off with [`review_emergency`].
pub async fn release_emergency(
    state: &AppState,
    user: &CurrentUser,
    id: &str,
    reason: &str,
    change_set_arn: Option<&str>,
) -> Result<DecisionOutcome, AppError> {
    let reason = reason.trim();
    if reason.chars().count() < 20 || reason.chars().count() > 2000 {
        return Err(AppError::Invalid(vec![FieldError::new(
            "reason",
            "Say why this cannot wait for approval (20 to 2000 characters): reviewers read it.",
        )]));
    }
    let mut tx = state.db.begin().await?;
    let request = locked(state, &mut tx, user, id).await?;
    if !user.roles.admin {
        tx.rollback().await?;
        let entry = Entry::new(
            &Actor::of(user),
            "request.emergency_denied",
            "request",
            request.id.clone(),
        )
        .outcome("denied")
        .source_ip(user.source_ip.clone());
        audit::store::append_alone(&state.db, entry).await?;
        return Err(AppError::Forbidden(
            "Only platform admins can release a change in an emergency.".into(),
        ));
    }
    let next = request
        .status
        .apply(Transition::Approve)
        .map_err(|e| AppError::Conflict(format!("{e}.")))?;
    let current = deployments::store::current(&mut tx, &request.id).await?;
    let arn = reviewed_change_set(&request, current.as_ref(), change_set_arn)?;
    stepped_up(state, user, &request)?;
    let now = now_ms();
    let emergency = Emergency {
        released_by: user.id.clone(),
        released_by_name: user.name.clone(),
        reason: reason.to_string(),
        released_at: now,
        reviewed_by: None,
        reviewed_by_name: None,
        review_comment: None,
        reviewed_at: None,
    };
    requests::store::set_status(&mut tx, &request.id, request.version, next, None).await?;
    requests::store::set_release(&mut tx, &request.id, "emergency", Some(&emergency)).await?;
    let deployment_id = deployments::store::release(&mut tx, &request, now).await?;
    let entry = Entry::new(
        &Actor::of(user),
        "request.emergency_released",
        "request",
        request.id.clone(),
    )
    .detail(serde_json::json!({
        "emergency": true, "reason": reason, "change_set_arn": arn,
        "content_hash": approval_hash(&request.content_hash, &arn), "from": request.status,
        "auth_time": user.auth_time,
    }))
    .source_ip(user.source_ip.clone());
    audit::store::append(&mut tx, entry).await?;
    tx.commit().await?;
    tracing::warn!(request.id = %request.id, "A change was released in an emergency, without approvals.");
    Ok(DecisionOutcome {
        status: next,
        approvals: 0,
        required: 0,
        deployment_id,
        held_until: None,
    })
}

/// Signs off an emergency release after the fact: a second person (neither the admin who
/// released it nor the requester), who may approve for the team.
pub async fn review_emergency(
    state: &AppState,
    user: &CurrentUser,
    id: &str,
    comment: &str,
) -> Result<(), AppError> {
    let comment = checked_comment(Decision::Reject, comment).map_err(|_| {
        AppError::Invalid(vec![FieldError::new(
            "comment",
            "Say what you checked (up to 2000 characters).",
        )])
    })?;
    let mut tx = state.db.begin().await?;
    let request = locked(state, &mut tx, user, id).await?;
    let Some(mut emergency) = request.emergency.clone() else {
        return Err(AppError::Conflict(
            "This request was not released in an emergency.".into(),
        ));
    };
    if emergency.reviewed_at.is_some() {
        return Err(AppError::Conflict(
            "This emergency release has already been reviewed.".into(),
        ));
    }
    let groups = store::groups_of(&mut *tx, &user.id).await?;
    if emergency.released_by == user.id || refusal(user, &groups, &request, &state.config).is_some()
    {
        return Err(AppError::Forbidden(
            "A second person, an approver for the team who neither requested nor released the \
             change, must review an emergency release."
                .into(),
        ));
    }
    stepped_up(state, user, &request)?;
    let now = now_ms();
    emergency.reviewed_by = Some(user.id.clone());
    emergency.reviewed_by_name = Some(user.name.clone());
    emergency.review_comment = Some(comment.to_string());
    emergency.reviewed_at = Some(now);
    requests::store::set_release(&mut tx, &request.id, "emergency", Some(&emergency)).await?;
    let entry = Entry::new(
        &Actor::of(user),
        "request.emergency_reviewed",
        "request",
        request.id.clone(),
    )
    .detail(serde_json::json!({ "emergency": true, "comment": comment }))
    .source_ip(user.source_ip.clone());
    audit::store::append(&mut tx, entry).await?;
    tx.commit().await?;
    Ok(())
}

/// Expires requests that waited for review longer than the configured time, at most `limit`
/// per call: each becomes expired and its change set is queued for deletion. Returns how many.
pub async fn expire_waiting(db: &Db, review_expiry_ms: i64, limit: i64) -> anyhow::Result<usize> {
    let ids = requests::store::waiting_since(db, now_ms() - review_expiry_ms, limit).await?;
    let mut expired = 0;
    for id in ids {
        let mut tx = db.begin().await?;
        let Some(request) = requests::store::lock(&mut tx, db.backend(), &id).await? else {
            continue;
        };
        let Ok(next) = request.status.apply(Transition::Expire) else {
            continue;
        };
        let reason = "Nobody completed the review in time; submit the request again.";
        requests::store::set_status(&mut tx, &id, request.version, next, Some(reason)).await?;
        deployments::store::withdraw(&mut tx, &id).await?;
        let entry = Entry::new(
            &Actor::system("stackgate-worker"),
            "request.expired",
            "request",
            id.clone(),
        )
        .detail(serde_json::json!({ "from": request.status, "reason": reason }));
        audit::store::append(&mut tx, entry).await?;
        tx.commit().await?;
        expired += 1;
    }
    Ok(expired)
}
