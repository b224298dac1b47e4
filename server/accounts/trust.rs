//! What an admin rolls out in an account before the portal can deploy there: the deploy role's
//! trust policy, and the parameters of the `account-bootstrap` blueprint that creates it.

use serde::Serialize;

use super::{Account, Purpose};

/// Shown in place of the portal's role when `STACKGATE_PORTAL_ROLE_ARN` is not set.
pub const PORTAL_ROLE_PLACEHOLDER: &str = "arn:aws:iam::PORTAL_ACCOUNT_ID:role/PORTAL_ROLE_NAME";

/// The deploy role's trust policy, statement for statement what `account-bootstrap` creates
/// (`cloudformation/account-bootstrap/template.json.j2`): only the portal's role may assume it,
/// only with this account's ExternalId; it may name the requester (`sts:SetSourceIdentity`) and
/// tag the session (`sts:TagSession`), as every deployment does, under the same ExternalId.
pub fn trust_policy(portal_role_arn: &str, external_id: &str) -> serde_json::Value {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "PortalAssumesWithExternalId",
                "Effect": "Allow",
                "Principal": {"AWS": portal_role_arn},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": external_id}}
            },
            {
                "Sid": "PortalNamesTheRequester",
                "Effect": "Allow",
                "Principal": {"AWS": portal_role_arn},
                "Action": ["sts:SetSourceIdentity", "sts:TagSession"],
                "Condition": {
                    "StringEquals": {"sts:ExternalId": external_id},
                    "StringLike": {"sts:SourceIdentity": "*"}
                }
            }
        ]
    })
}

/// What the `account-bootstrap` blueprint needs for one account: the portal's role it trusts and
/// the ExternalId (both from the registry and the portal's settings, never typed), and its one
/// parameter.
#[derive(Debug, Clone, Serialize)]
pub struct BootstrapParameters {
    pub blueprint: &'static str,
    pub account_id: String,
    /// `None` while `STACKGATE_PORTAL_ROLE_ARN` is not set.
    pub portal_role_arn: Option<String>,
    pub external_id: String,
    /// On only in the organization's management account.
    pub organizations_admin: bool,
}

impl BootstrapParameters {
    pub fn of(account: &Account, portal_role_arn: Option<&str>) -> BootstrapParameters {
        BootstrapParameters {
            blueprint: "account-bootstrap",
            account_id: account.id.to_string(),
            portal_role_arn: portal_role_arn.map(str::to_string),
            external_id: account.external_id.clone(),
            organizations_admin: account.purpose == Purpose::Management,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The statements the bootstrap template writes, read from the template itself, so that the
    /// policy shown to admins cannot drift from the role the blueprint creates.
    #[test]
    fn the_trust_policy_is_the_one_account_bootstrap_creates() {
        let template = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/cloudformation/account-bootstrap/template.json.j2"
        ))
        .unwrap();
        let shown = trust_policy("{{ portal.role_arn }}", "{{ account.external_id }}");
        for statement in shown["Statement"].as_array().unwrap() {
            let sid = statement["Sid"].as_str().unwrap();
            let line = template
                .lines()
                .find(|l| l.contains(&format!("\"Sid\": \"{sid}\"")))
                .unwrap_or_else(|| panic!("the template has no statement {sid}"));
            let written: serde_json::Value =
                serde_json::from_str(line.trim().trim_end_matches(',')).unwrap();
            assert_eq!(&written, statement, "{sid}");
        }
    }
}
