//! The request page (the review: what is asked, what changes, the checks, the conversation, the
//! deployment and the decisions) and the approvals inbox.

use std::collections::BTreeMap;

use askama::Template;

use crate::deployments::views::DeploymentPanel;
use crate::requests::store::environments::Linked;
use crate::requests::views::{PolicyRow, RequestRow};
use crate::web::{Layout, When};

/// One decision as the side panel shows it.
#[derive(Debug, Clone)]
pub struct ApprovalView {
    pub approver_name: String,
    pub decision: String,
    pub comment: String,
    pub digest_short: String,
    pub change_set_short: String,
    pub current: bool,
    pub when: When,
}

/// The change set approvers review: what CloudFormation will do, and for an update the diff of
/// template and parameters against what is deployed.
#[derive(Debug, Clone)]
pub struct ChangeSetPanel {
    pub arn: String,
    pub status: String,
    pub changes: Vec<crate::deployments::Change>,
    pub is_update: bool,
    pub diff: String,
    pub params: Vec<crate::deployments::change_set::ParamChange>,
}

/// A break-glass release as the page shows it.
#[derive(Debug, Clone)]
pub struct EmergencyView {
    pub released_by: String,
    pub reason: String,
    pub when: When,
    pub reviewed_by: Option<String>,
    pub review_comment: String,
}

/// One line of the conversation.
#[derive(Debug, Clone)]
pub struct TimelineItem {
    pub actor: String,
    pub text: String,
    pub detail: String,
    pub kind: String,
    pub when: When,
}

/// The request page.
#[derive(Template)]
#[template(path = "approvals/request.html")]
pub struct ShowPage {
    pub layout: Layout,
    pub r: RequestRow,
    /// For a workload: the environment it went into.
    pub environment: Option<Linked>,
    /// For an environment: the workloads requested into it (newest first, bounded).
    pub workloads: Vec<Linked>,
    pub blueprint: String,
    pub content_hash_short: String,
    pub template_digest: String,
    pub status_reason: Option<String>,
    pub params: Vec<(String, String)>,
    pub resources: Vec<(String, usize)>,
    pub template_body: String,
    pub policy: Vec<PolicyRow>,
    pub approvals: Vec<ApprovalView>,
    pub required: u32,
    /// What the request's rules ask for ("2 approvals: 1 of payments-approvers, …").
    pub rule: String,
    /// The version of the approval rules the request was submitted under.
    pub policy_version: i64,
    pub approved_count: usize,
    /// What the rules still need ("1 more approval, 1 of security-approvers"), empty when met.
    pub needs: String,
    /// The risk flags (name, words).
    pub risk_flags: Vec<(String, String)>,
    pub change_set: Option<ChangeSetPanel>,
    /// When a change window holds the approved change.
    pub held_until: Option<When>,
    pub emergency: Option<EmergencyView>,
    pub can_release_emergency: bool,
    pub can_review_emergency: bool,
    pub timeline: Vec<TimelineItem>,
    pub can_decide: bool,
    pub decide_note: Option<String>,
    pub can_cancel: bool,
    pub action_error: Option<String>,
    pub dep: DeploymentPanel,
}

/// The approvals inbox.
#[derive(Template)]
#[template(path = "approvals/inbox.html")]
pub struct InboxPage {
    pub layout: Layout,
    pub rows: Vec<RequestRow>,
    pub class_filter: String,
    /// Where the next page starts, if there is one.
    pub next: Option<String>,
}

/// What an audit record says on the request's conversation tab.
pub fn timeline_text(action: &str, outcome: &str) -> String {
    match (action, outcome) {
        ("request.submitted", _) => "submitted the request".into(),
        ("change_set.requested", _) => "started creating the change set".into(),
        ("request.review_ready", _) => "— the change set is ready for review".into(),
        ("request.auto_approved", _) => "— approved by the rules (dev, no risk flags)".into(),
        ("request.emergency_released", _) => {
            "released the change in an EMERGENCY, without approvals".into()
        }
        ("request.emergency_reviewed", _) => "reviewed the emergency release".into(),
        ("request.emergency_denied", _) => "tried an emergency release (refused)".into(),
        ("request.expired", _) => "— the request expired".into(),
        ("change_set.superseded", _) => {
            "— the change set went stale; a fresh one replaces it and earlier approvals no longer count"
                .into()
        }
        ("change_set.no_changes", _) => "— no changes: the stack already matches".into(),
        ("change_set.failed", _) => "— the change set failed".into(),
        ("change_set.deleted", _) => "deleted the change set".into(),
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

/// A parameter's value as a person reads it (strings without quotes).
pub fn display_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Resources by type in a stored template.
pub fn resource_summary(body: &str) -> Vec<(String, usize)> {
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

/// The policy results stored with a request, as the checks tab lists them.
pub fn stored_policy_rows(policy: &serde_json::Value) -> Vec<PolicyRow> {
    let strings = |v: Option<&serde_json::Value>| -> Vec<String> {
        v.and_then(|m| m.as_array())
            .map(|m| {
                m.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
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
                    messages: strings(r.get("messages")),
                })
                .collect()
        })
        .unwrap_or_default()
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
