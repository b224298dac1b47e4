//! Service requests: a team's order of a blueprint into one of its accounts, and the explicit
//! state machine every request moves through.

pub mod actions;
pub mod addresses;
mod form;
pub mod input;
pub mod routes;
pub mod store;
pub mod views;

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::db::Db;
use crate::error::AppError;
use crate::ids::EnvClass;
use crate::web::CurrentUser;

/// Where a request is in its life.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    serde::Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
)]
#[strum(serialize_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    Draft,
    /// Submitted and policy-checked; the worker is creating the CloudFormation change set that
    /// approvers will review.
    Preparing,
    PendingApproval,
    Approved,
    Deploying,
    Deployed,
    Failed,
    Rejected,
    Cancelled,
    /// The deployment stopped where a person must decide (a failed rollback, content that no
    /// longer matches its approval): nothing moves it on automatically.
    NeedsAttention,
    /// The change set showed the stack already matches: nothing to approve or deploy.
    NoChanges,
    /// Nobody completed the review in time, or the approvals aged out before it could run.
    Expired,
}

/// What can happen to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Submit,
    /// The change set is ready for review.
    ChangeSetReady,
    /// The change set shows no change.
    NoChanges,
    /// The approval quorum was reached (or the rules, or a break-glass release, allowed it).
    Approve,
    Reject,
    Cancel,
    StartDeployment,
    DeploymentSucceeded,
    DeploymentFailed,
    /// The worker stopped and a person must look (see [`RequestStatus::NeedsAttention`]).
    Flag,
    /// The change set went stale (the stack changed, or it was removed): back to review with a
    /// fresh one; earlier approvals bound the old one and no longer count.
    Refresh,
    Expire,
}

impl Transition {
    pub const ALL: [Transition; 12] = [
        Transition::Submit,
        Transition::ChangeSetReady,
        Transition::NoChanges,
        Transition::Approve,
        Transition::Reject,
        Transition::Cancel,
        Transition::StartDeployment,
        Transition::DeploymentSucceeded,
        Transition::DeploymentFailed,
        Transition::Flag,
        Transition::Refresh,
        Transition::Expire,
    ];
}

/// A transition that is not allowed from the current status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a request that is {from} cannot be {verb}")]
pub struct InvalidTransition {
    pub from: RequestStatus,
    pub verb: &'static str,
}

impl RequestStatus {
    pub const ALL: [RequestStatus; 12] = [
        RequestStatus::Draft,
        RequestStatus::Preparing,
        RequestStatus::PendingApproval,
        RequestStatus::Approved,
        RequestStatus::Deploying,
        RequestStatus::Deployed,
        RequestStatus::Failed,
        RequestStatus::Rejected,
        RequestStatus::Cancelled,
        RequestStatus::NeedsAttention,
        RequestStatus::NoChanges,
        RequestStatus::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn parse(s: &str) -> Option<RequestStatus> {
        s.parse().ok()
    }

    /// Words for people.
    pub fn label(self) -> &'static str {
        match self {
            RequestStatus::Draft => "draft",
            RequestStatus::Preparing => "preparing the change set",
            RequestStatus::PendingApproval => "pending approval",
            RequestStatus::Approved => "approved",
            RequestStatus::Deploying => "deploying",
            RequestStatus::Deployed => "deployed",
            RequestStatus::Failed => "failed",
            RequestStatus::Rejected => "rejected",
            RequestStatus::Cancelled => "cancelled",
            RequestStatus::NeedsAttention => "needs attention",
            RequestStatus::NoChanges => "no changes",
            RequestStatus::Expired => "expired",
        }
    }

    /// Terminal states absorb: nothing moves a request out of them.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RequestStatus::Deployed
                | RequestStatus::Failed
                | RequestStatus::Rejected
                | RequestStatus::Cancelled
                | RequestStatus::NeedsAttention
                | RequestStatus::NoChanges
                | RequestStatus::Expired
        )
    }

    /// The one place that says which transitions are allowed.
    pub fn apply(self, t: Transition) -> Result<RequestStatus, InvalidTransition> {
        use RequestStatus as S;
        use Transition as T;
        let next = match (self, t) {
            (S::Draft, T::Submit) => Some(S::Preparing),
            (S::Preparing, T::ChangeSetReady) => Some(S::PendingApproval),
            (S::Preparing, T::NoChanges) => Some(S::NoChanges),
            (S::PendingApproval, T::Approve) => Some(S::Approved),
            (S::PendingApproval, T::Reject) => Some(S::Rejected),
            (S::Draft | S::Preparing | S::PendingApproval | S::Approved, T::Cancel) => {
                Some(S::Cancelled)
            }
            (S::Approved, T::StartDeployment) => Some(S::Deploying),
            (S::Deploying, T::DeploymentSucceeded) => Some(S::Deployed),
            (S::Preparing | S::Approved | S::Deploying, T::DeploymentFailed) => Some(S::Failed),
            (S::Preparing | S::Approved | S::Deploying, T::Flag) => Some(S::NeedsAttention),
            (S::PendingApproval | S::Approved, T::Refresh) => Some(S::Preparing),
            (S::PendingApproval | S::Approved, T::Expire) => Some(S::Expired),
            _ => None,
        };
        next.ok_or(InvalidTransition {
            from: self,
            verb: match t {
                T::Submit => "submitted",
                T::ChangeSetReady => "sent for review",
                T::NoChanges => "closed as unchanged",
                T::Approve => "approved",
                T::Reject => "rejected",
                T::Cancel => "cancelled",
                T::StartDeployment => "deployed",
                T::DeploymentSucceeded => "marked deployed",
                T::DeploymentFailed => "marked failed",
                T::Flag => "flagged for attention",
                T::Refresh => "sent back for a fresh change set",
                T::Expire => "expired",
            },
        })
    }
}

impl fmt::Display for RequestStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A stored request.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceRequest {
    pub id: String,
    pub number: i64,
    pub title: String,
    pub team: String,
    pub requester_id: String,
    pub requester_name: String,
    pub blueprint_slug: String,
    pub blueprint_version: String,
    pub blueprint_digest: String,
    pub account_id: String,
    pub account_name: String,
    pub region: String,
    pub env_class: EnvClass,
    pub env_name: String,
    pub stack_name: String,
    pub params: BTreeMap<String, serde_json::Value>,
    #[serde(skip)]
    pub template_body: String,
    pub template_digest: String,
    /// CloudFormation capabilities of the change set (from the blueprint, bound by the hash).
    pub capabilities: Vec<String>,
    /// What an approval covers: see [`Binding`].
    pub content_hash: String,
    pub policy: serde_json::Value,
    pub status: RequestStatus,
    pub status_reason: Option<String>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// The blueprint's kind when requested (`environment`, `workload`, …).
    pub kind: String,
    /// For a workload: the request of the environment it went into.
    pub environment_id: Option<String>,
    /// What the change set showed (empty until it is ready).
    pub risk_flags: Vec<crate::change::RiskFlag>,
    /// How it was released: `approvals`, `auto` (the rules allowed it) or `emergency`.
    pub approval_mode: String,
    /// The break-glass release, if it was one.
    pub emergency: Option<Emergency>,
    /// An admin has disabled the requester.
    pub requester_disabled: bool,
    /// The version of the approval rules the request was submitted under; it is counted by
    /// them until decided (see `policies`).
    pub approval_policy_version: i64,
    /// Those rules (`None` only where no version is stored, e.g. in unit tests: the settings'
    /// rules then apply).
    #[serde(skip)]
    pub approval_rules: Option<crate::policies::ApprovalRules>,
}

/// A break-glass release: an admin released the change without approvals, with a reason; it
/// stays unreviewed until a second person signs it off.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Emergency {
    pub released_by: String,
    pub released_by_name: String,
    pub reason: String,
    pub released_at: i64,
    pub reviewed_by: Option<String>,
    pub reviewed_by_name: Option<String>,
    pub review_comment: Option<String>,
    pub reviewed_at: Option<i64>,
}

impl ServiceRequest {
    /// The request as lists show it.
    pub fn summary(&self) -> store::Summary {
        store::Summary {
            id: self.id.clone(),
            number: self.number,
            title: self.title.clone(),
            team: self.team.clone(),
            requester_id: self.requester_id.clone(),
            requester_name: self.requester_name.clone(),
            blueprint_slug: self.blueprint_slug.clone(),
            blueprint_version: self.blueprint_version.clone(),
            account_id: self.account_id.clone(),
            account_name: self.account_name.clone(),
            region: self.region.clone(),
            env_class: self.env_class,
            env_name: self.env_name.clone(),
            stack_name: self.stack_name.clone(),
            status: self.status,
            status_reason: self.status_reason.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            risk_flags: self.risk_flags.clone(),
            requester_disabled: self.requester_disabled,
        }
    }
}

/// Everything an approval covers: what is deployed (blueprint and rendered template, with its
/// parameters), where (account, region, stack) and as whom (the deploy role, the CloudFormation
/// execution role and the capabilities granted). The worker recomputes it from what is stored at
/// the moment it acts; any difference voids the approval.
#[derive(Debug, Clone, Serialize)]
pub struct Binding<'a> {
    pub blueprint_digest: &'a str,
    pub template_digest: &'a str,
    pub params: &'a BTreeMap<String, serde_json::Value>,
    pub account_id: &'a str,
    pub region: &'a str,
    pub stack_name: &'a str,
    pub deploy_role_arn: &'a str,
    pub execution_role_arn: Option<&'a str>,
    pub capabilities: &'a [String],
}

impl Binding<'_> {
    /// The content hash: SHA-256 over the fields in a fixed order.
    pub fn hash(&self) -> String {
        let canonical = serde_json::json!([
            self.blueprint_digest,
            self.template_digest,
            self.params,
            self.account_id,
            self.region,
            self.stack_name,
            self.deploy_role_arn,
            self.execution_role_arn,
            self.capabilities,
        ])
        .to_string();
        hex::encode(Sha256::digest(canonical.as_bytes()))
    }
}

/// Loads a request the user may see; others' requests are "not found", not "forbidden".
pub async fn visible(db: &Db, user: &CurrentUser, id: &str) -> Result<ServiceRequest, AppError> {
    store::get(db, id)
        .await?
        .filter(|r| user.can_view_team(&r.team))
        .ok_or(AppError::NotFound)
}

/// The CloudFormation stack of a team's environment: `stackgate-<team>--<name>-<class>`. Team
/// and environment names never contain `--` and a class never contains `-`, so the name reads
/// back one way only: two teams' stacks cannot share a name (`lend` + `ing-core` and
/// `lending` + `core` give `stackgate-lend--ing-core-dev` and `stackgate-lending--core-dev`).
pub fn stack_name(team: &str, name: &str, class: EnvClass) -> String {
    format!("stackgate-{team}--{name}-{class}")
}

/// SHA-256 (hex) of a rendered template's bytes.
pub fn template_digest(body: &str) -> String {
    hex::encode(Sha256::digest(body.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::RequestStatus as S;
    use super::Transition as T;
    use super::*;

    #[test]
    fn the_happy_path_is_allowed() {
        let mut s = S::Draft;
        for t in [
            T::Submit,
            T::ChangeSetReady,
            T::Approve,
            T::StartDeployment,
            T::DeploymentSucceeded,
        ] {
            s = match s.apply(t) {
                Ok(next) => next,
                Err(e) => panic!("{e}"),
            };
        }
        assert_eq!(s, S::Deployed);
    }

    /// `ALL` lists every variant, once and in declaration order: a variant added to either enum
    /// without being listed fails to compile here (the matches are exhaustive).
    #[test]
    fn all_lists_every_status_and_every_transition_once() {
        let status = |s: S| match s {
            S::Draft => 0,
            S::Preparing => 1,
            S::PendingApproval => 2,
            S::Approved => 3,
            S::Deploying => 4,
            S::Deployed => 5,
            S::Failed => 6,
            S::Rejected => 7,
            S::Cancelled => 8,
            S::NeedsAttention => 9,
            S::NoChanges => 10,
            S::Expired => 11,
        };
        assert_eq!(S::ALL.map(status), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
        let transition = |t: T| match t {
            T::Submit => 0,
            T::ChangeSetReady => 1,
            T::NoChanges => 2,
            T::Approve => 3,
            T::Reject => 4,
            T::Cancel => 5,
            T::StartDeployment => 6,
            T::DeploymentSucceeded => 7,
            T::DeploymentFailed => 8,
            T::Flag => 9,
            T::Refresh => 10,
            T::Expire => 11,
        };
        assert_eq!(
            T::ALL.map(transition),
            [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
        );
    }

    /// The whole table, every cell written out: for each status (a row), where each transition
    /// (a column) leads, or `__` where it is refused with a message naming both.
    #[test]
    fn every_status_and_transition_pair_does_what_the_table_says() {
        const __: Option<S> = None;
        const fn to(s: S) -> Option<S> {
            Some(s)
        }
        let columns = [
            (T::Submit, "submitted"),
            (T::ChangeSetReady, "sent for review"),
            (T::NoChanges, "closed as unchanged"),
            (T::Approve, "approved"),
            (T::Reject, "rejected"),
            (T::Cancel, "cancelled"),
            (T::StartDeployment, "deployed"),
            (T::DeploymentSucceeded, "marked deployed"),
            (T::DeploymentFailed, "marked failed"),
            (T::Flag, "flagged for attention"),
            (T::Refresh, "sent back for a fresh change set"),
            (T::Expire, "expired"),
        ];
        #[rustfmt::skip]
        let table: [(S, [Option<S>; 12]); 12] = [
            //                   Submit              Ready                    NoChanges          Approve          Reject           Cancel            Start             Succeeded        Failed         Flag                   Refresh            Expire
            (S::Draft,           [to(S::Preparing), __,                      __,                __,              __,              to(S::Cancelled), __,               __,              __,            __,                    __,                __]),
            (S::Preparing,       [__,               to(S::PendingApproval), to(S::NoChanges), __,              __,              to(S::Cancelled), __,               __,              to(S::Failed), to(S::NeedsAttention), __,                __]),
            (S::PendingApproval, [__,               __,                      __,                to(S::Approved), to(S::Rejected), to(S::Cancelled), __,               __,              __,            __,                    to(S::Preparing), to(S::Expired)]),
            (S::Approved,        [__,               __,                      __,                __,              __,              to(S::Cancelled), to(S::Deploying), __,              to(S::Failed), to(S::NeedsAttention), to(S::Preparing), to(S::Expired)]),
            (S::Deploying,       [__,               __,                      __,                __,              __,              __,               __,               to(S::Deployed), to(S::Failed), to(S::NeedsAttention), __,                __]),
            (S::Deployed,        [__,               __,                      __,                __,              __,              __,               __,               __,              __,            __,                    __,                __]),
            (S::Failed,          [__,               __,                      __,                __,              __,              __,               __,               __,              __,            __,                    __,                __]),
            (S::Rejected,        [__,               __,                      __,                __,              __,              __,               __,               __,              __,            __,                    __,                __]),
            (S::Cancelled,       [__,               __,                      __,                __,              __,              __,               __,               __,              __,            __,                    __,                __]),
            (S::NeedsAttention,  [__,               __,                      __,                __,              __,              __,               __,               __,              __,            __,                    __,                __]),
            (S::NoChanges,       [__,               __,                      __,                __,              __,              __,               __,               __,              __,            __,                    __,                __]),
            (S::Expired,         [__,               __,                      __,                __,              __,              __,               __,               __,              __,            __,                    __,                __]),
        ];
        assert_eq!(table.map(|(s, _)| s), S::ALL, "a row for every status");
        assert_eq!(
            columns.map(|(t, _)| t),
            T::ALL,
            "a column for every transition"
        );
        for (from, row) in table {
            for ((t, verb), want) in columns.into_iter().zip(row) {
                match (from.apply(t), want) {
                    (Ok(next), Some(want)) => assert_eq!(next, want, "{from:?} + {t:?}"),
                    (Err(e), None) => {
                        assert_eq!(e.from, from, "{from:?} + {t:?}");
                        assert_eq!(
                            e.to_string(),
                            format!("a request that is {} cannot be {verb}", from.label()),
                            "{from:?} + {t:?}"
                        );
                    }
                    (got, want) => panic!("{from:?} + {t:?}: got {got:?}, the table says {want:?}"),
                }
            }
            // Terminal statuses absorb: exactly the rows with nothing allowed.
            assert_eq!(
                from.is_terminal(),
                row.iter().all(Option::is_none),
                "{from:?}"
            );
        }
    }

    #[test]
    fn stack_names_of_different_teams_never_collide() {
        let a = stack_name("lend", "ing-core", EnvClass::Dev);
        let b = stack_name("lending", "core", EnvClass::Dev);
        assert_ne!(a, b);
        assert_eq!(b, "stackgate-lending--core-dev");
        assert!(crate::catalog::render::check_env_name("ing--core").is_err());
        assert!(!crate::ids::valid_team("pay--ments"));
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for s in S::ALL {
            assert_eq!(S::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn the_content_hash_changes_with_each_bound_field() {
        let p: BTreeMap<String, serde_json::Value> =
            [("vpc_cidr".to_string(), serde_json::json!("10.0.0.0/16"))].into();
        let mut more = p.clone();
        more.insert("az_count".into(), serde_json::json!(3));
        let other_value: BTreeMap<String, serde_json::Value> =
            [("vpc_cidr".to_string(), serde_json::json!("10.1.0.0/16"))].into();
        let caps = vec!["CAPABILITY_IAM".to_string()];
        let named = vec!["CAPABILITY_NAMED_IAM".to_string()];
        let base = Binding {
            blueprint_digest: "b",
            template_digest: "t",
            params: &p,
            account_id: "111111111111",
            region: "eu-west-2",
            stack_name: "s",
            deploy_role_arn: "arn:aws:iam::111111111111:role/deploy",
            execution_role_arn: Some("arn:aws:iam::111111111111:role/exec"),
            capabilities: &caps,
        };
        // Every bound field is named here: a field added to the binding fails to compile until
        // it is varied below too.
        let Binding {
            blueprint_digest: _,
            template_digest: _,
            params: _,
            account_id: _,
            region: _,
            stack_name: _,
            deploy_role_arn: _,
            execution_role_arn: _,
            capabilities: _,
        } = base;
        assert_eq!(base.hash(), base.clone().hash(), "deterministic");
        assert_eq!(base.hash().len(), 64, "SHA-256, hex");
        let variants = [
            (
                "blueprint_digest",
                Binding {
                    blueprint_digest: "b2",
                    ..base.clone()
                },
            ),
            (
                "template_digest",
                Binding {
                    template_digest: "t2",
                    ..base.clone()
                },
            ),
            (
                "params (one more)",
                Binding {
                    params: &more,
                    ..base.clone()
                },
            ),
            (
                "params (another value)",
                Binding {
                    params: &other_value,
                    ..base.clone()
                },
            ),
            (
                "account_id",
                Binding {
                    account_id: "222222222222",
                    ..base.clone()
                },
            ),
            (
                "region",
                Binding {
                    region: "eu-west-1",
                    ..base.clone()
                },
            ),
            (
                "stack_name",
                Binding {
                    stack_name: "s2",
                    ..base.clone()
                },
            ),
            (
                "deploy_role_arn",
                Binding {
                    deploy_role_arn: "arn:aws:iam::111111111111:role/other",
                    ..base.clone()
                },
            ),
            (
                "execution_role_arn (another)",
                Binding {
                    execution_role_arn: Some("arn:aws:iam::111111111111:role/other-exec"),
                    ..base.clone()
                },
            ),
            (
                "execution_role_arn (none)",
                Binding {
                    execution_role_arn: None,
                    ..base.clone()
                },
            ),
            (
                "capabilities",
                Binding {
                    capabilities: &named,
                    ..base.clone()
                },
            ),
        ];
        let mut seen = std::collections::BTreeMap::from([(base.hash(), "the base binding")]);
        for (field, v) in &variants {
            assert_ne!(v.hash(), base.hash(), "changing {field} keeps the hash");
            if let Some(other) = seen.insert(v.hash(), field) {
                panic!("changing {field} hashes like {other}");
            }
        }
    }
}
