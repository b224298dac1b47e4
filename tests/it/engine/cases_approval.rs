//! Only what was approved, as it was approved, is deployed: a cancelled request, and content,
//! roles or approvals changed in the database behind the portal's back, make no AWS call.

use stackgate::approvals;
use stackgate::deployments::DeploymentStatus;
use stackgate::requests::RequestStatus;

use super::fake::Op;
use super::scenario::Scenario;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_cancelled_before_its_change_set_is_made_makes_no_aws_call() {
    let s = Scenario::submitted().await;
    approvals::actions::cancel(&s.state, &s.alice, &s.request_id)
        .await
        .expect("alice cancels");
    assert!(!s.worker().run_once().await.unwrap(), "nothing to claim");
    assert!(s.fake.calls().is_empty(), "zero AWS calls");
    assert_eq!(s.deployment().await.status, DeploymentStatus::Cancelled);
    assert_eq!(s.request().await.status, RequestStatus::Cancelled);
    s.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_cancelled_in_review_or_after_approval_executes_nothing_and_leaves_nothing_behind()
 {
    for approved in [false, true] {
        let s = Scenario::submitted().await;
        s.prepare().await;
        if approved {
            s.approve().await;
        }
        let arn = s.deployment().await.change_set_arn.expect("a change set");
        approvals::actions::cancel(&s.state, &s.alice, &s.request_id)
            .await
            .expect("alice cancels");
        assert_eq!(s.request().await.status, RequestStatus::Cancelled);
        assert!(
            s.worker().run_once().await.unwrap(),
            "approved={approved}: the worker cleans up"
        );
        assert!(!s.worker().run_once().await.unwrap(), "once");
        assert_eq!(s.fake.count(Op::ExecuteChangeSet), 0, "approved={approved}");
        s.fake.world(|w| {
            let cs = w.change_sets.iter().find(|c| c.arn == arn).expect("made");
            assert!(cs.deleted, "approved={approved}: the change set is deleted");
            assert!(
                !w.stacks.contains_key(&s.stack_name),
                "approved={approved}: the empty stack under review is deleted"
            );
        });
        let d = s.deployment().await;
        assert_eq!(d.status, DeploymentStatus::Cancelled, "{:?}", d.error);
        assert_eq!(s.request().await.status, RequestStatus::Cancelled);
        assert!(
            s.audit_actions()
                .await
                .contains(&"change_set.deleted".into()),
            "{:?}",
            s.audit_actions().await
        );
        s.check_invariants().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_no_longer_approved_as_queued_is_not_deployed_when_the_job_is_claimed() {
    // A request cancelled behind the queue is not deployed; its change set is removed.
    let s = Scenario::new().await;
    s.exec_request("update service_requests set status = 'cancelled' where id = $1")
        .await;
    assert!(s.worker().run_once().await.unwrap());
    assert_eq!(s.fake.count(Op::ExecuteChangeSet), 0, "nothing executed");
    assert_eq!(s.fake.count(Op::CreateChangeSet), 0, "nothing created");
    let d = s.deployment().await;
    assert_eq!(d.status, DeploymentStatus::Cancelled);
    assert!(
        d.error
            .clone()
            .unwrap_or_default()
            .contains("nothing was deployed"),
        "{:?}",
        d.error
    );
    assert_eq!(s.request().await.status, RequestStatus::Cancelled);
    assert!(
        s.audit_actions()
            .await
            .contains(&"change_set.deleted".into())
    );
    s.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_edited_in_the_database_after_approval_is_refused_without_any_aws_call() {
    // Each case edits what was approved, behind the portal's back; the worker re-derives the
    // digest, the binding and the approvals from what is stored and refuses to act.
    let cases = [
        (
            "the template body",
            "update rendered_templates set body = body || ' ' where digest = \
             (select template_digest from service_requests where id = $1)",
            "no longer matches the digest",
        ),
        (
            "the request's content hash",
            "update service_requests set content_hash = '0000' where id = $1",
            "changed after approval",
        ),
        (
            "the request's parameters",
            "update service_requests set params_json = '{\"vpc_cidr\":\"10.0.0.0/16\"}' where id = $1",
            "changed after approval",
        ),
        (
            "the deployment's stack",
            "update deployments set stack_name = 'stackgate-lending--x-dev' where request_id = $1",
            "not the approved",
        ),
        (
            "the deployment's account",
            "update deployments set account_id = '200000000002' where request_id = $1",
            "not the approved",
        ),
        (
            "the account's deploy role",
            "update accounts set deploy_role_arn = 'arn:aws:iam::200000000001:role/other' \
             where id = (select account_id from service_requests where id = $1)",
            "roles changed",
        ),
        (
            "an approval withdrawn",
            "delete from approvals where request_id = $1",
            "0 of the 1 valid approvals",
        ),
        (
            "the approver disabled",
            "update users set disabled = 1 where id in \
             (select approver_id from approvals where request_id = $1)",
            "has been disabled",
        ),
        (
            "the approver's groups gone",
            "update users set groups_json = '[]' where id in \
             (select approver_id from approvals where request_id = $1)",
            "no longer an approver",
        ),
    ];
    for (what, sql, reason) in cases {
        let s = Scenario::new().await;
        s.exec_request(sql).await;
        assert!(s.worker().run_once().await.unwrap(), "{what}");
        assert!(s.fake.calls().is_empty(), "{what}: zero AWS calls");
        let d = s.deployment().await;
        assert_eq!(d.status, DeploymentStatus::NeedsAttention, "{what}");
        let error = d.error.unwrap_or_default();
        assert!(error.contains(reason), "{what}: {error}");
        assert!(error.contains("refused to deploy"), "{what}: {error}");
        let request = s.request().await;
        assert_eq!(request.status, RequestStatus::NeedsAttention, "{what}");
        let audit = s.audit().await;
        let last = audit.last().unwrap();
        assert_eq!(last.action, "deploy.needs_attention", "{what}");
        assert!(
            last.detail["error"].as_str().unwrap().contains(reason),
            "{what}"
        );
        s.check_invariants().await;
    }
}
