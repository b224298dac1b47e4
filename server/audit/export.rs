//! Export of the audit log and its checkpoints to an S3 bucket with Object Lock in compliance
//! mode (bar D5), so that a copy exists that nobody with the database — or the bucket's
//! account — can rewrite or delete before its retention ends.
//!
//! Only records covered by a signed checkpoint are exported (they were verified before it was
//! signed). Objects are named by their seq range, `audit/<from>-<to>.jsonl` (twelve digits
//! each), where a range runs from the record after the last acknowledged one to the first
//! checkpoint at or after it, at most [`BATCH`] records: once a checkpoint exists that range never
//! changes, so an export repeated after a crash (object written, acknowledgement lost) rewrites
//! the same object with the same bytes — no gaps, no overlaps. Checkpoints go to
//! `checkpoints/<seq>.json`. Progress is stored per stream in `audit_exports`, advanced by
//! compare-and-set so replicas exporting at once never move it backwards.

use anyhow::Context;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ChecksumAlgorithm;
use sqlx::Row;

use super::{checkpoint, store};
use crate::db::{Db, now_ms};

/// Records in one exported object, at most.
pub const BATCH: i64 = 1_000;

/// The object holding records `from..=to`.
pub fn records_key(from: i64, to: i64) -> String {
    format!("audit/{from:012}-{to:012}.jsonl")
}

/// The object holding the checkpoint at `seq`.
pub fn checkpoint_key(seq: i64) -> String {
    format!("checkpoints/{seq:012}.json")
}

/// Where the export of `stream` stands: the last seq acknowledged.
pub async fn acked(db: &Db, stream: &str) -> Result<i64, sqlx::Error> {
    let row = sqlx::query("select acked_seq from audit_exports where stream = $1")
        .bind(stream.to_string())
        .fetch_optional(db.pool())
        .await?;
    row.map_or(Ok(0), |r| r.try_get(0))
}

/// Moves `stream` from `from` to `to`; a no-op if another replica moved it meanwhile.
async fn ack(db: &Db, stream: &str, from: i64, to: i64) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query(
        "insert into audit_exports (stream, acked_seq, updated_at) values ($1, 0, $2) \
         on conflict (stream) do nothing",
    )
    .bind(stream.to_string())
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "update audit_exports set acked_seq = $1, updated_at = $2 \
         where stream = $3 and acked_seq = $4",
    )
    .bind(to)
    .bind(now_ms())
    .bind(stream.to_string())
    .bind(from)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// The exporter: a bucket and a client for it.
#[derive(Clone, Debug)]
pub struct Exporter {
    pub client: aws_sdk_s3::Client,
    pub bucket: String,
}

/// What one pass wrote.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Exported {
    pub objects: usize,
    pub records_acked: i64,
    pub checkpoints_acked: i64,
}

impl Exporter {
    /// A client for `endpoint_url` (the emulator in tests; real S3 when unset).
    pub async fn new(bucket: &str, endpoint_url: Option<&str>, region: Option<&str>) -> Exporter {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(url) = endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some(r) = region {
            loader = loader.region(aws_config::Region::new(r.to_string()));
        }
        let shared = loader.load().await;
        let config = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(endpoint_url.is_some())
            .build();
        Exporter {
            client: aws_sdk_s3::Client::from_conf(config),
            bucket: bucket.to_string(),
        }
    }

    async fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> anyhow::Result<()> {
        // Object Lock buckets take only uploads with an integrity checksum.
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .body(ByteStream::from(body))
            .send()
            .await
            .with_context(|| format!("writing s3://{}/{key}", self.bucket))?;
        Ok(())
    }

    /// Exports what is covered by checkpoints and not yet acknowledged, at most `max_objects`
    /// objects in this pass.
    pub async fn export_once(&self, db: &Db, max_objects: usize) -> anyhow::Result<Exported> {
        let mut out = Exported::default();
        let mut from = acked(db, "records").await?;
        while out.objects < max_objects {
            let Some(cp) = checkpoint::after(db, from, 1).await?.into_iter().next() else {
                break;
            };
            let to = cp.seq.min(from + BATCH);
            let records = store::after(db, from, to - from).await?;
            if records.len() as i64 != to - from
                || records.iter().zip(from + 1..).any(|(r, seq)| r.seq != seq)
            {
                anyhow::bail!(
                    "the audit log has a gap between #{} and #{to}: not exported (run audit-verify)",
                    from + 1
                );
            }
            let mut body = Vec::new();
            for r in &records {
                serde_json::to_writer(&mut body, r)?;
                body.push(b'\n');
            }
            self.put(&records_key(from + 1, to), body, "application/x-ndjson")
                .await?;
            ack(db, "records", from, to).await?;
            out.objects += 1;
            out.records_acked = to;
            from = to;
        }
        let mut cp_from = acked(db, "checkpoints").await?;
        for cp in checkpoint::after(db, cp_from, 100).await? {
            if out.objects >= max_objects {
                break;
            }
            self.put(
                &checkpoint_key(cp.seq),
                serde_json::to_vec(&cp)?,
                "application/json",
            )
            .await?;
            ack(db, "checkpoints", cp_from, cp.seq).await?;
            out.objects += 1;
            out.checkpoints_acked = cp.seq;
            cp_from = cp.seq;
        }
        Ok(out)
    }
}
