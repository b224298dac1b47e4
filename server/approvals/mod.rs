//! Approvals: who may decide on a request, and what their decision does.
//!
//! Rules, enforced here on the server: nobody decides on their own request; only approvers of
//! the request's team (or global approvers such as security) decide; an approval is bound to
//! the request's content hash; the request is approved once the number of *distinct* approvers
//! its environment class needs is reached, and its deployment is queued in the same transaction.

pub mod store;

use serde::Serialize;

use crate::audit::{self, Entry};
use crate::auth::CurrentUser;
use crate::db::Db;
use crate::deployments;
use crate::error::AppError;
use crate::requests::store::{ListQuery, Order};
use crate::requests::{self, RequestStatus, ServiceRequest, Transition};
use crate::state::AppState;

/// Approve or reject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Approve,
    Reject,
}

impl Decision {
    /// The decision a URL names (`/requests/{id}/approve`, `/reject`).
    pub fn from_path(s: &str) -> Option<Decision> {
        match s {
            "approve" => Some(Decision::Approve),
            "reject" => Some(Decision::Reject),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Reject => "reject",
        }
    }
}

/// A recorded decision.
#[derive(Debug, Clone, Serialize)]
pub struct Approval {
    pub approver_id: String,
    pub approver_name: String,
    pub decision: String,
    pub comment: String,
    pub content_hash: String,
    pub created_at: i64,
}

/// What the decision led to.
#[derive(Debug, Clone, Serialize)]
pub struct DecisionOutcome {
    pub status: RequestStatus,
    pub approvals: usize,
    pub required: u32,
    pub deployment_id: Option<String>,
}

const PENDING: [RequestStatus; 1] = [RequestStatus::PendingApproval];

/// The approvals inbox of `user` (for whom `scope` is [`review_scope`]): pending requests of the
/// teams they approve for, not their own and not yet decided by them on their current content,
/// oldest first.
pub fn inbox_query<'a>(user: &'a CurrentUser, scope: Option<&'a [String]>) -> ListQuery<'a> {
    let mut q = ListQuery::new(scope, &PENDING);
    q.undecided_by = Some(&user.id);
    q.order = Order::OldestFirst;
    q
}

/// The teams whose requests `user` reviews: `None` for every team (global approvers).
pub fn review_scope(user: &CurrentUser) -> Option<Vec<String>> {
    (!user.roles.global_approver).then(|| user.roles.approver_teams.clone())
}

/// How many requests wait for `user`'s review, counting no further than `cap`.
pub async fn inbox_count(db: &Db, user: &CurrentUser, cap: i64) -> Result<i64, AppError> {
    let scope = review_scope(user);
    requests::store::count(db, &inbox_query(user, scope.as_deref()), cap).await
}

/// Why `user` may not decide on `request`, if they may not. The reason is also the audit action.
pub fn refusal(user: &CurrentUser, request: &ServiceRequest) -> Option<(&'static str, String)> {
    if request.requester_id == user.id {
        return Some((
            "approval.denied_sod",
            "You cannot approve or reject your own request: another approver must review it."
                .into(),
        ));
    }
    if !user.can_approve_for(&request.team) {
        return Some((
            "approval.denied_role",
            format!("You are not an approver for team {}.", request.team),
        ));
    }
    None
}

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
        return Err(AppError::Invalid(vec![crate::catalog::FieldError::new(
            "comment",
            "Say why you reject the request, so the requester can fix it.",
        )]));
    }
    if comment.chars().count() > 2000 {
        return Err(AppError::Invalid(vec![crate::catalog::FieldError::new(
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
        let entry = Entry::new(&user.actor(), action, "request", request.id.clone())
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
            &user.actor(),
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
            Entry::new(&user.actor(), action, "request", request.id.clone())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::EnvClass;
    use crate::auth::Roles;

    fn user(id: &str, roles: Roles) -> CurrentUser {
        CurrentUser {
            id: id.into(),
            issuer: "i".into(),
            subject: id.into(),
            name: id.into(),
            email: None,
            roles,
            csrf_token: String::new(),
            source_ip: None,
            groups_checked_at: 0,
            auth_time: None,
            session: None,
        }
    }

    fn request(requester: &str) -> ServiceRequest {
        ServiceRequest {
            id: "r".into(),
            number: 1,
            title: "t".into(),
            team: "payments".into(),
            requester_id: requester.into(),
            requester_name: requester.into(),
            blueprint_slug: "network".into(),
            blueprint_version: "1.0.0".into(),
            blueprint_digest: "d".into(),
            account_id: "444444444444".into(),
            account_name: "dev".into(),
            region: "eu-west-2".into(),
            env_class: EnvClass::Dev,
            env_name: "core".into(),
            stack_name: "s".into(),
            params: Default::default(),
            template_body: String::new(),
            template_digest: "t".into(),
            capabilities: vec![],
            content_hash: "h".into(),
            policy: serde_json::Value::Null,
            status: RequestStatus::PendingApproval,
            status_reason: None,
            version: 1,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn requesters_cannot_decide_on_their_own_requests_even_as_approvers() {
        let both = Roles {
            requester_teams: vec!["payments".into()],
            approver_teams: vec!["payments".into()],
            ..Roles::default()
        };
        let frank = user("frank", both);
        let refusal = refusal(&frank, &request("frank")).map(|r| r.0);
        assert_eq!(refusal, Some("approval.denied_sod"));
        let admin = user(
            "dave",
            Roles {
                admin: true,
                global_approver: true,
                ..Roles::default()
            },
        );
        assert_eq!(refusal_of(&admin, "dave"), Some("approval.denied_sod"));
    }

    fn refusal_of(u: &CurrentUser, requester: &str) -> Option<&'static str> {
        refusal(u, &request(requester)).map(|r| r.0)
    }

    #[test]
    fn only_approvers_of_the_team_or_global_approvers_decide() {
        let bob = user(
            "bob",
            Roles {
                approver_teams: vec!["payments".into()],
                ..Roles::default()
            },
        );
        assert_eq!(refusal_of(&bob, "alice"), None);
        let lending = user(
            "lena",
            Roles {
                approver_teams: vec!["lending".into()],
                ..Roles::default()
            },
        );
        assert_eq!(refusal_of(&lending, "alice"), Some("approval.denied_role"));
        let carol = user(
            "carol",
            Roles {
                global_approver: true,
                ..Roles::default()
            },
        );
        assert_eq!(refusal_of(&carol, "alice"), None);
        let erin = user(
            "erin",
            Roles {
                auditor: true,
                ..Roles::default()
            },
        );
        assert_eq!(refusal_of(&erin, "alice"), Some("approval.denied_role"));
    }
}
