//! Requests through the JSON API as each kind of user meets them: who they are (`/me`), the
//! catalog (`/blueprints`), their list filtered by status and paged, which teams' requests each
//! role sees, who may cancel, and a template that fails the policy refused at submission.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use sqlx::Row;

use crate::app::{Backend, TestApp};
use crate::oidc::issuer;

const DEV: &str = "200000000001";

fn unique_name() -> String {
    format!("r{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

/// The ids of a list response's requests, in order.
fn ids(list: &serde_json::Value) -> Vec<String> {
    list["requests"]
        .as_array()
        .unwrap_or_else(|| panic!("a list: {list}"))
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

async fn status_of(app: &TestApp, id: &str) -> String {
    stackgate::requests::store::get(&app.state.db, id)
        .await
        .unwrap()
        .unwrap()
        .status
        .as_str()
        .to_string()
}

async fn audit_actions(app: &TestApp, id: &str) -> Vec<String> {
    stackgate::audit::store::for_object(&app.state.db, "request", id)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.action)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_me_names_the_signed_in_user_and_exactly_the_roles_their_groups_grant() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let roles = |req: &[&str], appr: &[&str], global: bool, admin: bool, auditor: bool| {
        serde_json::json!({
            "requester_teams": req, "approver_teams": appr,
            "global_approver": global, "admin": admin, "auditor": auditor,
        })
    };
    for (login, subject, name, email, want) in [
        (
            "alice",
            "0b9f7a1e-alice",
            "Alice Anders",
            "alice@example.com",
            roles(&["payments"], &[], false, false, false),
        ),
        (
            "frank",
            "5062cf63-frank",
            "Frank Fischer",
            "frank@example.com",
            roles(&["payments"], &["payments"], false, false, false),
        ),
        (
            "carol",
            "2d3f9c30-carol",
            "Carol Castro",
            "carol@example.com",
            roles(&[], &[], true, false, false),
        ),
        (
            "dave",
            "3e40ad41-dave",
            "Dave Dimitrov",
            "dave@example.com",
            roles(&[], &[], false, true, false),
        ),
        (
            "erin",
            "4f51be52-erin",
            "Erin Eriksen",
            "erin@example.com",
            roles(&[], &[], false, false, true),
        ),
    ] {
        let signed_in_from = chrono::Utc::now().timestamp_millis();
        let user = app.login(login).await;
        let (code, me) = user.api(Method::GET, "/me", None).await;
        assert_eq!(code, StatusCode::OK, "{login}: {me}");
        let keys: BTreeSet<&str> = me.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            BTreeSet::from([
                "id",
                "issuer",
                "subject",
                "name",
                "email",
                "roles",
                "groups_checked_at",
                "auth_time",
                "amr",
                "acr"
            ]),
            "{login}: no session secrets (CSRF token, session key) in {me}"
        );
        let methods = if login == "carol" {
            serde_json::json!(["pwd", "mfa"])
        } else {
            serde_json::json!(["pwd"])
        };
        assert_eq!(me["amr"], methods, "{login}: how they signed in");
        assert_eq!(me["issuer"], issuer(), "{login}");
        assert_eq!(me["subject"], subject, "{login}");
        assert_eq!(me["name"], name, "{login}");
        assert_eq!(me["email"], email, "{login}");
        assert_eq!(me["roles"], want, "{login}");
        let checked = me["groups_checked_at"].as_i64().unwrap();
        assert!(
            checked >= signed_in_from && checked <= chrono::Utc::now().timestamp_millis(),
            "{login}: groups confirmed at sign-in: {me}"
        );
        let stored: String = sqlx::query("select id from users where issuer = $1 and subject = $2")
            .bind(issuer())
            .bind(subject.to_string())
            .fetch_one(app.state.db.pool())
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
        assert_eq!(me["id"], stored, "{login}: the portal's user id");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_blueprints_lists_the_catalog_with_each_blueprints_version_digest_and_parameters() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = app.login("alice").await;
    let (code, body) = alice.api(Method::GET, "/blueprints", None).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let listed = body["blueprints"].as_array().unwrap();
    let slugs: Vec<&str> = listed.iter().map(|b| b["slug"].as_str().unwrap()).collect();
    assert_eq!(
        slugs,
        [
            "broken-subnet",
            "network",
            "policy-violation",
            "rejected-template",
            "settings-note"
        ],
        "the test catalog, by slug"
    );
    for (b, bp) in listed.iter().zip(app.state.catalog.list()) {
        assert_eq!(b["name"], bp.name.as_str(), "{b}");
        assert_eq!(b["version"], bp.version.as_str(), "{b}");
        assert_eq!(b["summary"], bp.summary.as_str(), "{b}");
        assert_eq!(b["digest"], bp.digest.as_str(), "{b}");
        assert_eq!(bp.digest.len(), 64);
        let params: Vec<serde_json::Value> = bp
            .parameters
            .iter()
            .map(|p| serde_json::json!({"name": p.name, "label": p.label, "help": p.help}))
            .collect();
        let listed_params: Vec<serde_json::Value> = b["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| serde_json::json!({"name": p["name"], "label": p["label"], "help": p["help"]}))
            .collect();
        assert_eq!(listed_params, params, "{b}");
        assert_eq!(
            b["classes"],
            serde_json::json!(["dev", "test", "prod"]),
            "{b}"
        );
    }
    let network = &listed[1];
    assert_eq!(network["name"], "Three-tier network");
    let names: Vec<&str> = network["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        names.starts_with(&["vpc_cidr", "az_count"]),
        "in form order: {names:?}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_requests_filtered_by_status_return_only_that_status_newest_first_a_page_at_a_time() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    let mut made = Vec::new();
    for _ in 0..4 {
        let id = alice.submit("network", DEV, &unique_name()).await;
        alice.review_arn(&id).await;
        made.push(id);
    }
    let (rejected, cancelled, older, newest) = (
        made[0].as_str(),
        made[1].as_str(),
        made[2].as_str(),
        made[3].as_str(),
    );
    let (code, _) = bob.decide(rejected, "reject", "Use the shared VPC.").await;
    assert_eq!(code, StatusCode::OK);
    let (code, _) = alice
        .api(Method::POST, &format!("/requests/{cancelled}/cancel"), None)
        .await;
    assert_eq!(code, StatusCode::NO_CONTENT);

    let list = |query: String| {
        let alice = &alice;
        async move {
            let (code, body) = alice
                .api(Method::GET, &format!("/requests{query}"), None)
                .await;
            assert_eq!(code, StatusCode::OK, "{query}: {body}");
            body
        }
    };
    let all = list(String::new()).await;
    assert_eq!(
        ids(&all),
        [newest, older, cancelled, rejected],
        "newest first"
    );
    let row = &all["requests"][0];
    assert_eq!(row["status"], "pending_approval");
    assert_eq!(row["team"], "payments");
    assert_eq!(row["requester_name"], "Alice Anders");
    assert_eq!(row["blueprint_slug"], "network");
    assert_eq!(row["account_id"], DEV);
    assert_eq!(row["env_class"], "dev");
    assert!(
        row["stack_name"]
            .as_str()
            .unwrap()
            .starts_with("stackgate-payments--"),
        "{row}"
    );
    assert!(all["next"].is_null(), "one page: {all}");

    for (status, want) in [
        ("pending_approval", vec![newest, older]),
        ("rejected", vec![rejected]),
        ("cancelled", vec![cancelled]),
        ("approved", vec![]),
        ("deployed", vec![]),
    ] {
        let body = list(format!("?status={status}")).await;
        assert_eq!(ids(&body), want, "status={status}");
        assert!(
            body["requests"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["status"] == status),
            "status={status}: {body}"
        );
    }

    // Pages: `next` continues where the page stopped, and is absent on the last one.
    let first = list("?limit=3".into()).await;
    assert_eq!(ids(&first), [newest, older, cancelled]);
    let cursor = first["next"].as_str().expect("a next page").to_string();
    let last = list(format!("?limit=3&cursor={cursor}")).await;
    assert_eq!(ids(&last), [rejected]);
    assert!(last["next"].is_null(), "{last}");
    let first = list("?status=pending_approval&limit=1".into()).await;
    assert_eq!(ids(&first), [newest]);
    let cursor = first["next"].as_str().expect("a next page").to_string();
    let last = list(format!("?status=pending_approval&limit=1&cursor={cursor}")).await;
    assert_eq!(ids(&last), [older]);
    assert!(last["next"].is_null(), "{last}");

    for bad in ["?status=nonsense", "?limit=0", "?limit=101"] {
        let (code, body) = alice
            .api(Method::GET, &format!("/requests{bad}"), None)
            .await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{bad}: {body}"
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auditors_admins_and_global_approvers_see_every_teams_requests_and_team_members_only_their_teams()
 {
    let app = TestApp::spawn_with(Backend::Sqlite, &[("STACKGATE_WORKER", "false")]).await;
    let alice = app.login("alice").await;
    let grace = app.login("grace").await;
    let payments = alice.submit("network", DEV, &unique_name()).await;
    let lending = grace.submit("network", DEV, &unique_name()).await;
    let both = vec![payments.clone(), lending.clone()];
    for (login, sees) in [
        ("erin", both.clone()),
        ("dave", both.clone()),
        ("carol", both.clone()),
        ("alice", vec![payments.clone()]),
        ("bob", vec![payments.clone()]),
        ("frank", vec![payments.clone()]),
        ("grace", vec![lending.clone()]),
    ] {
        let user = app.login(login).await;
        let (code, list) = user.api(Method::GET, "/requests", None).await;
        assert_eq!(code, StatusCode::OK, "{login}");
        let listed: BTreeSet<String> = ids(&list).into_iter().collect();
        assert_eq!(
            listed,
            sees.iter().cloned().collect::<BTreeSet<_>>(),
            "{login}'s list"
        );
        for id in &both {
            let visible = sees.contains(id);
            let (code, body) = user
                .api(Method::GET, &format!("/requests/{id}"), None)
                .await;
            let want = if visible {
                StatusCode::OK
            } else {
                StatusCode::NOT_FOUND
            };
            assert_eq!(code, want, "{login} reads {id} through the API: {body}");
            let page = user.get(&format!("/requests/{id}")).await.status();
            assert_eq!(page, want, "{login} opens the page of {id}");
        }
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_cancelled_by_its_requester_or_an_admin_and_anyone_else_is_refused() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[("STACKGATE_WORKER", "false")]).await;
    let alice = app.login("alice").await;
    let id = alice.submit("network", DEV, &unique_name()).await;
    // Teammates, approvers, the auditor: refused; another team does not even see it.
    for (login, refused) in [
        ("bob", StatusCode::FORBIDDEN),
        ("frank", StatusCode::FORBIDDEN),
        ("carol", StatusCode::FORBIDDEN),
        ("erin", StatusCode::FORBIDDEN),
        ("grace", StatusCode::NOT_FOUND),
    ] {
        let user = app.login(login).await;
        let (code, body) = user
            .api(Method::POST, &format!("/requests/{id}/cancel"), None)
            .await;
        assert_eq!(code, refused, "{login}: {body}");
        if refused == StatusCode::FORBIDDEN {
            assert!(
                body["error"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("Only the requester or an admin can cancel"),
                "{login}: {body}"
            );
        }
        let page = user
            .post_form(&format!("/requests/{id}/cancel"), &[])
            .await
            .status();
        assert_eq!(page, refused, "{login}, from the page");
        assert_eq!(status_of(&app, &id).await, "preparing", "{login}");
    }
    assert!(
        !audit_actions(&app, &id)
            .await
            .contains(&"request.cancelled".to_string())
    );

    // Its requester cancels it, once.
    let (code, body) = alice
        .api(Method::POST, &format!("/requests/{id}/cancel"), None)
        .await;
    assert_eq!(code, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(status_of(&app, &id).await, "cancelled");
    let records = stackgate::audit::store::for_object(&app.state.db, "request", &id)
        .await
        .unwrap();
    let cancelled: Vec<_> = records
        .iter()
        .filter(|r| r.action == "request.cancelled")
        .collect();
    assert_eq!(cancelled.len(), 1);
    let (_, me) = alice.api(Method::GET, "/me", None).await;
    assert_eq!(cancelled[0].actor_id.as_deref(), me["id"].as_str());
    let (code, _) = alice
        .api(Method::POST, &format!("/requests/{id}/cancel"), None)
        .await;
    assert_eq!(code, StatusCode::CONFLICT, "a cancelled request stays so");

    // An admin may cancel anyone's request.
    let other = alice.submit("network", DEV, &unique_name()).await;
    let dave = app.login("dave").await;
    let (code, body) = dave
        .api(Method::POST, &format!("/requests/{other}/cancel"), None)
        .await;
    assert_eq!(code, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(status_of(&app, &other).await, "cancelled");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_that_fails_a_policy_rule_cannot_be_submitted_and_nothing_is_stored() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = app.login("alice").await;
    let name = unique_name();
    let fields = [
        ("blueprint", "policy-violation"),
        ("team", "payments"),
        ("account_id", DEV),
        ("region", "eu-west-2"),
        ("name", name.as_str()),
    ];
    // The preview shows the failing rule …
    let preview = alice.post_form("/requests/new/preview", &fields).await;
    assert_eq!(preview.status(), StatusCode::OK);
    let html = preview.text().await.unwrap();
    assert!(html.contains("vpc_flow_logs_enabled"), "{html}");
    // … and neither the form nor the API submits it.
    let form = alice.post_form("/requests", &fields).await;
    assert_eq!(form.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = form.text().await.unwrap();
    assert!(
        html.contains("Policy rules fail: vpc_flow_logs_enabled."),
        "{html}"
    );
    let body = serde_json::json!({
        "blueprint": "policy-violation", "account_id": DEV, "region": "eu-west-2", "name": name
    });
    let (code, resp) = alice.api(Method::POST, "/requests", Some(body)).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{resp}");
    let fields = resp["fields"].as_array().unwrap();
    assert_eq!(fields.len(), 1, "{resp}");
    assert_eq!(fields[0]["field"], "policy");
    assert!(
        fields[0]["message"]
            .as_str()
            .unwrap()
            .contains("fails these policy rules: vpc_flow_logs_enabled."),
        "{resp}"
    );
    let stored: i64 = sqlx::query("select count(*) from service_requests")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert_eq!(stored, 0, "nothing stored");
    let submitted = crate::support::audit_log(&app.state.db)
        .await
        .into_iter()
        .filter(|r| r.action == "request.submitted")
        .count();
    assert_eq!(submitted, 0, "nothing audited as submitted");
    app.stop().await;
}
