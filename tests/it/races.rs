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
    // The IdP groups the roles come from: approvals are counted from the stored groups.
    let mut groups: Vec<String> = roles
        .approver_teams
        .iter()
        .map(|t| format!("{t}-approvers"))
        .collect();
    if roles.global_approver {
        groups.push("security-approvers".into());
    }
    let mut tx = app.state.db.begin().await.unwrap();
    let id = stackgate::auth::store::upsert_user(
        &mut tx,
        "https://idp.test",
        &format!("sub-{login}"),
        None,
        Some(login),
        &groups,
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
        // Signed in just now: prod decisions need a recent sign-in (step-up, B9).
        auth_time: Some(stackgate::db::now_ms()),
        amr: Vec::new(),
        acr: None,
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
        blueprint_version: None,
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

/// Records a new request for a distinct stack (so deployments never collide) and puts it where
/// the worker leaves it once its change set is ready: waiting for review with a change-set ARN.
/// (These races are between people; the worker's side runs against the emulator elsewhere.)
/// Returns its id and the ARN.
async fn pending(
    app: &TestApp,
    alice: &CurrentUser,
    base: &input::Prepared,
    i: usize,
) -> (String, String) {
    let mut p = base.clone();
    p.id = uuid::Uuid::new_v4().to_string();
    p.stack_name = format!("{}-{i}", base.stack_name);
    let id = actions::record_submission(&app.state, alice, &p)
        .await
        .unwrap()
        .0;
    let arn = format!(
        "arn:aws:cloudformation:eu-west-2:200000000003:changeSet/stackgate-{}/{}",
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4()
    );
    let db = app.state.db.pool();
    let parked = sqlx::query(
        "update deployments set status = 'awaiting_approval', step = 'change_set_ready', \
         change_set_arn = $1, change_set_ready_at = 1 where request_id = $2 and status = 'queued'",
    )
    .bind(arn.clone())
    .bind(id.clone())
    .execute(db)
    .await
    .unwrap();
    assert_eq!(parked.rows_affected(), 1);
    sqlx::query(
        "update service_requests set status = 'pending_approval', version = version + 1 \
         where id = $1 and status = 'preparing'",
    )
    .bind(id.clone())
    .execute(db)
    .await
    .unwrap();
    (id, arn)
}

/// `user` decides on the change set `arn` of request `id`.
async fn decide(
    state: &stackgate::AppState,
    user: &CurrentUser,
    id: &str,
    decision: Decision,
    arn: &str,
) -> Result<approvals::DecisionOutcome, AppError> {
    let comment = if decision == Decision::Reject {
        "no"
    } else {
        ""
    };
    approvals::actions::decide(
        state,
        user,
        id,
        approvals::actions::DecisionInput {
            decision,
            comment,
            change_set_arn: Some(arn),
        },
    )
    .await
}

/// Deployments of the request queued to execute (not the discard of a withdrawn change set).
async fn queued_to_execute(app: &TestApp, id: &str) -> i64 {
    scalar(
        app,
        "select count(*) from deployments where request_id = $1 and status = 'queued' \
         and step = 'change_set_ready'",
        id,
    )
    .await
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
        let (id, arn) = pending(&app, &p.alice, &base, i).await;
        let (state_a, state_b) = (app.state.clone(), app.state.clone());
        let (bob, carol) = (p.bob.clone(), p.carol.clone());
        let (ida, idb) = (id.clone(), id.clone());
        let (arn_a, arn_b) = (arn.clone(), arn.clone());
        let (a, b) = together(
            move || async move { decide(&state_a, &bob, &ida, Decision::Approve, &arn_a).await },
            move || async move { decide(&state_b, &carol, &idb, Decision::Approve, &arn_b).await },
        )
        .await;
        assert!(a.is_ok() && b.is_ok(), "iteration {i}: {a:?} {b:?}");
        assert_eq!(
            status_of(&app, &id).await,
            RequestStatus::Approved,
            "iteration {i}"
        );
        assert_eq!(deployments_of(&app, &id).await, 1, "iteration {i}");
        assert_eq!(queued_to_execute(&app, &id).await, 1, "iteration {i}");
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
        let (id, arn) = pending(&app, &p.alice, &base, i).await;
        // One approval is in; bob's completes the quorum unless alice's cancel comes first.
        decide(&app.state, &p.carol, &id, Decision::Approve, &arn)
            .await
            .unwrap();
        let (state_a, state_b) = (app.state.clone(), app.state.clone());
        let (bob, alice) = (p.bob.clone(), p.alice.clone());
        let (ida, idb) = (id.clone(), id.clone());
        let (approve, cancel) = together(
            move || async move { decide(&state_a, &bob, &ida, Decision::Approve, &arn).await },
            move || async move { approvals::actions::cancel(&state_b, &alice, &idb).await },
        )
        .await;
        let status = status_of(&app, &id).await;
        let deployments = queued_to_execute(&app, &id).await;
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

/// What one of the fifty did.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Act {
    Approve,
    Reject,
    Cancel,
}

/// Fifty people act on one prod request at the same moment (bar C5): approvers approve or
/// reject, the requester cancels. Whatever the interleaving, the result must be one a serial
/// order of the same calls gives: every call succeeds or is refused as a conflict, the audit
/// trail replayed through the rules ends in the stored status, at most one deployment is queued
/// (exactly one when approved), and each success is in the trail once.
async fn fifty_at_once(backend: Backend, iterations: usize) {
    let app = TestApp::spawn_with(backend, &[("STACKGATE_WORKER", "false")]).await;
    let p = people(&app).await;
    let mut approvers = Vec::new();
    for k in 0..49 {
        let roles = Roles {
            approver_teams: vec!["payments".into()],
            ..Roles::default()
        };
        approvers.push(user(&app, &format!("approver{k}"), roles).await);
    }
    let base = prepared(&app, &p.alice, "fifty").await;
    let mut finals = std::collections::BTreeMap::<String, usize>::new();
    for i in 0..iterations {
        let (id, arn) = pending(&app, &p.alice, &base, i).await;
        let barrier = Arc::new(Barrier::new(50));
        let mut tasks = Vec::new();
        for k in 0..50usize {
            // Per iteration a different mix: the cancel and the rejects move around.
            let act = match (k + i) % 10 {
                0 if k == i % 50 => Act::Cancel,
                3 => Act::Reject,
                _ => Act::Approve,
            };
            let act = if k == 49 { Act::Cancel } else { act };
            // 49 approvers; the fiftieth call is always alice's cancel.
            let who = match approvers.get(k) {
                Some(a) if act != Act::Cancel => a.clone(),
                _ => p.alice.clone(),
            };
            let (state, id, arn, barrier) =
                (app.state.clone(), id.clone(), arn.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let r = match act {
                    Act::Approve => decide(&state, &who, &id, Decision::Approve, &arn)
                        .await
                        .map(|_| ()),
                    Act::Reject => decide(&state, &who, &id, Decision::Reject, &arn)
                        .await
                        .map(|_| ()),
                    Act::Cancel => approvals::actions::cancel(&state, &who, &id).await,
                };
                (act, r)
            }));
        }
        let mut ok = std::collections::BTreeMap::<&str, usize>::new();
        for t in tasks {
            let (act, r) = t.await.unwrap();
            match r {
                Ok(()) => {
                    *ok.entry(match act {
                        Act::Approve => "approve",
                        Act::Reject => "reject",
                        Act::Cancel => "cancel",
                    })
                    .or_default() += 1
                }
                Err(AppError::Conflict(_)) => {}
                Err(e) => panic!("iteration {i}: {act:?} failed other than by a conflict: {e:?}"),
            }
        }
        // Replay the trail through the rules: two distinct approvals approve a prod request.
        let trail = stackgate::audit::store::for_object(&app.state.db, "request", &id)
            .await
            .unwrap();
        let mut state = RequestStatus::PendingApproval;
        let mut approvals_seen = 0;
        let mut count = std::collections::BTreeMap::<String, usize>::new();
        for rec in trail.iter().filter(|r| r.seq > 0) {
            *count.entry(rec.action.clone()).or_default() += 1;
            match rec.action.as_str() {
                "approval.approved" => {
                    assert_eq!(
                        state,
                        RequestStatus::PendingApproval,
                        "iteration {i}: an approval after {state:?}"
                    );
                    approvals_seen += 1;
                }
                "approval.rejected" => {
                    assert_eq!(state, RequestStatus::PendingApproval, "iteration {i}")
                }
                "request.approved" => {
                    assert_eq!(
                        (state, approvals_seen),
                        (RequestStatus::PendingApproval, 2),
                        "iteration {i}"
                    );
                    state = RequestStatus::Approved;
                }
                "request.rejected" => {
                    assert_eq!(state, RequestStatus::PendingApproval, "iteration {i}");
                    state = RequestStatus::Rejected;
                }
                "request.cancelled" => {
                    assert!(
                        matches!(
                            state,
                            RequestStatus::PendingApproval | RequestStatus::Approved
                        ),
                        "iteration {i}: cancelled after {state:?}"
                    );
                    state = RequestStatus::Cancelled;
                }
                _ => {}
            }
        }
        let stored = status_of(&app, &id).await;
        assert_eq!(
            stored, state,
            "iteration {i}: the stored status is the trail's"
        );
        assert_eq!(
            count.get("approval.approved").copied().unwrap_or(0),
            ok.get("approve").copied().unwrap_or(0),
            "iteration {i}"
        );
        assert_eq!(
            count.get("approval.rejected").copied().unwrap_or(0),
            ok.get("reject").copied().unwrap_or(0),
            "iteration {i}"
        );
        assert_eq!(
            count.get("request.cancelled").copied().unwrap_or(0),
            ok.get("cancel").copied().unwrap_or(0),
            "iteration {i}"
        );
        assert!(
            ok.get("cancel").copied().unwrap_or(0) <= 1
                && ok.get("reject").copied().unwrap_or(0) <= 1,
            "iteration {i}: {ok:?}"
        );
        let queued = queued_to_execute(&app, &id).await;
        assert_eq!(
            queued,
            i64::from(stored == RequestStatus::Approved),
            "iteration {i}: {stored:?}"
        );
        let approvals_rows = scalar(
            &app,
            "select count(*) from approvals where request_id = $1",
            &id,
        )
        .await;
        assert_eq!(
            approvals_rows as usize,
            ok.get("approve").copied().unwrap_or(0) + ok.get("reject").copied().unwrap_or(0),
            "iteration {i}"
        );
        *finals.entry(format!("{stored:?}")).or_default() += 1;
    }
    eprintln!("fifty at once, {iterations} iterations: {finals:?}");
    let v = stackgate::audit::store::verify(&app.state.db)
        .await
        .unwrap();
    assert!(v.broken_at.is_none(), "{v:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_approve_reject_and_cancel_calls_at_once_end_in_a_serial_outcome_on_sqlite() {
    fifty_at_once(Backend::Sqlite, ITERATIONS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_approve_reject_and_cancel_calls_at_once_end_in_a_serial_outcome_on_postgres() {
    fifty_at_once(Backend::Postgres, ITERATIONS).await;
}
