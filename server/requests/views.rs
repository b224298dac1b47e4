//! View models for the request pages: the form, the preview, the request page and its
//! deployment panel.

use std::collections::BTreeMap;

use askama::Template;

use crate::accounts::{Account, EnvClass};
use crate::catalog::{Blueprint, FieldError, ParamKind, PolicyReport};
use crate::deployments::{Change, Deployment, Output};
use crate::home::RequestRow;
use crate::http::layout::{Layout, When};

/// One input of the request form.
#[derive(Debug, Clone)]
pub struct FormField {
    pub name: String,
    pub id: String,
    pub label: String,
    pub help: String,
    pub section: String,
    /// `text`, `select` or `number`.
    pub kind: &'static str,
    pub value: String,
    pub options: Vec<(String, String)>,
    pub min: i64,
    pub max: i64,
    pub error: Option<String>,
}

/// The policy results as the page lists them.
#[derive(Debug, Clone)]
pub struct PolicyRow {
    pub rule: String,
    pub passed: bool,
    pub messages: Vec<String>,
}

pub fn policy_rows(report: &PolicyReport) -> Vec<PolicyRow> {
    let mut rows: Vec<PolicyRow> = report
        .results
        .iter()
        .map(|r| PolicyRow {
            rule: r.rule.clone(),
            passed: r.passed,
            messages: r.messages.clone(),
        })
        .collect();
    rows.sort_by_key(|r| r.passed);
    rows
}

/// The live preview under the form.
#[derive(Debug, Clone)]
pub struct Preview {
    pub stack_name: String,
    pub resources: Vec<(String, usize)>,
    pub total: usize,
    pub template_body: String,
    pub digest: String,
    pub policy: Vec<PolicyRow>,
    pub policy_passed: bool,
}

/// The new-request form with its current values, errors and preview.
#[derive(Template)]
#[template(path = "requests/new.html")]
pub struct NewRequestPage {
    pub layout: Layout,
    pub form: RequestForm,
}

/// The same form alone, for htmx to swap in as the user types.
#[derive(Template)]
#[template(path = "requests/new.html", block = "form")]
pub struct NewRequestForm {
    pub form: RequestForm,
}

#[derive(Debug, Clone)]
pub struct RequestForm {
    pub csrf_token: String,
    pub blueprint_slug: String,
    pub blueprint_name: String,
    pub blueprint_version: String,
    pub blueprint_summary: String,
    pub teams: Vec<String>,
    pub team: String,
    pub accounts: Vec<(String, String, bool)>,
    pub regions: Vec<(String, bool)>,
    pub name: String,
    pub defaults_for: String,
    pub field_errors: BTreeMap<String, String>,
    pub general_errors: Vec<String>,
    pub params: Vec<FormField>,
    pub preview: Option<Preview>,
    pub can_submit: bool,
    /// Rendered for an htmx feedback refresh: feedback elements carry `hx-swap-oob`.
    pub oob: bool,
}

impl RequestForm {
    pub fn error(&self, field: &str) -> Option<&String> {
        self.field_errors.get(field)
    }

    pub fn has_errors(&self) -> bool {
        !self.field_errors.is_empty() || !self.general_errors.is_empty()
    }
}

/// Builds the form's fields for a blueprint, with values (or the class defaults) and errors.
pub fn param_fields(
    blueprint: &Blueprint,
    env: EnvClass,
    values: &BTreeMap<String, String>,
    errors: &[FieldError],
) -> Vec<FormField> {
    blueprint
        .parameters
        .iter()
        .map(|p| {
            let (kind, options, min, max) = match &p.kind {
                ParamKind::Choice(options) => ("select", options.clone(), 0, 0),
                ParamKind::Integer { min, max } => ("number", vec![], *min, *max),
                ParamKind::Cidr | ParamKind::String { .. } => ("text", vec![], 0, 0),
            };
            FormField {
                name: format!("param.{}", p.name),
                id: format!("param-{}", p.name.replace('_', "-")),
                label: p.label.clone(),
                help: p.help.clone(),
                section: p.section.clone(),
                kind,
                value: values
                    .get(&p.name)
                    .cloned()
                    .or_else(|| p.default_for(env))
                    .unwrap_or_default(),
                options,
                min,
                max,
                error: errors
                    .iter()
                    .find(|e| e.field == p.name)
                    .map(|e| e.message.clone()),
            }
        })
        .collect()
}

/// Account choices for a team's form.
pub fn account_options(accounts: &[Account], selected: &str) -> Vec<(String, String, bool)> {
    accounts
        .iter()
        .map(|a| {
            (
                a.id.to_string(),
                format!("{} ({}) · {}", a.name, a.env_class, a.id),
                a.id.as_str() == selected,
            )
        })
        .collect()
}

/// One decision as the side panel shows it.
#[derive(Debug, Clone)]
pub struct ApprovalView {
    pub approver_name: String,
    pub decision: String,
    pub comment: String,
    pub digest_short: String,
    pub current: bool,
    pub when: When,
}

/// One line of the conversation.
#[derive(Debug, Clone)]
pub struct TimelineItem {
    pub actor: String,
    pub text: String,
    pub detail: String,
    pub kind: String,
    pub when: When,
}

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
        events: Vec<crate::deployments::Event>,
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

/// The request page.
#[derive(Template)]
#[template(path = "requests/show.html")]
pub struct ShowPage {
    pub layout: Layout,
    pub r: RequestRow,
    pub blueprint: String,
    pub content_hash_short: String,
    pub template_digest: String,
    pub status_reason: Option<String>,
    pub params: Vec<(String, String)>,
    pub resources: Vec<(String, usize)>,
    pub template_body: String,
    pub policy: Vec<PolicyRow>,
    pub approvals: Vec<ApprovalView>,
    pub required: u32,
    pub approved_count: usize,
    pub timeline: Vec<TimelineItem>,
    pub can_decide: bool,
    pub decide_note: Option<String>,
    pub can_cancel: bool,
    pub action_error: Option<String>,
    pub dep: DeploymentPanel,
}

/// The deployment tab alone (htmx polls it while a deployment runs).
#[derive(Template)]
#[template(path = "requests/show.html", block = "deployment")]
pub struct DeploymentFragment {
    pub dep: DeploymentPanel,
}

/// The approvals inbox.
#[derive(Template)]
#[template(path = "approvals/inbox.html")]
pub struct InboxPage {
    pub layout: Layout,
    pub rows: Vec<RequestRow>,
    pub class_filter: String,
    /// Where the next page starts, if there is one.
    pub next: Option<String>,
}
