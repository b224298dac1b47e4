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
