//! Workloads in environments, through the portal into the emulator: a team's network deploys and
//! becomes an environment with its outputs; web-app, serverless and data go into it by naming it
//! (never a resource id), storage stands alone; each stack lands in the environment's account
//! and nowhere else. Another team cannot use the environment, and its address block is taken.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::app::{Backend, TestApp, UserClient};
use crate::support::{harness_env, repo};

const DEV: &str = "200000000001";
const TEST: &str = "200000000002";
const ENDED: &[&str] = &["deployed", "failed", "needs_attention", "cancelled"];

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// The ACM certificate the emulator issued for an account's region (an HTTPS listener needs one).
fn certificate(account: &str) -> String {
    let path = harness_env("STACKGATE_TEST_CERTIFICATES");
    let text = std::fs::read_to_string(&path).unwrap();
    let all: Value = serde_json::from_str(&text).unwrap();
    all[format!("{account}/eu-west-2")]
        .as_str()
        .unwrap_or_else(|| panic!("no certificate for {account} in {path}"))
        .to_string()
}

/// Approves `id` as `approver` and waits until its deployment ends; returns the request.
async fn deployed(requester: &UserClient, approver: &UserClient, id: &str) -> Value {
    approver.approve(id, "ok").await;
    let done = requester
        .wait_for_status(id, ENDED, Duration::from_secs(120))
        .await;
    assert_eq!(done["request"]["status"], "deployed", "{done}");
    done
}

fn output<'a>(stack: &'a stackgate::aws::StackState, key: &str) -> &'a str {
    stack
        .outputs
        .iter()
        .find(|(k, _, _)| k == key)
        .map(|(_, v, _)| v.as_str())
        .unwrap_or_else(|| panic!("no output {key}: {:?}", stack.outputs))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_workload_blueprint_deploys_into_its_teams_environment_on_sqlite() {
    workloads_into_an_environment(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_workload_blueprint_deploys_into_its_teams_environment_on_postgres() {
    workloads_into_an_environment(Backend::Postgres).await;
}

async fn workloads_into_an_environment(backend: Backend) {
    let catalog = repo("cloudformation");
    let app = TestApp::spawn_with(backend, &[("STACKGATE_CATALOG_DIR", &catalog)]).await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    let grace = app.login("grace").await;

    // The network, with its block proposed by the address plan.
    let env_name = unique("e");
    let network = alice.submit("network", DEV, &env_name).await;
    let done = deployed(&alice, &bob, &network).await;
    let block = done["request"]["params"]["vpc_cidr"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        block.starts_with("10.64."),
        "the dev pool's first block: {block}"
    );

    let (code, envs) = alice.api(Method::GET, "/environments", None).await;
    assert_eq!(code, StatusCode::OK, "{envs}");
    let env = envs["environments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == network.as_str())
        .unwrap_or_else(|| panic!("the deployed network is not an environment: {envs}"))
        .clone();
    assert_eq!(env["name"], env_name.as_str());
    assert_eq!(env["account_id"], DEV);
    assert_eq!(env["region"], "eu-west-2");
    for key in [
        "VpcId",
        "PrivateSubnetIds",
        "RestrictedSubnetIds",
        "AppSecurityGroupId",
    ] {
        assert!(
            env["outputs"][key].as_str().is_some_and(|v| !v.is_empty()),
            "{key}: {env}"
        );
    }

    // Each workload names the environment, never an account, a region or a resource id.
    let workloads = [
        (
            "web-app",
            json!({"certificate_arn": certificate(DEV)}),
            "LoadBalancerDnsName",
        ),
        ("serverless", json!({}), "FunctionArn"),
        ("data", json!({}), "DbEndpointAddress"),
    ];
    let mut titles = Vec::new();
    for (blueprint, parameters, main_output) in workloads {
        let name = unique("w");
        let body = json!({
            "blueprint": blueprint, "environment": network, "name": name,
            "parameters": parameters,
        });
        let (code, created) = alice.api(Method::POST, "/requests", Some(body)).await;
        assert_eq!(code, StatusCode::CREATED, "{blueprint}: {created}");
        let id = created["id"].as_str().unwrap().to_string();
        let done = deployed(&alice, &bob, &id).await;
        let stack_name = done["request"]["stack_name"].as_str().unwrap().to_string();
        assert!(
            stack_name.contains(&env_name) && stack_name.contains(&name),
            "{stack_name}"
        );
        let stack = crate::emulator::stack(DEV, &stack_name)
            .await
            .unwrap_or_else(|| panic!("{blueprint}: no stack {stack_name} in {DEV}"));
        assert_eq!(stack.status, "CREATE_COMPLETE", "{blueprint}");
        assert!(!output(&stack, main_output).is_empty(), "{blueprint}");
        assert!(
            crate::emulator::stack(TEST, &stack_name).await.is_none(),
            "{blueprint} reached another account"
        );
        // Tagged with the environment it went into (the network's name), not its own.
        assert!(
            stack
                .tags
                .iter()
                .any(|(k, v)| k == "stackgate:team" && v == "payments"),
            "{:?}",
            stack.tags
        );
        titles.push(format!("#{} ", done["request"]["number"]));
        titles.push(name.clone());
    }

    // A standalone resource goes into an account and region of the team.
    let bucket = unique("s");
    let storage = alice.submit("storage", DEV, &bucket).await;
    let done = deployed(&alice, &bob, &storage).await;
    let stack_name = done["request"]["stack_name"].as_str().unwrap();
    let stack = crate::emulator::stack(DEV, stack_name).await.unwrap();
    assert!(output(&stack, "BucketName").contains(DEV));

    // The environment's page lists its workloads.
    let page = alice
        .get(&format!("/requests/{network}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Workloads in this environment"), "{page}");
    for title in &titles {
        assert!(
            page.contains(title.as_str()),
            "{title} missing on the environment page"
        );
    }

    // Another team cannot put a workload into it, and sees none of its environments.
    let body = json!({"blueprint": "serverless", "environment": network, "name": unique("x")});
    let (code, refused) = grace.api(Method::POST, "/requests", Some(body)).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["fields"][0]["field"], "environment", "{refused}");
    let (_, theirs) = grace.api(Method::GET, "/environments", None).await;
    assert!(
        !theirs.to_string().contains(&network),
        "lending sees payments' environment: {theirs}"
    );

    // Its block is taken for every team and account: an overlapping network is refused, and
    // the message names the environment.
    let body = json!({
        "blueprint": "network", "account_id": TEST, "region": "eu-west-2", "name": unique("o"),
        "parameters": {"vpc_cidr": block},
    });
    let (code, refused) = grace.api(Method::POST, "/requests", Some(body)).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["fields"][0]["field"], "vpc_cidr", "{refused}");
    let message = refused["fields"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("overlaps") && message.contains(&env_name),
        "{message}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_controls_are_requested_by_admins_for_core_accounts_and_hidden_from_teams() {
    let catalog = repo("cloudformation");
    // What is under test is who may request and approve, and what is rendered; the worker
    // prepares the change set the approver reviews.
    let app = TestApp::spawn_with(Backend::Sqlite, &[("STACKGATE_CATALOG_DIR", &catalog)]).await;
    let alice = app.login("alice").await;
    let dave = app.login("dave").await;
    let carol = app.login("carol").await;
    const SECURITY: &str = "100000000002";

    let (_, seen) = alice.api(Method::GET, "/blueprints", None).await;
    let slugs: Vec<&str> = seen["blueprints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["slug"].as_str().unwrap())
        .collect();
    assert!(
        slugs.contains(&"data") && !slugs.contains(&"account-baseline"),
        "{slugs:?}"
    );
    let (_, all) = dave.api(Method::GET, "/blueprints", None).await;
    let baseline = all["blueprints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["slug"] == "account-baseline")
        .unwrap_or_else(|| panic!("admins see the account controls: {all}"))
        .clone();
    assert_eq!(baseline["audience"], "admins");
    // Each parameter's default per class is listed.
    let data = seen["blueprints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["slug"] == "data")
        .unwrap();
    let backups = data["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "backup_retention_days")
        .unwrap();
    assert_eq!(
        backups["defaults"],
        json!({"dev": 7, "test": 14, "prod": 35})
    );

    let body = json!({
        "blueprint": "account-baseline", "account_id": SECURITY, "region": "eu-west-2",
        "name": "baseline",
    });
    let (code, refused) = alice
        .api(Method::POST, "/requests", Some(body.clone()))
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{refused}");
    let (code, created) = dave.api(Method::POST, "/requests", Some(body)).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["team"], "platform", "{created}");
    assert_eq!(created["env_class"], "core", "{created}");
    // The account's admin-set settings reached the template (the archive bucket, the home
    // region), and security approves it like any change.
    let (_, shown) = dave
        .api(Method::GET, &format!("/requests/{id}"), None)
        .await;
    let template = shown["template"].as_str().unwrap().to_string();
    assert!(
        template.contains("stackgate-log-archive-100000000003"),
        "{template}"
    );
    let outcome = carol
        .approve(&id, "baseline for the security account")
        .await;
    assert_eq!(outcome["status"], "approved", "{outcome}");
    app.stop().await;
}
