//! Workers that die inside a call, lose their lease to another worker, are asked to stop, or
//! wait on a call slower than the lease: the job is finished once, by its current owner.

use std::sync::Arc;

use stackgate::db::now_ms;
use stackgate::deployments::{DeploymentStatus, Step};
use stackgate::requests::RequestStatus;
use tokio::sync::Notify;

use super::fake::{Action, Call, Op};
use super::scenario::Scenario;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_died_after_executing_is_replaced_by_one_with_a_new_epoch_that_does_not_execute_again()
 {
    let s = Scenario::new().await;
    let reached = s.fake.hang_next(Op::ExecuteChangeSet, true);
    let first = s.worker();
    tokio::select! {
        r = first.run_once() => panic!("the worker should hang in ExecuteChangeSet: {r:?}"),
        _ = reached.notified() => {}
    }
    drop(first); // the process dies inside the call

    let d = s.deployment().await;
    assert_eq!(d.status, DeploymentStatus::Running);
    assert_eq!(d.step, Step::ExecuteRequested);
    assert_eq!(d.epoch, 2, "claimed once to prepare, once to execute");
    assert_eq!(s.fake.world(|w| w.executions.len()), 1);

    // While the dead worker's lease runs, nobody takes the job.
    let second = s.worker();
    assert!(
        !second.run_once().await.unwrap(),
        "a live lease is respected"
    );
    s.expire_lease().await;
    let before = s.fake.calls().len();
    assert!(second.run_once().await.unwrap());

    let d = s.deployment().await;
    assert_eq!(d.status, DeploymentStatus::Succeeded, "{:?}", d.error);
    assert_eq!(d.epoch, 3, "the new owner works under epoch + 1");
    assert_eq!(d.attempts, 0);
    assert_eq!(s.fake.count(Op::ExecuteChangeSet), 1, "no second execute");
    let recovery: Vec<Op> = s.fake.calls()[before..].iter().map(|c| c.op).collect();
    assert_eq!(recovery[..2], [Op::AssumeRole, Op::DescribeChangeSet]);
    assert!(recovery.iter().all(|op| !op.mutating()), "{recovery:?}");
    assert_eq!(s.request().await.status, RequestStatus::Deployed);
    let audit = s.audit().await;
    let finished = audit
        .iter()
        .find(|r| r.action == "deploy.succeeded")
        .unwrap();
    assert_eq!(
        finished.correlation_id.as_deref(),
        Some(format!("dep-{}-finish-3", d.id).as_str())
    );
    s.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_died_before_its_execute_reached_aws_is_replaced_by_one_that_executes_once() {
    let s = Scenario::new().await;
    let reached = s.fake.hang_next(Op::ExecuteChangeSet, false);
    let first = s.worker();
    tokio::select! {
        r = first.run_once() => panic!("the worker should hang in ExecuteChangeSet: {r:?}"),
        _ = reached.notified() => {}
    }
    drop(first);
    assert_eq!(
        s.fake.world(|w| w.executions.len()),
        0,
        "no trace of the call"
    );
    assert_eq!(s.deployment().await.step, Step::ExecuteRequested);

    s.expire_lease().await;
    assert!(s.worker().run_once().await.unwrap());
    let d = s.deployment().await;
    assert_eq!(d.status, DeploymentStatus::Succeeded, "{:?}", d.error);
    let executions = s.fake.world(|w| w.executions.clone());
    assert_eq!(executions.len(), 1, "executed once, by the new owner");
    assert_eq!(executions[0].1, format!("dep-{}-execute-3", d.id));
    assert_eq!(executions[0].0, d.change_set_arn.clone().unwrap());
    assert_eq!(
        s.fake.count(Op::CreateChangeSet),
        0,
        "only the reviewed one"
    );
    s.check_invariants().await;
}

/// Runs a worker until the fake pauses it before `op` (after `skip` such calls), lets
/// "another worker" take the job (epoch + 1), and resumes it. Returns the calls made after the
/// resume.
async fn lose_lease_at(s: &Scenario, op: Op, skip: usize) -> Vec<Call> {
    let (reached, release) = s.fake.pause_before(op, skip);
    let worker = s.worker();
    let task = tokio::spawn(async move { worker.run_once().await });
    reached.notified().await;
    let epoch = s.deployment().await.epoch;
    sqlx::query(
        "update deployments set epoch = epoch + 1, lease_owner = 'worker-other', \
         lease_expires_at = $1 where id = $2",
    )
    .bind(now_ms() + 60_000)
    .bind(s.deployment_id.clone())
    .execute(s.db().pool())
    .await
    .unwrap();
    let at_pause = s.fake.calls().len();
    let audit_before = s.audit().await.len();
    release.notify_one();
    assert!(task.await.unwrap().unwrap(), "run_once ends without error");

    let d = s.deployment().await;
    assert_eq!(d.epoch, epoch + 1, "the other worker's epoch stands");
    assert_eq!(
        d.status,
        DeploymentStatus::Running,
        "the first worker ended nothing"
    );
    let owner: String = {
        use sqlx::Row;
        sqlx::query("select lease_owner from deployments where id = $1")
            .bind(s.deployment_id.clone())
            .fetch_one(s.db().pool())
            .await
            .unwrap()
            .try_get(0)
            .unwrap()
    };
    assert_eq!(owner, "worker-other");
    assert_eq!(
        s.audit().await.len(),
        audit_before,
        "no audit record from the stale worker"
    );
    // The paused call itself ran (it was already under way); nothing after it may mutate.
    s.fake.calls()[at_pause..].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_lost_its_lease_before_creating_the_change_set_creates_nothing() {
    let s = Scenario::submitted().await;
    // The first CloudFormation call of a fresh job is DescribeStacks (before CreateChangeSet).
    let after = lose_lease_at(&s, Op::DescribeStack, 0).await;
    let ops: Vec<Op> = after.iter().map(|c| c.op).collect();
    assert!(
        ops.iter().all(|op| !op.mutating()),
        "no mutating call after the lease was lost: {ops:?}"
    );
    assert_eq!(s.fake.count(Op::CreateChangeSet), 0);
    assert_eq!(s.deployment().await.step, Step::ChangeSetRequested);
    s.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_lost_its_lease_before_executing_does_not_execute() {
    let s = Scenario::new().await;
    s.fake.world(|w| w.change_set_ready_after = 0);
    // DescribeChangeSet #1 sees it complete; #2 is the check right before ExecuteChangeSet.
    let after = lose_lease_at(&s, Op::DescribeChangeSet, 1).await;
    let ops: Vec<Op> = after.iter().map(|c| c.op).collect();
    assert!(
        ops.iter().all(|op| !op.mutating()),
        "no mutating call after the lease was lost: {ops:?}"
    );
    assert_eq!(s.fake.count(Op::ExecuteChangeSet), 0);
    assert_eq!(s.fake.world(|w| w.executions.len()), 0);
    assert_eq!(s.deployment().await.step, Step::ExecuteRequested);
    s.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_lost_its_lease_while_waiting_for_the_change_set_writes_nothing_more() {
    let s = Scenario::submitted().await;
    // DescribeChangeSet #1 answers CREATE_IN_PROGRESS; the lease is lost while it runs.
    let after = lose_lease_at(&s, Op::DescribeChangeSet, 0).await;
    assert!(
        after.iter().all(|c| !c.op.mutating()),
        "no mutating call after the lease was lost: {after:?}"
    );
    let d = s.deployment().await;
    assert_eq!(d.attempts, 0, "the stale worker did not requeue the job");
    assert_eq!(d.step, Step::ChangeSetRequested);
    assert_eq!(s.fake.count(Op::ExecuteChangeSet), 0);
    s.check_invariants().await;
}

/// Where a worker can die: in which phase (preparing the change set for review, or executing
/// the approved one), inside which call (after `skip` earlier calls of it in that phase), and
/// whether the call reached AWS before the process died.
const KILL_POINTS: [(bool, Op, usize, bool, &str); 9] = [
    (true, Op::AssumeRole, 0, false, "before AssumeRole"),
    (true, Op::DescribeStack, 0, false, "before CreateChangeSet"),
    (
        true,
        Op::CreateChangeSet,
        0,
        false,
        "in CreateChangeSet, before it reached AWS",
    ),
    (
        true,
        Op::CreateChangeSet,
        0,
        true,
        "after CreateChangeSet, before the DB commit",
    ),
    (
        true,
        Op::DescribeChangeSet,
        0,
        true,
        "while waiting for the change set",
    ),
    (
        false,
        Op::ExecuteChangeSet,
        0,
        false,
        "in ExecuteChangeSet, before it reached AWS",
    ),
    (
        false,
        Op::ExecuteChangeSet,
        0,
        true,
        "after ExecuteChangeSet",
    ),
    (false, Op::DescribeStack, 1, true, "while polling"),
    (
        false,
        Op::StackEvents,
        1,
        true,
        "after the terminal status was seen",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_at_any_step_is_finished_by_the_next_with_one_change_set_and_one_execute() {
    for (preparing, op, skip, applied, label) in KILL_POINTS {
        let s = Scenario::submitted().await;
        if !preparing {
            s.prepare_and_approve().await;
        }
        let reached = Arc::new(Notify::new());
        s.fake.script(
            op,
            skip,
            Some(1),
            Action::Hang {
                apply: applied,
                reached: reached.clone(),
            },
        );
        let first = s.worker();
        tokio::select! {
            r = first.run_once() => panic!("{label}: the worker should hang: {r:?}"),
            _ = reached.notified() => {}
        }
        drop(first);
        assert_eq!(
            s.deployment().await.status,
            DeploymentStatus::Running,
            "{label}"
        );
        s.expire_lease().await;
        let second = s.worker();
        assert!(second.run_once().await.unwrap(), "{label}");
        if preparing {
            let d = s.deployment().await;
            assert_eq!(
                d.status,
                DeploymentStatus::AwaitingApproval,
                "{label}: {:?}",
                d.error
            );
            s.approve().await;
            assert!(second.run_once().await.unwrap(), "{label}");
        }

        let d = s.deployment().await;
        assert_eq!(
            d.status,
            DeploymentStatus::Succeeded,
            "{label}: {:?}",
            d.error
        );
        assert_eq!(d.epoch, 3, "{label}: two claims to prepare or to execute");
        assert_eq!(d.outputs.len(), 2, "{label}");
        let change_sets = s.fake.world(|w| w.change_sets_of(&s.stack_name));
        assert_eq!(change_sets.len(), 1, "{label}: one change set");
        assert_eq!(
            s.fake.world(|w| w.executions.len()),
            1,
            "{label}: one execute"
        );
        assert_eq!(s.request().await.status, RequestStatus::Deployed, "{label}");
        let actions = s.audit_actions().await;
        let n = |a: &str| actions.iter().filter(|x| *x == a).count();
        assert_eq!(n("change_set.requested"), 1, "{label}: {actions:?}");
        assert_eq!(n("request.review_ready"), 1, "{label}: {actions:?}");
        assert_eq!(n("deploy.started"), 1, "{label}: {actions:?}");
        assert_eq!(n("deploy.succeeded"), 1, "{label}: {actions:?}");
        s.check_invariants().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_asked_to_stop_while_polling_hands_the_job_back_and_the_next_worker_finishes_it() {
    let s = Scenario::new().await;
    // Stop the worker at its first look at the stack after executing (the create-time check is
    // the first DescribeStacks).
    let (reached, release) = s.fake.pause_before(Op::DescribeStack, 1);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(s.worker().run(stop_rx));
    reached.notified().await;
    stop_tx.send(true).unwrap();
    release.notify_one();
    tokio::time::timeout(std::time::Duration::from_secs(5), running)
        .await
        .expect("the worker stops promptly")
        .unwrap();

    let d = s.deployment().await;
    assert_eq!(
        d.status,
        DeploymentStatus::Queued,
        "handed back to the queue"
    );
    assert_eq!(d.step, Step::ExecuteRequested, "at its last durable step");
    assert_eq!(d.attempts, 0, "a stop is not a failed attempt");
    assert_eq!(s.fake.count(Op::ExecuteChangeSet), 1);

    assert!(s.worker().run_once().await.unwrap());
    let d = s.deployment().await;
    assert_eq!(d.status, DeploymentStatus::Succeeded, "{:?}", d.error);
    assert_eq!(
        s.fake.count(Op::ExecuteChangeSet),
        1,
        "the next worker did not execute again"
    );
    assert_eq!(s.request().await.status, RequestStatus::Deployed);
    s.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aws_call_slower_than_the_lease_keeps_the_job_with_its_worker() {
    // A one-second lease; CloudFormation takes three seconds to answer DescribeChangeSet.
    let s = Scenario::with(&[("STACKGATE_LEASE_SECONDS", "1")]).await;
    let (reached, release) = s.fake.pause_before(Op::DescribeChangeSet, 0);
    let first = s.worker();
    let running = tokio::spawn(async move { first.run_once().await });
    reached.notified().await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    // Another worker finds nothing to take: the first one kept its lease alive while it waited.
    assert!(
        !s.worker().run_once().await.unwrap(),
        "the job was taken over"
    );
    assert!(s.column("lease_expires_at").await.unwrap() > now_ms());
    release.notify_one();
    assert!(running.await.unwrap().unwrap());
    let d = s.deployment().await;
    assert_eq!(d.status, DeploymentStatus::Succeeded, "{:?}", d.error);
    assert_eq!(
        d.epoch, 2,
        "one claim to execute (after the one that prepared)"
    );
    assert_eq!(s.fake.count(Op::ExecuteChangeSet), 1);
    s.check_invariants().await;
}
