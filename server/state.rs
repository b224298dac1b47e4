//! The shared application state: cheap to clone, handed to every domain's handlers. Modules below
//! the domains (`auth`, `audit`, `catalog`) take only the parts they need, through `FromRef`.

use std::sync::Arc;

use axum::extract::FromRef;

use crate::auth::Auth;
use crate::catalog::Catalog;
use crate::catalog::policy::PolicyEngine;
use crate::catalog::versions::Library;
use crate::config::Config;
use crate::cpu::CpuPool;
use crate::db::Db;
use crate::web::Gate;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Db,
    /// The bundled blueprint folders as loaded at start (imported into `library`).
    pub catalog: Arc<Catalog>,
    /// Stored blueprint versions, compiled on demand: what requests render from.
    pub library: Arc<Library>,
    pub policy: Arc<PolicyEngine>,
    /// Sign-in, sessions and the IdP client.
    pub auth: Arc<Auth>,
    /// Session loading and the inbox badge, for the extractors (see `web::Gate`).
    pub gate: Arc<dyn Gate>,
    /// Where rendering and policy checks run (off the async executor, bounded).
    pub cpu: Arc<CpuPool>,
    /// With SQLite, the lock that keeps a second replica from starting (held while alive).
    pub replica_lock: Option<Arc<std::fs::File>>,
}

impl FromRef<AppState> for Arc<dyn Gate> {
    fn from_ref(state: &AppState) -> Self {
        state.gate.clone()
    }
}

impl FromRef<AppState> for Arc<Auth> {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}

impl FromRef<AppState> for Db {
    fn from_ref(state: &AppState) -> Self {
        state.db.clone()
    }
}

impl FromRef<AppState> for Arc<Catalog> {
    fn from_ref(state: &AppState) -> Self {
        state.catalog.clone()
    }
}

impl FromRef<AppState> for Arc<Library> {
    fn from_ref(state: &AppState) -> Self {
        state.library.clone()
    }
}

impl FromRef<AppState> for Arc<Config> {
    fn from_ref(state: &AppState) -> Self {
        state.config.clone()
    }
}
