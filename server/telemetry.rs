//! Structured logs via `tracing`: JSON lines by default, readable text for development.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; later calls are ignored (tests call it repeatedly).
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_env("STACKGATE_LOG").unwrap_or_else(|_| {
        EnvFilter::new("info,sqlx=warn,aws_config=warn,aws_smithy_runtime=warn,tower_http=info")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}

/// For tests: readable logs captured per test by the test harness (shown only on failure).
pub fn init_for_tests() {
    let filter = EnvFilter::try_from_env("STACKGATE_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,aws=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}
