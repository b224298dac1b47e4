//! Step-up for production decisions (bar B9), against the real IdP and the real emulator: a
//! decision on a prod request from a sign-in older than the maximum age is refused — the page
//! sends the approver to sign in again with `max_age` and back to the decision, the API answers
//! 401 with `insufficient_user_authentication` — and nothing changes; after a fresh sign-in
//! through the IdP the same decision counts. With `STACKGATE_STEP_UP_AMR=mfa` a fresh sign-in
//! without MFA is refused and carol (who signs in with MFA) decides. Dev decisions are not
//! affected.

use std::time::Duration;

use reqwest::{Method, StatusCode};

use crate::app::{Backend, TestApp, UserClient, extract};
use crate::oidc::login_via_idp;
use crate::support::audit_log;

const DEV: &str = "200000000001";
const PROD: &str = "200000000003";

/// Waits until the worker has prepared the request's change set and it waits for review;
/// returns the change set's ARN (what a decision names).
async fn ready(client: &UserClient, id: &str) -> String {
    let shown = client
        .wait_for_status(id, &["pending_approval"], Duration::from_secs(60))
        .await;
    shown["change_set"]["arn"]
        .as_str()
        .unwrap_or_else(|| panic!("no change set on {id}: {shown}"))
        .to_string()
}

/// Makes `login`'s sessions look signed in two hours ago (as if the approver had sat on the
/// page): the IdP's `auth_time` as the session recorded it.
async fn age_sessions(app: &TestApp, login: &str) {
    let two_hours_ago = stackgate::db::now_ms() - 2 * 3_600_000;
    let aged = sqlx::query(
        "update sessions set auth_time = $1 where user_id in \
         (select id from users where name = $2)",
    )
    .bind(two_hours_ago)
    .bind(login)
    .execute(app.state.db.pool())
    .await
    .unwrap();
    assert!(aged.rows_affected() >= 1, "{login} has a session");
}

/// A decision through the page's form (the page sends the change set it showed).
async fn decide_on_page(
    who: &UserClient,
    id: &str,
    decision: &str,
    arn: &str,
) -> reqwest::Response {
    let comment = format!("{decision} from the page");
    who.post_form(
        &format!("/requests/{id}/{decision}"),
        &[("comment", comment.as_str()), ("change_set_arn", arn)],
    )
    .await
}

/// A decision through the JSON API.
async fn decide_by_api(
    who: &UserClient,
    id: &str,
    decision: &str,
    arn: &str,
) -> (StatusCode, serde_json::Value) {
    let body =
        serde_json::json!({ "comment": format!("{decision} by API"), "change_set_arn": arn });
    who.api(
        Method::POST,
        &format!("/requests/{id}/{decision}"),
        Some(body),
    )
    .await
}

/// Follows a step-up's `login_url` through the real IdP in `who`'s browser: returns the
/// authorization URL the portal sent the browser to, where the callback sent it back, and the
/// user signed in anew (the session, so its anti-forgery token, is new).
async fn sign_in_again(
    who: &UserClient,
    login_url: &str,
    user: &str,
) -> (String, String, UserClient) {
    let start = who.get(login_url).await;
    assert_eq!(start.status(), StatusCode::SEE_OTHER, "{login_url}");
    let authorize = start.headers()["location"].to_str().unwrap().to_string();
    let callback = login_via_idp(&who.client, &authorize, user).await;
    let back = who.client.get(&callback).send().await.unwrap();
    assert_eq!(
        back.status(),
        StatusCode::SEE_OTHER,
        "the callback signs {user} in"
    );
    let landed = back.headers()["location"].to_str().unwrap().to_string();
    let page = who.get(landed.split('#').next().unwrap()).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    let csrf = extract(&html, "name=\"csrf_token\" value=\"", "\"").expect("csrf token");
    let again = UserClient {
        client: who.client.clone(),
        base: who.base.clone(),
        csrf,
    };
    (authorize, landed, again)
}

/// The request as the API shows it: its status and how many decisions it has.
async fn state_of(who: &UserClient, id: &str) -> (String, usize) {
    let (code, shown) = who.api(Method::GET, &format!("/requests/{id}"), None).await;
    assert_eq!(code, StatusCode::OK, "{shown}");
    (
        shown["request"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        shown["approvals"].as_array().map_or(0, Vec::len),
    )
}

async fn prod_decisions_need_a_recent_sign_in(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    let dave = app.login("dave").await;
    let id = alice.submit("network", PROD, "stepup-prod").await;
    let arn = ready(&alice, &id).await;
    age_sessions(&app, "Bob Brandt").await;
    age_sessions(&app, "Dave Dimitrov").await;

    // The page: approve and reject both send bob to sign in again, and back to the decision.
    let login_url = format!("/auth/login?max_age=900&return_to=%2Frequests%2F{id}%23decision");
    for decision in ["approve", "reject"] {
        let refused = decide_on_page(&bob, &id, decision, &arn).await;
        assert_eq!(refused.status(), StatusCode::SEE_OTHER, "{decision}");
        assert_eq!(
            refused.headers()["location"],
            login_url.as_str(),
            "{decision}"
        );
    }
    // The API: 401 with RFC 9470's challenge and where to sign in.
    for decision in ["approve", "reject"] {
        let body = serde_json::json!({ "comment": "by API", "change_set_arn": arn });
        let response = bob
            .client
            .post(format!("{}/api/v1/requests/{id}/{decision}", app.base))
            .header("x-csrf-token", &bob.csrf)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{decision}");
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            challenge.starts_with("Bearer error=\"insufficient_user_authentication\"")
                && challenge.contains("max_age=\"900\""),
            "{challenge}"
        );
        let refused: serde_json::Value = response.json().await.unwrap();
        assert_eq!(refused["error"], "step_up_required", "{refused}");
        assert_eq!(refused["login_url"], login_url.as_str(), "{refused}");
    }
    // Break-glass by an admin is a production decision too.
    let (code, refused) = dave
        .api(
            Method::POST,
            &format!("/requests/{id}/emergency"),
            Some(serde_json::json!({
                "reason": "The ledger is down and this network fixes it.",
                "change_set_arn": arn,
            })),
        )
        .await;
    assert_eq!(code, StatusCode::UNAUTHORIZED, "{refused}");
    assert_eq!(refused["error"], "step_up_required", "{refused}");

    // Nothing changed: no decision, same status, no approval or release in the audit log.
    assert_eq!(state_of(&alice, &id).await, ("pending_approval".into(), 0));
    let records = audit_log(&app.state.db).await;
    assert!(
        !records.iter().any(|r| r.object_id == id
            && (r.action.starts_with("approval.")
                || r.action.starts_with("request.emergency")
                || r.action == "request.approved"
                || r.action == "request.rejected")),
        "no decision recorded"
    );

    // bob signs in again through the IdP, asking for max_age, and lands on the decision.
    let (authorize, landed, bob) = sign_in_again(&bob, &login_url, "bob").await;
    let asked = url::Url::parse(&authorize).unwrap();
    assert!(
        asked
            .query_pairs()
            .any(|(k, v)| k == "max_age" && v == "900"),
        "the IdP is asked for max_age: {authorize}"
    );
    assert_eq!(landed, format!("/requests/{id}#decision"));
    let decided = decide_on_page(&bob, &id, "approve", &arn).await;
    assert_eq!(decided.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        decided.headers()["location"],
        format!("/requests/{id}").as_str()
    );
    assert_eq!(state_of(&alice, &id).await, ("pending_approval".into(), 1));
    let records = audit_log(&app.state.db).await;
    let approved = records
        .iter()
        .find(|r| r.object_id == id && r.action == "approval.approved")
        .expect("bob's approval is audited");
    let auth_time = approved.detail["auth_time"]
        .as_i64()
        .expect("with his sign-in time");
    assert!(
        stackgate::db::now_ms() - auth_time < 900_000,
        "the approval carries the fresh sign-in time: {auth_time}"
    );

    // A dev decision does not ask: henry's session is just as old and his approval counts.
    let henry = app.login("henry").await;
    let dev = alice.submit("network", DEV, "stepup-dev").await;
    let dev_arn = ready(&alice, &dev).await;
    age_sessions(&app, "Henry Hale").await;
    let (code, outcome) = decide_by_api(&henry, &dev, "approve", &dev_arn).await;
    assert_eq!(code, StatusCode::OK, "{outcome}");
    assert_eq!(outcome["status"], "approved", "{outcome}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prod_decision_from_an_old_sign_in_is_refused_until_the_approver_signs_in_again_sqlite() {
    prod_decisions_need_a_recent_sign_in(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prod_decision_from_an_old_sign_in_is_refused_until_the_approver_signs_in_again_postgres()
{
    prod_decisions_need_a_recent_sign_in(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_mfa_required_only_a_sign_in_with_mfa_decides_on_prod() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[("STACKGATE_STEP_UP_AMR", "mfa")]).await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    let carol = app.login("carol").await;
    let id = alice.submit("network", PROD, "stepup-mfa").await;
    let arn = ready(&alice, &id).await;

    // bob signed in just now, with a password only: a fresh sign-in would not help, and the
    // answer says what would.
    let (code, refused) = decide_by_api(&bob, &id, "approve", &arn).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED, "{refused}");
    assert_eq!(refused["error"], "step_up_required", "{refused}");
    let message = refused["message"].as_str().unwrap_or_default();
    assert!(message.contains("This decision needs MFA"), "{message}");
    let page = decide_on_page(&bob, &id, "approve", &arn).await;
    assert_eq!(
        page.status(),
        StatusCode::UNAUTHORIZED,
        "no redirect loop through the IdP"
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("This decision needs MFA"), "{html}");
    assert_eq!(state_of(&alice, &id).await, ("pending_approval".into(), 0));

    // carol's sign-in used MFA (the IdP says amr ["pwd","mfa"]): her approval counts.
    let (code, me) = carol.api(Method::GET, "/me", None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(me["amr"], serde_json::json!(["pwd", "mfa"]), "{me}");
    assert_eq!(me["acr"], "urn:stackgate:acr:mfa", "{me}");
    let (code, outcome) = decide_by_api(&carol, &id, "approve", &arn).await;
    assert_eq!(code, StatusCode::OK, "{outcome}");
    assert_eq!(outcome["approvals"], 1, "{outcome}");
    app.stop().await;
}

/// Walks the browser from the portal's `/auth/login?<query>` through the IdP's redirects and
/// says whether the IdP stopped to show its login form (rather than answering from its own
/// session straight back to the portal).
async fn idp_asks_to_sign_in(who: &UserClient, query: &str) -> bool {
    let start = who.get(&format!("/auth/login?{query}")).await;
    assert_eq!(start.status(), StatusCode::SEE_OTHER);
    let mut at = url::Url::parse(start.headers()["location"].to_str().unwrap()).unwrap();
    let idp = at.origin();
    for _ in 0..8 {
        let response = who.client.get(at.clone()).send().await.unwrap();
        if response.status() == StatusCode::OK {
            return response.text().await.unwrap().contains("name=\"login\"");
        }
        assert!(
            response.status().is_redirection(),
            "{at}: {}",
            response.status()
        );
        at = at
            .join(response.headers()["location"].to_str().unwrap())
            .unwrap();
        if at.origin() != idp {
            return false;
        }
    }
    panic!("too many redirects at the IdP");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idp_asks_again_when_its_sign_in_is_older_than_the_max_age_the_portal_sends() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let bob = app.login("bob").await;
    // The IdP keeps bob's sign-in: without max_age it answers from its session.
    assert!(!idp_asks_to_sign_in(&bob, "return_to=%2F").await);
    // oidc-provider counts whole seconds: let bob's sign-in be at least a second old.
    let signed_in: i64 = sqlx::query_scalar(
        "select max(s.auth_time) from sessions s join users u on u.id = s.user_id \
         where u.name = 'Bob Brandt'",
    )
    .fetch_one(app.state.db.pool())
    .await
    .unwrap();
    let wait = (signed_in + 1_100 - stackgate::db::now_ms()).max(0);
    tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    assert!(
        idp_asks_to_sign_in(&bob, "max_age=0&return_to=%2F").await,
        "max_age=0 makes the IdP ask bob to sign in again"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sign_off_of_a_prod_emergency_release_needs_a_recent_sign_in() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = app.login("alice").await;
    let dave = app.login("dave").await;
    let bob = app.login("bob").await;
    let id = alice.submit("network", PROD, "stepup-glass").await;
    let arn = ready(&alice, &id).await;
    // dave signed in just now: his break-glass release goes through.
    let (code, released) = dave
        .api(
            Method::POST,
            &format!("/requests/{id}/emergency"),
            Some(serde_json::json!({
                "reason": "The ledger is down and this network fixes it.",
                "change_set_arn": arn,
            })),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{released}");

    // bob's sign-off from an old sign-in is refused and records nothing.
    age_sessions(&app, "Bob Brandt").await;
    let sign_off = serde_json::json!({ "comment": "Checked the change set and the reason." });
    let path = format!("/requests/{id}/emergency-review");
    let (code, refused) = bob.api(Method::POST, &path, Some(sign_off.clone())).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED, "{refused}");
    assert_eq!(refused["error"], "step_up_required", "{refused}");
    let (_, shown) = alice
        .api(Method::GET, &format!("/requests/{id}"), None)
        .await;
    assert!(shown["emergency"]["reviewed_at"].is_null(), "{shown}");

    // Signed in again, the same sign-off counts.
    let login_url = refused["login_url"].as_str().unwrap().to_string();
    let (_, _, bob) = sign_in_again(&bob, &login_url, "bob").await;
    let (code, body) = bob.api(Method::POST, &path, Some(sign_off)).await;
    assert_eq!(code, StatusCode::NO_CONTENT, "{body}");
    let (_, shown) = alice
        .api(Method::GET, &format!("/requests/{id}"), None)
        .await;
    assert!(shown["emergency"]["reviewed_at"].is_i64(), "{shown}");
    app.stop().await;
}
