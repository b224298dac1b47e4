//! Signed checkpoints (bar D4): every few minutes the chain's head (its last `seq` and hash) is
//! signed with the audit key, after the records since the last checkpoint are verified, so a
//! checkpoint never signs a broken chain. A checkpoint is what catches a truncated tail or a
//! whole chain recomputed by someone with the database: hashes alone cannot.

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::keys::{AuditKey, PublicKey};
use super::store::walk;
use super::{GENESIS_HASH, Walker};
use crate::db::{Backend, Db, now_ms};

/// A fixed key for the PostgreSQL advisory lock under which one replica writes a checkpoint.
const CHECKPOINT_LOCK_KEY: i64 = 0x5354_4b47_4350_4e54; // "STKGCPNT"

/// A signed chain head.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Checkpoint {
    pub seq: i64,
    pub head_hash: String,
    pub signed_at: i64,
    pub key_id: String,
    /// Ed25519 signature (base64) of [`Checkpoint::message`].
    pub signature: String,
}

impl Checkpoint {
    /// The bytes signed: a fixed label and the fields, one a line.
    pub fn message(seq: i64, head_hash: &str, signed_at: i64, key_id: &str) -> Vec<u8> {
        format!("stackgate-audit-checkpoint/1\n{seq}\n{head_hash}\n{signed_at}\n{key_id}\n")
            .into_bytes()
    }

    pub fn sign(key: &AuditKey, seq: i64, head_hash: &str, signed_at: i64) -> Checkpoint {
        let key_id = key.key_id();
        let signature = key.sign(&Checkpoint::message(seq, head_hash, signed_at, &key_id));
        Checkpoint {
            seq,
            head_hash: head_hash.to_string(),
            signed_at,
            key_id,
            signature,
        }
    }

    /// Whether `key` signed exactly this checkpoint.
    pub fn verifies(&self, key: &PublicKey) -> bool {
        key.key_id() == self.key_id
            && key.verifies(
                &Checkpoint::message(self.seq, &self.head_hash, self.signed_at, &self.key_id),
                &self.signature,
            )
    }
}

const SELECT: &str = "select seq, head_hash, signed_at, key_id, signature from audit_checkpoints";

pub(crate) fn from_row(row: &sqlx::any::AnyRow) -> Result<Checkpoint, sqlx::Error> {
    Ok(Checkpoint {
        seq: row.try_get(0)?,
        head_hash: row.try_get(1)?,
        signed_at: row.try_get(2)?,
        key_id: row.try_get(3)?,
        signature: row.try_get(4)?,
    })
}

/// The newest checkpoint.
pub async fn latest(db: &Db) -> Result<Option<Checkpoint>, sqlx::Error> {
    let sql = sqlx::AssertSqlSafe(format!("{SELECT} order by seq desc limit 1"));
    let row = sqlx::query(sql).fetch_optional(db.pool()).await?;
    row.as_ref().map(from_row).transpose()
}

/// Checkpoints after `after` (a seq), oldest first, at most `limit`.
pub async fn after(db: &Db, after: i64, limit: i64) -> Result<Vec<Checkpoint>, sqlx::Error> {
    let sql = sqlx::AssertSqlSafe(format!(
        "{SELECT} where seq > $1 order by seq limit {}",
        limit.clamp(1, 10_000)
    ));
    let rows = sqlx::query(sql).bind(after).fetch_all(db.pool()).await?;
    rows.iter().map(from_row).collect()
}

/// What one checkpoint pass did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Signed the head at this seq, after verifying this many records.
    Signed { seq: i64, verified: i64 },
    /// Nothing new since the last checkpoint (or another replica just signed).
    UpToDate,
    /// The chain (or the last checkpoint) does not verify: nothing signed.
    Refused(String),
}

/// Verifies the records since the last checkpoint (all of them if there is none, or it was
/// signed by another key) and signs the head reached. On PostgreSQL one replica at a time writes.
pub async fn checkpoint_once(db: &Db, key: &AuditKey) -> anyhow::Result<Outcome> {
    let last = latest(db).await.context("reading the last checkpoint")?;
    let public = key.public();
    let start = match &last {
        Some(c) if c.key_id == public.key_id() => {
            if !c.verifies(&public) {
                return Ok(Outcome::Refused(format!(
                    "the last checkpoint (seq {}) does not carry a valid signature",
                    c.seq
                )));
            }
            (c.seq, c.head_hash.clone())
        }
        // A new key (or none yet) starts from the genesis.
        _ => (0, GENESIS_HASH.to_string()),
    };
    let v = walk(db, Walker::after(start.0, start.1.clone()), start.0)
        .await
        .context("verifying the audit chain before a checkpoint")?;
    if let Some((seq, why)) = v.broken_at {
        return Ok(Outcome::Refused(format!("audit record seq {seq}: {why}")));
    }
    if v.verified_up_to <= last.as_ref().map_or(0, |c| c.seq) {
        return Ok(Outcome::UpToDate);
    }
    let cp = Checkpoint::sign(key, v.verified_up_to, &v.head_hash, now_ms());
    let mut tx = db.begin().await?;
    if db.backend() == Backend::Postgres {
        let got: bool = sqlx::query("select pg_try_advisory_xact_lock($1)")
            .bind(CHECKPOINT_LOCK_KEY)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        if !got {
            return Ok(Outcome::UpToDate);
        }
    }
    // Another replica may have signed a later head meanwhile: checkpoints only move forward.
    let newest: Option<i64> = sqlx::query("select max(seq) from audit_checkpoints")
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
    if newest.is_some_and(|n| n >= cp.seq) {
        return Ok(Outcome::UpToDate);
    }
    sqlx::query(
        "insert into audit_checkpoints (seq, head_hash, signed_at, key_id, signature) \
         values ($1, $2, $3, $4, $5) on conflict (seq) do nothing",
    )
    .bind(cp.seq)
    .bind(cp.head_hash.clone())
    .bind(cp.signed_at)
    .bind(cp.key_id.clone())
    .bind(cp.signature.clone())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Outcome::Signed {
        seq: cp.seq,
        verified: v.records,
    })
}

/// The periodic task: a checkpoint at start, then every `every`, and a last one at stop; each
/// followed by the export of what it covers, if a bucket is configured.
pub async fn run(
    db: Db,
    key: AuditKey,
    every: std::time::Duration,
    exporter: Option<super::export::Exporter>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = ticks.tick() => false,
            _ = stop.changed() => true,
        };
        match checkpoint_once(&db, &key).await {
            Ok(Outcome::Signed { seq, verified }) => tracing::info!(
                audit.seq = seq,
                audit.verified = verified,
                "Signed an audit checkpoint."
            ),
            Ok(Outcome::UpToDate) => {}
            Ok(Outcome::Refused(why)) => tracing::error!(
                reason = why,
                "The audit chain does not verify; no checkpoint was signed."
            ),
            Err(e) => tracing::warn!(
                error = format!("{e:#}"),
                "Could not write an audit checkpoint."
            ),
        }
        if let Some(x) = &exporter {
            match x.export_once(&db, 100).await {
                Ok(done) if done.objects > 0 => tracing::info!(
                    audit.exported_up_to = done.records_acked,
                    objects = done.objects,
                    "Exported audit records to the Object Lock bucket."
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(
                    error = format!("{e:#}"),
                    "Could not export the audit log; the next pass resumes from the last \
                     acknowledged record."
                ),
            }
        }
        if stopping {
            return;
        }
    }
}
