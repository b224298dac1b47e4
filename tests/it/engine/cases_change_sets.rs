//! Change sets someone else changed or removed between creation and execution: nothing is
//! executed, and the request is not reported deployed.

use stackgate::aws::ChangeSetKind;
use stackgate::deployments::DeploymentStatus;
use stackgate::requests::RequestStatus;

use super::fake::Op;
use super::scenario::{Scenario, calls_of};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_change_set_that_became_obsolete_is_not_executed_and_needs_attention() {
    let s = Scenario::new().await;
    let stack = s.stack_name.clone();
    s.fake.world(|w| {
        w.seed_stack(&stack, "UPDATE_COMPLETE", "payments");
        w.change_set_ready_after = 0;
    });
    // After the change set is ready and before the engine executes it, someone else updates
    // the stack.
    let target = stack.clone();
    s.fake
        .before(Op::DescribeChangeSet, 1, move |w| w.foreign_update(&target));
    assert!(s.worker().run_once().await.unwrap());
    assert!(!s.worker().run_once().await.unwrap(), "no retry");

    let d = s.deployment().await;
    assert_eq!(d.status, DeploymentStatus::NeedsAttention);
    let error = d.error.clone().unwrap_or_default();
    assert!(error.contains("obsolete"), "{error}");
    assert_eq!(s.fake.count(Op::ExecuteChangeSet), 0, "no execute");
    assert_eq!(s.fake.count(Op::CreateChangeSet), 1, "no new change set");
    let create = &calls_of(&s.fake.calls(), Op::CreateChangeSet)[0];
    assert_eq!(create.kind, Some(ChangeSetKind::Update));
    let request = s.request().await;
    assert_eq!(request.status, RequestStatus::NeedsAttention);
    assert!(
        request
            .status_reason
            .as_deref()
            .unwrap_or("")
            .contains("obsolete"),
        "{:?}",
        request.status_reason
    );
    assert!(
        s.audit_actions()
            .await
            .contains(&"deploy.needs_attention".into())
    );
    s.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_whose_change_set_was_removed_before_execution_is_not_reported_deployed() {
    let s = Scenario::new().await;
    let stack = s.stack_name.clone();
    s.fake.world(|w| {
        w.seed_stack(&stack, "UPDATE_COMPLETE", "payments");
        w.change_set_ready_after = 0;
    });
    let target = stack.clone();
    // Someone deletes the change set after the engine saved its ARN, before it executes it.
    s.fake.before(Op::DescribeChangeSet, 1, move |w| {
        for cs in w.change_sets.iter_mut().filter(|c| c.stack == target) {
            cs.deleted = true;
        }
    });
    let worker = s.worker();
    let run = tokio::time::timeout(std::time::Duration::from_secs(10), worker.run_once());
    assert!(run.await.expect("the worker ends").unwrap());
    assert_eq!(
        s.fake.world(|w| w.executions.len()),
        0,
        "nothing was executed"
    );
    let d = s.deployment().await;
    assert_ne!(
        d.status,
        DeploymentStatus::Succeeded,
        "a deployment that executed nothing is not deployed"
    );
    assert_eq!(d.status, DeploymentStatus::NeedsAttention, "{:?}", d.error);
    assert_ne!(s.request().await.status, RequestStatus::Deployed);
    s.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_whose_change_set_was_removed_before_execution_ends_instead_of_polling_forever() {
    let s = Scenario::new().await;
    s.fake.world(|w| w.change_set_ready_after = 0);
    let target = s.stack_name.clone();
    s.fake.before(Op::DescribeChangeSet, 1, move |w| {
        for cs in w.change_sets.iter_mut().filter(|c| c.stack == target) {
            cs.deleted = true;
        }
    });
    // The stack stays REVIEW_IN_PROGRESS for ever: nothing will move it.
    let worker = s.worker();
    let run = tokio::time::timeout(std::time::Duration::from_secs(10), worker.run_once());
    assert!(
        run.await
            .expect("the worker ends the job instead of polling a stack in review for ever")
            .unwrap()
    );
    assert_eq!(s.fake.world(|w| w.executions.len()), 0);
    let d = s.deployment().await;
    assert_eq!(d.status, DeploymentStatus::NeedsAttention, "{:?}", d.error);
    s.check_invariants().await;
}
