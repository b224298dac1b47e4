//! Approvals: who may decide on a request, and what their decision does.
//!
//! Rules, enforced here on the server: nobody decides on their own request; only approvers of
//! the request's team (or global approvers such as security) decide; an approval is bound to
//! the request's content hash; the request is approved once the number of *distinct* approvers
//! its environment class needs is reached, and its deployment is queued in the same transaction.

pub mod actions;
pub mod routes;
pub mod store;
pub mod views;

use serde::Serialize;

use crate::db::{Db, StoreError};
use crate::requests::store::inbox_query;
use crate::requests::{self, RequestStatus, ServiceRequest};
use crate::web::CurrentUser;

/// Approve or reject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::IntoStaticStr, strum::EnumString)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Decision {
    Approve,
    Reject,
}

impl Decision {
    /// The decision a URL names (`/requests/{id}/approve`, `/reject`).
    pub fn from_path(s: &str) -> Option<Decision> {
        s.parse().ok()
    }

    pub fn as_str(self) -> &'static str {
        self.into()
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

/// How many requests wait for `user`'s review, counting no further than `cap`.
pub async fn inbox_count(db: &Db, user: &CurrentUser, cap: i64) -> Result<i64, StoreError> {
    let scope = user.review_scope();
    requests::store::count(db, &inbox_query(&user.id, scope.as_deref()), cap).await
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::EnvClass;
    use crate::web::Roles;

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
            kind: "environment".into(),
            environment_id: None,
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
