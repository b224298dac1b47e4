//! Sign-in SQL: logins in progress, server-side sessions and users.
//!
//! The browser holds only random 256-bit tokens; the database holds their SHA-256. What must be
//! kept secret between two requests (a login's state, nonce and PKCE verifier; a session's IdP
//! access token) is stored sealed under a key only the browser's cookie gives ([`super::seal`]).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::oidc::AccessGrant;
use super::seal::{self, Purpose};
use crate::db::{Db, Tx, now_ms};

/// How long a login may take between leaving for the IdP and coming back.
pub const LOGIN_TTL_MS: i64 = 10 * 60 * 1000;

/// A fresh 256-bit token from the OS's CSPRNG, URL-safe base64.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The stored form of a token.
pub fn token_hash(purpose: &str, token: &str) -> String {
    let mut h = Sha256::new();
    h.update(purpose.as_bytes());
    h.update([0u8]);
    h.update(token.as_bytes());
    hex::encode(h.finalize())
}

/// What a pending login's seal is bound to besides the cookie: the fields stored in the clear.
fn login_aad(return_to: &str, created_at: i64) -> Vec<u8> {
    format!("{return_to}\0{created_at}").into_bytes()
}

/// Stores a login in progress under the pre-auth cookie's token.
pub async fn save_pending_login(
    db: &Db,
    cookie_token: &str,
    pending_json: &[u8],
    return_to: &str,
) -> Result<(), sqlx::Error> {
    let now = now_ms();
    let mut tx = db.begin().await?;
    // Expired logins are garbage: clear them as we go.
    sqlx::query("delete from pending_logins where created_at < $1")
        .bind(now - LOGIN_TTL_MS)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "insert into pending_logins (id_hash, sealed, return_to, created_at) values ($1, $2, $3, $4)",
    )
    .bind(token_hash("login", cookie_token))
    .bind(
        seal::seal(
            cookie_token,
            Purpose::PendingLogin,
            &login_aad(return_to, now),
            pending_json,
        )
        .ok_or_else(|| sqlx::Error::Protocol("cannot seal the pending login".into()))?,
    )
    .bind(return_to.to_string())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Takes (reads and deletes: single use) the login stored under the cookie's token.
/// Returns the plain pending-login bytes, the return path and its age in milliseconds.
pub async fn take_pending_login(
    db: &Db,
    cookie_token: &str,
) -> Result<Option<(Vec<u8>, String, i64)>, sqlx::Error> {
    let id_hash = token_hash("login", cookie_token);
    let mut tx = db.begin().await?;
    let row =
        sqlx::query("select sealed, return_to, created_at from pending_logins where id_hash = $1")
            .bind(id_hash.clone())
            .fetch_optional(&mut *tx)
            .await?;
    sqlx::query("delete from pending_logins where id_hash = $1")
        .bind(id_hash)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    let Some(row) = row else { return Ok(None) };
    let sealed: String = row.try_get(0)?;
    let return_to: String = row.try_get(1)?;
    let created_at: i64 = row.try_get(2)?;
    // A return path or start time changed in the database no longer opens the seal.
    let aad = login_aad(&return_to, created_at);
    Ok(
        seal::open(cookie_token, Purpose::PendingLogin, &aad, &sealed)
            .map(|plain| (plain, return_to, now_ms() - created_at)),
    )
}

/// A session's IdP access token, as sealed in the session row.
#[derive(Serialize, Deserialize)]
struct SealedGrant {
    token: String,
    expires_at: Option<i64>,
}

/// How the user authenticated at the IdP for a session, as the ID token said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Authentication {
    /// `auth_time`, in milliseconds since the epoch.
    pub auth_time: Option<i64>,
    /// `amr`: the methods used (e.g. `pwd`, `mfa`); empty when not said.
    pub amr: Vec<String>,
    /// `acr`: the assurance level, when said.
    pub acr: Option<String>,
    /// The address the sign-in came from (shown to admins with the user's sessions).
    pub source_ip: Option<String>,
}

/// Creates a session for the user in the caller's transaction, keeping the login's access token
/// sealed under the new session token; returns that token (for the browser's cookie).
pub async fn create_session(
    tx: &mut Tx,
    user_id: &str,
    absolute_hours: i64,
    authn: &Authentication,
    grant: Option<&AccessGrant>,
) -> Result<String, sqlx::Error> {
    let token = new_token();
    let id_hash = token_hash("session", &token);
    let now = now_ms();
    let sealed = grant.and_then(|g| {
        let plain = serde_json::to_vec(&SealedGrant {
            token: g.token.secret().clone(),
            expires_at: g.expires_at.map(|t| t.timestamp_millis()),
        })
        .ok()?;
        seal::seal(&token, Purpose::AccessToken, id_hash.as_bytes(), &plain)
    });
    sqlx::query(
        "insert into sessions (id_hash, user_id, csrf_token, created_at, last_seen_at, expires_at, \
         auth_time, groups_checked_at, access_token_sealed, amr_json, acr, source_ip) \
         values ($1, $2, $3, $4, $4, $5, $6, $4, $7, $8, $9, $10)",
    )
    .bind(id_hash)
    .bind(user_id.to_string())
    .bind(new_token())
    .bind(now)
    .bind(now + absolute_hours * 3_600_000)
    .bind(authn.auth_time)
    .bind(sealed)
    .bind(if authn.amr.is_empty() {
        None
    } else {
        serde_json::to_string(&authn.amr).ok()
    })
    .bind(authn.acr.clone())
    .bind(authn.source_ip.clone())
    .execute(&mut **tx)
    .await?;
    Ok(token)
}

/// The access token of a session, opened with the browser's session token; `None` when there is
/// none, it cannot be opened, or it has expired.
pub fn access_token(cookie_token: &str, row: &SessionRow) -> Option<openidconnect::AccessToken> {
    let sealed = row.access_token_sealed.as_deref()?;
    let plain = seal::open(
        cookie_token,
        Purpose::AccessToken,
        row.id_hash.as_bytes(),
        sealed,
    )?;
    let grant: SealedGrant = serde_json::from_slice(&plain).ok()?;
    if grant.expires_at.is_some_and(|t| t <= now_ms()) {
        return None;
    }
    Some(openidconnect::AccessToken::new(grant.token))
}

/// A session row joined with its user.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id_hash: String,
    pub user_id: String,
    pub csrf_token: String,
    pub last_seen_at: i64,
    pub expires_at: i64,
    pub issuer: String,
    pub subject: String,
    pub name: String,
    pub email: Option<String>,
    pub groups: Vec<String>,
    pub disabled: bool,
    /// When the IdP last confirmed the user's groups for this session.
    pub groups_checked_at: i64,
    /// When the user last authenticated at the IdP (`auth_time`), if known.
    pub auth_time: Option<i64>,
    pub access_token_sealed: Option<String>,
    /// How the user authenticated (`amr`); empty when the IdP did not say.
    pub amr: Vec<String>,
    /// The assurance level of the authentication (`acr`), if the IdP said.
    pub acr: Option<String>,
}

pub async fn find_session(db: &Db, token: &str) -> Result<Option<SessionRow>, sqlx::Error> {
    let row = sqlx::query(
        "select s.id_hash, s.user_id, s.csrf_token, s.last_seen_at, s.expires_at, \
         u.issuer, u.subject, coalesce(u.name, u.subject), u.email, u.groups_json, u.disabled, \
         coalesce(s.groups_checked_at, s.created_at), s.auth_time, s.access_token_sealed, \
         s.amr_json, s.acr \
         from sessions s join users u on u.id = s.user_id where s.id_hash = $1",
    )
    .bind(token_hash("session", token))
    .fetch_optional(db.pool())
    .await?;
    let Some(row) = row else { return Ok(None) };
    let groups: String = row.try_get(9)?;
    let amr: Option<String> = row.try_get(14)?;
    Ok(Some(SessionRow {
        id_hash: row.try_get(0)?,
        user_id: row.try_get(1)?,
        csrf_token: row.try_get(2)?,
        last_seen_at: row.try_get(3)?,
        expires_at: row.try_get(4)?,
        issuer: row.try_get(5)?,
        subject: row.try_get(6)?,
        name: row.try_get(7)?,
        email: row.try_get(8)?,
        groups: serde_json::from_str(&groups).unwrap_or_default(),
        disabled: row.try_get::<i64, _>(10)? != 0,
        groups_checked_at: row.try_get(11)?,
        auth_time: row.try_get(12)?,
        access_token_sealed: row.try_get(13)?,
        // Unreadable methods count as none: a step-up check then asks for them again.
        amr: amr
            .and_then(|a| serde_json::from_str(&a).ok())
            .unwrap_or_default(),
        acr: row.try_get(15)?,
    }))
}

/// Not counted as a write for the read cache ([`Db::read_row`]): no list shows sessions.
pub async fn touch_session(db: &Db, id_hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("update sessions set last_seen_at = $1 where id_hash = $2")
        .bind(now_ms())
        .bind(id_hash.to_string())
        .execute(db.pool())
        .await
        .map(|_| ())
}

pub async fn delete_session(tx: &mut Tx, id_hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("delete from sessions where id_hash = $1")
        .bind(id_hash.to_string())
        .execute(&mut **tx)
        .await
        .map(|_| ())
}

/// Whether an admin has disabled the user.
pub async fn is_disabled(tx: &mut Tx, user_id: &str) -> Result<bool, sqlx::Error> {
    let row = sqlx::query("select disabled from users where id = $1")
        .bind(user_id.to_string())
        .fetch_one(&mut **tx)
        .await?;
    Ok(row.try_get::<i64, _>(0)? != 0)
}

/// Inserts or refreshes the user keyed by (issuer, subject); returns the user's id.
pub async fn upsert_user(
    tx: &mut Tx,
    issuer: &str,
    subject: &str,
    email: Option<&str>,
    name: Option<&str>,
    groups: &[String],
) -> Result<String, sqlx::Error> {
    let now = now_ms();
    let groups_json = serde_json::to_string(groups).unwrap_or_else(|_| "[]".into());
    sqlx::query(
        "insert into users (id, issuer, subject, email, name, groups_json, created_at, last_login_at) \
         values ($1, $2, $3, $4, $5, $6, $7, $7) \
         on conflict (issuer, subject) do update set email = excluded.email, \
         name = excluded.name, groups_json = excluded.groups_json, \
         last_login_at = excluded.last_login_at returning id",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(issuer.to_string())
    .bind(subject.to_string())
    .bind(email.map(str::to_string))
    .bind(name.map(str::to_string))
    .bind(groups_json)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?
    .try_get(0)
}

/// Records the groups the IdP just confirmed for a user, and when, for this session.
pub async fn record_groups(
    db: &Db,
    user_id: &str,
    session_id_hash: &str,
    groups: &[String],
) -> Result<i64, sqlx::Error> {
    let now = now_ms();
    let mut tx = db.begin().await?;
    sqlx::query("update users set groups_json = $1 where id = $2")
        .bind(serde_json::to_string(groups).unwrap_or_else(|_| "[]".into()))
        .bind(user_id.to_string())
        .execute(&mut *tx)
        .await?;
    sqlx::query("update sessions set groups_checked_at = $1 where id_hash = $2")
        .bind(now)
        .bind(session_id_hash.to_string())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_bit_and_distinct() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a, b);
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).map(|v| v.len()).ok(), Some(32));
    }
}
