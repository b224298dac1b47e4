//! The AWS side of one deployment, step by step from its last durable step: create the change
//! set (or find the one a lost answer created), wait for it, re-check the approval, execute it
//! (or recognise it was executed), then follow the stack to a terminal status. Every AWS call
//! runs under the lease heartbeat ([`Worker::beat`]); every mutating call is fenced by the lease.

use anyhow::Context;

use super::outcome::{Outcome, classify, done};
use super::{Connect, Worker};
use crate::accounts::Account;
use crate::approvals::{approval_hash, auto_approvable};
use crate::audit::{self, Actor, Entry};
use crate::change::risk;
use crate::change::window::next_opening;
use crate::db::now_ms;
use crate::requests::{self, Transition};
use crate::aws::{
    ChangeSetInput, ChangeSetKind, DeployError, StackOps, StackState, StatusClass,
    stack_status_class,
};
use crate::deployments::store::{self, Patch};
use crate::deployments::{Change, Deployment, DeploymentStatus, Event, Output, Step};
use crate::requests::ServiceRequest;

impl<C: Connect> Worker<C> {
    /// Takes a deployment from its last durable step to an outcome: prepares the change set and
    /// parks the job for review, or executes the approved change set, or discards it.
    pub(super) async fn drive<O: StackOps>(
        &self,
        ops: &O,
        job: &Deployment,
        request: &ServiceRequest,
        account: &Account,
    ) -> anyhow::Result<Outcome> {
        let arn = match job.step {
            Step::Start | Step::ChangeSetRequested => {
                if job.step == Step::Start {
                    self.announce(job, request).await?;
                }
                let ready = match self.prepare(ops, job, request, account).await? {
                    Ok(ready) => ready,
                    Err(o) => return Ok(o),
                };
                return self.review(ops, job, request, ready).await;
            }
            Step::Discard => return self.discard(ops, job).await,
            Step::ChangeSetReady | Step::ExecuteRequested => match job.change_set_arn.clone() {
                Some(arn) => arn,
                None => {
                    return Ok(done(
                        DeploymentStatus::NeedsAttention,
                        Some("the change set ARN was not recorded".into()),
                    ));
                }
            },
            Step::Finished => {
                return Ok(done(
                    DeploymentStatus::NeedsAttention,
                    Some("a finished deployment was claimed".into()),
                ));
            }
        };
        if job.step == Step::ChangeSetReady {
            match self.staleness(ops, job, &arn).await? {
                Ok(None) => {}
                Ok(Some(why)) => return self.refresh(ops, job, &arn, &why).await,
                Err(o) => return Ok(o),
            }
            self.start(job, request).await?;
        }
        if let Err(o) = self.execute(ops, job, &arn).await? {
            return Ok(o);
        }
        self.poll_stack(ops, job).await
    }

    /// Records "change set requested" before any AWS call of the preparation, audited.
    async fn announce(&self, job: &Deployment, request: &ServiceRequest) -> anyhow::Result<()> {
        let mut tx = self.db.begin().await?;
        store::save(
            &mut tx,
            &job.id,
            job.epoch,
            self.lease_ms(),
            Patch {
                step: Some(Step::ChangeSetRequested),
                change_set_name: Some(job.change_set_name()),
                ..Patch::default()
            },
        )
        .await?;
        let entry = Entry::new(
            &Actor::system("stackgate-worker"),
            "change_set.requested",
            "request",
            request.id.clone(),
        )
        .detail(serde_json::json!({
            "deployment_id": job.id, "account_id": job.account_id, "region": job.region,
            "stack_name": job.stack_name, "content_hash": job.content_hash,
            "session_name": job.session_name(request.number),
        }))
        .correlation(job.token("changeset", job.epoch));
        audit::store::append(&mut tx, entry).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Creates the change set (or takes up the one already recorded), waits until it is ready,
    /// and reads what is deployed (template, parameters, fingerprint) to compare with. A change
    /// set that fails (or shows no change) is deleted with an empty stack under review.
    async fn prepare<O: StackOps>(
        &self,
        ops: &O,
        job: &Deployment,
        request: &ServiceRequest,
        account: &Account,
    ) -> anyhow::Result<Result<store::Ready, Outcome>> {
        let created = match job.change_set_arn.clone() {
            Some(a) => a,
            None => match self.create_change_set(ops, job, request, account).await? {
                Ok(a) => {
                    // Record the ARN at once, so a recovered job needs no lookup by name.
                    self.save(
                        job,
                        Patch {
                            change_set_arn: Some(a.clone()),
                            ..Patch::default()
                        },
                    )
                    .await?;
                    a
                }
                // A refused CreateChangeSet created nothing (and a stack under review here may be
                // another request's): nothing to clean up.
                Err(o) => return Ok(Err(o)),
            },
        };
        let changes = match self.wait_for_change_set(ops, job, &created).await? {
            Ok(c) => c,
            Err(o) => {
                if matches!(o, Outcome::Done { .. })
                    && let Err(retry) = self.cleanup(ops, job, Some(&created)).await?
                {
                    return Ok(Err(retry));
                }
                return Ok(Err(o));
            }
        };
        let stack = match self.beat(job, ops.describe_stack(&job.stack_name)).await? {
            Ok(Some(s)) => s,
            Ok(None) => {
                return Ok(Err(Outcome::Retry(
                    "the stack under review is not visible yet".into(),
                )));
            }
            Err(e) => return Ok(Err(classify(e))),
        };
        let base_template = if stack.status == "REVIEW_IN_PROGRESS" {
            None
        } else {
            match self.beat(job, ops.get_template(&job.stack_name)).await? {
                Ok(t) => t,
                Err(e) => return Ok(Err(classify(e))),
            }
        };
        Ok(Ok(store::Ready {
            change_set_arn: created,
            changes,
            base_params: base_template
                .as_ref()
                .map(|_| stack.parameters.iter().cloned().collect()),
            base_template,
            stack_fingerprint: stack.fingerprint(),
        }))
    }

    /// Parks the job with its change set and sends the request to review, with its risk flags,
    /// in one transaction; or approves it by the rules where they allow (recorded as such). A
    /// request that ended meanwhile (cancelled) gets its change set deleted instead.
    async fn review<O: StackOps>(
        &self,
        ops: &O,
        job: &Deployment,
        request: &ServiceRequest,
        ready: store::Ready,
    ) -> anyhow::Result<Outcome> {
        let new: serde_json::Value =
            serde_json::from_str(&request.template_body).unwrap_or(serde_json::Value::Null);
        let base = ready
            .base_template
            .as_deref()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok());
        let flags = risk::flags(
            &ready.changes,
            base.as_ref(),
            &new,
            self.config.risk_change_threshold,
        );
        let arn = ready.change_set_arn.clone();
        let changes = ready.changes.len();
        let mut tx = self.db.begin().await?;
        let current = requests::store::lock(&mut tx, self.db.backend(), &request.id)
            .await?
            .context("the deployment's request is missing")?;
        let Ok(next) = current.status.apply(Transition::ChangeSetReady) else {
            tx.rollback().await?;
            if let Err(retry) = self.cleanup(ops, job, Some(&arn)).await? {
                return Ok(retry);
            }
            return Ok(done(
                DeploymentStatus::Cancelled,
                Some(format!(
                    "The request is {}: its change set was deleted.",
                    current.status
                )),
            ));
        };
        store::park(&mut tx, &job.id, job.epoch, ready).await?;
        requests::store::set_risk_flags(&mut tx, &current.id, &flags).await?;
        requests::store::set_status(&mut tx, &current.id, current.version, next, None).await?;
        let mut entries = vec![
            Entry::new(
                &Actor::system("stackgate-worker"),
                "request.review_ready",
                "request",
                current.id.clone(),
            )
            .detail(serde_json::json!({
                "change_set_arn": arn, "changes": changes, "risk_flags": flags,
                "deployment_id": job.id,
            }))
            .correlation(job.token("changeset", job.epoch)),
        ];
        let mut reviewed = current.clone();
        reviewed.risk_flags = flags;
        reviewed.version += 1;
        reviewed.status = next;
        if auto_approvable(&reviewed, &self.config) {
            let approved = next.apply(Transition::Approve)?;
            requests::store::set_status(&mut tx, &current.id, reviewed.version, approved, None)
                .await?;
            requests::store::set_release(&mut tx, &current.id, "auto", None).await?;
            let opens = next_opening(
                self.config
                    .change_windows
                    .get(&current.env_class)
                    .map(Vec::as_slice)
                    .unwrap_or_default(),
                now_ms(),
            );
            store::release(&mut tx, &reviewed, opens).await?;
            entries.push(
                Entry::new(
                    &Actor::system("stackgate-rules"),
                    "request.auto_approved",
                    "request",
                    current.id.clone(),
                )
                .detail(serde_json::json!({
                    "change_set_arn": arn,
                    "content_hash": approval_hash(&current.content_hash, &arn),
                    "rule": "dev, no risk flags, every policy rule passed (STACKGATE_AUTO_APPROVE_DEV)",
                })),
            );
        }
        for entry in entries {
            audit::store::append(&mut tx, entry).await?;
        }
        tx.commit().await?;
        tracing::info!(request.id = %current.id, deployment.id = %job.id, "A change set is ready for review.");
        Ok(Outcome::Parked)
    }

    /// Whether the approved change set can still be executed as reviewed: `Some(why)` when it is
    /// gone, obsolete, or the stack changed since it was made.
    async fn staleness<O: StackOps>(
        &self,
        ops: &O,
        job: &Deployment,
        arn: &str,
    ) -> anyhow::Result<Result<Option<String>, Outcome>> {
        match self.beat(job, ops.describe_change_set(arn)).await? {
            Ok(cs) if cs.execution_status == "AVAILABLE" => {}
            Ok(cs) if cs.execution_status == "OBSOLETE" => {
                return Ok(Ok(Some("the change set became obsolete".into())));
            }
            Ok(cs) => {
                return Ok(Err(done(
                    DeploymentStatus::NeedsAttention,
                    Some(format!(
                        "The approved change set is {} although the portal has not executed \
                         it: someone acted on it outside the portal.",
                        cs.execution_status
                    )),
                )));
            }
            Err(DeployError::NotFound(_)) => {
                return Ok(Ok(Some("the change set was removed".into())));
            }
            Err(e) => return Ok(Err(classify(e))),
        }
        match self.beat(job, ops.describe_stack(&job.stack_name)).await? {
            Ok(Some(s)) if Some(s.fingerprint()) == job.stack_fingerprint => Ok(Ok(None)),
            Ok(_) => Ok(Ok(Some(
                "the stack changed after the change set was made".into(),
            ))),
            Err(e) => Ok(Err(classify(e))),
        }
    }

    /// Sends the request back to review with a fresh change set (F7): this job ends superseded,
    /// a new one prepares the change set again, and approvals of the old one no longer count
    /// (they bound its ARN).
    async fn refresh<O: StackOps>(
        &self,
        ops: &O,
        job: &Deployment,
        arn: &str,
        why: &str,
    ) -> anyhow::Result<Outcome> {
        if let Err(retry) = self.delete_change_set(ops, job, arn).await? {
            return Ok(retry);
        }
        let mut tx = self.db.begin().await?;
        let current = requests::store::lock(&mut tx, self.db.backend(), &job.request_id)
            .await?
            .context("the deployment's request is missing")?;
        let reason = format!("Superseded: {why}; a fresh change set is being prepared for review.");
        store::supersede(&mut tx, &job.id, job.epoch, &reason).await?;
        let Ok(next) = current.status.apply(Transition::Refresh) else {
            tx.commit().await?;
            return Ok(Outcome::Parked);
        };
        requests::store::set_status(&mut tx, &current.id, current.version, next, Some(&reason))
            .await?;
        requests::store::set_release(&mut tx, &current.id, "approvals", None).await?;
        let fresh = store::enqueue(&mut tx, &current).await?;
        let entry = Entry::new(
            &Actor::system("stackgate-worker"),
            "change_set.superseded",
            "request",
            current.id.clone(),
        )
        .detail(serde_json::json!({
            "old_change_set_arn": arn, "reason": why, "deployment_id": job.id,
            "new_deployment_id": fresh,
        }))
        .correlation(job.token("refresh", job.epoch));
        audit::store::append(&mut tx, entry).await?;
        tx.commit().await?;
        tracing::warn!(request.id = %current.id, "An approved change set went stale ({why}); the request is back in review.");
        Ok(Outcome::Parked)
    }

    /// Deletes the change set of a request that will not run, and an empty stack under review.
    async fn discard<O: StackOps>(&self, ops: &O, job: &Deployment) -> anyhow::Result<Outcome> {
        let arn = match job.change_set_arn.clone() {
            Some(a) => Some(a),
            None => match self
                .beat(
                    job,
                    ops.change_set_arn(&job.stack_name, &job.change_set_name()),
                )
                .await?
            {
                Ok(a) => Some(a),
                Err(DeployError::NotFound(_)) => None,
                Err(e) => return Ok(classify(e)),
            },
        };
        if let Err(o) = self.cleanup(ops, job, arn.as_deref()).await? {
            return Ok(o);
        }
        Ok(done(
            DeploymentStatus::Cancelled,
            Some("Withdrawn: the change set was deleted; nothing was deployed.".into()),
        ))
    }

    async fn delete_change_set<O: StackOps>(
        &self,
        ops: &O,
        job: &Deployment,
        arn: &str,
    ) -> anyhow::Result<Result<(), Outcome>> {
        self.extend_lease(job).await?;
        Ok(self
            .beat(job, ops.delete_change_set(arn))
            .await?
            .map_err(classify))
    }

    /// Deletes this deployment's change set (if it made one) and, when the stack is only under
    /// review (a create that never ran), the empty stack too. (Another request's change set for
    /// the same new stack would go with it; it then returns to review with a fresh one.)
    async fn cleanup<O: StackOps>(
        &self,
        ops: &O,
        job: &Deployment,
        arn: Option<&str>,
    ) -> anyhow::Result<Result<(), Outcome>> {
        let Some(arn) = arn else {
            return Ok(Ok(()));
        };
        if let Err(o) = self.delete_change_set(ops, job, arn).await? {
            return Ok(Err(o));
        }
        match self.beat(job, ops.describe_stack(&job.stack_name)).await? {
            Ok(Some(s)) if s.status == "REVIEW_IN_PROGRESS" => {
                self.extend_lease(job).await?;
                let token = job.token("discard", job.epoch);
                Ok(self
                    .beat(job, ops.delete_stack(&job.stack_name, &token))
                    .await?
                    .map_err(classify))
            }
            Ok(_) => Ok(Ok(())),
            Err(e) => Ok(Err(classify(e))),
        }
    }

    /// Executes the change set if it is still available, after re-deriving the approval and
    /// proving the lease; reconciles first when it is not (bar F3).
    async fn execute<O: StackOps>(
        &self,
        ops: &O,
        job: &Deployment,
        arn: &str,
    ) -> anyhow::Result<Result<(), Outcome>> {
        match self.beat(job, ops.describe_change_set(arn)).await? {
            Ok(cs) if cs.execution_status == "AVAILABLE" => {
                // Re-derive the approval right before the last mutating call.
                if let Some(flag) = self.recheck(job).await? {
                    return Ok(Err(flag));
                }
                // Fence: prove this epoch still owns the job right before the call.
                self.extend_lease(job).await?;
                let token = job.token("execute", job.epoch);
                if let Err(e) = self.beat(job, ops.execute_change_set(arn, &token)).await? {
                    return Ok(Err(match e {
                        e if e.is_retryable() => Outcome::Retry(e.to_string()),
                        e => done(DeploymentStatus::Failed, Some(e.to_string())),
                    }));
                }
                Ok(Ok(()))
            }
            Ok(cs) if cs.execution_status == "OBSOLETE" => Ok(Err(done(
                DeploymentStatus::NeedsAttention,
                Some("The approved change set is obsolete: the stack changed after approval. Submit a new request.".into()),
            ))),
            // Executed already (in progress, complete, failed).
            Ok(_) => Ok(Ok(())),
            // Gone: removed after its execution, or deleted before anyone executed it. Only the
            // stack's events tell: an execution of this deployment carries its token (bar F3).
            Err(DeployError::NotFound(_)) => self.executed_by_this_deployment(ops, job).await,
            Err(e) if e.is_retryable() => Ok(Err(Outcome::Retry(e.to_string()))),
            Err(e) => Ok(Err(done(DeploymentStatus::Failed, Some(e.to_string())))),
        }
    }

    /// Whether the stack's events show an execution by this deployment (its token).
    async fn executed_by_this_deployment<O: StackOps>(
        &self,
        ops: &O,
        job: &Deployment,
    ) -> anyhow::Result<Result<(), Outcome>> {
        let mine = format!("dep-{}-execute-", job.id);
        match self.beat(job, ops.stack_events(&job.stack_name)).await? {
            Ok(events)
                if events.iter().any(|e| {
                    e.client_request_token
                        .as_deref()
                        .is_some_and(|t| t.starts_with(&mine))
                }) =>
            {
                Ok(Ok(()))
            }
            Ok(_) | Err(DeployError::NotFound(_)) => Ok(Err(done(
                DeploymentStatus::NeedsAttention,
                Some("The approved change set was removed before it was executed; nothing was deployed. Submit a new request.".into()),
            ))),
            Err(e) => Ok(Err(classify(e))),
        }
    }

    pub(super) async fn create_change_set<O: StackOps>(
        &self,
        ops: &O,
        job: &Deployment,
        request: &ServiceRequest,
        account: &Account,
    ) -> anyhow::Result<Result<String, Outcome>> {
        let existing = match self.beat(job, ops.describe_stack(&job.stack_name)).await? {
            Ok(s) => s,
            Err(e) => return Ok(Err(classify(e))),
        };
        if let Some(s) = &existing {
            match self.ownership(ops, job, request, s).await? {
                Ownership::Ours => {}
                Ownership::CreatedAlready(arn) => return Ok(Ok(arn)),
                Ownership::Refused(o) => return Ok(Err(o)),
            }
        }
        let kind = match &existing {
            None => ChangeSetKind::Create,
            Some(s) if s.status == "REVIEW_IN_PROGRESS" => ChangeSetKind::Create,
            Some(_) => ChangeSetKind::Update,
        };
        let input = ChangeSetInput {
            stack_name: job.stack_name.clone(),
            change_set_name: job.change_set_name(),
            template_body: request.template_body.clone(),
            change_set_type: kind,
            tags: vec![
                ("stackgate:team".into(), request.team.clone()),
                ("stackgate:request".into(), request.number.to_string()),
                (
                    "stackgate:environment-class".into(),
                    request.env_class.to_string(),
                ),
                (
                    "stackgate:blueprint".into(),
                    format!("{}@{}", request.blueprint_slug, request.blueprint_version),
                ),
            ],
            client_token: job.token("changeset", job.epoch),
            capabilities: request.capabilities.clone(),
            role_arn: account
                .cfn_execution_role_arn
                .as_ref()
                .map(|r| r.to_string()),
        };
        // Fence: prove this epoch still owns the job right before the call.
        self.extend_lease(job).await?;
        Ok(match self.beat(job, ops.create_change_set(input)).await? {
            Ok(arn) => Ok(arn),
            // A retried create whose first attempt went through: find it by its stable name
            // (CloudFormation resolves a change-set name only together with its stack).
            Err(DeployError::AlreadyExists(_)) => self
                .beat(
                    job,
                    ops.change_set_arn(&job.stack_name, &job.change_set_name()),
                )
                .await?
                .map_err(classify),
            Err(DeployError::NoChanges) => Err(done(
                DeploymentStatus::Succeeded,
                Some("No changes: the stack already matches the template.".into()),
            )),
            Err(DeployError::TemplateRejected(m)) => Err(done(
                DeploymentStatus::Failed,
                Some(format!("CloudFormation rejected the template: {m}")),
            )),
            Err(e) => Err(classify(e)),
        })
    }

    /// Whether an existing stack of this name may be touched by this request. Never one this
    /// team does not own, even with the same name, and whatever its state. A stack under review
    /// shows no tags yet: it is ours only if it holds this deployment's change set (a create whose
    /// answer was lost). The refusal names no team.
    async fn ownership<O: StackOps>(
        &self,
        ops: &O,
        job: &Deployment,
        request: &ServiceRequest,
        stack: &StackState,
    ) -> anyhow::Result<Ownership> {
        let owner = stack
            .tags
            .iter()
            .find(|(k, _)| k == "stackgate:team")
            .map(|(_, v)| v.as_str());
        let ours = match owner {
            Some(team) => team == request.team,
            None if stack.status == "REVIEW_IN_PROGRESS" => {
                let name = job.change_set_name();
                match self
                    .beat(job, ops.change_set_arn(&job.stack_name, &name))
                    .await?
                {
                    // Created by this deployment already: use it, create nothing.
                    Ok(arn) => return Ok(Ownership::CreatedAlready(arn)),
                    Err(DeployError::NotFound(_)) => false,
                    Err(e) => return Ok(Ownership::Refused(classify(e))),
                }
            }
            None => false,
        };
        Ok(if ours {
            Ownership::Ours
        } else {
            Ownership::Refused(done(
                DeploymentStatus::Failed,
                Some(format!(
                    "A stack named {} already exists in account {} and was not created by \
                     this request: choose another environment name.",
                    job.stack_name, job.account_id
                )),
            ))
        })
    }

    pub(super) async fn wait_for_change_set<O: StackOps>(
        &self,
        ops: &O,
        job: &Deployment,
        arn: &str,
    ) -> anyhow::Result<Result<Vec<Change>, Outcome>> {
        let mut delay = self.poll();
        for _ in 0..120 {
            match self.beat(job, ops.describe_change_set(arn)).await? {
                Ok(cs) if cs.status == "CREATE_COMPLETE" => {
                    return Ok(Ok(cs
                        .changes
                        .into_iter()
                        .map(|c| Change {
                            logical_id: c.logical_id,
                            resource_type: c.resource_type,
                            action: c.action,
                            replacement: c.replacement,
                        })
                        .collect()));
                }
                Ok(_) => {}
                Err(DeployError::NoChanges) => {
                    return Ok(Err(done(
                        DeploymentStatus::Succeeded,
                        Some("No changes: the stack already matches the template.".into()),
                    )));
                }
                Err(DeployError::ChangeSetFailed(m)) => {
                    return Ok(Err(done(
                        DeploymentStatus::Failed,
                        Some(format!("The change set failed: {m}")),
                    )));
                }
                Err(e) => return Ok(Err(classify(e))),
            }
            // A lost lease ends this worker's part at once (propagated, not retried).
            self.extend_lease(job).await?;
            self.pause(delay).await?;
            delay = (delay * 2).min(self.poll() * 10);
        }
        Ok(Err(Outcome::Retry(
            "the change set is still being created".into(),
        )))
    }

    pub(super) async fn poll_stack<O: StackOps>(
        &self,
        ops: &O,
        job: &Deployment,
    ) -> anyhow::Result<Outcome> {
        let mut delay = self.poll();
        loop {
            let stack = match self.beat(job, ops.describe_stack(&job.stack_name)).await? {
                Ok(Some(s)) => s,
                Ok(None) => {
                    return Ok(done(
                        DeploymentStatus::Failed,
                        Some("The stack disappeared during the deployment.".into()),
                    ));
                }
                Err(e) => return Ok(classify(e)),
            };
            let events = match self.record_events(ops, job).await? {
                Ok(events) => events,
                Err(o) => return Ok(o),
            };
            if let Some(outcome) = verdict(&stack, &events) {
                if matches!(
                    outcome,
                    Outcome::Done {
                        status: DeploymentStatus::Succeeded,
                        ..
                    }
                ) {
                    self.save(
                        job,
                        Patch {
                            stack_id: Some(stack.stack_id.clone()),
                            ..Patch::default()
                        },
                    )
                    .await?;
                }
                return Ok(outcome);
            }
            self.extend_lease(job).await?;
            self.pause(delay).await?;
            delay = (delay * 2).min(self.poll() * 10);
        }
    }

    /// Reads the stack's events since shortly before this deployment and records them; events
    /// that cannot be read (other than transiently) leave the list empty.
    async fn record_events<O: StackOps>(
        &self,
        ops: &O,
        job: &Deployment,
    ) -> anyhow::Result<Result<Vec<Event>, Outcome>> {
        let events = match self.beat(job, ops.stack_events(&job.stack_name)).await? {
            Ok(evs) => evs,
            Err(e) if e.is_retryable() => return Ok(Err(Outcome::Retry(e.to_string()))),
            Err(_) => vec![],
        };
        let since = job.created_at - 60_000;
        let mine: Vec<Event> = events
            .iter()
            .filter(|e| e.timestamp.timestamp_millis() >= since)
            .map(|e| Event {
                at: e.timestamp.timestamp_millis(),
                logical_id: e.logical_id.clone(),
                resource_type: e.resource_type.clone(),
                status: e.status.clone(),
                reason: e.reason.clone().filter(|r| !r.is_empty()),
            })
            .collect();
        store::record_events(&self.db, &job.id, &mine).await?;
        Ok(Ok(mine))
    }
}

/// What a stack's status means for the deployment, once it is no longer in progress; the
/// message quotes the first failure the events name.
fn verdict(stack: &StackState, events: &[Event]) -> Option<Outcome> {
    let first_failure = || {
        events
            .iter()
            .rev()
            .find(|e| e.status.ends_with("_FAILED") && e.reason.is_some())
            .and_then(|e| e.reason.clone().map(|r| format!("{}: {r}", e.logical_id)))
            .or_else(|| stack.status_reason.clone())
            .unwrap_or_else(|| stack.status.clone())
    };
    match stack_status_class(&stack.status) {
        StatusClass::InProgress => None,
        StatusClass::Succeeded => Some(Outcome::Done {
            status: DeploymentStatus::Succeeded,
            error: None,
            outputs: stack
                .outputs
                .iter()
                .map(|(k, v, d)| Output {
                    key: k.clone(),
                    value: v.clone(),
                    description: d.clone(),
                })
                .collect(),
        }),
        StatusClass::RolledBack => Some(done(
            DeploymentStatus::RolledBack,
            Some(format!(
                "The deployment failed and was rolled back ({}). {}",
                stack.status,
                first_failure()
            )),
        )),
        StatusClass::Failed => Some(done(DeploymentStatus::Failed, Some(first_failure()))),
        StatusClass::NeedsAttention => Some(done(
            DeploymentStatus::NeedsAttention,
            Some(format!(
                "The stack is {}: a person must decide what to do. {}",
                stack.status,
                first_failure()
            )),
        )),
    }
}

/// What the worker may do with an existing stack of the request's name.
enum Ownership {
    Ours,
    /// Under review and holding this deployment's change set (its ARN).
    CreatedAlready(String),
    Refused(Outcome),
}
