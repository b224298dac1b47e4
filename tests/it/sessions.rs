//! Sessions over time and roles that follow the IdP: the idle and absolute limits with their
//! negative controls, background polls that do not keep a session alive, the short read cache
//! (writes always check the database), groups re-confirmed with the IdP's userinfo endpoint
//! (always before a decision), and the sealed login in progress.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use sqlx::Row;

use crate::app::{Backend, TestApp, UserClient};
use crate::oidc::{browser, issuer, login_via_idp};

async fn last_seen(app: &TestApp) -> i64 {
    sqlx::query("select max(last_seen_at) from sessions")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

async fn exec(app: &TestApp, sql: String) {
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(app.state.db.pool())
        .await
        .unwrap();
}

fn now() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// What the IdP reports for `login` from now on.
async fn set_idp_groups(login: &str, groups: &[&str]) {
    let resp = reqwest::Client::new()
        .put(format!("{}/test/users/{login}/groups", issuer()))
        .json(&groups)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
}

async fn session_count(app: &TestApp) -> i64 {
    sqlx::query("select count(*) from sessions")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_session_limit_admits_a_session_just_inside_it_and_ends_one_just_past_it() {
    // Limits other than the defaults, so the settings are what is enforced: 5 idle minutes,
    // 2 hours in all. Without the read cache, every request checks the stored session.
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            ("STACKGATE_SESSION_IDLE_MINUTES", "5"),
            ("STACKGATE_SESSION_ABSOLUTE_HOURS", "2"),
            ("STACKGATE_SESSION_CACHE_MS", "0"),
        ],
    )
    .await;
    // The absolute limit is set at sign-in from the setting.
    let alice = app.login("alice").await;
    let (created, expires): (i64, i64) = {
        let row = sqlx::query("select created_at, expires_at from sessions")
            .fetch_one(app.state.db.pool())
            .await
            .unwrap();
        (row.try_get(0).unwrap(), row.try_get(1).unwrap())
    };
    assert_eq!(expires - created, 2 * 3_600_000, "two hours from sign-in");
    drop(alice);
    exec(&app, "delete from sessions".into()).await;

    let minute = 60_000;
    for (what, set, works) in [
        (
            "idle for 4½ of its 5 minutes",
            format!("last_seen_at = {}", now() - 4 * minute - minute / 2),
            true,
        ),
        (
            "idle for 5½ minutes",
            format!("last_seen_at = {}", now() - 5 * minute - minute / 2),
            false,
        ),
        (
            "one minute of its absolute lifetime left",
            format!("expires_at = {}", now() + minute),
            true,
        ),
        (
            "its absolute lifetime just over",
            format!("expires_at = {}", now() - 1_000),
            false,
        ),
    ] {
        let alice = app.login("alice").await;
        exec(&app, format!("update sessions set {set}")).await;
        let resp = alice.get("/").await;
        if works {
            assert_eq!(resp.status(), StatusCode::OK, "{what}: still signed in");
            assert_eq!(session_count(&app).await, 1, "{what}");
            assert!(
                last_seen(&app).await > now() - 5_000,
                "{what}: the visit counted as activity"
            );
        } else {
            assert_eq!(
                resp.status(),
                StatusCode::SEE_OTHER,
                "{what}: sent to sign in"
            );
            assert!(
                resp.headers()["location"]
                    .to_str()
                    .unwrap()
                    .starts_with("/login"),
                "{what}"
            );
            assert_eq!(
                session_count(&app).await,
                0,
                "{what}: the session is deleted"
            );
        }
        exec(&app, "delete from sessions".into()).await;
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_polls_do_not_keep_an_idle_session_alive() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[("STACKGATE_SESSION_CACHE_MS", "0")]).await;
    let alice = app.login("alice").await;
    let id = alice.submit("network", "200000000001", "polled").await;
    let ten_minutes_ago = now() - 10 * 60_000;
    exec(
        &app,
        format!("update sessions set last_seen_at = {ten_minutes_ago}"),
    )
    .await;
    // The request page polls its deployment panel: each poll is answered, none counts.
    for _ in 0..3 {
        let poll = alice.get(&format!("/requests/{id}/deployment")).await;
        assert_eq!(poll.status(), StatusCode::OK);
    }
    assert_eq!(last_seen(&app).await, ten_minutes_ago);
    // Sixteen idle minutes: the next poll is refused, and the session is gone.
    exec(
        &app,
        format!("update sessions set last_seen_at = {}", now() - 16 * 60_000),
    )
    .await;
    let poll = alice.get(&format!("/requests/{id}/deployment")).await;
    assert_eq!(poll.status(), StatusCode::SEE_OTHER);
    assert_eq!(alice.get("/").await.status(), StatusCode::SEE_OTHER);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_user_is_refused_at_once_for_writes_and_within_the_cache_window_for_reads() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[("STACKGATE_SESSION_CACHE_MS", "1000")]).await;
    // Reads: a check of this replica is reused for at most the cache window.
    let alice = app.login("alice").await;
    assert_eq!(alice.get("/").await.status(), StatusCode::OK);
    exec(&app, "update users set disabled = 1".into()).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(alice.get("/").await.status(), StatusCode::SEE_OTHER);
    exec(&app, "update users set disabled = 0".into()).await;
    // Writes: always checked in the database, so refused at once.
    let alice = app.login("alice").await;
    assert_eq!(alice.get("/").await.status(), StatusCode::OK);
    exec(&app, "update users set disabled = 1".into()).await;
    let body = serde_json::json!({
        "blueprint": "network", "account_id": "200000000001", "region": "eu-west-2", "name": "late"
    });
    let (code, _) = alice.api(Method::POST, "/requests", Some(body)).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let count: i64 = sqlx::query("select count(*) from service_requests")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert_eq!(count, 0, "nothing stored");
    app.stop().await;
}

/// Signs `login` in and returns the client.
async fn signed_in(app: &TestApp, login: &str) -> UserClient {
    app.login(login).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_uses_the_groups_the_idp_reports_now_not_those_of_the_sign_in() {
    set_idp_groups("henry", &["payments-approvers"]).await;
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = signed_in(&app, "alice").await;
    let henry = signed_in(&app, "henry").await;
    let id = alice.submit("network", "200000000001", "regroup").await;
    let arn = henry.review_arn(&id).await;
    // The directory removes henry from the approvers after he signed in.
    set_idp_groups("henry", &[]).await;
    let (code, body) = henry
        .api(
            Method::POST,
            &format!("/requests/{id}/approve"),
            Some(serde_json::json!({ "comment": "", "change_set_arn": arn })),
        )
        .await;
    set_idp_groups("henry", &["payments-approvers"]).await;
    assert_eq!(
        code,
        StatusCode::NOT_FOUND,
        "no longer sees the team: {body}"
    );
    let (_, shown) = alice
        .api(Method::GET, &format!("/requests/{id}"), None)
        .await;
    assert_eq!(shown["request"]["status"], "pending_approval");
    assert!(shown["approvals"].as_array().unwrap().is_empty());
    // Given back, the role counts again at the next decision.
    let (code, outcome) = henry
        .api(
            Method::POST,
            &format!("/requests/{id}/approve"),
            Some(serde_json::json!({ "comment": "Looks right.", "change_set_arn": arn })),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{outcome}");
    assert_eq!(outcome["status"], "approved");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_are_reconfirmed_with_the_idp_when_the_last_confirmation_is_old() {
    set_idp_groups("henry", &["payments-approvers"]).await;
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            ("STACKGATE_GROUPS_REFRESH_SECONDS", "0"),
            ("STACKGATE_SESSION_CACHE_MS", "0"),
        ],
    )
    .await;
    let henry = signed_in(&app, "henry").await;
    assert_eq!(henry.get("/approvals").await.status(), StatusCode::OK);
    set_idp_groups("henry", &[]).await;
    let after = henry.get("/approvals").await;
    set_idp_groups("henry", &["payments-approvers"]).await;
    assert_eq!(
        after.status(),
        StatusCode::FORBIDDEN,
        "roles follow the IdP"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_whose_groups_cannot_be_confirmed_sends_the_approver_to_sign_in_again() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = signed_in(&app, "alice").await;
    let bob = signed_in(&app, "bob").await;
    let id = alice.submit("network", "200000000001", "confirm").await;
    // The session's sealed access token is no longer usable (as after its expiry).
    exec(&app, "update sessions set access_token_sealed = 'x'".into()).await;
    let page = bob
        .post_form(&format!("/requests/{id}/approve"), &[("comment", "")])
        .await;
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    let location = page.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with("/login?return_to=") && location.contains(&id),
        "comes back to the same request: {location}"
    );
    let (code, _) = bob
        .api(
            Method::POST,
            &format!("/requests/{id}/approve"),
            Some(serde_json::json!({ "comment": "" })),
        )
        .await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let (_, shown) = alice
        .api(Method::GET, &format!("/requests/{id}"), None)
        .await;
    assert!(
        shown["approvals"].as_array().unwrap().is_empty(),
        "nothing decided"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_in_progress_whose_stored_fields_were_changed_is_refused() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let client = browser();
    let start = client
        .get(format!("{}/auth/login?return_to=/requests", app.base))
        .send()
        .await
        .unwrap();
    let authorize = start.headers()["location"].to_str().unwrap().to_string();
    let callback = login_via_idp(&client, &authorize, "alice").await;
    exec(&app, "update pending_logins set return_to = '/evil'".into()).await;
    let resp = client.get(&callback).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let count: i64 = sqlx::query("select count(*) from sessions")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert_eq!(count, 0, "no session");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_naming_another_issuer_is_refused_before_the_code_is_redeemed() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let client = browser();
    let start = client
        .get(format!("{}/auth/login", app.base))
        .send()
        .await
        .unwrap();
    let authorize = start.headers()["location"].to_str().unwrap().to_string();
    let callback = login_via_idp(&client, &authorize, "alice").await;
    let mut url = url::Url::parse(&callback).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "iss")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.query_pairs_mut()
        .clear()
        .extend_pairs(pairs)
        .append_pair("iss", "https://idp.evil.example");
    let resp = client.get(url.as_str()).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let reasons: Vec<String> = crate::support::audit_log(&app.state.db)
        .await
        .into_iter()
        .filter(|r| r.action == "auth.login_failed")
        .map(|r| r.detail["reason"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(reasons, vec!["callback_issuer_mismatch".to_string()]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_flood_is_limited_per_client_and_audited_in_aggregate() {
    let app =
        TestApp::spawn_with(Backend::Sqlite, &[("STACKGATE_LOGIN_RATE_PER_MINUTE", "5")]).await;
    let anon = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // Counts are per minute: start well inside one.
    let into_minute = chrono::Utc::now().timestamp_millis() % 60_000;
    if into_minute > 55_000 {
        tokio::time::sleep(Duration::from_millis(60_500 - into_minute as u64)).await;
    }
    let mut codes = Vec::new();
    for _ in 0..30 {
        let resp = anon
            .get(format!("{}/auth/login", app.base))
            .send()
            .await
            .unwrap();
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(resp.headers()["retry-after"], "60");
        }
        codes.push(resp.status());
    }
    let started = codes
        .iter()
        .filter(|c| **c == StatusCode::SEE_OTHER)
        .count();
    assert_eq!(started, 5, "{codes:?}");
    assert_eq!(codes.len() - started, 25);
    let pending: i64 = sqlx::query("select count(*) from pending_logins")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert_eq!(pending, 5, "a refused start stores nothing");
    let failed = |records: &[stackgate::audit::Record]| {
        records
            .iter()
            .filter(|r| r.action == "auth.login_failed")
            .map(|r| r.detail.clone())
            .collect::<Vec<_>>()
    };
    let now_records = crate::support::audit_log(&app.state.db).await;
    assert_eq!(
        failed(&now_records).len(),
        1,
        "one record for the minute so far"
    );
    // When the minute is over, one summary counts the rest.
    let at = chrono::Utc::now().timestamp_millis() + 60_000;
    assert_eq!(
        app.state.auth.guard.flush(&app.state.db, at).await.unwrap(),
        1
    );
    let records = crate::support::audit_log(&app.state.db).await;
    let failed = failed(&records);
    assert_eq!(failed.len(), 2);
    assert_eq!(failed[1]["reason"], "rate_limited");
    assert_eq!(failed[1]["count"], 24);
    let v = stackgate::audit::store::verify(&app.state.db)
        .await
        .unwrap();
    assert!(v.broken_at.is_none());
    app.stop().await;
}
