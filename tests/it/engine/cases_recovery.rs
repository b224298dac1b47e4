//! Answers lost on the way back and transient errors: a recovered job reads AWS to find out what
//! happened instead of doing it twice, and gives up after its retry budget.

use stackgate::aws::DeployError;
use stackgate::db::now_ms;
use stackgate::deployments::{DeploymentStatus, Step};
use stackgate::requests::RequestStatus;

use super::fake::{Action, Call, Op};
use super::scenario::{Scenario, calls_of};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_set_created_but_whose_answer_was_lost_is_found_again_and_not_created_twice() {
    let s = Scenario::submitted().await;
    s.fake.drop_next_response(Op::CreateChangeSet);
    let worker = s.worker();
    assert!(worker.run_once().await.unwrap());

    // The outcome is unknown to the engine: the job goes back to the queue, with backoff.
    let d = s.deployment().await;
    assert_eq!(d.status, DeploymentStatus::Queued);
    assert_eq!(d.step, Step::ChangeSetRequested);
    assert_eq!(d.attempts, 1);
    assert!(
        d.error.as_deref().unwrap_or("").contains("transient"),
        "{:?}",
        d.error
    );
    assert!(s.column("next_attempt_at").await.unwrap() > s.column("updated_at").await.unwrap());
    assert_eq!(s.request().await.status, RequestStatus::Preparing);
    assert_eq!(s.fake.world(|w| w.change_sets_of(&s.stack_name).len()), 1);

    // The retry finds the change set and puts it up for review; approved, it is executed.
    s.make_due().await;
    assert!(worker.run_once().await.unwrap());
    let d = s.deployment().await;
    assert_eq!(
        d.status,
        DeploymentStatus::AwaitingApproval,
        "{:?}",
        d.error
    );
    assert_eq!(d.epoch, 2);
    assert_eq!(s.request().await.status, RequestStatus::PendingApproval);
    s.approve().await;
    assert!(worker.run_once().await.unwrap());
    let d = s.deployment().await;
    assert_eq!(d.status, DeploymentStatus::Succeeded, "{:?}", d.error);
    assert_eq!(d.epoch, 3);

    // The retry found a stack under review without tags: before anything else it asked for this
    // deployment's change set on it by stack and name, found it, and created nothing more.
    let creates = calls_of(&s.fake.calls(), Op::CreateChangeSet);
    assert_eq!(creates.len(), 1, "{creates:?}");
    assert!(creates[0].applied);
    // It found the existing change set by stack and name (a bare name is not enough for
    // CloudFormation), and used its ARN from then on.
    let lookups: Vec<Call> = calls_of(&s.fake.calls(), Op::DescribeChangeSet)
        .into_iter()
        .filter(|c| c.stack.is_some())
        .collect();
    assert_eq!(lookups.len(), 1, "{lookups:?}");
    assert_eq!(lookups[0].change_set, creates[0].change_set);
    assert!(
        calls_of(&s.fake.calls(), Op::ExecuteChangeSet).len() == 1,
        "executed once"
    );
    let change_sets = s.fake.world(|w| w.change_sets_of(&s.stack_name));
    assert_eq!(change_sets.len(), 1, "one change set for the deployment");
    assert_eq!(
        d.change_set_arn.as_deref(),
        Some(change_sets[0].arn.as_str())
    );
    let executions = s.fake.world(|w| w.executions.clone());
    assert_eq!(executions.len(), 1);
    assert_eq!(executions[0].0, change_sets[0].arn);
    assert_eq!(s.request().await.status, RequestStatus::Deployed);
    s.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execute_whose_answer_was_lost_is_reconciled_from_aws_and_not_sent_again() {
    let s = Scenario::new().await;
    s.fake.drop_next_response(Op::ExecuteChangeSet);
    let worker = s.worker();
    assert!(worker.run_once().await.unwrap());
    let d = s.deployment().await;
    assert_eq!(d.status, DeploymentStatus::Queued);
    assert_eq!(d.step, Step::ExecuteRequested);
    assert_eq!(d.attempts, 1);
    assert!(d.change_set_arn.is_some());
    assert_eq!(
        s.fake.world(|w| w.executions.len()),
        1,
        "the execute was applied"
    );
    let before = s.fake.calls().len();

    s.make_due().await;
    assert!(worker.run_once().await.unwrap());
    let d = s.deployment().await;
    assert_eq!(d.status, DeploymentStatus::Succeeded, "{:?}", d.error);
    assert_eq!(d.epoch, 3, "prepare, execute, recovery");
    assert_eq!(s.fake.count(Op::ExecuteChangeSet), 1, "exactly one execute");
    assert_eq!(
        s.fake.count(Op::CreateChangeSet),
        0,
        "only the reviewed one"
    );

    // The recovered job read AWS first (the change set, then the stack) and sent nothing.
    let recovery: Vec<Op> = s.fake.calls()[before..].iter().map(|c| c.op).collect();
    assert_eq!(recovery[0], Op::AssumeRole);
    assert_eq!(recovery[1], Op::DescribeChangeSet, "{recovery:?}");
    assert!(recovery.contains(&Op::DescribeStack));
    assert!(recovery.iter().all(|op| !op.mutating()), "{recovery:?}");
    assert_eq!(s.request().await.status, RequestStatus::Deployed);
    assert_eq!(d.outputs.len(), 2);
    s.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executed_change_set_that_was_cleaned_up_is_recognised_by_its_token_and_not_executed_again()
 {
    let s = Scenario::new().await;
    s.fake.drop_next_response(Op::ExecuteChangeSet);
    let worker = s.worker();
    assert!(worker.run_once().await.unwrap());
    assert_eq!(s.deployment().await.step, Step::ExecuteRequested);
    // The change set is gone by the time the job is recovered.
    let stack = s.stack_name.clone();
    s.fake.world(|w| {
        for cs in w.change_sets.iter_mut().filter(|c| c.stack == stack) {
            cs.deleted = true;
        }
    });
    s.make_due().await;
    assert!(worker.run_once().await.unwrap());
    let d = s.deployment().await;
    assert_eq!(d.status, DeploymentStatus::Succeeded, "{:?}", d.error);
    assert_eq!(s.fake.count(Op::ExecuteChangeSet), 1, "not executed again");
    assert_eq!(s.request().await.status, RequestStatus::Deployed);
    s.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_error_while_waiting_for_the_change_set_resumes_with_the_same_change_set() {
    let s = Scenario::new().await;
    s.fake.fail_next(
        Op::DescribeChangeSet,
        DeployError::Transient("Throttling: Rate exceeded".into()),
    );
    let worker = s.worker();
    assert!(worker.run_once().await.unwrap());
    assert_eq!(s.deployment().await.status, DeploymentStatus::Queued);
    s.make_due().await;
    assert!(worker.run_once().await.unwrap());
    let d = s.deployment().await;
    assert_eq!(d.status, DeploymentStatus::Succeeded, "{:?}", d.error);
    let change_sets = s.fake.world(|w| w.change_sets_of(&s.stack_name));
    assert_eq!(change_sets.len(), 1);
    assert_eq!(
        d.change_set_arn.as_deref(),
        Some(change_sets[0].arn.as_str())
    );
    assert_eq!(s.fake.world(|w| w.executions.len()), 1);
    s.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_are_retried_with_growing_backoff_and_stop_at_needs_attention_after_the_budget()
 {
    // A poll interval of 5 s makes each backoff long enough to observe "not due yet"; the test
    // makes the job due in SQL instead of sleeping.
    let s = Scenario::with(&[("STACKGATE_WORKER_POLL_MS", "5000")]).await;
    let throttled = || DeployError::Transient("Throttling: Rate exceeded".into());
    s.fake
        .script(Op::AssumeRole, 0, Some(2), Action::Fail(throttled()));
    for op in [
        Op::DescribeStack,
        Op::CreateChangeSet,
        Op::DescribeChangeSet,
        Op::ExecuteChangeSet,
        Op::StackEvents,
    ] {
        s.fake.fail_always(op, throttled());
    }
    let worker = s.worker();
    let mut attempt = 0;
    loop {
        assert!(worker.run_once().await.unwrap(), "claim {}", attempt + 1);
        let d = s.deployment().await;
        if d.status != DeploymentStatus::Queued {
            break;
        }
        attempt += 1;
        assert_eq!(d.attempts, attempt);
        assert!(
            d.error.as_deref().unwrap_or("").contains("Rate exceeded"),
            "{:?}",
            d.error
        );
        let next = s.column("next_attempt_at").await.unwrap();
        let at = s.column("updated_at").await.unwrap();
        assert!(next > now_ms(), "the retry is in the future");
        let base = 5000 << (attempt - 1);
        assert!(
            (base..=base + base / 5).contains(&(next - at)),
            "exponential backoff with at most 20% jitter: {} for attempt {attempt}",
            next - at
        );
        assert!(!worker.run_once().await.unwrap(), "not due yet");
        // Unknown outcomes are not failures: the request is still approved, not yet started.
        assert_eq!(s.request().await.status, RequestStatus::Approved);
        s.make_due().await;
        assert!(attempt < 20, "the budget ends the retries");
    }
    let d = s.deployment().await;
    assert_eq!(attempt, 7, "eight attempts in all");
    assert_eq!(d.status, DeploymentStatus::NeedsAttention);
    assert!(
        d.error
            .as_deref()
            .unwrap_or("")
            .contains("Gave up after 8 attempts"),
        "{:?}",
        d.error
    );
    assert_eq!(d.epoch, 9, "the claim that prepared it, then eight");
    assert_eq!(s.fake.count(Op::AssumeRole), 8);
    // From the third claim on, the role is assumed and the approved change set is read
    // (before anything else) and throttled.
    assert_eq!(s.fake.count(Op::DescribeChangeSet), 6);
    assert_eq!(
        s.fake.calls().iter().filter(|c| c.op.mutating()).count(),
        0,
        "nothing mutating was attempted"
    );
    assert_eq!(s.request().await.status, RequestStatus::NeedsAttention);
    assert!(
        s.audit_actions()
            .await
            .contains(&"deploy.needs_attention".into())
    );
    s.check_invariants().await;
}
