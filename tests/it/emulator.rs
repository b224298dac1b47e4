//! The AWS emulator as the tests inspect and arrange it: deploy roles created in an account with
//! the trust policy a test needs, and the AssumeRole calls the emulator admitted or refused
//! (`tests/harness/emulator/README.md`, "AssumeRole").

use crate::support::harness_env;

/// The emulator's endpoint, from the harness.
pub fn endpoint() -> String {
    harness_env("STACKGATE_TEST_AWS_ENDPOINT")
}

/// The trust policy a stackgate deploy role has in real AWS: it trusts the portal's account
/// (the emulator maps any static key to 123456789012) with `sts:AssumeRole`,
/// `sts:SetSourceIdentity` and `sts:TagSession`, only with exactly this ExternalId and only with
/// a SourceIdentity.
pub fn deploy_role_trust_policy(external_id: &str) -> serde_json::Value {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
            "Action": ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"],
            "Condition": {
                "StringEquals": {"sts:ExternalId": external_id},
                "Null": {"sts:SourceIdentity": "false"}
            }
        }]
    })
}

/// Creates the role `name` in `account` with `trust_policy`, through IAM's CreateRole (moto's
/// `x-moto-account-id` header names the account; the emulator does not check signatures, only
/// the credential scope that routes the call to IAM). Returns its ARN.
pub async fn create_role(account: &str, name: &str, trust_policy: &serde_json::Value) -> String {
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("Action", "CreateRole"),
            ("Version", "2010-05-08"),
            ("RoleName", name),
            ("AssumeRolePolicyDocument", &trust_policy.to_string()),
        ])
        .finish();
    let resp = reqwest::Client::new()
        .post(format!("{}/", endpoint()))
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/iam/aws4_request, \
             SignedHeaders=host, Signature=0",
        )
        .header("x-moto-account-id", account)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("the emulator answers");
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    assert!(
        status.is_success(),
        "CreateRole {name} in {account}: {status} {text}"
    );
    let arn = format!("arn:aws:iam::{account}:role/{name}");
    assert!(text.contains(&arn), "CreateRole answered {text}");
    arn
}

/// The emulator's records of one sts model (`AssumedRole`, `AssumeRoleRefusal`) for a role.
async fn sts_records(model: &str, role_arn: &str) -> Vec<serde_json::Value> {
    let data: serde_json::Value = reqwest::get(format!(
        "{}/moto-api/data.json?service=sts&model={model}",
        endpoint()
    ))
    .await
    .expect("the emulator answers")
    .json()
    .await
    .expect("data.json is JSON");
    data["sts"][model]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r["role_arn"] == role_arn)
        .collect()
}

/// Every AssumeRole of `role_arn` the emulator admitted: `session_name`, `external_id`,
/// `source_identity`, `session_tags`, `account_id`, …
pub async fn assumed(role_arn: &str) -> Vec<serde_json::Value> {
    sts_records("AssumedRole", role_arn).await
}

/// Every AssumeRole of `role_arn` the emulator refused, with the reason STS keeps to itself.
pub async fn refused(role_arn: &str) -> Vec<serde_json::Value> {
    sts_records("AssumeRoleRefusal", role_arn).await
}

/// The stack `name` in `account` (eu-west-2), read through the account's shared test deploy
/// role (`tests/harness/roles.json`: it admits any ExternalId), or `None`.
pub async fn stack(account: &str, name: &str) -> Option<stackgate::aws::StackState> {
    use stackgate::aws::StackOps;
    probe(account)
        .await
        .describe_stack(name)
        .await
        .expect("DescribeStacks")
}

/// Someone changes the stack outside the portal (the console, another pipeline): an update
/// to `template` with the stack's own tags, executed and complete when this returns.
pub async fn change_outside(account: &str, name: &str, template: &str) {
    use stackgate::aws::{ChangeSetInput, ChangeSetKind, StackOps};
    let ops = probe(account).await;
    let before = ops
        .describe_stack(name)
        .await
        .expect("DescribeStacks")
        .expect("the stack exists");
    let id = uuid::Uuid::new_v4().simple().to_string();
    let arn = ops
        .create_change_set(ChangeSetInput {
            stack_name: name.to_string(),
            change_set_name: format!("outside-{id}"),
            template_body: template.to_string(),
            change_set_type: ChangeSetKind::Update,
            tags: before.tags.clone(),
            client_token: format!("outside-{id}"),
            capabilities: vec![],
            role_arn: None,
        })
        .await
        .expect("CreateChangeSet outside the portal");
    ops.execute_change_set(&arn, &format!("outside-{id}-x"))
        .await
        .expect("ExecuteChangeSet outside the portal");
    for _ in 0..50 {
        let now = ops.describe_stack(name).await.expect("DescribeStacks");
        if now.is_some_and(|s| s.status.ends_with("_COMPLETE")) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the outside change to {name} did not complete");
}

async fn probe(account: &str) -> stackgate::aws::CfnSession {
    use stackgate::aws::{AssumeSpec, AwsConnector, AwsSettings};
    let connector = AwsConnector::with_credentials(
        AwsSettings {
            endpoint_url: Some(endpoint()),
            sts_region: Some("us-east-1".into()),
        },
        aws_credential_types::Credentials::for_tests(),
    )
    .await;
    connector
        .connect(AssumeSpec {
            role_arn: format!("arn:aws:iam::{account}:role/stackgate-deploy"),
            external_id: "test-probe".into(),
            session_name: "stackgate-test-probe".into(),
            source_identity: "stackgate-test".into(),
            tags: vec![],
            region: "eu-west-2".into(),
        })
        .await
        .expect("the shared test deploy role")
}
