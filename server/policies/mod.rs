//! Approval policies as data: per environment class, how many distinct approvals a request needs
//! and which groups must be among its approvers; per risk flag, one more group. Rules are stored
//! as numbered versions (never edited; the newest is current). A request records the version it
//! was submitted under and is counted by that version's rules until it is decided, so a change
//! never moves the goalposts of a pending request. The settings `STACKGATE_APPROVALS_*` and
//! `STACKGATE_RISK_ROUTES` seed version 1.

pub mod routes;
pub mod store;
pub mod views;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::change::RiskFlag;
use crate::config::Config;
use crate::error::FieldError;
use crate::ids::EnvClass;

/// The group name that stands for "an approver of the request's own team".
pub const TEAM: &str = "team";

/// The classes of environment teams request (core accounts are never a target).
pub const CLASSES: [EnvClass; 3] = [EnvClass::Dev, EnvClass::Test, EnvClass::Prod];

/// Most approvals a class may ask for.
pub const MAX_APPROVALS: u32 = 10;

/// The rules of one class of environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassRule {
    /// Distinct approvals needed (at least 1).
    pub approvals: u32,
    /// Groups that must each have one member among the approvers ([`TEAM`]: the request's team).
    #[serde(default)]
    pub groups: Vec<String>,
}

/// A whole rule set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRules {
    pub classes: BTreeMap<EnvClass, ClassRule>,
    /// A request with the flag needs one approval from a member of the group.
    #[serde(default)]
    pub routes: BTreeMap<RiskFlag, String>,
}

impl ApprovalRules {
    /// The rules the settings give (version 1 of a new installation).
    pub fn from_config(config: &Config) -> ApprovalRules {
        ApprovalRules {
            classes: CLASSES
                .iter()
                .map(|c| {
                    let rule = ClassRule {
                        approvals: config.approvals_for(*c),
                        groups: Vec::new(),
                    };
                    (*c, rule)
                })
                .collect(),
            routes: config.risk_routes.clone(),
        }
    }

    /// The rule of a class (one approval, no group, for a class the rules do not name).
    pub fn class(&self, class: EnvClass) -> ClassRule {
        self.classes.get(&class).cloned().unwrap_or(ClassRule {
            approvals: 1,
            groups: Vec::new(),
        })
    }

    /// The groups whose member must be among a request's approvers: its class's groups, then
    /// the groups its flags call for, each once.
    pub fn required_groups(&self, class: EnvClass, flags: &[RiskFlag]) -> Vec<String> {
        let mut groups = self.class(class).groups;
        for g in flags.iter().filter_map(|f| self.routes.get(f)) {
            if !groups.contains(g) {
                groups.push(g.clone());
            }
        }
        groups
    }

    /// Refuses groups nobody in which could see or decide the requests they are required for:
    /// each named group (other than [`TEAM`]) must be a global approver group or some team's
    /// approver group (the same rule the settings meet at start).
    pub fn reachable(self, config: &Config) -> Result<ApprovalRules, Vec<FieldError>> {
        let approves = |g: &str| {
            g == TEAM
                || config.global_approver_groups.iter().any(|x| x == g)
                || config
                    .teams
                    .iter()
                    .any(|t| t.approver_groups.iter().any(|x| x == g))
        };
        let why = |g: &str| {
            format!(
                "'{g}' is neither a global approver group nor a team's approver group, so nobody \
                 in it could see or decide the requests that need it"
            )
        };
        let mut errors = Vec::new();
        for (class, rule) in &self.classes {
            for (i, g) in rule.groups.iter().enumerate() {
                if !approves(g) {
                    errors.push(FieldError::new(
                        format!("classes.{class}.groups[{i}]"),
                        why(g),
                    ));
                }
            }
        }
        for (flag, g) in &self.routes {
            if !approves(g) {
                errors.push(FieldError::new(format!("routes.{}", flag.as_str()), why(g)));
            }
        }
        if errors.is_empty() {
            Ok(self)
        } else {
            Err(errors)
        }
    }

    /// Reads and checks a rule set sent by an admin (the API's JSON, or the form turned into
    /// it). Every problem names its field; nothing is half-accepted.
    pub fn parse(input: &Value) -> Result<ApprovalRules, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut classes = BTreeMap::new();
        match input.get("classes").and_then(Value::as_object) {
            None => errors.push(FieldError::new(
                "classes",
                "give the rules of each class: dev, test and prod",
            )),
            Some(given) => {
                for (name, rule) in given {
                    let field = format!("classes.{name}");
                    match name.parse::<EnvClass>() {
                        Ok(c) if CLASSES.contains(&c) => {
                            if let Some(r) = class_rule(&field, rule, &mut errors) {
                                classes.insert(c, r);
                            }
                        }
                        _ => errors.push(FieldError::new(
                            field,
                            format!("'{name}' is not an environment class (dev, test or prod)"),
                        )),
                    }
                }
                for c in CLASSES {
                    if !given.contains_key(c.as_str()) {
                        errors.push(FieldError::new(
                            format!("classes.{c}"),
                            "missing: every class needs its rule",
                        ));
                    }
                }
            }
        }
        let mut routes = BTreeMap::new();
        match input.get("routes") {
            None | Some(Value::Null) => {}
            Some(Value::Object(given)) => {
                for (flag, group) in given {
                    let field = format!("routes.{flag}");
                    let Some(f) = RiskFlag::parse(flag) else {
                        errors.push(FieldError::new(
                            field,
                            format!("'{flag}' is not a risk flag ({})", flag_names()),
                        ));
                        continue;
                    };
                    match group.as_str().map(str::trim) {
                        Some(g) => match group_name(g) {
                            Ok(()) => {
                                routes.insert(f, g.to_string());
                            }
                            Err(why) => errors.push(FieldError::new(field, why)),
                        },
                        None => errors.push(FieldError::new(field, "name the approver group")),
                    }
                }
            }
            Some(_) => errors.push(FieldError::new(
                "routes",
                "write the routes as {\"flag\": \"group\"}",
            )),
        }
        if errors.is_empty() {
            Ok(ApprovalRules { classes, routes })
        } else {
            Err(errors)
        }
    }
}

fn class_rule(field: &str, rule: &Value, errors: &mut Vec<FieldError>) -> Option<ClassRule> {
    let before = errors.len();
    let approvals = match rule.get("approvals").and_then(Value::as_i64) {
        Some(n) if (1..=i64::from(MAX_APPROVALS)).contains(&n) => n as u32,
        Some(n) if n < 1 => {
            errors.push(FieldError::new(
                format!("{field}.approvals"),
                format!("{n} approvals: every class needs at least 1 approval"),
            ));
            0
        }
        Some(n) => {
            errors.push(FieldError::new(
                format!("{field}.approvals"),
                format!("{n} approvals: at most {MAX_APPROVALS}"),
            ));
            0
        }
        None => {
            errors.push(FieldError::new(
                format!("{field}.approvals"),
                "give the number of distinct approvals, at least 1",
            ));
            0
        }
    };
    let mut groups: Vec<String> = Vec::new();
    match rule.get("groups") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, g) in items.iter().enumerate() {
                let name = g.as_str().map(str::trim).unwrap_or_default();
                match group_name(name) {
                    Ok(()) if groups.iter().any(|x| x == name) => {}
                    Ok(()) => groups.push(name.to_string()),
                    Err(why) => errors.push(FieldError::new(format!("{field}.groups[{i}]"), why)),
                }
            }
        }
        Some(_) => errors.push(FieldError::new(
            format!("{field}.groups"),
            "write the groups as a list of names",
        )),
    }
    (errors.len() == before).then_some(ClassRule { approvals, groups })
}

/// An IdP group name: not empty, at most 128 characters of letters, digits, `-`, `_`, `.`, `:`,
/// `/`, `@`.
fn group_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("name the group: a group without a name can never be satisfied".into());
    }
    let ok = name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{name}' is not a group name (letters, digits and - _ . : / @, at most 128)"
        ))
    }
}

fn flag_names() -> String {
    use strum::VariantArray;
    RiskFlag::VARIANTS
        .iter()
        .map(|f| f.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A stored version of the rules.
#[derive(Debug, Clone, Serialize)]
pub struct Policy {
    pub version: i64,
    pub rules: ApprovalRules,
    pub created_by_name: String,
    pub created_at: i64,
}

/// How a group reads on a request of `team`: the team's approver groups for [`TEAM`].
pub fn group_words(group: &str, team: &str, config: &Config) -> String {
    if group != TEAM {
        return group.to_string();
    }
    config
        .teams
        .iter()
        .find(|t| t.name == team)
        .map(|t| t.approver_groups.join(" or "))
        .filter(|g| !g.is_empty())
        .unwrap_or_else(|| format!("the {team} approvers"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn good() -> Value {
        json!({
            "classes": {
                "dev": { "approvals": 1 },
                "test": { "approvals": 1, "groups": [] },
                "prod": { "approvals": 2, "groups": ["team", "security-approvers"] },
            },
            "routes": { "stateful_replacement": "dba-approvers" },
        })
    }

    fn fields(v: Value) -> Vec<String> {
        match ApprovalRules::parse(&v) {
            Ok(r) => panic!("accepted {r:?}"),
            Err(e) => e.into_iter().map(|e| e.field).collect(),
        }
    }

    #[test]
    fn a_complete_rule_set_is_read_as_given() {
        let r = ApprovalRules::parse(&good()).unwrap();
        assert_eq!(r.class(EnvClass::Prod).approvals, 2);
        assert_eq!(
            r.required_groups(EnvClass::Prod, &[RiskFlag::StatefulReplacement]),
            ["team", "security-approvers", "dba-approvers"]
        );
        assert!(r.required_groups(EnvClass::Dev, &[]).is_empty());
    }

    #[test]
    fn bad_rules_are_refused_naming_the_field() {
        let mut v = good();
        v["classes"]["prod"]["approvals"] = json!(0);
        assert_eq!(fields(v), ["classes.prod.approvals"]);
        let mut v = good();
        v["classes"]["dev"]["approvals"] = json!(0);
        assert_eq!(fields(v), ["classes.dev.approvals"]);
        let mut v = good();
        v["classes"]["prod"]["groups"] = json!(["security-approvers", " "]);
        assert_eq!(fields(v), ["classes.prod.groups[1]"]);
        let mut v = good();
        v["classes"]["staging"] = json!({ "approvals": 1 });
        assert_eq!(fields(v), ["classes.staging"]);
        let mut v = good();
        v["routes"]["moon_landing"] = json!("x");
        assert_eq!(fields(v), ["routes.moon_landing"]);
        let mut v = good();
        v["routes"]["iam_change"] = json!("");
        assert_eq!(fields(v), ["routes.iam_change"]);
        let mut v = good();
        v["classes"].as_object_mut().unwrap().remove("test");
        assert_eq!(fields(v), ["classes.test"]);
    }
}
