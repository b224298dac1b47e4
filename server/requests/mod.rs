//! Service requests: a team's order of a blueprint into one of its accounts, and the explicit
//! state machine every request moves through.

pub mod actions;
pub mod api;
pub mod input;
pub mod routes;
pub mod store;
pub mod views;

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::accounts::EnvClass;

/// Where a request is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    Draft,
    PendingApproval,
    Approved,
    Deploying,
    Deployed,
    Failed,
    Rejected,
    Cancelled,
}

/// What can happen to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Submit,
    /// The approval quorum was reached.
    Approve,
    Reject,
    Cancel,
    StartDeployment,
    DeploymentSucceeded,
    DeploymentFailed,
}

/// A transition that is not allowed from the current status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a request that is {from} cannot be {verb}")]
pub struct InvalidTransition {
    pub from: RequestStatus,
    pub verb: &'static str,
}

impl RequestStatus {
    pub const ALL: [RequestStatus; 8] = [
        RequestStatus::Draft,
        RequestStatus::PendingApproval,
        RequestStatus::Approved,
        RequestStatus::Deploying,
        RequestStatus::Deployed,
        RequestStatus::Failed,
        RequestStatus::Rejected,
        RequestStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Draft => "draft",
            RequestStatus::PendingApproval => "pending_approval",
            RequestStatus::Approved => "approved",
            RequestStatus::Deploying => "deploying",
            RequestStatus::Deployed => "deployed",
            RequestStatus::Failed => "failed",
            RequestStatus::Rejected => "rejected",
            RequestStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<RequestStatus> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Words for people.
    pub fn label(self) -> &'static str {
        match self {
            RequestStatus::Draft => "draft",
            RequestStatus::PendingApproval => "pending approval",
            RequestStatus::Approved => "approved",
            RequestStatus::Deploying => "deploying",
            RequestStatus::Deployed => "deployed",
            RequestStatus::Failed => "failed",
            RequestStatus::Rejected => "rejected",
            RequestStatus::Cancelled => "cancelled",
        }
    }

    /// Terminal states absorb: nothing moves a request out of them.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RequestStatus::Deployed
                | RequestStatus::Failed
                | RequestStatus::Rejected
                | RequestStatus::Cancelled
        )
    }

    /// The one place that says which transitions are allowed.
    pub fn apply(self, t: Transition) -> Result<RequestStatus, InvalidTransition> {
        use RequestStatus as S;
        use Transition as T;
        let next = match (self, t) {
            (S::Draft, T::Submit) => Some(S::PendingApproval),
            (S::PendingApproval, T::Approve) => Some(S::Approved),
            (S::PendingApproval, T::Reject) => Some(S::Rejected),
            (S::Draft | S::PendingApproval | S::Approved, T::Cancel) => Some(S::Cancelled),
            (S::Approved, T::StartDeployment) => Some(S::Deploying),
            (S::Deploying, T::DeploymentSucceeded) => Some(S::Deployed),
            (S::Approved | S::Deploying, T::DeploymentFailed) => Some(S::Failed),
            _ => None,
        };
        next.ok_or(InvalidTransition {
            from: self,
            verb: match t {
                T::Submit => "submitted",
                T::Approve => "approved",
                T::Reject => "rejected",
                T::Cancel => "cancelled",
                T::StartDeployment => "deployed",
                T::DeploymentSucceeded => "marked deployed",
                T::DeploymentFailed => "marked failed",
            },
        })
    }
}

impl fmt::Display for RequestStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A stored request.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceRequest {
    pub id: String,
    pub number: i64,
    pub title: String,
    pub team: String,
    pub requester_id: String,
    pub requester_name: String,
    pub blueprint_slug: String,
    pub blueprint_version: String,
    pub blueprint_digest: String,
    pub account_id: String,
    pub account_name: String,
    pub region: String,
    pub env_class: EnvClass,
    pub env_name: String,
    pub stack_name: String,
    pub params: BTreeMap<String, serde_json::Value>,
    #[serde(skip)]
    pub template_body: String,
    pub template_digest: String,
    /// What an approval covers: see [`content_hash`].
    pub content_hash: String,
    pub policy: serde_json::Value,
    pub status: RequestStatus,
    pub status_reason: Option<String>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl ServiceRequest {
    /// The request as lists show it.
    pub fn summary(&self) -> store::Summary {
        store::Summary {
            id: self.id.clone(),
            number: self.number,
            title: self.title.clone(),
            team: self.team.clone(),
            requester_id: self.requester_id.clone(),
            requester_name: self.requester_name.clone(),
            blueprint_slug: self.blueprint_slug.clone(),
            blueprint_version: self.blueprint_version.clone(),
            account_id: self.account_id.clone(),
            account_name: self.account_name.clone(),
            region: self.region.clone(),
            env_class: self.env_class,
            env_name: self.env_name.clone(),
            stack_name: self.stack_name.clone(),
            status: self.status,
            status_reason: self.status_reason.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// The digest an approval is bound to: blueprint, rendered template, parameters, account,
/// region and stack. Any change to one of them gives another hash and voids earlier approvals.
pub fn content_hash(
    blueprint_digest: &str,
    template_digest: &str,
    params: &BTreeMap<String, serde_json::Value>,
    account_id: &str,
    region: &str,
    stack_name: &str,
) -> String {
    let canonical = serde_json::json!([
        blueprint_digest,
        template_digest,
        params,
        account_id,
        region,
        stack_name
    ])
    .to_string();
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::RequestStatus as S;
    use super::Transition as T;
    use super::*;

    #[test]
    fn the_happy_path_is_allowed() {
        let mut s = S::Draft;
        for t in [
            T::Submit,
            T::Approve,
            T::StartDeployment,
            T::DeploymentSucceeded,
        ] {
            s = match s.apply(t) {
                Ok(next) => next,
                Err(e) => panic!("{e}"),
            };
        }
        assert_eq!(s, S::Deployed);
    }

    #[test]
    fn terminal_states_absorb_every_transition() {
        let all = [
            T::Submit,
            T::Approve,
            T::Reject,
            T::Cancel,
            T::StartDeployment,
            T::DeploymentSucceeded,
            T::DeploymentFailed,
        ];
        for s in S::ALL.into_iter().filter(|s| s.is_terminal()) {
            for t in all {
                assert!(s.apply(t).is_err(), "{s:?} accepted {t:?}");
            }
        }
    }

    #[test]
    fn deploying_cannot_be_cancelled_or_rejected() {
        assert!(S::Deploying.apply(T::Cancel).is_err());
        assert!(S::Deploying.apply(T::Reject).is_err());
        assert!(S::Approved.apply(T::Approve).is_err());
        let e = S::Deployed.apply(T::Cancel).err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("a request that is deployed cannot be cancelled")
        );
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for s in S::ALL {
            assert_eq!(S::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn the_content_hash_changes_with_any_bound_field() {
        let p: BTreeMap<String, serde_json::Value> =
            [("vpc_cidr".to_string(), serde_json::json!("10.0.0.0/16"))].into();
        let base = content_hash("b", "t", &p, "111111111111", "eu-west-2", "s");
        assert_eq!(
            base,
            content_hash("b", "t", &p, "111111111111", "eu-west-2", "s")
        );
        assert_ne!(
            base,
            content_hash("b", "t", &p, "111111111111", "eu-west-1", "s")
        );
        assert_ne!(
            base,
            content_hash("b", "t2", &p, "111111111111", "eu-west-2", "s")
        );
        let mut p2 = p.clone();
        p2.insert("az_count".into(), serde_json::json!(3));
        assert_ne!(
            base,
            content_hash("b", "t", &p2, "111111111111", "eu-west-2", "s")
        );
    }
}
