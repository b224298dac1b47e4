//! The deployment engine: claims queued deployments, and takes each through STS AssumeRole,
//! CreateChangeSet, ExecuteChangeSet and polling to a terminal state.
//!
//! Every step is written to the database *before* the AWS call it announces, under the job's
//! fencing epoch; a job recovered after a crash first reads AWS (the change set, the stack) and
//! only then acts, with the same change-set name, so no stack is created twice. AWS sits behind
//! [`Connect`] and [`StackOps`] so this logic can be tested at every failure point.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::aws::{
    AssumeSpec, AwsConnector, CfnSession, ChangeSetInput, ChangeSetKind, DeployError, StackOps,
    StatusClass, stack_status_class,
};
use super::store::{self, LostLease, Patch};
use super::{Change, Deployment, DeploymentStatus, Event, Output, Step};
use crate::accounts::{self, Account};
use crate::audit::{self, Actor, Entry};
use crate::config::Config;
use crate::db::Db;
use crate::requests::{self, RequestStatus, ServiceRequest, Transition};

/// Opens a CloudFormation session in a target account.
pub trait Connect: Send + Sync {
    type Ops: StackOps;
    fn connect(
        &self,
        spec: AssumeSpec,
    ) -> impl Future<Output = Result<Self::Ops, DeployError>> + Send;
}

impl Connect for AwsConnector {
    type Ops = CfnSession;
    async fn connect(&self, spec: AssumeSpec) -> Result<CfnSession, DeployError> {
        AwsConnector::connect(self, spec).await
    }
}

/// How a job ended, when it did.
enum Outcome {
    Done {
        status: DeploymentStatus,
        error: Option<String>,
        outputs: Vec<Output>,
    },
    /// A transient failure: give the job back to the queue.
    Retry(String),
}

fn done(status: DeploymentStatus, error: Option<String>) -> Outcome {
    Outcome::Done {
        status,
        error,
        outputs: vec![],
    }
}

/// Attempts before a deployment with transient failures stops at `needs_attention`.
const MAX_ATTEMPTS: i64 = 8;

/// The worker was asked to stop while waiting on AWS: the job goes back to the queue at its last
/// durable step, to be reconciled by the next worker (F12).
#[derive(Debug, thiserror::Error)]
#[error("the worker is shutting down")]
struct ShuttingDown;

/// A worker; several may run (in one process or many) against one database.
pub struct Worker<C: Connect> {
    db: Db,
    config: Arc<Config>,
    connector: C,
    owner: String,
    /// Set by [`Worker::run`]; a worker driven by `run_once` alone never stops mid-job.
    stop: Option<tokio::sync::watch::Receiver<bool>>,
}

impl<C: Connect> Worker<C> {
    pub fn new(db: Db, config: Arc<Config>, connector: C) -> Self {
        Worker {
            db,
            config,
            connector,
            owner: format!("worker-{}", uuid::Uuid::new_v4().simple()),
            stop: None,
        }
    }

    /// Waits `delay`, or fails with [`ShuttingDown`] as soon as a stop is requested.
    async fn pause(&self, delay: Duration) -> anyhow::Result<()> {
        let Some(mut stop) = self.stop.clone() else {
            tokio::time::sleep(delay).await;
            return Ok(());
        };
        if *stop.borrow_and_update() {
            return Err(ShuttingDown.into());
        }
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => return Ok(()),
                changed = stop.changed() => match changed {
                    Ok(()) if *stop.borrow() => return Err(ShuttingDown.into()),
                    Ok(()) => {}
                    // Nobody can ask for a stop any more: just finish the wait.
                    Err(_) => {
                        sleep.as_mut().await;
                        return Ok(());
                    }
                },
            }
        }
    }

    fn lease_ms(&self) -> i64 {
        self.config.lease_seconds * 1000
    }

    fn poll(&self) -> Duration {
        Duration::from_millis(self.config.worker_poll_ms)
    }

    /// Claims one runnable job and works on it until it ends or must wait. Returns whether a
    /// job was claimed.
    pub async fn run_once(&self) -> anyhow::Result<bool> {
        let Some(job) = store::claim(&self.db, &self.owner, self.lease_ms()).await? else {
            return Ok(false);
        };
        let id = job.id.clone();
        let epoch = job.epoch;
        tracing::info!(deployment.id = %id, deployment.epoch = epoch, "A worker claimed a deployment.");
        match self.process(job).await {
            Ok(()) => {}
            Err(e) if e.downcast_ref::<LostLease>().is_some() => {
                tracing::warn!(deployment.id = %id, "The worker lost its lease and stopped working on the deployment.");
            }
            Err(e) if e.downcast_ref::<ShuttingDown>().is_some() => {
                store::requeue(&self.db, &id, epoch, 0, None).await?;
                tracing::info!(deployment.id = %id, "The worker stopped; the deployment resumes from its last step.");
            }
            Err(e) => {
                tracing::error!(deployment.id = %id, error = format!("{e:#}"), "A deployment step failed; it will be retried.");
                let delay = self.poll().as_millis() as i64 * 4;
                if let Err(e) = store::requeue(
                    &self.db,
                    &id,
                    epoch,
                    delay,
                    Some("internal error; retrying"),
                )
                .await
                {
                    tracing::warn!(deployment.id = %id, error = %e, "Could not requeue the deployment.");
                }
            }
        }
        Ok(true)
    }

    /// Runs until `shutdown` flips to true: claims work, sleeps when there is none. A stop
    /// requested while a job waits on AWS hands the job back to the queue at once.
    pub async fn run(mut self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        self.stop = Some(shutdown.clone());
        loop {
            if *shutdown.borrow() {
                return;
            }
            let worked = match self.run_once().await {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "The worker could not claim work; it will try again."
                    );
                    false
                }
            };
            if !worked {
                tokio::select! {
                    _ = tokio::time::sleep(self.poll()) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }

    async fn process(&self, job: Deployment) -> anyhow::Result<()> {
        let request = requests::store::get(&self.db, &job.request_id)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .context("the deployment's request is missing")?;
        let account = accounts::store::get(&self.db, &job.account_id)
            .await?
            .context("the deployment's account is missing")?;
        // Re-check, at claim time, that the request is still approved for exactly this content.
        if let Some(why) = self.invalid_reason(&job, &request).await? {
            return self
                .end(&job, &request, done(DeploymentStatus::Cancelled, Some(why)))
                .await;
        }
        if job.step == Step::Start {
            self.start(&job, &request).await?;
        }
        let spec = AssumeSpec {
            role_arn: account.deploy_role_arn.to_string(),
            external_id: account.external_id.clone(),
            session_name: job.session_name(request.number),
            source_identity: format!("stackgate-{}", request.requester_id),
            tags: vec![
                ("team".into(), request.team.clone()),
                ("request".into(), request.number.to_string()),
                ("env".into(), request.env_class.to_string()),
            ],
            region: job.region.clone(),
        };
        let outcome = match self.connector.connect(spec).await {
            Ok(ops) => self.drive(&ops, &job, &request, &account).await?,
            Err(DeployError::AssumeRoleDenied(m)) => done(
                DeploymentStatus::Failed,
                Some(format!(
                    "stackgate could not assume the deploy role {} in account {} ({m}). Ask the \
                     platform team to check the role's trust policy and ExternalId.",
                    account.deploy_role_arn, account.id
                )),
            ),
            Err(e) if e.is_retryable() => Outcome::Retry(e.to_string()),
            Err(e) => done(DeploymentStatus::Failed, Some(e.to_string())),
        };
        self.end(&job, &request, outcome).await
    }

    /// Why the job must not run, if it must not.
    async fn invalid_reason(
        &self,
        job: &Deployment,
        request: &ServiceRequest,
    ) -> anyhow::Result<Option<String>> {
        if !matches!(
            request.status,
            RequestStatus::Approved | RequestStatus::Deploying
        ) {
            return Ok(Some(format!("the request is {}", request.status)));
        }
        if request.content_hash != job.content_hash {
            return Ok(Some("the request changed after it was approved".into()));
        }
        let mut tx = self.db.begin().await?;
        let approvals = crate::approvals::store::distinct_approvers(
            &mut tx,
            &request.id,
            &request.content_hash,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        tx.commit().await?;
        let required = self.config.approvals_for(request.env_class) as usize;
        Ok((approvals < required)
            .then(|| format!("the request has {approvals} of the {required} approvals it needs")))
    }

    /// Marks the request deploying and announces the change set, before any AWS call.
    async fn start(&self, job: &Deployment, request: &ServiceRequest) -> anyhow::Result<()> {
        // One lock order everywhere: the request row, then the deployment row, then the chain.
        let mut tx = self.db.begin().await?;
        if request.status == RequestStatus::Approved {
            let next = request.status.apply(Transition::StartDeployment)?;
            requests::store::set_status(&mut tx, &request.id, request.version, next, None)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
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
        let token = job.token("start", job.epoch);
        let entry = Entry::new(
            &Actor::system("stackgate-worker"),
            "deploy.started",
            "request",
            request.id.clone(),
        )
        .detail(serde_json::json!({
            "deployment_id": job.id, "account_id": job.account_id, "region": job.region,
            "stack_name": job.stack_name, "content_hash": job.content_hash,
            "session_name": job.session_name(request.number),
        }))
        .correlation(token);
        audit::store::append(&mut tx, entry).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Takes a deployment from its last durable step to an outcome.
    async fn drive<O: StackOps>(
        &self,
        ops: &O,
        job: &Deployment,
        request: &ServiceRequest,
        account: &Account,
    ) -> anyhow::Result<Outcome> {
        let mut step = if job.step == Step::Start {
            Step::ChangeSetRequested
        } else {
            job.step
        };
        let mut arn = job.change_set_arn.clone();
        if step == Step::ChangeSetRequested {
            let created = match arn.clone() {
                Some(a) => a,
                None => match self.create_change_set(ops, job, request).await? {
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
                    Err(o) => return Ok(o),
                },
            };
            let changes = match self.wait_for_change_set(ops, job, &created).await? {
                Ok(c) => c,
                Err(o) => return Ok(o),
            };
            let mut tx = self.db.begin().await?;
            store::save(
                &mut tx,
                &job.id,
                job.epoch,
                self.lease_ms(),
                Patch {
                    step: Some(Step::ExecuteRequested),
                    change_set_arn: Some(created.clone()),
                    changes: Some(changes.clone()),
                    ..Patch::default()
                },
            )
            .await?;
            let entry = Entry::new(&Actor::system("stackgate-worker"), "deploy.change_set_created", "request", request.id.clone())
                .detail(serde_json::json!({ "change_set_arn": created, "changes": changes.len(), "account_id": account.id }))
                .correlation(job.token("changeset", job.epoch));
            audit::store::append(&mut tx, entry).await?;
            tx.commit().await?;
            arn = Some(created);
            step = Step::ExecuteRequested;
        }
        if step != Step::ExecuteRequested {
            return Ok(done(
                DeploymentStatus::NeedsAttention,
                Some(format!("unexpected step {}", step.as_str())),
            ));
        }
        let Some(arn) = arn else {
            return Ok(done(
                DeploymentStatus::NeedsAttention,
                Some("the change set ARN was not recorded".into()),
            ));
        };
        // Reconcile before executing: execute only a change set that is still available.
        match ops.describe_change_set(&arn).await {
            Ok(cs) if cs.execution_status == "AVAILABLE" => {
                // Fence: prove this epoch still owns the job right before the call (bar F4).
                self.extend_lease(job).await?;
                if let Err(e) = ops
                    .execute_change_set(&arn, &job.token("execute", job.epoch))
                    .await
                {
                    return Ok(match e {
                        e if e.is_retryable() => Outcome::Retry(e.to_string()),
                        e => done(DeploymentStatus::Failed, Some(e.to_string())),
                    });
                }
            }
            Ok(cs) if cs.execution_status == "OBSOLETE" => {
                return Ok(done(
                    DeploymentStatus::NeedsAttention,
                    Some("The approved change set is obsolete: the stack changed after approval. Submit a new request.".into()),
                ));
            }
            // Executed already (in progress, complete, failed).
            Ok(_) => {}
            // Gone: removed after its execution, or deleted before anyone executed it. Only the
            // stack's events tell: an execution of this deployment carries its token (bar F3).
            Err(DeployError::NotFound(_)) => {
                let mine = format!("dep-{}-execute-", job.id);
                match ops.stack_events(&job.stack_name).await {
                    Ok(events)
                        if events.iter().any(|e| {
                            e.client_request_token
                                .as_deref()
                                .is_some_and(|t| t.starts_with(&mine))
                        }) => {}
                    Ok(_) | Err(DeployError::NotFound(_)) => {
                        return Ok(done(
                            DeploymentStatus::NeedsAttention,
                            Some("The approved change set was removed before it was executed; nothing was deployed. Submit a new request.".into()),
                        ));
                    }
                    Err(e) => return Ok(classify(e)),
                }
            }
            Err(e) if e.is_retryable() => return Ok(Outcome::Retry(e.to_string())),
            Err(e) => return Ok(done(DeploymentStatus::Failed, Some(e.to_string()))),
        }
        self.poll_stack(ops, job).await
    }

    async fn create_change_set<O: StackOps>(
        &self,
        ops: &O,
        job: &Deployment,
        request: &ServiceRequest,
    ) -> anyhow::Result<Result<String, Outcome>> {
        let existing = match ops.describe_stack(&job.stack_name).await {
            Ok(s) => s,
            Err(e) => return Ok(Err(classify(e))),
        };
        let kind = match &existing {
            None => ChangeSetKind::Create,
            Some(s) if s.status == "REVIEW_IN_PROGRESS" => ChangeSetKind::Create,
            Some(s) => {
                // Never touch a stack another team owns, even with the same name (bar E7).
                let owner = s
                    .tags
                    .iter()
                    .find(|(k, _)| k == "stackgate:team")
                    .map(|(_, v)| v.as_str());
                if owner != Some(request.team.as_str()) {
                    return Ok(Err(done(
                        DeploymentStatus::Failed,
                        Some(format!(
                            "Stack {} exists and is not owned by team {}.",
                            job.stack_name, request.team
                        )),
                    )));
                }
                ChangeSetKind::Update
            }
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
            capabilities: vec!["CAPABILITY_IAM".into()],
            role_arn: None,
        };
        // Fence: prove this epoch still owns the job right before the call (bar F4).
        self.extend_lease(job).await?;
        Ok(match ops.create_change_set(input).await {
            Ok(arn) => Ok(arn),
            // A retried create whose first attempt went through: find it by its stable name
            // (CloudFormation resolves a change-set name only together with its stack).
            Err(DeployError::AlreadyExists(_)) => ops
                .change_set_arn(&job.stack_name, &job.change_set_name())
                .await
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

    async fn wait_for_change_set<O: StackOps>(
        &self,
        ops: &O,
        job: &Deployment,
        arn: &str,
    ) -> anyhow::Result<Result<Vec<Change>, Outcome>> {
        let mut delay = self.poll();
        for _ in 0..120 {
            match ops.describe_change_set(arn).await {
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

    async fn poll_stack<O: StackOps>(&self, ops: &O, job: &Deployment) -> anyhow::Result<Outcome> {
        let mut delay = self.poll();
        loop {
            let stack = match ops.describe_stack(&job.stack_name).await {
                Ok(Some(s)) => s,
                Ok(None) => {
                    return Ok(done(
                        DeploymentStatus::Failed,
                        Some("The stack disappeared during the deployment.".into()),
                    ));
                }
                Err(e) => return Ok(classify(e)),
            };
            let events = match ops.stack_events(&job.stack_name).await {
                Ok(evs) => evs,
                Err(e) if e.is_retryable() => return Ok(Outcome::Retry(e.to_string())),
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
            let first_failure = || {
                mine.iter()
                    .rev()
                    .find(|e| e.status.ends_with("_FAILED") && e.reason.is_some())
                    .and_then(|e| e.reason.clone().map(|r| format!("{}: {r}", e.logical_id)))
                    .or_else(|| stack.status_reason.clone())
                    .unwrap_or_else(|| stack.status.clone())
            };
            match stack_status_class(&stack.status) {
                StatusClass::InProgress => {}
                StatusClass::Succeeded => {
                    let outputs = stack
                        .outputs
                        .iter()
                        .map(|(k, v, d)| Output {
                            key: k.clone(),
                            value: v.clone(),
                            description: d.clone(),
                        })
                        .collect();
                    self.save(
                        job,
                        Patch {
                            stack_id: Some(stack.stack_id.clone()),
                            ..Patch::default()
                        },
                    )
                    .await?;
                    return Ok(Outcome::Done {
                        status: DeploymentStatus::Succeeded,
                        error: None,
                        outputs,
                    });
                }
                StatusClass::RolledBack => {
                    return Ok(done(
                        DeploymentStatus::RolledBack,
                        Some(format!(
                            "The deployment failed and was rolled back ({}). {}",
                            stack.status,
                            first_failure()
                        )),
                    ));
                }
                StatusClass::Failed => {
                    return Ok(done(DeploymentStatus::Failed, Some(first_failure())));
                }
                StatusClass::NeedsAttention => {
                    return Ok(done(
                        DeploymentStatus::NeedsAttention,
                        Some(format!(
                            "The stack is {}: a person must decide what to do. {}",
                            stack.status,
                            first_failure()
                        )),
                    ));
                }
            }
            self.extend_lease(job).await?;
            self.pause(delay).await?;
            delay = (delay * 2).min(self.poll() * 10);
        }
    }

    /// Writes a step (and extends the lease) in a transaction of its own, under the job's epoch.
    async fn save(&self, job: &Deployment, patch: Patch) -> anyhow::Result<()> {
        let mut tx = self.db.begin().await?;
        store::save(&mut tx, &job.id, job.epoch, self.lease_ms(), patch).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn extend_lease(&self, job: &Deployment) -> anyhow::Result<()> {
        self.save(job, Patch::default()).await
    }

    /// Records the outcome: the deployment's status, the request's, and the audit record, in
    /// one transaction; or gives the job back to the queue.
    async fn end(
        &self,
        job: &Deployment,
        request: &ServiceRequest,
        outcome: Outcome,
    ) -> anyhow::Result<()> {
        let (status, error, outputs) = match outcome {
            Outcome::Done {
                status,
                error,
                outputs,
            } => (status, error, outputs),
            Outcome::Retry(why) if job.attempts + 1 < MAX_ATTEMPTS => {
                // Exponential backoff with up to 20% jitter, so retries of many jobs spread out.
                let base = (self.poll().as_millis() as i64) << job.attempts.clamp(0, 8);
                let delay = base + rand::Rng::gen_range(&mut rand::thread_rng(), 0..=base / 5);
                tracing::warn!(deployment.id = %job.id, "A deployment step failed transiently ({why}); it will be retried.");
                return store::requeue(&self.db, &job.id, job.epoch, delay, Some(&why)).await;
            }
            Outcome::Retry(why) => (
                DeploymentStatus::NeedsAttention,
                Some(format!("Gave up after {MAX_ATTEMPTS} attempts: {why}")),
                vec![],
            ),
        };
        let mut tx = self.db.begin().await?;
        // The request row first (its version may have moved meanwhile), then the deployment.
        let current = requests::store::lock(&mut tx, self.db.backend(), &request.id)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        store::finish(
            &mut tx,
            &job.id,
            job.epoch,
            status,
            error.as_deref(),
            &outputs,
        )
        .await?;
        let action = match status {
            DeploymentStatus::Succeeded => "deploy.succeeded",
            DeploymentStatus::Cancelled => "deploy.cancelled",
            DeploymentStatus::NeedsAttention => "deploy.needs_attention",
            _ => "deploy.failed",
        };
        let transition = if status == DeploymentStatus::Succeeded {
            Transition::DeploymentSucceeded
        } else {
            Transition::DeploymentFailed
        };
        // A request cancelled meanwhile stays cancelled: the transition simply does not apply.
        if let Some(current) = current
            && let Ok(next) = current.status.apply(transition)
        {
            requests::store::set_status(
                &mut tx,
                &current.id,
                current.version,
                next,
                error.as_deref(),
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        let entry = Entry::new(
            &Actor::system("stackgate-worker"),
            action,
            "request",
            request.id.clone(),
        )
        .outcome(if status == DeploymentStatus::Succeeded {
            "success"
        } else {
            "failure"
        })
        .detail(serde_json::json!({
            "deployment_id": job.id, "status": status, "error": error,
            "outputs": outputs.len(), "stack_name": job.stack_name,
        }))
        .correlation(job.token("finish", job.epoch));
        audit::store::append(&mut tx, entry).await?;
        tx.commit().await?;
        tracing::info!(deployment.id = %job.id, deployment.status = status.as_str(), "A deployment ended.");
        Ok(())
    }
}

/// Transient failures are retried; anything else ends the deployment as failed.
fn classify(e: DeployError) -> Outcome {
    if e.is_retryable() {
        Outcome::Retry(e.to_string())
    } else {
        done(DeploymentStatus::Failed, Some(e.to_string()))
    }
}
