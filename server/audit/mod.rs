//! The audit log: one append-only record per state change, written in the same transaction as
//! the change, each carrying `hash = SHA-256(canonical(record) ‖ prev_hash)` so that editing,
//! deleting, inserting or reordering records breaks the chain.

pub mod checkpoint;
pub mod cli;
pub mod evidence;
pub mod evidence_routes;
pub mod export;
pub mod keys;
pub mod pack_verify;
pub mod routes;
pub mod store;
pub mod verify;
pub mod views;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The hash a chain starts from.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Who did it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Actor {
    /// The user's id, or `None` for the portal itself (the worker) and anonymous callers.
    pub id: Option<String>,
    pub name: String,
}

impl Actor {
    /// The signed-in user.
    pub fn of(user: &crate::web::CurrentUser) -> Actor {
        Actor {
            id: Some(user.id.clone()),
            name: user.name.clone(),
        }
    }

    pub fn system(name: &str) -> Actor {
        Actor {
            id: None,
            name: name.to_string(),
        }
    }
}

/// What is being recorded (before it gets its place in the chain).
#[derive(Debug, Clone)]
pub struct Entry {
    pub actor: Actor,
    pub action: &'static str,
    pub object_type: &'static str,
    pub object_id: String,
    /// `success`, `denied` or `failure`.
    pub outcome: &'static str,
    pub detail: serde_json::Value,
    pub correlation_id: Option<String>,
    pub source_ip: Option<String>,
}

impl Entry {
    pub fn new(
        actor: &Actor,
        action: &'static str,
        object_type: &'static str,
        object_id: impl Into<String>,
    ) -> Entry {
        Entry {
            actor: actor.clone(),
            action,
            object_type,
            object_id: object_id.into(),
            outcome: "success",
            detail: serde_json::Value::Object(Default::default()),
            correlation_id: None,
            source_ip: None,
        }
    }

    pub fn outcome(mut self, outcome: &'static str) -> Entry {
        self.outcome = outcome;
        self
    }

    pub fn detail(mut self, detail: serde_json::Value) -> Entry {
        self.detail = detail;
        self
    }

    pub fn correlation(mut self, id: impl Into<String>) -> Entry {
        self.correlation_id = Some(id.into());
        self
    }

    pub fn source_ip(mut self, ip: Option<String>) -> Entry {
        self.source_ip = ip;
        self
    }
}

/// A stored record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    pub seq: i64,
    pub at: i64,
    pub actor_id: Option<String>,
    pub actor_name: String,
    pub action: String,
    pub object_type: String,
    pub object_id: String,
    pub outcome: String,
    pub detail: serde_json::Value,
    pub correlation_id: Option<String>,
    pub source_ip: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

impl Record {
    /// The canonical bytes hashed for this record: every field but `hash`, as JSON with a fixed
    /// field order (serde_json keeps struct order; `detail` keys are sorted by serde_json's map).
    pub fn canonical(&self) -> String {
        serde_json::json!([
            self.seq,
            self.at,
            self.actor_id,
            self.actor_name,
            self.action,
            self.object_type,
            self.object_id,
            self.outcome,
            self.detail,
            self.correlation_id,
            self.source_ip,
            self.prev_hash,
        ])
        .to_string()
    }

    /// The hash this record should carry.
    pub fn compute_hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.canonical().as_bytes());
        h.update(self.prev_hash.as_bytes());
        hex::encode(h.finalize())
    }
}

/// The result of walking the chain.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Verification {
    /// Number of records checked (in this pass).
    pub records: i64,
    /// Highest sequence number up to which the chain is intact.
    pub verified_up_to: i64,
    /// The first break found, if any: sequence number and what is wrong.
    pub broken_at: Option<(i64, String)>,
    /// Hash of the last intact record (to compare with an exported checkpoint).
    pub head_hash: String,
}

/// Walks the chain a chunk at a time: from the genesis, or from a point already verified (its
/// sequence number and hash), checking each record's place, link and content.
#[derive(Debug, Clone)]
pub struct Walker {
    prev: String,
    next_seq: i64,
    checked: i64,
    broken_at: Option<(i64, String)>,
}

impl Walker {
    /// From the first record.
    pub fn from_genesis() -> Walker {
        Walker::after(0, GENESIS_HASH.to_string())
    }

    /// From the record after `seq`, whose hash is `hash`.
    pub fn after(seq: i64, hash: String) -> Walker {
        Walker {
            prev: hash,
            next_seq: seq + 1,
            checked: 0,
            broken_at: None,
        }
    }

    /// Checks the next records, in `seq` order; stops at the first break.
    pub fn feed(&mut self, records: &[Record]) {
        for r in records {
            if self.broken_at.is_some() {
                return;
            }
            let problem = if r.seq != self.next_seq {
                Some(format!(
                    "expected record #{}, found #{}",
                    self.next_seq, r.seq
                ))
            } else if r.prev_hash != self.prev {
                Some("prev_hash does not match the previous record".to_string())
            } else if r.compute_hash() != r.hash {
                Some("content does not match its hash".to_string())
            } else {
                None
            };
            match problem {
                Some(p) => self.broken_at = Some((r.seq, p)),
                None => {
                    self.prev = r.hash.clone();
                    self.next_seq += 1;
                    self.checked += 1;
                }
            }
        }
    }

    pub fn is_broken(&self) -> bool {
        self.broken_at.is_some()
    }

    /// The highest sequence number checked so far with no break before it.
    pub fn verified_up_to(&self) -> i64 {
        self.next_seq - 1
    }

    pub fn finish(self) -> Verification {
        Verification {
            records: self.checked,
            verified_up_to: self.next_seq - 1,
            broken_at: self.broken_at,
            head_hash: self.prev,
        }
    }
}

/// Checks a sequence of records, in `seq` order, for gaps, reordering and edited content.
pub fn verify_records(records: &[Record]) -> Verification {
    let mut w = Walker::from_genesis();
    w.feed(records);
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<Record> {
        let mut prev = GENESIS_HASH.to_string();
        (1..=n)
            .map(|seq| {
                let mut r = Record {
                    seq,
                    at: 1_700_000_000_000 + seq,
                    actor_id: Some("u1".into()),
                    actor_name: "alice".into(),
                    action: "request.created".into(),
                    object_type: "request".into(),
                    object_id: format!("r{seq}"),
                    outcome: "success".into(),
                    detail: serde_json::json!({"k": seq}),
                    correlation_id: None,
                    source_ip: None,
                    prev_hash: prev.clone(),
                    hash: String::new(),
                };
                r.hash = r.compute_hash();
                prev = r.hash.clone();
                r
            })
            .collect()
    }

    #[test]
    fn an_intact_chain_verifies_to_its_end() {
        let v = verify_records(&chain(5));
        assert_eq!(v.verified_up_to, 5);
        assert_eq!(v.broken_at, None);
    }

    #[test]
    fn edits_deletions_insertions_and_swaps_are_detected() {
        let mut edited = chain(5);
        edited[2].actor_name = "mallory".into();
        assert_eq!(verify_records(&edited).broken_at.map(|b| b.0), Some(3));

        let mut deleted = chain(5);
        deleted.remove(2);
        assert_eq!(verify_records(&deleted).broken_at.map(|b| b.0), Some(4));

        let mut swapped = chain(5);
        swapped.swap(1, 2);
        assert!(verify_records(&swapped).broken_at.is_some());

        let mut inserted = chain(5);
        let mut extra = inserted[1].clone();
        extra.object_id = "forged".into();
        inserted.insert(2, extra);
        assert!(verify_records(&inserted).broken_at.is_some());
    }
}
