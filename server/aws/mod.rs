//! AWS glue: STS AssumeRole into a target account (`sts`), then CloudFormation in that account
//! (`cloudformation`), every failure classified for the caller (`classify`).
//!
//! * [`AwsConnector`] holds the portal's own AWS configuration (credentials from the standard
//!   provider chain, explicit `standard` retry mode, a timeout on every call, an optional endpoint
//!   override for the emulator).
//! * [`AwsConnector::connect`] assumes the target account's deploy role with an ExternalId,
//!   RoleSessionName, SourceIdentity, session tags and `DurationSeconds` ≤ 3600, and returns a
//!   [`CfnSession`]: a CloudFormation client in the target region that acts with those temporary
//!   credentials. The credentials stay in memory; they are re-assumed with the same parameters
//!   before they expire, so a deployment may outlive one credential lifetime. Nothing here logs
//!   them, and the `Debug` impls print no key material.
//! * [`StackOps`] is the CloudFormation surface the engine needs, as a trait, so the engine's logic
//!   can be unit-tested at every failure point with a fake; [`CfnSession`] implements it.
//! * [`DeployError`] classifies every failure into what a caller branches on. `Transient` means
//!   the outcome of the call is *unknown* (throttling, 5xx, timeout, connection lost): for a
//!   mutating call the engine must reconcile (read the stack and its events, matching its client
//!   request token) before re-issuing the call with the same token.
//! * [`stack_status_class`] folds CloudFormation's stack statuses into the classes the engine's
//!   state machine uses.
//!
//! Statuses are carried as strings, not SDK enums: the emulator (and new AWS releases) return
//! values the SDK does not know (`REVIEW_IN_PROGRESS` deserialises as an unknown variant), and
//! `.as_str()` keeps them intact.

mod classify;
mod cloudformation;
mod sts;

use std::future::Future;

use chrono::{DateTime, Utc};

pub(crate) use sts::loader as sdk_loader;
pub use sts::{ASSUME_ROLE_DURATION_SECS, AwsConnector, CfnSession};

/// Where the portal talks to AWS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsSettings {
    /// Endpoint override for every AWS service (the emulator in tests); `None` means real AWS.
    pub endpoint_url: Option<String>,
    /// Region of the portal's own STS calls; `None` takes the SDK's chain (`AWS_REGION`, profile),
    /// then us-east-1.
    pub sts_region: Option<String>,
}

/// What to assume in a target account. Every field must come from the admin-controlled account
/// registry or from the portal itself, never from a request body (bar E1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssumeSpec {
    /// The target account's deploy role, `arn:aws:iam::<account>:role/<name>`.
    pub role_arn: String,
    /// The portal-generated ExternalId the role's trust policy requires.
    pub external_id: String,
    /// RoleSessionName, e.g. `portal-<deployment_id>`: 2–64 characters of `[\w+=,.@-]`.
    pub session_name: String,
    /// Stable identity of the requester the deployment acts for (2–64 characters of `[\w+=,.@-]`).
    pub source_identity: String,
    /// Session tags, e.g. `team`, `request_id`, `env`.
    pub tags: Vec<(String, String)>,
    /// Target region, e.g. `eu-west-1`.
    pub region: String,
}

/// Why an AWS call failed, classified for the caller's state machine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeployError {
    /// STS refused to let the portal assume the deploy role (trust policy, ExternalId, disabled
    /// region, or the portal's own credentials are invalid). Not retryable without a human.
    #[error("assume role denied: {0}")]
    AssumeRoleDenied(String),
    /// CloudFormation rejected the template or its inputs when creating the change set.
    #[error("template rejected: {0}")]
    TemplateRejected(String),
    /// The change set would change nothing (real AWS: a FAILED change set that "didn't contain
    /// changes"; the emulator: `ValidationError: No updates are to be performed`).
    #[error("the change set contains no changes")]
    NoChanges,
    /// The change set failed to be created, or cannot be executed in its current status (e.g.
    /// OBSOLETE or already executed).
    #[error("change set failed: {0}")]
    ChangeSetFailed(String),
    /// The stack or change set does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A change set or stack with this name, or a call with this client token, already exists:
    /// a retried create whose first attempt succeeded. Reconcile by reading it.
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// Throttling, a 5xx, a timeout or a lost connection. The outcome is unknown: reconcile, then
    /// retry with backoff and the same client token.
    #[error("transient AWS failure: {0}")]
    Transient(String),
    /// Anything else (invalid input, stack in a state that forbids the call, limits…).
    #[error("AWS call failed: {0}")]
    Other(String),
}

impl DeployError {
    /// Whether retrying (after reconciling) may succeed without a human.
    pub fn is_retryable(&self) -> bool {
        matches!(self, DeployError::Transient(_))
    }
}

/// Coarse class of a CloudFormation stack status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusClass {
    /// An operation is running (`*_IN_PROGRESS`, including cleanup and review).
    InProgress,
    /// The operation finished as asked (`CREATE_COMPLETE`, `UPDATE_COMPLETE`, `IMPORT_COMPLETE`,
    /// `DELETE_COMPLETE`).
    Succeeded,
    /// A create failed and CloudFormation did not roll back (`CREATE_FAILED`).
    Failed,
    /// The operation failed and CloudFormation rolled back cleanly (`ROLLBACK_COMPLETE`,
    /// `UPDATE_ROLLBACK_COMPLETE`, `IMPORT_ROLLBACK_COMPLETE`).
    RolledBack,
    /// A rollback or delete failed, or the status is unknown: a human must decide (no automatic
    /// `ContinueUpdateRollback`, bar F8).
    NeedsAttention,
}

/// Classify a stack status string. Unknown statuses are `NeedsAttention` (fail closed).
pub fn stack_status_class(status: &str) -> StatusClass {
    match status {
        "CREATE_COMPLETE" | "UPDATE_COMPLETE" | "IMPORT_COMPLETE" | "DELETE_COMPLETE" => {
            StatusClass::Succeeded
        }
        "ROLLBACK_COMPLETE" | "UPDATE_ROLLBACK_COMPLETE" | "IMPORT_ROLLBACK_COMPLETE" => {
            StatusClass::RolledBack
        }
        "CREATE_FAILED" => StatusClass::Failed,
        s if s.ends_with("_IN_PROGRESS") => StatusClass::InProgress,
        _ => StatusClass::NeedsAttention,
    }
}

/// Whether a change set is for a new stack or an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeSetKind {
    /// `ChangeSetType=CREATE`: the stack does not exist yet.
    Create,
    /// `ChangeSetType=UPDATE`: the stack exists.
    Update,
}

/// Input of [`StackOps::create_change_set`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeSetInput {
    /// Stack name, unique per account and region.
    pub stack_name: String,
    /// Change-set name; make it globally unique (the emulator looks change sets up by name
    /// across stacks).
    pub change_set_name: String,
    /// The rendered template (JSON).
    pub template_body: String,
    /// Create or update.
    pub change_set_type: ChangeSetKind,
    /// Stack tags, e.g. `portal:team`.
    pub tags: Vec<(String, String)>,
    /// CreateChangeSet's ClientToken, deterministic per deployment step (1–128 characters of
    /// `[a-zA-Z0-9][-a-zA-Z0-9]*`).
    pub client_token: String,
    /// Capabilities from the catalog item's allowlist, e.g. `CAPABILITY_IAM`.
    pub capabilities: Vec<String>,
    /// CloudFormation service role in the target account, if any.
    pub role_arn: Option<String>,
}

/// One resource change of a change set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceChange {
    /// Logical id in the template.
    pub logical_id: String,
    /// Resource type, e.g. `AWS::EC2::VPC`.
    pub resource_type: String,
    /// `Add`, `Modify`, `Remove`, `Import`, `Dynamic`.
    pub action: String,
    /// `True`, `False`, `Conditional`; `None` when not reported (the emulator never reports it).
    pub replacement: Option<String>,
}

/// What [`StackOps::describe_change_set`] reports for a change set that did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeSetState {
    /// `CREATE_PENDING`, `CREATE_IN_PROGRESS`, `CREATE_COMPLETE`, …
    pub status: String,
    /// `UNAVAILABLE`, `AVAILABLE`, `EXECUTE_IN_PROGRESS`, `EXECUTE_COMPLETE`, `EXECUTE_FAILED`,
    /// `OBSOLETE`.
    pub execution_status: String,
    /// Reason given with the status, if any.
    pub status_reason: Option<String>,
    /// The resource changes (all pages).
    pub changes: Vec<ResourceChange>,
}

/// What [`StackOps::describe_stack`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackState {
    /// The stack ARN.
    pub stack_id: String,
    /// Stack status as CloudFormation spells it; classify with [`stack_status_class`].
    pub status: String,
    /// Reason given with the status, if any.
    pub status_reason: Option<String>,
    /// Outputs as `(key, value, description)`.
    pub outputs: Vec<(String, String, Option<String>)>,
    /// Stack tags as `(key, value)`, e.g. to check `portal:team` ownership.
    pub tags: Vec<(String, String)>,
    /// The CloudFormation service role the stack runs with, if any.
    pub role_arn: Option<String>,
    /// Parameters as `(key, value)`.
    pub parameters: Vec<(String, String)>,
    /// When the stack was last updated (or created, if never updated).
    pub last_changed: Option<DateTime<Utc>>,
}

impl StackState {
    /// What tells whether the stack changed between two reads: its status and last change.
    pub fn fingerprint(&self) -> String {
        let at = self
            .last_changed
            .map(|t| t.timestamp_millis().to_string())
            .unwrap_or_default();
        format!("{}@{at}", self.status)
    }
}

/// One stack event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackEvent {
    /// When it happened.
    pub timestamp: DateTime<Utc>,
    /// Logical id of the resource (the stack name for stack-level events).
    pub logical_id: String,
    /// Resource type (`AWS::CloudFormation::Stack` for stack-level events).
    pub resource_type: String,
    /// Resource status, e.g. `CREATE_FAILED`.
    pub status: String,
    /// ResourceStatusReason, if any.
    pub reason: Option<String>,
    /// The client request token of the operation that caused the event, if any.
    pub client_request_token: Option<String>,
}

/// The CloudFormation operations the deployment engine needs. Implemented by [`CfnSession`];
/// implement it with a fake to unit-test the engine at every failure point.
pub trait StackOps: Send + Sync {
    /// CreateChangeSet; returns the change-set ARN. `NoChanges` for a no-op update,
    /// `TemplateRejected` for validation errors, `AlreadyExists` for a name or token in use.
    fn create_change_set(
        &self,
        input: ChangeSetInput,
    ) -> impl Future<Output = Result<String, DeployError>> + Send;

    /// DescribeChangeSet by ARN (all pages of changes). A FAILED change set is an error:
    /// `NoChanges` when it "didn't contain changes", `ChangeSetFailed(reason)` otherwise.
    fn describe_change_set(
        &self,
        change_set_arn: &str,
    ) -> impl Future<Output = Result<ChangeSetState, DeployError>> + Send;

    /// The ARN of the change set `change_set_name` of `stack_name` (DescribeChangeSet by name,
    /// which CloudFormation accepts only together with the stack). `NotFound` when there is none.
    fn change_set_arn(
        &self,
        stack_name: &str,
        change_set_name: &str,
    ) -> impl Future<Output = Result<String, DeployError>> + Send;

    /// ExecuteChangeSet by ARN with a ClientRequestToken. `ChangeSetFailed` when the change set
    /// cannot be executed in its current status (OBSOLETE, already executed).
    fn execute_change_set(
        &self,
        change_set_arn: &str,
        client_request_token: &str,
    ) -> impl Future<Output = Result<(), DeployError>> + Send;

    /// DescribeStacks for one stack; `None` when it does not exist.
    fn describe_stack(
        &self,
        stack_name: &str,
    ) -> impl Future<Output = Result<Option<StackState>, DeployError>> + Send;

    /// DescribeStackEvents, newest first (up to 10 pages). `NotFound` when the stack does not
    /// exist.
    fn stack_events(
        &self,
        stack_name: &str,
    ) -> impl Future<Output = Result<Vec<StackEvent>, DeployError>> + Send;

    /// DeleteChangeSet by ARN. Deleting one that does not exist succeeds.
    fn delete_change_set(
        &self,
        change_set_arn: &str,
    ) -> impl Future<Output = Result<(), DeployError>> + Send;

    /// GetTemplate (original, as submitted) of a stack; `None` when it does not exist.
    fn get_template(
        &self,
        stack_name: &str,
    ) -> impl Future<Output = Result<Option<String>, DeployError>> + Send;

    /// DeleteStack with a ClientRequestToken. Deleting a stack that does not exist succeeds.
    fn delete_stack(
        &self,
        stack_name: &str,
        client_request_token: &str,
    ) -> impl Future<Output = Result<(), DeployError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes() {
        use StatusClass::*;
        let cases = [
            ("CREATE_COMPLETE", Succeeded),
            ("UPDATE_COMPLETE", Succeeded),
            ("IMPORT_COMPLETE", Succeeded),
            ("DELETE_COMPLETE", Succeeded),
            ("ROLLBACK_COMPLETE", RolledBack),
            ("UPDATE_ROLLBACK_COMPLETE", RolledBack),
            ("IMPORT_ROLLBACK_COMPLETE", RolledBack),
            ("CREATE_FAILED", Failed),
            ("ROLLBACK_FAILED", NeedsAttention),
            ("UPDATE_ROLLBACK_FAILED", NeedsAttention),
            ("UPDATE_FAILED", NeedsAttention),
            ("DELETE_FAILED", NeedsAttention),
            ("IMPORT_ROLLBACK_FAILED", NeedsAttention),
            ("CREATE_IN_PROGRESS", InProgress),
            ("UPDATE_IN_PROGRESS", InProgress),
            ("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", InProgress),
            ("UPDATE_ROLLBACK_IN_PROGRESS", InProgress),
            ("UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS", InProgress),
            ("ROLLBACK_IN_PROGRESS", InProgress),
            ("DELETE_IN_PROGRESS", InProgress),
            ("REVIEW_IN_PROGRESS", InProgress),
            ("", NeedsAttention),
            ("SOMETHING_NEW", NeedsAttention),
            ("create_complete", NeedsAttention),
        ];
        for (status, want) in cases {
            assert_eq!(stack_status_class(status), want, "{status}");
        }
    }
}
