//! Audit SQL: append inside the caller's transaction, read, verify.

use sqlx::Row;

use super::{Actor, Entry, GENESIS_HASH, Record, Verification, Walker};
use crate::db::{Db, Sql, Tx, now_ms};

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

/// Records read at a time when walking or exporting the whole log.
pub const CHUNK: i64 = 2_000;

/// The `[from, to)` range of action names starting with `prefix` (`to` is `prefix` with its last
/// character advanced), so a prefix filter is an index range, not a scan with `LIKE`.
fn prefix_range(prefix: &str) -> Option<(String, String)> {
    let mut chars: Vec<char> = prefix.chars().collect();
    let last = chars.pop()?;
    let next = char::from_u32(last as u32 + 1)?;
    chars.push(next);
    Some((prefix.to_string(), chars.into_iter().collect()))
}

/// One page of records, newest first: those before `before` (a sequence number), optionally
/// only actions starting with `prefix`. Returns the page and where the next one starts.
pub async fn page(
    db: &Db,
    before: Option<i64>,
    prefix: &str,
    limit: i64,
) -> Result<(Vec<Record>, Option<i64>), sqlx::Error> {
    let limit = limit.clamp(1, 200);
    let mut sql = Sql::new(SELECT);
    sql.push(" where seq < ").int(before.unwrap_or(i64::MAX));
    if let Some((from, to)) = prefix_range(prefix) {
        sql.push(" and action >= ").text(&from);
        sql.push(" and action < ").text(&to);
    }
    sql.push(&format!(" order by seq desc limit {}", limit + 1));
    let rows = sql.query().fetch_all(db.pool()).await?;
    let mut records = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    let next = if records.len() as i64 > limit {
        records.truncate(limit as usize);
        records.last().map(|r| r.seq)
    } else {
        None
    };
    Ok((records, next))
}

/// Records after `after` (a sequence number), oldest first, at most `limit`.
pub async fn after(db: &Db, after: i64, limit: i64) -> Result<Vec<Record>, sqlx::Error> {
    let sql = sqlx::AssertSqlSafe(format!(
        "{SELECT} where seq > $1 order by seq limit {}",
        limit.clamp(1, CHUNK)
    ));
    let rows = sqlx::query(sql).bind(after).fetch_all(db.pool()).await?;
    rows.iter().map(from_row).collect()
}

/// Walks the chain from `walker`'s start to the end, [`CHUNK`] records at a time.
pub async fn walk(db: &Db, mut walker: Walker, from_seq: i64) -> Result<Verification, sqlx::Error> {
    let mut at = from_seq;
    loop {
        let chunk = after(db, at, CHUNK).await?;
        let Some(last) = chunk.last() else { break };
        at = last.seq;
        walker.feed(&chunk);
        if walker.is_broken() || (chunk.len() as i64) < CHUNK {
            break;
        }
    }
    Ok(walker.finish())
}

/// Walks the whole chain from the genesis.
pub async fn verify(db: &Db) -> Result<Verification, sqlx::Error> {
    walk(db, Walker::from_genesis(), 0).await
}

/// A verification as recorded: how far the chain was verified, when and by whom.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verified {
    pub verified_at: i64,
    pub verified_up_to: i64,
    pub head_hash: String,
    pub records: i64,
    pub broken_at: Option<i64>,
    pub reason: Option<String>,
    pub actor_name: String,
}

/// How many team notifications were given up (the notifier's outbox rows that failed): the
/// audit page shows it, since those teams did not hear of a change the log records.
pub async fn undelivered_notifications(db: &Db) -> Result<i64, sqlx::Error> {
    sqlx::query("select count(*) from notifications where status = 'failed'")
        .fetch_one(db.pool())
        .await?
        .try_get(0)
}

/// The most recent recorded verification.
pub async fn last_verification(db: &Db) -> Result<Option<Verified>, sqlx::Error> {
    let row = sqlx::query(
        "select verified_at, verified_up_to, head_hash, records, broken_at, reason, actor_name \
         from audit_verifications order by id desc limit 1",
    )
    .fetch_optional(db.pool())
    .await?;
    row.map(|r| {
        Ok(Verified {
            verified_at: r.try_get(0)?,
            verified_up_to: r.try_get(1)?,
            head_hash: r.try_get(2)?,
            records: r.try_get(3)?,
            broken_at: r.try_get(4)?,
            reason: r.try_get(5)?,
            actor_name: r.try_get(6)?,
        })
    })
    .transpose()
}

/// Verifies the chain (`whole`: from the genesis; otherwise only the records after the last
/// intact verification, linked to its head) and records the result with its audit record, so
/// that pages show the last verification instead of walking the log on every view.
pub async fn verify_and_record(
    db: &Db,
    actor: &Actor,
    whole: bool,
) -> Result<Verification, sqlx::Error> {
    let start = match last_verification(db).await? {
        Some(v) if !whole && v.broken_at.is_none() => Some(v),
        _ => None,
    };
    let v = match &start {
        Some(s) => {
            walk(
                db,
                Walker::after(s.verified_up_to, s.head_hash.clone()),
                s.verified_up_to,
            )
            .await?
        }
        None => verify(db).await?,
    };
    let mut tx = db.begin().await?;
    sqlx::query(
        "insert into audit_verifications (verified_at, verified_up_to, head_hash, records, \
         broken_at, reason, actor_name) values ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(now_ms())
    .bind(v.verified_up_to)
    .bind(v.head_hash.clone())
    .bind(v.records + start.as_ref().map_or(0, |s| s.records))
    .bind(v.broken_at.as_ref().map(|b| b.0))
    .bind(v.broken_at.as_ref().map(|b| b.1.clone()))
    .bind(actor.name.clone())
    .execute(&mut *tx)
    .await?;
    let entry = Entry::new(actor, "audit.verified", "audit_log", "-").detail(serde_json::json!({
        "scope": if whole || start.is_none() { "whole" } else { "new records" },
        "verified_up_to": v.verified_up_to, "broken_at": v.broken_at,
    }));
    append(&mut tx, entry).await?;
    tx.commit().await?;
    Ok(v)
}

/// A request's records, oldest first, at most `limit` (the evidence pack's cap).
pub async fn for_request(
    db: &Db,
    request_id: &str,
    limit: i64,
) -> Result<Vec<Record>, sqlx::Error> {
    let sql = sqlx::AssertSqlSafe(format!(
        "{SELECT} where object_type = 'request' and object_id = $1 order by seq limit {}",
        limit.clamp(1, 10_000)
    ));
    let rows = sqlx::query(sql)
        .bind(request_id.to_string())
        .fetch_all(db.pool())
        .await?;
    rows.iter().map(from_row).collect()
}

/// For a request's first `limit` records, the first checkpoint at or after each: those that
/// cover them, oldest first.
pub async fn covering_checkpoints(
    db: &Db,
    request_id: &str,
    limit: i64,
) -> Result<Vec<super::checkpoint::Checkpoint>, sqlx::Error> {
    let sql = sqlx::AssertSqlSafe(format!(
        "select c.seq, c.head_hash, c.signed_at, c.key_id, c.signature from audit_checkpoints c \
         where c.seq in (select (select min(c2.seq) from audit_checkpoints c2 where c2.seq >= l.seq) \
         from (select seq from audit_log where object_type = 'request' and object_id = $1 \
         order by seq limit {}) l) order by c.seq",
        limit.clamp(1, 10_000)
    ));
    let rows = sqlx::query(sql)
        .bind(request_id.to_string())
        .fetch_all(db.pool())
        .await?;
    rows.iter().map(super::checkpoint::from_row).collect()
}

/// The records in the given inclusive `seq` ranges, oldest first, at most `limit`.
pub async fn ranges(
    db: &Db,
    ranges: &[(i64, i64)],
    limit: i64,
) -> Result<Vec<Record>, sqlx::Error> {
    if ranges.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = Sql::new(SELECT);
    for (i, (from, to)) in ranges.iter().enumerate() {
        sql.push(if i == 0 {
            " where (seq >= "
        } else {
            " or (seq >= "
        });
        sql.int(*from).push(" and seq <= ").int(*to).push(")");
    }
    sql.push(&format!(" order by seq limit {}", limit.clamp(1, 100_000)));
    let rows = sql.query().fetch_all(db.pool()).await?;
    rows.iter().map(from_row).collect()
}
