//! The audit page as an auditor meets it: records a page at a time, the chain verified on demand
//! (new records, or the whole chain) instead of on every view, and a tampered record found.

use reqwest::{Method, StatusCode};

use crate::app::{Backend, TestApp, extract};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_page_pages_records_and_shows_the_last_verification_of_the_chain() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let erin = app.login("erin").await;
    // Enough records for more than one page (each view of the page adds one).
    for _ in 0..60 {
        assert_eq!(
            erin.get("/audit?action=auth.").await.status(),
            StatusCode::OK
        );
    }
    let first = erin.get("/audit").await.text().await.unwrap();
    assert!(
        first.contains("has not been verified yet"),
        "no walk on a view"
    );
    let next = extract(&first, "href=\"/audit?action=&amp;before=", "\"").expect("a next page");
    let older = erin
        .get(&format!("/audit?action=&before={next}"))
        .await
        .text()
        .await
        .unwrap();
    let seqs = |html: &str| -> Vec<i64> {
        html.split("<tr><td>")
            .skip(1)
            .filter_map(|r| r.split('<').next()?.parse().ok())
            .collect()
    };
    let (a, b) = (seqs(&first), seqs(&older));
    assert_eq!(a.len(), 50);
    assert!(a.windows(2).all(|w| w[0] > w[1]), "newest first");
    assert!(
        b.first().unwrap() < a.last().unwrap(),
        "the next page continues"
    );
    // Filtered by prefix: only sign-in records.
    let auth = erin.get("/audit?action=auth.").await.text().await.unwrap();
    assert!(auth.contains("auth.login") && !auth.contains("<code>audit.read</code>"));

    // Verify on demand: the page then shows how far and by whom.
    let resp = erin.post_form("/audit/verify", &[("scope", "new")]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let html = erin.get("/audit").await.text().await.unwrap();
    assert!(html.contains("verified</span> up to #"), "{html}");
    assert!(html.contains("by Erin Eriksen"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_chain_verification_finds_an_edited_record_that_new_records_alone_do_not() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let erin = app.login("erin").await;
    let (code, v) = erin.api(Method::GET, "/audit/verify", None).await;
    assert_eq!(code, StatusCode::OK);
    assert!(v["broken_at"].is_null(), "{v}");
    // Someone with the database file bypasses the append-only trigger and edits record 2.
    let pool = app.state.db.pool();
    sqlx::query("drop trigger audit_log_no_update")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("update audit_log set actor_name = 'mallory' where seq = 2")
        .execute(pool)
        .await
        .unwrap();
    // Checking only what came after the last verification does not look back …
    erin.post_form("/audit/verify", &[("scope", "new")]).await;
    let html = erin.get("/audit").await.text().await.unwrap();
    assert!(
        !html.contains("Chain broken"),
        "only new records were checked"
    );
    // … the whole chain does, and says where.
    erin.post_form("/audit/verify", &[("scope", "whole")]).await;
    let html = erin.get("/audit").await.text().await.unwrap();
    assert!(html.contains("Chain broken at #2"), "{html}");
    assert!(html.contains("content does not match its hash"));
    app.stop().await;
}
