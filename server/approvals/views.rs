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
    pub current: bool,
    pub when: When,
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
    pub approved_count: usize,
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
