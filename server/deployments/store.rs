//! Deployment SQL: the queue. A worker claims a job by bumping its `epoch` (the fencing token);
//! every later write names that epoch, so a worker that lost its lease writes nothing.

use sqlx::Row;

use super::{Change, Deployment, DeploymentStatus, Event, Output, Step};
use crate::db::{Backend, Db, StoreError, Tx, db_now, now_ms};
use crate::requests::ServiceRequest;

const SELECT: &str = "select id, request_id, account_id, region, stack_name, content_hash, \
    status, step, epoch, attempts, change_set_name, change_set_arn, stack_id, error, \
    outputs_json, changes_json, created_at, updated_at, finished_at, base_template, \
    base_params_json, stack_fingerprint, change_set_ready_at, next_attempt_at from deployments";

fn from_row(row: &sqlx::any::AnyRow) -> Result<Deployment, StoreError> {
    let status: String = row.try_get(6)?;
    let step: String = row.try_get(7)?;
    let outputs: String = row.try_get(14)?;
    let changes: String = row.try_get(15)?;
    let base_params: Option<String> = row.try_get(20)?;
    Ok(Deployment {
        id: row.try_get(0)?,
        request_id: row.try_get(1)?,
        account_id: row.try_get(2)?,
        region: row.try_get(3)?,
        stack_name: row.try_get(4)?,
        content_hash: row.try_get(5)?,
        status: DeploymentStatus::parse(&status)
            .ok_or_else(|| StoreError::corrupt(format_args!("deployment status '{status}'")))?,
        step: Step::parse(&step)
            .ok_or_else(|| StoreError::corrupt(format_args!("deployment step '{step}'")))?,
        epoch: row.try_get(8)?,
        attempts: row.try_get(9)?,
        change_set_name: row.try_get(10)?,
        change_set_arn: row.try_get(11)?,
        stack_id: row.try_get(12)?,
        error: row.try_get(13)?,
        outputs: serde_json::from_str::<Vec<Output>>(&outputs)
            .map_err(|e| StoreError::unreadable("deployment outputs", e))?,
        changes: serde_json::from_str::<Vec<Change>>(&changes)
            .map_err(|e| StoreError::unreadable("deployment changes", e))?,
        created_at: row.try_get(16)?,
        updated_at: row.try_get(17)?,
        finished_at: row.try_get(18)?,
        base_template: row.try_get(19)?,
        base_params: base_params
            .map(|p| serde_json::from_str(&p))
            .transpose()
            .map_err(|e| StoreError::unreadable("deployment base parameters", e))?,
        stack_fingerprint: row.try_get(21)?,
        change_set_ready_at: row.try_get(22)?,
        next_attempt_at: row.try_get(23)?,
    })
}

/// Queues a request's deployment at submission (in its transaction): the worker first prepares
/// the change set, then parks the job until the request is approved.
pub async fn enqueue(tx: &mut Tx, request: &ServiceRequest) -> Result<String, StoreError> {
    let id = uuid::Uuid::new_v4().to_string();
    let now = db_now(tx).await?;
    let done = sqlx::query(
        "insert into deployments (id, request_id, account_id, region, stack_name, content_hash, \
         status, step, next_attempt_at, created_at, updated_at) \
         values ($1, $2, $3, $4, $5, $6, 'queued', 'start', $7, $7, $7)",
    )
    .bind(id.clone())
    .bind(request.id.clone())
    .bind(request.account_id.clone())
    .bind(request.region.clone())
    .bind(request.stack_name.clone())
    .bind(request.content_hash.clone())
    .bind(now)
    .execute(&mut **tx)
    .await;
    match done {
        Ok(_) => Ok(id),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(StoreError::Conflict(format!(
                "Another deployment of stack {} is in progress; wait for it to finish.",
                request.stack_name
            )))
        }
        Err(e) => Err(e.into()),
    }
}

/// One row written means the epoch still owns the job; none means another worker took it.
fn fenced(rows: u64, id: &str) -> Result<(), StoreError> {
    if rows == 1 {
        Ok(())
    } else {
        Err(StoreError::LeaseLost(format!("deployment {id}")))
    }
}

/// Claims the oldest runnable job (queued and due, or running with an expired lease), bumping
/// its epoch. Returns the job with its new epoch.
pub async fn claim(db: &Db, owner: &str, lease_ms: i64) -> Result<Option<Deployment>, StoreError> {
    let mut tx = db.begin().await?;
    let now = db_now(&mut tx).await?;
    let lock = match db.backend() {
        Backend::Postgres => " for update skip locked",
        Backend::Sqlite => "",
    };
    let sql = format!(
        "select id, epoch from deployments where (status = 'queued' and next_attempt_at <= $1) \
         or (status = 'running' and lease_expires_at < $1) order by created_at limit 1{lock}"
    );
    let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?
    else {
        return Ok(None);
    };
    let id: String = row.try_get(0)?;
    let epoch: i64 = row.try_get(1)?;
    let done = sqlx::query(
        "update deployments set status = 'running', epoch = epoch + 1, lease_owner = $1, \
         lease_expires_at = $2, updated_at = $3 where id = $4 and epoch = $5",
    )
    .bind(owner.to_string())
    .bind(now + lease_ms)
    .bind(now)
    .bind(id.clone())
    .bind(epoch)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(None);
    }
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} where id = $1")))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    let job = from_row(&row)?;
    tx.commit().await?;
    Ok(Some(job))
}

/// Fields a step writes; `None` leaves the stored value alone.
#[derive(Debug, Default)]
pub struct Patch {
    pub step: Option<Step>,
    pub change_set_name: Option<String>,
    pub change_set_arn: Option<String>,
    pub stack_id: Option<String>,
    pub changes: Option<Vec<Change>>,
}

/// Writes a step and extends the lease, only while `epoch` still owns the job.
pub async fn save(
    tx: &mut Tx,
    id: &str,
    epoch: i64,
    lease_ms: i64,
    patch: Patch,
) -> Result<(), StoreError> {
    let now = db_now(tx).await?;
    let changes = match patch.changes {
        Some(c) => Some(StoreError::json("deployment changes", &c)?),
        None => None,
    };
    let done = sqlx::query(
        "update deployments set step = coalesce($1, step), \
         change_set_name = coalesce($2, change_set_name), \
         change_set_arn = coalesce($3, change_set_arn), stack_id = coalesce($4, stack_id), \
         changes_json = coalesce($5, changes_json), lease_expires_at = $6, updated_at = $7 \
         where id = $8 and epoch = $9 and status = 'running'",
    )
    .bind(patch.step.map(|s| s.as_str()))
    .bind(patch.change_set_name)
    .bind(patch.change_set_arn)
    .bind(patch.stack_id)
    .bind(changes)
    .bind(now + lease_ms)
    .bind(now)
    .bind(id.to_string())
    .bind(epoch)
    .execute(&mut **tx)
    .await?;
    fenced(done.rows_affected(), id)
}

/// Ends the job with a terminal status, only while `epoch` still owns it.
pub async fn finish(
    tx: &mut Tx,
    id: &str,
    epoch: i64,
    status: DeploymentStatus,
    error: Option<&str>,
    outputs: &[Output],
) -> Result<(), StoreError> {
    let now = now_ms();
    let done = sqlx::query(
        "update deployments set status = $1, step = 'finished', error = $2, outputs_json = $3, \
         lease_owner = null, lease_expires_at = null, finished_at = $4, updated_at = $4 \
         where id = $5 and epoch = $6 and status = 'running'",
    )
    .bind(status.as_str())
    .bind(error.map(str::to_string))
    .bind(StoreError::json("deployment outputs", outputs)?)
    .bind(now)
    .bind(id.to_string())
    .bind(epoch)
    .execute(&mut **tx)
    .await?;
    fenced(done.rows_affected(), id)
}

/// Gives a claimed job back to the queue, due again in `delay_ms`, keeping its durable step so
/// the next worker reconciles and resumes. With a `failure` (a transient error) the attempt
/// counts against the retry budget; without one (the worker is stopping) it does not.
pub async fn requeue(
    db: &Db,
    id: &str,
    epoch: i64,
    delay_ms: i64,
    failure: Option<&str>,
) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    let now = db_now(&mut tx).await?;
    let done = sqlx::query(
        "update deployments set status = 'queued', lease_owner = null, lease_expires_at = null, \
         attempts = attempts + $1, next_attempt_at = $2, error = coalesce($3, error), \
         updated_at = $4 where id = $5 and epoch = $6 and status = 'running'",
    )
    .bind(i64::from(failure.is_some()))
    .bind(now + delay_ms)
    .bind(failure.map(str::to_string))
    .bind(now)
    .bind(id.to_string())
    .bind(epoch)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    fenced(done.rows_affected(), id)
}

/// Ends the deployment of a request that will not run (cancelled, rejected, expired), in the
/// caller's transaction: a job that sent nothing to AWS is cancelled; one whose change set may
/// exist is queued to discard it. A job a worker holds is left to the worker, which re-reads the
/// request before every step and discards what it made.
pub async fn withdraw(tx: &mut Tx, request_id: &str) -> Result<u64, StoreError> {
    let now = db_now(tx).await?;
    let cancelled = sqlx::query(
        "update deployments set status = 'cancelled', step = 'finished', finished_at = $1, \
         updated_at = $1 where request_id = $2 and status = 'queued' and step = 'start'",
    )
    .bind(now)
    .bind(request_id.to_string())
    .execute(&mut **tx)
    .await?;
    let discarded = sqlx::query(
        "update deployments set status = 'queued', step = 'discard', next_attempt_at = $1, \
         attempts = 0, updated_at = $1 where request_id = $2 and (status = 'awaiting_approval' \
         or (status = 'queued' and step in ('change_set_requested', 'change_set_ready')))",
    )
    .bind(now)
    .bind(request_id.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(cancelled.rows_affected() + discarded.rows_affected())
}

/// What the worker records when the change set is ready for review.
#[derive(Debug, Default)]
pub struct Ready {
    pub change_set_arn: String,
    pub changes: Vec<Change>,
    pub base_template: Option<String>,
    pub base_params: Option<std::collections::BTreeMap<String, String>>,
    pub stack_fingerprint: String,
}

/// Parks a job whose change set is ready until the request is approved, only while `epoch`
/// still owns it.
pub async fn park(tx: &mut Tx, id: &str, epoch: i64, ready: Ready) -> Result<(), StoreError> {
    let now = db_now(tx).await?;
    let base_params = match &ready.base_params {
        Some(p) => Some(StoreError::json("deployment base parameters", p)?),
        None => None,
    };
    let done = sqlx::query(
        "update deployments set status = 'awaiting_approval', step = 'change_set_ready', \
         change_set_arn = $1, changes_json = $2, base_template = $3, base_params_json = $4, \
         stack_fingerprint = $5, change_set_ready_at = $6, lease_owner = null, \
         lease_expires_at = null, attempts = 0, error = null, updated_at = $6 \
         where id = $7 and epoch = $8 and status = 'running'",
    )
    .bind(ready.change_set_arn)
    .bind(StoreError::json("deployment changes", &ready.changes)?)
    .bind(ready.base_template)
    .bind(base_params)
    .bind(ready.stack_fingerprint)
    .bind(now)
    .bind(id.to_string())
    .bind(epoch)
    .execute(&mut **tx)
    .await?;
    fenced(done.rows_affected(), id)
}

/// Queues the parked job of an approved request for execution, due at `not_before` (a change
/// window may hold it), in the approval's transaction. Returns its id.
pub async fn release(
    tx: &mut Tx,
    request: &ServiceRequest,
    not_before: i64,
) -> Result<Option<String>, StoreError> {
    let now = db_now(tx).await?;
    let done = sqlx::query(
        "update deployments set status = 'queued', next_attempt_at = $1, updated_at = $2 \
         where request_id = $3 and status = 'awaiting_approval' and step = 'change_set_ready'",
    )
    .bind(not_before.max(now))
    .bind(now)
    .bind(request.id.clone())
    .execute(&mut **tx)
    .await;
    match done {
        Ok(d) if d.rows_affected() == 0 => Ok(None),
        Ok(_) => Ok(current(tx, &request.id).await?.map(|d| d.id)),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(StoreError::Conflict(format!(
                "Another deployment of stack {} is in progress; approve again when it has finished.",
                request.stack_name
            )))
        }
        Err(e) => Err(e.into()),
    }
}

/// The request's newest deployment (its current change set), in the caller's transaction.
pub async fn current(tx: &mut Tx, request_id: &str) -> Result<Option<Deployment>, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{SELECT} where request_id = $1 order by created_at desc limit 1"
    )))
    .bind(request_id.to_string())
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Ends a job that was superseded by a fresh change set (`why`), only while `epoch` owns it.
pub async fn supersede(tx: &mut Tx, id: &str, epoch: i64, why: &str) -> Result<(), StoreError> {
    finish(tx, id, epoch, DeploymentStatus::Cancelled, Some(why), &[]).await
}

/// Stores stack events not seen before.
pub async fn record_events(
    db: &Db,
    deployment_id: &str,
    events: &[Event],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let mut tx = db.begin().await?;
    for e in events {
        let key = format!("{}|{}|{}", e.at, e.logical_id, e.status);
        sqlx::query(
            "insert into deployment_events (deployment_id, event_key, at, logical_id, \
             resource_type, status, reason) values ($1, $2, $3, $4, $5, $6, $7) \
             on conflict (deployment_id, event_key) do nothing",
        )
        .bind(deployment_id.to_string())
        .bind(key)
        .bind(e.at)
        .bind(e.logical_id.clone())
        .bind(e.resource_type.clone())
        .bind(e.status.clone())
        .bind(e.reason.clone())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub async fn events(db: &Db, deployment_id: &str) -> Result<Vec<Event>, StoreError> {
    let rows = sqlx::query(
        "select at, logical_id, resource_type, status, reason from deployment_events \
         where deployment_id = $1 order by at, id",
    )
    .bind(deployment_id.to_string())
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Event {
                at: r.try_get(0)?,
                logical_id: r.try_get(1)?,
                resource_type: r.try_get(2)?,
                status: r.try_get(3)?,
                reason: r.try_get(4)?,
            })
        })
        .collect()
}

/// A request's deployments, newest first.
pub async fn for_request(db: &Db, request_id: &str) -> Result<Vec<Deployment>, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{SELECT} where request_id = $1 order by created_at desc"
    )))
    .bind(request_id.to_string())
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

pub async fn get(db: &Db, id: &str) -> Result<Option<Deployment>, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} where id = $1")))
        .bind(id.to_string())
        .fetch_optional(db.pool())
        .await?;
    row.as_ref().map(from_row).transpose()
}
