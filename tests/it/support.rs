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
