//! stackgate: a self-service infrastructure portal.
//!
//! Teams request environments rendered from pre-approved CloudFormation blueprints, approvers
//! review the exact change, and a worker deploys approved stacks into the team's AWS account
//! through a cross-account role. Every state change is written to a hash-chained audit log.
//!
//! Everything testable lives here: [`app`] builds the router from an [`AppState`], [`run`] serves
//! it with the in-process worker until a shutdown signal.

pub mod accounts;
pub mod admin;
pub mod approvals;
pub mod audit;
pub mod auth;
pub mod aws;
pub mod catalog;
pub mod change;
pub mod cli;
pub mod config;
pub mod cpu;
pub mod db;
pub mod deployments;
pub mod error;
pub mod home;
pub mod http;
pub mod ids;
pub mod notify;
pub mod policies;
pub mod requests;
pub mod servicecatalog;
pub mod state;
pub mod telemetry;
pub mod users;
pub mod web;
pub mod worker;

use secrecy::ExposeSecret;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

pub use http::app;
pub use state::AppState;

use aws::{AwsConnector, AwsSettings};
use config::Config;
use worker::Worker;

/// Connects the database, migrates, checks its settings, seeds the account registry, loads the
/// catalog and the policy rules: everything the server needs, or a clear error.
pub async fn build_state(config: Config) -> anyhow::Result<AppState> {
    let replica_lock = db::single_replica_lock(&config.database_url)?;
    let db = db::Db::connect(&config.database_url).await?;
    match &config.database_owner_url {
        Some(owner) => db.migrate_as_owner(owner.expose_secret()).await?,
        None => db.migrate().await?,
    }
    db.self_check().await?;
    accounts::store::apply_seeds(&db, &config.accounts)
        .await
        .context("registering the configured accounts")?;
    policies::store::seed(&db, &config)
        .await
        .context("storing the configured approval rules as the first policy version")?;
    let catalog = catalog::Catalog::load(&config.catalog_dir)
        .with_context(|| format!("loading blueprints from {}", config.catalog_dir.display()))?;
    catalog::store::import_bundled(&db, &config.catalog_dir)
        .await
        .with_context(|| {
            format!(
                "importing the bundled blueprints of {}",
                config.catalog_dir.display()
            )
        })?;
    let policy = catalog::PolicyEngine::load(&config.rules_dir)
        .with_context(|| format!("loading policy rules from {}", config.rules_dir.display()))?;
    let config = Arc::new(config);
    let auth = Arc::new(auth::Auth::new(db.clone(), config.clone()));
    Ok(AppState {
        gate: Arc::new(http::gate::PortalGate::new(auth.clone(), db.clone())),
        auth,
        config,
        db: db.clone(),
        catalog: Arc::new(catalog),
        library: Arc::new(catalog::versions::Library::new(db.clone())),
        policy: Arc::new(policy),
        cpu: Arc::new(cpu::CpuPool::new()),
        replica_lock,
    })
}

/// Appends the summaries of refused sign-ins once their minute is over, and the rest at stop.
async fn flush_refusals(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        let stopping = tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(10)) => false,
            _ = stop.changed() => true,
        };
        let at = db::now_ms() + if stopping { 60_000 } else { 0 };
        if let Err(e) = state.auth.guard.flush(&state.db, at).await {
            tracing::warn!(
                error = format!("{e:#}"),
                "Could not record the summary of refused sign-ins."
            );
        }
        if stopping {
            return;
        }
    }
}

/// Serves the portal on `listener` (and runs the worker and the notifier, if enabled) until
/// `shutdown` resolves; then stops claiming work, finishes in-flight requests and returns.
pub async fn run(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Notifications run beside the worker, and only when some team has a webhook.
    let notifier = if state.config.worker_enabled && state.config.notifications_enabled() {
        let notifier = notify::Notifier::new(state.db.clone(), state.config.clone())?;
        Some(tokio::spawn(notifier.run(stop_rx.clone())))
    } else {
        None
    };
    let worker = if state.config.worker_enabled {
        let connector = AwsConnector::new(AwsSettings {
            endpoint_url: state.config.aws_endpoint_url.clone(),
            sts_region: state.config.aws_region.clone(),
        })
        .await;
        let worker = Worker::new(state.db.clone(), state.config.clone(), connector);
        Some(tokio::spawn(worker.run(stop_rx.clone())))
    } else {
        None
    };
    let summaries = tokio::spawn(flush_refusals(state.clone(), stop_rx.clone()));
    let checkpoints = match &state.config.audit_signing_key {
        Some(key) => {
            tracing::info!(
                audit.key_id = key.key_id(),
                every_seconds = state.config.audit_checkpoint_seconds,
                "Audit checkpoints will be signed with this key."
            );
            let exporter = match &state.config.audit_export_bucket {
                Some(bucket) => Some(
                    audit::export::Exporter::new(
                        bucket,
                        state.config.aws_endpoint_url.as_deref(),
                        state.config.aws_region.as_deref(),
                    )
                    .await,
                ),
                None => None,
            };
            Some(tokio::spawn(audit::checkpoint::run(
                state.db.clone(),
                key.clone(),
                std::time::Duration::from_secs(state.config.audit_checkpoint_seconds),
                exporter,
                stop_rx.clone(),
            )))
        }
        None => {
            tracing::warn!(
                "No audit signing key is configured (STACKGATE_AUDIT_SIGNING_KEY or \
                 STACKGATE_AUDIT_SIGNING_KEY_FILE): the audit chain gets no signed checkpoints \
                 and evidence packs are unsigned, so a truncated or recomputed chain cannot be \
                 detected."
            );
            None
        }
    };
    let addr = listener.local_addr()?;
    tracing::info!(listen = %addr, "stackgate is listening.");
    let router = app(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let mut server_stop = stop_rx;
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        let _ = server_stop.changed().await;
    });
    let signal = tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    server.await.context("serving HTTP")?;
    signal.abort();
    if let Some(w) = worker {
        let _ = w.await;
    }
    if let Some(n) = notifier {
        let _ = n.await;
    }
    let _ = summaries.await;
    if let Some(c) = checkpoints {
        let _ = c.await;
    }
    state.db.close().await;
    tracing::info!("stackgate stopped.");
    Ok(())
}
