//! What the worker re-derives before it acts, instead of trusting stored strings: the template's
//! digest from the template itself, the content hash from the fields it binds (the target the
//! deployment row names and the roles the registry holds now), and the approvals from the
//! approvers as they are now (enabled, still approvers of the team, not the requester).

use crate::accounts::Account;
use crate::approvals::store::Approver;
use crate::approvals::{auto_approvable, quorum};
use crate::config::Config;
use crate::deployments::{Deployment, Step};
use crate::requests::{Binding, RequestStatus, ServiceRequest, template_digest};
use crate::web::Roles;

/// Whether the job may go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    Go,
    /// Not to be deployed any more, for an ordinary reason (the request was cancelled).
    Cancel(String),
    /// What is stored no longer matches what was approved: a person must look. No AWS call.
    Flag(String),
    /// The approvals aged out before the change could run: the request expires.
    Expire(String),
}

/// Everything the verdict is derived from, as loaded at the moment the worker acts.
pub(super) struct Facts<'a> {
    pub job: &'a Deployment,
    pub request: &'a ServiceRequest,
    pub account: &'a Account,
    /// The approvals bound to the job's change set, their approvers as they are now.
    pub approvers: &'a [Approver],
    /// For a break-glass release: the admin who released it, as they are now.
    pub releaser: Option<&'a Approver>,
    pub config: &'a Config,
    pub now: i64,
}

/// The binding of what the deployment would actually do: the request's content, the target the
/// deployment row names, and the account's roles as registered now.
fn binding_hash(f: &Facts<'_>, digest: &str) -> String {
    Binding {
        blueprint_digest: &f.request.blueprint_digest,
        template_digest: digest,
        params: &f.request.params,
        account_id: &f.job.account_id,
        region: &f.job.region,
        stack_name: &f.job.stack_name,
        deploy_role_arn: f.account.deploy_role_arn.as_str(),
        execution_role_arn: f
            .account
            .cfn_execution_role_arn
            .as_ref()
            .map(|r| r.as_str()),
        capabilities: &f.request.capabilities,
    }
    .hash()
}

/// Whether the job only prepares the change set (before approval).
pub(super) fn prepares(job: &Deployment) -> bool {
    matches!(job.step, Step::Start | Step::ChangeSetRequested)
}

/// The verdict: pure, so every case is unit-tested. Preparing a change set needs the request
/// to be preparing and its content intact; executing one also needs what released it to hold
/// now: the approvals bound to this change set (bars C3, C4, C8), the rules (auto), or a
/// break-glass release by someone who is still an admin (C7).
pub(super) fn verdict(f: &Facts<'_>) -> Verdict {
    let r = f.request;
    let allowed: &[RequestStatus] = if prepares(f.job) {
        &[RequestStatus::Preparing]
    } else {
        &[RequestStatus::Approved, RequestStatus::Deploying]
    };
    if !allowed.contains(&r.status) {
        return Verdict::Cancel(format!("the request is {}", r.status));
    }
    if r.template_body.is_empty() {
        return Verdict::Flag("the approved template is missing from the database".into());
    }
    let digest = template_digest(&r.template_body);
    if digest != r.template_digest {
        return Verdict::Flag(
            "the stored template no longer matches the digest that was approved".into(),
        );
    }
    if (&f.job.account_id, &f.job.region, &f.job.stack_name)
        != (&r.account_id, &r.region, &r.stack_name)
    {
        return Verdict::Flag(format!(
            "the deployment targets {}/{}/{}, not the approved {}/{}/{}",
            f.job.account_id, f.job.region, f.job.stack_name, r.account_id, r.region, r.stack_name
        ));
    }
    if binding_hash(f, &digest) != r.content_hash || f.job.content_hash != r.content_hash {
        return Verdict::Flag(
            "the request's stored content or the account's roles changed after approval".into(),
        );
    }
    // An admin disabled the account: nothing more is sent to it, prepared or approved.
    if f.account.status == crate::accounts::Status::Disabled {
        return Verdict::Flag(format!(
            "account {} is disabled{}",
            f.account.id,
            f.account
                .status_reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ));
    }
    if prepares(f.job) {
        return Verdict::Go;
    }
    match r.approval_mode.as_str() {
        "auto" if auto_approvable(r, f.config) => Verdict::Go,
        "auto" => Verdict::Flag("the rules no longer approve this request by themselves".into()),
        "emergency" => match (f.releaser, &r.emergency) {
            (Some(a), Some(e))
                if !a.disabled
                    && a.user_id == e.released_by
                    && Roles::from_groups(&a.groups, f.config).admin =>
            {
                Verdict::Go
            }
            _ => {
                Verdict::Flag("the emergency release is no longer held by an enabled admin".into())
            }
        },
        _ => {
            let q = quorum(r, f.approvers, f.config, f.now);
            if q.met() {
                return Verdict::Go;
            }
            let why = if q.problems.is_empty() {
                String::new()
            } else {
                format!(": {}", q.problems.join("; "))
            };
            let text = format!(
                "the request has {} of the {} valid approvals it needs{why}{}",
                q.have,
                q.need,
                if q.groups_missing.is_empty() {
                    String::new()
                } else {
                    format!(" (needs {})", q.needs())
                }
            );
            let aged_out = f
                .approvers
                .iter()
                .any(|a| f.now - a.approved_at > f.config.approval_max_age_ms);
            if aged_out {
                Verdict::Expire(text)
            } else {
                Verdict::Flag(text)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{AwsAccountId, EnvClass, RoleArn};
    use std::collections::BTreeMap;

    fn config() -> Config {
        crate::config::for_tests()
    }

    fn account() -> Account {
        Account {
            id: AwsAccountId::try_from("200000000001".to_string())
                .unwrap_or_else(|e| panic!("{e}")),
            name: "dev".into(),
            env_class: EnvClass::Dev,
            deploy_role_arn: RoleArn::try_from(
                "arn:aws:iam::200000000001:role/stackgate-deploy".to_string(),
            )
            .unwrap_or_else(|e| panic!("{e}")),
            cfn_execution_role_arn: None,
            external_id: "x".into(),
            regions: vec![],
            teams: vec!["payments".into()],
            settings: Default::default(),
            purpose: crate::accounts::Purpose::Dev,
            status: crate::accounts::Status::Active,
            status_reason: None,
            managed_by: crate::accounts::ManagedBy::Config,
            last_check: None,
            previous_external_id: None,
        }
    }

    struct Case {
        request: ServiceRequest,
        job: Deployment,
        account: Account,
        approvers: Vec<Approver>,
        releaser: Option<Approver>,
    }

    const NOW: i64 = 1_800_000_000_000;

    impl Case {
        /// An approved dev request with a matching deployment and one valid approver.
        fn valid() -> Case {
            let body = "{\"Resources\": {}}\n".to_string();
            let request = ServiceRequest {
                id: "r".into(),
                number: 1,
                title: "t".into(),
                team: "payments".into(),
                requester_id: "alice".into(),
                requester_name: "Alice".into(),
                blueprint_slug: "network".into(),
                blueprint_version: "1.0.0".into(),
                blueprint_digest: "bd".into(),
                account_id: "200000000001".into(),
                account_name: "dev".into(),
                region: "eu-west-2".into(),
                env_class: EnvClass::Dev,
                env_name: "core".into(),
                stack_name: "stackgate-payments--core-dev".into(),
                params: BTreeMap::new(),
                template_digest: template_digest(&body),
                template_body: body,
                capabilities: vec!["CAPABILITY_IAM".into()],
                content_hash: String::new(),
                policy: serde_json::Value::Null,
                status: RequestStatus::Approved,
                status_reason: None,
                version: 2,
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
            };
            let mut job = Deployment::for_tests(
                "d",
                &request.account_id,
                &request.region,
                &request.stack_name,
            );
            job.step = Step::ChangeSetReady;
            let mut case = Case {
                request,
                job,
                account: account(),
                approvers: vec![Approver {
                    user_id: "bob".into(),
                    name: "Bob".into(),
                    groups: vec!["payments-approvers".into()],
                    disabled: false,
                    approved_at: NOW - 1000,
                }],
                releaser: None,
            };
            let cfg = config();
            let hash = binding_hash(&case.facts(&cfg), &case.request.template_digest);
            case.request.content_hash = hash.clone();
            case.job.content_hash = hash;
            case
        }

        fn facts<'a>(&'a self, config: &'a Config) -> Facts<'a> {
            Facts {
                job: &self.job,
                request: &self.request,
                account: &self.account,
                approvers: &self.approvers,
                releaser: self.releaser.as_ref(),
                config,
                now: NOW,
            }
        }
    }

    fn flagged(case: &Case, config: &Config) -> String {
        match verdict(&case.facts(config)) {
            Verdict::Flag(why) => why,
            other => panic!("expected a flag, got {other:?}"),
        }
    }

    #[test]
    fn an_untouched_approved_request_goes() {
        let cfg = config();
        assert_eq!(verdict(&Case::valid().facts(&cfg)), Verdict::Go);
    }

    #[test]
    fn a_request_no_longer_approved_is_cancelled() {
        let cfg = config();
        let mut c = Case::valid();
        c.request.status = RequestStatus::Cancelled;
        assert_eq!(
            verdict(&c.facts(&cfg)),
            Verdict::Cancel("the request is cancelled".into())
        );
    }

    #[test]
    fn every_edit_behind_the_approval_is_flagged() {
        let cfg = config();
        type Edit = Box<dyn Fn(&mut Case)>;
        let edits: Vec<(&str, Edit)> = vec![
            (
                "template body",
                Box::new(|c| c.request.template_body.push(' ')),
            ),
            (
                "template missing",
                Box::new(|c| c.request.template_body.clear()),
            ),
            (
                "stored digest",
                Box::new(|c| c.request.template_digest = "0".repeat(64)),
            ),
            (
                "parameters",
                Box::new(|c| {
                    c.request.params.insert("x".into(), serde_json::json!(1));
                }),
            ),
            (
                "blueprint digest",
                Box::new(|c| c.request.blueprint_digest = "other".into()),
            ),
            (
                "capabilities",
                Box::new(|c| c.request.capabilities = vec!["CAPABILITY_NAMED_IAM".into()]),
            ),
            (
                "deployment account",
                Box::new(|c| c.job.account_id = "200000000003".into()),
            ),
            (
                "deployment region",
                Box::new(|c| c.job.region = "eu-west-1".into()),
            ),
            (
                "deployment stack",
                Box::new(|c| c.job.stack_name = "stackgate-other--x-dev".into()),
            ),
            (
                "deploy role",
                Box::new(|c| {
                    c.account.deploy_role_arn =
                        RoleArn::try_from("arn:aws:iam::200000000001:role/other".to_string())
                            .unwrap_or_else(|e| panic!("{e}"));
                }),
            ),
            (
                "execution role",
                Box::new(|c| {
                    c.account.cfn_execution_role_arn = Some(
                        RoleArn::try_from("arn:aws:iam::200000000001:role/exec".to_string())
                            .unwrap_or_else(|e| panic!("{e}")),
                    );
                }),
            ),
            (
                "job hash",
                Box::new(|c| c.job.content_hash = "0".repeat(64)),
            ),
            (
                "account disabled",
                Box::new(|c| c.account.status = crate::accounts::Status::Disabled),
            ),
            (
                "approver disabled",
                Box::new(|c| c.approvers[0].disabled = true),
            ),
            (
                "approver lost the role",
                Box::new(|c| c.approvers[0].groups.clear()),
            ),
            (
                "approver is the requester",
                Box::new(|c| c.approvers[0].user_id = "alice".into()),
            ),
            ("no approvals", Box::new(|c| c.approvers.clear())),
        ];
        for (what, edit) in edits {
            let mut c = Case::valid();
            edit(&mut c);
            let why = flagged(&c, &cfg);
            assert!(!why.is_empty(), "{what}");
        }
        let mut c = Case::valid();
        c.approvers[0].disabled = true;
        assert!(flagged(&c, &cfg).contains("Bob has been disabled"));
    }

    #[test]
    fn preparing_needs_a_preparing_request_and_intact_content_but_no_approval() {
        let cfg = config();
        let mut c = Case::valid();
        c.job.step = Step::Start;
        c.approvers.clear();
        c.request.status = RequestStatus::Preparing;
        assert_eq!(verdict(&c.facts(&cfg)), Verdict::Go);
        c.request.status = RequestStatus::Approved;
        assert!(
            matches!(verdict(&c.facts(&cfg)), Verdict::Cancel(_)),
            "not preparing"
        );
        c.request.status = RequestStatus::Preparing;
        c.request.template_body.push(' ');
        assert!(
            matches!(verdict(&c.facts(&cfg)), Verdict::Flag(_)),
            "edited content"
        );
    }

    #[test]
    fn approvals_that_aged_out_before_execution_expire_the_request() {
        let cfg = config();
        let mut c = Case::valid();
        c.approvers[0].approved_at = NOW - cfg.approval_max_age_ms - 1;
        assert!(matches!(verdict(&c.facts(&cfg)), Verdict::Expire(w) if w.contains("expired")));
    }

    #[test]
    fn an_emergency_release_holds_only_while_its_admin_is_still_an_enabled_admin() {
        let mut cfg = config();
        cfg.admin_groups = vec!["platform-admins".into()];
        let mut c = Case::valid();
        c.approvers.clear();
        c.request.approval_mode = "emergency".into();
        c.request.emergency = Some(crate::requests::Emergency {
            released_by: "dave".into(),
            released_by_name: "Dave".into(),
            reason: "Payments are down in production; rolling forward the fix.".into(),
            released_at: NOW,
            reviewed_by: None,
            reviewed_by_name: None,
            review_comment: None,
            reviewed_at: None,
        });
        let dave = Approver {
            user_id: "dave".into(),
            name: "Dave".into(),
            groups: vec!["platform-admins".into()],
            disabled: false,
            approved_at: NOW,
        };
        c.releaser = Some(dave.clone());
        assert_eq!(verdict(&c.facts(&cfg)), Verdict::Go);
        c.releaser = Some(Approver {
            groups: vec![],
            ..dave.clone()
        });
        assert!(
            matches!(verdict(&c.facts(&cfg)), Verdict::Flag(_)),
            "no longer an admin"
        );
        c.releaser = Some(Approver {
            disabled: true,
            ..dave
        });
        assert!(
            matches!(verdict(&c.facts(&cfg)), Verdict::Flag(_)),
            "disabled"
        );
        c.releaser = None;
        assert!(
            matches!(verdict(&c.facts(&cfg)), Verdict::Flag(_)),
            "missing"
        );
    }

    #[test]
    fn an_auto_approval_holds_only_while_the_rules_still_allow_it() {
        let mut cfg = config();
        cfg.auto_approve_dev = true;
        let mut c = Case::valid();
        c.approvers.clear();
        c.request.approval_mode = "auto".into();
        c.request.policy = serde_json::json!({ "passed": true });
        assert_eq!(verdict(&c.facts(&cfg)), Verdict::Go);
        cfg.auto_approve_dev = false;
        assert!(matches!(verdict(&c.facts(&cfg)), Verdict::Flag(_)));
    }
}
