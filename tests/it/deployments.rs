//! How a deployment ends when CloudFormation will not do what was approved: a template it
//! rejects fails the request with CloudFormation's reason, and an update with nothing to change
//! ends deployed, saying so, without touching the stack.

use std::time::Duration;

use reqwest::Method;

use crate::app::{Backend, TestApp};

const DEV: &str = "200000000001";
const ENDED: &[&str] = &["deployed", "failed", "needs_attention", "cancelled"];

fn unique_name() -> String {
    format!("d{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_cloudformation_rejects_fails_the_request_with_cloudformations_reason() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    let name = unique_name();
    let id = alice.submit("rejected-template", DEV, &name).await;
    // The change set cannot be made: the requester learns why, and no approver is asked.
    let done = alice
        .wait_for_status(&id, ENDED, Duration::from_secs(60))
        .await;
    assert_eq!(done["request"]["status"], "failed", "{done}");
    let reason = done["request"]["status_reason"]
        .as_str()
        .unwrap_or_default();
    assert!(
        reason.starts_with("CloudFormation rejected the template: ")
            && reason.contains("Template format error"),
        "{reason}"
    );
    assert!(done["approvals"].as_array().unwrap().is_empty());
    let inbox = bob.get("/approvals").await.text().await.unwrap();
    assert!(
        !inbox.contains(&format!("/requests/{id}")),
        "not in the inbox"
    );
    let deployment = &done["deployments"][0];
    assert_eq!(deployment["status"], "failed", "{deployment}");
    assert_eq!(deployment["error"], reason, "{deployment}");
    assert!(
        deployment["change_set_arn"].is_null(),
        "no change set was made"
    );
    let page = alice
        .get(&format!("/requests/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("status-failed") && page.contains("CloudFormation rejected the template"),
        "{page}"
    );
    let records = stackgate::audit::store::for_object(&app.state.db, "request", &id)
        .await
        .unwrap();
    let failed = records.iter().find(|r| r.action == "change_set.failed");
    assert_eq!(
        failed.map(|r| r.detail["error"].clone()),
        Some(serde_json::json!(reason))
    );
    let stack = format!("stackgate-payments--{name}-dev");
    assert!(
        crate::emulator::stack(DEV, &stack).await.is_none(),
        "no stack was left behind"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_with_nothing_to_change_ends_deployed_saying_so_and_leaves_the_stack_alone() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    let name = unique_name();
    let stack_name = format!("stackgate-payments--{name}-dev");
    let first = alice.submit("network", DEV, &name).await;
    bob.approve(&first, "ok").await;
    let done = alice
        .wait_for_status(&first, ENDED, Duration::from_secs(90))
        .await;
    assert_eq!(done["request"]["status"], "deployed", "{done}");
    assert!(done["request"]["status_reason"].is_null(), "{done}");
    let before = crate::emulator::stack(DEV, &stack_name)
        .await
        .expect("the stack");
    assert_eq!(before.status, "CREATE_COMPLETE");

    // The same environment again, with the same parameters: the same template.
    let again = alice.submit("network", DEV, &name).await;
    let (_, shown) = alice
        .api(Method::GET, &format!("/requests/{again}"), None)
        .await;
    assert_eq!(shown["request"]["stack_name"], stack_name.as_str());
    assert_eq!(
        shown["request"]["template_digest"],
        done["request"]["template_digest"]
    );
    // Nothing to change: the request ends as such before any approver is asked.
    let mut ended = ENDED.to_vec();
    ended.push("no_changes");
    let done = alice
        .wait_for_status(&again, &ended, Duration::from_secs(90))
        .await;
    let message = "No changes: the stack already matches the template.";
    assert_eq!(done["request"]["status"], "no_changes", "{done}");
    assert_eq!(done["request"]["status_reason"], message, "{done}");
    assert!(done["approvals"].as_array().unwrap().is_empty());
    let deployment = &done["deployments"][0];
    assert_eq!(deployment["status"], "succeeded", "{deployment}");
    assert_eq!(deployment["error"], message, "{deployment}");
    let page = alice
        .get(&format!("/requests/{again}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("status-no_changes") && page.contains(message),
        "{page}"
    );
    let after = crate::emulator::stack(DEV, &stack_name)
        .await
        .expect("the stack");
    assert_eq!(after.status, "CREATE_COMPLETE", "nothing was executed");
    assert_eq!(after.stack_id, before.stack_id);
    assert_eq!(after.outputs, before.outputs);
    app.stop().await;
}
