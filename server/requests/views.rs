//! View models for the request pages: the form and its preview, request rows, the list page.

use std::collections::BTreeMap;

use askama::Template;

use super::store::Summary;
use super::{RequestStatus, ServiceRequest};
use crate::accounts::Account;
use crate::catalog::{Blueprint, ParamKind, PolicyReport};
use crate::error::FieldError;
use crate::ids::EnvClass;
use crate::web::{Layout, When};

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
    /// The blueprint's own documents (e.g. service control policies), indented, by file stem.
    pub documents: Vec<(String, String)>,
    pub teams: Vec<String>,
    pub team: String,
    pub accounts: Vec<(String, String, bool)>,
    pub regions: Vec<(String, bool)>,
    /// A workload goes into one of these (id, label, selected) instead of an account and region.
    pub workload: bool,
    /// The address block the form proposed (kept while the requester leaves it as proposed).
    pub proposed_cidr: String,
    pub environments: Vec<(String, String, bool)>,
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
                // A select, not a checkbox: an unticked box sends nothing, which would bring
                // back a default of "on" in a plain form.
                ParamKind::Boolean => (
                    "select",
                    vec![("true".into(), "Yes".into()), ("false".into(), "No".into())],
                    0,
                    0,
                ),
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

/// A request as a row of a list.
#[derive(Debug, Clone)]
pub struct RequestRow {
    pub id: String,
    pub number: i64,
    pub title: String,
    pub team: String,
    pub env_class: String,
    pub env_name: String,
    pub account_name: String,
    pub account_id: String,
    pub region: String,
    pub stack_name: String,
    pub status: String,
    pub status_label: String,
    pub requester_name: String,
    pub created: When,
    pub updated: When,
    /// Risk flags in words.
    /// Risk flags as (code, words).
    pub risk_flags: Vec<(String, String)>,
    /// Waiting for approval while an admin has disabled the requester.
    pub requester_flagged: bool,
}

impl From<&Summary> for RequestRow {
    fn from(r: &Summary) -> Self {
        RequestRow {
            id: r.id.clone(),
            number: r.number,
            title: r.title.clone(),
            team: r.team.clone(),
            env_class: r.env_class.as_str().to_string(),
            env_name: r.env_name.clone(),
            account_name: r.account_name.clone(),
            account_id: r.account_id.clone(),
            region: r.region.clone(),
            stack_name: r.stack_name.clone(),
            status: r.status.as_str().to_string(),
            status_label: r.status.label().to_string(),
            requester_name: r.requester_name.clone(),
            created: When::at(r.created_at),
            updated: When::at(r.updated_at),
            risk_flags: r
                .risk_flags
                .iter()
                .map(|f| (f.as_str().to_string(), f.label().to_string()))
                .collect(),
            requester_flagged: r.requester_disabled && r.status == RequestStatus::PendingApproval,
        }
    }
}

impl From<&ServiceRequest> for RequestRow {
    fn from(r: &ServiceRequest) -> Self {
        RequestRow::from(&r.summary())
    }
}

/// Every request of the user's teams, a page at a time.
#[derive(Template)]
#[template(path = "requests/list.html")]
pub struct RequestListPage {
    pub layout: Layout,
    pub view: String,
    pub heading: &'static str,
    pub rows: Vec<RequestRow>,
    pub next: Option<String>,
    pub count: String,
}
