//! Change sets someone else changed or removed between creation and execution: nothing is
//! executed, and the request is not reported deployed.

use stackgate::approvals;
use stackgate::aws::ChangeSetKind;
use stackgate::deployments::{self, DeploymentStatus};
use stackgate::requests::RequestStatus;

use super::fake::Op;
use super::scenario::{Scenario, calls_of};

/// Runs the approved job once more with the stack moved (`how`), then checks that nothing was
/// executed, the approvals are void and a fresh change set waits for review (F7, C3).
async fn returns_to_review(how: &str, s: &Scenario) {
    let old_arn = s.deployment().await.change_set_arn.expect("approved ARN");
    assert!(s.worker().run_once().await.unwrap(), "{how}");
    assert_eq!(s.fake.count(Op::ExecuteChangeSet), 0, "{how}: no execute");
    let d = s.deployment().await;
    assert_eq!(
        d.status,
        DeploymentStatus::Cancelled,
        "{how}: {:?}",
        d.error
    );
    assert!(
        d.error.as_deref().unwrap_or("").starts_with("Superseded"),
        "{how}: {:?}",
        d.error
    );
    // The request is back in preparation; the next run makes a fresh change set.
    assert_eq!(s.request().await.status, RequestStatus::Preparing, "{how}");
    assert!(
        s.worker().run_once().await.unwrap(),
        "{how}: prepares again"
    );
    let request = s.request().await;
    assert_eq!(request.status, RequestStatus::PendingApproval, "{how}");
    let all = deployments::store::for_request(s.db(), &s.request_id)
        .await
        .unwrap();
    assert_eq!(all.len(), 2, "{how}: one fresh deployment");
    let fresh = &all[0];
    assert_ne!(fresh.id, d.id);
    assert_eq!(fresh.status, DeploymentStatus::AwaitingApproval, "{how}");
    let new_arn = fresh.change_set_arn.clone().expect("a fresh change set");
    assert_ne!(new_arn, old_arn, "{how}");
    // bob's approval was for the old change set: it does not count for the new one.
    let shown = approvals::store::approvers(
        s.db().pool(),
        &s.request_id,
        &approvals::approval_hash(&request.content_hash, &new_arn),
    )
    .await
    .unwrap();
    assert!(shown.is_empty(), "{how}: earlier approvals are void");
    let actions = s.audit_actions().await;
    assert!(
        actions.contains(&"change_set.superseded".into()),
        "{how}: {actions:?}"
    );
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "request.review_ready")
            .count(),
        2,
        "{how}: {actions:?}"
    );
    s.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_change_set_made_obsolete_by_a_change_outside_the_portal_returns_to_review() {
    let s = Scenario::submitted().await;
    let stack = s.stack_name.clone();
    s.fake.world(|w| {
        w.seed_stack(&stack, "UPDATE_COMPLETE", "payments");
        w.change_set_ready_after = 0;
    });
    s.prepare_and_approve().await;
    let create = &calls_of(&s.fake.calls(), Op::CreateChangeSet);
    assert!(create.is_empty());
    // Between approval and execution someone updates the stack outside the portal.
    s.fake.world(|w| w.foreign_update(&stack));
    returns_to_review("obsolete", &s).await;
    let kinds: Vec<_> = calls_of(&s.fake.calls(), Op::CreateChangeSet)
        .iter()
        .map(|c| c.kind)
        .collect();
    assert_eq!(kinds, vec![Some(ChangeSetKind::Update)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_change_set_removed_before_execution_returns_to_review_and_is_not_reported_deployed()
 {
    let s = Scenario::submitted().await;
    let stack = s.stack_name.clone();
    s.fake.world(|w| {
        w.seed_stack(&stack, "UPDATE_COMPLETE", "payments");
        w.change_set_ready_after = 0;
    });
    s.prepare_and_approve().await;
    s.fake.world(|w| {
        for cs in w.change_sets.iter_mut().filter(|c| c.stack == stack) {
            cs.deleted = true;
        }
    });
    returns_to_review("removed", &s).await;
    assert_ne!(s.request().await.status, RequestStatus::Deployed);
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
