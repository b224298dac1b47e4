//! The `stackgate` binary: a thin shell over the library.

use std::process::ExitCode;

/// mimalloc: the policy engine clones its value trees a great deal, and glibc's allocator was
/// half of its time; it also serves the web pages' many small allocations.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use stackgate::cli::{Cli, Command, run_offline};
use stackgate::config::Config;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve => serve().await.map(|()| ExitCode::SUCCESS),
        other => run_offline(other).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("stackgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    stackgate::telemetry::init(config.log_json);
    let listen = config.listen;
    let state = stackgate::build_state(config).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("STACKGATE_LISTEN: cannot listen on {listen}: {e}"))?;
    stackgate::run(state, listener, shutdown_signal()).await
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("Shutdown was requested; stopping.");
}
