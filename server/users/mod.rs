//! Users and sessions, for admins: the people the portal has seen (keyed by issuer and subject),
//! their groups and roles at their last sign-in, their open sessions; disabling a user (their
//! sessions end, their pending requests are flagged, sign-in is refused), enabling them again,
//! and ending their sessions without disabling them.
//!
//! Sessions are checked against the database on every write and at least every
//! `STACKGATE_SESSION_CACHE_MS` on reads: deleting a user's session rows ends them on this
//! replica at once (its cache forgets them) and on every other replica within that time.

pub mod routes;
pub mod store;
pub mod views;

use serde::Serialize;

use crate::error::AppError;
use crate::web::CurrentUser;

/// A user as the admin list shows it.
#[derive(Debug, Clone, Serialize)]
pub struct UserSummary {
    pub id: String,
    pub issuer: String,
    pub subject: String,
    pub name: Option<String>,
    pub email: Option<String>,
    /// The IdP's groups at the user's last sign-in (or last confirmation).
    pub groups: Vec<String>,
    pub disabled: bool,
    pub created_at: i64,
    pub last_login_at: i64,
}

/// One open session of a user. Never its key: only when and where.
#[derive(Debug, Clone, Serialize)]
pub struct SessionInfo {
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
    pub source_ip: Option<String>,
}

/// An action an admin takes on a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserAction {
    Disable,
    Enable,
    RevokeSessions,
}

impl UserAction {
    /// The action a URL names (`/admin/users/{id}/disable`, `/enable`, `/revoke-sessions`).
    pub fn from_path(s: &str) -> Option<UserAction> {
        match s {
            "disable" => Some(UserAction::Disable),
            "enable" => Some(UserAction::Enable),
            "revoke-sessions" => Some(UserAction::RevokeSessions),
            _ => None,
        }
    }

    /// The audit action.
    pub fn audit_action(self) -> &'static str {
        match self {
            UserAction::Disable => "user.disabled",
            UserAction::Enable => "user.enabled",
            UserAction::RevokeSessions => "user.sessions_revoked",
        }
    }
}

/// What an action did.
#[derive(Debug, Clone, Serialize)]
pub struct ActionOutcome {
    pub user_id: String,
    pub disabled: bool,
    /// Sessions ended by the action.
    pub sessions_ended: usize,
    /// The user's requests waiting for approval (flagged "requester disabled" while disabled).
    pub pending_requests: i64,
    /// Session keys (hashes) ended, for this replica's cache to forget.
    #[serde(skip)]
    pub ended: Vec<String>,
}

/// Only admins manage users: pages answer 403 to others (the API answers 404, see routes).
pub fn require_admin(user: &CurrentUser) -> Result<(), AppError> {
    if user.roles.admin {
        Ok(())
    } else {
        Err(AppError::Forbidden("Only admins can manage users.".into()))
    }
}

/// Why an admin may not take `action` on `target_id`, if they may not: nobody disables
/// themselves (the portal would lose its last admin session to a slip of the mouse).
pub fn refusal(admin: &CurrentUser, target_id: &str, action: UserAction) -> Option<String> {
    (action == UserAction::Disable && admin.id == target_id).then(|| {
        "You cannot disable yourself: ask another admin, so that an admin is always left.".into()
    })
}
