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

/// Runs `sql` as the connection's role; the error's text, or `None` if it was allowed.
async fn refused(pool: &sqlx::AnyPool, sql: &str) -> Option<String> {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(pool)
        .await
        .err()
        .map(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_the_portals_own_role_cannot_alter_or_empty_the_audit_log_and_its_triggers_refuse_even_the_owner()
 {
    use sqlx::Row;
    let admin_url = crate::support::harness_env("STACKGATE_TEST_PG_URL");
    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect(&admin_url).await.unwrap();
    let id = &uuid::Uuid::new_v4().simple().to_string()[..10];
    let (owner, app_role, db) = (
        format!("sg_own_{id}"),
        format!("sg_app_{id}"),
        format!("sg_it_roles_{id}"),
    );
    for sql in [
        format!("create role {owner} login"),
        format!("create role {app_role} login"),
        format!("create database {db} owner {owner}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&admin)
            .await
            .unwrap();
    }
    let url_as = |role: &str| {
        let rest = admin_url.split_once('@').map(|(_, r)| r).unwrap();
        let host = rest.rsplit_once('/').map(|(h, _)| h).unwrap();
        format!("postgres://{role}@{host}/{db}")
    };
    let (owner_url, app_url) = (url_as(&owner), url_as(&app_role));
    let app = TestApp::spawn_with(
        Backend::Postgres,
        &[
            ("STACKGATE_DATABASE_URL", &app_url),
            ("STACKGATE_DATABASE_OWNER_URL", &owner_url),
        ],
    )
    .await;
    // The portal works under its own role: a sign-in and a request append to the log.
    let alice = app.login("alice").await;
    let request = alice.submit("network", "200000000001", "roles").await;
    // The worker has prepared its change set (and written its records) before the snapshot.
    alice.review_arn(&request).await;
    let as_app = sqlx::AnyPool::connect(&app_url).await.unwrap();
    let before = crate::security::audit_snapshot(&app.state.db).await;
    assert!(before.as_array().unwrap().len() >= 2, "{before}");
    let verifications = |pool: sqlx::AnyPool| async move {
        sqlx::query("select count(*) from audit_verifications")
            .fetch_one(&pool)
            .await
            .unwrap()
            .try_get::<i64, _>(0)
            .unwrap()
    };
    let verified_before = verifications(as_app.clone()).await;
    // The portal's own role: refused by its privileges, each statement for its own reason.
    for (sql, reason) in [
        (
            "update audit_log set actor_name = 'mallory' where seq = 1",
            "permission denied for table audit_log",
        ),
        (
            "delete from audit_log where seq = 1",
            "permission denied for table audit_log",
        ),
        (
            "truncate audit_log",
            "permission denied for table audit_log",
        ),
        (
            "alter table audit_log disable trigger all",
            "must be owner of table audit_log",
        ),
        (
            "drop trigger audit_log_no_update on audit_log",
            "must be owner of relation audit_log",
        ),
        ("drop table audit_log", "must be owner of table audit_log"),
        (
            "delete from audit_verifications",
            "permission denied for table audit_verifications",
        ),
    ] {
        let error = refused(&as_app, sql).await;
        assert!(
            error.as_deref().is_some_and(|e| e.contains(reason)),
            "{sql}: expected \"{reason}\", got {error:?}"
        );
        assert_eq!(
            crate::security::audit_snapshot(&app.state.db).await,
            before,
            "{sql} changed the log"
        );
    }
    assert_eq!(verifications(as_app.clone()).await, verified_before);
    // Its triggers are still there, enabled, and refuse even the owner (who holds the
    // privileges the portal's role lacks) with their own message.
    let as_owner = sqlx::AnyPool::connect(&owner_url).await.unwrap();
    let triggers: i64 = sqlx::query(
        "select count(*) from pg_trigger where tgrelid = 'audit_log'::regclass \
         and not tgisinternal and tgenabled <> 'D'",
    )
    .fetch_one(&as_owner)
    .await
    .unwrap()
    .try_get(0)
    .unwrap();
    assert_eq!(triggers, 2, "audit_log_no_update and audit_log_no_truncate");
    for sql in [
        "update audit_log set actor_name = 'mallory' where seq = 1",
        "delete from audit_log where seq = 1",
        "truncate audit_log",
    ] {
        let error = refused(&as_owner, sql).await;
        assert!(
            error
                .as_deref()
                .is_some_and(|e| e.contains("audit_log is append-only")),
            "the owner's {sql}: {error:?}"
        );
    }
    assert_eq!(crate::security::audit_snapshot(&app.state.db).await, before);
    as_owner.close().await;
    as_app.close().await;
    app.stop().await;
    for sql in [
        format!("drop role {owner}"),
        format!("drop role {app_role}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&admin)
            .await
            .unwrap();
    }
    admin.close().await;
}
