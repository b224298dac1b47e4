//! Notification SQL: the cursor over the audit log, queuing, claiming and recording deliveries.
//!
//! Several replicas may run a notifier on one PostgreSQL database. The cursor moves by
//! compare-and-set, and `(audit_seq, team)` is unique, so a record is queued once. A delivery is
//! claimed by pushing its `next_attempt_at` out by a lease and counting the attempt (under `FOR
//! UPDATE SKIP LOCKED` on PostgreSQL); the outcome is written only while `attempts` is still the
//! claimed count, so a sender whose lease ran out cannot overwrite the next one's result.

use std::time::Duration;

use sqlx::Row;

use super::Event;
use super::message::Subject;
use crate::db::{Backend, Db, Sql, StoreError, db_now};

/// A notification to queue.
#[derive(Debug, Clone)]
pub struct Fresh {
    pub audit_seq: i64,
    pub team: String,
    pub request_id: String,
    pub event: Event,
    pub payload: String,
}

/// A claimed delivery: `attempts` already counts the try about to be made.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: String,
    pub team: String,
    pub event: String,
    pub payload: String,
    pub attempts: i64,
}

/// The cursor, when audit records after it exist (one cheap read, no write lock).
pub async fn behind(db: &Db) -> Result<Option<i64>, StoreError> {
    let row = sqlx::query(
        "select c.audit_seq, coalesce((select max(seq) from audit_log), 0) \
         from notify_cursor c where c.id = 1",
    )
    .fetch_optional(db.pool())
    .await?
    .ok_or_else(|| StoreError::corrupt("notification cursor (missing)"))?;
    let (cursor, head): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
    Ok((head > cursor).then_some(cursor))
}

/// Moves the cursor from `from` to `to` and queues `fresh`, in one transaction. `None` when the
/// cursor had already moved (another replica did this work); otherwise how many were queued.
pub async fn enqueue(
    db: &Db,
    from: i64,
    to: i64,
    fresh: &[Fresh],
) -> Result<Option<usize>, StoreError> {
    let mut tx = db.begin().await?;
    let moved =
        sqlx::query("update notify_cursor set audit_seq = $1 where id = 1 and audit_seq = $2")
            .bind(to)
            .bind(from)
            .execute(&mut *tx)
            .await?;
    if moved.rows_affected() != 1 {
        tx.rollback().await?;
        return Ok(None);
    }
    let now = db_now(&mut tx).await?;
    let mut queued = 0;
    for n in fresh {
        let done = sqlx::query(
            "insert into notifications (id, audit_seq, team, request_id, event, payload_json, \
             status, attempts, next_attempt_at, created_at) \
             values ($1, $2, $3, $4, $5, $6, 'queued', 0, $7, $8) \
             on conflict (audit_seq, team) do nothing",
        )
        .bind(uuid::Uuid::new_v4().simple().to_string())
        .bind(n.audit_seq)
        .bind(n.team.clone())
        .bind(n.request_id.clone())
        .bind(n.event.as_str())
        .bind(n.payload.clone())
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        queued += done.rows_affected() as usize;
    }
    tx.commit().await?;
    Ok(Some(queued))
}

/// The request a notification is about (`None` if it does not exist).
pub async fn subject(db: &Db, request_id: &str) -> Result<Option<Subject>, StoreError> {
    let row = sqlx::query(
        "select r.id, r.number, r.title, r.team, coalesce(u.name, u.subject), r.env_class, \
         r.env_name, a.name, r.region, r.risk_flags_json \
         from service_requests r join users u on u.id = r.requester_id \
         join accounts a on a.id = r.account_id where r.id = $1",
    )
    .bind(request_id.to_string())
    .fetch_optional(db.pool())
    .await?;
    let Some(row) = row else { return Ok(None) };
    let flags: String = row.try_get(9)?;
    Ok(Some(Subject {
        id: row.try_get(0)?,
        number: row.try_get(1)?,
        title: row.try_get(2)?,
        team: row.try_get(3)?,
        requester_name: row.try_get(4)?,
        env_class: row.try_get(5)?,
        env_name: row.try_get(6)?,
        account_name: row.try_get(7)?,
        region: row.try_get(8)?,
        risk_flags: serde_json::from_str(&flags)
            .map_err(|e| StoreError::unreadable("request's risk flags", e))?,
    }))
}

/// The comment of the rejecting decision recorded as audit record `seq`, if that is one.
pub async fn rejection_comment(db: &Db, seq: i64) -> Result<Option<String>, StoreError> {
    let row = sqlx::query(
        "select detail_json from audit_log where seq = $1 and action = 'approval.rejected'",
    )
    .bind(seq)
    .fetch_optional(db.pool())
    .await?;
    let Some(row) = row else { return Ok(None) };
    let detail: String = row.try_get(0)?;
    let detail: serde_json::Value = serde_json::from_str(&detail)
        .map_err(|e| StoreError::unreadable("an audit record's detail", e))?;
    Ok(detail
        .get("comment")
        .and_then(serde_json::Value::as_str)
        .map(str::to_string))
}

/// Claims up to `limit` due deliveries for `lease_ms`.
pub async fn claim(db: &Db, limit: i64, lease_ms: i64) -> Result<Vec<Claimed>, StoreError> {
    // A read first, by this replica's clock: an idle pass takes no write lock (on SQLite, every
    // write transaction would also empty the read cache of the busiest pages).
    let due = sqlx::query(
        "select 1 from notifications where status = 'queued' and next_attempt_at <= $1 limit 1",
    )
    .bind(crate::db::now_ms())
    .fetch_optional(db.pool())
    .await?;
    if due.is_none() {
        return Ok(Vec::new());
    }
    let mut tx = db.begin().await?;
    let now = db_now(&mut tx).await?;
    let lock = match db.backend() {
        Backend::Postgres => " for update skip locked",
        Backend::Sqlite => "",
    };
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "select id, team, event, payload_json, attempts from notifications \
         where status = 'queued' and next_attempt_at <= $1 \
         order by next_attempt_at limit {}{lock}",
        limit.clamp(1, 100)
    )))
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    let mut claimed = Vec::with_capacity(rows.len());
    for row in rows {
        let mut c = Claimed {
            id: row.try_get(0)?,
            team: row.try_get(1)?,
            event: row.try_get(2)?,
            payload: row.try_get(3)?,
            attempts: row.try_get(4)?,
        };
        let done = sqlx::query(
            "update notifications set attempts = attempts + 1, next_attempt_at = $1 \
             where id = $2 and attempts = $3 and status = 'queued'",
        )
        .bind(now + lease_ms)
        .bind(c.id.clone())
        .bind(c.attempts)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 1 {
            c.attempts += 1;
            claimed.push(c);
        }
    }
    tx.commit().await?;
    Ok(claimed)
}

/// What a delivery's outcome changes.
enum Outcome<'a> {
    Sent,
    Retry { delay_ms: i64, why: &'a str },
    Failed { why: &'a str },
}

/// Records an outcome, only while the row is still queued at the claimed attempt (fencing).
async fn record(db: &Db, row: &Claimed, outcome: Outcome<'_>) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    let now = db_now(&mut tx).await?;
    let mut sql = Sql::new("update notifications set ");
    match outcome {
        Outcome::Sent => sql.push("status = 'sent', sent_at = ").int(now),
        Outcome::Retry { delay_ms, why } => sql
            .push("next_attempt_at = ")
            .int(now.saturating_add(delay_ms))
            .push(", last_error = ")
            .text(why),
        Outcome::Failed { why } => sql.push("status = 'failed', last_error = ").text(why),
    };
    sql.push(" where id = ")
        .text(&row.id)
        .push(" and attempts = ")
        .int(row.attempts)
        .push(" and status = 'queued'");
    sql.query().execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

/// The receiver took it (the last error, if any, stays as a record of the earlier tries).
pub async fn sent(db: &Db, row: &Claimed) -> Result<(), StoreError> {
    record(db, row, Outcome::Sent).await
}

/// Try again after `delay`; `why` is kept as the last error.
pub async fn retry(db: &Db, row: &Claimed, delay: Duration, why: &str) -> Result<(), StoreError> {
    let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 4);
    record(db, row, Outcome::Retry { delay_ms, why }).await
}

/// No more tries: the notification failed for `why`.
pub async fn give_up(db: &Db, row: &Claimed, why: &str) -> Result<(), StoreError> {
    record(db, row, Outcome::Failed { why }).await
}
