//! Admins and users: disabling a user ends their sessions at once (even with the session read
//! cache), refuses their sign-in and flags their pending requests; ending a user's sessions signs
//! them out without disabling them; an admin cannot disable themselves; only admins reach the
//! pages and the API; every action is audited with before and after.

use reqwest::{Method, StatusCode};
use sqlx::Row;

use crate::app::{Backend, TestApp, UserClient};
use crate::oidc::{browser, login_via_idp};

const DEV: &str = "200000000001";

async fn user_id(app: &TestApp, login: &str) -> String {
    sqlx::query("select id from users where email = $1 and name <> 'Mallory Moriarty'")
        .bind(format!("{login}@example.com"))
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

async fn sessions_of(app: &TestApp, id: &str) -> i64 {
    sqlx::query("select count(*) from sessions where user_id = $1")
        .bind(id.to_string())
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

async fn disabled(app: &TestApp, id: &str) -> i64 {
    sqlx::query("select disabled from users where id = $1")
        .bind(id.to_string())
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

async fn user_records(app: &TestApp) -> Vec<stackgate::audit::Record> {
    crate::support::audit_log(&app.state.db)
        .await
        .into_iter()
        .filter(|r| r.object_type == "user" && r.action.starts_with("user."))
        .collect()
}

/// Plays a whole sign-in for `login` in a fresh browser; the callback's status.
async fn sign_in_status(app: &TestApp, login: &str) -> StatusCode {
    let client = browser();
    let start = client
        .get(format!("{}/auth/login", app.base))
        .send()
        .await
        .unwrap();
    let authorize = start.headers()["location"].to_str().unwrap().to_string();
    let callback = login_via_idp(&client, &authorize, login).await;
    client.get(&callback).send().await.unwrap().status()
}

/// The page answers with a redirect to sign in, and the API with 401.
async fn assert_signed_out(who: &UserClient) {
    let page = who.get("/").await;
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    let to = page.headers()["location"].to_str().unwrap().to_string();
    assert!(to.starts_with("/login"), "{to}");
    let (code, _) = who.api(Method::GET, "/requests", None).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
}

async fn disabling_a_user(backend: Backend) {
    // The default read cache (1 s) is on: alice's session is cached on this replica.
    let app = TestApp::spawn(backend).await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    let dave = app.login("dave").await;
    let request = alice.submit("network", DEV, "flagged").await;
    bob.review_arn(&request).await;
    assert_eq!(alice.get("/").await.status(), StatusCode::OK);
    let alice_id = user_id(&app, "alice").await;
    assert_eq!(sessions_of(&app, &alice_id).await, 1);
    let page = bob
        .get(&format!("/requests/{request}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(!page.contains("requester disabled"), "not flagged yet");

    let (code, outcome) = dave
        .api(Method::POST, &format!("/users/{alice_id}/disable"), None)
        .await;
    assert_eq!(code, StatusCode::OK, "{outcome}");
    assert_eq!(outcome["disabled"], true);
    assert_eq!(outcome["sessions_ended"], 1);
    assert_eq!(outcome["pending_requests"], 1);

    // Her very next request, page or API, finds no session (the cache forgot it).
    assert_signed_out(&alice).await;
    assert_eq!(sessions_of(&app, &alice_id).await, 0);
    // Sign-in is refused while she is disabled, and the refusal is audited.
    assert_eq!(sign_in_status(&app, "alice").await, StatusCode::BAD_REQUEST);
    assert_eq!(sessions_of(&app, &alice_id).await, 0);
    let refusals: Vec<_> = crate::support::audit_log(&app.state.db)
        .await
        .into_iter()
        .filter(|r| r.action == "auth.login_failed" && r.detail["reason"] == "user_disabled")
        .collect();
    assert_eq!(refusals.len(), 1);
    // Her pending request is flagged on its page, in the inbox and in lists.
    for path in [
        format!("/requests/{request}"),
        "/approvals".into(),
        "/".into(),
    ] {
        let html = bob.get(&path).await.text().await.unwrap();
        assert!(html.contains("requester disabled"), "{path}: {html}");
    }
    // One audit record, with before and after.
    let records = user_records(&app).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].action, "user.disabled");
    assert_eq!(records[0].object_id, alice_id);
    assert_eq!(records[0].detail["before"]["disabled"], false);
    assert_eq!(records[0].detail["before"]["sessions"], 1);
    assert_eq!(records[0].detail["after"]["disabled"], true);
    assert_eq!(records[0].actor_name, "Dave Dimitrov");

    // Enabled again (from the page's form): sign-in works and the flag goes.
    let resp = dave
        .post_form(&format!("/admin/users/{alice_id}/enable"), &[])
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(disabled(&app, &alice_id).await, 0);
    assert_eq!(sign_in_status(&app, "alice").await, StatusCode::SEE_OTHER);
    let html = bob
        .get(&format!("/requests/{request}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(!html.contains("requester disabled"));
    let records = user_records(&app).await;
    assert_eq!(records.len(), 2);
    assert_eq!(records[1].action, "user.enabled");
    assert_eq!(records[1].detail["before"]["disabled"], true);
    assert_eq!(records[1].detail["after"]["disabled"], false);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_a_user_ends_their_sessions_at_once_refuses_sign_in_and_flags_their_requests_on_sqlite()
 {
    disabling_a_user(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_a_user_ends_their_sessions_at_once_refuses_sign_in_and_flags_their_requests_on_postgres()
 {
    disabling_a_user(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ending_a_users_sessions_signs_them_out_everywhere_but_they_may_sign_in_again() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let first = app.login("bob").await;
    let second = app.login("bob").await;
    let dave = app.login("dave").await;
    let bob_id = user_id(&app, "bob").await;
    assert_eq!(sessions_of(&app, &bob_id).await, 2);
    // The admin sees both sessions: when and where, never their keys.
    let html = dave
        .get(&format!("/admin/users/{bob_id}"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(html.matches("<code>127.0.0.1</code>").count(), 2, "{html}");
    let (_, shown) = dave
        .api(Method::GET, &format!("/users/{bob_id}"), None)
        .await;
    assert_eq!(
        shown["sessions"].as_array().map(Vec::len),
        Some(2),
        "{shown}"
    );
    let hashes: Vec<String> = sqlx::query("select id_hash from sessions where user_id = $1")
        .bind(bob_id.clone())
        .fetch_all(app.state.db.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get(0).unwrap())
        .collect();
    for h in &hashes {
        assert!(!html.contains(h.as_str()) && !shown.to_string().contains(h.as_str()));
    }

    let resp = dave
        .post_form(&format!("/admin/users/{bob_id}/revoke-sessions"), &[])
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_signed_out(&first).await;
    assert_signed_out(&second).await;
    assert_eq!(disabled(&app, &bob_id).await, 0, "not disabled");
    let records = user_records(&app).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].action, "user.sessions_revoked");
    assert_eq!(records[0].detail["before"]["sessions"], 2);
    assert_eq!(records[0].detail["after"]["sessions"], 0);
    // He signs in again.
    let again = app.login("bob").await;
    assert_eq!(again.get("/approvals").await.status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_cannot_disable_themselves() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let dave = app.login("dave").await;
    let dave_id = user_id(&app, "dave").await;
    let html = dave
        .get(&format!("/admin/users/{dave_id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("You cannot disable yourself"), "{html}");
    let resp = dave
        .post_form(&format!("/admin/users/{dave_id}/disable"), &[])
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let (code, body) = dave
        .api(Method::POST, &format!("/users/{dave_id}/disable"), None)
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("cannot disable yourself")
    );
    assert_eq!(disabled(&app, &dave_id).await, 0);
    assert_eq!(sessions_of(&app, &dave_id).await, 1);
    assert!(user_records(&app).await.is_empty());
    assert_eq!(dave.get("/admin/users").await.status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_users_list_shows_identity_groups_and_roles_a_bounded_page_at_a_time() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for login in ["alice", "bob", "carol", "erin"] {
        app.login(login).await;
    }
    let dave = app.login("dave").await;
    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let (code, page) = dave
            .api(Method::GET, &format!("/users?limit=2&after={after}"), None)
            .await;
        assert_eq!(code, StatusCode::OK, "{page}");
        let users = page["users"].as_array().unwrap();
        assert!(users.len() <= 2);
        for u in users {
            assert!(u["id"].is_string() && u["subject"].is_string(), "{u}");
            assert_eq!(u["issuer"], crate::oidc::issuer().as_str());
            seen.push(u["subject"].as_str().unwrap().to_string());
        }
        match page["next"].as_str() {
            Some(n) => after = n.to_string(),
            None => break,
        }
    }
    seen.sort();
    let mut want = vec![
        "0b9f7a1e-alice",
        "1c2e8b2f-bob",
        "2d3f9c30-carol",
        "3e40ad41-dave",
        "4f51be52-erin",
    ];
    want.sort();
    assert_eq!(seen, want, "every user once across the pages");
    let html = dave.get("/admin/users").await.text().await.unwrap();
    assert!(html.contains("security-approvers") && html.contains("approver for every team"));
    assert!(html.contains("requester for payments"), "{html}");
    // A cursor the portal did not hand out is refused.
    let (code, _) = dave.api(Method::GET, "/users?after=bm9wZQ", None).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admins_reach_the_users_pages_and_api_and_others_change_nothing() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let others = [
        ("requester", Some(app.login("alice").await)),
        ("approver", Some(app.login("bob").await)),
        ("auditor", Some(app.login("erin").await)),
        ("anonymous", None),
    ];
    let target = user_id(&app, "bob").await;
    let anonymous = UserClient {
        client: browser(),
        base: app.base.clone(),
        csrf: String::new(),
    };
    let before = (
        sessions_of(&app, &target).await,
        crate::support::audit_log(&app.state.db).await.len(),
    );
    for (role, who) in &others {
        let who = who.as_ref().unwrap_or(&anonymous);
        let signed_in = *role != "anonymous";
        for path in ["/admin/users".to_string(), format!("/admin/users/{target}")] {
            let status = who.get(&path).await.status();
            let want = if signed_in {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::SEE_OTHER
            };
            assert_eq!(status, want, "{role} GET {path}");
        }
        for action in ["disable", "enable", "revoke-sessions"] {
            let path = format!("/admin/users/{target}/{action}");
            let status = who.post_form(&path, &[]).await.status();
            assert!(
                [StatusCode::FORBIDDEN, StatusCode::SEE_OTHER].contains(&status)
                    && (signed_in == (status == StatusCode::FORBIDDEN)),
                "{role} POST {path}: {status}"
            );
            let (code, _) = who
                .api(Method::POST, &format!("/users/{target}/{action}"), None)
                .await;
            let want = if signed_in {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::UNAUTHORIZED
            };
            assert_eq!(code, want, "{role} API {action}");
        }
        for path in ["/users".to_string(), format!("/users/{target}")] {
            let (code, _) = who.api(Method::GET, &path, None).await;
            let want = if signed_in {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::UNAUTHORIZED
            };
            assert_eq!(code, want, "{role} API GET {path}");
        }
    }
    assert_eq!(disabled(&app, &target).await, 0);
    assert!(user_records(&app).await.is_empty());
    assert_eq!(sessions_of(&app, &target).await, before.0);
    assert_eq!(
        crate::support::audit_log(&app.state.db).await.len(),
        before.1,
        "nothing recorded"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_users_session_ends_on_another_replica_at_the_next_write_and_within_the_cache_time_for_reads()
 {
    // Two replicas on one PostgreSQL database, each with the default 1 s session read cache.
    let a = TestApp::spawn(Backend::Postgres).await;
    let url = a.state.config.database_url.clone();
    let b = TestApp::spawn_with(
        Backend::Postgres,
        &[("STACKGATE_DATABASE_URL", url.as_str())],
    )
    .await;
    let alice = a.login("alice").await;
    let dave = a.login("dave").await;
    // The same browser (cookies are per host, not per port) reaching replica b.
    let alice_b = UserClient {
        client: alice.client.clone(),
        base: b.base.clone(),
        csrf: alice.csrf.clone(),
    };
    assert_eq!(
        alice_b.get("/").await.status(),
        StatusCode::OK,
        "b has checked her session"
    );
    let alice_id = user_id(&a, "alice").await;
    let (code, _) = dave
        .api(Method::POST, &format!("/users/{alice_id}/disable"), None)
        .await;
    assert_eq!(code, StatusCode::OK);
    let disabled_at = std::time::Instant::now();
    // A write on b checks the database: refused at once.
    let (code, body) = alice_b
        .api(
            Method::POST,
            "/requests/00000000-0000-0000-0000-000000000000/cancel",
            None,
        )
        .await;
    assert_eq!(code, StatusCode::UNAUTHORIZED, "{body}");
    // A read on b is refused within the cache time (1 s), whatever b had cached.
    loop {
        let status = alice_b.get("/").await.status();
        if status == StatusCode::SEE_OTHER {
            break;
        }
        assert_eq!(status, StatusCode::OK);
        assert!(
            disabled_at.elapsed() < std::time::Duration::from_millis(1_500),
            "replica b still served a read after the cache time"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_signed_out(&alice_b).await;
    b.stop_keeping_database().await;
    a.stop().await;
}
