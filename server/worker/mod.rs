//! The deployment engine: claims queued deployments, and takes each through STS AssumeRole,
//! CreateChangeSet, ExecuteChangeSet and polling to a terminal state.
//!
//! `checks` re-derives, before acting, that the job is exactly what was approved; `steps` is the
//! AWS sequence; `outcome` records how a job ends.
//!
//! Every step is written to the database *before* the AWS call it announces, under the job's
//! fencing epoch; a job recovered after a crash first reads AWS (the change set, the stack) and
//! only then acts, with the same change-set name, so no stack is created twice. AWS sits behind
//! [`Connect`] and [`StackOps`] so this logic can be tested at every failure point.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

mod checks;
mod outcome;
mod steps;

use checks::Verdict;
use outcome::{Outcome, done};

use crate::accounts::{self, Account};
use crate::approvals::{self, approval_hash};
use crate::audit::{self, Actor, Entry};
use crate::change::window::next_opening;
use crate::aws::{AssumeSpec, AwsConnector, CfnSession, DeployError, StackOps};
use crate::config::Config;
use crate::db::{self, Db, StoreError};
use crate::deployments::store::{self, Patch};
use crate::deployments::{Deployment, DeploymentStatus, Step};
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

/// How often a worker expires requests that waited too long for review.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

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
            Err(e)
                if matches!(
                    e.downcast_ref::<StoreError>(),
                    Some(StoreError::LeaseLost(_))
                ) =>
            {
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
        let mut last_sweep: Option<tokio::time::Instant> = None;
        loop {
            if *shutdown.borrow() {
                return;
            }
            if last_sweep.is_none_or(|t| t.elapsed() >= SWEEP_EVERY) {
                last_sweep = Some(tokio::time::Instant::now());
                match approvals::actions::expire_waiting(&self.db, self.config.review_expiry_ms, 100)
                    .await
                {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(expired = n, "Requests that waited too long for review expired."),
                    Err(e) => tracing::warn!(error = format!("{e:#}"), "Could not expire requests waiting for review."),
                }
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
        // Before any AWS call: re-derive, from what is stored now, that this is exactly what was
        // submitted (to prepare) or approved, by whom, and that they still may (to execute). A
        // resumed job that may already have executed only reads AWS, so it is not stopped here;
        // a discard only deletes.
        let (verdict, request, account) = self.verdict(&job).await?;
        let mut job = job;
        if !matches!(job.step, Step::ExecuteRequested | Step::Discard) {
            match verdict {
                Verdict::Go => {}
                // Nothing was sent to AWS yet: nothing to clean up.
                Verdict::Cancel(why) if job.step == Step::Start => {
                    let outcome = done(DeploymentStatus::Cancelled, Some(why));
                    return self.end(&job, &request, outcome).await;
                }
                // A change set may exist: delete it.
                Verdict::Cancel(_) => job.step = Step::Discard,
                Verdict::Flag(why) => {
                    tracing::error!(deployment.id = %job.id, request.id = %request.id, "A deployment was refused: {why}.");
                    return self.end(&job, &request, refused(why)).await;
                }
                Verdict::Expire(why) => {
                    self.expire(&job, &request, &why).await?;
                    job.step = Step::Discard;
                }
            }
        }
        if job.step == Step::ChangeSetReady && request.approval_mode != "emergency" {
            let now = db::now_ms();
            let windows = self
                .config
                .change_windows
                .get(&request.env_class)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let opens = next_opening(windows, now);
            if opens > now {
                tracing::info!(deployment.id = %job.id, "An approved change waits for its change window.");
                store::requeue(&self.db, &job.id, job.epoch, opens - now, None).await?;
                return Ok(());
            }
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

    /// Expires a request whose approvals aged out before its change could run; its job goes on
    /// to delete the change set.
    async fn expire(&self, job: &Deployment, request: &ServiceRequest, why: &str) -> anyhow::Result<()> {
        let mut tx = self.db.begin().await?;
        if let Some(current) = requests::store::lock(&mut tx, self.db.backend(), &request.id).await?
            && let Ok(next) = current.status.apply(Transition::Expire)
        {
            let reason = format!("The approvals expired before the change could run: {why}.");
            requests::store::set_status(&mut tx, &current.id, current.version, next, Some(&reason))
                .await?;
            let entry = Entry::new(
                &Actor::system("stackgate-worker"),
                "request.expired",
                "request",
                current.id.clone(),
            )
            .detail(serde_json::json!({ "from": current.status, "reason": reason, "deployment_id": job.id }));
            audit::store::append(&mut tx, entry).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Marks the approved request deploying and announces the execution, before the call.
    async fn start(&self, job: &Deployment, request: &ServiceRequest) -> anyhow::Result<()> {
        // One lock order everywhere: the request row, then the deployment row, then the chain.
        let mut tx = self.db.begin().await?;
        let current = requests::store::lock(&mut tx, self.db.backend(), &request.id)
            .await?
            .context("the deployment's request is missing")?;
        if current.status == RequestStatus::Approved {
            let next = current.status.apply(Transition::StartDeployment)?;
            requests::store::set_status(&mut tx, &current.id, current.version, next, None).await?;
        }
        store::save(
            &mut tx,
            &job.id,
            job.epoch,
            self.lease_ms(),
            Patch {
                step: Some(Step::ExecuteRequested),
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
            "change_set_arn": job.change_set_arn, "approval_mode": current.approval_mode,
            "emergency": current.approval_mode == "emergency",
            "session_name": job.session_name(request.number),
        }))
        .correlation(token);
        audit::store::append(&mut tx, entry).await?;
        tx.commit().await?;
        Ok(())
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

    /// Runs one AWS call while keeping the lease alive: every third of the lease the worker
    /// proves (in the database) that it still owns the job and extends it, so a call slower than
    /// the lease does not hand the job to another worker. Losing the lease abandons the call.
    async fn beat<T>(&self, job: &Deployment, call: impl Future<Output = T>) -> anyhow::Result<T> {
        let period = Duration::from_millis((self.lease_ms() / 3).max(50) as u64);
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tokio::pin!(call);
        loop {
            tokio::select! {
                out = &mut call => return Ok(out),
                _ = ticker.tick() => self.extend_lease(job).await?,
            }
        }
    }

    /// Loads what the verdict is derived from, as it is now, and derives it.
    async fn verdict(
        &self,
        job: &Deployment,
    ) -> anyhow::Result<(Verdict, ServiceRequest, Account)> {
        let request = requests::store::get(&self.db, &job.request_id)
            .await
            .context("loading the deployment's request")?
            .context("the deployment's request is missing")?;
        let account = accounts::store::get(&self.db, &job.account_id)
            .await?
            .context("the deployment's account is missing")?;
        let bound = approval_hash(
            &request.content_hash,
            job.change_set_arn.as_deref().unwrap_or_default(),
        );
        let approvers = approvals::store::approvers(self.db.pool(), &request.id, &bound)
            .await
            .context("loading the request's approvers")?;
        let releaser = match &request.emergency {
            Some(e) => approvals::store::user_as_approver(&self.db, &e.released_by).await?,
            None => None,
        };
        let verdict = checks::verdict(&checks::Facts {
            job,
            request: &request,
            account: &account,
            approvers: &approvers,
            releaser: releaser.as_ref(),
            config: &self.config,
            now: db::now_ms(),
        });
        Ok((verdict, request, account))
    }

    /// The verdict again, right before the last mutating call: `Some(outcome)` to stop.
    async fn recheck(&self, job: &Deployment) -> anyhow::Result<Option<Outcome>> {
        Ok(match self.verdict(job).await?.0 {
            Verdict::Go => None,
            Verdict::Cancel(why) => Some(done(DeploymentStatus::Cancelled, Some(why))),
            Verdict::Flag(why) | Verdict::Expire(why) => Some(refused(why)),
        })
    }
}

/// The outcome of content that no longer matches its approval: no AWS call, a person looks.
fn refused(why: String) -> Outcome {
    done(
        DeploymentStatus::NeedsAttention,
        Some(format!(
            "stackgate refused to deploy: {why}. Nothing was sent to AWS; submit a new request, \
             and tell the platform team if nobody here changed it."
        )),
    )
}
