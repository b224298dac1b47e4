//! Bad input at the edge: control characters are refused with a 400 naming the field and nothing
//! is stored (on PostgreSQL a NUL byte used to be a 500); a request that runs out of time is
//! answered 503 with the security headers still on.

use std::time::Duration;

use axum::routing::get;
use reqwest::{Method, StatusCode};

use crate::app::{Backend, TestApp};

async fn audit_count(app: &TestApp) -> usize {
    crate::support::audit_log(&app.state.db).await.len()
}

async fn control_characters_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    let id = alice.submit("network", "200000000001", "nul-check").await;
    let arn = bob.review_arn(&id).await;
    let before = audit_count(&app).await;

    let (code, body) = bob
        .api(
            Method::POST,
            &format!("/requests/{id}/reject"),
            Some(serde_json::json!({ "comment": "no\u{0}way", "change_set_arn": arn })),
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains("comment") && message.contains("U+0000"),
        "{message}"
    );

    let form = bob
        .post_form(
            &format!("/requests/{id}/reject"),
            &[("comment", "esc\u{1b}[2J"), ("change_set_arn", &arn)],
        )
        .await;
    assert_eq!(form.status(), StatusCode::BAD_REQUEST);
    assert!(form.text().await.unwrap().contains("U+001B"));

    let query = bob.get("/approvals?class=%00").await;
    assert_eq!(query.status(), StatusCode::BAD_REQUEST);

    let (code, body) = alice
        .api(
            Method::POST,
            "/requests",
            Some(serde_json::json!({
                "blueprint": "network", "account_id": "200000000001", "region": "eu-west-2",
                "name": "x\u{0}", "parameters": {}
            })),
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");

    // Nothing was decided or stored: the request still waits, no record was appended.
    let (_, shown) = bob.api(Method::GET, &format!("/requests/{id}"), None).await;
    assert_eq!(shown["request"]["status"], "pending_approval");
    assert!(shown["approvals"].as_array().unwrap().is_empty());
    assert_eq!(audit_count(&app).await, before);
    // Line breaks and tabs are ordinary text.
    let ok = bob
        .api(
            Method::POST,
            &format!("/requests/{id}/reject"),
            Some(serde_json::json!({ "comment": "line one\n\tline two", "change_set_arn": arn })),
        )
        .await;
    assert_eq!(ok.0, StatusCode::OK, "{}", ok.1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_are_refused_on_sqlite() {
    control_characters_are_refused(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_are_refused_on_postgres() {
    control_characters_are_refused(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_times_out_is_answered_503_with_the_security_headers() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let slow = axum::Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            "late"
        }),
    );
    let router = stackgate::http::with_edge_layers(slow, &app.state, Duration::from_millis(100))
        .with_state(app.state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let resp = reqwest::get(format!("http://{addr}/slow")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let h = resp.headers();
    assert!(
        h.get("content-security-policy")
            .is_some_and(|v| v.to_str().unwrap().contains("frame-ancestors 'none'")),
        "{h:?}"
    );
    assert_eq!(h.get("x-content-type-options").unwrap(), "nosniff");
    assert_eq!(h.get("cache-control").unwrap(), "no-store");
    server.abort();
    app.stop().await;
}
