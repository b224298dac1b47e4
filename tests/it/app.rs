//! `TestApp`: a real stackgate server on a free port with a fresh database (SQLite file or a new
//! PostgreSQL database), the in-process worker, the real IdP and the real AWS emulator; and
//! `UserClient`: a signed-in browser-like HTTP client.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use stackgate::AppState;

use crate::oidc::{CLIENT_ID, CLIENT_SECRET, browser, issuer, login_via_idp};
use crate::support::{harness_env, repo, test_config};

/// Which database a scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub base: String,
    pub state: AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

/// A fresh database URL for one test.
pub async fn fresh_database(backend: Backend) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    match backend {
        Backend::Sqlite => {
            let dir = std::env::temp_dir().join("stackgate-it");
            std::fs::create_dir_all(&dir).unwrap();
            format!("sqlite://{}/{id}.db", dir.display())
        }
        Backend::Postgres => {
            let admin_url = harness_env("STACKGATE_TEST_PG_URL");
            sqlx::any::install_default_drivers();
            let admin = sqlx::AnyPool::connect(&admin_url)
                .await
                .unwrap_or_else(|e| {
                    panic!("cannot reach PostgreSQL at STACKGATE_TEST_PG_URL ({admin_url}): {e}")
                });
            let name = format!("sg_it_{id}");
            sqlx::query(sqlx::AssertSqlSafe(format!("create database {name}")))
                .execute(&admin)
                .await
                .unwrap();
            admin.close().await;
            let base = admin_url.rsplit_once('/').map(|(b, _)| b).unwrap();
            format!("{base}/{name}")
        }
    }
}

impl TestApp {
    /// Starts the portal with `extra` settings on top of the test defaults.
    pub async fn spawn_with(backend: Backend, extra: &[(&str, &str)]) -> TestApp {
        stackgate::telemetry::init_for_tests();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let base = format!("http://{addr}");
        // A test that names its own database gets no fresh one.
        let database = match extra.iter().find(|(k, _)| *k == "STACKGATE_DATABASE_URL") {
            Some((_, url)) => url.to_string(),
            None => fresh_database(backend).await,
        };
        let config = test_config(
            vec![
                ("STACKGATE_CONFIG", repo("config/demo.toml")),
                ("STACKGATE_DATABASE_URL", database),
                ("STACKGATE_PUBLIC_URL", base.clone()),
                ("STACKGATE_LISTEN", addr.to_string()),
                ("STACKGATE_OIDC_ISSUER", issuer()),
                ("STACKGATE_OIDC_CLIENT_ID", CLIENT_ID.to_string()),
                ("STACKGATE_OIDC_CLIENT_SECRET", CLIENT_SECRET.to_string()),
                (
                    "STACKGATE_AWS_ENDPOINT_URL",
                    harness_env("STACKGATE_TEST_AWS_ENDPOINT"),
                ),
                ("STACKGATE_CATALOG_DIR", repo("tests/fixtures/catalog")),
                ("STACKGATE_RULES_DIR", repo("cloudformation/rules")),
                ("STACKGATE_STATIC_DIR", repo("static")),
                (
                    "STACKGATE_HTMX_PATH",
                    repo("node_modules/htmx.org/dist/htmx.min.js"),
                ),
                ("STACKGATE_WORKER_POLL_MS", "50".to_string()),
                // Many sign-ins from one address in a test; the limit has its own test.
                ("STACKGATE_LOGIN_RATE_PER_MINUTE", "10000".to_string()),
                ("STACKGATE_LOG_FORMAT", "pretty".to_string()),
            ],
            extra,
        );
        let state = stackgate::build_state(config).await.expect("build state");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server_state = state.clone();
        let server = tokio::spawn(async move {
            stackgate::run(server_state, listener, async {
                let _ = rx.await;
            })
            .await
            .expect("server runs");
        });
        TestApp {
            base,
            state,
            stop: Some(tx),
            server: Some(server),
        }
    }

    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, &[]).await
    }

    /// Signs `user` in through the real IdP, as a browser would.
    pub async fn login(&self, user: &str) -> UserClient {
        let client = browser();
        let start = client
            .get(format!("{}/auth/login?return_to=/", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(
            start.status(),
            StatusCode::SEE_OTHER,
            "sign-in starts with a redirect to the IdP"
        );
        let authorize = start.headers()["location"].to_str().unwrap().to_string();
        let callback = login_via_idp(&client, &authorize, user).await;
        assert!(
            callback.starts_with(&format!("{}/auth/callback", self.base)),
            "{callback}"
        );
        let back = client.get(&callback).send().await.unwrap();
        assert_eq!(
            back.status(),
            StatusCode::SEE_OTHER,
            "the callback signs {user} in"
        );
        let home = client.get(format!("{}/", self.base)).send().await.unwrap();
        assert_eq!(home.status(), StatusCode::OK, "{user} sees the home page");
        let html = home.text().await.unwrap();
        let csrf =
            extract(&html, "name=\"csrf_token\" value=\"", "\"").expect("csrf token on the page");
        UserClient {
            client,
            base: self.base.clone(),
            csrf,
        }
    }

    /// Stops the server and its worker, and waits for them; then removes the database.
    pub async fn stop(mut self) {
        self.halt().await;
        drop_database(&self.state.config.database_url).await;
    }

    /// Stops the server and its worker, and waits for them, keeping the database: returns its
    /// URL, for a portal started again on it (`STACKGATE_DATABASE_URL`).
    pub async fn stop_keeping_database(mut self) -> String {
        self.halt().await;
        self.state.config.database_url.clone()
    }

    async fn halt(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(s) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(20), s).await;
        }
    }
}

/// Removes a test's database: the SQLite files, or the PostgreSQL database (the shared cluster
/// must not fill up run after run).
async fn drop_database(url: &str) {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let path = path.split('?').next().unwrap_or_default();
        for suffix in ["", "-wal", "-shm", ".lock"] {
            let _ = std::fs::remove_file(format!("{path}{suffix}"));
        }
    } else if let Some((_, name)) = url.rsplit_once('/') {
        let admin = sqlx::AnyPool::connect(&harness_env("STACKGATE_TEST_PG_URL"))
            .await
            .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "drop database if exists {name} with (force)"
        )))
        .execute(&admin)
        .await
        .unwrap();
        admin.close().await;
    }
}

/// The text between `start` and the next `end` in `s`.
pub fn extract(s: &str, start: &str, end: &str) -> Option<String> {
    let from = s.find(start)? + start.len();
    let len = s[from..].find(end)?;
    Some(s[from..from + len].to_string())
}

/// A signed-in user.
pub struct UserClient {
    pub client: reqwest::Client,
    pub base: String,
    pub csrf: String,
}

impl UserClient {
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    /// Posts a form the way a page does (with the anti-forgery token field).
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let mut body: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        body.push(("csrf_token".into(), self.csrf.clone()));
        let encoded: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(body)
            .finish();
        self.client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(encoded)
            .send()
            .await
            .unwrap()
    }

    /// Calls the JSON API (writes carry the X-CSRF-Token header).
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (StatusCode, serde_json::Value) {
        let mut req = self
            .client
            .request(method, format!("{}/api/v1{path}", self.base))
            .header("x-csrf-token", &self.csrf);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    /// Submits a request through the API (default parameters); returns its id.
    pub async fn submit(&self, blueprint: &str, account_id: &str, name: &str) -> String {
        let body = serde_json::json!({
            "blueprint": blueprint, "account_id": account_id, "region": "eu-west-2", "name": name
        });
        let (code, created) = self
            .api(reqwest::Method::POST, "/requests", Some(body))
            .await;
        assert_eq!(code, StatusCode::CREATED, "{created}");
        created["id"].as_str().unwrap().to_string()
    }

    /// Approves through the API once the change set is ready for review, naming the change set
    /// the approver saw; returns the outcome (status, approvals, required).
    pub async fn approve(&self, id: &str, comment: &str) -> serde_json::Value {
        let (code, outcome) = self.decide(id, "approve", comment).await;
        assert_eq!(code, StatusCode::OK, "{outcome}");
        outcome
    }

    /// The change set a request waits on (after waiting for it to be ready for review).
    pub async fn review_arn(&self, id: &str) -> String {
        let body = self
            .wait_for_status(id, &["pending_approval"], Duration::from_secs(60))
            .await;
        body["change_set"]["arn"]
            .as_str()
            .unwrap_or_else(|| panic!("no change set on {body}"))
            .to_string()
    }

    /// Decides from the request page as a browser does: waits for the change set, reads the
    /// page, and posts the form with the change set the page showed.
    pub async fn decide_on_page(
        &self,
        id: &str,
        decision: &str,
        comment: &str,
    ) -> reqwest::Response {
        self.review_arn(id).await;
        let page = self
            .get(&format!("/requests/{id}"))
            .await
            .text()
            .await
            .unwrap();
        let arn = extract(&page, "name=\"change_set_arn\" value=\"", "\"")
            .unwrap_or_else(|| panic!("the page offers no decision form: {page}"));
        self.post_form(
            &format!("/requests/{id}/{decision}"),
            &[("comment", comment), ("change_set_arn", &arn)],
        )
        .await
    }

    /// Approves or rejects through the API with the current change set; returns status and body.
    pub async fn decide(
        &self,
        id: &str,
        decision: &str,
        comment: &str,
    ) -> (StatusCode, serde_json::Value) {
        let arn = self.review_arn(id).await;
        let body = serde_json::json!({ "comment": comment, "change_set_arn": arn });
        self.api(
            reqwest::Method::POST,
            &format!("/requests/{id}/{decision}"),
            Some(body),
        )
        .await
    }

    /// Polls the API until the request reaches one of `statuses` (or fails the test after `within`).
    pub async fn wait_for_status(
        &self,
        id: &str,
        statuses: &[&str],
        within: Duration,
    ) -> serde_json::Value {
        let deadline = Instant::now() + within;
        loop {
            let (code, body) = self
                .api(reqwest::Method::GET, &format!("/requests/{id}"), None)
                .await;
            assert_eq!(code, StatusCode::OK, "{body}");
            let status = body["request"]["status"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if statuses.contains(&status.as_str()) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "request {id} still {status} after {within:?}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
