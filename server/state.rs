//! The shared application state: cheap to clone, handed to every handler.

use std::sync::Arc;

use tokio::sync::RwLock;

use crate::auth::extract::SessionCache;
use crate::auth::oidc::{LoginError, OidcClient, OidcSettings};
use crate::catalog::Catalog;
use crate::catalog::policy::PolicyEngine;
use crate::config::Config;
use crate::db::Db;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Db,
    pub catalog: Arc<Catalog>,
    pub policy: Arc<PolicyEngine>,
    pub oidc: Arc<Oidc>,
    /// With SQLite, the lock that keeps a second replica from starting (held while alive).
    pub replica_lock: Option<Arc<std::fs::File>>,
    /// Session checks this replica made recently (see `auth::extract`).
    pub sessions: Arc<SessionCache>,
    /// Where rendering and policy checks run (off the async executor, bounded).
    pub cpu: Arc<crate::cpu::CpuPool>,
    /// Sign-in rate limits and the counts of refused sign-ins (see `auth::throttle`).
    pub login_guard: Arc<crate::auth::throttle::LoginGuard>,
}

/// The OIDC client, discovered on first use so the portal starts (and existing sessions keep
/// working) while the IdP is down; a failed discovery is retried at the next sign-in.
pub struct Oidc {
    settings: OidcSettings,
    client: RwLock<Option<Arc<OidcClient>>>,
}

impl Oidc {
    pub fn new(settings: OidcSettings) -> Oidc {
        Oidc {
            settings,
            client: RwLock::new(None),
        }
    }

    pub async fn client(&self) -> Result<Arc<OidcClient>, LoginError> {
        if let Some(c) = self.client.read().await.as_ref() {
            return Ok(c.clone());
        }
        let mut slot = self.client.write().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let client = Arc::new(OidcClient::discover(self.settings.clone()).await?);
        *slot = Some(client.clone());
        Ok(client)
    }
}
