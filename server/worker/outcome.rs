//! How a job ends: a terminal status recorded with the request's and the audit record in one
//! transaction, or a transient failure handed back to the queue with backoff.

use rand::Rng;

use super::{Connect, MAX_ATTEMPTS, Worker};
use crate::audit::{self, Actor, Entry};
use crate::aws::DeployError;
use crate::deployments::store;
use crate::deployments::{Deployment, DeploymentStatus, Output, Step};
use crate::requests::{self, ServiceRequest, Transition};

/// How a job ended, when it did.
pub(super) enum Outcome {
    Done {
        status: DeploymentStatus,
        error: Option<String>,
        outputs: Vec<Output>,
    },
    /// A transient failure: give the job back to the queue.
    Retry(String),
    /// The job was parked for review (or superseded) in its own transaction: nothing to record.
    Parked,
}

pub(super) fn done(status: DeploymentStatus, error: Option<String>) -> Outcome {
    Outcome::Done {
        status,
        error,
        outputs: vec![],
    }
}

/// The audit action and the request's transition for a job ending with `status`: what it means
/// depends on what the job was doing (preparing the change set, executing it, or discarding it).
fn ending(job: &Deployment, status: DeploymentStatus) -> (&'static str, Transition) {
    use DeploymentStatus as S;
    match (job.step, status) {
        // A discard ends a request that is already over: nothing moves it.
        (Step::Discard, S::Cancelled) => ("change_set.deleted", Transition::Cancel),
        (Step::Discard, _) => ("change_set.delete_failed", Transition::Cancel),
        (_, S::Cancelled) => ("deploy.cancelled", Transition::DeploymentFailed),
        (_, S::NeedsAttention) => ("deploy.needs_attention", Transition::Flag),
        (Step::Start | Step::ChangeSetRequested, S::Succeeded) => {
            ("change_set.no_changes", Transition::NoChanges)
        }
        (Step::Start | Step::ChangeSetRequested, _) => {
            ("change_set.failed", Transition::DeploymentFailed)
        }
        (_, S::Succeeded) => ("deploy.succeeded", Transition::DeploymentSucceeded),
        _ => ("deploy.failed", Transition::DeploymentFailed),
    }
}

/// Transient failures are retried; anything else ends the deployment as failed.
pub(super) fn classify(e: DeployError) -> Outcome {
    if e.is_retryable() {
        Outcome::Retry(e.to_string())
    } else {
        done(DeploymentStatus::Failed, Some(e.to_string()))
    }
}

impl<C: Connect> Worker<C> {
    /// Records the outcome: the deployment's status, the request's, and the audit record, in
    /// one transaction; or gives the job back to the queue.
    pub(super) async fn end(
        &self,
        job: &Deployment,
        request: &ServiceRequest,
        outcome: Outcome,
    ) -> anyhow::Result<()> {
        let (status, error, outputs) = match outcome {
            Outcome::Parked => return Ok(()),
            Outcome::Done {
                status,
                error,
                outputs,
            } => (status, error, outputs),
            Outcome::Retry(why) if job.attempts + 1 < MAX_ATTEMPTS => {
                // Exponential backoff with up to 20% jitter, so retries of many jobs spread out.
                let base = (self.poll().as_millis() as i64) << job.attempts.clamp(0, 8);
                let delay = base + rand::thread_rng().gen_range(0..=base / 5);
                tracing::warn!(deployment.id = %job.id, "A deployment step failed transiently ({why}); it will be retried.");
                store::requeue(&self.db, &job.id, job.epoch, delay, Some(&why)).await?;
                return Ok(());
            }
            Outcome::Retry(why) => (
                DeploymentStatus::NeedsAttention,
                Some(format!("Gave up after {MAX_ATTEMPTS} attempts: {why}")),
                vec![],
            ),
        };
        let mut tx = self.db.begin().await?;
        // The request row first (its version may have moved meanwhile), then the deployment.
        let current = requests::store::lock(&mut tx, self.db.backend(), &request.id).await?;
        store::finish(
            &mut tx,
            &job.id,
            job.epoch,
            status,
            error.as_deref(),
            &outputs,
        )
        .await?;
        let (action, transition) = ending(job, status);
        // A request cancelled meanwhile stays cancelled: the transition simply does not apply.
        if let Some(current) = current
            && job.step != Step::Discard
            && let Ok(next) = current.status.apply(transition)
        {
            requests::store::set_status(
                &mut tx,
                &current.id,
                current.version,
                next,
                error.as_deref(),
            )
            .await?;
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
