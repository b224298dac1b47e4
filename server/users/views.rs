//! The users pages' views.

use askama::Template;

use super::{SessionInfo, UserSummary};
use crate::config::Config;
use crate::web::{Layout, Roles, When};

/// A user as the pages show them.
pub struct UserRow {
    pub id: String,
    pub name: String,
    pub email: String,
    pub issuer: String,
    pub subject: String,
    pub groups: String,
    pub roles: String,
    pub disabled: bool,
    pub last_login: When,
}

impl UserRow {
    pub fn of(u: &UserSummary, config: &Config) -> UserRow {
        UserRow {
            id: u.id.clone(),
            name: u.name.clone().unwrap_or_else(|| u.subject.clone()),
            email: u.email.clone().unwrap_or_default(),
            issuer: u.issuer.clone(),
            subject: u.subject.clone(),
            groups: u.groups.join(", "),
            roles: role_words(&Roles::from_groups(&u.groups, config)),
            disabled: u.disabled,
            last_login: When::at(u.last_login_at),
        }
    }
}

/// "admin, approver for payments, requester for payments" (or "none").
pub fn role_words(r: &Roles) -> String {
    let mut words = Vec::new();
    if r.admin {
        words.push("admin".to_string());
    }
    if r.auditor {
        words.push("auditor".to_string());
    }
    if r.global_approver {
        words.push("approver for every team".to_string());
    }
    words.extend(r.approver_teams.iter().map(|t| format!("approver for {t}")));
    words.extend(
        r.requester_teams
            .iter()
            .map(|t| format!("requester for {t}")),
    );
    if words.is_empty() {
        "none".into()
    } else {
        words.join(", ")
    }
}

/// A session as the user's page shows it.
pub struct SessionRow {
    pub created: When,
    pub last_seen: When,
    pub source_ip: String,
}

impl SessionRow {
    pub fn of(s: &SessionInfo) -> SessionRow {
        SessionRow {
            created: When::at(s.created_at),
            last_seen: When::at(s.last_seen_at),
            source_ip: s.source_ip.clone().unwrap_or_else(|| "unknown".into()),
        }
    }
}

#[derive(Template)]
#[template(path = "users/index.html")]
pub struct UsersPage {
    pub layout: Layout,
    pub rows: Vec<UserRow>,
    pub next: Option<String>,
}

#[derive(Template)]
#[template(path = "users/show.html")]
pub struct UserPage {
    pub layout: Layout,
    pub user: UserRow,
    pub sessions: Vec<SessionRow>,
    pub pending_requests: i64,
    /// The admin looking is this user (who may not disable themselves).
    pub is_self: bool,
}
