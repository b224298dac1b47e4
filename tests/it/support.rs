//! Shared helpers: where the harness's real components are.

/// The value of an environment variable the test harness sets. Failing loudly, never skipping:
/// a test that cannot reach its component is a failed test.
pub fn harness_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{name} is not set: run the suite with `make test`, which starts the OIDC provider, \
             the AWS emulator and PostgreSQL and sets it"
        ),
    }
}

/// A path inside the repository.
pub fn repo(path: &str) -> String {
    format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))
}

/// A configuration from the test's settings, with `extra` settings overriding them.
pub fn test_config(
    settings: Vec<(&str, String)>,
    extra: &[(&str, &str)],
) -> stackgate::config::Config {
    let mut vars: std::collections::BTreeMap<String, String> = settings
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    for (k, v) in extra {
        vars.insert(k.to_string(), v.to_string());
    }
    match stackgate::config::Config::from_vars(&vars) {
        Ok(config) => config,
        Err(e) => panic!("test configuration: {e}"),
    }
}

/// Every audit record, oldest first (tests read small logs whole; the portal never does).
pub async fn audit_log(db: &stackgate::db::Db) -> Vec<stackgate::audit::Record> {
    let mut out: Vec<stackgate::audit::Record> = Vec::new();
    loop {
        let after = out.last().map_or(0, |r| r.seq);
        let chunk = stackgate::audit::store::after(db, after, stackgate::audit::store::CHUNK)
            .await
            .expect("reading the audit log");
        if chunk.is_empty() {
            return out;
        }
        out.extend(chunk);
    }
}

/// The demo registry (`config/demo.toml`) with `account`'s deploy role replaced by `role_arn`,
/// written to a file of its own; returns its path.
pub fn registry_with_deploy_role(account: &str, role_arn: &str) -> String {
    let demo = std::fs::read_to_string(repo("config/demo.toml")).unwrap();
    let shared = format!("deploy_role_arn = \"arn:aws:iam::{account}:role/stackgate-deploy\"");
    assert_eq!(
        demo.matches(&shared).count(),
        1,
        "the demo registry's role of {account}"
    );
    let dir = std::env::temp_dir().join("stackgate-it");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("registry-{}.toml", uuid::Uuid::new_v4().simple()));
    std::fs::write(
        &path,
        demo.replace(&shared, &format!("deploy_role_arn = \"{role_arn}\"")),
    )
    .unwrap();
    path.display().to_string()
}
