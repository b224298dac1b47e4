//! The evidence pack of a deployed request: downloaded by whoever may see the request (and
//! audited), refused to others, verified offline by the real `stackgate audit-verify --pack`
//! with the public key only; a change in any part of it is named.

use std::process::Command;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use stackgate::audit::checkpoint::{Outcome, checkpoint_once};
use stackgate::audit::keys::AuditKey;

use crate::app::{Backend, TestApp};

const DEV: &str = "200000000001";

fn verify_pack(pack: &Value, key: &AuditKey) -> (Option<i32>, String) {
    let dir = std::env::temp_dir().join("stackgate-it");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("pack-{}.json", uuid::Uuid::new_v4().simple()));
    std::fs::write(&file, serde_json::to_vec_pretty(pack).unwrap()).unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_stackgate"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("STACKGATE_")) {
        c.env_remove(k);
    }
    let out = c
        .args(["audit-verify", "--pack"])
        .arg(&file)
        .arg("--public-key")
        .arg(key.public().encoded())
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// Changes one character of the string at `pointer` (a byte flip that keeps the JSON valid).
fn flip(pack: &Value, pointer: &str) -> Value {
    let mut pack = pack.clone();
    let s = pack
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("{pointer} in the pack"));
    let mut text = s
        .as_str()
        .unwrap_or_else(|| panic!("{pointer} is text"))
        .to_string();
    let last = text.pop().unwrap();
    text.push(if last == 'a' { 'b' } else { 'a' });
    *s = Value::String(text);
    pack
}

async fn a_deployed_requests_evidence_pack_verifies_offline(backend: Backend) {
    let key = AuditKey::generate();
    let pem = key.to_pem().unwrap();
    let app = TestApp::spawn_with(
        backend,
        &[
            ("STACKGATE_AUDIT_SIGNING_KEY", &pem),
            ("STACKGATE_AUDIT_CHECKPOINT_SECONDS", "3600"),
        ],
    )
    .await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    let name = format!("ev{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let id = alice.submit("network", DEV, &name).await;
    let shown = bob
        .wait_for_status(&id, &["pending_approval"], Duration::from_secs(60))
        .await;
    let arn = shown["change_set"]["arn"].clone();
    let (code, outcome) = bob
        .api(
            Method::POST,
            &format!("/requests/{id}/approve"),
            Some(serde_json::json!({ "comment": "Looks right.", "change_set_arn": arn })),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{outcome}");
    assert_eq!(outcome["status"], "approved", "{outcome}");
    alice
        .wait_for_status(&id, &["deployed"], Duration::from_secs(90))
        .await;
    assert!(matches!(
        checkpoint_once(&app.state.db, &key).await.unwrap(),
        Outcome::Signed { .. }
    ));

    // The page links to it; the download is an attachment of JSON.
    let page = alice
        .get(&format!("/requests/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(&format!("href=\"/requests/{id}/evidence\"")),
        "{page}"
    );
    let resp = alice.get(&format!("/requests/{id}/evidence")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let disposition = resp.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        disposition.starts_with("attachment; filename=\"evidence-request-"),
        "{disposition}"
    );
    let pack: Value = resp.json().await.unwrap();
    assert_eq!(pack["request"]["id"], id.as_str());
    assert_eq!(pack["request"]["account_id"], DEV);
    assert_eq!(pack["request"]["region"], "eu-west-2");
    assert!(pack["request"]["params"].is_object());
    assert!(
        pack["template"]["body"]
            .as_str()
            .is_some_and(|b| b.contains("AWS::EC2::VPC"))
    );
    let approval = &pack["approvals"][0]["approval"];
    assert_eq!(approval["approver_name"], "Bob Brandt", "{pack}");
    assert!(
        approval["change_set_arn"]
            .as_str()
            .is_some_and(|a| a.contains(":changeSet/"))
    );
    assert!(approval["auth_time"].is_i64(), "{approval}");
    assert!(
        pack["change_set"]["arn"].is_string(),
        "{}",
        pack["change_set"]
    );
    assert!(!pack["change_set"]["changes"].as_array().unwrap().is_empty());
    assert_eq!(pack["deployments"][0]["deployment"]["status"], "succeeded");
    assert!(
        !pack["deployments"][0]["events"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(
        !pack["audit"]["proof"].as_array().unwrap().is_empty(),
        "{}",
        pack["audit"]
    );
    assert_eq!(pack["signature"]["key_id"], key.key_id().as_str());

    // The API gives the same pack; someone of another team gets nothing; reads are audited.
    let (code, api) = alice
        .api(Method::GET, &format!("/requests/{id}/evidence"), None)
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(api["request"], pack["request"]);
    let grace = app.login("grace").await;
    assert_eq!(
        grace
            .get(&format!("/requests/{id}/evidence"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let reads = stackgate::audit::store::for_object(&app.state.db, "request", &id)
        .await
        .unwrap()
        .iter()
        .filter(|r| r.action == "evidence.read")
        .count();
    assert_eq!(reads, 2);

    // Untouched, it verifies offline: the read recorded after the checkpoint is only a warning.
    let (code, out) = verify_pack(&pack, &key);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("evidence pack verified"), "{out}");
    assert!(
        out.contains("not yet covered by a signed checkpoint"),
        "{out}"
    );
    let (code, out) = verify_pack(&pack, &AuditKey::generate());
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("pack signed by key "), "{out}");

    let first = pack["audit"]["records"][0]["seq"].as_i64().unwrap();
    let proof = pack["audit"]["proof"][0]["records"].as_array().unwrap();
    let last = proof.len() - 1;
    let last_seq = proof[last]["seq"].as_i64().unwrap();
    let cp_seq = pack["audit"]["proof"][0]["checkpoint"]["seq"]
        .as_i64()
        .unwrap();
    let cases = [
        ("/template/body", "template digest mismatch".to_string()),
        (
            "/approvals/0/approval/content_hash",
            "approval 1: content hash mismatch".into(),
        ),
        (
            "/audit/records/0/actor_name",
            format!("audit record seq {first}: content does not match its hash"),
        ),
        (
            &format!("/audit/proof/0/records/{last}/actor_name") as &str,
            format!("audit record seq {last_seq}: hash does not chain"),
        ),
        (
            "/audit/proof/0/checkpoint/signature",
            format!("checkpoint seq {cp_seq}: signature invalid"),
        ),
        ("/request/region", "pack signature invalid".into()),
        ("/signature/value", "pack signature invalid".into()),
    ];
    for (pointer, expected) in cases {
        let (code, out) = verify_pack(&flip(&pack, pointer), &key);
        assert_eq!(code, Some(1), "{pointer}: {out}");
        assert!(out.contains("evidence pack invalid"), "{pointer}: {out}");
        assert!(
            out.contains(&expected),
            "{pointer}: expected {expected:?}: {out}"
        );
        assert!(out.contains("pack signature invalid"), "{pointer}: {out}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployed_requests_evidence_pack_verifies_offline_and_names_each_tampered_part_on_sqlite()
{
    a_deployed_requests_evidence_pack_verifies_offline(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployed_requests_evidence_pack_verifies_offline_and_names_each_tampered_part_on_postgres()
 {
    a_deployed_requests_evidence_pack_verifies_offline(Backend::Postgres).await;
}
