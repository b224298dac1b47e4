//! The approval policy page's view: a form per class, the routes per risk flag, the history.

use askama::Template;

use super::{ApprovalRules, CLASSES, Policy};
use crate::change::RiskFlag;
use crate::error::FieldError;
use crate::web::{Layout, When};

/// One class's inputs.
pub struct ClassInput {
    pub class: String,
    pub approvals: String,
    pub groups: String,
}

/// One risk flag's input.
pub struct RouteInput {
    pub flag: String,
    pub label: String,
    pub group: String,
}

/// A stored version as the history shows it.
pub struct VersionRow {
    pub version: i64,
    pub summary: String,
    pub by: String,
    pub when: When,
}

impl VersionRow {
    pub fn of(p: &Policy) -> VersionRow {
        let classes: Vec<String> = p
            .rules
            .classes
            .iter()
            .map(|(c, r)| {
                let mut s = format!("{c}: {}", r.approvals);
                if !r.groups.is_empty() {
                    s.push_str(&format!(" incl. {}", r.groups.join(", ")));
                }
                s
            })
            .collect();
        let routes: Vec<String> = p
            .rules
            .routes
            .iter()
            .map(|(f, g)| format!("{} → {g}", f.as_str()))
            .collect();
        VersionRow {
            version: p.version,
            summary: if routes.is_empty() {
                classes.join("; ")
            } else {
                format!("{}; routes {}", classes.join("; "), routes.join(", "))
            },
            by: p.created_by_name.clone(),
            when: When::at(p.created_at),
        }
    }
}

/// The inputs showing `rules`.
pub fn inputs(rules: &ApprovalRules) -> (Vec<ClassInput>, Vec<RouteInput>) {
    use strum::VariantArray;
    let classes = CLASSES
        .iter()
        .map(|c| {
            let r = rules.class(*c);
            ClassInput {
                class: c.as_str().to_string(),
                approvals: r.approvals.to_string(),
                groups: r.groups.join(", "),
            }
        })
        .collect();
    let routes = RiskFlag::VARIANTS
        .iter()
        .map(|f| RouteInput {
            flag: f.as_str().to_string(),
            label: f.label().to_string(),
            group: rules.routes.get(f).cloned().unwrap_or_default(),
        })
        .collect();
    (classes, routes)
}

#[derive(Template)]
#[template(path = "policies/index.html")]
pub struct PoliciesPage {
    pub layout: Layout,
    pub version: i64,
    pub classes: Vec<ClassInput>,
    pub routes: Vec<RouteInput>,
    pub history: Vec<VersionRow>,
    pub errors: Vec<FieldError>,
}
