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
fn the_cli_lists_blueprints_as_json_and_renders_every_example_for_every_class() {
    let out = stackgate().args(["blueprints", "--json"]).output().unwrap();
    assert!(out.status.success());
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.len(), 9, "{list:?}");
    let mut renders = 0;
    for b in &list {
        let slug = b["slug"].as_str().unwrap();
        assert!(b["version"].as_str().is_some() && b["summary"].as_str().is_some());
        let examples: Vec<&str> = b["examples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap())
            .collect();
        assert!(
            examples.contains(&"default") && examples.contains(&"full"),
            "{b}"
        );
        for class in b["classes"].as_array().unwrap() {
            let class = class.as_str().unwrap();
            for example in &examples {
                let out = stackgate()
                    .args(["render", "--blueprint", slug, "--environment", class])
                    .args(["--example", example])
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{slug} {class} {example}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let t: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                assert!(!t["Resources"].as_object().unwrap().is_empty());
                renders += 1;
            }
        }
    }
    assert!(renders >= 30, "{renders} renders");
    let admin_only: Vec<&str> = list
        .iter()
        .filter(|b| b["audience"] == "admins")
        .map(|b| b["slug"].as_str().unwrap())
        .collect();
    assert_eq!(
        admin_only,
        [
            "account-baseline",
            "account-bootstrap",
            "log-archive",
            "organization"
        ]
    );
    // A class the blueprint does not support, or an unknown example, is a usage error.
    for args in [
        [
            "--blueprint",
            "data",
            "--environment",
            "core",
            "--example",
            "default",
        ],
        [
            "--blueprint",
            "data",
            "--environment",
            "dev",
            "--example",
            "nope",
        ],
    ] {
        let out = stackgate().arg("render").args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--environment") || err.contains("--example"),
            "{err}"
        );
    }
}

#[test]
fn render_with_bad_parameters_exits_2_with_exactly_one_message_per_bad_parameter() {
    for (params, bad) in [
        (r#"{"vpc_cidr": "8.8.0.0/16"}"#, vec!["vpc_cidr"]),
        (
            r#"{"vpc_cidr": "8.8.0.0/16", "az_count": "4"}"#,
            vec!["vpc_cidr", "az_count"],
        ),
        (
            r#"{"vpc_cidr": "10.0.0.0/8", "az_count": "one", "colour": "blue"}"#,
            vec!["vpc_cidr", "az_count", "colour"],
        ),
    ] {
        let file = temp("params.json");
        std::fs::write(&file, params).unwrap();
        let out = stackgate()
            .args([
                "render",
                "--blueprint",
                "network",
                "--environment",
                "dev",
                "--params",
            ])
            .arg(&file)
            .output()
            .unwrap();
        let errors = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{params}: {errors}");
        assert!(out.stdout.is_empty(), "{params}: no template on stdout");
        let lines: Vec<&str> = errors.lines().collect();
        assert_eq!(lines.len(), bad.len(), "{params}: one line each: {errors}");
        for name in &bad {
            let about: Vec<&&str> = lines
                .iter()
                .filter(|l| l.starts_with(&format!("{name}: ")))
                .collect();
            assert_eq!(about.len(), 1, "{params}: one message for {name}: {errors}");
            assert!(
                about[0].len() > name.len() + 10,
                "{params}: the message says what is wrong: {errors}"
            );
        }
    }
}

/// The settings `stackgate serve` and `audit-verify` need, with a SQLite database at `url`.
fn with_settings(mut c: Command, url: &str) -> Command {
    c.env("STACKGATE_DATABASE_URL", url)
        .env("STACKGATE_OIDC_ISSUER", "http://127.0.0.1:9")
        .env("STACKGATE_OIDC_CLIENT_ID", "c")
        .env("STACKGATE_OIDC_CLIENT_SECRET", "s")
        .env("STACKGATE_AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("STACKGATE_CONFIG", "config/demo.toml");
    c
}

/// Waits for `child` to exit (it must, within `within`); kills it otherwise.
fn exit_of(mut child: std::process::Child, within: Duration) -> Option<std::process::Output> {
    let deadline = Instant::now() + within;
    loop {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serve_refuses_to_start_on_a_sqlite_database_without_its_durability_settings() {
    // An in-memory SQLite database cannot be put in WAL mode; a path-less one is no file at all.
    let memory = format!("sqlite://{}?mode=memory", temp("memory.db").display());
    for (url, message) in [
        (
            memory.as_str(),
            "SQLite PRAGMA journal_mode is memory, expected wal",
        ),
        ("sqlite://:memory:", "give SQLite a file path"),
    ] {
        let child = with_settings(stackgate(), url)
            .arg("serve")
            .env("STACKGATE_LISTEN", format!("127.0.0.1:{}", free_port()))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = exit_of(child, Duration::from_secs(30))
            .unwrap_or_else(|| panic!("{url}: the portal started"));
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(1), "{url}: {err}");
        assert!(err.contains(message), "{url}: the message says why: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_exits_0_on_an_intact_chain_and_1_naming_the_broken_record() {
    // A portal's database: registering the demo accounts writes a record each.
    let db = temp("audit.db");
    let url = format!("sqlite://{}", db.display());
    let config = crate::support::test_config(
        vec![
            ("STACKGATE_CONFIG", crate::support::repo("config/demo.toml")),
            ("STACKGATE_DATABASE_URL", url.clone()),
            ("STACKGATE_OIDC_ISSUER", "http://127.0.0.1:9".into()),
            ("STACKGATE_OIDC_CLIENT_ID", "c".into()),
            ("STACKGATE_OIDC_CLIENT_SECRET", "s".into()),
            (
                "STACKGATE_CATALOG_DIR",
                crate::support::repo("cloudformation"),
            ),
            (
                "STACKGATE_RULES_DIR",
                crate::support::repo("cloudformation/rules"),
            ),
        ],
        &[],
    );
    let state = stackgate::build_state(config).await.unwrap();
    let records = crate::support::audit_log(&state.db).await.len();
    assert!(records >= 3, "{records}");
    let verify = || {
        let out = with_settings(stackgate(), &url)
            .arg("audit-verify")
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8(out.stdout).unwrap())
    };
    let (code, report) = verify();
    assert_eq!(code, Some(0), "{report}");
    assert!(
        report.starts_with(&format!("audit chain verified up to #{records} ")),
        "{report}"
    );
    // Someone with the file bypasses the trigger and edits record 2.
    for sql in [
        "drop trigger audit_log_no_update",
        "update audit_log set actor_name = 'mallory' where seq = 2",
    ] {
        sqlx::query(sql).execute(state.db.pool()).await.unwrap();
    }
    state.db.close().await;
    drop(state);
    let (code, report) = verify();
    assert_eq!(code, Some(1), "{report}");
    assert!(
        report.starts_with("audit chain broken at #2: ") && report.contains("verified up to #1"),
        "{report}"
    );
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
