//! Signed audit checkpoints (bar D4), against the real `stackgate audit-verify` on SQLite and
//! PostgreSQL: an intact chain verifies (records after the last checkpoint are a warning), and
//! each of the six tamperings of someone with the database owner's rights is found — a
//! truncated tail and a whole chain recomputed only through the signed checkpoints.

use std::process::Command;

use stackgate::audit::checkpoint::{Outcome, checkpoint_once};
use stackgate::audit::keys::AuditKey;
use stackgate::audit::{Actor, Entry, Record, store};
use stackgate::db::Db;

use crate::app::{Backend, fresh_database};

struct Chain {
    url: String,
    db: Db,
    key: AuditKey,
}

async fn append(db: &Db, from: i64, to: i64) {
    for i in from..=to {
        let entry = Entry::new(
            &Actor::system("test"),
            "request.created",
            "request",
            format!("r{i}"),
        )
        .detail(serde_json::json!({ "n": i, "title": format!("record {i}") }));
        store::append_alone(db, entry).await.unwrap();
    }
}

/// 25 records, checkpoints signed at #10 and #20.
async fn chain(backend: Backend) -> Chain {
    let url = fresh_database(backend).await;
    let db = Db::connect(&url).await.unwrap();
    db.migrate().await.unwrap();
    let key = AuditKey::generate();
    append(&db, 1, 10).await;
    assert_eq!(
        checkpoint_once(&db, &key).await.unwrap(),
        Outcome::Signed {
            seq: 10,
            verified: 10
        }
    );
    assert_eq!(checkpoint_once(&db, &key).await.unwrap(), Outcome::UpToDate);
    append(&db, 11, 20).await;
    // Incremental: only the ten records since the last checkpoint are walked.
    assert_eq!(
        checkpoint_once(&db, &key).await.unwrap(),
        Outcome::Signed {
            seq: 20,
            verified: 10
        }
    );
    append(&db, 21, 25).await;
    Chain { url, db, key }
}

/// Takes the append-only triggers away, as the database owner could.
async fn as_owner(c: &Chain, backend: Backend, sql: &[String]) {
    let mut all: Vec<String> = match backend {
        Backend::Sqlite => [
            "drop trigger audit_log_no_update",
            "drop trigger audit_log_no_delete",
            "drop trigger audit_checkpoints_no_update",
        ]
        .map(String::from)
        .to_vec(),
        Backend::Postgres => [
            "alter table audit_log disable trigger user",
            "alter table audit_checkpoints disable trigger user",
        ]
        .map(String::from)
        .to_vec(),
    };
    all.extend_from_slice(sql);
    for s in all {
        sqlx::query(sqlx::AssertSqlSafe(s.as_str()))
            .execute(c.db.pool())
            .await
            .unwrap_or_else(|e| panic!("{s}: {e}"));
    }
}

fn audit_verify(url: &str, key: Option<&AuditKey>) -> (Option<i32>, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stackgate"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("STACKGATE_")) {
        c.env_remove(k);
    }
    c.env("STACKGATE_DATABASE_URL", url)
        .env("STACKGATE_OIDC_ISSUER", "http://127.0.0.1:9")
        .env("STACKGATE_OIDC_CLIENT_ID", "c")
        .env("STACKGATE_OIDC_CLIENT_SECRET", "s")
        .arg("audit-verify");
    if let Some(k) = key {
        c.arg("--public-key").arg(k.public().encoded());
    }
    let out = c.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

/// A tampering: its name, the SQL it takes (given the chain's records), what audit-verify says.
type Case = (&'static str, fn(&[Record]) -> Vec<String>, &'static str);

fn update(r: &Record) -> String {
    format!(
        "update audit_log set actor_name = '{}', prev_hash = '{}', hash = '{}' where seq = {}",
        r.actor_name, r.prev_hash, r.hash, r.seq
    )
}

async fn tampering_is_found_by_audit_verify(backend: Backend) {
    // Intact: exit 0, the records after the last checkpoint are a warning only.
    let c = chain(backend).await;
    let (code, out) = audit_verify(&c.url, Some(&c.key));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("audit chain verified up to #25 "), "{out}");
    assert!(
        out.contains("2 signed checkpoints, the last at #20"),
        "{out}"
    );
    assert!(
        out.contains("warning: records #21 to #25 are not yet covered by a signed checkpoint"),
        "{out}"
    );
    // Without the public key the signatures cannot be checked: that is a failure.
    let (code, out) = audit_verify(&c.url, None);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("cannot check 2 checkpoint signatures"),
        "{out}"
    );
    // Signed by another key: refused.
    let (code, out) = audit_verify(&c.url, Some(&AuditKey::generate()));
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("audit chain broken at #10: checkpoint signed by key "),
        "{out}"
    );
    c.db.close().await;

    let shift = |by: i64| format!("update audit_log set seq = seq + {by} where seq >= 7");
    let cases: Vec<Case> = vec![
        (
            "edit a field",
            |_| vec!["update audit_log set actor_name = 'mallory' where seq = 7".into()],
            "audit chain broken at #7: content does not match its hash",
        ),
        (
            "delete a middle row",
            |_| vec!["delete from audit_log where seq = 7".into()],
            "audit chain broken at #8: expected record #7, found #8",
        ),
        (
            "swap two rows",
            |_| {
                vec![
                    "update audit_log set seq = -1 where seq = 7".into(),
                    "update audit_log set seq = 7 where seq = 8".into(),
                    "update audit_log set seq = 8 where seq = -1".into(),
                ]
            },
            "audit chain broken at #7: prev_hash does not match the previous record",
        ),
        (
            "truncate the tail",
            |_| vec!["delete from audit_log where seq > 15".into()],
            "audit chain broken at #20: a signed checkpoint covers records up to seq 20, but the \
             chain ends at seq 15: records were removed from its tail",
        ),
        (
            "replace the whole chain with a recomputed one",
            |records| {
                let mut prev = records[1].hash.clone();
                records[2..]
                    .iter()
                    .map(|r| {
                        let mut r = r.clone();
                        if r.seq == 3 {
                            r.actor_name = "mallory".into();
                        }
                        r.prev_hash = prev.clone();
                        r.hash = r.compute_hash();
                        prev = r.hash.clone();
                        update(&r)
                    })
                    .collect()
            },
            "audit chain broken at #10: checkpoint signed head hash ",
        ),
        (
            "forge a checkpoint",
            |_| {
                vec!["update audit_checkpoints set signed_at = signed_at + 1 where seq = 10".into()]
            },
            "audit chain broken at #10: checkpoint signature invalid",
        ),
    ];
    for (what, sql, expected) in cases {
        let c = chain(backend).await;
        let records = crate::support::audit_log(&c.db).await;
        as_owner(&c, backend, &sql(&records)).await;
        c.db.close().await;
        let (code, out) = audit_verify(&c.url, Some(&c.key));
        assert_eq!(code, Some(1), "{backend:?} {what}: {out}");
        assert!(out.starts_with(expected), "{backend:?} {what}: {out}");
    }

    // Insert a row in the middle: later rows move up one, a well-formed record takes #7.
    let c = chain(backend).await;
    let records = crate::support::audit_log(&c.db).await;
    let mut forged = records[6].clone();
    forged.actor_name = "mallory".into();
    forged.prev_hash = records[5].hash.clone();
    forged.hash = forged.compute_hash();
    as_owner(
        &c,
        backend,
        &[
            shift(1000),
            "update audit_log set seq = seq - 999 where seq >= 1000".into(),
            format!(
                "insert into audit_log (seq, at, actor_id, actor_name, action, object_type, \
                 object_id, outcome, detail_json, correlation_id, source_ip, prev_hash, hash) \
                 values (7, {}, null, 'mallory', '{}', '{}', '{}', '{}', '{}', null, null, '{}', '{}')",
                forged.at,
                forged.action,
                forged.object_type,
                forged.object_id,
                forged.outcome,
                forged.detail,
                forged.prev_hash,
                forged.hash
            ),
        ],
    )
    .await;
    let (code, out) = audit_verify(&c.url, Some(&c.key));
    assert_eq!(code, Some(1), "{backend:?} insert: {out}");
    assert!(
        out.starts_with("audit chain broken at #8: prev_hash does not match the previous record"),
        "{backend:?} insert: {out}"
    );
    // A checkpoint never signs a broken chain.
    assert!(
        matches!(checkpoint_once(&c.db, &c.key).await.unwrap(), Outcome::Refused(ref why) if why.starts_with("audit record seq 21:")),
        "the records after #20 no longer link to the signed head"
    );
    c.db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_finds_each_tampering_of_the_chain_on_sqlite() {
    tampering_is_found_by_audit_verify(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_finds_each_tampering_of_the_chain_on_postgres() {
    tampering_is_found_by_audit_verify(Backend::Postgres).await;
}

/// Writes `n` well-chained records straight into the table, 500 a statement.
async fn bulk_chain(db: &Db, n: i64) {
    let mut prev = stackgate::audit::GENESIS_HASH.to_string();
    let mut tx = db.begin().await.unwrap();
    for start in (1..=n).step_by(500) {
        let mut values = Vec::new();
        for seq in start..(start + 500).min(n + 1) {
            let mut r = Record {
                seq,
                at: 1_800_000_000_000 + seq,
                actor_id: Some("u1".into()),
                actor_name: "Alice Anders".into(),
                action: "request.submitted".into(),
                object_type: "request".into(),
                object_id: format!("r{}", seq % 997),
                outcome: "success".into(),
                detail: serde_json::json!({ "number": seq, "team": "payments", "region": "eu-west-2" }),
                correlation_id: None,
                source_ip: Some("127.0.0.1".into()),
                prev_hash: prev.clone(),
                hash: String::new(),
            };
            r.hash = r.compute_hash();
            prev = r.hash.clone();
            values.push(format!(
                "({}, {}, 'u1', 'Alice Anders', 'request.submitted', 'request', '{}', 'success', \
                 '{}', null, '127.0.0.1', '{}', '{}')",
                r.seq, r.at, r.object_id, r.detail, r.prev_hash, r.hash
            ));
        }
        let sql = format!(
            "insert into audit_log (seq, at, actor_id, actor_name, action, object_type, object_id, \
             outcome, detail_json, correlation_id, source_ip, prev_hash, hash) values {}",
            values.join(", ")
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
}

/// Not a test of the suite: the times of a first checkpoint, an incremental one and a full
/// verification over 100,000 records. `cargo test --test it checkpoint_times -- --ignored --nocapture`
async fn checkpoint_times(backend: Backend) {
    let url = fresh_database(backend).await;
    let db = Db::connect(&url).await.unwrap();
    db.migrate().await.unwrap();
    let key = AuditKey::generate();
    bulk_chain(&db, 100_000).await;
    let t = std::time::Instant::now();
    let first = checkpoint_once(&db, &key).await.unwrap();
    let first_time = t.elapsed();
    assert_eq!(
        first,
        Outcome::Signed {
            seq: 100_000,
            verified: 100_000
        }
    );
    append(&db, 100_001, 101_000).await;
    let t = std::time::Instant::now();
    let next = checkpoint_once(&db, &key).await.unwrap();
    let next_time = t.elapsed();
    assert_eq!(
        next,
        Outcome::Signed {
            seq: 101_000,
            verified: 1_000
        }
    );
    let t = std::time::Instant::now();
    let report = stackgate::audit::verify::verify_all(&db, &[key.public()])
        .await
        .unwrap();
    let verify_time = t.elapsed();
    assert!(!report.failed(), "{:?}", report.problems);
    println!(
        "{backend:?}: first checkpoint over 100000 records {first_time:?}, incremental over 1000 \
         {next_time:?}, full verification of 101000 records and 2 checkpoints {verify_time:?}"
    );
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, run by hand"]
async fn checkpoint_times_over_100k_records_on_sqlite() {
    checkpoint_times(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, run by hand"]
async fn checkpoint_times_over_100k_records_on_postgres() {
    checkpoint_times(Backend::Postgres).await;
}
