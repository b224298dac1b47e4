//! The `stackgate` binary: the catalog commands, refusing bad configuration, and a clean stop on
//! SIGTERM.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn stackgate() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stackgate"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("STACKGATE_")) {
        c.env_remove(k);
    }
    c
}

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("stackgate-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn the_cli_lists_renders_and_checks_blueprints() {
    let out = stackgate().arg("blueprints").output().unwrap();
    assert!(out.status.success());
    let listing = String::from_utf8(out.stdout).unwrap();
    assert!(
        listing
            .lines()
            .any(|l| l.split('\t').next() == Some("network")),
        "{listing}"
    );

    let out = stackgate()
        .args(["render", "--blueprint", "network", "--environment", "prod"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let template: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let resources = template["Resources"].as_object().unwrap();
    let subnets = resources
        .values()
        .filter(|r| r["Type"] == "AWS::EC2::Subnet")
        .count();
    assert_eq!(subnets, 9, "prod defaults to three zones × three tiers");
    let rendered = temp("prod.json");
    std::fs::write(&rendered, &out.stdout).unwrap();

    let params = temp("params.json");
    std::fs::write(&params, r#"{"vpc_cidr": "8.8.0.0/16", "az_count": "4"}"#).unwrap();
    let out = stackgate()
        .args([
            "render",
            "--blueprint",
            "network",
            "--environment",
            "dev",
            "--params",
        ])
        .arg(&params)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let errors = String::from_utf8(out.stderr).unwrap();
    assert!(
        errors.contains("vpc_cidr") && errors.contains("az_count"),
        "one message per parameter: {errors}"
    );

    let out = stackgate().arg("check").arg(&rendered).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let mut broken = template.clone();
    broken["Resources"]
        .as_object_mut()
        .unwrap()
        .remove("FlowLog");
    let broken_file = temp("broken.json");
    std::fs::write(&broken_file, broken.to_string()).unwrap();
    let out = stackgate().arg("check").arg(&broken_file).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report = String::from_utf8(out.stdout).unwrap();
    assert!(report.contains("FAIL vpc_flow_logs_enabled"), "{report}");
}

#[test]
fn serve_refuses_to_start_without_its_identity_provider_settings() {
    let out = stackgate().arg("serve").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("STACKGATE_OIDC_ISSUER"),
        "the message names the setting: {err}"
    );

    let out = stackgate()
        .arg("serve")
        .env("STACKGATE_OIDC_ISSUER", "http://127.0.0.1:9")
        .env("STACKGATE_OIDC_CLIENT_ID", "c")
        .env("STACKGATE_OIDC_CLIENT_SECRET", "s")
        .env("STACKGATE_DATABASE_URL", "mysql://nope")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("STACKGATE_DATABASE_URL")
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn serve_answers_health_checks_and_stops_cleanly_on_sigterm() {
    let port = free_port();
    let db = temp("serve.db");
    let mut child = stackgate()
        .arg("serve")
        .env("STACKGATE_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "STACKGATE_DATABASE_URL",
            format!("sqlite://{}", db.display()),
        )
        .env("STACKGATE_OIDC_ISSUER", "http://127.0.0.1:9")
        .env("STACKGATE_OIDC_CLIENT_ID", "c")
        .env("STACKGATE_OIDC_CLIENT_SECRET", "s")
        .env("STACKGATE_AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("STACKGATE_CONFIG", "config/demo.toml")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let ready = loop {
        let ok = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok_and(|mut s| {
            use std::io::{Read, Write};
            s.write_all(b"GET /readyz HTTP/1.0\r\n\r\n").is_ok() && {
                let mut buf = String::new();
                s.read_to_string(&mut buf).is_ok() && buf.starts_with("HTTP/1.0 200")
            }
        });
        if ok || Instant::now() > deadline {
            break ok;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(ready, "/readyz did not answer 200");
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let status = status.expect("stackgate did not stop within 10 s of SIGTERM");
    assert!(status.success(), "exit status {status}");
}
