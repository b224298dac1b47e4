//! The AWS glue (`stackgate::deployments::aws`) against the AWS emulator started by
//! `tests/harness/moto_launcher.py` (`STACKGATE_TEST_AWS_ENDPOINT`): cross-account AssumeRole with
//! ExternalId, change sets, rollback, template rejection and deletion. Every test uses its own
//! stack and change-set names, so tests may share one emulator.

// A failed expectation in a test is a failed test: panicking with a message is the point.

use std::time::Duration;

use aws_credential_types::Credentials;
use stackgate::aws::{
    AssumeSpec, AwsConnector, AwsSettings, CfnSession, ChangeSetInput, ChangeSetKind, DeployError,
    StackOps, StackState, StatusClass, stack_status_class,
};
use uuid::Uuid;

use crate::support::harness_env;

const TARGET_ACCOUNT: &str = "222222222222";
const OTHER_ACCOUNT: &str = "333333333333";
const REGION: &str = "eu-west-1";

fn endpoint() -> String {
    harness_env("STACKGATE_TEST_AWS_ENDPOINT")
}

async fn connector() -> AwsConnector {
    AwsConnector::with_credentials(
        AwsSettings {
            endpoint_url: Some(endpoint()),
            sts_region: Some("us-east-1".into()),
        },
        // The emulator accepts any key for the portal itself (account 123456789012).
        Credentials::new("AKIASTACKGATETEST000", "test-secret", None, None, "it"),
    )
    .await
}

fn short_id() -> String {
    Uuid::new_v4().simple().to_string()[..12].to_string()
}

fn spec(account: &str, external_id: &str, session_name: &str, region: &str) -> AssumeSpec {
    AssumeSpec {
        role_arn: format!("arn:aws:iam::{account}:role/stackgate-deploy"),
        external_id: external_id.to_string(),
        session_name: session_name.to_string(),
        source_identity: "user-it-tester".to_string(),
        tags: vec![
            ("team".into(), "platform".into()),
            ("request_id".into(), "42".into()),
            ("env".into(), "dev".into()),
        ],
        region: region.to_string(),
    }
}

async fn session(account: &str, region: &str) -> CfnSession {
    let s = spec(
        account,
        &Uuid::new_v4().to_string(),
        &format!("portal-{}", short_id()),
        region,
    );
    match connector().await.connect(s).await {
        Ok(session) => session,
        Err(e) => panic!("AssumeRole into {account} failed: {e}"),
    }
}

/// A small literal JSON template: VPC, subnet, route table and association, with outputs.
fn vpc_template(extra_subnet: bool) -> String {
    let mut resources = serde_json::json!({
        "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.40.0.0/16"}},
        "Subnet": {"Type": "AWS::EC2::Subnet", "Properties": {
            "VpcId": {"Ref": "Vpc"}, "CidrBlock": "10.40.1.0/24", "AvailabilityZone": "eu-west-1a"}},
        "RouteTable": {"Type": "AWS::EC2::RouteTable", "Properties": {"VpcId": {"Ref": "Vpc"}}},
        "Assoc": {"Type": "AWS::EC2::SubnetRouteTableAssociation", "Properties": {
            "SubnetId": {"Ref": "Subnet"}, "RouteTableId": {"Ref": "RouteTable"}}}
    });
    let mut outputs = serde_json::json!({
        "VpcId": {"Value": {"Ref": "Vpc"}, "Description": "The VPC"},
        "RouteTableId": {"Value": {"Ref": "RouteTable"}}
    });
    if extra_subnet {
        resources["Subnet2"] = serde_json::json!({"Type": "AWS::EC2::Subnet", "Properties": {
            "VpcId": {"Ref": "Vpc"}, "CidrBlock": "10.40.2.0/24", "AvailabilityZone": "eu-west-1b"}});
        outputs["Subnet2Id"] = serde_json::json!({"Value": {"Ref": "Subnet2"}});
    }
    serde_json::json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "stackgate integration test VPC",
        "Resources": resources,
        "Outputs": outputs
    })
    .to_string()
}

/// Accepted by CreateChangeSet, fails on execution: the subnet is outside the VPC's CIDR.
fn failing_template() -> String {
    serde_json::json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {
            "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.50.0.0/16"}},
            "BadSubnet": {"Type": "AWS::EC2::Subnet", "Properties": {
                "VpcId": {"Ref": "Vpc"}, "CidrBlock": "10.99.0.0/24", "AvailabilityZone": "eu-west-1a"}}
        }
    })
    .to_string()
}

fn input(stack: &str, template: String, kind: ChangeSetKind) -> ChangeSetInput {
    let id = short_id();
    ChangeSetInput {
        stack_name: stack.to_string(),
        change_set_name: format!("cs-{id}"),
        template_body: template,
        change_set_type: kind,
        tags: vec![("stackgate:team".into(), "platform".into())],
        client_token: format!("dep-{id}-changeset-1"),
        capabilities: vec!["CAPABILITY_IAM".into()],
        role_arn: None,
    }
}

/// Create a change set, check it is ready, execute it, and poll the stack until it leaves
/// `*_IN_PROGRESS`. Returns the change-set ARN, the execution token and the final stack.
async fn deploy(
    ops: &CfnSession,
    stack: &str,
    template: String,
    kind: ChangeSetKind,
) -> (String, String, StackState) {
    let arn = ops
        .create_change_set(input(stack, template, kind))
        .await
        .unwrap_or_else(|e| panic!("CreateChangeSet for {stack}: {e}"));
    assert!(arn.starts_with("arn:aws:cloudformation:"), "{arn}");
    let cs = ops
        .describe_change_set(&arn)
        .await
        .unwrap_or_else(|e| panic!("DescribeChangeSet {arn}: {e}"));
    assert_eq!(cs.status, "CREATE_COMPLETE", "{cs:?}");
    assert_eq!(cs.execution_status, "AVAILABLE", "{cs:?}");
    let token = format!("dep-{}-execute-1", short_id());
    ops.execute_change_set(&arn, &token)
        .await
        .unwrap_or_else(|e| panic!("ExecuteChangeSet {arn}: {e}"));
    // The emulator completes synchronously; the poller must accept a terminal state at once.
    for _ in 0..50 {
        let state = ops
            .describe_stack(stack)
            .await
            .unwrap_or_else(|e| panic!("DescribeStacks {stack}: {e}"))
            .unwrap_or_else(|| panic!("stack {stack} does not exist after execution"));
        if stack_status_class(&state.status) != StatusClass::InProgress {
            return (arn, token, state);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("stack {stack} stayed in progress");
}

fn output<'a>(state: &'a StackState, key: &str) -> Option<&'a (String, String, Option<String>)> {
    state.outputs.iter().find(|(k, _, _)| k == key)
}

#[tokio::test]
async fn deploys_into_the_target_account_with_external_id_then_deletes() {
    let external_id = Uuid::new_v4().to_string();
    let session_name = format!("portal-{}", short_id());
    let ops = connector()
        .await
        .connect(spec(TARGET_ACCOUNT, &external_id, &session_name, REGION))
        .await
        .unwrap_or_else(|e| panic!("AssumeRole: {e}"));
    assert_eq!(ops.region(), REGION);

    // The emulator recorded exactly what STS was asked for.
    let data: serde_json::Value = reqwest::get(format!(
        "{}/moto-api/data.json?service=sts&model=AssumedRole",
        endpoint()
    ))
    .await
    .expect("GET /moto-api/data.json")
    .json()
    .await
    .expect("data.json is JSON");
    let assumed: Vec<&serde_json::Value> = data["sts"]["AssumedRole"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let mine: Vec<_> = assumed
        .iter()
        .filter(|r| r["session_name"] == session_name.as_str())
        .collect();
    assert_eq!(
        mine.len(),
        1,
        "one AssumeRole with our session name: {assumed:?}"
    );
    assert_eq!(
        mine[0]["external_id"],
        external_id.as_str(),
        "{:?}",
        mine[0]
    );
    assert_eq!(
        mine[0]["role_arn"],
        format!("arn:aws:iam::{TARGET_ACCOUNT}:role/stackgate-deploy").as_str()
    );
    assert_eq!(mine[0]["account_id"], TARGET_ACCOUNT);

    let stack = format!("portal-it-{}", short_id());
    let (arn, token, state) =
        deploy(&ops, &stack, vpc_template(false), ChangeSetKind::Create).await;
    assert_eq!(state.status, "CREATE_COMPLETE", "{state:?}");
    assert_eq!(stack_status_class(&state.status), StatusClass::Succeeded);
    assert!(
        state.stack_id.starts_with(&format!(
            "arn:aws:cloudformation:{REGION}:{TARGET_ACCOUNT}:stack/{stack}/"
        )),
        "stack lives in the target account and region: {}",
        state.stack_id
    );
    let (_, vpc_id, description) =
        output(&state, "VpcId").unwrap_or_else(|| panic!("no VpcId output: {state:?}"));
    assert!(vpc_id.starts_with("vpc-"), "{vpc_id}");
    assert_eq!(description.as_deref(), Some("The VPC"));
    assert!(
        output(&state, "RouteTableId")
            .is_some_and(|(_, v, d)| v.starts_with("rtb-") && d.is_none()),
        "{state:?}"
    );
    assert!(
        state
            .tags
            .contains(&("stackgate:team".to_string(), "platform".to_string())),
        "{:?}",
        state.tags
    );

    let events = ops.stack_events(&stack).await.expect("events");
    assert_eq!(
        events[0].status, "CREATE_COMPLETE",
        "newest first: {events:?}"
    );
    assert!(
        events.windows(2).all(|w| w[0].timestamp >= w[1].timestamp),
        "{events:?}"
    );
    assert_eq!(
        events[0].client_request_token.as_deref(),
        Some(token.as_str())
    );

    // An executed change set cannot be executed again.
    match ops.execute_change_set(&arn, &token).await {
        Err(DeployError::ChangeSetFailed(m)) => assert!(m.contains("EXECUTE_COMPLETE"), "{m}"),
        other => panic!("re-executing gave {other:?}"),
    }

    // Invisible from another account, and from another region of the same account.
    let other = session(OTHER_ACCOUNT, REGION).await;
    assert_eq!(other.describe_stack(&stack).await.expect("describe"), None);
    let other_region = session(TARGET_ACCOUNT, "us-west-2").await;
    assert_eq!(
        other_region.describe_stack(&stack).await.expect("describe"),
        None
    );
    // …but visible to a fresh session in the target account.
    let again = session(TARGET_ACCOUNT, REGION).await;
    assert_eq!(
        again
            .describe_stack(&stack)
            .await
            .expect("describe")
            .map(|s| s.stack_id),
        Some(state.stack_id.clone())
    );

    ops.delete_stack(&stack, &format!("dep-{}-delete-1", short_id()))
        .await
        .expect("DeleteStack");
    assert_eq!(ops.describe_stack(&stack).await.expect("describe"), None);
    assert!(
        matches!(
            ops.stack_events(&stack).await,
            Err(DeployError::NotFound(_))
        ),
        "events of a deleted stack by name"
    );
    // Deleting again (a retried delete) succeeds.
    ops.delete_stack(&stack, "dep-retry-delete-1")
        .await
        .expect("second DeleteStack");
}

#[tokio::test]
async fn updates_then_a_no_op_update_is_no_changes() {
    let ops = session(TARGET_ACCOUNT, REGION).await;
    let stack = format!("portal-it-{}", short_id());
    let (_, _, created) = deploy(&ops, &stack, vpc_template(false), ChangeSetKind::Create).await;
    assert_eq!(created.status, "CREATE_COMPLETE");

    // An update that adds a subnet: the change set lists it, outputs gain it.
    let arn = ops
        .create_change_set(input(&stack, vpc_template(true), ChangeSetKind::Update))
        .await
        .expect("update change set");
    let cs = ops.describe_change_set(&arn).await.expect("describe");
    assert!(
        cs.changes.iter().any(|c| c.logical_id == "Subnet2"
            && c.action == "Add"
            && c.resource_type == "AWS::EC2::Subnet"),
        "{cs:?}"
    );
    ops.execute_change_set(&arn, &format!("dep-{}-execute-1", short_id()))
        .await
        .expect("execute update");
    let updated = ops
        .describe_stack(&stack)
        .await
        .expect("describe")
        .expect("exists");
    assert_eq!(updated.status, "UPDATE_COMPLETE");
    assert!(output(&updated, "Subnet2Id").is_some_and(|(_, v, _)| v.starts_with("subnet-")));
    assert_eq!(output(&updated, "VpcId"), output(&created, "VpcId"));

    // The same template again: real AWS makes a FAILED change set, the emulator may refuse the
    // call; both are NoChanges.
    let result = match ops
        .create_change_set(input(&stack, vpc_template(true), ChangeSetKind::Update))
        .await
    {
        Ok(arn) => ops.describe_change_set(&arn).await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert_eq!(result, Err(DeployError::NoChanges));

    // A failing update rolls back to the previous template and keeps its outputs.
    let mut bad: serde_json::Value =
        serde_json::from_str(&vpc_template(true)).expect("template is JSON");
    bad["Resources"]["BadSubnet"] = serde_json::json!({"Type": "AWS::EC2::Subnet", "Properties": {
        "VpcId": {"Ref": "Vpc"}, "CidrBlock": "10.99.0.0/24", "AvailabilityZone": "eu-west-1a"}});
    let (_, _, rolled) = deploy(&ops, &stack, bad.to_string(), ChangeSetKind::Update).await;
    assert_eq!(rolled.status, "UPDATE_ROLLBACK_COMPLETE", "{rolled:?}");
    assert_eq!(stack_status_class(&rolled.status), StatusClass::RolledBack);
    assert_eq!(rolled.outputs, updated.outputs);

    ops.delete_stack(&stack, "dep-cleanup-delete-1")
        .await
        .expect("delete");
    assert_eq!(ops.describe_stack(&stack).await.expect("describe"), None);
}

#[tokio::test]
async fn a_failing_execution_rolls_back_with_the_reason() {
    let ops = session(TARGET_ACCOUNT, REGION).await;
    let stack = format!("portal-it-{}", short_id());
    let (_, token, state) = deploy(&ops, &stack, failing_template(), ChangeSetKind::Create).await;
    assert_eq!(state.status, "ROLLBACK_COMPLETE", "{state:?}");
    assert_eq!(stack_status_class(&state.status), StatusClass::RolledBack);

    let events = ops.stack_events(&stack).await.expect("events");
    assert_eq!(events[0].status, "ROLLBACK_COMPLETE", "{events:?}");
    let failure = events
        .iter()
        .find(|e| e.status.ends_with("_FAILED"))
        .unwrap_or_else(|| panic!("no *_FAILED event: {events:?}"));
    assert_eq!(failure.status, "CREATE_FAILED");
    assert_eq!(failure.logical_id, "BadSubnet");
    assert_eq!(failure.resource_type, "AWS::EC2::Subnet");
    assert!(
        failure
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("10.99.0.0/24")),
        "{failure:?}"
    );
    assert_eq!(
        failure.client_request_token.as_deref(),
        Some(token.as_str())
    );

    // A rolled-back create can only be deleted.
    ops.delete_stack(&stack, "dep-rolled-back-delete-1")
        .await
        .expect("delete");
    assert_eq!(ops.describe_stack(&stack).await.expect("describe"), None);
}

#[tokio::test]
async fn malformed_templates_are_rejected() {
    let ops = session(TARGET_ACCOUNT, REGION).await;
    for body in [
        "{ this is not json".to_string(),
        serde_json::json!({"AWSTemplateFormatVersion": "2010-09-09"}).to_string(),
        serde_json::json!({"Resources": {"Vpc": {"Properties": {}}}}).to_string(),
    ] {
        let stack = format!("portal-it-{}", short_id());
        match ops
            .create_change_set(input(&stack, body.clone(), ChangeSetKind::Create))
            .await
        {
            Err(DeployError::TemplateRejected(m)) => {
                assert!(m.contains("Template format error"), "{body}: {m}")
            }
            other => panic!("{body}: {other:?}"),
        }
        assert_eq!(ops.describe_stack(&stack).await.expect("describe"), None);
    }
}

#[tokio::test]
async fn unknown_stacks_and_change_sets() {
    let ops = session(TARGET_ACCOUNT, REGION).await;
    let stack = format!("portal-it-{}", short_id());
    assert_eq!(ops.describe_stack(&stack).await.expect("describe"), None);
    assert!(matches!(
        ops.stack_events(&stack).await,
        Err(DeployError::NotFound(_))
    ));
    let arn = format!(
        "arn:aws:cloudformation:{REGION}:{TARGET_ACCOUNT}:changeSet/cs-{}/{}",
        short_id(),
        Uuid::new_v4()
    );
    assert!(
        matches!(
            ops.execute_change_set(&arn, "dep-x-execute-1").await,
            Err(DeployError::NotFound(_))
        ),
        "executing an unknown change set"
    );
    // An UPDATE change set for a stack that does not exist.
    assert!(matches!(
        ops.create_change_set(input(&stack, vpc_template(false), ChangeSetKind::Update))
            .await,
        Err(DeployError::NotFound(_))
    ));
}

/// The deploy role in account 200000000004 trusts the portal only with this ExternalId
/// (`tests/harness/roles.json`).
const PINNED_ACCOUNT: &str = "200000000004";
const PINNED_EXTERNAL_ID: &str = "expected-external-id";

/// Connect with `spec` and return the error, or `None` when STS let the portal in.
async fn connect_error(spec: AssumeSpec) -> Option<DeployError> {
    connector().await.connect(spec).await.err()
}

fn assert_denied(err: Option<DeployError>, role_arn: &str) {
    match err {
        Some(DeployError::AssumeRoleDenied(m)) => assert!(
            m.contains("AccessDenied") && m.contains(role_arn),
            "the denial names STS's code and the role: {m}"
        ),
        other => panic!("AssumeRole of {role_arn}: expected AssumeRoleDenied, got {other:?}"),
    }
}

#[tokio::test]
async fn a_deploy_role_that_does_not_exist_cannot_be_assumed() {
    // An account with no deploy role at all, and a role name that exists nowhere.
    for role_arn in [
        "arn:aws:iam::999999999999:role/stackgate-deploy".to_string(),
        format!("arn:aws:iam::{TARGET_ACCOUNT}:role/stackgate-no-such-role"),
    ] {
        let mut s = spec(
            TARGET_ACCOUNT,
            &Uuid::new_v4().to_string(),
            &format!("portal-{}", short_id()),
            REGION,
        );
        s.role_arn.clone_from(&role_arn);
        assert_denied(connect_error(s).await, &role_arn);
    }
}

#[tokio::test]
async fn a_wrong_or_the_right_external_id() {
    let role_arn = format!("arn:aws:iam::{PINNED_ACCOUNT}:role/stackgate-deploy");
    let wrong = spec(
        PINNED_ACCOUNT,
        &Uuid::new_v4().to_string(),
        &format!("portal-{}", short_id()),
        REGION,
    );
    assert_denied(connect_error(wrong).await, &role_arn);

    let ops = connector()
        .await
        .connect(spec(
            PINNED_ACCOUNT,
            PINNED_EXTERNAL_ID,
            &format!("portal-{}", short_id()),
            REGION,
        ))
        .await
        .unwrap_or_else(|e| panic!("AssumeRole with the expected ExternalId: {e}"));
    // The session works in the pinned account.
    let stack = format!("portal-it-{}", short_id());
    assert_eq!(ops.describe_stack(&stack).await.expect("describe"), None);
}
