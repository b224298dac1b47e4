//! Approval policies as data: the settings seed version 1; an admin's change is a new version,
//! audited with the old and new rules; new requests are counted by it while a request already
//! pending keeps the rules it was submitted under; class groups ("team" and security) must be
//! among the approvers and the request page says so; bad rules are refused naming the field,
//! and nothing is stored; only admins reach the page and the API.

use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::Row;

use crate::app::{Backend, TestApp, UserClient};
use crate::oidc::browser;

const PROD: &str = "200000000003";

async fn versions(app: &TestApp) -> i64 {
    sqlx::query("select count(*) from approval_policies")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

async fn policy_records(app: &TestApp) -> Vec<stackgate::audit::Record> {
    crate::support::audit_log(&app.state.db)
        .await
        .into_iter()
        .filter(|r| r.object_type == "approval_policy")
        .collect()
}

fn rules(prod: serde_json::Value) -> serde_json::Value {
    json!({
        "classes": { "dev": { "approvals": 1 }, "test": { "approvals": 1 }, "prod": prod },
        "routes": {},
    })
}

async fn quorum(who: &UserClient, id: &str) -> serde_json::Value {
    let (code, body) = who.api(Method::GET, &format!("/requests/{id}"), None).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    body["quorum"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_change_is_audited_and_applies_to_new_requests_while_pending_ones_keep_theirs() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    let carol = app.login("carol").await;
    let henry = app.login("henry").await;
    let dave = app.login("dave").await;
    let (code, now) = dave.api(Method::GET, "/policies/approvals", None).await;
    assert_eq!(code, StatusCode::OK, "{now}");
    assert_eq!(now["version"], 1, "the settings seeded version 1");
    assert_eq!(now["rules"]["classes"]["prod"]["approvals"], 2);

    let old = alice.submit("network", PROD, "old-rules").await;
    bob.review_arn(&old).await;
    let (code, saved) = dave
        .api(
            Method::PUT,
            "/policies/approvals",
            Some(rules(json!({ "approvals": 3 }))),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{saved}");
    assert_eq!(saved["version"], 2);
    let records = policy_records(&app).await;
    let changed: Vec<_> = records
        .iter()
        .filter(|r| r.action == "policy.changed")
        .collect();
    assert_eq!(changed.len(), 1, "{records:?}");
    assert_eq!(
        changed[0].detail["before"]["classes"]["prod"]["approvals"],
        2
    );
    assert_eq!(
        changed[0].detail["after"]["classes"]["prod"]["approvals"],
        3
    );
    assert_eq!(changed[0].detail["before_version"], 1);
    assert_eq!(changed[0].actor_name, "Dave Dimitrov");

    // The new rules count for a new request; the pending one keeps version 1.
    let new = alice.submit("network", PROD, "new-rules").await;
    bob.review_arn(&new).await;
    let q = quorum(&alice, &old).await;
    assert_eq!(
        (q["required"].as_i64(), q["policy_version"].as_i64()),
        (Some(2), Some(1))
    );
    let q = quorum(&alice, &new).await;
    assert_eq!(
        (q["required"].as_i64(), q["policy_version"].as_i64()),
        (Some(3), Some(2))
    );
    let page = bob
        .get(&format!("/requests/{old}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Rules (version 1): 2 approvals."), "{page}");

    // Two approvals release the old request; the new one needs a third.
    bob.approve(&old, "Fine.").await;
    let outcome = carol.approve(&old, "Fine by security.").await;
    assert_eq!(outcome["status"], "approved", "{outcome}");
    assert_eq!(outcome["required"], 2);
    bob.approve(&new, "Fine.").await;
    let outcome = carol.approve(&new, "Fine by security.").await;
    assert_eq!(outcome["status"], "pending_approval", "{outcome}");
    assert_eq!(outcome["required"], 3);
    let outcome = henry.approve(&new, "Third pair of eyes.").await;
    assert_eq!(outcome["status"], "approved", "{outcome}");
    // Each decision records the rules' version it was counted under.
    let decided: Vec<_> = crate::support::audit_log(&app.state.db)
        .await
        .into_iter()
        .filter(|r| r.action == "approval.approved")
        .map(|r| (r.object_id, r.detail["policy_version"].as_i64()))
        .collect();
    assert!(decided.contains(&(old.clone(), Some(1))), "{decided:?}");
    assert!(decided.contains(&(new.clone(), Some(2))), "{decided:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_a_class_names_must_be_among_the_approvers_and_the_request_page_says_which() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    let carol = app.login("carol").await;
    let henry = app.login("henry").await;
    let dave = app.login("dave").await;
    // From the page's form: prod needs one team approver and one of security-approvers.
    let resp = dave
        .post_form(
            "/admin/policies",
            &[
                ("dev_approvals", "1"),
                ("test_approvals", "1"),
                ("prod_approvals", "2"),
                ("prod_groups", "team, security-approvers"),
                ("route_iam_change", ""),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(versions(&app).await, 2);
    let id = alice.submit("network", PROD, "grouped").await;
    bob.review_arn(&id).await;
    let page = bob
        .get(&format!("/requests/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("1 of payments-approvers, 1 of security-approvers"),
        "{page}"
    );
    bob.approve(&id, "Fine.").await;
    let outcome = henry.approve(&id, "Fine too.").await;
    assert_eq!(
        outcome["status"], "pending_approval",
        "two team approvers: {outcome}"
    );
    let q = quorum(&alice, &id).await;
    assert_eq!(q["needs"], "1 of security-approvers", "{q}");
    let page = bob
        .get(&format!("/requests/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("<strong>Needs:</strong> 1 of security-approvers"),
        "{page}"
    );
    let outcome = carol.approve(&id, "Security agrees.").await;
    assert_eq!(outcome["status"], "approved", "{outcome}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rules_are_refused_naming_the_field_and_nothing_is_stored() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let dave = app.login("dave").await;
    let cases = [
        (rules(json!({ "approvals": 0 })), "classes.prod.approvals"),
        (
            rules(json!({ "approvals": 2, "groups": ["security-approvers", ""] })),
            "classes.prod.groups[1]",
        ),
        (
            json!({ "classes": { "dev": { "approvals": 1 }, "test": { "approvals": 1 },
                     "prod": { "approvals": 2 }, "staging": { "approvals": 1 } } }),
            "classes.staging",
        ),
        (
            json!({ "classes": { "dev": { "approvals": 1 }, "test": { "approvals": 1 },
                     "prod": { "approvals": 2 } }, "routes": { "moon_landing": "nasa" } }),
            "routes.moon_landing",
        ),
        (
            json!({ "classes": { "dev": { "approvals": 1 }, "test": { "approvals": 1 },
                     "prod": { "approvals": 2 } }, "routes": { "iam_change": " " } }),
            "routes.iam_change",
        ),
        (
            rules(json!({ "approvals": 2, "groups": ["team", "dba-approvers"] })),
            "classes.prod.groups[1]",
        ),
        (
            json!({ "classes": { "dev": { "approvals": 1 }, "test": { "approvals": 1 },
                     "prod": { "approvals": 2 } }, "routes": { "stateful_replacement": "dba-approvers" } }),
            "routes.stateful_replacement",
        ),
    ];
    for (body, field) in cases {
        let (code, answer) = dave
            .api(Method::PUT, "/policies/approvals", Some(body))
            .await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {answer}");
        let fields: Vec<&str> = answer["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, [field], "{answer}");
    }
    // The form: zero approvals for prod, and an unnamed group between commas.
    let resp = dave
        .post_form(
            "/admin/policies",
            &[
                ("dev_approvals", "1"),
                ("test_approvals", "1"),
                ("prod_approvals", "0"),
                ("test_groups", "security-approvers, ,"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = resp.text().await.unwrap();
    assert!(html.contains("Nothing was saved"), "{html}");
    assert!(html.contains("classes.prod.approvals"), "{html}");
    assert!(html.contains("classes.test.groups[1]"), "{html}");
    assert!(
        html.contains("security-approvers, ,"),
        "what was typed stays: {html}"
    );
    assert_eq!(versions(&app).await, 1, "nothing stored");
    assert!(
        policy_records(&app)
            .await
            .iter()
            .all(|r| r.action == "policy.seeded")
    );
    let (_, now) = dave.api(Method::GET, "/policies/approvals", None).await;
    assert_eq!(now["rules"]["classes"]["prod"]["approvals"], 2);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_settings_seed_the_first_version_only() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[("STACKGATE_APPROVALS_PROD", "3")]).await;
    let dave = app.login("dave").await;
    let (_, now) = dave.api(Method::GET, "/policies/approvals", None).await;
    assert_eq!(now["version"], 1);
    assert_eq!(now["rules"]["classes"]["prod"]["approvals"], 3);
    let url = app.stop_keeping_database().await;
    // Started again with other settings: the stored rules stand.
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            ("STACKGATE_DATABASE_URL", url.as_str()),
            ("STACKGATE_APPROVALS_PROD", "5"),
        ],
    )
    .await;
    let dave = app.login("dave").await;
    let (_, now) = dave.api(Method::GET, "/policies/approvals", None).await;
    assert_eq!(
        (now["version"].as_i64(), versions(&app).await),
        (Some(1), 1)
    );
    assert_eq!(now["rules"]["classes"]["prod"]["approvals"], 3);
    let seeded: Vec<_> = policy_records(&app).await;
    assert_eq!(seeded.len(), 1);
    assert_eq!(seeded[0].action, "policy.seeded");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admins_reach_the_policy_page_and_api_and_others_change_nothing() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let others = [
        ("requester", Some(app.login("alice").await)),
        ("approver", Some(app.login("bob").await)),
        ("auditor", Some(app.login("erin").await)),
        ("anonymous", None),
    ];
    let anonymous = UserClient {
        client: browser(),
        base: app.base.clone(),
        csrf: String::new(),
    };
    let records = crate::support::audit_log(&app.state.db).await.len();
    let form = [
        ("dev_approvals", "1"),
        ("test_approvals", "1"),
        ("prod_approvals", "1"),
    ];
    for (role, who) in &others {
        let who = who.as_ref().unwrap_or(&anonymous);
        let signed_in = *role != "anonymous";
        let status = who.get("/admin/policies").await.status();
        let want = if signed_in {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::SEE_OTHER
        };
        assert_eq!(status, want, "{role} GET the page");
        let status = who.post_form("/admin/policies", &form).await.status();
        assert!(
            [StatusCode::FORBIDDEN, StatusCode::SEE_OTHER].contains(&status)
                && (signed_in == (status == StatusCode::FORBIDDEN)),
            "{role} POST the form: {status}"
        );
        let want = if signed_in {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::UNAUTHORIZED
        };
        let (code, _) = who.api(Method::GET, "/policies/approvals", None).await;
        assert_eq!(code, want, "{role} API GET");
        let (code, _) = who
            .api(
                Method::PUT,
                "/policies/approvals",
                Some(rules(json!({ "approvals": 1 }))),
            )
            .await;
        assert_eq!(code, want, "{role} API PUT");
    }
    assert_eq!(versions(&app).await, 1);
    assert_eq!(
        crate::support::audit_log(&app.state.db).await.len(),
        records,
        "nothing recorded"
    );
    app.stop().await;
}
