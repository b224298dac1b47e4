//! Users SQL: a bounded keyset page of users (newest sign-in first, one statement), one user with
//! their open sessions, and the admin's actions, each with its audit record in one transaction.

use sqlx::Row;

use super::{ActionOutcome, SessionInfo, UserAction, UserSummary};
use crate::audit::{self, Actor, Entry};
use crate::db::{Backend, Db, StoreError, Tx, now_ms};

const COLUMNS: &str = "id, issuer, subject, name, email, groups_json, disabled, created_at, \
    last_login_at";

/// The largest page the list returns.
pub const MAX_PAGE: i64 = 100;

fn from_row(row: &sqlx::any::AnyRow) -> Result<UserSummary, StoreError> {
    let groups: String = row.try_get(5)?;
    Ok(UserSummary {
        id: row.try_get(0)?,
        issuer: row.try_get(1)?,
        subject: row.try_get(2)?,
        name: row.try_get(3)?,
        email: row.try_get(4)?,
        groups: serde_json::from_str(&groups)
            .map_err(|e| StoreError::unreadable("user's groups", e))?,
        disabled: row.try_get::<i64, _>(6)? != 0,
        created_at: row.try_get(7)?,
        last_login_at: row.try_get(8)?,
    })
}

/// A position in the list: the `(last_login_at, id)` of the last user shown. Opaque to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub last_login_at: i64,
    pub id: String,
}

impl Cursor {
    pub fn after(u: &UserSummary) -> Cursor {
        Cursor {
            last_login_at: u.last_login_at,
            id: u.id.clone(),
        }
    }

    pub fn encode(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("{}.{}", self.last_login_at, self.id))
    }

    /// `None` for anything this portal did not hand out.
    pub fn decode(s: &str) -> Option<Cursor> {
        use base64::Engine;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (at, id) = text.split_once('.')?;
        let valid_id = !id.is_empty()
            && id.len() <= 64
            && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
        valid_id.then_some(())?;
        Some(Cursor {
            last_login_at: at.parse().ok()?,
            id: id.to_string(),
        })
    }
}

/// One page of users, newest sign-in first, after `after`; and the cursor of the next page when
/// there is one. One bounded statement (`limit` is capped at [`MAX_PAGE`]).
pub async fn page(
    db: &Db,
    after: Option<&Cursor>,
    limit: i64,
) -> Result<(Vec<UserSummary>, Option<Cursor>), StoreError> {
    let limit = limit.clamp(1, MAX_PAGE);
    let rows = match after {
        None => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "select {COLUMNS} from users order by last_login_at desc, id desc limit $1"
            )))
            .bind(limit + 1)
            .fetch_all(db.pool())
            .await?
        }
        Some(c) => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "select {COLUMNS} from users where last_login_at < $1 \
                 or (last_login_at = $1 and id < $2) \
                 order by last_login_at desc, id desc limit $3"
            )))
            .bind(c.last_login_at)
            .bind(c.id.clone())
            .bind(limit + 1)
            .fetch_all(db.pool())
            .await?
        }
    };
    let mut users = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    let next = if users.len() as i64 > limit {
        users.truncate(limit as usize);
        users.last().map(Cursor::after)
    } else {
        None
    };
    Ok((users, next))
}

/// One user, if known.
pub async fn find(db: &Db, id: &str) -> Result<Option<UserSummary>, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from users where id = $1"
    )))
    .bind(id.to_string())
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// A user's sessions that have not expired, newest first (at most [`MAX_PAGE`]).
pub async fn sessions(db: &Db, user_id: &str) -> Result<Vec<SessionInfo>, StoreError> {
    let rows = sqlx::query(
        "select created_at, last_seen_at, expires_at, source_ip from sessions \
         where user_id = $1 and expires_at > $2 order by created_at desc limit $3",
    )
    .bind(user_id.to_string())
    .bind(now_ms())
    .bind(MAX_PAGE)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(SessionInfo {
                created_at: r.try_get(0)?,
                last_seen_at: r.try_get(1)?,
                expires_at: r.try_get(2)?,
                source_ip: r.try_get(3)?,
            })
        })
        .collect()
}

/// How many of the user's requests wait for approval.
pub async fn pending_requests(db: &Db, user_id: &str) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "select count(*) from service_requests where requester_id = $1 \
         and status = 'pending_approval'",
    )
    .bind(user_id.to_string())
    .fetch_one(db.pool())
    .await?;
    Ok(row.try_get(0)?)
}

/// Locks the user's row for the transaction; whether they are disabled, `None` when unknown.
async fn lock_user(tx: &mut Tx, backend: Backend, id: &str) -> Result<Option<bool>, StoreError> {
    let lock = match backend {
        Backend::Postgres => " for update",
        Backend::Sqlite => "",
    };
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "select disabled from users where id = $1{lock}"
    )))
    .bind(id.to_string())
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row
        .map(|r| r.try_get::<i64, _>(0))
        .transpose()?
        .map(|d| d != 0))
}

/// Takes `action` on the user, with one audit record (before and after) in the same
/// transaction; `None` when there is no such user. Disabling and revoking delete the user's
/// session rows; the caller makes this replica's cache forget [`ActionOutcome::ended`].
pub async fn act(
    db: &Db,
    actor: &Actor,
    source_ip: Option<String>,
    user_id: &str,
    action: UserAction,
) -> Result<Option<ActionOutcome>, StoreError> {
    let mut tx = db.begin().await?;
    let Some(was_disabled) = lock_user(&mut tx, db.backend(), user_id).await? else {
        return Ok(None);
    };
    let ended: Vec<String> = match action {
        UserAction::Enable => Vec::new(),
        UserAction::Disable | UserAction::RevokeSessions => {
            sqlx::query("delete from sessions where user_id = $1 returning id_hash")
                .bind(user_id.to_string())
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?
        }
    };
    let disabled = match action {
        UserAction::Disable => true,
        UserAction::Enable => false,
        UserAction::RevokeSessions => was_disabled,
    };
    if disabled != was_disabled {
        sqlx::query("update users set disabled = $1 where id = $2")
            .bind(i64::from(disabled))
            .bind(user_id.to_string())
            .execute(&mut *tx)
            .await?;
    }
    let pending: i64 = sqlx::query(
        "select count(*) from service_requests where requester_id = $1 \
         and status = 'pending_approval'",
    )
    .bind(user_id.to_string())
    .fetch_one(&mut *tx)
    .await?
    .try_get(0)?;
    audit::store::append(
        &mut tx,
        Entry::new(actor, action.audit_action(), "user", user_id)
            .detail(serde_json::json!({
                "before": { "disabled": was_disabled, "sessions": ended.len() },
                "after": { "disabled": disabled, "sessions": 0 },
                "pending_requests": pending,
            }))
            .source_ip(source_ip),
    )
    .await?;
    tx.commit().await?;
    Ok(Some(ActionOutcome {
        user_id: user_id.to_string(),
        disabled,
        sessions_ended: ended.len(),
        pending_requests: pending,
        ended,
    }))
}
