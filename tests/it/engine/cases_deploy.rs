//! A deployment from start to end: what it sends to AWS, in what order and with which tokens,
//! and how each kind of end is recorded (deployed with outputs, rolled back, a rollback that
//! failed, a deploy role STS refuses, a stack the request does not own).

use stackgate::aws::{ChangeSetKind, DeployError};
use stackgate::deployments::{self, DeploymentStatus, Step};
use stackgate::requests::RequestStatus;

use super::fake::{ExecPlan, Op, valid_token};
use super::scenario::{Scenario, calls_of};
use super::{DEV, REGION};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_assumes_the_role_once_creates_one_change_set_executes_it_once_and_records_outputs()
 {
    // Submitted: the worker prepares the change set and stops there, awaiting review.
    let s = Scenario::submitted().await;
    let worker = s.worker();
    s.prepare().await;
    assert!(
        !worker.run_once().await.unwrap(),
        "nothing to do before approval"
    );
    assert_eq!(s.fake.count(Op::CreateChangeSet), 1);
    assert_eq!(s.fake.count(Op::ExecuteChangeSet), 0, "not before approval");
    // Approved: the worker executes exactly that change set.
    s.approve().await;
    assert!(
        worker.run_once().await.unwrap(),
        "the worker claims the approved job"
    );
    assert!(!worker.run_once().await.unwrap(), "nothing else to do");

    let calls = s.fake.calls();
    let d = s.deployment().await;
    assert_eq!(d.status, DeploymentStatus::Succeeded, "{:?}", d.error);
    assert_eq!(d.step, Step::Finished);
    assert_eq!(d.epoch, 2, "one claim to prepare, one to execute");
    assert_eq!(d.attempts, 0);
    assert_eq!(s.fake.count(Op::AssumeRole), 2, "once per claim");
    assert_eq!(s.fake.count(Op::CreateChangeSet), 1);
    assert_eq!(s.fake.count(Op::ExecuteChangeSet), 1);
    assert_eq!(calls.iter().filter(|c| c.op.mutating()).count(), 2);

    // AssumeRole: the registry's role and ExternalId, a session naming the request.
    let account = stackgate::accounts::store::get(s.db(), DEV)
        .await
        .unwrap()
        .unwrap();
    let request = s.request().await;
    let spec = calls[0].spec.clone().expect("AssumeRole first");
    assert_eq!(calls[0].op, Op::AssumeRole);
    assert_eq!(spec.role_arn, account.deploy_role_arn.as_str());
    assert_eq!(spec.external_id, account.external_id);
    assert_eq!(spec.region, REGION);
    assert!(
        spec.session_name
            .starts_with(&format!("stackgate-req{}-", request.number)),
        "{}",
        spec.session_name
    );
    assert_eq!(spec.source_identity, format!("stackgate-{}", s.alice.id));
    assert!(spec.tags.contains(&("team".into(), "payments".into())));

    // CreateChangeSet (epoch 1) then ExecuteChangeSet (epoch 2) of exactly the ARN it answered,
    // with deterministic tokens.
    let create = &calls_of(&calls, Op::CreateChangeSet)[0];
    let execute = &calls_of(&calls, Op::ExecuteChangeSet)[0];
    assert_eq!(create.kind, Some(ChangeSetKind::Create));
    assert_eq!(create.stack.as_deref(), Some(s.stack_name.as_str()));
    assert_eq!(
        create.change_set.as_deref(),
        Some(format!("stackgate-{}", d.id).as_str())
    );
    assert_eq!(
        create.token.as_deref(),
        Some(format!("dep-{}-changeset-1", d.id).as_str())
    );
    assert_eq!(
        execute.token.as_deref(),
        Some(format!("dep-{}-execute-2", d.id).as_str())
    );
    let arn = d
        .change_set_arn
        .clone()
        .expect("the change set ARN is recorded");
    assert_eq!(execute.change_set.as_deref(), Some(arn.as_str()));
    for t in [
        create.token.as_ref().unwrap(),
        execute.token.as_ref().unwrap(),
    ] {
        assert!(valid_token(t) && t.len() <= 128, "{t}");
    }
    let pos = |op| calls.iter().position(|c| c.op == op).unwrap();
    assert!(pos(Op::AssumeRole) < pos(Op::CreateChangeSet));
    assert!(pos(Op::CreateChangeSet) < pos(Op::ExecuteChangeSet));

    // Outputs, stack id, changes and events recorded; the request is deployed.
    let stack_id = s.fake.world(|w| w.stacks[&s.stack_name].id.clone());
    assert_eq!(d.stack_id.as_deref(), Some(stack_id.as_str()));
    let outputs: Vec<(&str, &str)> = d
        .outputs
        .iter()
        .map(|o| (o.key.as_str(), o.value.as_str()))
        .collect();
    assert_eq!(
        outputs,
        vec![
            ("VpcId", "vpc-0fake1234"),
            ("PublicSubnetIds", "subnet-0a,subnet-0b")
        ]
    );
    assert!(
        d.changes.len() > 10,
        "every resource of the template: {}",
        d.changes.len()
    );
    assert!(d.changes.iter().all(|c| c.action == "Add"));
    let events = deployments::store::events(s.db(), &d.id).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.logical_id == s.stack_name && e.status == "CREATE_COMPLETE"),
        "{events:?}"
    );
    let request = s.request().await;
    assert_eq!(request.status, RequestStatus::Deployed);

    // Audit: each step, correlated with the deployment's tokens.
    let audit = s.audit().await;
    let actions: Vec<&str> = audit.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(
        actions,
        vec![
            "request.submitted",
            "change_set.requested",
            "request.review_ready",
            "approval.approved",
            "request.approved",
            "deploy.started",
            "deploy.succeeded"
        ]
    );
    let correlation = |action: &str| {
        audit
            .iter()
            .find(|r| r.action == action)
            .and_then(|r| r.correlation_id.clone())
            .unwrap()
    };
    assert_eq!(
        correlation("change_set.requested"),
        format!("dep-{}-changeset-1", d.id)
    );
    assert_eq!(
        correlation("request.review_ready"),
        format!("dep-{}-changeset-1", d.id)
    );
    assert_eq!(
        correlation("deploy.started"),
        format!("dep-{}-start-2", d.id)
    );
    assert_eq!(
        correlation("deploy.succeeded"),
        format!("dep-{}-finish-2", d.id)
    );
    s.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_that_rolled_back_reports_the_failing_resource_and_its_reason() {
    let s = Scenario::new().await;
    let reason = "Resource handler returned message: \"User: arn:aws:sts::200000000001:\
                  assumed-role/stackgate-deploy/s is not authorized to perform: iam:CreateRole\"";
    s.fake.world(|w| {
        w.plan = ExecPlan::RollBack {
            resource: "FlowLogRole".into(),
            reason: reason.into(),
        }
    });
    assert!(s.worker().run_once().await.unwrap());
    assert!(!s.worker().run_once().await.unwrap(), "no retry loop");

    let d = s.deployment().await;
    assert_eq!(d.status, DeploymentStatus::RolledBack, "{:?}", d.error);
    let error = d.error.clone().unwrap_or_default();
    assert!(error.contains("ROLLBACK_COMPLETE"), "{error}");
    assert!(error.contains(&format!("FlowLogRole: {reason}")), "{error}");
    assert!(
        !error.contains("Resource creation cancelled"),
        "the first failure, not a later one"
    );
    let request = s.request().await;
    assert_eq!(request.status, RequestStatus::Failed);
    let why = request.status_reason.unwrap_or_default();
    assert!(
        why.contains("FlowLogRole") && why.contains("iam:CreateRole"),
        "{why}"
    );
    let events = deployments::store::events(s.db(), &d.id).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.logical_id == "FlowLogRole" && e.status == "CREATE_FAILED"),
        "{events:?}"
    );
    assert_eq!(s.fake.count(Op::ExecuteChangeSet), 1);
    assert_eq!(
        s.fake.count(Op::CreateChangeSet),
        0,
        "the reviewed one, no other"
    );
    assert!(s.audit_actions().await.contains(&"deploy.failed".into()));
    s.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_whose_rollback_failed_needs_attention_and_nothing_is_retried() {
    let s = Scenario::submitted().await;
    let stack = s.stack_name.clone();
    s.fake.world(|w| {
        w.seed_stack(&stack, "UPDATE_COMPLETE", "payments");
        w.plan = ExecPlan::UpdateRollbackFailed {
            resource: "Vpc".into(),
            reason: "Resource handler returned message: CIDR block conflicts".into(),
        };
    });
    s.prepare().await;
    let prepared = s.fake.calls();
    assert_eq!(
        calls_of(&prepared, Op::CreateChangeSet)[0].kind,
        Some(ChangeSetKind::Update)
    );
    s.approve().await;
    s.fake.lock().calls.clear();
    assert!(s.worker().run_once().await.unwrap());
    let after_end = s.fake.calls().len();
    // Even long after, nothing picks it up again.
    s.exec("update deployments set next_attempt_at = 0, lease_expires_at = null where id = $1")
        .await;
    assert!(!s.worker().run_once().await.unwrap(), "no automatic retry");
    assert_eq!(
        s.fake.calls().len(),
        after_end,
        "no further AWS call at all"
    );

    let d = s.deployment().await;
    assert_eq!(d.status, DeploymentStatus::NeedsAttention, "{:?}", d.error);
    assert_eq!(d.attempts, 0);
    let error = d.error.clone().unwrap_or_default();
    assert!(error.contains("UPDATE_ROLLBACK_FAILED"), "{error}");
    assert!(
        error.contains("Vpc: Resource handler returned message: CIDR block conflicts"),
        "{error}"
    );
    assert!(
        !error.contains("an old failure"),
        "events of earlier operations are not reported"
    );
    let calls = s.fake.calls();
    assert_eq!(
        calls.iter().filter(|c| c.op.mutating()).count(),
        1,
        "one execute"
    );
    let request = s.request().await;
    assert_eq!(request.status, RequestStatus::NeedsAttention);
    assert!(
        request
            .status_reason
            .unwrap_or_default()
            .contains("UPDATE_ROLLBACK_FAILED")
    );
    assert!(
        s.audit_actions()
            .await
            .contains(&"deploy.needs_attention".into())
    );
    s.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_role_that_cannot_be_assumed_fails_naming_the_role_and_its_trust_policy_without_calling_cloudformation()
 {
    let s = Scenario::new().await;
    s.fake.fail_next(
        Op::AssumeRole,
        DeployError::AssumeRoleDenied(
            "AccessDenied: User: arn:aws:sts::100000000004:assumed-role/stackgate/portal is not \
             authorized to perform: sts:AssumeRole on resource: \
             arn:aws:iam::200000000001:role/stackgate-deploy"
                .into(),
        ),
    );
    assert!(s.worker().run_once().await.unwrap());
    assert!(!s.worker().run_once().await.unwrap(), "not retried");

    let calls = s.fake.calls();
    assert_eq!(
        calls.iter().map(|c| c.op).collect::<Vec<_>>(),
        vec![Op::AssumeRole],
        "no CloudFormation call at all"
    );
    let d = s.deployment().await;
    assert_eq!(d.status, DeploymentStatus::Failed);
    let error = d.error.clone().unwrap_or_default();
    assert!(
        error.contains("arn:aws:iam::200000000001:role/stackgate-deploy"),
        "{error}"
    );
    assert!(error.contains("trust policy"), "{error}");
    let request = s.request().await;
    assert_eq!(request.status, RequestStatus::Failed);
    assert!(
        request
            .status_reason
            .unwrap_or_default()
            .contains("trust policy")
    );
    assert!(s.audit_actions().await.contains(&"deploy.failed".into()));
    s.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stack_this_request_does_not_own_is_never_touched_and_no_other_team_is_named() {
    // (a) another team's stack with the same name; (b) a stack under review (no tags yet) that
    // holds someone else's change set, not this deployment's.
    for (what, status, team) in [
        ("tagged for another team", "UPDATE_COMPLETE", "lending"),
        ("under review, not ours", "REVIEW_IN_PROGRESS", ""),
    ] {
        let s = Scenario::submitted().await;
        let stack = s.stack_name.clone();
        s.fake.world(|w| {
            w.seed_stack(&stack, status, team);
            if let Some(st) = w.stacks.get_mut(&stack).filter(|_| team.is_empty()) {
                st.tags.clear();
            }
        });
        assert!(s.worker().run_once().await.unwrap(), "{what}");
        let d = s.deployment().await;
        assert_eq!(d.status, DeploymentStatus::Failed, "{what}");
        let error = d.error.unwrap_or_default();
        assert!(error.contains("already exists"), "{what}: {error}");
        assert!(
            !error.contains("lending"),
            "{what}: names another team: {error}"
        );
        assert_eq!(s.fake.count(Op::CreateChangeSet), 0, "{what}");
        assert_eq!(s.fake.count(Op::ExecuteChangeSet), 0, "{what}");
        let request = s.request().await;
        assert_eq!(
            request.status,
            RequestStatus::Failed,
            "{what}: nothing reaches approvers"
        );
        s.check_invariants().await;
    }
}
