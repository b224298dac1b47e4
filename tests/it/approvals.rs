//! Approval quorums: a prod request needs two distinct approvers; one approval leaves it pending
//! and queues nothing, and the same person deciding again is refused.

use reqwest::{Method, StatusCode};

use crate::app::{Backend, TestApp};

const PROD: &str = "200000000003";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prod_request_needs_two_distinct_approvers_and_the_same_approver_cannot_decide_twice() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    let carol = app.login("carol").await;
    let id = alice.submit("network", PROD, "ledger").await;
    let arn = bob.review_arn(&id).await;

    // One approval: still pending, nothing released to execute.
    let outcome = bob.approve(&id, "Looks right.").await;
    assert_eq!(outcome["status"], "pending_approval", "{outcome}");
    assert_eq!(outcome["approvals"], 1);
    assert_eq!(outcome["required"], 2);
    assert!(outcome["deployment_id"].is_null(), "{outcome}");
    let (_, shown) = alice
        .api(Method::GET, &format!("/requests/{id}"), None)
        .await;
    assert_eq!(shown["request"]["status"], "pending_approval");
    assert_eq!(shown["approvals"].as_array().map(Vec::len), Some(1));
    assert_eq!(shown["approvals"][0]["change_set_arn"], arn.as_str());
    assert_eq!(shown["deployments"][0]["status"], "awaiting_approval");
    assert_eq!(shown["quorum"]["needs"], "1 more approval", "{shown}");
    // bob has done his part: the request leaves his inbox, and stays in carol's.
    let inbox = bob.get("/approvals").await.text().await.unwrap();
    assert!(!inbox.contains(&format!("/requests/{id}")), "{inbox}");
    let inbox = carol.get("/approvals").await.text().await.unwrap();
    assert!(inbox.contains(&format!("/requests/{id}")), "{inbox}");

    // bob again, approving or rejecting: refused, and nothing changes.
    for (decision, comment) in [("approve", "Still fine."), ("reject", "Changed my mind.")] {
        let (code, body) = bob
            .api(
                Method::POST,
                &format!("/requests/{id}/{decision}"),
                Some(serde_json::json!({ "comment": comment, "change_set_arn": arn })),
            )
            .await;
        assert_eq!(code, StatusCode::CONFLICT, "a second {decision}: {body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap_or_default()
                .contains("already decided on this version"),
            "{body}"
        );
    }
    let (_, shown) = alice
        .api(Method::GET, &format!("/requests/{id}"), None)
        .await;
    assert_eq!(shown["request"]["status"], "pending_approval");
    assert_eq!(shown["approvals"].as_array().map(Vec::len), Some(1));
    assert_eq!(shown["deployments"][0]["status"], "awaiting_approval");

    // A second, distinct approver completes the quorum and queues the deployment.
    let outcome = carol.approve(&id, "Security is fine with it.").await;
    assert_eq!(outcome["status"], "approved", "{outcome}");
    assert_eq!(outcome["approvals"], 2);
    assert!(outcome["deployment_id"].is_string(), "{outcome}");
    let (_, shown) = alice
        .api(Method::GET, &format!("/requests/{id}"), None)
        .await;
    assert!(
        ["approved", "deploying", "deployed"]
            .contains(&shown["request"]["status"].as_str().unwrap()),
        "{shown}"
    );
    let approvers: Vec<&str> = shown["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["approver_name"].as_str().unwrap())
        .collect();
    assert_eq!(approvers.len(), 2, "{shown}");
    assert!(approvers.contains(&"Bob Brandt") && approvers.contains(&"Carol Castro"));
    assert_eq!(shown["deployments"].as_array().map(Vec::len), Some(1));
    let records = stackgate::audit::store::for_object(&app.state.db, "request", &id)
        .await
        .unwrap();
    let count = |action: &str| records.iter().filter(|r| r.action == action).count();
    assert_eq!(count("approval.approved"), 2);
    assert_eq!(count("request.approved"), 1);
    app.stop().await;
}
