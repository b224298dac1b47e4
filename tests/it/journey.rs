//! The walking skeleton end to end, on SQLite and on PostgreSQL: alice requests a network, bob
//! approves it, the worker deploys it into the dev account through the real emulator; plus the
//! ways it must refuse or fail.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use stackgate::aws::{AssumeSpec, AwsConnector, AwsSettings, StackOps};

use crate::app::{Backend, TestApp, extract};
use crate::support::harness_env;

const DEV: &str = "200000000001";
const TEST: &str = "200000000002";

/// The text of the error element with this id (empty when the field is fine).
fn field_error(html: &str, id: &str) -> Option<String> {
    let at = html.find(&format!("id=\"{id}\""))?;
    extract(&html[at..], ">", "<").filter(|t| !t.trim().is_empty())
}

fn unique_name() -> String {
    format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

/// Runs one scenario body on both backends.
macro_rules! on_both_backends {
    ($body:ident: $sqlite:ident, $postgres:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $sqlite() {
            $body(Backend::Sqlite).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $postgres() {
            $body(Backend::Postgres).await;
        }
    };
}

on_both_backends!(journey: a_network_is_requested_approved_and_deployed_on_sqlite, a_network_is_requested_approved_and_deployed_on_postgres);

async fn journey(backend: Backend) {
    // The dev account's deploy role is this test's own, created below once the portal has
    // generated the account's ExternalId: it trusts the portal only with that ExternalId (and a
    // SourceIdentity), so no other ExternalId gets in.
    let role_name = format!("stackgate-deploy-{}", unique_name());
    let role_arn = format!("arn:aws:iam::{DEV}:role/{role_name}");
    let registry = crate::support::registry_with_deploy_role(DEV, &role_arn);
    let app = TestApp::spawn_with(backend, &[("STACKGATE_CONFIG", &registry)]).await;
    let _ = std::fs::remove_file(&registry);
    let account = stackgate::accounts::store::get(&app.state.db, DEV)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(account.deploy_role_arn.as_str(), role_arn);
    let created = crate::emulator::create_role(
        DEV,
        &role_name,
        &crate::emulator::deploy_role_trust_policy(&account.external_id),
    )
    .await;
    assert_eq!(created, role_arn);
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    let grace = app.login("grace").await;

    // The form is generated from the blueprint, with dev defaults and the address plan's first
    // free dev block proposed.
    let form = alice.get("/requests/new?blueprint=network").await;
    assert_eq!(form.status(), StatusCode::OK);
    let html = form.text().await.unwrap();
    assert!(
        html.contains("name=\"param.vpc_cidr\"") && html.contains("value=\"10.64.0.0/16\""),
        "{html}"
    );

    // Preview: the rendered template, its resources and the policy results.
    let name = unique_name();
    let fields = [
        ("blueprint", "network"),
        ("team", "payments"),
        ("account_id", DEV),
        ("region", "eu-west-2"),
        ("name", name.as_str()),
        ("param.vpc_cidr", "10.42.0.0/16"),
        ("param.az_count", "2"),
    ];
    let preview = alice.post_form("/requests/new/preview", &fields).await;
    assert_eq!(preview.status(), StatusCode::OK);
    let html = preview.text().await.unwrap();
    assert!(
        html.contains("AWS::EC2::VPC") && html.contains("10.42.0.0/20"),
        "preview shows the literal subnets"
    );
    assert!(
        html.contains("all passed"),
        "policy checks pass in the preview"
    );

    // Submit.
    let created = alice.post_form("/requests", &fields).await;
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    let location = created.headers()["location"].to_str().unwrap().to_string();
    let id = location.trim_start_matches("/requests/").to_string();
    // The worker prepares the change set before anyone is asked to review it.
    let body = alice
        .wait_for_status(&id, &["pending_approval"], Duration::from_secs(60))
        .await;
    let ready_ms = body["deployments"][0]["change_set_ready_at"]
        .as_i64()
        .unwrap()
        - body["request"]["created_at"].as_i64().unwrap();
    eprintln!("measured: submission to change set ready for review ({backend:?}) in {ready_ms} ms");
    let change_set = &body["change_set"];
    assert!(
        change_set["arn"]
            .as_str()
            .is_some_and(|a| a.starts_with("arn:aws:cloudformation:")),
        "{body}"
    );
    let changes = change_set["changes"].as_array().expect("changes");
    assert!(
        changes.len() > 10,
        "every resource of a new network: {body}"
    );
    assert!(
        changes.iter().all(|c| c["action"] == "Add"
            && c["logical_id"].is_string()
            && c["resource_type"]
                .as_str()
                .is_some_and(|t| t.starts_with("AWS::"))),
        "{body}"
    );
    assert!(body["risk_flags"].is_array(), "{body}");
    assert_eq!(
        body["request"]["stack_name"],
        format!("stackgate-payments--{name}-dev")
    );

    // alice cannot approve her own request: the server refuses, and nothing changes.
    let own = alice
        .post_form(&format!("/requests/{id}/approve"), &[("comment", "lgtm")])
        .await;
    assert_eq!(own.status(), StatusCode::FORBIDDEN);
    assert!(
        own.text()
            .await
            .unwrap()
            .contains("cannot approve or reject your own request")
    );
    let (code, _) = alice
        .api(
            Method::POST,
            &format!("/requests/{id}/approve"),
            Some(serde_json::json!({})),
        )
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    let (_, body) = alice
        .api(Method::GET, &format!("/requests/{id}"), None)
        .await;
    assert_eq!(body["request"]["status"], "pending_approval");
    assert_eq!(body["approvals"].as_array().map(Vec::len), Some(0));

    // Another team cannot even see it.
    assert_eq!(
        grace.get(&format!("/requests/{id}")).await.status(),
        StatusCode::NOT_FOUND
    );
    let (_, list) = grace.api(Method::GET, "/requests", None).await;
    assert!(
        !list.to_string().contains(&id),
        "grace's list leaks alice's request"
    );

    // bob finds it in his inbox, sees the template, approves with a comment.
    let inbox = bob.get("/approvals").await.text().await.unwrap();
    assert!(inbox.contains(&format!("/requests/{id}")), "{inbox}");
    let page = bob
        .get(&format!("/requests/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("AWS::EC2::FlowLog") && page.contains(">Approve<"));
    assert!(
        page.contains("AWS::EC2::VPC") && page.contains("Add"),
        "the change set is shown"
    );
    let approved = bob
        .decide_on_page(&id, "approve", "Looks right for dev.")
        .await;
    assert_eq!(approved.status(), StatusCode::SEE_OTHER);
    let (_, body) = alice
        .api(Method::GET, &format!("/requests/{id}"), None)
        .await;
    assert_eq!(
        body["approvals"][0]["change_set_arn"], body["change_set"]["arn"],
        "the approval names the change set it approved: {body}"
    );

    // The worker deploys it; the request reaches deployed with the stack's outputs.
    let done = alice
        .wait_for_status(&id, &["deployed", "failed"], Duration::from_secs(90))
        .await;
    assert_eq!(done["request"]["status"], "deployed", "{done}");
    let dep = &done["deployments"][0];
    let took_ms = dep["finished_at"].as_i64().unwrap() - dep["created_at"].as_i64().unwrap();
    eprintln!(
        "measured: submission to deployed, review by the test included (61 resources, {backend:?}) in {took_ms} ms"
    );
    let outputs = done["deployments"][0]["outputs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let output = |key: &str| {
        outputs
            .iter()
            .find(|o| o["key"] == key)
            .and_then(|o| o["value"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| panic!("output {key} missing: {outputs:?}"))
    };
    let vpc_id = output("VpcId");
    assert!(vpc_id.starts_with("vpc-"), "{vpc_id}");
    assert_eq!(output("PublicSubnetIds").split(',').count(), 2);
    assert_eq!(output("RestrictedSubnetIds").split(',').count(), 2);
    let page = alice
        .get(&format!("/requests/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(&vpc_id) && page.contains("status-deployed"),
        "the page shows the outputs"
    );

    // The portal assumed the registry's role (which admits only the account's own ExternalId)
    // exactly as the README says: that ExternalId, a session name naming the request and its
    // deployment, the requester as SourceIdentity, and the session tags.
    let endpoint = harness_env("STACKGATE_TEST_AWS_ENDPOINT");
    let number = done["request"]["number"].as_i64().unwrap();
    let deployment_id = dep["id"].as_str().unwrap();
    let short: String = deployment_id
        .chars()
        .filter(|c| *c != '-')
        .take(12)
        .collect();
    let session_name = format!("stackgate-req{number}-{short}");
    let (_, me) = alice.api(Method::GET, "/me", None).await;
    let alice_id = me["id"].as_str().unwrap();
    let calls = crate::emulator::assumed(&role_arn).await;
    assert!(!calls.is_empty(), "the portal assumed {role_arn}");
    for call in &calls {
        assert_eq!(call["role_arn"], role_arn.as_str(), "{call}");
        assert_eq!(call["account_id"], DEV, "{call}");
        assert_eq!(call["external_id"], account.external_id.as_str(), "{call}");
        assert_eq!(call["session_name"], session_name.as_str(), "{call}");
        assert_eq!(
            call["source_identity"],
            format!("stackgate-{alice_id}").as_str(),
            "{call}"
        );
        assert_eq!(
            call["session_tags"],
            serde_json::json!([
                {"Key": "team", "Value": "payments"},
                {"Key": "request", "Value": number.to_string()},
                {"Key": "env", "Value": "dev"},
            ]),
            "{call}"
        );
    }
    assert!(
        crate::emulator::refused(&role_arn).await.is_empty(),
        "the portal was never refused"
    );

    // The stack exists in the dev account and nowhere else.
    let connector = AwsConnector::with_credentials(
        AwsSettings {
            endpoint_url: Some(endpoint.clone()),
            sts_region: Some("us-east-1".into()),
        },
        aws_credential_types::Credentials::for_tests(),
    )
    .await;
    let stack_name = format!("stackgate-payments--{name}-dev");
    let spec = |account: &str| AssumeSpec {
        role_arn: format!("arn:aws:iam::{account}:role/stackgate-deploy"),
        external_id: "test-probe".into(),
        session_name: "stackgate-test-probe".into(),
        source_identity: "stackgate-test".into(),
        tags: vec![],
        region: "eu-west-2".into(),
    };
    let dev = connector.connect(spec(DEV)).await.unwrap();
    let stack = dev
        .describe_stack(&stack_name)
        .await
        .unwrap()
        .expect("stack in dev");
    assert_eq!(stack.status, "CREATE_COMPLETE");
    assert_eq!(
        stack.role_arn.as_deref(),
        Some("arn:aws:iam::200000000001:role/stackgate-cfn-exec"),
        "CloudFormation runs with the account's execution role from the registry"
    );
    assert!(
        stack
            .tags
            .contains(&("stackgate:team".to_string(), "payments".to_string()))
    );
    let test = connector.connect(spec(TEST)).await.unwrap();
    assert!(
        test.describe_stack(&stack_name).await.unwrap().is_none(),
        "not in the test account"
    );

    // The deploy role really demands that ExternalId: any other one is refused.
    let wrong = AssumeSpec {
        role_arn: role_arn.clone(),
        external_id: "not-the-accounts-external-id".into(),
        ..spec(DEV)
    };
    assert!(
        matches!(
            connector.connect(wrong).await.err(),
            Some(stackgate::aws::DeployError::AssumeRoleDenied(_))
        ),
        "{role_arn} admitted another ExternalId"
    );
    let refusals = crate::emulator::refused(&role_arn).await;
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert_eq!(refusals[0]["external_id"], "not-the-accounts-external-id");
    assert!(
        refusals[0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("sts:ExternalId"),
        "{refusals:?}"
    );

    // Every state change has its audit record, and the chain verifies.
    let records = stackgate::audit::store::for_object(&app.state.db, "request", &id)
        .await
        .unwrap();
    let actions: Vec<&str> = records.iter().map(|r| r.action.as_str()).collect();
    for expected in [
        "request.submitted",
        "change_set.requested",
        "request.review_ready",
        "approval.denied_sod",
        "approval.approved",
        "request.approved",
        "deploy.started",
        "deploy.succeeded",
    ] {
        assert!(
            actions.contains(&expected),
            "missing {expected} in {actions:?}"
        );
    }
    let verification = stackgate::audit::store::verify(&app.state.db)
        .await
        .unwrap();
    assert_eq!(verification.broken_at, None);
    assert!(verification.verified_up_to >= records.len() as i64);
    app.stop().await;
}

on_both_backends!(bad_input: bad_input_gets_field_errors_and_stores_nothing_on_sqlite, bad_input_gets_field_errors_and_stores_nothing_on_postgres);

async fn bad_input(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.login("alice").await;
    let bad = [
        ("blueprint", "network"),
        ("account_id", DEV),
        ("region", "eu-west-2"),
        ("name", "Not A Name"),
        ("param.vpc_cidr", "10.0.0.0/8"),
        ("param.az_count", "2"),
    ];
    let resp = alice.post_form("/requests", &bad).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = resp.text().await.unwrap();
    let name_error = field_error(&html, "name-error").expect("an error next to the name field");
    assert!(name_error.contains("lowercase"), "{name_error}");
    let cidr_error =
        field_error(&html, "param-vpc-cidr-error").expect("an error next to the CIDR field");
    assert!(
        cidr_error.contains("/16") || cidr_error.contains("/24"),
        "{cidr_error}"
    );
    assert!(
        html.contains("value=\"10.0.0.0/8\""),
        "the user's input is kept in the form"
    );

    // A public CIDR, an account of no team of hers, an unknown blueprint: each named by field.
    for (field, value, expect_field) in [
        ("param.vpc_cidr", "8.8.0.0/16", "vpc_cidr"),
        ("account_id", "100000000001", "account_id"),
        ("account_id", "999999999999", "account_id"),
    ] {
        let mut body = serde_json::json!({
            "blueprint": "network", "account_id": DEV, "region": "eu-west-2", "name": unique_name(),
            "parameters": {"vpc_cidr": "10.1.0.0/16"}
        });
        if let Some(p) = field.strip_prefix("param.") {
            body["parameters"][p] = serde_json::json!(value);
        } else {
            body[field] = serde_json::json!(value);
        }
        let (code, resp) = alice.api(Method::POST, "/requests", Some(body)).await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{resp}");
        let fields: Vec<&str> = resp["fields"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|f| f["field"].as_str())
            .collect();
        assert!(fields.contains(&expect_field), "{resp}");
    }

    // Fields that would steer AWS are refused outright.
    let (code, resp) = alice
        .api(Method::POST, "/requests", Some(serde_json::json!({
            "blueprint": "network", "account_id": DEV, "region": "eu-west-2", "name": unique_name(),
            "role_arn": "arn:aws:iam::666666666666:role/evil"
        })))
        .await;
    assert!(
        code == StatusCode::BAD_REQUEST || code == StatusCode::UNPROCESSABLE_ENTITY,
        "{code} {resp}"
    );
    assert!(resp.to_string().contains("role_arn"), "{resp}");

    let (_, list) = alice.api(Method::GET, "/requests", None).await;
    assert_eq!(
        list["requests"].as_array().map(Vec::len),
        Some(0),
        "nothing was stored"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_that_cloudformation_rolls_back_shows_the_reason() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = app.login("alice").await;
    let carol = app.login("carol").await;
    let id = alice.submit("broken-subnet", DEV, &unique_name()).await;
    // carol (security) approves any team's request.
    let outcome = carol.approve(&id, "ok").await;
    assert_eq!(outcome["status"], "approved");
    let done = alice
        .wait_for_status(&id, &["deployed", "failed"], Duration::from_secs(90))
        .await;
    assert_eq!(done["request"]["status"], "failed");
    assert_eq!(done["deployments"][0]["status"], "rolled_back");
    let reason = done["request"]["status_reason"]
        .as_str()
        .unwrap_or_default();
    assert!(
        reason.contains("rolled back") && reason.contains("OrphanSubnet"),
        "{reason}"
    );
    let page = alice
        .get(&format!("/requests/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("OrphanSubnet") && page.contains("status-failed"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_needs_a_reason_and_ends_the_request() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    let id = alice.submit("network", DEV, &unique_name()).await;
    let no_reason = bob.decide_on_page(&id, "reject", "  ").await;
    assert_eq!(no_reason.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let arn = bob.review_arn(&id).await;
    let rejected = bob
        .decide_on_page(&id, "reject", "Use the shared VPC.")
        .await;
    assert_eq!(rejected.status(), StatusCode::SEE_OTHER);
    let (_, body) = alice
        .api(Method::GET, &format!("/requests/{id}"), None)
        .await;
    assert_eq!(body["request"]["status"], "rejected");
    // A terminal request takes no more decisions.
    let (code, _) = bob
        .api(
            Method::POST,
            &format!("/requests/{id}/approve"),
            Some(serde_json::json!({ "change_set_arn": arn })),
        )
        .await;
    assert_eq!(code, StatusCode::CONFLICT);
    // Its change set is deleted, and the empty stack under review with it (nothing is left
    // behind in the target account).
    let body = alice
        .wait_for_status(&id, &["rejected"], Duration::from_secs(5))
        .await;
    let dep = &body["deployments"][0];
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = alice
            .api(Method::GET, &format!("/requests/{id}"), None)
            .await;
        if body["deployments"][0]["status"] == "cancelled" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{dep}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stack = body["request"]["stack_name"].as_str().unwrap().to_string();
    let gone = match crate::emulator::stack(DEV, &stack).await {
        None => true,
        Some(s) => s.status == "DELETE_COMPLETE",
    };
    assert!(gone, "the review stack {stack} is deleted");
    app.stop().await;
}
