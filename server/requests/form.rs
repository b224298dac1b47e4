//! The new-request form as a model: built from whatever the browser sent (a first visit, each
//! keystroke, a submit), checked as far as asked, and previewed once it is valid. Each step is a
//! function of its own; [`build`] runs them in order.

use std::collections::BTreeMap;

use super::input::{NewRequest, prepare};
use super::views::{Preview, RequestForm, account_options, param_fields, policy_rows};
use crate::accounts::{self, Account};
use crate::catalog::Blueprint;
use crate::error::{AppError, FieldError};
use crate::ids::{EnvClass, Region};
use crate::state::AppState;
use crate::web::CurrentUser;

/// How much of the form to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Only draw it (first visit).
    None,
    /// As the user fills it in: everything but a name not typed yet.
    AsYouType,
    /// On submit or the Preview button: everything.
    All,
}

/// The fields that are not blueprint parameters, each shown next to its own input.
const CONTEXT_FIELDS: [&str; 4] = ["name", "account_id", "region", "team"];

/// Where the request would go: the chosen (or first) account of the team and its region.
struct Target<'a> {
    accounts: &'a [Account],
    account: Option<&'a Account>,
    region: Option<&'a Region>,
}

impl<'a> Target<'a> {
    fn choose(accounts: &'a [Account], raw: &BTreeMap<String, String>) -> Target<'a> {
        let account = accounts
            .iter()
            .find(|a| raw.get("account_id").is_some_and(|id| a.id.as_str() == id))
            .or_else(|| accounts.first());
        let region = account.and_then(|a| {
            a.regions
                .iter()
                .find(|r| raw.get("region").is_some_and(|x| r.as_str() == x))
                .or_else(|| a.regions.first())
        });
        Target {
            accounts,
            account,
            region,
        }
    }

    fn class(&self) -> EnvClass {
        self.account.map(|a| a.env_class).unwrap_or(EnvClass::Dev)
    }
}

/// The parameter values typed so far. Values still at the previous class's default follow a
/// newly chosen account's class.
fn parameter_values(
    blueprint: &Blueprint,
    raw: &BTreeMap<String, String>,
    class: EnvClass,
) -> BTreeMap<String, String> {
    let mut values: BTreeMap<String, String> = raw
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("param.").map(|p| (p.to_string(), v.clone())))
        .collect();
    let previous = raw
        .get("defaults_for")
        .and_then(|c| c.parse::<EnvClass>().ok());
    if let Some(prev) = previous.filter(|p| *p != class) {
        for p in &blueprint.parameters {
            if values
                .get(&p.name)
                .is_some_and(|v| Some(v) == p.default_for(prev).as_ref())
            {
                values.remove(&p.name);
            }
        }
    }
    values
}

/// What the checks found, sorted by where each message is shown.
#[derive(Default)]
struct Findings {
    fields: BTreeMap<String, String>,
    params: Vec<FieldError>,
    general: Vec<String>,
    preview: Option<Preview>,
}

impl Findings {
    fn sort(&mut self, blueprint: &Blueprint, errors: Vec<FieldError>) {
        for e in errors {
            if blueprint.param(&e.field).is_some() {
                self.params.push(e);
            } else if CONTEXT_FIELDS.contains(&e.field.as_str()) {
                self.fields.insert(e.field, e.message);
            } else {
                self.general.push(e.message);
            }
        }
    }
}

/// Validates, renders and policy-checks what was typed, as a request would be.
async fn check_and_preview(
    state: &AppState,
    user: &CurrentUser,
    input: &NewRequest,
    blueprint: &Blueprint,
    found: &mut Findings,
) -> Result<(), AppError> {
    match prepare(state, user, input).await {
        Ok(p) => {
            if !p.policy.passed {
                let failing: Vec<&str> = p
                    .policy
                    .results
                    .iter()
                    .filter(|r| !r.passed)
                    .map(|r| r.rule.as_str())
                    .collect();
                found
                    .general
                    .push(format!("Policy rules fail: {}.", failing.join(", ")));
            }
            found.preview = Some(Preview {
                stack_name: p.stack_name.clone(),
                total: p.rendered.resources.iter().map(|(_, n)| n).sum(),
                resources: p.rendered.resources.clone(),
                template_body: p.rendered.body.clone(),
                digest: p.rendered.digest.clone(),
                policy_passed: p.policy.passed,
                policy: policy_rows(&p.policy),
            });
            Ok(())
        }
        Err(AppError::Invalid(errors)) => {
            found.sort(blueprint, errors);
            Ok(())
        }
        Err(other) => Err(other),
    }
}

/// Builds the form from raw values, checks it as asked and previews it when it is valid.
pub async fn build(
    state: &AppState,
    user: &CurrentUser,
    raw: &BTreeMap<String, String>,
    check: Check,
) -> Result<RequestForm, AppError> {
    let slug = raw
        .get("blueprint")
        .map(String::as_str)
        .unwrap_or("network");
    let blueprint = state.catalog.get(slug).ok_or(AppError::NotFound)?.clone();
    let teams = user.roles.requester_teams.clone();
    let team = match raw.get("team").filter(|t| !t.is_empty()) {
        Some(t) => t.clone(),
        None => teams.first().cloned().unwrap_or_default(),
    };
    user.require_requester_for(&team)?;
    let accounts = accounts::store::for_team(&state.db, &team).await?;
    let target = Target::choose(&accounts, raw);
    let values = parameter_values(&blueprint, raw, target.class());
    let name = raw
        .get("name")
        .map(|n| n.trim().to_string())
        .unwrap_or_default();
    let mut found = Findings::default();
    if accounts.is_empty() {
        found.general.push(format!(
            "Team {team} has no accounts to deploy into yet. Ask the platform team to register one."
        ));
    }
    if check != Check::None && target.account.is_some() {
        let mut input = NewRequest::from_form(raw);
        input.team = Some(team.clone());
        input.account_id = target.account.map(|a| a.id.to_string()).unwrap_or_default();
        input.region = target.region.map(|r| r.to_string()).unwrap_or_default();
        input.parameters = values.clone();
        check_and_preview(state, user, &input, &blueprint, &mut found).await?;
    }
    if check == Check::AsYouType && name.is_empty() {
        // Not typed yet: no error to shout about (submitting still needs it).
        found.fields.remove("name");
    }
    let can_submit = found.fields.is_empty() && found.params.is_empty() && found.general.is_empty();
    Ok(RequestForm {
        csrf_token: user.csrf_token.clone(),
        blueprint_slug: blueprint.slug.clone(),
        blueprint_name: blueprint.name.clone(),
        blueprint_version: blueprint.version.clone(),
        blueprint_summary: blueprint.summary.clone(),
        accounts: account_options(
            target.accounts,
            target.account.map(|a| a.id.as_str()).unwrap_or_default(),
        ),
        regions: target
            .account
            .map(|a| {
                a.regions
                    .iter()
                    .map(|r| (r.to_string(), Some(r) == target.region))
                    .collect()
            })
            .unwrap_or_default(),
        params: param_fields(&blueprint, target.class(), &values, &found.params),
        teams,
        team,
        name,
        defaults_for: target.class().as_str().to_string(),
        field_errors: found.fields,
        general_errors: found.general,
        preview: found.preview,
        can_submit,
        oob: false,
    })
}
