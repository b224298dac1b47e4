//! Sign-in with OpenID Connect, server-side sessions, and what a signed-in user may do.
//!
//! Authentication is the [`CurrentUser`] extractor; authorization is a visible call in each
//! handler (`user.require_approver_for(team)?`), backed by the roles derived from the IdP's
//! `groups` claim at every request (never a snapshot taken at login).

pub mod oidc;
pub mod routes;
pub mod session;

use serde::Serialize;

use crate::audit::Actor;
use crate::config::Config;
use crate::error::AppError;

/// What a user's IdP groups grant.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Roles {
    /// Teams the user may request for (`<team>-requesters`).
    pub requester_teams: Vec<String>,
    /// Teams whose requests the user may approve (`<team>-approvers`).
    pub approver_teams: Vec<String>,
    /// May approve any team's requests (e.g. security).
    pub global_approver: bool,
    pub admin: bool,
    pub auditor: bool,
}

impl Roles {
    /// Maps IdP groups to roles with the configured group names.
    pub fn from_groups(groups: &[String], config: &Config) -> Roles {
        let mut roles = Roles::default();
        for g in groups {
            if config.admin_groups.contains(g) {
                roles.admin = true;
            }
            if config.auditor_groups.contains(g) {
                roles.auditor = true;
            }
            if config.global_approver_groups.contains(g) {
                roles.global_approver = true;
            } else if let Some(team) = g.strip_suffix("-approvers").filter(|t| valid_team(t)) {
                roles.approver_teams.push(team.to_string());
            }
            if let Some(team) = g.strip_suffix("-requesters").filter(|t| valid_team(t)) {
                roles.requester_teams.push(team.to_string());
            }
        }
        roles.requester_teams.sort();
        roles.requester_teams.dedup();
        roles.approver_teams.sort();
        roles.approver_teams.dedup();
        roles
    }

    pub fn is_approver(&self) -> bool {
        self.global_approver || !self.approver_teams.is_empty()
    }

    /// Whether these roles may decide on requests of `team`.
    pub fn approves_for(&self, team: &str) -> bool {
        self.global_approver || self.approver_teams.iter().any(|t| t == team)
    }
}

/// Team names: lowercase letters, digits and dashes, 2–32 characters.
pub fn valid_team(t: &str) -> bool {
    (2..=32).contains(&t.len())
        && t.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && t.as_bytes()[0].is_ascii_lowercase()
}

/// The signed-in user of this request.
#[derive(Debug, Clone, Serialize)]
pub struct CurrentUser {
    pub id: String,
    pub issuer: String,
    pub subject: String,
    pub name: String,
    pub email: Option<String>,
    pub roles: Roles,
    /// The session's anti-forgery token, echoed in every form and htmx request.
    #[serde(skip)]
    pub csrf_token: String,
    #[serde(skip)]
    pub source_ip: Option<String>,
}

impl CurrentUser {
    pub fn actor(&self) -> Actor {
        Actor {
            id: Some(self.id.clone()),
            name: self.name.clone(),
        }
    }

    /// Teams whose environments and requests the user sees.
    pub fn visible_teams(&self) -> Vec<String> {
        let mut t = self.roles.requester_teams.clone();
        t.extend(self.roles.approver_teams.iter().cloned());
        t.sort();
        t.dedup();
        t
    }

    /// Sees every team's requests (read-only for auditors).
    pub fn sees_all_teams(&self) -> bool {
        self.roles.admin || self.roles.auditor || self.roles.global_approver
    }

    pub fn can_view_team(&self, team: &str) -> bool {
        self.sees_all_teams() || self.visible_teams().iter().any(|t| t == team)
    }

    pub fn can_approve_for(&self, team: &str) -> bool {
        self.roles.approves_for(team)
    }

    pub fn require_requester_for(&self, team: &str) -> Result<(), AppError> {
        if self.roles.requester_teams.iter().any(|t| t == team) {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "You are not a requester for team '{team}'. Ask your team lead to add you to the \
                 '{team}-requesters' group."
            )))
        }
    }

    pub fn require_approver(&self) -> Result<(), AppError> {
        if self.roles.is_approver() {
            Ok(())
        } else {
            Err(AppError::Forbidden(
                "Only approvers can see the approvals inbox.".into(),
            ))
        }
    }

    pub fn require_audit_reader(&self) -> Result<(), AppError> {
        if self.roles.auditor || self.roles.admin {
            Ok(())
        } else {
            Err(AppError::Forbidden(
                "Only auditors and admins can read the audit log.".into(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn config() -> Config {
        let vars: BTreeMap<String, String> = [
            ("STACKGATE_OIDC_ISSUER", "http://127.0.0.1:9"),
            ("STACKGATE_OIDC_CLIENT_ID", "c"),
            ("STACKGATE_OIDC_CLIENT_SECRET", "s"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        match Config::from_vars(&vars) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn groups_map_to_roles() {
        let c = config();
        let g = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let alice = Roles::from_groups(&g(&["payments-requesters"]), &c);
        assert_eq!(alice.requester_teams, vec!["payments"]);
        assert!(!alice.is_approver());
        let carol = Roles::from_groups(&g(&["security-approvers"]), &c);
        assert!(carol.global_approver);
        assert!(carol.approver_teams.is_empty());
        let dave = Roles::from_groups(&g(&["platform-admins", "Bad Team-requesters"]), &c);
        assert!(dave.admin);
        assert!(dave.requester_teams.is_empty());
        let erin = Roles::from_groups(&g(&["auditors"]), &c);
        assert!(erin.auditor && !erin.admin);
    }
}
