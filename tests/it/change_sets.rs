//! The change set comes before the approvers (issue 8), against the AWS emulator: what an update
//! shows, a change made outside the portal between approval and execution (C3, F7), decisions
//! on requests that can no longer take one (C6), risk routing and auto-approval, change windows,
//! and the break-glass release with its sign-off after the fact (C7).

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use stackgate::aws::{AwsConnector, AwsSettings};
use stackgate::worker::Worker;

use crate::app::{Backend, TestApp, UserClient};

const DEV: &str = "200000000001";
const PROD: &str = "200000000003";

fn unique_name() -> String {
    format!("c{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

/// A worker of the test's own (the app runs without one), so that the test decides when it
/// acts: between approval and execution, say.
async fn worker(app: &TestApp) -> Worker<AwsConnector> {
    let connector = AwsConnector::new(AwsSettings {
        endpoint_url: app.state.config.aws_endpoint_url.clone(),
        sts_region: app.state.config.aws_region.clone(),
    })
    .await;
    Worker::new(app.state.db.clone(), app.state.config.clone(), connector)
}

/// Runs the worker until the request reaches one of `statuses`.
async fn drive(w: &Worker<AwsConnector>, user: &UserClient, id: &str, statuses: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let body = show(user, id).await;
        let status = body["request"]["status"].as_str().unwrap_or_default();
        if statuses.contains(&status) {
            return body;
        }
        assert!(Instant::now() < deadline, "{id} still {status}: {body}");
        if !w.run_once().await.unwrap() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn show(user: &UserClient, id: &str) -> Value {
    let (code, body) = user
        .api(Method::GET, &format!("/requests/{id}"), None)
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    body
}

async fn decide_with(
    user: &UserClient,
    id: &str,
    decision: &str,
    arn: &str,
) -> (StatusCode, Value) {
    user.api(
        Method::POST,
        &format!("/requests/{id}/{decision}"),
        Some(json!({ "comment": "checked", "change_set_arn": arn })),
    )
    .await
}

fn submit_body(blueprint: &str, account: &str, name: &str, params: Value) -> Value {
    json!({
        "blueprint": blueprint, "account_id": account, "region": "eu-west-2", "name": name,
        "parameters": params,
    })
}

async fn submit(user: &UserClient, body: Value) -> String {
    let (code, created) = user.api(Method::POST, "/requests", Some(body)).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    created["id"].as_str().unwrap().to_string()
}

async fn audit_actions(app: &TestApp, id: &str) -> Vec<String> {
    stackgate::audit::store::for_object(&app.state.db, "request", id)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.action)
        .collect()
}

async fn update_is_reviewed_and_a_change_outside_the_portal_returns_it_to_review(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("STACKGATE_WORKER", "false")]).await;
    let w = worker(&app).await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    let name = unique_name();
    let note = |v: &str| json!({ "note": v });

    // A first version, deployed.
    let first = submit(
        &alice,
        submit_body("settings-note", DEV, &name, note("first note")),
    )
    .await;
    let shown = drive(&w, &alice, &first, &["pending_approval"]).await;
    assert_eq!(
        shown["change_set"]["changes"][0]["action"], "Add",
        "{shown}"
    );
    let arn = shown["change_set"]["arn"].as_str().unwrap().to_string();
    let (code, body) = decide_with(&bob, &first, "approve", &arn).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    drive(&w, &alice, &first, &["deployed"]).await;
    let stack = shown["request"]["stack_name"].as_str().unwrap().to_string();

    // An update: the change set is an UPDATE that modifies the parameter in place, and the page
    // shows the parameter and template diff against what is deployed.
    let update = submit(
        &alice,
        submit_body("settings-note", DEV, &name, note("second note")),
    )
    .await;
    let shown = drive(&w, &alice, &update, &["pending_approval"]).await;
    let cs = &shown["change_set"];
    let changes = cs["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{shown}");
    assert_eq!(changes[0]["logical_id"], "Note");
    assert_eq!(changes[0]["resource_type"], "AWS::SSM::Parameter");
    assert_eq!(changes[0]["action"], "Modify", "{shown}");
    assert!(changes[0].get("replacement").is_some(), "{shown}");
    assert_eq!(shown["risk_flags"], json!([]), "a note is not a risk");
    let approved_arn = cs["arn"].as_str().unwrap().to_string();
    assert_ne!(approved_arn, arn);
    let page = bob
        .get(&format!("/requests/{update}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Template diff against what is deployed"),
        "{page}"
    );
    assert!(
        page.contains("first note") && page.contains("second note"),
        "the diff shows the deployed and the requested value"
    );

    // bob approves; before the worker executes, someone changes the stack outside the portal.
    let (code, body) = decide_with(&bob, &update, "approve", &approved_arn).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "approved");
    let outside = r#"{"Resources": {"Note": {"Type": "AWS::SSM::Parameter",
        "Properties": {"Name": {"Fn::Sub": "/stackgate/${AWS::StackName}/note"},
        "Type": "String", "Value": "changed outside"}}},
        "Outputs": {"NoteName": {"Value": {"Ref": "Note"}}}}"#;
    crate::emulator::change_outside(DEV, &stack, outside).await;

    // The worker refuses to execute the approved change set: the request returns to review with
    // a fresh one, and bob's approval no longer counts.
    let back = drive(
        &w,
        &alice,
        &update,
        &["pending_approval", "deployed", "failed"],
    )
    .await;
    assert_eq!(back["request"]["status"], "pending_approval", "{back}");
    let fresh = back["change_set"]["arn"].as_str().unwrap().to_string();
    assert_ne!(fresh, approved_arn, "a fresh change set");
    assert_eq!(back["quorum"]["approvals"], 0, "{back}");
    assert_eq!(
        back["approvals"][0]["change_set_arn"],
        approved_arn.as_str()
    );
    let actions = audit_actions(&app, &update).await;
    assert!(
        actions.contains(&"change_set.superseded".to_string()),
        "{actions:?}"
    );
    let executed_note = crate::emulator::stack(DEV, &stack).await.unwrap();
    assert_eq!(executed_note.status, "UPDATE_COMPLETE");

    // The stale ARN is refused, with nothing changed; the fresh one is approved and deployed.
    let before = crate::support::audit_log(&app.state.db).await.len();
    let (code, body) = decide_with(&bob, &update, "approve", &approved_arn).await;
    assert_eq!(code, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("change set"),
        "{body}"
    );
    assert_eq!(crate::support::audit_log(&app.state.db).await.len(), before);
    assert_eq!(
        show(&alice, &update).await["request"]["status"],
        "pending_approval"
    );
    let (code, body) = decide_with(&bob, &update, "approve", &fresh).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let done = drive(
        &w,
        &alice,
        &update,
        &["deployed", "failed", "needs_attention"],
    )
    .await;
    assert_eq!(done["request"]["status"], "deployed", "{done}");

    // A deployed request takes no more decisions.
    let (code, body) = decide_with(&bob, &update, "approve", &fresh).await;
    assert_eq!(code, StatusCode::CONFLICT, "{body}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_is_reviewed_as_a_change_set_and_a_change_outside_the_portal_returns_it_to_review_on_sqlite()
 {
    update_is_reviewed_and_a_change_outside_the_portal_returns_it_to_review(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_is_reviewed_as_a_change_set_and_a_change_outside_the_portal_returns_it_to_review_on_postgres()
 {
    update_is_reviewed_and_a_change_outside_the_portal_returns_it_to_review(Backend::Postgres)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_on_a_cancelled_or_expired_request_are_refused_and_change_nothing() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    for how in ["cancelled", "expired"] {
        let id = submit(
            &alice,
            submit_body("settings-note", DEV, &unique_name(), json!({})),
        )
        .await;
        let arn = bob.review_arn(&id).await;
        match how {
            "cancelled" => {
                let (code, body) = alice
                    .api(Method::POST, &format!("/requests/{id}/cancel"), None)
                    .await;
                assert_eq!(code, StatusCode::NO_CONTENT, "{body}");
            }
            _ => {
                // The review period ran out (the sweeper, with a zero age).
                let n = stackgate::approvals::actions::expire_waiting(&app.state.db, 0, 100)
                    .await
                    .unwrap();
                assert!(n >= 1, "{how}");
            }
        }
        assert_eq!(show(&alice, &id).await["request"]["status"], how);
        // The worker deletes the change set and its empty review stack from the account.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let shown = show(&alice, &id).await;
            if shown["deployments"][0]["status"] == "cancelled" {
                break;
            }
            assert!(Instant::now() < deadline, "{how}: {shown}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let stack = show(&alice, &id).await["request"]["stack_name"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            crate::emulator::stack(DEV, &stack)
                .await
                .is_none_or(|s| s.status == "DELETE_COMPLETE"),
            "{how}: {stack} left behind"
        );
        let before = crate::support::audit_log(&app.state.db).await.len();
        for decision in ["approve", "reject"] {
            let (code, body) = decide_with(&bob, &id, decision, &arn).await;
            assert_eq!(code, StatusCode::CONFLICT, "{how} {decision}: {body}");
        }
        let shown = show(&alice, &id).await;
        assert_eq!(shown["request"]["status"], how);
        assert!(shown["approvals"].as_array().unwrap().is_empty());
        assert_eq!(crate::support::audit_log(&app.state.db).await.len(), before);
        let actions = audit_actions(&app, &id).await;
        assert!(
            actions.contains(&format!("request.{how}")),
            "{how}: {actions:?}"
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn risk_flags_route_to_an_extra_group_and_a_flagless_dev_change_is_approved_automatically() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            (
                "STACKGATE_RISK_ROUTES",
                "network_widening=security-approvers,iam_change=security-approvers",
            ),
            ("STACKGATE_AUTO_APPROVE_DEV", "true"),
        ],
    )
    .await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    let carol = app.login("carol").await;

    // A new network opens a path from the internet and makes IAM roles: flagged, and routed.
    let net = alice.submit("network", DEV, &unique_name()).await;
    let arn = bob.review_arn(&net).await;
    let shown = show(&alice, &net).await;
    let flags: Vec<&str> = shown["risk_flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["flag"].as_str().unwrap())
        .collect();
    assert!(
        flags.contains(&"network_widening") && flags.contains(&"iam_change"),
        "{shown}"
    );
    assert!(
        shown["risk_flags"][0]["label"]
            .as_str()
            .is_some_and(|l| !l.is_empty()),
        "{shown}"
    );
    let inbox = bob.get("/approvals").await.text().await.unwrap();
    assert!(
        inbox.contains("flag-network_widening"),
        "the inbox shows the flags"
    );
    // The team's approver is not enough: one of security-approvers must be among them.
    let (code, body) = decide_with(&bob, &net, "approve", &arn).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "pending_approval", "{body}");
    let shown = show(&alice, &net).await;
    assert!(
        shown["quorum"]["needs"]
            .as_str()
            .unwrap_or_default()
            .contains("security-approvers"),
        "{shown}"
    );
    let page = alice
        .get(&format!("/requests/{net}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("security-approvers"),
        "the page says who is still needed"
    );
    let (code, body) = decide_with(&carol, &net, "approve", &arn).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_ne!(body["status"], "pending_approval", "{body}");
    assert_eq!(
        show(&alice, &net).await["request"]["approval_mode"],
        "approvals"
    );

    // A dev change with no flags: approved automatically, recorded as such, and deployed.
    let note = submit(
        &alice,
        submit_body("settings-note", DEV, &unique_name(), json!({})),
    )
    .await;
    let done = alice
        .wait_for_status(
            &note,
            &["deployed", "failed", "pending_approval"],
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(done["request"]["status"], "deployed", "{done}");
    assert_eq!(done["request"]["approval_mode"], "auto", "{done}");
    assert!(done["approvals"].as_array().unwrap().is_empty());
    assert!(
        audit_actions(&app, &note)
            .await
            .contains(&"request.auto_approved".to_string())
    );
    // The same change in prod still waits for people.
    let prod = submit(
        &alice,
        submit_body("settings-note", PROD, &unique_name(), json!({})),
    )
    .await;
    alice.review_arn(&prod).await;
    assert_eq!(
        show(&alice, &prod).await["request"]["approval_mode"],
        "approvals"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prod_change_approved_outside_its_change_window_is_held_until_the_window_opens() {
    // The only prod window is two days from now.
    let day = (chrono::Utc::now() + chrono::Duration::days(2))
        .format("%a")
        .to_string();
    let windows = format!("prod={day} 10:00-11:00");
    let app = TestApp::spawn_with(Backend::Sqlite, &[("STACKGATE_CHANGE_WINDOWS", &windows)]).await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    let carol = app.login("carol").await;
    let id = submit(
        &alice,
        submit_body("settings-note", PROD, &unique_name(), json!({})),
    )
    .await;
    let arn = bob.review_arn(&id).await;
    for approver in [&bob, &carol] {
        let (code, body) = decide_with(approver, &id, "approve", &arn).await;
        assert_eq!(code, StatusCode::OK, "{body}");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let shown = show(&alice, &id).await;
    assert_eq!(
        shown["request"]["status"], "approved",
        "held, not deployed: {shown}"
    );
    let page = alice
        .get(&format!("/requests/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("held until"), "the page says when: {page}");
    assert!(
        crate::emulator::stack(PROD, shown["request"]["stack_name"].as_str().unwrap())
            .await
            .is_some_and(|s| s.status == "REVIEW_IN_PROGRESS"),
        "nothing executed"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emergency_release_needs_a_reason_is_flagged_and_stays_unreviewed_until_a_second_person_signs_it_off()
 {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = app.login("alice").await;
    let dave = app.login("dave").await;
    let carol = app.login("carol").await;
    let id = submit(
        &alice,
        submit_body("settings-note", PROD, &unique_name(), json!({})),
    )
    .await;
    let arn = carol.review_arn(&id).await;
    let release = |who: &'static str, reason: &'static str| {
        let (dave, alice) = (&dave, &alice);
        let (id, arn) = (id.clone(), arn.clone());
        async move {
            let user = if who == "dave" { dave } else { alice };
            user.api(
                Method::POST,
                &format!("/requests/{id}/emergency"),
                Some(json!({ "reason": reason, "change_set_arn": arn })),
            )
            .await
        }
    };
    // Not an admin, or no real reason: refused, nothing changes.
    let (code, body) = release("alice", "payments are down, need it now").await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    let (code, body) = release("dave", "urgent").await;
    assert!(code.is_client_error(), "{code}: {body}");
    assert!(body.to_string().contains("reason"), "{body}");
    assert_eq!(
        show(&alice, &id).await["request"]["status"],
        "pending_approval"
    );

    let (code, body) = release(
        "dave",
        "INC-4711: payments are failing, fix must go out now",
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let done = alice
        .wait_for_status(&id, &["deployed", "failed"], Duration::from_secs(60))
        .await;
    assert_eq!(done["request"]["status"], "deployed", "{done}");
    assert_eq!(done["request"]["approval_mode"], "emergency");
    assert!(
        done["emergency"]["reviewed_by"].is_null(),
        "unreviewed: {done}"
    );
    let page = alice
        .get(&format!("/requests/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Emergency release") && page.contains("Unreviewed"),
        "{page}"
    );
    assert!(
        audit_actions(&app, &id)
            .await
            .contains(&"request.emergency_released".to_string())
    );

    // Whoever released it cannot sign it off; a second person can, once.
    let sign_off = format!("/requests/{id}/emergency-review");
    let comment = json!({ "comment": "Checked the change against INC-4711." });
    let (code, body) = dave
        .api(Method::POST, &sign_off, Some(comment.clone()))
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    let (code, body) = carol
        .api(Method::POST, &sign_off, Some(comment.clone()))
        .await;
    assert_eq!(code, StatusCode::NO_CONTENT, "{body}");
    let shown = show(&alice, &id).await;
    assert_eq!(
        shown["emergency"]["reviewed_by_name"], "Carol Castro",
        "{shown}"
    );
    assert_ne!(
        shown["emergency"]["reviewed_by"],
        shown["emergency"]["released_by"]
    );
    let (code, _) = carol.api(Method::POST, &sign_off, Some(comment)).await;
    assert_eq!(code, StatusCode::CONFLICT, "signed off once");
    app.stop().await;
}
