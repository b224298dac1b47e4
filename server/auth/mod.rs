//! Sign-in with OpenID Connect, server-side sessions, and what a signed-in user may do.
//!
//! The user types and extractors live in `web` (below every domain); this module loads them
//! (`sessions`), signs people in and out (`routes`), and keeps what must stay secret sealed.
//! Roles derive at every request from the groups the IdP last confirmed: at sign-in, then
//! re-confirmed at an interval and before every decision (see `sessions`).

pub mod cookies;
pub mod oidc;
pub mod routes;
pub mod seal;
pub mod sessions;
pub mod step_up;
pub mod store;
pub mod throttle;
pub mod views;

use secrecy::ExposeSecret;
use std::sync::Arc;

use tokio::sync::RwLock;

use crate::config::Config;
use crate::db::Db;
use oidc::{LoginError, OidcClient, OidcSettings};
use sessions::SessionCache;
use throttle::LoginGuard;

/// What sign-in and sessions need: the database, the configuration, the IdP client, this
/// replica's recent session checks and the sign-in guard.
pub struct Auth {
    pub db: Db,
    pub config: Arc<Config>,
    pub oidc: Oidc,
    pub sessions: SessionCache,
    pub guard: LoginGuard,
}

impl Auth {
    pub fn new(db: Db, config: Arc<Config>) -> Auth {
        let oidc = Oidc::new(OidcSettings {
            issuer_url: config.oidc_issuer.clone(),
            client_id: config.oidc_client_id.clone(),
            client_secret: openidconnect::ClientSecret::new(
                config.oidc_client_secret.expose_secret().to_string(),
            ),
            redirect_url: config.callback_url(),
        });
        Auth {
            sessions: SessionCache::new(config.session_cache_ms),
            guard: LoginGuard::new(config.login_rate_per_minute),
            oidc,
            db,
            config,
        }
    }

    /// Whether cookies carry `Secure` and the `__Host-` prefix.
    pub fn cookies(&self) -> cookies::Cookies {
        cookies::Cookies {
            secure: self.config.secure_cookies(),
        }
    }
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
