//! The new-request form as a model: built from whatever the browser sent (a first visit, each
//! keystroke, a submit), checked as far as asked, and previewed once it is valid. Each step is a
//! function of its own; [`build`] runs them in order.

use std::collections::BTreeMap;

use super::addresses;
use super::input::{NewRequest, prepare};
use super::store::addresses::StackKey;
use super::store::environments;
use super::views::{Preview, RequestForm, account_options, param_fields, policy_rows};
use crate::accounts::{self, Account};
use crate::catalog::{Audience, Blueprint, Kind};
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
const CONTEXT_FIELDS: [&str; 5] = ["name", "account_id", "region", "team", "environment"];

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
                template_body: crate::catalog::render::readable(&p.rendered.body),
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

/// A network's address field: while the requester has not typed a block of their own, it shows
/// the stack's current block (an update) or the address plan's next free one for the chosen
/// account's class and region. Returns the block proposed.
async fn propose_block(
    state: &AppState,
    (blueprint, team, name): (&Blueprint, &str, &str),
    target: &Target<'_>,
    raw: &BTreeMap<String, String>,
    values: &mut BTreeMap<String, String>,
) -> Result<String, AppError> {
    let (Some(param), Some(account), Some(region)) = (
        addresses::address_param(blueprint),
        target.account,
        target.region,
    ) else {
        return Ok(String::new());
    };
    let current = values.get(param).cloned().unwrap_or_default();
    let manifest_default = blueprint.param(param).is_some_and(|p| {
        [
            EnvClass::Dev,
            EnvClass::Test,
            EnvClass::Prod,
            EnvClass::Core,
        ]
        .iter()
        .any(|c| p.default_for(*c).as_deref() == Some(current.as_str()))
    });
    let untouched =
        current.trim().is_empty() || raw.get("proposed_cidr") == Some(&current) || manifest_default;
    if !untouched {
        return Ok(raw.get("proposed_cidr").cloned().unwrap_or_default());
    }
    let stack_name = super::stack_name(team, name, account.env_class);
    let stack = StackKey {
        account_id: account.id.as_str(),
        region: region.as_str(),
        stack_name: &stack_name,
    };
    let origin = super::store::addresses::stack_origin(&state.db, stack).await?;
    let current = origin.as_ref().and_then(|(_, block)| block.as_deref());
    match addresses::own_or_next(state, current, account.env_class, stack).await? {
        Some(block) => {
            values.insert(param.to_string(), block.to_string());
            Ok(block.to_string())
        }
        None => Ok(String::new()),
    }
}

/// Who requests and where they may deploy: a requester's teams and their team's accounts; for
/// an admin-only blueprint, the platform team and every registered account of its classes.
async fn who_and_where(
    state: &AppState,
    user: &CurrentUser,
    blueprint: &Blueprint,
    raw: &BTreeMap<String, String>,
) -> Result<(Vec<String>, String, Vec<Account>), AppError> {
    if blueprint.audience == Audience::Admins {
        if !user.roles.admin {
            return Err(AppError::Forbidden(
                "Only platform admins request this blueprint.".into(),
            ));
        }
        let mut accounts = accounts::store::list(&state.db).await?;
        accounts.retain(|a| blueprint.supports(a.env_class));
        return Ok((vec!["platform".into()], "platform".into(), accounts));
    }
    let teams = user.roles.requester_teams.clone();
    let team = match raw.get("team").filter(|t| !t.is_empty()) {
        Some(t) => t.clone(),
        None => teams.first().cloned().unwrap_or_default(),
    };
    user.require_requester_for(&team)?;
    let accounts = accounts::store::for_team(&state.db, &team).await?;
    Ok((teams, team, accounts))
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
    let latest = state.library.latest(slug).await?;
    let blueprint = Blueprint::clone(latest.as_deref().ok_or(AppError::NotFound)?);
    let (teams, team, accounts) = who_and_where(state, user, &blueprint, raw).await?;
    let environments = match blueprint.kind {
        Kind::Workload => environments::list(&state.db, Some(std::slice::from_ref(&team))).await?,
        _ => Vec::new(),
    };
    let environment = environments
        .iter()
        .find(|e| raw.get("environment") == Some(&e.id))
        .or_else(|| environments.first());
    // A workload's account and region are its environment's.
    let mut chosen = raw.clone();
    if let Some(env) = environment {
        chosen.insert("account_id".into(), env.account_id.clone());
        chosen.insert("region".into(), env.region.clone());
    }
    let target = Target::choose(&accounts, &chosen);
    let mut values = parameter_values(&blueprint, raw, target.class());
    let name = raw
        .get("name")
        .map(|n| n.trim().to_string())
        .unwrap_or_default();
    let proposed =
        propose_block(state, (&blueprint, &team, &name), &target, raw, &mut values).await?;
    let mut found = Findings::default();
    if accounts.is_empty() {
        found.general.push(format!(
            "Team {team} has no accounts to deploy into yet. Ask the platform team to register one."
        ));
    }
    if blueprint.kind == Kind::Workload && environment.is_none() {
        found.general.push(format!(
            "Team {team} has no deployed environment yet: request a network first, then put \
             workloads into it."
        ));
    }
    if check != Check::None && target.account.is_some() {
        let mut input = NewRequest::from_form(raw);
        input.team = Some(team.clone());
        input.environment = environment.map(|e| e.id.clone());
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
        documents: blueprint
            .files
            .iter()
            .map(|(name, doc)| {
                let text = serde_json::to_string_pretty(doc).unwrap_or_else(|_| doc.to_string());
                (name.clone(), text)
            })
            .collect(),
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
        workload: blueprint.kind == Kind::Workload,
        proposed_cidr: proposed,
        environments: environments
            .iter()
            .map(|e| {
                let label = format!(
                    "{} ({}, {} · {})",
                    e.name, e.env_class, e.account_name, e.region
                );
                (e.id.clone(), label, Some(e) == environment)
            })
            .collect(),
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
