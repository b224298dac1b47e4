//! Check access: can the portal assume an account's deploy role, exactly as a deployment would
//! (registry ARN, ExternalId, SourceIdentity, session tags), and read with it? The answer is
//! stored on the account and said in plain words.
//!
//! Real STS answers every refusal of the role itself with the same words ("not authorized to
//! perform: sts:AssumeRole") whether the role is missing, does not trust the portal, or wants
//! another ExternalId: only the action it names tells SourceIdentity and session-tag refusals
//! apart. So a refused check probes once more where that can tell more: with the previous
//! ExternalId after a rotation. A successful one probes with a wrong ExternalId (bar E2): a role
//! that admits it does not protect the account from a confused deputy, and the result says so.

use super::{Account, LastCheck};
use crate::aws::{AssumeSpec, AwsConnector, DeployError};

/// What the check sends as the requester and session: it acts for the admin who asked.
pub fn spec(account: &Account, external_id: &str, admin_id: &str) -> AssumeSpec {
    let short: String = admin_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(32)
        .collect();
    AssumeSpec {
        role_arn: account.deploy_role_arn.to_string(),
        external_id: external_id.to_string(),
        session_name: format!("stackgate-check-{}", account.id),
        source_identity: format!("stackgate-{short}"),
        tags: vec![("purpose".into(), "access-check".into())],
        region: account
            .regions
            .first()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "us-east-1".into()),
    }
}

/// Runs the check against AWS: the result to store (the caller records it, audited).
pub async fn run(
    connector: &AwsConnector,
    account: &Account,
    admin_id: &str,
    at: i64,
) -> LastCheck {
    let attempt = connector
        .check_access(spec(account, &account.external_id, admin_id))
        .await;
    let (ok, reason) = match attempt {
        Ok(arn) => {
            let wrong = uuid::Uuid::new_v4().to_string();
            let probe = connector
                .check_access(spec(account, &wrong, admin_id))
                .await;
            let mut reason = format!(
                "The portal assumed {} with this account's ExternalId and read as {arn}.",
                account.deploy_role_arn
            );
            if probe.is_ok() {
                reason.push_str(&format!(
                    " Warning: the role also admits a wrong ExternalId, so its trust policy does \
                     not protect the account from a confused deputy: require sts:ExternalId = {} \
                     as in the trust policy shown here.",
                    account.external_id
                ));
            }
            (true, reason)
        }
        Err(e) => {
            let old_works = match &account.previous_external_id {
                Some(old) if matches!(e, DeployError::AssumeRoleDenied(_)) => connector
                    .check_access(spec(account, old, admin_id))
                    .await
                    .is_ok(),
                _ => false,
            };
            (false, refusal(account, &e, old_works))
        }
    };
    LastCheck { at, ok, reason }
}

/// The STS action a refusal names ("…not authorized to perform: sts:TagSession on resource…").
fn refused_action(message: &str) -> Option<&str> {
    let rest = message.split("perform: ").nth(1)?;
    rest.split_whitespace().next()
}

/// A failed check in plain words, with what to do.
pub fn refusal(account: &Account, error: &DeployError, previous_id_works: bool) -> String {
    let role = &account.deploy_role_arn;
    let DeployError::AssumeRoleDenied(message) = error else {
        return match error {
            DeployError::Transient(m) => format!(
                "AWS could not be reached to assume {role} ({m}). Nothing is known about the role; \
                 check again shortly."
            ),
            other => format!("The check of {role} failed: {other}."),
        };
    };
    const OWN: [&str; 4] = [
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "UnrecognizedClientException",
    ];
    if OWN.iter().any(|c| message.contains(c)) {
        return format!(
            "AWS refused the portal's own credentials before looking at {role} ({message}). \
             Check the portal's identity, not the account."
        );
    }
    if message.contains("RegionDisabledException") {
        return format!("STS is not enabled in the portal's region for this call ({message}).");
    }
    if previous_id_works {
        return format!(
            "ExternalId rejected: the role {role} still expects the previous ExternalId. Update \
             its trust policy to the new ExternalId {} (shown on this page) and check again.",
            account.external_id
        );
    }
    match refused_action(message) {
        Some("sts:SetSourceIdentity") => format!(
            "No SourceIdentity permission: the trust policy of {role} lets the portal assume it \
             but not set a SourceIdentity (sts:SetSourceIdentity), which every deployment sends \
             to name the requester. Add sts:SetSourceIdentity as in the trust policy shown here."
        ),
        Some("sts:TagSession") => format!(
            "No session-tag permission: the trust policy of {role} does not allow \
             sts:TagSession, which every deployment uses to tag its session with the team and \
             request. Add it as in the trust policy shown here."
        ),
        _ => format!(
            "AWS refused to let the portal assume {role}: either the role does not exist in \
             account {}, or its trust policy does not trust the portal's role, or the ExternalId \
             was rejected (the role does not accept {}). AWS answers all three alike; roll out \
             the trust policy shown here (or the account-bootstrap blueprint) and check again.",
            account.id, account.external_id
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refused_action_is_read_from_the_sts_message() {
        let m = "AccessDenied: User: arn:aws:iam::123456789012:user/moto is not authorized to \
                 perform: sts:SetSourceIdentity on resource: arn:aws:iam::1:role/x";
        assert_eq!(refused_action(m), Some("sts:SetSourceIdentity"));
        assert_eq!(refused_action("AccessDenied: nope"), None);
    }
}
