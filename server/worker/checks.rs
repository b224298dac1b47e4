//! What the worker re-derives before it acts, instead of trusting stored strings: the template's
//! digest from the template itself, the content hash from the fields it binds (the target the
//! deployment row names and the roles the registry holds now), and the approvals from the
//! approvers as they are now (enabled, still approvers of the team, not the requester).

use crate::accounts::Account;
use crate::approvals::store::Approver;
use crate::config::Config;
use crate::deployments::Deployment;
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
}

/// Everything the verdict is derived from, as loaded at the moment the worker acts.
pub(super) struct Facts<'a> {
    pub job: &'a Deployment,
    pub request: &'a ServiceRequest,
    pub account: &'a Account,
    pub approvers: &'a [Approver],
    pub config: &'a Config,
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

/// Why an approver's decision no longer counts, if it does not.
fn approver_problem(f: &Facts<'_>, a: &Approver) -> Option<String> {
    if a.user_id == f.request.requester_id {
        return Some(format!("{} is the requester", a.name));
    }
    if a.disabled {
        return Some(format!("{} has been disabled", a.name));
    }
    if !Roles::from_groups(&a.groups, f.config).approves_for(&f.request.team) {
        return Some(format!(
            "{} is no longer an approver for team {}",
            a.name, f.request.team
        ));
    }
    None
}

/// The verdict: pure, so every case is unit-tested.
pub(super) fn verdict(f: &Facts<'_>) -> Verdict {
    let r = f.request;
    if !matches!(r.status, RequestStatus::Approved | RequestStatus::Deploying) {
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
    let mut eligible = 0;
    let mut problems = Vec::new();
    for a in f.approvers {
        match approver_problem(f, a) {
            None => eligible += 1,
            Some(p) => problems.push(p),
        }
    }
    let required = f.config.approvals_for(r.env_class) as usize;
    if eligible < required {
        let why = if problems.is_empty() {
            String::new()
        } else {
            format!(": {}", problems.join("; "))
        };
        return Verdict::Flag(format!(
            "the request has {eligible} of the {required} valid approvals it needs{why}"
        ));
    }
    Verdict::Go
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
        }
    }

    struct Case {
        request: ServiceRequest,
        job: Deployment,
        account: Account,
        approvers: Vec<Approver>,
    }

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
            };
            let job = Deployment::for_tests(
                "d",
                &request.account_id,
                &request.region,
                &request.stack_name,
            );
            let mut case = Case {
                request,
                job,
                account: account(),
                approvers: vec![Approver {
                    user_id: "bob".into(),
                    name: "Bob".into(),
                    groups: vec!["payments-approvers".into()],
                    disabled: false,
                }],
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
                config,
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
}
