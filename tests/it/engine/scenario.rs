//! The portal side of the engine cases: a fresh database with one approved request and its
//! queued deployment, the worker that talks to the fake, and the invariants every case checks
//! at its end.

use stackgate::AppState;
use stackgate::approvals::{self, Decision};
use stackgate::audit::Record;
use stackgate::db::{Db, now_ms};
use stackgate::deployments::{self, Deployment};
use stackgate::requests::input::NewRequest;
use stackgate::requests::{self, RequestStatus, ServiceRequest};
use stackgate::web::{CurrentUser, Roles};
use stackgate::worker::Worker;

use super::fake::{Call, FakeAws, Op, valid_token};
use super::{DEV, REGION};
use crate::support::{repo, test_config};

/// One request with its deployment, and the fake the worker talks to.
pub(super) struct Scenario {
    pub(super) state: AppState,
    pub(super) fake: FakeAws,
    pub(super) alice: CurrentUser,
    pub(super) bob: CurrentUser,
    pub(super) request_id: String,
    pub(super) deployment_id: String,
    pub(super) stack_name: String,
}

impl Drop for Scenario {
    /// Removes the scenario's SQLite files (the pool may still be open: unlinking is fine).
    fn drop(&mut self) {
        if let Some(path) = self.state.config.database_url.strip_prefix("sqlite://") {
            for suffix in ["", "-wal", "-shm", ".lock"] {
                let _ = std::fs::remove_file(format!("{path}{suffix}"));
            }
        }
    }
}

pub(super) async fn insert_user(db: &Db, name: &str, groups: &[&str], roles: Roles) -> CurrentUser {
    let id = uuid::Uuid::new_v4().to_string();
    let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    sqlx::query(
        "insert into users (id, issuer, subject, email, name, groups_json, created_at, \
         last_login_at) values ($1, $2, $3, $4, $5, $6, $7, $7)",
    )
    .bind(id.clone())
    .bind("https://idp.test".to_string())
    .bind(name.to_string())
    .bind(format!("{name}@example.test"))
    .bind(name.to_string())
    .bind(serde_json::to_string(&groups).unwrap())
    .bind(now_ms())
    .execute(db.pool())
    .await
    .unwrap();
    CurrentUser {
        id,
        issuer: "https://idp.test".into(),
        subject: name.into(),
        name: name.into(),
        email: None,
        roles,
        csrf_token: String::new(),
        source_ip: Some("192.0.2.10".into()),
        groups_checked_at: 0,
        auth_time: None,
        amr: Vec::new(),
        acr: None,
        session: None,
    }
}

impl Scenario {
    /// A fresh database, alice's network request for the dev account, its change set prepared
    /// and approved by bob; the fake's call log starts after that.
    pub(super) async fn new() -> Scenario {
        Self::with(&[]).await
    }

    pub(super) async fn with(extra: &[(&str, &str)]) -> Scenario {
        let s = Self::submitted_with(extra).await;
        s.prepare_and_approve().await;
        s
    }

    /// Prepares the change set against the fake as it is now, has bob approve it, and clears
    /// the fake's call log: what a case sees next is the execution.
    pub(super) async fn prepare_and_approve(&self) {
        self.prepare().await;
        self.approve().await;
        self.fake.lock().calls.clear();
    }

    /// Alice's request just submitted: its deployment is queued to prepare the change set.
    pub(super) async fn submitted() -> Scenario {
        Self::submitted_with(&[]).await
    }

    /// Runs the worker once: the change set is created and the request waits for review.
    pub(super) async fn prepare(&self) {
        assert!(
            self.worker().run_once().await.unwrap(),
            "the job is claimed"
        );
        assert_eq!(self.request().await.status, RequestStatus::PendingApproval);
        assert_eq!(
            self.deployment().await.status,
            deployments::DeploymentStatus::AwaitingApproval
        );
    }

    /// Bob approves the change set waiting for review.
    pub(super) async fn approve(&self) {
        let arn = self
            .deployment()
            .await
            .change_set_arn
            .expect("a change set");
        let outcome = approvals::actions::decide(
            &self.state,
            &self.bob,
            &self.request_id,
            approvals::actions::DecisionInput {
                decision: Decision::Approve,
                comment: "Looks right.",
                change_set_arn: Some(&arn),
            },
        )
        .await
        .expect("bob approves");
        assert_eq!(outcome.status, RequestStatus::Approved);
        assert_eq!(
            outcome.deployment_id.as_deref(),
            Some(self.deployment_id.as_str())
        );
    }

    pub(super) async fn submitted_with(extra: &[(&str, &str)]) -> Scenario {
        stackgate::telemetry::init_for_tests();
        let dir = std::env::temp_dir().join("stackgate-engine-it");
        std::fs::create_dir_all(&dir).unwrap();
        let db_url = format!(
            "sqlite://{}/{}.db",
            dir.display(),
            uuid::Uuid::new_v4().simple()
        );
        let config = test_config(
            vec![
                ("STACKGATE_CONFIG", repo("config/demo.toml")),
                ("STACKGATE_DATABASE_URL", db_url),
                (
                    "STACKGATE_OIDC_ISSUER",
                    "http://127.0.0.1:9/not-used".into(),
                ),
                ("STACKGATE_OIDC_CLIENT_ID", "not-used".into()),
                ("STACKGATE_OIDC_CLIENT_SECRET", "not-used".into()),
                ("STACKGATE_CATALOG_DIR", repo("cloudformation")),
                ("STACKGATE_RULES_DIR", repo("cloudformation/rules")),
                ("STACKGATE_WORKER", "false".into()),
                ("STACKGATE_WORKER_POLL_MS", "5".into()),
                ("STACKGATE_LEASE_SECONDS", "5".into()),
                ("STACKGATE_LOG_FORMAT", "pretty".into()),
            ],
            extra,
        );
        let state = stackgate::build_state(config).await.expect("build state");
        let alice = insert_user(
            &state.db,
            "alice",
            &["payments-requesters"],
            Roles {
                requester_teams: vec!["payments".into()],
                ..Roles::default()
            },
        )
        .await;
        let bob = insert_user(
            &state.db,
            "bob",
            &["payments-approvers"],
            Roles {
                approver_teams: vec!["payments".into()],
                ..Roles::default()
            },
        )
        .await;
        let name = format!("e{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let input = NewRequest {
            team: Some("payments".into()),
            blueprint: "network".into(),
            blueprint_version: None,
            account_id: DEV.into(),
            region: REGION.into(),
            environment: None,
            name,
            parameters: [("vpc_cidr", "10.42.0.0/16"), ("az_count", "2")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let (request_id, _number) = requests::actions::submit(&state, &alice, &input)
            .await
            .expect("alice submits");
        let deployment_id = deployments::store::for_request(&state.db, &request_id)
            .await
            .unwrap()
            .first()
            .expect("a deployment is queued to prepare the change set")
            .id
            .clone();
        let stack_name = requests::store::get(&state.db, &request_id)
            .await
            .unwrap()
            .unwrap()
            .stack_name;
        Scenario {
            state,
            fake: FakeAws::new(),
            alice,
            bob,
            request_id,
            deployment_id,
            stack_name,
        }
    }

    pub(super) fn db(&self) -> &Db {
        &self.state.db
    }

    pub(super) fn worker(&self) -> Worker<FakeAws> {
        Worker::new(
            self.state.db.clone(),
            self.state.config.clone(),
            self.fake.clone(),
        )
    }

    pub(super) async fn deployment(&self) -> Deployment {
        deployments::store::get(self.db(), &self.deployment_id)
            .await
            .unwrap()
            .expect("the deployment")
    }

    pub(super) async fn request(&self) -> ServiceRequest {
        requests::store::get(self.db(), &self.request_id)
            .await
            .unwrap()
            .expect("the request")
    }

    pub(super) async fn audit(&self) -> Vec<Record> {
        stackgate::audit::store::for_object(self.db(), "request", &self.request_id)
            .await
            .unwrap()
    }

    pub(super) async fn audit_actions(&self) -> Vec<String> {
        self.audit().await.into_iter().map(|r| r.action).collect()
    }

    /// Reads one integer column of the deployment row.
    pub(super) async fn column(&self, column: &str) -> Option<i64> {
        use sqlx::Row;
        let sql = format!("select {column} from deployments where id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(self.deployment_id.clone())
            .fetch_one(self.db().pool())
            .await
            .unwrap()
            .try_get::<Option<i64>, _>(0)
            .unwrap()
    }

    pub(super) async fn exec(&self, sql: &'static str) {
        let done = sqlx::query(sql)
            .bind(self.deployment_id.clone())
            .execute(self.db().pool())
            .await
            .unwrap();
        assert_eq!(done.rows_affected(), 1, "{sql}");
    }

    /// Runs a statement about the request (`$1` is its id); it must change something.
    pub(super) async fn exec_request(&self, sql: &str) {
        let done = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
            .bind(self.request_id.clone())
            .execute(self.db().pool())
            .await
            .unwrap();
        assert!(done.rows_affected() >= 1, "{sql}");
    }

    /// The job's backoff is over (instead of sleeping).
    pub(super) async fn make_due(&self) {
        self.exec("update deployments set next_attempt_at = 0 where id = $1")
            .await;
    }

    /// The job's lease ran out (instead of sleeping).
    pub(super) async fn expire_lease(&self) {
        self.exec("update deployments set lease_expires_at = 1 where id = $1")
            .await;
    }

    /// What every test checks at the end: the audit chain verifies; every token the fake saw
    /// is a valid, deterministic `dep-<deployment>-<step>-<epoch>`; no stack got more than one
    /// change set, no change set was executed twice, nothing was ever deleted.
    pub(super) async fn check_invariants(&self) {
        let v = stackgate::audit::store::verify(self.db()).await.unwrap();
        assert_eq!(v.broken_at, None, "the audit chain verifies");
        assert!(v.records > 0);
        // Every deployment of the request (a refreshed change set is a new one).
        let ids: Vec<String> = deployments::store::for_request(self.db(), &self.request_id)
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.id)
            .collect();
        for call in self.fake.calls() {
            if let Some(t) = &call.token {
                assert!(
                    valid_token(t),
                    "token {t} fits [a-zA-Z0-9][-a-zA-Z0-9]*, ≤128"
                );
                let rest = ids
                    .iter()
                    .find_map(|id| t.strip_prefix(&format!("dep-{id}-")))
                    .unwrap_or_else(|| panic!("token {t} names a deployment of the request"));
                let (step, epoch) = rest.rsplit_once('-').expect("<step>-<epoch>");
                let want = match call.op {
                    Op::CreateChangeSet => "changeset",
                    Op::ExecuteChangeSet => "execute",
                    _ => step,
                };
                assert_eq!(step, want, "{t}");
                assert!(epoch.parse::<i64>().unwrap() >= 1, "{t}");
            }
        }
        self.fake.world(|w| {
            for id in &ids {
                let made = w
                    .change_sets
                    .iter()
                    .filter(|c| c.name == format!("stackgate-{id}"))
                    .count();
                assert!(made <= 1, "at most one change set per deployment");
            }
            let mut executed: Vec<&String> = w.executions.iter().map(|(a, _)| a).collect();
            let n = executed.len();
            executed.dedup();
            assert_eq!(executed.len(), n, "no change set executed twice");
            assert!(
                w.live_deleted.is_empty(),
                "only an empty stack under review is ever deleted: {:?}",
                w.live_deleted
            );
        });
        let started = self
            .audit()
            .await
            .into_iter()
            .filter(|r| r.action == "deploy.started")
            .count();
        assert!(started <= 1, "one deploy.started per deployment");
    }
}

pub(super) fn calls_of(calls: &[Call], op: Op) -> Vec<Call> {
    calls.iter().filter(|c| c.op == op).cloned().collect()
}
