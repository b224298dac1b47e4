//! Who is asking: the session named by the cookie, checked (idle and absolute lifetime, disabled
//! user), with roles from the groups the IdP last confirmed. A page or API call counts as
//! activity; a background poll ([`Use::Passive`]) does not extend an idle session.
//!
//! Groups are re-confirmed with the IdP's userinfo endpoint once the last confirmation is older
//! than `STACKGATE_GROUPS_REFRESH_SECONDS`, and always before a decision ([`confirm_groups`]).
//! If the IdP refuses the session's token the session ends; if it cannot be reached, the last
//! confirmed groups stand for reading (existing sessions keep working while the IdP is down),
//! but a decision waits until they can be confirmed.
//!
//! A reading request may reuse this replica's check of a session for `STACKGATE_SESSION_CACHE_MS`
//! (1 s by default); every write checks the database.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::http::request::Parts;

use super::Auth;
use super::oidc::GroupsError;
use super::store::{self, SessionRow};
use crate::db::now_ms;
use crate::error::AppError;
use crate::web::{CurrentUser, Roles, SessionKey, Use};

/// Sessions checked recently on this replica, by token hash.
pub struct SessionCache {
    ttl: Duration,
    cache: moka::sync::Cache<String, (SessionRow, Instant)>,
}

impl SessionCache {
    pub fn new(ttl_ms: u64) -> SessionCache {
        SessionCache {
            ttl: Duration::from_millis(ttl_ms),
            cache: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_millis(ttl_ms.max(1)))
                .build(),
        }
    }

    fn get(&self, id_hash: &str) -> Option<SessionRow> {
        if self.ttl.is_zero() {
            return None;
        }
        self.cache
            .get(id_hash)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(row, _)| row)
    }

    fn put(&self, row: &SessionRow) {
        if !self.ttl.is_zero() {
            self.cache
                .insert(row.id_hash.clone(), (row.clone(), Instant::now()));
        }
    }

    /// Forgets a session at once (signed out, ended, its user disabled).
    pub fn forget(&self, id_hash: &str) {
        self.cache.invalidate(id_hash);
    }
}

/// The session of this request, checked; `None` when there is no valid session (an ended one is
/// deleted on the way).
async fn session(auth: &Auth, token: &str, how: Use) -> Result<Option<SessionRow>, AppError> {
    let id_hash = store::token_hash("session", token);
    let cached = match how {
        Use::Write => None,
        Use::Read | Use::Passive => auth.sessions.get(&id_hash),
    };
    let mut row = match cached {
        Some(row) => row,
        None => match store::find_session(&auth.db, token).await? {
            Some(row) => row,
            None => {
                // Ended elsewhere (signed out, revoked, user disabled on another replica): the
                // reads that follow must not be served from this replica's cache.
                auth.sessions.forget(&id_hash);
                return Ok(None);
            }
        },
    };
    let now = now_ms();
    let idle_ms = auth.config.session_idle_minutes * 60_000;
    if row.disabled || now > row.expires_at || now - row.last_seen_at > idle_ms {
        end_session(auth, &row.id_hash).await?;
        return Ok(None);
    }
    if how != Use::Passive && now - row.last_seen_at > 30_000 {
        store::touch_session(&auth.db, &row.id_hash).await?;
        row.last_seen_at = now;
    }
    auth.sessions.put(&row);
    Ok(Some(row))
}

async fn end_session(auth: &Auth, id_hash: &str) -> Result<(), AppError> {
    auth.sessions.forget(id_hash);
    let mut tx = auth.db.begin().await?;
    store::delete_session(&mut tx, id_hash).await?;
    tx.commit().await?;
    Ok(())
}

/// Asks the IdP for the user's groups now and records them. `Ok(false)` when the IdP could not
/// confirm them (unreachable, or the session holds no usable token); the session is ended when
/// the IdP refuses its token.
async fn refresh_groups(auth: &Auth, token: &str, row: &mut SessionRow) -> Result<bool, AppError> {
    let Some(access) = store::access_token(token, row) else {
        return Ok(false);
    };
    let Ok(client) = auth.oidc.client().await else {
        return Ok(false);
    };
    match client.current_groups(&access, &row.subject).await {
        Ok(groups) => {
            let at = store::record_groups(&auth.db, &row.user_id, &row.id_hash, &groups).await?;
            row.groups = groups;
            row.groups_checked_at = at;
            auth.sessions.put(row);
            Ok(true)
        }
        Err(GroupsError::Rejected { why, .. }) => {
            tracing::info!(user.id = %row.user_id, "The identity provider refused a session's token ({why}); the session ends.");
            end_session(auth, &row.id_hash).await?;
            Err(AppError::Unauthenticated {
                return_to: "/".into(),
            })
        }
        Err(GroupsError::Unavailable(_)) => Ok(false),
    }
}

fn user_of(auth: &Auth, row: SessionRow, token: &str, parts: &Parts) -> CurrentUser {
    CurrentUser {
        id: row.user_id,
        roles: Roles::from_groups(&row.groups, &auth.config),
        issuer: row.issuer,
        subject: row.subject,
        name: row.name,
        email: row.email,
        csrf_token: row.csrf_token,
        source_ip: client_ip(parts),
        groups_checked_at: row.groups_checked_at,
        auth_time: row.auth_time,
        amr: row.amr,
        acr: row.acr,
        session: Some(SessionKey {
            id_hash: row.id_hash,
            token: token.to_string(),
        }),
    }
}

/// Loads the user of the session the request's cookie names. `None` without a valid session.
pub async fn load_user(
    auth: &Auth,
    parts: &Parts,
    how: Use,
) -> Result<Option<CurrentUser>, AppError> {
    let c = auth.cookies();
    let Some(token) = c.get(&parts.headers, c.session_name()) else {
        return Ok(None);
    };
    let Some(mut row) = session(auth, &token, how).await? else {
        return Ok(None);
    };
    let stale = now_ms() - row.groups_checked_at > auth.config.groups_refresh_seconds * 1000;
    if how != Use::Passive && stale {
        refresh_groups(auth, &token, &mut row).await?;
    }
    Ok(Some(user_of(auth, row, &token, parts)))
}

/// Before a decision: the user's groups confirmed by the IdP just now, and their roles from
/// them. When the IdP cannot confirm them, the user is sent to sign in again and comes back to
/// `return_to`.
pub async fn confirm_groups(
    auth: &Auth,
    user: &mut CurrentUser,
    return_to: &str,
) -> Result<(), AppError> {
    let again = || AppError::Unauthenticated {
        return_to: return_to.to_string(),
    };
    let Some(key) = user.session.clone() else {
        return Err(again());
    };
    let Some(mut row) = store::find_session(&auth.db, &key.token).await? else {
        return Err(again());
    };
    match refresh_groups(auth, &key.token, &mut row).await {
        Ok(true) => {
            user.roles = Roles::from_groups(&row.groups, &auth.config);
            user.groups_checked_at = row.groups_checked_at;
            Ok(())
        }
        Ok(false) | Err(AppError::Unauthenticated { .. }) => Err(again()),
        Err(e) => Err(e),
    }
}

/// The client's address, when the server was started with connection info.
pub fn client_ip(parts: &Parts) -> Option<String> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
}
