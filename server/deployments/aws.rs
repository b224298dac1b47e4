//! AWS glue for the deployment engine: STS AssumeRole into a target account, then CloudFormation
//! change sets in that account.
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

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, error::CredentialsError, future};
use aws_sdk_cloudformation::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_cloudformation::types::{Capability, ChangeSetType, Tag as CfnTag};
use chrono::{DateTime, Utc};

/// Lifetime requested for assumed-role credentials: the maximum for role chaining, and the bar
/// (E3) is at most one hour.
pub const ASSUME_ROLE_DURATION_SECS: i32 = 3600;

/// Re-assume the role when the current credentials have less than this left.
const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// Upper bound on result pages followed for one logical read (events, change-set changes).
const MAX_PAGES: usize = 10;

/// Region used for STS when the portal's own configuration names none.
const FALLBACK_STS_REGION: &str = "us-east-1";

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

    /// DeleteStack with a ClientRequestToken. Deleting a stack that does not exist succeeds.
    fn delete_stack(
        &self,
        stack_name: &str,
        client_request_token: &str,
    ) -> impl Future<Output = Result<(), DeployError>> + Send;
}

/// The portal's own AWS configuration, from which target-account sessions are made.
#[derive(Clone)]
pub struct AwsConnector {
    config: SdkConfig,
}

impl fmt::Debug for AwsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsConnector")
            .field("region", &self.config.region())
            .field("endpoint_url", &self.config.endpoint_url())
            .finish_non_exhaustive()
    }
}

fn retry_config() -> RetryConfig {
    // Standard mode (not adaptive: adaptive rate-limits across tenants), with its retry quota.
    RetryConfig::standard()
        .with_max_attempts(4)
        .with_initial_backoff(Duration::from_millis(500))
        .with_max_backoff(Duration::from_secs(20))
}

fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .read_timeout(Duration::from_secs(30))
        .operation_attempt_timeout(Duration::from_secs(30))
        .operation_timeout(Duration::from_secs(90))
        .build()
}

fn loader(settings: &AwsSettings) -> aws_config::ConfigLoader {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(retry_config())
        .timeout_config(timeout_config());
    if let Some(url) = &settings.endpoint_url {
        loader = loader.endpoint_url(url.clone());
    }
    if let Some(region) = &settings.sts_region {
        loader = loader.region(Region::new(region.clone()));
    }
    loader
}

impl AwsConnector {
    /// Load the portal's own credentials and region from the standard provider chain
    /// (environment, profile, web identity, container or instance role).
    pub async fn new(settings: AwsSettings) -> Self {
        Self {
            config: loader(&settings).load().await,
        }
    }

    /// Like [`AwsConnector::new`] but with explicit credentials for the portal itself, e.g. the
    /// emulator's dummy keys in tests. Retry and timeout settings are the same.
    pub async fn with_credentials(settings: AwsSettings, credentials: Credentials) -> Self {
        Self {
            config: loader(&settings)
                .credentials_provider(credentials)
                .load()
                .await,
        }
    }

    /// Assume `spec.role_arn` and return a CloudFormation session in `spec.region` acting with
    /// the temporary credentials. Fails with `AssumeRoleDenied` when STS refuses, `Transient`
    /// when STS could not be reached, `Other` for an invalid spec (checked before any call).
    pub async fn connect(&self, spec: AssumeSpec) -> Result<CfnSession, DeployError> {
        validate_spec(&spec)?;
        let sts_region = self
            .config
            .region()
            .cloned()
            .unwrap_or_else(|| Region::new(FALLBACK_STS_REGION));
        let sts = aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::config::Builder::from(&self.config)
                .region(sts_region)
                .build(),
        );
        let spec = Arc::new(spec);
        let first = assume(&sts, &spec).await?;
        let provider = AssumedRoleProvider {
            sts,
            spec: Arc::clone(&spec),
            primed: Mutex::new(Some(first)),
        };
        let cfn = aws_sdk_cloudformation::Client::from_conf(
            aws_sdk_cloudformation::config::Builder::from(&self.config)
                .region(Region::new(spec.region.clone()))
                .credentials_provider(provider)
                .build(),
        );
        Ok(CfnSession { client: cfn, spec })
    }
}

fn valid_sts_name(s: &str) -> bool {
    (2..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
}

fn validate_spec(spec: &AssumeSpec) -> Result<(), DeployError> {
    let arn_ok = spec.role_arn.starts_with("arn:aws")
        && spec
            .role_arn
            .split(':')
            .nth(4)
            .is_some_and(|acct| acct.len() == 12 && acct.chars().all(|c| c.is_ascii_digit()))
        && spec.role_arn.contains(":role/");
    if !arn_ok {
        return Err(DeployError::Other(format!(
            "not an IAM role ARN: {:?}",
            spec.role_arn
        )));
    }
    if !(2..=1224).contains(&spec.external_id.len()) {
        return Err(DeployError::Other(
            "ExternalId must be 2-1224 characters".into(),
        ));
    }
    if !valid_sts_name(&spec.session_name) {
        return Err(DeployError::Other(format!(
            "invalid RoleSessionName {:?}",
            spec.session_name
        )));
    }
    if !valid_sts_name(&spec.source_identity) {
        return Err(DeployError::Other(format!(
            "invalid SourceIdentity {:?}",
            spec.source_identity
        )));
    }
    if spec.region.is_empty()
        || !spec
            .region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(DeployError::Other(format!(
            "invalid region {:?}",
            spec.region
        )));
    }
    Ok(())
}

/// One AssumeRole call with every parameter of the spec.
async fn assume(sts: &aws_sdk_sts::Client, spec: &AssumeSpec) -> Result<Credentials, DeployError> {
    let mut req = sts
        .assume_role()
        .role_arn(&spec.role_arn)
        .external_id(&spec.external_id)
        .role_session_name(&spec.session_name)
        .source_identity(&spec.source_identity)
        .duration_seconds(ASSUME_ROLE_DURATION_SECS);
    for (k, v) in &spec.tags {
        let tag = aws_sdk_sts::types::Tag::builder()
            .key(k)
            .value(v)
            .build()
            .map_err(|e| DeployError::Other(format!("invalid session tag {k:?}: {e}")))?;
        req = req.tags(tag);
    }
    let out = req
        .send()
        .await
        .map_err(|e| map_sdk_error(Op::AssumeRole, e))?;
    let creds = out
        .credentials()
        .ok_or_else(|| DeployError::Other("AssumeRole answered without credentials".to_string()))?;
    let expiry = SystemTime::try_from(*creds.expiration()).ok();
    Ok(Credentials::new(
        creds.access_key_id(),
        creds.secret_access_key(),
        Some(creds.session_token().to_string()),
        expiry,
        "stackgate-assume-role",
    ))
}

/// Credentials provider for a CloudFormation client: hands out the credentials of the eager
/// first AssumeRole, then re-assumes with the same spec whenever the SDK's identity cache finds
/// them near expiry.
struct AssumedRoleProvider {
    sts: aws_sdk_sts::Client,
    spec: Arc<AssumeSpec>,
    primed: Mutex<Option<Credentials>>,
}

impl fmt::Debug for AssumedRoleProvider {
    // No key material, not even the access key id.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AssumedRoleProvider")
            .field("role_arn", &self.spec.role_arn)
            .field("session_name", &self.spec.session_name)
            .finish_non_exhaustive()
    }
}

impl AssumedRoleProvider {
    fn take_primed(&self) -> Option<Credentials> {
        let mut guard = self.primed.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = guard.as_ref().is_some_and(|c| {
            c.expiry().is_none_or(|exp| {
                exp.duration_since(SystemTime::now())
                    .is_ok_and(|left| left > REFRESH_MARGIN)
            })
        });
        if fresh { guard.take() } else { None }
    }

    async fn load(&self) -> aws_credential_types::provider::Result {
        if let Some(creds) = self.take_primed() {
            return Ok(creds);
        }
        assume(&self.sts, &self.spec)
            .await
            .map_err(CredentialsError::provider_error)
    }
}

impl ProvideCredentials for AssumedRoleProvider {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.load())
    }
}

/// A CloudFormation client in one target account and region, acting with assumed-role
/// credentials.
#[derive(Clone)]
pub struct CfnSession {
    client: aws_sdk_cloudformation::Client,
    spec: Arc<AssumeSpec>,
}

impl fmt::Debug for CfnSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CfnSession")
            .field("role_arn", &self.spec.role_arn)
            .field("region", &self.spec.region)
            .finish_non_exhaustive()
    }
}

impl CfnSession {
    /// The role this session acts as.
    pub fn role_arn(&self) -> &str {
        &self.spec.role_arn
    }

    /// The region this session deploys into.
    pub fn region(&self) -> &str {
        &self.spec.region
    }
}

/// Which call failed, for error classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    AssumeRole,
    CreateChangeSet,
    DescribeChangeSet,
    ExecuteChangeSet,
    DescribeStacks,
    DescribeStackEvents,
    DeleteStack,
}

const TRANSIENT_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalFailure",
    "InternalError",
    "InternalServerError",
    "RequestTimeout",
    "RequestTimeoutException",
    "PriorRequestNotComplete",
    "IDPCommunicationError",
];

const ASSUME_DENIED_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "RegionDisabledException",
];

fn is_no_changes(message: &str) -> bool {
    message.contains("No updates are to be performed")
        || message.contains("didn't contain changes")
        || message.contains("does not contain changes")
}

fn is_missing(message: &str) -> bool {
    message.contains("does not exist")
}

/// Classify an error response from AWS (pure, for unit tests).
fn classify_service_error(
    op: Op,
    http_status: Option<u16>,
    code: Option<&str>,
    message: &str,
) -> DeployError {
    let code_s = code.unwrap_or("");
    let text = if code_s.is_empty() {
        message.to_string()
    } else {
        format!("{code_s}: {message}")
    };
    if TRANSIENT_CODES.contains(&code_s)
        || message.contains("Rate exceeded")
        || http_status.is_some_and(|s| s == 429 || s >= 500)
    {
        return DeployError::Transient(text);
    }
    if op == Op::AssumeRole {
        return if ASSUME_DENIED_CODES.contains(&code_s) || http_status == Some(403) {
            DeployError::AssumeRoleDenied(text)
        } else {
            DeployError::Other(text)
        };
    }
    match code_s {
        "AlreadyExistsException" | "TokenAlreadyExistsException" | "NameAlreadyExistsException" => {
            return DeployError::AlreadyExists(text);
        }
        "ChangeSetNotFound" | "ChangeSetNotFoundException" | "StackNotFoundException" => {
            return DeployError::NotFound(text);
        }
        "InvalidChangeSetStatus" | "InvalidChangeSetStatusException" => {
            return DeployError::ChangeSetFailed(text);
        }
        "InsufficientCapabilitiesException" if op == Op::ExecuteChangeSet => {
            return DeployError::TemplateRejected(text);
        }
        _ => {}
    }
    match op {
        Op::CreateChangeSet if is_no_changes(message) => DeployError::NoChanges,
        Op::CreateChangeSet if is_missing(message) => DeployError::NotFound(text),
        // A stack in a state that forbids the change is not a template problem.
        Op::CreateChangeSet
            if message.contains("state and can not be updated")
                || message.contains("state and cannot be updated") =>
        {
            DeployError::Other(text)
        }
        Op::CreateChangeSet
            if matches!(
                code_s,
                "ValidationError" | "InsufficientCapabilitiesException"
            ) =>
        {
            DeployError::TemplateRejected(text)
        }
        Op::DescribeChangeSet
        | Op::ExecuteChangeSet
        | Op::DescribeStacks
        | Op::DescribeStackEvents
            if is_missing(message) =>
        {
            DeployError::NotFound(text)
        }
        _ => DeployError::Other(text),
    }
}

type HttpResponse = aws_sdk_cloudformation::config::http::HttpResponse;

/// Classify any SDK error (service error, timeout, dispatch failure…).
fn map_sdk_error<E>(op: Op, err: SdkError<E, HttpResponse>) -> DeployError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if let SdkError::ServiceError(ctx) = &err {
        let status = Some(ctx.raw().status().as_u16());
        let e = ctx.err();
        return classify_service_error(op, status, e.code(), e.message().unwrap_or_default());
    }
    let text = format!("{op:?}: {}", DisplayErrorContext(&err));
    // The credentials provider re-assumes the role when the session's credentials near expiry;
    // its failure surfaces here carrying the DeployError it was given.
    if text.contains("assume role denied: ") {
        return DeployError::AssumeRoleDenied(text);
    }
    if text.contains("transient AWS failure: ") {
        return DeployError::Transient(text);
    }
    match &err {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => DeployError::Transient(text),
        SdkError::DispatchFailure(df) if df.is_user() => DeployError::Other(text),
        SdkError::DispatchFailure(_) => DeployError::Transient(text),
        _ => DeployError::Other(text),
    }
}

/// A FAILED change set is an error for the caller: no changes, or a failure with its reason.
fn failed_change_set(status: &str, reason: Option<&str>) -> Option<DeployError> {
    if status != "FAILED" {
        return None;
    }
    let reason = reason.unwrap_or("change set FAILED without a reason");
    Some(if is_no_changes(reason) {
        DeployError::NoChanges
    } else {
        DeployError::ChangeSetFailed(reason.to_string())
    })
}

fn non_empty(s: Option<&str>) -> Option<String> {
    s.filter(|s| !s.is_empty()).map(str::to_string)
}

fn to_chrono(t: Option<&aws_sdk_cloudformation::primitives::DateTime>) -> DateTime<Utc> {
    t.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
        .unwrap_or(DateTime::UNIX_EPOCH)
}

impl StackOps for CfnSession {
    async fn create_change_set(&self, input: ChangeSetInput) -> Result<String, DeployError> {
        let mut req = self
            .client
            .create_change_set()
            .stack_name(&input.stack_name)
            .change_set_name(&input.change_set_name)
            .template_body(&input.template_body)
            .change_set_type(match input.change_set_type {
                ChangeSetKind::Create => ChangeSetType::Create,
                ChangeSetKind::Update => ChangeSetType::Update,
            })
            .client_token(&input.client_token)
            .set_role_arn(input.role_arn.clone());
        for (k, v) in &input.tags {
            req = req.tags(CfnTag::builder().key(k).value(v).build());
        }
        for c in &input.capabilities {
            req = req.capabilities(Capability::from(c.as_str()));
        }
        let out = req
            .send()
            .await
            .map_err(|e| map_sdk_error(Op::CreateChangeSet, e))?;
        non_empty(out.id()).ok_or_else(|| {
            DeployError::Other("CreateChangeSet answered without a change-set id".into())
        })
    }

    async fn describe_change_set(
        &self,
        change_set_arn: &str,
    ) -> Result<ChangeSetState, DeployError> {
        let mut state: Option<ChangeSetState> = None;
        let mut next: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let out = self
                .client
                .describe_change_set()
                .change_set_name(change_set_arn)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| map_sdk_error(Op::DescribeChangeSet, e))?;
            let status = out.status().map(|s| s.as_str()).unwrap_or_default();
            if let Some(err) = failed_change_set(status, out.status_reason()) {
                return Err(err);
            }
            let changes = out
                .changes()
                .iter()
                .filter_map(|c| c.resource_change())
                .map(|rc| ResourceChange {
                    logical_id: rc.logical_resource_id().unwrap_or_default().to_string(),
                    resource_type: rc.resource_type().unwrap_or_default().to_string(),
                    action: rc
                        .action()
                        .map(|a| a.as_str().to_string())
                        .unwrap_or_default(),
                    replacement: non_empty(rc.replacement().map(|r| r.as_str())),
                });
            let st = state.get_or_insert_with(|| ChangeSetState {
                status: status.to_string(),
                execution_status: out
                    .execution_status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                status_reason: non_empty(out.status_reason()),
                changes: Vec::new(),
            });
            st.changes.extend(changes);
            match non_empty(out.next_token()) {
                Some(t) => next = Some(t),
                None => break,
            }
        }
        state.ok_or_else(|| DeployError::Other("DescribeChangeSet returned nothing".into()))
    }

    async fn change_set_arn(
        &self,
        stack_name: &str,
        change_set_name: &str,
    ) -> Result<String, DeployError> {
        let out = self
            .client
            .describe_change_set()
            .stack_name(stack_name)
            .change_set_name(change_set_name)
            .send()
            .await
            .map_err(|e| map_sdk_error(Op::DescribeChangeSet, e))?;
        non_empty(out.change_set_id()).ok_or_else(|| {
            DeployError::Other("DescribeChangeSet answered without a change-set id".into())
        })
    }

    async fn execute_change_set(
        &self,
        change_set_arn: &str,
        client_request_token: &str,
    ) -> Result<(), DeployError> {
        self.client
            .execute_change_set()
            .change_set_name(change_set_arn)
            .client_request_token(client_request_token)
            .send()
            .await
            .map_err(|e| map_sdk_error(Op::ExecuteChangeSet, e))?;
        Ok(())
    }

    async fn describe_stack(&self, stack_name: &str) -> Result<Option<StackState>, DeployError> {
        let out = match self
            .client
            .describe_stacks()
            .stack_name(stack_name)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                return match map_sdk_error(Op::DescribeStacks, e) {
                    DeployError::NotFound(_) => Ok(None),
                    other => Err(other),
                };
            }
        };
        let Some(stack) = out.stacks().first() else {
            return Ok(None);
        };
        Ok(Some(StackState {
            role_arn: non_empty(stack.role_arn()),
            stack_id: stack.stack_id().unwrap_or_default().to_string(),
            status: stack
                .stack_status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            status_reason: non_empty(stack.stack_status_reason()),
            outputs: stack
                .outputs()
                .iter()
                .map(|o| {
                    (
                        o.output_key().unwrap_or_default().to_string(),
                        o.output_value().unwrap_or_default().to_string(),
                        non_empty(o.description()),
                    )
                })
                .collect(),
            tags: stack
                .tags()
                .iter()
                .map(|t| {
                    (
                        t.key().unwrap_or_default().to_string(),
                        t.value().unwrap_or_default().to_string(),
                    )
                })
                .collect(),
        }))
    }

    async fn stack_events(&self, stack_name: &str) -> Result<Vec<StackEvent>, DeployError> {
        let mut events = Vec::new();
        let mut next: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let out = self
                .client
                .describe_stack_events()
                .stack_name(stack_name)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| map_sdk_error(Op::DescribeStackEvents, e))?;
            events.extend(out.stack_events().iter().map(|e| {
                StackEvent {
                    timestamp: to_chrono(e.timestamp()),
                    logical_id: e.logical_resource_id().unwrap_or_default().to_string(),
                    resource_type: e.resource_type().unwrap_or_default().to_string(),
                    status: e
                        .resource_status()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default(),
                    reason: non_empty(e.resource_status_reason()),
                    client_request_token: non_empty(e.client_request_token()),
                }
            }));
            match non_empty(out.next_token()) {
                Some(t) => next = Some(t),
                None => break,
            }
        }
        // AWS already answers newest first; the stable sort keeps that order for equal times.
        events.sort_by_key(|e| std::cmp::Reverse(e.timestamp));
        Ok(events)
    }

    async fn delete_stack(
        &self,
        stack_name: &str,
        client_request_token: &str,
    ) -> Result<(), DeployError> {
        self.client
            .delete_stack()
            .stack_name(stack_name)
            .client_request_token(client_request_token)
            .send()
            .await
            .map_err(|e| map_sdk_error(Op::DeleteStack, e))?;
        Ok(())
    }
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

    #[test]
    fn transient_errors_are_retryable_for_every_op() {
        for op in [
            Op::AssumeRole,
            Op::CreateChangeSet,
            Op::ExecuteChangeSet,
            Op::DescribeStacks,
            Op::DeleteStack,
        ] {
            for (status, code, msg) in [
                (Some(400), Some("Throttling"), "Rate exceeded"),
                (Some(400), None, "Rate exceeded"),
                (Some(503), Some("ServiceUnavailable"), "try later"),
                (Some(500), Some("Weird"), "boom"),
                (Some(429), None, "slow down"),
            ] {
                let e = classify_service_error(op, status, code, msg);
                assert!(e.is_retryable(), "{op:?} {code:?} {msg} -> {e:?}");
            }
        }
    }

    #[test]
    fn assume_role_errors() {
        let e = classify_service_error(
            Op::AssumeRole,
            Some(403),
            Some("AccessDenied"),
            "not authorized to perform sts:AssumeRole",
        );
        assert!(matches!(e, DeployError::AssumeRoleDenied(ref m) if m.contains("AccessDenied")));
        let e = classify_service_error(
            Op::AssumeRole,
            Some(403),
            Some("RegionDisabledException"),
            "STS is not activated",
        );
        assert!(matches!(e, DeployError::AssumeRoleDenied(_)));
        let e = classify_service_error(Op::AssumeRole, Some(400), Some("ValidationError"), "bad");
        assert!(matches!(e, DeployError::Other(_)));
    }

    #[test]
    fn create_change_set_errors() {
        let c = |code: &str, msg: &str| {
            classify_service_error(Op::CreateChangeSet, Some(400), Some(code), msg)
        };
        assert_eq!(
            c("ValidationError", "No updates are to be performed."),
            DeployError::NoChanges
        );
        assert!(matches!(
            c("ValidationError", "Template format error: unsupported structure."),
            DeployError::TemplateRejected(ref m) if m.contains("Template format error")
        ));
        assert!(matches!(
            c(
                "InsufficientCapabilitiesException",
                "Requires capabilities : [CAPABILITY_IAM]"
            ),
            DeployError::TemplateRejected(_)
        ));
        assert!(matches!(
            c("AlreadyExistsException", "ChangeSet x already exists"),
            DeployError::AlreadyExists(_)
        ));
        assert!(matches!(
            c("ValidationError", "Stack [s] does not exist"),
            DeployError::NotFound(_)
        ));
        assert!(matches!(
            c(
                "ValidationError",
                "Stack:arn is in ROLLBACK_COMPLETE state and can not be updated."
            ),
            DeployError::Other(_)
        ));
        assert!(matches!(
            c("LimitExceededException", "too many stacks"),
            DeployError::Other(_)
        ));
    }

    #[test]
    fn execute_and_describe_errors() {
        let e = classify_service_error(
            Op::ExecuteChangeSet,
            Some(400),
            Some("InvalidChangeSetStatus"),
            "cannot be executed in its current execution status of [OBSOLETE]",
        );
        assert!(matches!(e, DeployError::ChangeSetFailed(ref m) if m.contains("OBSOLETE")));
        let e = classify_service_error(
            Op::ExecuteChangeSet,
            Some(404),
            Some("ChangeSetNotFound"),
            "ChangeSet [x] does not exist",
        );
        assert!(matches!(e, DeployError::NotFound(_)));
        let e = classify_service_error(
            Op::DescribeStacks,
            Some(400),
            Some("ValidationError"),
            "Stack with id s does not exist",
        );
        assert!(matches!(e, DeployError::NotFound(_)));
        let e = classify_service_error(
            Op::DeleteStack,
            Some(400),
            Some("TokenAlreadyExistsException"),
            "token used",
        );
        assert!(matches!(e, DeployError::AlreadyExists(_)));
    }

    #[test]
    fn failed_change_sets() {
        assert_eq!(failed_change_set("CREATE_COMPLETE", None), None);
        assert_eq!(failed_change_set("CREATE_PENDING", Some("x")), None);
        assert_eq!(
            failed_change_set(
                "FAILED",
                Some(
                    "The submitted information didn't contain changes. Submit different information to create a change set."
                )
            ),
            Some(DeployError::NoChanges)
        );
        assert_eq!(
            failed_change_set("FAILED", Some("No updates are to be performed.")),
            Some(DeployError::NoChanges)
        );
        assert_eq!(
            failed_change_set("FAILED", Some("Parameter X is invalid")),
            Some(DeployError::ChangeSetFailed(
                "Parameter X is invalid".into()
            ))
        );
        assert!(matches!(
            failed_change_set("FAILED", None),
            Some(DeployError::ChangeSetFailed(_))
        ));
    }

    fn spec() -> AssumeSpec {
        AssumeSpec {
            role_arn: "arn:aws:iam::222222222222:role/stackgate-deploy".into(),
            external_id: "6f1c0a52-2a8e-4c3e-9d0b-0c9e1f3a7b21".into(),
            session_name: "portal-0190d1c2".into(),
            source_identity: "user-3f9a".into(),
            tags: vec![("team".into(), "a".into())],
            region: "eu-west-1".into(),
        }
    }

    #[test]
    fn spec_validation_fails_closed() {
        assert_eq!(validate_spec(&spec()), Ok(()));
        let bad = [
            AssumeSpec {
                role_arn: "arn:aws:iam::22222222222:role/x".into(),
                ..spec()
            },
            AssumeSpec {
                role_arn: "arn:aws:iam::222222222222:user/x".into(),
                ..spec()
            },
            AssumeSpec {
                role_arn: "*".into(),
                ..spec()
            },
            AssumeSpec {
                external_id: String::new(),
                ..spec()
            },
            AssumeSpec {
                session_name: "has space".into(),
                ..spec()
            },
            AssumeSpec {
                session_name: "x".repeat(65),
                ..spec()
            },
            AssumeSpec {
                source_identity: "a".into(),
                ..spec()
            },
            AssumeSpec {
                region: "EU/west".into(),
                ..spec()
            },
        ];
        for s in bad {
            assert!(
                matches!(validate_spec(&s), Err(DeployError::Other(_))),
                "{s:?}"
            );
        }
    }

    #[test]
    fn debug_output_carries_no_key_material() {
        let provider = AssumedRoleProvider {
            sts: aws_sdk_sts::Client::from_conf(
                aws_sdk_sts::config::Builder::new()
                    .behavior_version(BehaviorVersion::latest())
                    .region(Region::new("us-east-1"))
                    .build(),
            ),
            spec: Arc::new(spec()),
            primed: Mutex::new(Some(Credentials::new(
                "ASIAEXAMPLEEXAMPLE12",
                "secret-key-material",
                Some("session-token-material".into()),
                None,
                "test",
            ))),
        };
        let shown = format!("{provider:?}");
        assert!(shown.contains("stackgate-deploy"), "{shown}");
        for secret in [
            "ASIAEXAMPLE",
            "secret-key-material",
            "session-token-material",
        ] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }

    #[test]
    fn primed_credentials_are_used_once_and_only_while_fresh() {
        let provider = |expiry: Option<SystemTime>| AssumedRoleProvider {
            sts: aws_sdk_sts::Client::from_conf(
                aws_sdk_sts::config::Builder::new()
                    .behavior_version(BehaviorVersion::latest())
                    .region(Region::new("us-east-1"))
                    .build(),
            ),
            spec: Arc::new(spec()),
            primed: Mutex::new(Some(Credentials::new("a", "b", None, expiry, "test"))),
        };
        let fresh = provider(Some(SystemTime::now() + Duration::from_secs(3600)));
        assert!(fresh.take_primed().is_some());
        assert!(
            fresh.take_primed().is_none(),
            "primed credentials handed out twice"
        );
        let stale = provider(Some(SystemTime::now() + Duration::from_secs(60)));
        assert!(
            stale.take_primed().is_none(),
            "near-expiry credentials reused"
        );
    }
}
