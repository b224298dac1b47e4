//! Server-side sessions and the pre-auth login transaction.
//!
//! The browser holds only random 256-bit tokens; the database holds their SHA-256. The login
//! transaction (state, nonce, PKCE verifier) is stored sealed with a key derived from the
//! pre-auth cookie, so neither the database nor the cookie alone reveals it.

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::Row;

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

/// The value of one cookie from the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Cookie names and attributes: `__Host-` and `Secure` when the portal is served over https.
#[derive(Debug, Clone, Copy)]
pub struct Cookies {
    pub secure: bool,
}

impl Cookies {
    pub fn session_name(&self) -> &'static str {
        if self.secure {
            "__Host-stackgate_session"
        } else {
            "stackgate_session"
        }
    }

    pub fn login_name(&self) -> &'static str {
        if self.secure {
            "__Host-stackgate_login"
        } else {
            "stackgate_login"
        }
    }

    /// A `Set-Cookie` value; `max_age` 0 deletes the cookie.
    pub fn set(&self, name: &str, value: &str, max_age_secs: i64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}")
    }
}

fn keystream_block(key: &[u8], counter: u64) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(key);
    h.update(counter.to_be_bytes());
    h.finalize().into()
}

fn derive(purpose: &str, secret: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(purpose.as_bytes());
    h.update([0u8]);
    h.update(secret.as_bytes());
    h.finalize().into()
}

/// Encrypts `plain` with a key derived from `secret` (SHA-256 in counter mode) and appends a
/// keyed SHA-256 tag. Output is hex.
pub fn seal(secret: &str, plain: &[u8]) -> String {
    let key = derive("seal", secret);
    let mut out: Vec<u8> = plain
        .chunks(32)
        .enumerate()
        .flat_map(|(i, chunk)| {
            let ks = keystream_block(&key, i as u64);
            chunk.iter().zip(ks).map(|(b, k)| b ^ k).collect::<Vec<_>>()
        })
        .collect();
    let tag = tag(secret, &out);
    out.extend_from_slice(&tag);
    hex::encode(out)
}

fn tag(secret: &str, cipher: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(derive("tag", secret));
    h.update(cipher);
    h.finalize().into()
}

/// Reverses [`seal`]; `None` when the secret is wrong or the data was altered.
pub fn unseal(secret: &str, sealed: &str) -> Option<Vec<u8>> {
    let bytes = hex::decode(sealed).ok()?;
    if bytes.len() < 32 {
        return None;
    }
    let (cipher, got_tag) = bytes.split_at(bytes.len() - 32);
    let want = tag(secret, cipher);
    if !bool::from(subtle::ConstantTimeEq::ct_eq(&want[..], got_tag)) {
        return None;
    }
    let key = derive("seal", secret);
    Some(
        cipher
            .chunks(32)
            .enumerate()
            .flat_map(|(i, chunk)| {
                let ks = keystream_block(&key, i as u64);
                chunk.iter().zip(ks).map(|(b, k)| b ^ k).collect::<Vec<_>>()
            })
            .collect(),
    )
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
    .bind(seal(cookie_token, pending_json))
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
    Ok(unseal(cookie_token, &sealed).map(|plain| (plain, return_to, now_ms() - created_at)))
}

/// Creates a session for the user in the caller's transaction; returns the browser's token.
pub async fn create_session(
    tx: &mut Tx,
    user_id: &str,
    absolute_hours: i64,
    auth_time: Option<i64>,
) -> Result<String, sqlx::Error> {
    let token = new_token();
    let now = now_ms();
    sqlx::query(
        "insert into sessions (id_hash, user_id, csrf_token, created_at, last_seen_at, expires_at, auth_time) \
         values ($1, $2, $3, $4, $4, $5, $6)",
    )
    .bind(token_hash("session", &token))
    .bind(user_id.to_string())
    .bind(new_token())
    .bind(now)
    .bind(now + absolute_hours * 3_600_000)
    .bind(auth_time)
    .execute(&mut **tx)
    .await?;
    Ok(token)
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
}

pub async fn find_session(db: &Db, token: &str) -> Result<Option<SessionRow>, sqlx::Error> {
    let row = sqlx::query(
        "select s.id_hash, s.user_id, s.csrf_token, s.last_seen_at, s.expires_at, \
         u.issuer, u.subject, coalesce(u.name, u.subject), u.email, u.groups_json, u.disabled \
         from sessions s join users u on u.id = s.user_id where s.id_hash = $1",
    )
    .bind(token_hash("session", token))
    .fetch_optional(db.pool())
    .await?;
    let Some(row) = row else { return Ok(None) };
    let groups: String = row.try_get(9)?;
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
    }))
}

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
    let existing = sqlx::query("select id from users where issuer = $1 and subject = $2")
        .bind(issuer.to_string())
        .bind(subject.to_string())
        .fetch_optional(&mut **tx)
        .await?;
    if let Some(row) = existing {
        let id: String = row.try_get(0)?;
        sqlx::query(
            "update users set email = $1, name = $2, groups_json = $3, last_login_at = $4 where id = $5",
        )
        .bind(email.map(str::to_string))
        .bind(name.map(str::to_string))
        .bind(groups_json)
        .bind(now)
        .bind(id.clone())
        .execute(&mut **tx)
        .await?;
        return Ok(id);
    }
    let id = uuid::Uuid::new_v4().to_string();
    sqlx::query(
        "insert into users (id, issuer, subject, email, name, groups_json, created_at, last_login_at) \
         values ($1, $2, $3, $4, $5, $6, $7, $7)",
    )
    .bind(id.clone())
    .bind(issuer.to_string())
    .bind(subject.to_string())
    .bind(email.map(str::to_string))
    .bind(name.map(str::to_string))
    .bind(groups_json)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(id)
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

    #[test]
    fn sealed_data_opens_only_with_its_secret_and_unaltered() {
        let plain =
            b"{\"state\":\"abc\",\"nonce\":\"n\",\"pkce_verifier\":\"v\"} and more than 32 bytes";
        let sealed = seal("cookie-1", plain);
        // The ciphertext is hex: the plaintext must not appear in it as hex either.
        assert!(!sealed.contains(&hex::encode(&plain[..16])));
        assert_eq!(unseal("cookie-1", &sealed).as_deref(), Some(&plain[..]));
        assert_eq!(unseal("cookie-2", &sealed), None);
        let mut tampered = sealed.clone().into_bytes();
        tampered[0] = if tampered[0] == b'0' { b'1' } else { b'0' };
        assert_eq!(
            unseal("cookie-1", &String::from_utf8(tampered).unwrap_or_default()),
            None
        );
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::COOKIE,
            axum::http::HeaderValue::from_static(
                "a=1; stackgate_session=tok; stackgate_session_x=no",
            ),
        );
        assert_eq!(cookie(&h, "stackgate_session").as_deref(), Some("tok"));
        assert_eq!(cookie(&h, "missing"), None);
    }
}
