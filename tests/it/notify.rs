//! Webhook notifications against a local receiver (a small axum server on 127.0.0.1:0): what a
//! team is told and in what shape, retries after failures and timeouts, a receiver that hangs
//! never holding a request up, and nothing for a team without a webhook. On SQLite and
//! PostgreSQL, with a second notifier (another replica's) racing the portal's own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use reqwest::Method;
use serde_json::Value;
use sqlx::Row;

use crate::app::{Backend, TestApp, UserClient};
use crate::support::repo;

const DEV: &str = "200000000001";
/// The secret part of the webhook URL: it must never reach the database.
const TOKEN: &str = "T0SECRET/B0SECRET/XSECRETTOKEN";

/// How the receiver answers the first tries of each distinct message.
#[derive(Debug, Clone, Copy)]
enum Mode {
    Accept,
    /// 500 to the first n tries of each message.
    FailFirst(usize),
    /// No answer at all to the first n tries of each message.
    HangFirst(usize),
    /// This status to every try.
    Always(u16),
}

#[derive(Debug, Clone)]
struct Hit {
    body: Value,
    accepted: bool,
}

impl Hit {
    fn text(&self) -> &str {
        self.body["text"].as_str().unwrap_or_default()
    }
}

struct Shared {
    mode: Mode,
    tries: Mutex<HashMap<String, usize>>,
    hits: Mutex<Vec<Hit>>,
}

/// The local receiver: a webhook URL and what it was sent.
struct Receiver {
    url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

async fn hook(State(s): State<Arc<Shared>>, axum::Json(body): axum::Json<Value>) -> StatusCode {
    let text = body["text"].as_str().unwrap_or_default().to_string();
    let n = {
        let mut tries = s.tries.lock().unwrap();
        let n = tries.entry(text).or_default();
        *n += 1;
        *n
    };
    let accepted = match s.mode {
        Mode::Accept => true,
        Mode::FailFirst(k) | Mode::HangFirst(k) => n > k,
        Mode::Always(_) => false,
    };
    s.hits.lock().unwrap().push(Hit { body, accepted });
    match (accepted, s.mode) {
        (true, _) => StatusCode::OK,
        (false, Mode::Always(code)) => StatusCode::from_u16(code).unwrap(),
        (false, Mode::HangFirst(_)) => {
            tokio::time::sleep(Duration::from_secs(120)).await;
            StatusCode::OK
        }
        (false, _) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl Receiver {
    async fn start(mode: Mode) -> Receiver {
        let shared = Arc::new(Shared {
            mode,
            tries: Mutex::default(),
            hits: Mutex::default(),
        });
        let router = axum::Router::new()
            .route("/hook/{*rest}", axum::routing::post(hook))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook/{TOKEN}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Receiver { url, shared, task }
    }

    fn hits(&self) -> Vec<Hit> {
        self.shared.hits.lock().unwrap().clone()
    }

    /// The tries whose message text contains `part`.
    fn hits_with(&self, part: &str) -> Vec<Hit> {
        self.hits()
            .into_iter()
            .filter(|h| h.text().contains(part))
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The demo configuration with a webhook for the payments team (lending has none).
fn config_with_webhook(url: &str) -> String {
    let demo = std::fs::read_to_string(repo("config/demo.toml")).unwrap();
    let anchor = "cost_centre = \"CC-1042\"";
    assert_eq!(
        demo.matches(anchor).count(),
        1,
        "the payments team's cost centre"
    );
    let dir = std::env::temp_dir().join("stackgate-it");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("notify-{}.toml", uuid::Uuid::new_v4().simple()));
    std::fs::write(
        &path,
        demo.replace(anchor, &format!("{anchor}\nwebhook_url = \"{url}\"")),
    )
    .unwrap();
    path.display().to_string()
}

async fn spawn(backend: Backend, hook: &Receiver, extra: &[(&str, &str)]) -> TestApp {
    let config = config_with_webhook(&hook.url);
    let mut settings = vec![
        ("STACKGATE_CONFIG", config.as_str()),
        ("STACKGATE_NOTIFY_POLL_MS", "50"),
    ];
    settings.extend_from_slice(extra);
    TestApp::spawn_with(backend, &settings).await
}

/// One stored notification.
#[derive(Debug, Clone)]
struct Row_ {
    team: String,
    event: String,
    status: String,
    attempts: i64,
    last_error: Option<String>,
    payload: String,
}

async fn rows(app: &TestApp, where_: &str, value: &str) -> Vec<Row_> {
    let sql = format!(
        "select team, event, status, attempts, last_error, payload_json from notifications \
         where {where_} = $1 order by audit_seq"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(value.to_string())
        .fetch_all(app.state.db.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| Row_ {
            team: r.get(0),
            event: r.get(1),
            status: r.get(2),
            attempts: r.get(3),
            last_error: r.get(4),
            payload: r.get(5),
        })
        .collect()
}

/// Polls until `rows` of the request satisfy `done` (or fails the test after `within`).
async fn wait_rows(
    app: &TestApp,
    request: &str,
    within: Duration,
    done: impl Fn(&[Row_]) -> bool,
) -> Vec<Row_> {
    let deadline = Instant::now() + within;
    loop {
        let now = rows(app, "request_id", request).await;
        if done(&now) {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "notifications of {request} after {within:?}: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    )
}

/// Rejects through the API, naming the change set under review.
async fn reject(user: &UserClient, id: &str, shown: &Value, comment: &str) {
    let arn = shown["change_set"]["arn"]
        .as_str()
        .expect("a change set under review");
    let (code, body) = user
        .api(
            Method::POST,
            &format!("/requests/{id}/reject"),
            Some(serde_json::json!({ "comment": comment, "change_set_arn": arn })),
        )
        .await;
    assert_eq!(code, reqwest::StatusCode::OK, "{body}");
    assert_eq!(body["status"], "rejected", "{body}");
}

async fn submitting_and_rejecting_tells_the_team_once_each_in_slack_shape(backend: Backend) {
    let hook = Receiver::start(Mode::Accept).await;
    let app = spawn(backend, &hook, &[]).await;
    // A second replica's notifier on its own pool, racing the portal's.
    let replica = stackgate::db::Db::connect(&app.state.config.database_url)
        .await
        .unwrap();
    let other =
        stackgate::notify::Notifier::new(replica.clone(), app.state.config.clone()).unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let other = tokio::spawn(other.run(stopped));

    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    let id = alice.submit("network", DEV, &unique("nt")).await;
    let shown = alice
        .wait_for_status(&id, &["pending_approval"], Duration::from_secs(60))
        .await;
    reject(&bob, &id, &shown, "Not <this> one & not now").await;
    let stored = wait_rows(&app, &id, Duration::from_secs(30), |r| {
        r.len() == 3 && r.iter().all(|n| n.status == "sent")
    })
    .await;
    let events: Vec<&str> = stored.iter().map(|n| n.event.as_str()).collect();
    assert_eq!(
        events,
        ["submitted", "needs_review", "rejected"],
        "{stored:?}"
    );
    assert!(
        stored
            .iter()
            .all(|n| n.attempts == 1 && n.team == "payments"),
        "{stored:?}"
    );
    assert!(
        stored.iter().all(|n| !n.payload.contains("SECRET")),
        "the webhook URL is never stored"
    );

    let number = shown["request"]["number"].as_i64().unwrap();
    let name = format!("Request #{number}");
    let link = format!("<{}/requests/{id}|{name}>", app.base);
    for (said, times) in [
        ("was submitted by Alice", 1),
        ("needs your review", 1),
        ("was rejected by Bob", 1),
    ] {
        let hits = hook.hits_with(said);
        assert_eq!(hits.len(), times, "{said}: {:?}", hook.hits());
        let body = &hits[0].body;
        assert!(hits[0].accepted);
        assert!(
            body["text"]
                .as_str()
                .unwrap()
                .starts_with(&format!("[payments] {name}")),
            "{body}"
        );
        let blocks = body["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), 3, "{body}");
        assert_eq!(blocks[0]["type"], "section");
        assert_eq!(blocks[0]["text"]["type"], "mrkdwn");
        assert!(
            blocks[0]["text"]["text"].as_str().unwrap().contains(&link),
            "{body}"
        );
        let fields = blocks[1]["fields"].to_string();
        assert!(
            fields.contains("payments") && fields.contains("eu-west-2"),
            "{fields}"
        );
    }
    let rejected = hook.hits_with("was rejected by Bob")[0].text().to_string();
    assert!(
        rejected.contains("Reason: Not &lt;this&gt; one &amp; not now"),
        "the reason, escaped: {rejected}"
    );
    assert_eq!(
        hook.hits().len(),
        3,
        "nothing else was sent: {:?}",
        hook.hits()
    );

    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), other).await;
    replica.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submitting_and_rejecting_tells_the_team_once_each_in_slack_shape_on_sqlite() {
    submitting_and_rejecting_tells_the_team_once_each_in_slack_shape(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submitting_and_rejecting_tells_the_team_once_each_in_slack_shape_on_postgres() {
    submitting_and_rejecting_tells_the_team_once_each_in_slack_shape(Backend::Postgres).await;
}

async fn a_receiver_failing_twice_gets_the_message_on_the_third_try(backend: Backend) {
    let hook = Receiver::start(Mode::FailFirst(2)).await;
    let app = spawn(backend, &hook, &[]).await;
    let alice = app.login("alice").await;
    let id = alice.submit("network", DEV, &unique("nf")).await;
    let stored = wait_rows(&app, &id, Duration::from_secs(30), |r| {
        r.first().is_some_and(|n| n.status == "sent")
    })
    .await;
    let first = &stored[0];
    assert_eq!(first.event, "submitted");
    assert_eq!(first.attempts, 3, "{first:?}");
    let error = first.last_error.clone().unwrap_or_default();
    assert!(error.contains("500"), "the last failure is kept: {error}");
    assert!(!error.contains("SECRET"), "{error}");
    let tries = hook.hits_with("was submitted by Alice");
    assert_eq!(tries.len(), 3, "{tries:?}");
    assert_eq!(tries.iter().filter(|h| h.accepted).count(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_failing_twice_gets_the_message_on_the_third_try_on_sqlite() {
    a_receiver_failing_twice_gets_the_message_on_the_third_try(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_failing_twice_gets_the_message_on_the_third_try_on_postgres() {
    a_receiver_failing_twice_gets_the_message_on_the_third_try(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_holds_nothing_up_and_the_message_is_retried_after_the_timeout() {
    let hook = Receiver::start(Mode::HangFirst(1)).await;
    let app = spawn(
        Backend::Sqlite,
        &hook,
        &[("STACKGATE_NOTIFY_TIMEOUT_MS", "500")],
    )
    .await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    let id = alice.submit("network", DEV, &unique("nh")).await;
    // The worker prepares the change set while the receiver hangs on "submitted".
    let shown = alice
        .wait_for_status(&id, &["pending_approval"], Duration::from_secs(60))
        .await;
    let started = Instant::now();
    reject(&bob, &id, &shown, "Wrong region.").await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a decision does not wait for webhooks: {:?}",
        started.elapsed()
    );
    let stored = wait_rows(&app, &id, Duration::from_secs(30), |r| {
        r.len() == 3 && r.iter().all(|n| n.status == "sent")
    })
    .await;
    for n in &stored {
        assert_eq!(n.attempts, 2, "one hung try, then the message: {n:?}");
        let error = n.last_error.clone().unwrap_or_default();
        assert!(error.contains("timed out"), "{error}");
        assert!(
            !error.contains("SECRET") && !error.contains("/hook/"),
            "{error}"
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_without_a_webhook_gets_nothing() {
    let hook = Receiver::start(Mode::Accept).await;
    let app = spawn(Backend::Sqlite, &hook, &[]).await;
    let grace = app.login("grace").await;
    let alice = app.login("alice").await;
    let lending = grace.submit("network", DEV, &unique("nl")).await;
    grace
        .wait_for_status(&lending, &["pending_approval"], Duration::from_secs(60))
        .await;
    // payments' request comes after all of lending's records: once it is delivered, the
    // notifier has been past them.
    let payments = alice.submit("network", DEV, &unique("np")).await;
    wait_rows(&app, &payments, Duration::from_secs(30), |r| {
        r.first().is_some_and(|n| n.status == "sent")
    })
    .await;
    assert!(rows(&app, "request_id", &lending).await.is_empty());
    assert!(rows(&app, "team", "lending").await.is_empty());
    assert!(
        hook.hits().iter().all(|h| !h.text().contains("[lending]")),
        "{:?}",
        hook.hits()
    );
    assert!(!hook.hits_with("[payments]").is_empty());
    app.stop().await;
}

/// A receiver answering with `code` every time; the first notification of a submission, once
/// the notifier is done with it, and the audit page as an auditor sees it.
async fn given_up(code: u16, extra: &[(&str, &str)]) -> (Row_, usize, String) {
    let hook = Receiver::start(Mode::Always(code)).await;
    let app = spawn(Backend::Sqlite, &hook, extra).await;
    let alice = app.login("alice").await;
    let id = alice.submit("network", DEV, &unique("ng")).await;
    let stored = wait_rows(&app, &id, Duration::from_secs(30), |r| {
        r.first().is_some_and(|n| n.status != "queued")
    })
    .await;
    let tries = hook.hits_with("was submitted by Alice").len();
    let erin = app.login("erin").await;
    let page = erin.get("/audit").await.text().await.unwrap();
    app.stop().await;
    (stored[0].clone(), tries, page)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_error_is_final_at_once_and_the_audit_page_counts_it() {
    let (n, tries, page) = given_up(404, &[]).await;
    assert_eq!(
        (n.status.as_str(), n.attempts, tries),
        ("failed", 1, 1),
        "{n:?}"
    );
    let error = n.last_error.unwrap_or_default();
    assert!(
        error.contains("404") && !error.contains("SECRET"),
        "{error}"
    );
    // The submission's, and perhaps already the review's.
    assert!(
        page.contains("1 team notification could not be delivered")
            || page.contains("2 team notifications could not be delivered"),
        "{page}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_up_to_the_maximum_then_given_up() {
    let (n, tries, _) = given_up(503, &[("STACKGATE_NOTIFY_MAX_ATTEMPTS", "2")]).await;
    assert_eq!(
        (n.status.as_str(), n.attempts, tries),
        ("failed", 2, 2),
        "{n:?}"
    );
    let error = n.last_error.unwrap_or_default();
    assert!(
        error.contains("gave up after 2 attempt(s)") && error.contains("503"),
        "{error}"
    );
}
