//! Audit SQL: append inside the caller's transaction, read, verify.

use sqlx::Row;

use super::{Entry, GENESIS_HASH, Record, Verification, verify_records};
use crate::db::{Db, Tx, now_ms};

/// A fixed key for the PostgreSQL advisory lock that serialises chain appends across replicas.
const CHAIN_LOCK_KEY: i64 = 0x5354_4b47_4155_4454; // "STKGAUDT"

/// Appends `entry` as the next record of the chain, in the caller's transaction, and returns it.
pub async fn append(tx: &mut Tx, entry: Entry) -> Result<Record, sqlx::Error> {
    if tx.backend_name() == "PostgreSQL" {
        // One writer at a time across every replica; released at commit or rollback.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(CHAIN_LOCK_KEY)
            .execute(&mut **tx)
            .await?;
    }
    let head = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut **tx)
        .await?;
    let (seq, prev_hash) = match head {
        Some(row) => (row.try_get::<i64, _>(0)? + 1, row.try_get::<String, _>(1)?),
        None => (1, GENESIS_HASH.to_string()),
    };
    let mut record = Record {
        seq,
        at: now_ms(),
        actor_id: entry.actor.id,
        actor_name: entry.actor.name,
        action: entry.action.to_string(),
        object_type: entry.object_type.to_string(),
        object_id: entry.object_id,
        outcome: entry.outcome.to_string(),
        detail: entry.detail,
        correlation_id: entry.correlation_id,
        source_ip: entry.source_ip,
        prev_hash,
        hash: String::new(),
    };
    record.hash = record.compute_hash();
    sqlx::query(
        "insert into audit_log (seq, at, actor_id, actor_name, action, object_type, object_id, \
         outcome, detail_json, correlation_id, source_ip, prev_hash, hash) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(record.seq)
    .bind(record.at)
    .bind(record.actor_id.clone())
    .bind(record.actor_name.clone())
    .bind(record.action.clone())
    .bind(record.object_type.clone())
    .bind(record.object_id.clone())
    .bind(record.outcome.clone())
    .bind(record.detail.to_string())
    .bind(record.correlation_id.clone())
    .bind(record.source_ip.clone())
    .bind(record.prev_hash.clone())
    .bind(record.hash.clone())
    .execute(&mut **tx)
    .await?;
    Ok(record)
}

/// Appends one record in a transaction of its own (for events with no other state change,
/// such as a failed login or a refused approval).
pub async fn append_alone(db: &Db, entry: Entry) -> Result<Record, sqlx::Error> {
    let mut tx = db.begin().await?;
    let record = append(&mut tx, entry).await?;
    tx.commit().await?;
    Ok(record)
}

const SELECT: &str = "select seq, at, actor_id, actor_name, action, object_type, object_id, \
    outcome, detail_json, correlation_id, source_ip, prev_hash, hash from audit_log";

fn from_row(row: &sqlx::any::AnyRow) -> Result<Record, sqlx::Error> {
    let detail: String = row.try_get(8)?;
    Ok(Record {
        seq: row.try_get(0)?,
        at: row.try_get(1)?,
        actor_id: row.try_get(2)?,
        actor_name: row.try_get(3)?,
        action: row.try_get(4)?,
        object_type: row.try_get(5)?,
        object_id: row.try_get(6)?,
        outcome: row.try_get(7)?,
        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
        correlation_id: row.try_get(9)?,
        source_ip: row.try_get(10)?,
        prev_hash: row.try_get(11)?,
        hash: row.try_get(12)?,
    })
}

/// Records about one object, oldest first.
pub async fn for_object(
    db: &Db,
    object_type: &str,
    object_id: &str,
) -> Result<Vec<Record>, sqlx::Error> {
    let sql = sqlx::AssertSqlSafe(format!(
        "{SELECT} where object_type = $1 and object_id = $2 order by seq"
    ));
    let rows = sqlx::query(sql)
        .bind(object_type.to_string())
        .bind(object_id.to_string())
        .fetch_all(db.pool())
        .await?;
    rows.iter().map(from_row).collect()
}

/// The newest records, newest first, optionally only one action prefix (e.g. `request.`).
pub async fn recent(db: &Db, limit: i64, action_prefix: &str) -> Result<Vec<Record>, sqlx::Error> {
    let sql = sqlx::AssertSqlSafe(format!(
        "{SELECT} where action like $1 order by seq desc limit $2"
    ));
    let rows = sqlx::query(sql)
        .bind(format!("{action_prefix}%"))
        .bind(limit)
        .fetch_all(db.pool())
        .await?;
    rows.iter().map(from_row).collect()
}

/// Every record, oldest first.
pub async fn all(db: &Db) -> Result<Vec<Record>, sqlx::Error> {
    let sql = sqlx::AssertSqlSafe(format!("{SELECT} order by seq"));
    let rows = sqlx::query(sql).fetch_all(db.pool()).await?;
    rows.iter().map(from_row).collect()
}

/// Walks the whole chain.
pub async fn verify(db: &Db) -> Result<Verification, sqlx::Error> {
    Ok(verify_records(&all(db).await?))
}
