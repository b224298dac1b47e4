//! People acting at the same moment, on SQLite and PostgreSQL: each scenario starts its actors
//! together behind a barrier, hundreds of times, and checks that the outcome is one a serial
//! order of the same actions could have produced — no stuck quorum, no second deployment, no
//! deadlock, no duplicate request number.

use std::sync::Arc;

use sqlx::Row;
use stackgate::approvals::{self, Decision};
use stackgate::error::AppError;
use stackgate::requests::{RequestStatus, actions, input};
use stackgate::web::{CurrentUser, Roles};
use tokio::sync::Barrier;

use crate::app::{Backend, TestApp};

const ITERATIONS: usize = 200;

/// A user row and the signed-in user the actions take.
async fn user(app: &TestApp, login: &str, roles: Roles) -> CurrentUser {
    let mut tx = app.state.db.begin().await.unwrap();
    let id = stackgate::auth::store::upsert_user(
        &mut tx,
        "https://idp.test",
        &format!("sub-{login}"),
        None,
        Some(login),
        &[],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    CurrentUser {
        id,
        issuer: "https://idp.test".into(),
        subject: format!("sub-{login}"),
        name: login.into(),
        email: None,
        roles,
        csrf_token: String::new(),
        source_ip: None,
        groups_checked_at: 0,
        auth_time: None,
        session: None,
    }
}

struct People {
    alice: CurrentUser,
    bob: CurrentUser,
    carol: CurrentUser,
}

async fn people(app: &TestApp) -> People {
    People {
        alice: user(
            app,
            "alice",
            Roles {
                requester_teams: vec!["payments".into()],
                ..Roles::default()
            },
        )
        .await,
        bob: user(
            app,
            "bob",
            Roles {
                approver_teams: vec!["payments".into()],
                ..Roles::default()
            },
        )
        .await,
        carol: user(
            app,
            "carol",
            Roles {
                global_approver: true,
                ..Roles::default()
            },
        )
        .await,
    }
}

/// A prepared prod request of alice's, ready to be recorded again and again.
async fn prepared(app: &TestApp, alice: &CurrentUser, name: &str) -> input::Prepared {
    let input = input::NewRequest {
        team: Some("payments".into()),
        blueprint: "network".into(),
        account_id: "200000000003".into(),
        region: "eu-west-2".into(),
        name: name.into(),
        parameters: Default::default(),
        environment: None,
    };
    match input::prepare(&app.state, alice, &input).await {
        // Recorded many times over: each copy gets its own id and no block of the address plan
        // (the plan's own race is tested below).
        Ok(p) => input::Prepared { address: None, ..p },
        Err(e) => panic!("prepare: {e}"),
    }
}

/// Records a new pending request for a distinct stack (so deployments never collide).
async fn pending(app: &TestApp, alice: &CurrentUser, base: &input::Prepared, i: usize) -> String {
    let mut p = base.clone();
    p.id = uuid::Uuid::new_v4().to_string();
    p.stack_name = format!("{}-{i}", base.stack_name);
    actions::record_submission(&app.state, alice, &p)
        .await
        .unwrap()
        .0
}

async fn scalar(app: &TestApp, sql: &str, id: &str) -> i64 {
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.to_string())
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

async fn status_of(app: &TestApp, id: &str) -> RequestStatus {
    stackgate::requests::store::get(&app.state.db, id)
        .await
        .unwrap()
        .unwrap()
        .status
}

async fn deployments_of(app: &TestApp, id: &str) -> i64 {
    scalar(
        app,
        "select count(*) from deployments where request_id = $1",
        id,
    )
    .await
}

async fn audit_count(app: &TestApp, id: &str, action: &str) -> usize {
    stackgate::audit::store::for_object(&app.state.db, "request", id)
        .await
        .unwrap()
        .iter()
        .filter(|r| r.action == action)
        .count()
}

/// Runs `a` and `b` at the same moment.
async fn together<A, B, FA, FB>(a: A, b: B) -> (FA::Output, FB::Output)
where
    A: FnOnce() -> FA + Send + 'static,
    B: FnOnce() -> FB + Send + 'static,
    FA: std::future::Future + Send + 'static,
    FB: std::future::Future + Send + 'static,
    FA::Output: Send + 'static,
    FB::Output: Send + 'static,
{
    let barrier = Arc::new(Barrier::new(2));
    let (ba, bb) = (barrier.clone(), barrier);
    let ta = tokio::spawn(async move {
        ba.wait().await;
        a().await
    });
    let tb = tokio::spawn(async move {
        bb.wait().await;
        b().await
    });
    (ta.await.unwrap(), tb.await.unwrap())
}

async fn two_approvers_completing_a_quorum_together(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("STACKGATE_WORKER", "false")]).await;
    let p = people(&app).await;
    let base = prepared(&app, &p.alice, "quorum").await;
    for i in 0..ITERATIONS {
        let id = pending(&app, &p.alice, &base, i).await;
        let (state_a, state_b) = (app.state.clone(), app.state.clone());
        let (bob, carol) = (p.bob.clone(), p.carol.clone());
        let (ida, idb) = (id.clone(), id.clone());
        let (a, b) = together(
            move || async move {
                approvals::actions::decide(&state_a, &bob, &ida, Decision::Approve, "").await
            },
            move || async move {
                approvals::actions::decide(&state_b, &carol, &idb, Decision::Approve, "").await
            },
        )
        .await;
        assert!(a.is_ok() && b.is_ok(), "iteration {i}: {a:?} {b:?}");
        assert_eq!(
            status_of(&app, &id).await,
            RequestStatus::Approved,
            "iteration {i}"
        );
        assert_eq!(deployments_of(&app, &id).await, 1, "iteration {i}");
        assert_eq!(audit_count(&app, &id, "request.approved").await, 1);
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_approvers_completing_a_quorum_together_approve_it_once_on_sqlite() {
    two_approvers_completing_a_quorum_together(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_approvers_completing_a_quorum_together_approve_it_once_on_postgres() {
    two_approvers_completing_a_quorum_together(Backend::Postgres).await;
}

async fn an_approval_and_a_cancel_together(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("STACKGATE_WORKER", "false")]).await;
    let p = people(&app).await;
    let base = prepared(&app, &p.alice, "cancelrace").await;
    let (mut approved, mut cancelled) = (0, 0);
    for i in 0..ITERATIONS {
        let id = pending(&app, &p.alice, &base, i).await;
        // One approval is in; bob's completes the quorum unless alice's cancel comes first.
        approvals::actions::decide(&app.state, &p.carol, &id, Decision::Approve, "")
            .await
            .unwrap();
        let (state_a, state_b) = (app.state.clone(), app.state.clone());
        let (bob, alice) = (p.bob.clone(), p.alice.clone());
        let (ida, idb) = (id.clone(), id.clone());
        let (approve, cancel) = together(
            move || async move {
                approvals::actions::decide(&state_a, &bob, &ida, Decision::Approve, "").await
            },
            move || async move { approvals::actions::cancel(&state_b, &alice, &idb).await },
        )
        .await;
        let status = status_of(&app, &id).await;
        let deployments = scalar(
            &app,
            "select count(*) from deployments where request_id = $1 and status = 'queued'",
            &id,
        )
        .await;
        // Both orders are fine; a deadlock, an internal error or a half-applied mix is not.
        match (&approve, &cancel, status) {
            (Ok(_), Ok(()), RequestStatus::Cancelled) => {
                // Approved first, then cancelled before deployment: the job was withdrawn.
                assert_eq!(deployments, 0, "iteration {i}");
                cancelled += 1;
            }
            (Ok(_), Err(AppError::Conflict(_)), RequestStatus::Approved) => {
                assert_eq!(deployments, 1, "iteration {i}");
                approved += 1;
            }
            (Err(AppError::Conflict(_)), Ok(()), RequestStatus::Cancelled) => {
                assert_eq!(deployments, 0, "iteration {i}");
                cancelled += 1;
            }
            other => panic!("iteration {i}: not a serial outcome: {other:?}"),
        }
        let terminal = audit_count(&app, &id, "request.cancelled").await
            + audit_count(&app, &id, "request.approved").await;
        assert!((1..=2).contains(&terminal), "iteration {i}");
    }
    eprintln!("approve vs cancel: {approved} approved, {cancelled} cancelled");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_approval_and_a_cancel_at_once_end_in_one_serial_outcome_on_sqlite() {
    an_approval_and_a_cancel_together(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_approval_and_a_cancel_at_once_end_in_one_serial_outcome_on_postgres() {
    an_approval_and_a_cancel_together(Backend::Postgres).await;
}

async fn two_submissions_together(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("STACKGATE_WORKER", "false")]).await;
    let p = people(&app).await;
    let base = prepared(&app, &p.alice, "numbers").await;
    let mut numbers = Vec::new();
    for i in 0..ITERATIONS {
        let (state_a, state_b) = (app.state.clone(), app.state.clone());
        let (alice_a, alice_b) = (p.alice.clone(), p.alice.clone());
        let (mut pa, mut pb) = (base.clone(), base.clone());
        pa.stack_name = format!("{}-a{i}", base.stack_name);
        pb.stack_name = format!("{}-b{i}", base.stack_name);
        pa.id = uuid::Uuid::new_v4().to_string();
        pb.id = uuid::Uuid::new_v4().to_string();
        let (a, b) = together(
            move || async move { actions::record_submission(&state_a, &alice_a, &pa).await },
            move || async move { actions::record_submission(&state_b, &alice_b, &pb).await },
        )
        .await;
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_ne!(a.1, b.1, "iteration {i}: both got number {}", a.1);
        numbers.extend([a.1, b.1]);
    }
    numbers.sort_unstable();
    let expected: Vec<i64> = (1..=(2 * ITERATIONS) as i64).collect();
    assert_eq!(
        numbers, expected,
        "numbers are 1..N without gaps or repeats"
    );
    let v = stackgate::audit::store::verify(&app.state.db)
        .await
        .unwrap();
    assert!(v.broken_at.is_none(), "{v:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_submissions_at_once_get_distinct_numbers_on_sqlite() {
    two_submissions_together(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_submissions_at_once_get_distinct_numbers_on_postgres() {
    two_submissions_together(Backend::Postgres).await;
}

/// Two networks asking for the same block at the same moment: exactly one gets it, the other is
/// refused naming the first; blocks that do not overlap are both granted.
async fn two_networks_asking_for_one_block(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("STACKGATE_WORKER", "false")]).await;
    let p = people(&app).await;
    let base = prepared(&app, &p.alice, "plan").await;
    let block = |i: usize, half: usize| {
        let cidr = format!("10.{}.{}.0/24", 100 + i / 128, (i % 128) * 2 + half);
        stackgate::catalog::cidr::Cidr::parse(&cidr).unwrap()
    };
    let (mut granted, mut refused) = (0, 0);
    for i in 0..ITERATIONS {
        let (state_a, state_b) = (app.state.clone(), app.state.clone());
        let (alice_a, alice_b) = (p.alice.clone(), p.alice.clone());
        let (mut pa, mut pb) = (base.clone(), base.clone());
        pa.id = uuid::Uuid::new_v4().to_string();
        pb.id = uuid::Uuid::new_v4().to_string();
        pa.stack_name = format!("{}-a{i}", base.stack_name);
        pb.stack_name = format!("{}-b{i}", base.stack_name);
        // Even iterations: the same block; odd ones: neighbouring blocks.
        pa.address = Some(block(i, 0));
        pb.address = Some(block(i, if i % 2 == 0 { 0 } else { 1 }));
        let (a, b) = together(
            move || async move { actions::record_submission(&state_a, &alice_a, &pa).await },
            move || async move { actions::record_submission(&state_b, &alice_b, &pb).await },
        )
        .await;
        if i % 2 == 1 {
            assert!(a.is_ok() && b.is_ok(), "iteration {i}: {a:?} {b:?}");
            continue;
        }
        match (a, b) {
            (Ok(_), Err(AppError::Invalid(e))) | (Err(AppError::Invalid(e)), Ok(_)) => {
                assert!(
                    e[0].message.contains("overlaps") && e[0].message.contains("plan"),
                    "{e:?}"
                );
                granted += 1;
                refused += 1;
            }
            other => panic!("iteration {i}: {other:?}"),
        }
    }
    assert_eq!((granted, refused), (ITERATIONS / 2, ITERATIONS / 2));
    let blocks = sqlx::query("select count(*) from address_blocks")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .try_get::<i64, _>(0)
        .unwrap();
    assert_eq!(blocks as usize, ITERATIONS / 2 + ITERATIONS);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_networks_cannot_get_one_block_on_sqlite() {
    two_networks_asking_for_one_block(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_networks_cannot_get_one_block_on_postgres() {
    two_networks_asking_for_one_block(Backend::Postgres).await;
}
