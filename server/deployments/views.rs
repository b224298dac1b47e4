//! The deployment tab of a request page: status, reason, outputs, the change set's changes and
//! the stack's events; also served alone while it changes (htmx polls it).

use askama::Template;

use super::{Change, Deployment, Event, Output};
use crate::web::When;

/// The deployment tab, also served alone for live refresh.
#[derive(Debug, Clone, Default)]
pub struct DeploymentPanel {
    pub request_id: String,
    /// The request's version when the page was drawn: the panel asks for a reload once it moves.
    pub request_version: i64,
    pub present: bool,
    pub live: bool,
    pub status: String,
    pub status_label: String,
    pub error: Option<String>,
    pub stack_name: String,
    pub change_set_arn: String,
    pub events: Vec<EventRow>,
    pub outputs: Vec<Output>,
    pub changes: Vec<Change>,
}

#[derive(Debug, Clone)]
pub struct EventRow {
    pub when: When,
    pub logical_id: String,
    pub resource_type: String,
    pub status: String,
    pub reason: String,
}

impl DeploymentPanel {
    pub fn from_deployment(
        request_id: &str,
        d: Option<&Deployment>,
        events: Vec<Event>,
    ) -> DeploymentPanel {
        let Some(d) = d else {
            return DeploymentPanel {
                request_id: request_id.to_string(),
                ..DeploymentPanel::default()
            };
        };
        DeploymentPanel {
            request_id: request_id.to_string(),
            request_version: 0,
            present: true,
            live: !d.status.is_terminal(),
            status: d.status.as_str().to_string(),
            status_label: d.status.label().to_string(),
            error: d.error.clone(),
            stack_name: d.stack_name.clone(),
            change_set_arn: d.change_set_arn.clone().unwrap_or_default(),
            events: events
                .into_iter()
                .rev()
                .map(|e| EventRow {
                    when: When::at(e.at),
                    logical_id: e.logical_id,
                    resource_type: e.resource_type,
                    status: e.status,
                    reason: e.reason.unwrap_or_default(),
                })
                .collect(),
            outputs: d.outputs.clone(),
            changes: d.changes.clone(),
        }
    }
}

/// The deployment tab alone (htmx polls it while a deployment runs).
#[derive(Template)]
#[template(path = "deployments/panel.html")]
pub struct DeploymentFragment {
    pub dep: DeploymentPanel,
}
