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

/// A bucket with Object Lock and a default retention in compliance mode, as production has.
async fn locked_bucket(x: &stackgate::audit::export::Exporter) {
    use aws_sdk_s3::types::{
        DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockRetentionMode,
        ObjectLockRule,
    };
    x.client
        .create_bucket()
        .bucket(&x.bucket)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap();
    let retention = DefaultRetention::builder()
        .mode(ObjectLockRetentionMode::Compliance)
        .days(365)
        .build();
    x.client
        .put_object_lock_configuration()
        .bucket(&x.bucket)
        .object_lock_configuration(
            ObjectLockConfiguration::builder()
                .object_lock_enabled(ObjectLockEnabled::Enabled)
                .rule(
                    ObjectLockRule::builder()
                        .default_retention(retention)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_export_resumes_after_a_lost_acknowledgement_with_no_gap_or_overlap_and_locked_objects_cannot_be_deleted()
 {
    use stackgate::audit::export::{Exporter, acked};
    let endpoint = crate::support::harness_env("STACKGATE_TEST_AWS_ENDPOINT");
    let url = fresh_database(Backend::Sqlite).await;
    let db = Db::connect(&url).await.unwrap();
    db.migrate().await.unwrap();
    let key = AuditKey::generate();
    bulk_chain(&db, 2500).await;
    checkpoint_once(&db, &key).await.unwrap();
    append(&db, 2501, 2505).await;
    // Hostile text in records (bar D6): line breaks, an ANSI escape, quotes, bidi overrides,
    // a megabyte. Each record must stay one JSON line in the export.
    let hostile = [
        "line\r\nbreak".to_string(),
        "\u{1b}[31mred\u{1b}[0m".to_string(),
        "\"},{\"forged\":true".to_string(),
        "\u{202e}txt.exe\u{202c}".to_string(),
        "x".repeat(1 << 20),
    ];
    for h in &hostile {
        let entry = Entry::new(&Actor::system(h), "request.submitted", "request", h.clone())
            .detail(serde_json::json!({ "title": h }));
        store::append_alone(&db, entry).await.unwrap();
    }
    checkpoint_once(&db, &key).await.unwrap();
    // Not yet under a checkpoint: not exported.
    append(&db, 2511, 2515).await;
    let bucket = format!(
        "sg-audit-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let x = Exporter::new(&bucket, Some(&endpoint), Some("us-east-1")).await;
    locked_bucket(&x).await;

    // A first pass is stopped after two objects, and the second one's acknowledgement is lost
    // (as if the process was killed between the upload and the database commit).
    let first = x.export_once(&db, 2).await.unwrap();
    assert_eq!((first.objects, first.records_acked), (2, 2000));
    sqlx::query("update audit_exports set acked_seq = 1000 where stream = 'records'")
        .execute(db.pool())
        .await
        .unwrap();
    let again = x.export_once(&db, 100).await.unwrap();
    assert_eq!((again.records_acked, again.checkpoints_acked), (2510, 2510));
    assert_eq!(acked(&db, "records").await.unwrap(), 2510);
    assert_eq!(
        x.export_once(&db, 100).await.unwrap().objects,
        0,
        "nothing new"
    );

    let listed = x
        .client
        .list_objects_v2()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let keys: Vec<String> = listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(String::from))
        .collect();
    assert_eq!(
        keys,
        [
            "audit/000000000001-000000001000.jsonl",
            "audit/000000001001-000000002000.jsonl",
            "audit/000000002001-000000002500.jsonl",
            "audit/000000002501-000000002510.jsonl",
            "checkpoints/000000002500.json",
            "checkpoints/000000002510.json",
        ]
    );
    // Together the objects are the chain, once, in order, and it verifies.
    let mut exported: Vec<Record> = Vec::new();
    for k in keys.iter().filter(|k| k.starts_with("audit/")) {
        let body = x
            .client
            .get_object()
            .bucket(&bucket)
            .key(k)
            .send()
            .await
            .unwrap();
        let bytes = body.body.collect().await.unwrap().into_bytes();
        let lines: Vec<&str> = std::str::from_utf8(&bytes).unwrap().lines().collect();
        let (from, to) = k[6..k.len() - 6].split_once('-').unwrap();
        let expected = to.parse::<usize>().unwrap() - from.parse::<usize>().unwrap() + 1;
        assert_eq!(lines.len(), expected, "{k}: one record a line");
        for line in lines {
            exported.push(serde_json::from_str(line).unwrap());
        }
    }
    let titles: Vec<&str> = exported[2505..]
        .iter()
        .filter_map(|r| r.detail["title"].as_str())
        .collect();
    assert_eq!(
        titles,
        hostile.iter().map(String::as_str).collect::<Vec<_>>()
    );
    let v = stackgate::audit::verify_records(&exported);
    assert_eq!(
        (v.records, v.verified_up_to, v.broken_at),
        (2510, 2510, None)
    );
    // The rewritten object is a second version with the same bytes.
    let versions = x
        .client
        .list_object_versions()
        .bucket(&bucket)
        .prefix("audit/000000001001-")
        .send()
        .await
        .unwrap();
    let etags: Vec<&str> = versions
        .versions()
        .iter()
        .filter_map(|v| v.e_tag())
        .collect();
    assert_eq!(etags.len(), 2, "{versions:?}");
    assert_eq!(etags[0], etags[1]);

    // A locked version cannot be deleted, and is still there.
    let first_key = "audit/000000000001-000000001000.jsonl";
    let head = x
        .client
        .head_object()
        .bucket(&bucket)
        .key(first_key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.object_lock_mode().map(|m| m.as_str()),
        Some("COMPLIANCE")
    );
    let denied = x
        .client
        .delete_object()
        .bucket(&bucket)
        .key(first_key)
        .version_id(head.version_id().unwrap())
        .send()
        .await;
    let code = denied
        .err()
        .and_then(|e| e.into_service_error().meta().code().map(String::from));
    assert_eq!(code.as_deref(), Some("AccessDenied"));
    assert!(
        x.client
            .get_object()
            .bucket(&bucket)
            .key(first_key)
            .send()
            .await
            .is_ok()
    );
    db.close().await;
}

#[test]
fn audit_keygen_writes_a_private_key_file_once_and_prints_the_public_key() {
    let dir = std::env::temp_dir().join(format!("sg-keygen-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("audit.pem");
    let keygen = || {
        Command::new(env!("CARGO_BIN_EXE_stackgate"))
            .args(["audit-keygen", "--out"])
            .arg(&file)
            .output()
            .unwrap()
    };
    let out = keygen();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{text}");
    let key = AuditKey::parse(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert!(
        text.contains(&format!("public key: {}\n", key.public().encoded())),
        "{text}"
    );
    assert!(
        text.contains(&format!("key id: {}", key.key_id())),
        "{text}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Never overwritten: the key that signed checkpoints is not lost by a second run.
    let again = keygen();
    assert_eq!(again.status.code(), Some(2));
    assert!(
        String::from_utf8(again.stderr)
            .unwrap()
            .contains("exists already")
    );
    let same = AuditKey::parse(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(same.key_id(), key.key_id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_checkpointing_at_once_on_postgres_sign_the_head_once() {
    let c = chain(Backend::Postgres).await;
    let replicas: Vec<Db> = futures_util::future::join_all((0..3).map(|_| Db::connect(&c.url)))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let outcomes =
        futures_util::future::join_all(replicas.iter().map(|db| checkpoint_once(db, &c.key))).await;
    let signed = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(Outcome::Signed { seq: 25, .. })))
        .count();
    assert_eq!(signed, 1, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Ok(Outcome::Signed { .. } | Outcome::UpToDate)))
    );
    let seqs: Vec<i64> = stackgate::audit::checkpoint::after(&c.db, 0, 100)
        .await
        .unwrap()
        .iter()
        .map(|cp| cp.seq)
        .collect();
    assert_eq!(seqs, [10, 20, 25]);
    for db in replicas {
        db.close().await;
    }
    c.db.close().await;
}
