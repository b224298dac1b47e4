//! Who is signed in, and what they may do: the roles the IdP's groups grant (through the
//! configuration's group names only), and the checks handlers call (`user.require_approver()?`).

use serde::Serialize;

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
    /// Maps IdP groups to roles with the configured group names only: a team role comes from
    /// the groups its `[[teams]]` entry names, never from the shape of a group's name.
    pub fn from_groups(groups: &[String], config: &Config) -> Roles {
        let has = |names: &[String]| names.iter().any(|n| groups.contains(n));
        let mut roles = Roles {
            admin: has(&config.admin_groups),
            auditor: has(&config.auditor_groups),
            global_approver: has(&config.global_approver_groups),
            ..Roles::default()
        };
        for team in &config.teams {
            if has(&team.requester_groups) {
                roles.requester_teams.push(team.name.clone());
            }
            if has(&team.approver_groups) {
                roles.approver_teams.push(team.name.clone());
            }
        }
        roles.requester_teams.sort();
        roles.approver_teams.sort();
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
    /// When the IdP last confirmed the groups the roles come from (ms since the epoch).
    pub groups_checked_at: i64,
    /// When the user last authenticated at the IdP, if it said (ms since the epoch).
    pub auth_time: Option<i64>,
    /// How the user authenticated at the IdP (`amr`, e.g. `pwd`, `mfa`); empty if it did not say.
    pub amr: Vec<String>,
    /// The assurance level of that authentication (`acr`), if the IdP said.
    pub acr: Option<String>,
    /// The session this request runs in (absent for users made up by tests and the worker).
    #[serde(skip)]
    pub session: Option<SessionKey>,
}

/// A session's token hash and the browser's token itself (which opens the session's sealed
/// access token). Never printed.
#[derive(Clone)]
pub struct SessionKey {
    pub id_hash: String,
    pub token: String,
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey([redacted])")
    }
}

impl CurrentUser {
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
                "You are not a requester for team '{team}'. Ask your team lead to add you to \
                 one of the team's requester groups."
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

impl CurrentUser {
    /// The teams whose requests this user reviews: `None` for every team (global approvers).
    pub fn review_scope(&self) -> Option<Vec<String>> {
        (!self.roles.global_approver).then(|| self.roles.approver_teams.clone())
    }

    /// The teams whose requests this user sees: `None` for every team (auditors, admins,
    /// global approvers).
    pub fn scope(&self) -> Option<Vec<String>> {
        (!self.sees_all_teams()).then(|| self.visible_teams())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_configured_groups_grant_roles() {
        let c = crate::config::for_tests();
        let g = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let alice = Roles::from_groups(&g(&["payments-requesters"]), &c);
        assert_eq!(alice.requester_teams, vec!["payments"]);
        assert!(!alice.is_approver());
        let lead = Roles::from_groups(&g(&["pay-leads"]), &c);
        assert_eq!(lead.approver_teams, vec!["payments"]);
        assert!(lead.approves_for("payments") && !lead.approves_for("lending"));
        // A group shaped like a team role grants nothing unless configured.
        let stranger = Roles::from_groups(&g(&["lending-approvers", "lending-requesters"]), &c);
        assert_eq!(stranger, Roles::default());
        let carol = Roles::from_groups(&g(&["security-approvers"]), &c);
        assert!(carol.global_approver && carol.approves_for("lending"));
        assert!(carol.approver_teams.is_empty());
        let dave = Roles::from_groups(&g(&["platform-admins"]), &c);
        assert!(dave.admin);
        assert!(dave.requester_teams.is_empty());
        let erin = Roles::from_groups(&g(&["auditors"]), &c);
        assert!(erin.auditor && !erin.admin);
    }
}
