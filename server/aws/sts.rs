//! STS: the portal's own AWS configuration, and sessions in a target account made by assuming
//! its deploy role with the registry's ExternalId, a RoleSessionName, SourceIdentity and session
//! tags. The credentials stay in memory and are re-assumed with the same parameters before they
//! expire; nothing here prints key material.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, error::CredentialsError, future};

use super::classify::{Op, map_sdk_error};
use super::{AssumeSpec, AwsSettings, DeployError};

/// Lifetime requested for assumed-role credentials: the maximum for role chaining, and at most
/// one hour.
pub const ASSUME_ROLE_DURATION_SECS: i32 = 3600;

/// Re-assume the role when the current credentials have less than this left.
const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// Region used for STS when the portal's own configuration names none.
const FALLBACK_STS_REGION: &str = "us-east-1";

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

/// The SDK loader with the portal's retry and timeout settings, endpoint and region.
pub(crate) fn loader(settings: &AwsSettings) -> aws_config::ConfigLoader {
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
        let sts = self.sts_client();
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

impl AwsConnector {
    /// Assumes `spec.role_arn` as a deployment would (ExternalId, SourceIdentity, session tags)
    /// and makes one harmless read with the temporary credentials, `sts:GetCallerIdentity`.
    /// Returns the ARN the portal acted as in the target account.
    pub async fn check_access(&self, spec: AssumeSpec) -> Result<String, DeployError> {
        validate_spec(&spec)?;
        let sts = self.sts_client();
        let creds = assume(&sts, &spec).await?;
        let assumed = aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::config::Builder::from(&self.config)
                .region(Region::new(spec.region.clone()))
                .credentials_provider(creds)
                .build(),
        );
        let who = assumed
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| map_sdk_error(Op::GetCallerIdentity, e))?;
        Ok(who.arn().unwrap_or_default().to_string())
    }

    fn sts_client(&self) -> aws_sdk_sts::Client {
        let sts_region = self
            .config
            .region()
            .cloned()
            .unwrap_or_else(|| Region::new(FALLBACK_STS_REGION));
        aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::config::Builder::from(&self.config)
                .region(sts_region)
                .build(),
        )
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
    pub(super) client: aws_sdk_cloudformation::Client,
    pub(super) spec: Arc<AssumeSpec>,
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

#[cfg(test)]
mod tests {
    use super::*;

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
