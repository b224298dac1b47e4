//! Approvals: who may decide on a request, and what their decision does.
//!
//! Rules, enforced here on the server: nobody decides on their own request; only approvers of
//! the request's team (or global approvers such as security) decide; an approval is bound to
//! the request's content hash; the request is approved once the number of *distinct* approvers
//! its environment class needs is reached, and its deployment is queued in the same transaction.

pub mod actions;
pub mod routes;
pub mod store;
pub mod views;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::db::{Db, StoreError};
use crate::policies::{self, ApprovalRules};
use crate::requests::store::inbox_query;
use crate::requests::{self, RequestStatus, ServiceRequest};
use crate::web::{CurrentUser, Roles};
use store::Approver;

/// Approve or reject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::IntoStaticStr, strum::EnumString)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Decision {
    Approve,
    Reject,
}

impl Decision {
    /// The decision a URL names (`/requests/{id}/approve`, `/reject`).
    pub fn from_path(s: &str) -> Option<Decision> {
        s.parse().ok()
    }

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A recorded decision.
#[derive(Debug, Clone, Serialize)]
pub struct Approval {
    pub approver_id: String,
    pub approver_name: String,
    pub decision: String,
    pub comment: String,
    /// [`approval_hash`] of the request's content hash and the change set's ARN.
    pub content_hash: String,
    /// The change set the decision was about.
    pub change_set_arn: Option<String>,
    /// When the approver last signed in at the IdP (seconds since the epoch), if known.
    pub auth_time: Option<i64>,
    pub created_at: i64,
}

/// What the decision led to.
#[derive(Debug, Clone, Serialize)]
pub struct DecisionOutcome {
    pub status: RequestStatus,
    pub approvals: usize,
    pub required: u32,
    pub deployment_id: Option<String>,
    /// When a change window holds the deployment, when it opens (ms since the epoch).
    pub held_until: Option<i64>,
}

/// What one approval binds: the request's content hash (template, parameters, target, roles)
/// and the exact change set approvers reviewed. Any difference voids it (bar C3).
pub fn approval_hash(content_hash: &str, change_set_arn: &str) -> String {
    let mut h = Sha256::new();
    h.update(content_hash.as_bytes());
    h.update(b"\n");
    h.update(change_set_arn.as_bytes());
    hex::encode(h.finalize())
}

/// How many requests wait for `user`'s review, counting no further than `cap`.
pub async fn inbox_count(db: &Db, user: &CurrentUser, cap: i64) -> Result<i64, StoreError> {
    let scope = user.review_scope();
    requests::store::count(db, &inbox_query(&user.id, scope.as_deref()), cap).await
}

/// The approval rules a request is counted by: those of the version it was submitted under
/// (the settings' rules where no version is stored).
pub fn rules_of(request: &ServiceRequest, config: &Config) -> ApprovalRules {
    request
        .approval_rules
        .clone()
        .unwrap_or_else(|| ApprovalRules::from_config(config))
}

/// The groups that must be among a request's approvers under its rules: its class's groups and
/// the groups its risk flags call for ([`crate::policies::TEAM`] for the request's own team).
pub fn routed_groups(request: &ServiceRequest, config: &Config) -> Vec<String> {
    rules_of(request, config).required_groups(request.env_class, &request.risk_flags)
}

/// Whether someone with `groups` (and the roles they grant) is a member of `group` for a request
/// of `team`.
fn member_of(group: &str, groups: &[String], team: &str, config: &Config) -> bool {
    if group == policies::TEAM {
        Roles::from_groups(groups, config)
            .approver_teams
            .iter()
            .any(|t| t == team)
    } else {
        groups.iter().any(|g| g == group)
    }
}

/// Why `user` (whose IdP groups are `groups`) may not decide on `request`, if they may not. The
/// reason is also the audit action. Approvers of the team, global approvers, and members of a
/// group the request's risk flags call for may decide; never the requester (bar C2).
pub fn refusal(
    user: &CurrentUser,
    groups: &[String],
    request: &ServiceRequest,
    config: &Config,
) -> Option<(&'static str, String)> {
    if request.requester_id == user.id {
        return Some((
            "approval.denied_sod",
            "You cannot approve or reject your own request: another approver must review it."
                .into(),
        ));
    }
    let routed = routed_groups(request, config);
    if !user.can_approve_for(&request.team)
        && !routed
            .iter()
            .any(|g| member_of(g, groups, &request.team, config))
    {
        return Some((
            "approval.denied_role",
            format!("You are not an approver for team {}.", request.team),
        ));
    }
    None
}

/// Where a request stands against its approval rules.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quorum {
    /// Distinct eligible approvers.
    pub have: usize,
    /// Distinct approvals the environment class needs.
    pub need: usize,
    /// Groups that must be among the approvers (the class's, then the risk flags'), as people
    /// read them ("payments-approvers" for the request's own team).
    pub groups: Vec<String>,
    /// Of those, the groups with no eligible approver from them yet.
    pub groups_missing: Vec<String>,
    /// The version of the approval rules counted.
    pub policy_version: i64,
    /// Why some approvals do not count.
    pub problems: Vec<String>,
}

impl Quorum {
    pub fn met(&self) -> bool {
        self.have >= self.need && self.groups_missing.is_empty()
    }

    /// What the rules ask for: "2 approvals: 1 of payments-approvers, 1 of security-approvers".
    pub fn rule(&self) -> String {
        let mut text = format!(
            "{} approval{}",
            self.need,
            if self.need == 1 { "" } else { "s" }
        );
        if !self.groups.is_empty() {
            let groups: Vec<String> = self.groups.iter().map(|g| format!("1 of {g}")).collect();
            text.push_str(": ");
            text.push_str(&groups.join(", "));
        }
        text
    }

    /// "needs: 1 more approval, 1 of security-approvers" (empty when met).
    pub fn needs(&self) -> String {
        let mut parts = Vec::new();
        let more = self.need.saturating_sub(self.have);
        if more > 0 {
            parts.push(format!(
                "{more} more approval{}",
                if more == 1 { "" } else { "s" }
            ));
        }
        parts.extend(self.groups_missing.iter().map(|g| format!("1 of {g}")));
        parts.join(", ")
    }
}

/// Counts the approvals of a request as its rules say: distinct people, not the requester, not
/// disabled, still approvers of the team (or of a group its flags call for), approving no longer
/// ago than the configured age; and one from each group the flags call for (bars C4, C8).
pub fn quorum(
    request: &ServiceRequest,
    approvers: &[Approver],
    config: &Config,
    now: i64,
) -> Quorum {
    let rules = rules_of(request, config);
    let routed = rules.required_groups(request.env_class, &request.risk_flags);
    let team = request.team.as_str();
    let mut eligible: Vec<&Approver> = Vec::new();
    let mut problems = Vec::new();
    for a in approvers {
        let problem = if a.user_id == request.requester_id {
            Some(format!("{} is the requester", a.name))
        } else if a.disabled {
            Some(format!("{} has been disabled", a.name))
        } else if now - a.approved_at > config.approval_max_age_ms {
            Some(format!("the approval of {} has expired", a.name))
        } else if !Roles::from_groups(&a.groups, config).approves_for(team)
            && !routed.iter().any(|g| member_of(g, &a.groups, team, config))
        {
            Some(format!(
                "{} is no longer an approver for team {}",
                a.name, request.team
            ))
        } else {
            None
        };
        match problem {
            Some(p) => problems.push(p),
            None if eligible.iter().any(|e| e.user_id == a.user_id) => {}
            None => eligible.push(a),
        }
    }
    let words = |g: &String| policies::group_words(g, team, config);
    let groups_missing = routed
        .iter()
        .filter(|g| {
            !eligible
                .iter()
                .any(|a| member_of(g, &a.groups, team, config))
        })
        .map(words)
        .collect();
    Quorum {
        have: eligible.len(),
        need: rules.class(request.env_class).approvals as usize,
        groups: routed.iter().map(words).collect(),
        groups_missing,
        problems,
        policy_version: request.approval_policy_version,
    }
}

/// Whether the rules approve the request by themselves: a dev change with no risk flag whose
/// policy checks all passed, where the configuration allows it.
pub fn auto_approvable(request: &ServiceRequest, config: &Config) -> bool {
    config.auto_approve_dev
        && request.env_class == crate::ids::EnvClass::Dev
        && request.risk_flags.is_empty()
        && request
            .policy
            .get("passed")
            .and_then(serde_json::Value::as_bool)
            == Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::RiskFlag;
    use crate::ids::EnvClass;

    fn config() -> Config {
        let mut c = crate::config::for_tests();
        c.risk_routes = [
            (RiskFlag::StatefulReplacement, "dba-approvers".to_string()),
            (RiskFlag::NetworkWidening, "security-approvers".to_string()),
        ]
        .into();
        c
    }

    fn approver(id: &str, groups: &[&str], approved_at: i64) -> Approver {
        Approver {
            user_id: id.into(),
            name: id.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            disabled: false,
            approved_at,
        }
    }

    #[test]
    fn the_approval_hash_binds_the_change_set() {
        let a = approval_hash(
            "content",
            "arn:aws:cloudformation:eu-west-2:1:changeSet/a/1",
        );
        assert_eq!(
            a,
            approval_hash(
                "content",
                "arn:aws:cloudformation:eu-west-2:1:changeSet/a/1"
            )
        );
        assert_ne!(
            a,
            approval_hash(
                "content",
                "arn:aws:cloudformation:eu-west-2:1:changeSet/b/2"
            )
        );
        assert_ne!(
            a,
            approval_hash("other", "arn:aws:cloudformation:eu-west-2:1:changeSet/a/1")
        );
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn a_quorum_counts_distinct_eligible_people_and_one_from_each_routed_group() {
        let c = config();
        let now = 10 * 3_600_000;
        let mut r = request("alice");
        r.env_class = EnvClass::Prod;
        let team = ["payments-approvers"];
        // (a) the same approver twice counts once (C4).
        let q = quorum(
            &r,
            &[approver("bob", &team, now), approver("bob", &team, now)],
            &c,
            now,
        );
        assert_eq!((q.have, q.need, q.met()), (1, 2, false));
        assert_eq!(q.needs(), "1 more approval");
        let q = quorum(
            &r,
            &[approver("bob", &team, now), approver("ben", &team, now)],
            &c,
            now,
        );
        assert!(q.met(), "{q:?}");
        // The requester, a disabled user, an expired approval and an outsider do not count.
        let mut off = approver("dan", &team, now);
        off.disabled = true;
        let old = approver("old", &team, now - c.approval_max_age_ms - 1);
        let q = quorum(
            &r,
            &[
                approver("alice", &team, now),
                off,
                old,
                approver("lena", &["lending-approvers"], now),
            ],
            &c,
            now,
        );
        assert_eq!(q.have, 0, "{q:?}");
        assert_eq!(q.problems.len(), 4, "{q:?}");
        // A stateful replacement needs one of dba-approvers among them.
        r.risk_flags = vec![RiskFlag::StatefulReplacement];
        let q = quorum(
            &r,
            &[approver("bob", &team, now), approver("ben", &team, now)],
            &c,
            now,
        );
        assert!(!q.met());
        assert_eq!(q.needs(), "1 of dba-approvers");
        let q = quorum(
            &r,
            &[
                approver("bob", &team, now),
                approver("dora", &["dba-approvers"], now),
            ],
            &c,
            now,
        );
        assert!(
            q.met(),
            "a member of the routed group counts towards both: {q:?}"
        );
    }

    #[test]
    fn a_request_is_counted_by_the_rules_it_was_submitted_under() {
        let c = config();
        let now = 10 * 3_600_000;
        let mut r = request("alice");
        r.env_class = EnvClass::Prod;
        let rules = serde_json::json!({
            "classes": {
                "dev": { "approvals": 1 }, "test": { "approvals": 1 },
                "prod": { "approvals": 2, "groups": ["team", "security-approvers"] },
            },
        });
        r.approval_rules = ApprovalRules::parse(&rules).ok();
        r.approval_policy_version = 3;
        let team = ["payments-approvers"];
        let q = quorum(&r, &[], &c, now);
        assert_eq!(
            q.rule(),
            "2 approvals: 1 of payments-approvers or pay-leads, 1 of security-approvers"
        );
        assert_eq!(q.policy_version, 3);
        // Two team approvers are not enough: security must be among them.
        let q = quorum(
            &r,
            &[approver("bob", &team, now), approver("ben", &team, now)],
            &c,
            now,
        );
        assert_eq!((q.have, q.met()), (2, false));
        assert_eq!(q.needs(), "1 of security-approvers");
        // Security alone twice is not a team approver.
        let q = quorum(
            &r,
            &[
                approver("carol", &["security-approvers"], now),
                approver("cid", &["security-approvers"], now),
            ],
            &c,
            now,
        );
        assert_eq!(q.needs(), "1 of payments-approvers or pay-leads");
        let q = quorum(
            &r,
            &[
                approver("bob", &team, now),
                approver("carol", &["security-approvers"], now),
            ],
            &c,
            now,
        );
        assert!(q.met(), "{q:?}");
        // The same request with the settings' rules (no stored version) needs two of anyone.
        r.approval_rules = None;
        let q = quorum(
            &r,
            &[approver("bob", &team, now), approver("ben", &team, now)],
            &c,
            now,
        );
        assert!(q.met(), "{q:?}");
    }

    #[test]
    fn members_of_a_routed_group_may_decide_on_flagged_requests_only() {
        let c = config();
        let dora = user("dora", Roles::default());
        let dba = vec!["dba-approvers".to_string()];
        let mut r = request("alice");
        assert_eq!(
            refusal(&dora, &dba, &r, &c).map(|x| x.0),
            Some("approval.denied_role")
        );
        r.risk_flags = vec![RiskFlag::StatefulReplacement];
        assert_eq!(refusal(&dora, &dba, &r, &c), None);
    }

    #[test]
    fn only_clean_passing_dev_requests_are_approved_by_the_rules_and_only_when_allowed() {
        let mut c = config();
        let mut r = request("alice");
        r.policy = serde_json::json!({ "passed": true });
        assert!(!auto_approvable(&r, &c), "off by default");
        c.auto_approve_dev = true;
        assert!(auto_approvable(&r, &c));
        r.risk_flags = vec![RiskFlag::IamChange];
        assert!(!auto_approvable(&r, &c), "a flag");
        r.risk_flags = vec![];
        r.env_class = EnvClass::Prod;
        assert!(!auto_approvable(&r, &c), "prod");
        r.env_class = EnvClass::Dev;
        r.policy = serde_json::json!({ "passed": false });
        assert!(!auto_approvable(&r, &c), "a failed rule");
    }

    fn user(id: &str, roles: Roles) -> CurrentUser {
        CurrentUser {
            id: id.into(),
            issuer: "i".into(),
            subject: id.into(),
            name: id.into(),
            email: None,
            roles,
            csrf_token: String::new(),
            source_ip: None,
            groups_checked_at: 0,
            auth_time: None,
            amr: Vec::new(),
            acr: None,
            session: None,
        }
    }

    fn request(requester: &str) -> ServiceRequest {
        ServiceRequest {
            id: "r".into(),
            number: 1,
            title: "t".into(),
            team: "payments".into(),
            requester_id: requester.into(),
            requester_name: requester.into(),
            blueprint_slug: "network".into(),
            blueprint_version: "1.0.0".into(),
            blueprint_digest: "d".into(),
            account_id: "444444444444".into(),
            account_name: "dev".into(),
            region: "eu-west-2".into(),
            env_class: EnvClass::Dev,
            env_name: "core".into(),
            stack_name: "s".into(),
            params: Default::default(),
            template_body: String::new(),
            template_digest: "t".into(),
            capabilities: vec![],
            content_hash: "h".into(),
            policy: serde_json::Value::Null,
            status: RequestStatus::PendingApproval,
            status_reason: None,
            version: 1,
            created_at: 0,
            updated_at: 0,
            kind: "environment".into(),
            environment_id: None,
            risk_flags: vec![],
            approval_mode: "approvals".into(),
            emergency: None,
            requester_disabled: false,
            approval_policy_version: 1,
            approval_rules: None,
        }
    }

    #[test]
    fn requesters_cannot_decide_on_their_own_requests_even_as_approvers() {
        let both = Roles {
            requester_teams: vec!["payments".into()],
            approver_teams: vec!["payments".into()],
            ..Roles::default()
        };
        let frank = user("frank", both);
        let refusal = refusal(&frank, &[], &request("frank"), &config()).map(|r| r.0);
        assert_eq!(refusal, Some("approval.denied_sod"));
        let admin = user(
            "dave",
            Roles {
                admin: true,
                global_approver: true,
                ..Roles::default()
            },
        );
        assert_eq!(refusal_of(&admin, "dave"), Some("approval.denied_sod"));
    }

    fn refusal_of(u: &CurrentUser, requester: &str) -> Option<&'static str> {
        refusal(u, &[], &request(requester), &config()).map(|r| r.0)
    }

    #[test]
    fn only_approvers_of_the_team_or_global_approvers_decide() {
        let bob = user(
            "bob",
            Roles {
                approver_teams: vec!["payments".into()],
                ..Roles::default()
            },
        );
        assert_eq!(refusal_of(&bob, "alice"), None);
        let lending = user(
            "lena",
            Roles {
                approver_teams: vec!["lending".into()],
                ..Roles::default()
            },
        );
        assert_eq!(refusal_of(&lending, "alice"), Some("approval.denied_role"));
        let carol = user(
            "carol",
            Roles {
                global_approver: true,
                ..Roles::default()
            },
        );
        assert_eq!(refusal_of(&carol, "alice"), None);
        let erin = user(
            "erin",
            Roles {
                auditor: true,
                ..Roles::default()
            },
        );
        assert_eq!(refusal_of(&erin, "alice"), Some("approval.denied_role"));
    }
}
