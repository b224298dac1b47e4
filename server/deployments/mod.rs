//! Deployments: the durable record of putting one approved request into its AWS account, and
//! its queue (leases and fencing epochs). The engine that works the queue is `worker`.

pub mod change_set;
pub mod routes;
pub mod store;
pub mod views;

use serde::{Deserialize, Serialize};

/// Where a deployment stands.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum DeploymentStatus {
    Queued,
    Running,
    /// The change set is ready and waits for the approvers; no worker holds it.
    AwaitingApproval,
    Succeeded,
    Failed,
    RolledBack,
    NeedsAttention,
    Cancelled,
}

impl DeploymentStatus {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn parse(s: &str) -> Option<DeploymentStatus> {
        s.parse().ok()
    }

    pub fn label(self) -> &'static str {
        match self {
            DeploymentStatus::Succeeded => "deployed",
            DeploymentStatus::RolledBack => "rolled back",
            DeploymentStatus::NeedsAttention => "needs attention",
            DeploymentStatus::AwaitingApproval => "awaiting approval",
            other => other.as_str(),
        }
    }

    pub fn is_terminal(self) -> bool {
        !matches!(
            self,
            DeploymentStatus::Queued | DeploymentStatus::Running | DeploymentStatus::AwaitingApproval
        )
    }
}

/// The last durable step of a deployment; a recovered job resumes from here after reading AWS.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Step {
    /// Nothing sent to AWS yet.
    Start,
    /// CreateChangeSet may have been sent.
    ChangeSetRequested,
    /// The change set is created and recorded with its changes: it waits for approval, then for
    /// execution (when the request is approved the job is queued again from here).
    ChangeSetReady,
    /// ExecuteChangeSet may have been sent.
    ExecuteRequested,
    /// The request ended before execution: delete the change set (and an empty stack under
    /// review) so nothing is left in the target account.
    Discard,
    Finished,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn parse(s: &str) -> Option<Step> {
        s.parse().ok()
    }
}

/// A stack output as recorded after a successful deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Output {
    pub key: String,
    pub value: String,
    pub description: Option<String>,
}

pub use crate::change::Change;

/// A stored deployment.
#[derive(Debug, Clone, Serialize)]
pub struct Deployment {
    pub id: String,
    pub request_id: String,
    pub account_id: String,
    pub region: String,
    pub stack_name: String,
    pub content_hash: String,
    pub status: DeploymentStatus,
    pub step: Step,
    pub epoch: i64,
    pub attempts: i64,
    pub change_set_name: Option<String>,
    pub change_set_arn: Option<String>,
    pub stack_id: Option<String>,
    pub error: Option<String>,
    pub outputs: Vec<Output>,
    pub changes: Vec<Change>,
    /// The stack's template and parameters when the change set was made (`None` for a new stack).
    #[serde(skip)]
    pub base_template: Option<String>,
    #[serde(skip)]
    pub base_params: Option<std::collections::BTreeMap<String, String>>,
    /// The stack's status and last update when the change set was made: if it differs at
    /// execution, the stack changed since and the change set is stale.
    pub stack_fingerprint: Option<String>,
    pub change_set_ready_at: Option<i64>,
    /// When a queued job is due (later than now while a change window holds it).
    pub next_attempt_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

impl Deployment {
    /// The idempotency token of one mutating call: `dep-<uuid>-<step>-<epoch>`, which also joins
    /// the portal's audit records with CloudFormation events and CloudTrail.
    pub fn token(&self, step: &str, epoch: i64) -> String {
        format!("dep-{}-{step}-{epoch}", self.id)
    }

    /// The change set's name: stable for the whole deployment so a recovered job finds it.
    pub fn change_set_name(&self) -> String {
        format!("stackgate-{}", self.id)
    }

    /// RoleSessionName of the deploy role session (visible in the target account's CloudTrail).
    pub fn session_name(&self, request_number: i64) -> String {
        let short: String = self.id.chars().filter(|c| *c != '-').take(12).collect();
        format!("stackgate-req{request_number}-{short}")
    }
}

/// A stack event as shown on the request page.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub at: i64,
    pub logical_id: String,
    pub resource_type: String,
    pub status: String,
    pub reason: Option<String>,
}

impl Deployment {
    /// A deployment just claimed (epoch 1) of the given target, for unit tests.
    #[cfg(test)]
    pub(crate) fn for_tests(id: &str, account_id: &str, region: &str, stack_name: &str) -> Self {
        Deployment {
            id: id.into(),
            request_id: "r".into(),
            account_id: account_id.into(),
            region: region.into(),
            stack_name: stack_name.into(),
            content_hash: String::new(),
            status: DeploymentStatus::Running,
            step: Step::Start,
            epoch: 1,
            attempts: 0,
            change_set_name: None,
            change_set_arn: None,
            stack_id: None,
            error: None,
            outputs: vec![],
            changes: vec![],
            base_template: None,
            base_params: None,
            stack_fingerprint: None,
            change_set_ready_at: None,
            next_attempt_at: 0,
            created_at: 0,
            updated_at: 0,
            finished_at: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_names_fit_aws_limits() {
        let d = Deployment::for_tests(
            "0b3e0a0e-7d4f-4f6e-9a55-6b0f7f1d2c3a",
            "444444444444",
            "eu-west-2",
            "s",
        );
        let token = d.token("exec", 12);
        assert!(token.len() <= 128);
        assert!(token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        assert!(token.starts_with("dep-"));
        let session = d.session_name(123456);
        assert!((2..=64).contains(&session.len()), "{session}");
        assert!(d.change_set_name().len() <= 128);
        assert!(d.change_set_name().as_bytes()[0].is_ascii_alphabetic());
    }

    #[test]
    fn statuses_round_trip() {
        use strum::VariantArray;
        for s in DeploymentStatus::VARIANTS {
            assert_eq!(DeploymentStatus::parse(s.as_str()), Some(*s));
        }
        for s in Step::VARIANTS {
            assert_eq!(Step::parse(s.as_str()), Some(*s));
        }
        assert_eq!(DeploymentStatus::RolledBack.as_str(), "rolled_back");
        assert_eq!(
            Step::parse("execute_requested"),
            Some(Step::ExecuteRequested)
        );
        assert_eq!(Step::parse("Execute_Requested"), None);
    }
}
