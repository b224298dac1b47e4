//! The evidence pack of one request (bar D4, issue 8): everything an auditor needs to show what
//! was asked, what was reviewed and approved, what was deployed, and that the audit records of it
//! are those of the signed chain — as one JSON document, signed, verifiable offline with the
//! public key alone (`stackgate audit-verify --pack`, see [`super::pack_verify`]).
//!
//! The audit part carries the request's records and, for each, a proof: every record from it
//! up to the first signed checkpoint after it, so a verifier can recompute each hash and link
//! and end on the signed head. Every part is read with one bounded query.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::checkpoint::Checkpoint;
use super::keys::AuditKey;
use super::{Actor, Record, store};
use crate::approvals;
use crate::db::{Db, StoreError, now_ms};
use crate::deployments::{self, change_set::ChangeSetSummary};
use crate::requests::ServiceRequest;

/// The pack's format name; a verifier refuses others.
pub const FORMAT: &str = "stackgate-evidence/1";
/// Audit records of the request in a pack, at most.
pub const MAX_RECORDS: i64 = 1_000;
/// Records of one proof segment (a request record up to its checkpoint), at most.
pub const MAX_SEGMENT: i64 = 5_000;
/// Records in all proof segments together, at most.
pub const MAX_PROOF: i64 = 20_000;
/// Deployment events in a pack, at most.
pub const MAX_EVENTS: i64 = 5_000;

/// JSON with object keys sorted at every level and no whitespace: the bytes that are signed.
/// (serde_json keeps insertion order in this build, so the order is imposed here.)
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                if let Some(item) = map.get(k) {
                    write_canonical(item, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// The bytes a pack's signature covers: the pack without its `signature` member, canonical.
pub fn signed_bytes(pack: &Value) -> Vec<u8> {
    let mut unsigned = pack.clone();
    if let Some(map) = unsigned.as_object_mut() {
        map.remove("signature");
    }
    canonical_json(&unsigned).into_bytes()
}

/// The request's deployment events, oldest first, grouped by deployment.
async fn events(db: &Db, request_id: &str) -> Result<BTreeMap<String, Vec<Value>>, StoreError> {
    use sqlx::Row;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "select e.deployment_id, e.at, e.logical_id, e.resource_type, e.status, e.reason \
         from deployment_events e join deployments d on d.id = e.deployment_id \
         where d.request_id = $1 order by e.at, e.id limit {MAX_EVENTS}"
    )))
    .bind(request_id.to_string())
    .fetch_all(db.pool())
    .await?;
    let mut by_deployment: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for r in &rows {
        by_deployment.entry(r.try_get(0)?).or_default().push(json!({
            "at": r.try_get::<i64, _>(1)?, "logical_id": r.try_get::<String, _>(2)?,
            "resource_type": r.try_get::<String, _>(3)?, "status": r.try_get::<String, _>(4)?,
            "reason": r.try_get::<Option<String>, _>(5)?,
        }));
    }
    Ok(by_deployment)
}

/// The audit part: the request's records, and proof segments linking them to signed checkpoints.
async fn audit_part(db: &Db, request_id: &str) -> Result<Value, StoreError> {
    let mut records = store::for_request(db, request_id, MAX_RECORDS + 1).await?;
    let truncated = records.len() as i64 > MAX_RECORDS;
    records.truncate(MAX_RECORDS as usize);
    let checkpoints = store::covering_checkpoints(db, request_id, MAX_RECORDS).await?;
    // Each record goes to the first checkpoint at or after it; a segment runs from the first
    // record of a checkpoint's group to the checkpoint.
    let mut groups: BTreeMap<i64, i64> = BTreeMap::new();
    let mut unproven = Vec::new();
    for r in &records {
        match checkpoints.iter().find(|c| c.seq >= r.seq) {
            Some(c) => {
                groups.entry(c.seq).or_insert(r.seq);
            }
            None => unproven
                .push(json!({ "seq": r.seq, "why": "not yet covered by a signed checkpoint" })),
        }
    }
    let mut budget = MAX_PROOF;
    let mut ranges = Vec::new();
    for (cp_seq, from) in &groups {
        let len = cp_seq - from + 1;
        if len > MAX_SEGMENT || len > budget {
            for r in records
                .iter()
                .filter(|r| r.seq >= *from && r.seq <= *cp_seq)
            {
                unproven.push(
                    json!({ "seq": r.seq, "why": "its proof would be too long for the pack" }),
                );
            }
            continue;
        }
        budget -= len;
        ranges.push((*from, *cp_seq));
    }
    let proof_records = store::ranges(db, &ranges, MAX_PROOF).await?;
    let segments: Vec<Value> = ranges
        .iter()
        .map(|(from, to)| {
            let cp: Option<&Checkpoint> = checkpoints.iter().find(|c| c.seq == *to);
            let recs: Vec<&Record> = proof_records
                .iter()
                .filter(|r| r.seq >= *from && r.seq <= *to)
                .collect();
            json!({ "checkpoint": cp, "records": recs })
        })
        .collect();
    Ok(json!({
        "records": records, "truncated": truncated, "proof": segments, "unproven": unproven,
    }))
}

/// Builds the pack of `r` for `reader`, signed with `key` when one is configured.
pub async fn build(
    db: &Db,
    r: &ServiceRequest,
    reader: &Actor,
    key: Option<&AuditKey>,
) -> Result<Value, StoreError> {
    let approvals = approvals::store::for_request(db, &r.id).await?;
    let deps = deployments::store::for_request(db, &r.id).await?;
    let mut events = events(db, &r.id).await?;
    let change_set = deps
        .first()
        .filter(|d| d.change_set_arn.is_some())
        .map(ChangeSetSummary::of);
    let deployments: Vec<Value> = deps
        .iter()
        .map(|d| json!({ "deployment": d, "events": events.remove(&d.id).unwrap_or_default() }))
        .collect();
    let risk_flags: Vec<Value> = r
        .risk_flags
        .iter()
        .map(|f| json!({ "flag": f, "label": f.label() }))
        .collect();
    let approvals: Vec<Value> = approvals
        .iter()
        .enumerate()
        .map(|(i, a)| json!({ "number": i + 1, "approval": a }))
        .collect();
    let mut pack = json!({
        "format": FORMAT,
        "generated_at": now_ms(),
        "generated_by": reader,
        "request": r,
        "template": { "sha256": r.template_digest, "body": r.template_body },
        "policy_results": r.policy,
        "change_set": change_set,
        "risk_flags": risk_flags,
        "approvals": approvals,
        "deployments": deployments,
        "audit": audit_part(db, &r.id).await?,
        "signature": Value::Null,
    });
    if let Some(key) = key {
        let value = key.sign(&signed_bytes(&pack));
        pack["signature"] =
            json!({ "algorithm": "ed25519", "key_id": key.key_id(), "value": value });
    }
    Ok(pack)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_at_every_level_whatever_the_insertion_order() {
        let a: Value =
            serde_json::from_str(r#"{"b":1,"a":{"y":[{"d":"x","c":null}],"x":2.5}}"#).unwrap();
        let b: Value =
            serde_json::from_str(r#"{"a":{"x":2.5,"y":[{"c":null,"d":"x"}]},"b":1}"#).unwrap();
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"x":2.5,"y":[{"c":null,"d":"x"}]},"b":1}"#
        );
        let mut signed = a.clone();
        signed["signature"] = json!("sig");
        assert_eq!(signed_bytes(&signed), canonical_json(&a).into_bytes());
    }
}
