//! The fail-closed paths: sign-in refusals, sessions, request forgery, headers, the append-only
//! audit log, and a deploy role STS will not let us assume.

use std::time::Duration;

use reqwest::{Method, StatusCode};

use crate::app::{Backend, TestApp};
use crate::oidc::{browser, login_via_idp};

async fn audit_reasons(app: &TestApp) -> Vec<String> {
    crate::support::audit_log(&app.state.db)
        .await
        .into_iter()
        .filter(|r| r.action == "auth.login_failed")
        .map(|r| r.detail["reason"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn session_count(app: &TestApp) -> i64 {
    use sqlx::Row;
    sqlx::query("select count(*) from sessions")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

/// Starts a sign-in in `client` and plays the IdP; returns the callback URL (not yet visited).
async fn callback_url(app: &TestApp, client: &reqwest::Client, user: &str) -> String {
    let start = client
        .get(format!("{}/auth/login", app.base))
        .send()
        .await
        .unwrap();
    let authorize = start.headers()["location"].to_str().unwrap().to_string();
    login_via_idp(client, &authorize, user).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_refusals_create_no_session_and_are_audited() {
    let app = TestApp::spawn(Backend::Sqlite).await;

    // (a) The callback arrives in a browser that never started this login (login CSRF).
    let attacker = browser();
    let url = callback_url(&app, &attacker, "mallory").await;
    let victim = browser();
    let resp = victim.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(
        resp.headers().get_all("set-cookie").iter().all(|c| !c
            .to_str()
            .unwrap()
            .contains("stackgate_session=")
            || c.to_str().unwrap().contains("stackgate_session=;"))
    );

    // (b) The state was tampered with.
    let client = browser();
    let url = callback_url(&app, &client, "alice").await;
    let tampered = url.replace("state=", "state=x");
    assert_eq!(
        client.get(&tampered).send().await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );

    // (c) A completed callback replayed, even with the original pre-auth cookie: the stored
    // login transaction was single-use.
    let client = browser();
    let start = client
        .get(format!("{}/auth/login", app.base))
        .send()
        .await
        .unwrap();
    let login_cookie = start.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let authorize = start.headers()["location"].to_str().unwrap().to_string();
    let url = login_via_idp(&client, &authorize, "alice").await;
    assert_eq!(
        client.get(&url).send().await.unwrap().status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(session_count(&app).await, 1);
    let replay = browser()
        .get(&url)
        .header("cookie", &login_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);

    // (d) The IdP says no.
    let resp = browser()
        .get(format!(
            "{}/auth/callback?error=access_denied&state=x",
            app.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body = resp.text().await.unwrap();
    assert!(body.contains("Sign-in did not complete") && !body.contains("code="));

    assert_eq!(
        session_count(&app).await,
        1,
        "only the good login made a session"
    );
    let reasons = audit_reasons(&app).await;
    for want in [
        "no_preauth_cookie",
        "state_mismatch",
        "unknown_login",
        "idp_error",
    ] {
        assert!(
            reasons.iter().any(|r| r == want),
            "no audit record for {want}: {reasons:?}"
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_ends_the_session_on_the_server() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = app.login("alice").await;
    let cookie = alice
        .client
        .get(format!("{}/", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(cookie.status(), StatusCode::OK);
    // Capture the session cookie value as a replaying attacker would.
    let jar_cookie = {
        let client = browser();
        let url = callback_url(&app, &client, "alice").await;
        let resp = client.get(&url).send().await.unwrap();
        resp.headers()
            .get_all("set-cookie")
            .iter()
            .map(|c| c.to_str().unwrap().to_string())
            .find(|c| c.starts_with("stackgate_session="))
            .unwrap()
    };
    assert!(
        jar_cookie.contains("HttpOnly")
            && jar_cookie.contains("SameSite=Lax")
            && jar_cookie.contains("Path=/")
    );
    let token = jar_cookie.split(';').next().unwrap().to_string();
    let replay = || async {
        browser()
            .get(format!("{}/api/v1/me", app.base))
            .header("cookie", &token)
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(replay().await, StatusCode::OK);
    let out = browser()
        .post(format!("{}/auth/logout", app.base))
        .header("cookie", &token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf_token={}", csrf_of(&app, &token).await))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        replay().await,
        StatusCode::UNAUTHORIZED,
        "the old cookie is dead on the server"
    );
    app.stop().await;
}

async fn csrf_of(app: &TestApp, cookie: &str) -> String {
    let html = browser()
        .get(format!("{}/", app.base))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    crate::app::extract(&html, "name=\"csrf_token\" value=\"", "\"").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_callers_are_sent_to_sign_in_and_the_api_answers_401() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let anon = browser();
    for path in [
        "/",
        "/catalog",
        "/approvals",
        "/audit",
        "/requests/new",
        "/requests/x",
    ] {
        let resp = anon
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{path}");
        assert!(
            resp.headers()["location"]
                .to_str()
                .unwrap()
                .starts_with("/login?return_to="),
            "{path}"
        );
    }
    for (method, path) in [
        (Method::GET, "/api/v1/requests"),
        (Method::POST, "/api/v1/requests"),
        (Method::GET, "/api/v1/audit/verify"),
    ] {
        let resp = anon
            .request(method, format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    let login = anon
        .get(format!("{}/login", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    assert!(login.text().await.unwrap().contains("Sign in with SSO"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_writes_are_refused_and_change_nothing() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = app.login("alice").await;
    let form = "blueprint=network&account_id=200000000001&region=eu-west-2&name=forged";
    let post = |path: &'static str, body: String, headers: Vec<(&'static str, String)>| {
        let mut req = alice
            .client
            .post(format!("{}{path}", app.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req.send()
    };
    let good = format!("{form}&csrf_token={}", alice.csrf);
    let cases: Vec<(String, Vec<(&'static str, String)>)> = vec![
        (form.to_string(), vec![]),
        (format!("{form}&csrf_token=wrong"), vec![]),
        (
            good.clone(),
            vec![("origin", "https://evil.example".into())],
        ),
        (good.clone(), vec![("sec-fetch-site", "cross-site".into())]),
    ];
    for path in [
        "/requests",
        "/requests/new/preview",
        "/auth/logout",
        "/requests/any/approve",
        "/requests/any/cancel",
    ] {
        for (body, headers) in &cases {
            let status = post(path, body.clone(), headers.clone())
                .await
                .unwrap()
                .status();
            assert_eq!(status, StatusCode::FORBIDDEN, "{path} {body} {headers:?}");
        }
    }
    let json = alice
        .client
        .post(format!("{}/api/v1/requests", app.base))
        .json(&serde_json::json!({"blueprint": "network", "account_id": "200000000001", "region": "eu-west-2", "name": "forged"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        json.status(),
        StatusCode::FORBIDDEN,
        "the API needs the X-CSRF-Token header too"
    );
    let (_, list) = alice.api(Method::GET, "/requests", None).await;
    assert_eq!(list["requests"].as_array().map(Vec::len), Some(0));
    // The session still works: forged requests did not end it.
    assert_eq!(
        post("/requests/new/preview", good, vec![])
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_the_security_headers() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = app.login("alice").await;
    let anon = browser();
    let mut responses = vec![];
    for path in [
        "/login",
        "/healthz",
        "/static/app.css",
        "/static/htmx.min.js",
        "/no-such-page",
        "/",
    ] {
        responses.push((
            path,
            anon.get(format!("{}{path}", app.base))
                .send()
                .await
                .unwrap(),
        ));
    }
    for path in [
        "/",
        "/catalog",
        "/requests/new?blueprint=network",
        "/no-such-page",
    ] {
        responses.push((path, alice.get(path).await));
    }
    for (path, resp) in responses {
        let h = resp.headers();
        let get = |n: &str| {
            h.get(n)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default()
        };
        let csp = get("content-security-policy");
        for part in [
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
            "script-src 'self'",
        ] {
            assert!(csp.contains(part), "{path}: CSP {csp}");
        }
        assert_eq!(get("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(
            get("referrer-policy"),
            "strict-origin-when-cross-origin",
            "{path}"
        );
        assert_eq!(get("cross-origin-opener-policy"), "same-origin", "{path}");
        if !path.starts_with("/static/") {
            assert_eq!(get("cache-control"), "no-store", "{path}");
        }
        assert_eq!(
            get("strict-transport-security"),
            "",
            "{path}: no HSTS over plain http"
        );
    }
    app.stop().await;
}

/// A signed-in session made without the IdP (whose test client admits only plain-http loopback
/// callbacks): a user with `groups` and a session; returns the session token.
async fn session_for(app: &TestApp, login: &str, groups: &[&str]) -> String {
    let mut tx = app.state.db.begin().await.unwrap();
    let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    let user = stackgate::auth::store::upsert_user(
        &mut tx,
        &crate::oidc::issuer(),
        &format!("sub-{login}"),
        None,
        Some(login),
        &groups,
    )
    .await
    .unwrap();
    let token = stackgate::auth::store::create_session(
        &mut tx,
        &user,
        12,
        &stackgate::auth::store::Authentication::default(),
        None,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_https_public_url_cookies_are_host_prefixed_and_secure_and_hsts_is_sent() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[("STACKGATE_PUBLIC_URL", "https://portal.example.test")],
    )
    .await;
    let anon = browser();
    // HSTS on every response: pages, health checks, static files, errors.
    for path in ["/login", "/healthz", "/static/app.css", "/no-such-page"] {
        let resp = anon
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.headers()
                .get("strict-transport-security")
                .map(|v| v.to_str().unwrap()),
            Some("max-age=31536000; includeSubDomains"),
            "{path}"
        );
    }
    // The pre-auth cookie of a sign-in, and the callback it names.
    let start = anon
        .get(format!("{}/auth/login", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), StatusCode::SEE_OTHER);
    let cookies: Vec<String> = start
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().to_string())
        .collect();
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    let login = &cookies[0];
    assert!(login.starts_with("__Host-stackgate_login="), "{login}");
    for part in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(login.split("; ").any(|p| p == part), "{login} lacks {part}");
    }
    assert!(
        !login.contains("Domain="),
        "__Host- cookies have no Domain: {login}"
    );
    let authorize = start.headers()["location"].to_str().unwrap();
    let redirect = url::Url::parse(authorize)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .map(|(_, v)| v.into_owned());
    assert_eq!(
        redirect.as_deref(),
        Some("https://portal.example.test/auth/callback")
    );

    // The session cookie: only the __Host- name opens the session …
    let token = session_for(&app, "alice", &["payments-requesters"]).await;
    let me = |cookie: String| {
        let base = app.base.clone();
        async move {
            browser()
                .get(format!("{base}/api/v1/me"))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(
        me(format!("__Host-stackgate_session={token}")).await,
        StatusCode::OK
    );
    assert_eq!(
        me(format!("stackgate_session={token}")).await,
        StatusCode::UNAUTHORIZED,
        "the unprefixed name is not read"
    );
    // … and signing out clears it under that name, Secure.
    let cookie = format!("__Host-stackgate_session={token}");
    let home = browser()
        .get(format!("{}/", app.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = crate::app::extract(&home, "name=\"csrf_token\" value=\"", "\"").unwrap();
    let out = browser()
        .post(format!("{}/auth/logout", app.base))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf_token={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let cleared = out.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cleared.starts_with("__Host-stackgate_session=;"),
        "{cleared}"
    );
    for part in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=0"] {
        assert!(
            cleared.split("; ").any(|p| p == part),
            "{cleared} lacks {part}"
        );
    }
    assert_eq!(me(cookie).await, StatusCode::UNAUTHORIZED);
    app.stop().await;
}

/// Everything the database holds, as text: every row of every table (and, for SQLite, the
/// bytes of its files, free pages and write-ahead log included).
async fn everything_stored(app: &TestApp) -> String {
    use sqlx::Row;
    let db = &app.state.db;
    let pool = db.pool();
    let mut out = String::new();
    match db.backend() {
        stackgate::db::Backend::Sqlite => {
            let tables: Vec<String> =
                sqlx::query("select name from sqlite_master where type = 'table'")
                    .fetch_all(pool)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.try_get(0).unwrap())
                    .collect();
            for table in tables {
                let columns: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "select name from pragma_table_info('{table}')"
                )))
                .fetch_all(pool)
                .await
                .unwrap()
                .iter()
                .map(|r| r.try_get(0).unwrap())
                .collect();
                let as_bytes: Vec<String> = columns
                    .iter()
                    .map(|c| format!("cast(\"{c}\" as blob)"))
                    .collect();
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "select {} from \"{table}\"",
                    as_bytes.join(", ")
                )))
                .fetch_all(pool)
                .await
                .unwrap();
                for row in rows {
                    for i in 0..columns.len() {
                        let bytes = row.try_get::<Option<Vec<u8>>, _>(i).unwrap();
                        out.push_str(&String::from_utf8_lossy(&bytes.unwrap_or_default()));
                        out.push('\n');
                    }
                }
            }
            let path = app.state.config.database_url["sqlite://".len()..]
                .split('?')
                .next()
                .unwrap()
                .to_string();
            for suffix in ["", "-wal"] {
                if let Ok(bytes) = std::fs::read(format!("{path}{suffix}")) {
                    out.push_str(&String::from_utf8_lossy(&bytes));
                }
            }
        }
        stackgate::db::Backend::Postgres => {
            let tables: Vec<String> = sqlx::query(
                "select table_name::text from information_schema.tables \
                 where table_schema = 'public' and table_type = 'BASE TABLE'",
            )
            .fetch_all(pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get(0).unwrap())
            .collect();
            for table in tables {
                let text: String = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "select coalesce(string_agg(t::text, E'\\n'), '') from \"{table}\" t"
                )))
                .fetch_one(pool)
                .await
                .unwrap()
                .try_get(0)
                .unwrap();
                out.push_str(&text);
                out.push('\n');
            }
        }
    }
    out
}

async fn only_token_hashes_are_stored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // A browser's sign-in, keeping the two tokens it is given: the pre-auth cookie's and the
    // session's (the one the API authenticates with).
    let client = browser();
    let start = client
        .get(format!("{}/auth/login", app.base))
        .send()
        .await
        .unwrap();
    let cookie_value = |resp: &reqwest::Response, name: &str| {
        resp.headers()
            .get_all("set-cookie")
            .iter()
            .map(|c| c.to_str().unwrap().to_string())
            .find_map(|c| {
                c.strip_prefix(&format!("{name}="))
                    .map(|rest| rest.split(';').next().unwrap().to_string())
            })
            .unwrap_or_else(|| panic!("no {name} cookie"))
    };
    let login_token = cookie_value(&start, "stackgate_login");
    let authorize = start.headers()["location"].to_str().unwrap().to_string();
    let callback = login_via_idp(&client, &authorize, "alice").await;
    let back = client.get(&callback).send().await.unwrap();
    assert_eq!(back.status(), StatusCode::SEE_OTHER);
    let session_token = cookie_value(&back, "stackgate_session");
    assert!(session_token.len() >= 43 && login_token.len() >= 43);
    // The token at work: an API read and an API write.
    let csrf = csrf_of(&app, &format!("stackgate_session={session_token}")).await;
    let api = |method: Method, path: &str| {
        browser()
            .request(method, format!("{}/api/v1{path}", app.base))
            .header("cookie", format!("stackgate_session={session_token}"))
            .header("x-csrf-token", &csrf)
    };
    assert_eq!(
        api(Method::GET, "/me").send().await.unwrap().status(),
        StatusCode::OK
    );
    let created = api(Method::POST, "/requests")
        .json(&serde_json::json!({
            "blueprint": "network", "account_id": "200000000001", "region": "eu-west-2",
            "name": "hashes"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);

    let stored = everything_stored(&app).await;
    let session_hash = stackgate::auth::store::token_hash("session", &session_token);
    assert!(
        stored.contains(&session_hash),
        "{backend:?}: the session is stored under its token's hash"
    );
    for (what, token) in [("session", &session_token), ("pre-auth", &login_token)] {
        assert!(
            !stored.contains(token.as_str()),
            "{backend:?}: the {what} token is in the database"
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_hash_of_a_session_token_is_stored_never_the_token_on_sqlite() {
    only_token_hashes_are_stored(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_hash_of_a_session_token_is_stored_never_the_token_on_postgres() {
    only_token_hashes_are_stored(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_refuses_updates_and_deletes_with_its_trigger_and_stays_unchanged_on_sqlite()
{
    audit_is_append_only(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_refuses_updates_deletes_and_truncation_with_its_trigger_and_stays_unchanged_on_postgres()
 {
    audit_is_append_only(Backend::Postgres).await;
}

/// Every record of the audit log, every field, as JSON.
pub async fn audit_snapshot(db: &stackgate::db::Db) -> serde_json::Value {
    serde_json::to_value(crate::support::audit_log(db).await).unwrap()
}

/// An insert that collides with record 1: as an upsert or a replace it would rewrite it.
const COLLIDING_RECORD: &str = "(seq, at, actor_name, action, object_type, object_id, outcome, \
    detail_json, prev_hash, hash) values (1, 0, 'mallory', 'auth.login', 'user', 'x', 'success', \
    '{}', 'x', 'x')";

async fn audit_is_append_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let _alice = app.login("alice").await;
    let pool = app.state.db.pool();
    let before = audit_snapshot(&app.state.db).await;
    assert!(before.as_array().unwrap().len() >= 2, "{before}");
    let mut statements = vec![
        "update audit_log set actor_name = 'mallory'".to_string(),
        "update audit_log set actor_name = 'mallory' where seq = 1".to_string(),
        "update audit_log set hash = prev_hash where seq = 2".to_string(),
        "delete from audit_log".to_string(),
        "delete from audit_log where seq = 1".to_string(),
        format!(
            "insert into audit_log {COLLIDING_RECORD} on conflict (seq) do update set \
             actor_name = 'mallory'"
        ),
    ];
    match backend {
        // SQLite's REPLACE deletes the old row on its own: the delete trigger must still fire.
        Backend::Sqlite => statements.extend([
            format!("insert or replace into audit_log {COLLIDING_RECORD}"),
            format!("replace into audit_log {COLLIDING_RECORD}"),
        ]),
        Backend::Postgres => statements.push("truncate audit_log".to_string()),
    }
    for sql in statements {
        let error = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .execute(pool)
            .await
            .err()
            .map(|e| e.to_string());
        assert!(
            error
                .as_deref()
                .is_some_and(|e| e.contains("audit_log is append-only")),
            "{backend:?}: {sql}: refused by the trigger? {error:?}"
        );
        assert_eq!(
            audit_snapshot(&app.state.db).await,
            before,
            "{backend:?}: {sql} changed the log"
        );
    }
    let v = stackgate::audit::store::verify(&app.state.db)
        .await
        .unwrap();
    assert!(v.records >= 2 && v.broken_at.is_none(), "{v:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_role_that_cannot_be_assumed_fails_the_request_with_a_clear_message() {
    let config = format!(
        "{}/tests/fixtures/config-unassumable-role.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    let app = TestApp::spawn_with(Backend::Sqlite, &[("STACKGATE_CONFIG", &config)]).await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    let id = alice.submit("network", "200000000009", "orphan").await;
    // The change set is prepared before review: the role is refused then, and no approver is
    // asked to judge a change that cannot be made.
    let done = alice
        .wait_for_status(&id, &["deployed", "failed"], Duration::from_secs(60))
        .await;
    assert_eq!(done["request"]["status"], "failed");
    let reason = done["request"]["status_reason"]
        .as_str()
        .unwrap_or_default();
    assert!(
        reason.contains(
            "could not assume the deploy role arn:aws:iam::200000000009:role/stackgate-deploy"
        ) && reason.contains("trust policy"),
        "{reason}"
    );
    assert_eq!(done["deployments"][0]["status"], "failed");
    assert!(done["approvals"].as_array().unwrap().is_empty());
    let inbox = bob.get("/approvals").await.text().await.unwrap();
    assert!(
        !inbox.contains(&format!("/requests/{id}")),
        "not in the inbox"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_expired_and_disabled_sessions_are_refused_at_the_next_request() {
    // Without the short read cache: every request checks the stored session.
    let app = TestApp::spawn_with(Backend::Sqlite, &[("STACKGATE_SESSION_CACHE_MS", "0")]).await;
    let pool = app.state.db.pool();
    let now = chrono::Utc::now().timestamp_millis();
    // Each case: sign in, move the clock of the stored session (or disable the user), and the
    // very next request must be sent back to sign-in with the session gone.
    let cases: [(&str, String); 3] = [
        (
            "idle for 16 minutes",
            format!("update sessions set last_seen_at = {}", now - 16 * 60_000),
        ),
        (
            "past its absolute lifetime",
            format!("update sessions set expires_at = {}", now - 1),
        ),
        (
            "user disabled by an admin",
            "update users set disabled = 1".to_string(),
        ),
    ];
    for (what, sql) in cases {
        let alice = app.login("alice").await;
        assert_eq!(alice.get("/").await.status(), StatusCode::OK, "{what}");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(pool)
            .await
            .unwrap();
        let resp = alice.get("/").await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{what}");
        assert_eq!(
            session_count(&app).await,
            0,
            "{what}: the session row is deleted"
        );
        sqlx::query("update users set disabled = 0")
            .execute(pool)
            .await
            .unwrap();
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_user_cannot_sign_in_again() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let _first = app.login("alice").await;
    sqlx::query("update users set disabled = 1")
        .execute(app.state.db.pool())
        .await
        .unwrap();
    let client = browser();
    let url = callback_url(&app, &client, "alice").await;
    assert_eq!(
        client.get(&url).send().await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    assert!(
        audit_reasons(&app)
            .await
            .contains(&"user_disabled".to_string())
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_identity_provider_gets_a_clear_message_and_the_portal_stays_up() {
    // A closed port stands in for an IdP that is down.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[("STACKGATE_OIDC_ISSUER", &format!("http://127.0.0.1:{port}"))],
    )
    .await;
    let resp = browser()
        .get(format!("{}/auth/login", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = resp.text().await.unwrap();
    assert!(body.contains("sign-in service cannot be reached"), "{body}");
    assert_eq!(session_count(&app).await, 0);
    // The portal itself is up.
    let ready = browser()
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_auditors_and_admins_read_the_audit_log_and_reading_it_is_audited() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = app.login("alice").await;
    let erin = app.login("erin").await;
    assert_eq!(alice.get("/audit").await.status(), StatusCode::FORBIDDEN);
    let (code, _) = alice.api(Method::GET, "/audit/verify", None).await;
    assert_eq!(code, StatusCode::FORBIDDEN);

    let page = erin.get("/audit").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("has not been verified yet")
    );
    let (code, v) = erin.api(Method::GET, "/audit/verify", None).await;
    assert_eq!(code, StatusCode::OK);
    assert!(
        v["broken_at"].is_null() && v["verified_up_to"].as_i64().unwrap() >= 3,
        "{v}"
    );
    let page = erin.get("/audit").await.text().await.unwrap();
    assert!(page.contains("verified</span> up to #"), "{page}");
    // The export is the whole log, in order, and verifies offline.
    let export = erin.get("/audit/export").await.text().await.unwrap();
    let records: Vec<stackgate::audit::Record> = export
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(records.iter().any(|r| r.action == "auth.login"));
    let offline = stackgate::audit::verify_records(&records);
    assert!(offline.broken_at.is_none(), "{offline:?}");
    assert_eq!(offline.verified_up_to, records.len() as i64);

    let actions: Vec<String> = crate::support::audit_log(&app.state.db)
        .await
        .into_iter()
        .map(|r| r.action)
        .collect();
    for read in ["audit.read", "audit.verified", "audit.exported"] {
        assert!(
            actions.iter().any(|a| a == read),
            "{read} missing: {actions:?}"
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_replica_on_the_same_sqlite_database_refuses_to_start() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let second = stackgate::build_state((*app.state.config).clone()).await;
    let error = second.err().map(|e| format!("{e:#}")).unwrap_or_default();
    assert!(error.contains("one replica"), "{error}");
    app.stop().await;
}
