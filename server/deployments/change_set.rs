//! A request's change set as people and the API see it: its ARN and where it stands, each
//! resource change, and for an update the diff of template and parameters against what is
//! deployed.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Change, Deployment, DeploymentStatus, Step};

/// Where the change set stands, derived from its deployment row.
pub fn status(d: &Deployment) -> &'static str {
    use DeploymentStatus as S;
    match (d.status, d.step) {
        (S::Queued | S::Running, Step::Start | Step::ChangeSetRequested) => "creating",
        (S::AwaitingApproval, _) => "ready",
        (S::Queued | S::Running, Step::ChangeSetReady) => "approved",
        (S::Queued | S::Running, Step::ExecuteRequested | Step::Finished) => "executing",
        (S::Queued | S::Running, Step::Discard) => "deleting",
        (S::Succeeded, _) if d.change_set_ready_at.is_none() => "no_changes",
        (S::Succeeded, _) => "executed",
        (S::Cancelled, _) if d.error.as_deref().is_some_and(|e| e.starts_with("Superseded")) => {
            "superseded"
        }
        (S::Cancelled, _) => "deleted",
        (S::Failed | S::RolledBack | S::NeedsAttention, _) => "failed",
    }
}

/// The change set in `GET /api/v1/requests/{id}`.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeSetSummary {
    pub arn: Option<String>,
    pub status: &'static str,
    pub changes: Vec<Change>,
    pub created_at: Option<i64>,
}

impl ChangeSetSummary {
    pub fn of(d: &Deployment) -> ChangeSetSummary {
        ChangeSetSummary {
            arn: d.change_set_arn.clone(),
            status: status(d),
            changes: d.changes.clone(),
            created_at: d.change_set_ready_at,
        }
    }
}

/// One parameter's change against what is deployed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParamChange {
    pub name: String,
    pub deployed: Option<String>,
    pub requested: Option<String>,
}

/// The parameters that differ between what is deployed and what is requested.
pub fn param_changes(
    deployed: &BTreeMap<String, String>,
    requested: &BTreeMap<String, String>,
) -> Vec<ParamChange> {
    let mut names: Vec<&String> = deployed.keys().chain(requested.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|n| deployed.get(*n) != requested.get(*n))
        .map(|n| ParamChange {
            name: n.clone(),
            deployed: deployed.get(n).cloned(),
            requested: requested.get(n).cloned(),
        })
        .collect()
}

/// A unified diff (3 lines of context) of two templates, pretty-printed first so a one-value
/// change shows as one line. CPU work: call it on the CPU pool.
pub fn template_diff(deployed: &str, requested: &str) -> String {
    let a = crate::catalog::render::readable(deployed);
    let b = crate::catalog::render::readable(requested);
    similar::TextDiff::from_lines(&a, &b)
        .unified_diff()
        .context_radius(3)
        .header("deployed", "requested")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changed_parameters_are_listed_with_both_sides() {
        let deployed: BTreeMap<String, String> =
            [("a", "1"), ("b", "2"), ("gone", "x")].map(|(k, v)| (k.into(), v.into())).into();
        let requested: BTreeMap<String, String> =
            [("a", "1"), ("b", "3"), ("new", "y")].map(|(k, v)| (k.into(), v.into())).into();
        let changes = param_changes(&deployed, &requested);
        let names: Vec<&str> = changes.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["b", "gone", "new"]);
        assert_eq!(changes[0].deployed.as_deref(), Some("2"));
        assert_eq!(changes[0].requested.as_deref(), Some("3"));
        assert_eq!(changes[1].requested, None);
        assert_eq!(changes[2].deployed, None);
    }

    #[test]
    fn a_template_diff_shows_the_changed_value_and_nothing_for_equal_templates() {
        let a = r#"{"Resources":{"B":{"Type":"AWS::S3::Bucket","Properties":{"Tags":[{"Key":"k","Value":"1"}]}}}}"#;
        let b = r#"{"Resources":{"B":{"Type":"AWS::S3::Bucket","Properties":{"Tags":[{"Key":"k","Value":"2"}]}}}}"#;
        let d = template_diff(a, b);
        assert!(d.contains("-") && d.contains("\"Value\": \"1\""), "{d}");
        assert!(d.contains("+") && d.contains("\"Value\": \"2\""), "{d}");
        assert!(template_diff(a, a).is_empty());
    }
}
