//! The audit commands: `audit-keygen`, `audit-verify` (the database's chain and checkpoints) and
//! `audit-verify --pack` (an evidence pack, offline).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use super::keys::{AuditKey, PublicKey};
use super::pack_verify::verify_pack;
use super::verify::verify_all;
use crate::cli::usage;
use crate::config::Config;

/// Reads each `--public-key` value: the key itself, or a file holding it.
fn public_keys(values: &[String]) -> anyhow::Result<Vec<PublicKey>> {
    values
        .iter()
        .map(|v| {
            let text = if Path::new(v).is_file() {
                std::fs::read_to_string(v).with_context(|| format!("reading {v}"))?
            } else {
                v.clone()
            };
            match PublicKey::parse(&text) {
                Ok(k) => Ok(k),
                Err(e) => usage(format!("--public-key: {e}")),
            }
        })
        .collect()
}

/// `audit-keygen --out FILE`: a new key, written only if the file does not exist yet.
pub fn keygen(out: &Path) -> anyhow::Result<ExitCode> {
    let key = AuditKey::generate();
    let pem = key.to_pem()?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = match options.open(out) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return usage(format!(
                "{} exists already; it is never overwritten",
                out.display()
            ));
        }
        Err(e) => return Err(e).with_context(|| format!("creating {}", out.display())),
    };
    file.write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", out.display()))?;
    println!(
        "wrote the private key to {} (keep it outside the database)",
        out.display()
    );
    println!("public key: {}", key.public().encoded());
    println!("key id: {}", key.key_id());
    Ok(ExitCode::SUCCESS)
}

/// `audit-verify`: the chain from the genesis, every checkpoint's signature, and each
/// checkpoint's head against the chain. Prints the first failure by seq; exit 1 on any.
pub async fn verify_database(values: &[String]) -> anyhow::Result<ExitCode> {
    let config = Config::from_env()?;
    let mut keys = public_keys(values)?;
    if keys.is_empty()
        && let Some(k) = &config.audit_signing_key
    {
        keys.push(k.public());
    }
    let db = crate::db::Db::connect(&config.database_url).await?;
    let r = verify_all(&db, &keys).await?;
    match r.problems.first() {
        None => println!(
            "audit chain verified up to #{} (head {})",
            r.chain.verified_up_to, r.chain.head_hash
        ),
        Some((seq, why)) => println!(
            "audit chain broken at #{seq}: {why} (verified up to #{})",
            r.chain.verified_up_to
        ),
    }
    for (seq, why) in r.problems.iter().skip(1).take(20) {
        println!("also at #{seq}: {why}");
    }
    match &r.last_checkpoint {
        Some(c) => println!(
            "{} signed checkpoints, the last at #{} signed at {} by key {}",
            r.checkpoints,
            c.seq,
            chrono::DateTime::from_timestamp_millis(c.signed_at)
                .map_or_else(|| c.signed_at.to_string(), |t| t.to_rfc3339()),
            c.key_id
        ),
        None => println!("no signed checkpoints"),
    }
    if r.unchecked > 0 {
        println!(
            "cannot check {} checkpoint signatures: no public key (pass --public-key or set \
             STACKGATE_AUDIT_SIGNING_KEY)",
            r.unchecked
        );
    }
    if let Some((from, to)) = r.uncovered {
        println!("warning: records #{from} to #{to} are not yet covered by a signed checkpoint");
    }
    Ok(if r.failed() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `audit-verify --pack FILE`: the pack alone, with the public key only.
pub fn verify_pack_file(file: &Path, values: &[String]) -> anyhow::Result<ExitCode> {
    let keys = public_keys(values)?;
    let [key] = keys.as_slice() else {
        return usage("--pack needs exactly one --public-key (the key that signed the pack)");
    };
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let pack: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            println!("evidence pack invalid: not JSON ({e})");
            return Ok(ExitCode::from(1));
        }
    };
    let r = verify_pack(&pack, key);
    for w in &r.warnings {
        println!("warning: {w}");
    }
    if r.problems.is_empty() {
        println!(
            "evidence pack verified: signature, template digest, approvals, and {} audit \
             records proven against signed checkpoints",
            r.proven_records
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("evidence pack invalid:");
    for p in &r.problems {
        println!("  {p}");
    }
    Ok(ExitCode::from(1))
}
