//! Offline verification of an evidence pack with the public key alone: the pack's signature,
//! the template's digest, each approval's binding to the request and its change set, each audit
//! record's hash, and the proof chaining the records to signed checkpoints. Each failure is
//! named by the part it is in.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::checkpoint::Checkpoint;
use super::evidence::{FORMAT, signed_bytes};
use super::keys::PublicKey;
use super::{Record, Walker};
use crate::approvals::approval_hash;

/// What the verifier found: failures, and warnings that are not failures.
#[derive(Debug, Default, Clone)]
pub struct PackReport {
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
    /// Audit records whose hash and proof to a signed checkpoint hold.
    pub proven_records: usize,
}

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn records(v: Option<&Value>) -> Result<Vec<Record>, String> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| e.to_string()),
    }
}

/// Verifies `pack` (the parsed JSON) with `key`.
pub fn verify_pack(pack: &Value, key: &PublicKey) -> PackReport {
    let mut rep = PackReport::default();
    if text(pack, "/format") != FORMAT {
        rep.problems
            .push(format!("not an evidence pack of format {FORMAT}"));
        return rep;
    }
    check_signature(pack, key, &mut rep);
    let body = text(pack, "/template/body");
    let digest = hex::encode(Sha256::digest(body.as_bytes()));
    if digest != text(pack, "/template/sha256") || digest != text(pack, "/request/template_digest")
    {
        rep.problems.push("template digest mismatch".into());
    }
    check_approvals(pack, &mut rep);
    check_audit(pack, key, &mut rep);
    rep
}

fn check_signature(pack: &Value, key: &PublicKey, rep: &mut PackReport) {
    let sig = &pack["signature"];
    if sig.is_null() {
        rep.problems
            .push("pack is not signed (no audit signing key was configured)".into());
    } else if text(sig, "/key_id") != key.key_id() {
        rep.problems.push(format!(
            "pack signed by key {}, not by the given key {}",
            text(sig, "/key_id"),
            key.key_id()
        ));
    } else if !key.verifies(&signed_bytes(pack), text(sig, "/value")) {
        rep.problems.push("pack signature invalid".into());
    }
}

fn check_approvals(pack: &Value, rep: &mut PackReport) {
    let content_hash = text(pack, "/request/content_hash");
    let list = pack["approvals"].as_array().cloned().unwrap_or_default();
    for (i, a) in list.iter().enumerate() {
        let arn = text(a, "/approval/change_set_arn");
        if approval_hash(content_hash, arn) != text(a, "/approval/content_hash") {
            rep.problems
                .push(format!("approval {}: content hash mismatch", i + 1));
        }
    }
}

fn check_audit(pack: &Value, key: &PublicKey, rep: &mut PackReport) {
    let request_id = text(pack, "/request/id");
    let listed = match records(pack.pointer("/audit/records")) {
        Ok(r) => r,
        Err(e) => {
            rep.problems.push(format!("audit records unreadable: {e}"));
            return;
        }
    };
    if pack.pointer("/audit/truncated") == Some(&Value::Bool(true)) {
        rep.warnings.push(format!(
            "the pack holds only the request's first {} audit records",
            listed.len()
        ));
    }
    // Every proof segment: a signed checkpoint, and records that chain up to its head.
    let mut proven: Vec<Record> = Vec::new();
    let segments = pack
        .pointer("/audit/proof")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for seg in &segments {
        let cp: Checkpoint = match serde_json::from_value(seg["checkpoint"].clone()) {
            Ok(c) => c,
            Err(e) => {
                rep.problems
                    .push(format!("a proof's checkpoint is unreadable: {e}"));
                continue;
            }
        };
        if !cp.verifies(key) {
            rep.problems
                .push(format!("checkpoint seq {}: signature invalid", cp.seq));
            continue;
        }
        let recs = match records(seg.get("records")) {
            Ok(r) => r,
            Err(e) => {
                rep.problems.push(format!(
                    "checkpoint seq {}: proof records unreadable: {e}",
                    cp.seq
                ));
                continue;
            }
        };
        let Some(first) = recs.first() else {
            rep.problems.push(format!(
                "checkpoint seq {}: the proof has no records",
                cp.seq
            ));
            continue;
        };
        let mut w = Walker::after(first.seq - 1, first.prev_hash.clone());
        w.feed(&recs);
        let v = w.finish();
        if let Some((seq, why)) = v.broken_at {
            rep.problems.push(format!(
                "audit record seq {seq}: hash does not chain ({why})"
            ));
        } else if v.verified_up_to != cp.seq || v.head_hash != cp.head_hash {
            rep.problems.push(format!(
                "checkpoint seq {}: the proof does not end on the signed head",
                cp.seq
            ));
        } else {
            proven.extend(recs);
        }
    }
    let unproven: Vec<i64> = pack
        .pointer("/audit/unproven")
        .and_then(Value::as_array)
        .map(|l| l.iter().filter_map(|u| u["seq"].as_i64()).collect())
        .unwrap_or_default();
    for r in &listed {
        if r.compute_hash() != r.hash {
            rep.problems.push(format!(
                "audit record seq {}: content does not match its hash",
                r.seq
            ));
        } else if r.object_type != "request" || r.object_id != request_id {
            rep.problems.push(format!(
                "audit record seq {}: is not about this request",
                r.seq
            ));
        } else if let Some(p) = proven.iter().find(|p| p.seq == r.seq) {
            if p.hash != r.hash {
                rep.problems.push(format!(
                    "audit record seq {}: differs from the chain proof's record",
                    r.seq
                ));
            } else {
                rep.proven_records += 1;
            }
        } else if unproven.contains(&r.seq) {
            rep.warnings.push(format!(
                "audit record seq {}: not yet covered by a signed checkpoint",
                r.seq
            ));
        } else {
            rep.problems.push(format!(
                "audit record seq {}: no valid proof links it to a signed checkpoint",
                r.seq
            ));
        }
    }
}
