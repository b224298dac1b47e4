//! The whole-chain check behind `stackgate audit-verify`: every record's place, link and content,
//! every checkpoint's signature, and that each checkpoint's head hash is the chain's hash at its
//! seq. Edits, deletions, insertions and swaps break the links; a truncated tail or a chain
//! recomputed from the genesis is caught only by the signed checkpoints.

use std::collections::BTreeMap;

use super::checkpoint::{self, Checkpoint};
use super::keys::PublicKey;
use super::store::{CHUNK, after};
use super::{Verification, Walker};
use crate::db::Db;

/// What the walk found.
#[derive(Debug, Clone)]
pub struct Report {
    pub chain: Verification,
    /// Every checkpoint read, oldest first.
    pub checkpoints: usize,
    pub last_checkpoint: Option<Checkpoint>,
    /// Failures, by seq: the chain's first break and every checkpoint that does not hold.
    pub problems: Vec<(i64, String)>,
    /// Checkpoints whose signature could not be checked (no public key given).
    pub unchecked: usize,
    /// Records after the last checkpoint (`from..=to`): not yet covered by a signature.
    pub uncovered: Option<(i64, i64)>,
}

impl Report {
    pub fn failed(&self) -> bool {
        !self.problems.is_empty() || self.unchecked > 0
    }
}

/// Checks one checkpoint's signature against the keys given; `None` if it holds.
fn signature_problem(cp: &Checkpoint, keys: &[PublicKey]) -> Option<String> {
    let key = keys.iter().find(|k| k.key_id() == cp.key_id)?;
    (!cp.verifies(key)).then(|| {
        format!(
            "checkpoint signature invalid (key {}): the checkpoint was forged or altered",
            cp.key_id
        )
    })
}

/// Walks the chain from the genesis and checks the checkpoints against it. With no `keys`,
/// signatures are left unchecked (counted in [`Report::unchecked`]).
pub async fn verify_all(db: &Db, keys: &[PublicKey]) -> Result<Report, sqlx::Error> {
    let mut cps: BTreeMap<i64, Checkpoint> = BTreeMap::new();
    let mut at = 0;
    loop {
        let page = checkpoint::after(db, at, 10_000).await?;
        let Some(last) = page.last() else { break };
        at = last.seq;
        let full = page.len() == 10_000;
        cps.extend(page.into_iter().map(|c| (c.seq, c)));
        if !full {
            break;
        }
    }
    let mut problems = Vec::new();
    let mut unchecked = 0;
    for cp in cps.values() {
        if keys.is_empty() {
            unchecked += 1;
        } else if !keys.iter().any(|k| k.key_id() == cp.key_id) {
            problems.push((
                cp.seq,
                format!(
                    "checkpoint signed by key {}, which is not among the given public keys",
                    cp.key_id
                ),
            ));
        } else if let Some(p) = signature_problem(cp, keys) {
            problems.push((cp.seq, p));
        }
    }
    let mut walker = Walker::from_genesis();
    let mut from = 0;
    loop {
        let chunk = after(db, from, CHUNK).await?;
        let Some(last) = chunk.last() else { break };
        from = last.seq;
        walker.feed(&chunk);
        let good = walker.verified_up_to();
        for r in chunk.iter().take_while(|r| r.seq <= good) {
            if let Some(cp) = cps.get(&r.seq)
                && cp.head_hash != r.hash
            {
                problems.push((
                    r.seq,
                    format!(
                        "checkpoint signed head hash {}, but the chain's record has hash {} \
                         (the chain was rewritten)",
                        cp.head_hash, r.hash
                    ),
                ));
            }
        }
        if walker.is_broken() || (chunk.len() as i64) < CHUNK {
            break;
        }
    }
    let chain = walker.finish();
    if let Some((seq, why)) = &chain.broken_at {
        problems.push((*seq, why.clone()));
    } else if let Some((seq, _)) = cps.range(chain.verified_up_to + 1..).next() {
        problems.push((
            *seq,
            format!(
                "a signed checkpoint covers records up to seq {seq}, but the chain ends at \
                 seq {}: records were removed from its tail",
                chain.verified_up_to
            ),
        ));
    }
    problems.sort_by_key(|p| p.0);
    let last_checkpoint = cps.values().next_back().cloned();
    let covered = last_checkpoint.as_ref().map_or(0, |c| c.seq);
    let uncovered = (chain.broken_at.is_none() && chain.verified_up_to > covered)
        .then_some((covered + 1, chain.verified_up_to));
    Ok(Report {
        chain,
        checkpoints: cps.len(),
        last_checkpoint,
        problems,
        unchecked,
        uncovered,
    })
}
