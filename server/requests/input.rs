//! Turning what a requester typed (form or JSON) into a validated, rendered, policy-checked
//! request — or one message per bad field.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::addresses;
use super::store::addresses::StackKey;
use super::store::environments::{self, Environment};
use super::{Binding, stack_name};
use crate::accounts::{self, Account};
use crate::catalog::cidr::Cidr;
use crate::catalog::render::check_env_name;
use crate::catalog::versions::VersionState;
use crate::catalog::{
    AccountRef, Audience, Blueprint, FieldError, Kind, PolicyReport, PortalRef, RenderContext,
    Rendered,
};
use crate::error::AppError;
use crate::state::AppState;
use crate::web::CurrentUser;

/// A new request as the API accepts it. Unknown fields (`role_arn`, `external_id`, a raw
/// template…) are refused: everything that reaches AWS comes from the registry and the catalog.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRequest {
    pub team: Option<String>,
    pub blueprint: String,
    /// The blueprint version to render (`MAJOR.MINOR.PATCH`); absent: the newest published one.
    #[serde(default)]
    pub blueprint_version: Option<String>,
    /// For a workload: the id of its environment, instead of an account and region.
    #[serde(default)]
    pub environment: Option<String>,
    #[serde(default)]
    pub account_id: String,
    #[serde(default)]
    pub region: String,
    pub name: String,
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
}

impl NewRequest {
    /// Reads the HTML form, whose blueprint parameters are named `param.<name>`.
    pub fn from_form(form: &BTreeMap<String, String>) -> NewRequest {
        let get = |k: &str| form.get(k).cloned().unwrap_or_default();
        NewRequest {
            team: form.get("team").cloned().filter(|t| !t.is_empty()),
            blueprint: get("blueprint"),
            blueprint_version: form
                .get("blueprint_version")
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty()),
            environment: form.get("environment").cloned().filter(|e| !e.is_empty()),
            account_id: get("account_id"),
            region: get("region"),
            name: get("name").trim().to_string(),
            parameters: form
                .iter()
                .filter_map(|(k, v)| {
                    k.strip_prefix("param.")
                        .map(|p| (p.to_string(), v.trim().to_string()))
                })
                .collect(),
        }
    }
}

/// Everything a request row needs, validated.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The request's id, chosen before rendering: the template tags resources with it.
    pub id: String,
    pub team: String,
    pub blueprint: Blueprint,
    pub account: Account,
    pub region: String,
    pub name: String,
    pub stack_name: String,
    /// For a workload, the environment it goes into.
    pub environment: Option<Environment>,
    /// For a network, its block of the address plan, reserved when the request is stored.
    pub address: Option<Cidr>,
    pub rendered: Rendered,
    pub policy: PolicyReport,
    pub content_hash: String,
}

/// The team a request is for: the one named, which the user must request for; or the user's only team.
fn pick_team(user: &CurrentUser, named: Option<&str>) -> Result<String, AppError> {
    match named {
        Some(team) => {
            user.require_requester_for(team)?;
            Ok(team.to_string())
        }
        None => match user.roles.requester_teams.as_slice() {
            [only] => Ok(only.clone()),
            [] => Err(AppError::Forbidden(
                "You are not a requester for any team. Ask your team lead to add you to your \
                 team's requester group."
                    .into(),
            )),
            _ => Err(AppError::Invalid(vec![FieldError::new(
                "team",
                "You request for several teams: choose one.",
            )])),
        },
    }
}

/// Where a request goes: its account and region, and for a workload the environment it joins.
pub(super) struct Placement {
    pub account: Account,
    pub region: String,
    pub environment: Option<Environment>,
}

/// The team a request is for. Admin-only blueprints (account baselines, the organization's
/// controls) are requested by admins, for the team named or the platform team.
fn requesting_team(
    user: &CurrentUser,
    blueprint: Option<&Blueprint>,
    named: Option<&str>,
) -> Result<String, AppError> {
    match blueprint.map(|b| b.audience) {
        Some(Audience::Admins) if user.roles.admin => Ok(named.unwrap_or("platform").to_string()),
        Some(Audience::Admins) => Err(AppError::Forbidden(
            "Only platform admins request this blueprint.".into(),
        )),
        _ => pick_team(user, named),
    }
}

/// The environment a workload goes into: a deployed environment of the same team.
async fn environment_of(
    state: &AppState,
    team: &str,
    input: &NewRequest,
    errors: &mut Vec<FieldError>,
) -> Result<Option<Environment>, AppError> {
    let id = input.environment.as_deref().unwrap_or_default();
    let found = match id {
        "" => None,
        id => environments::get(&state.db, id).await?,
    };
    match found {
        Some(env) if env.team == team => Ok(Some(env)),
        _ => {
            errors.push(FieldError::new(
                "environment",
                format!("Choose one of team {team}'s deployed environments."),
            ));
            Ok(None)
        }
    }
}

/// The account, region and environment of a request, or the errors that say what to choose.
async fn place(
    state: &AppState,
    team: &str,
    blueprint: Option<&Blueprint>,
    input: &NewRequest,
    errors: &mut Vec<FieldError>,
) -> Result<Option<Placement>, AppError> {
    let workload = blueprint.is_some_and(|b| b.kind == Kind::Workload);
    let environment = if workload {
        let Some(env) = environment_of(state, team, input, errors).await? else {
            return Ok(None);
        };
        Some(env)
    } else {
        None
    };
    let (account_id, region) = match &environment {
        Some(env) => (env.account_id.as_str(), env.region.as_str()),
        None => (input.account_id.as_str(), input.region.as_str()),
    };
    let admins = blueprint.is_some_and(|b| b.audience == Audience::Admins);
    let account = match accounts::store::get(&state.db, account_id).await? {
        Some(a) if admins && blueprint.is_some_and(|b| b.supports(a.env_class)) => a,
        Some(a) if !admins && a.env_class.is_workload() && a.allows_team(team) => a,
        _ => {
            let whose = if admins { "the registry's" } else { "team's" };
            errors.push(FieldError::new(
                "account_id",
                format!("Choose one of {whose} accounts this blueprint supports."),
            ));
            return Ok(None);
        }
    };
    if let Some(refusal) = account.refusal() {
        errors.push(FieldError::new("account_id", refusal));
        return Ok(None);
    }
    if !account.allows_region(region) {
        let allowed: Vec<&str> = account.regions.iter().map(|r| r.as_str()).collect();
        errors.push(FieldError::new(
            "region",
            format!("{} allows {}.", account.name, allowed.join(", ")),
        ));
        return Ok(None);
    }
    Ok(Some(Placement {
        region: region.to_string(),
        account,
        environment,
    }))
}

/// What a template knows of its request: who, where, which environment and its outputs.
fn context(
    state: &AppState,
    user: &CurrentUser,
    (id, team, name): (&str, &str, &str),
    at: &Placement,
    blueprint: &Blueprint,
) -> RenderContext {
    let account = &at.account;
    let mut ctx = RenderContext::new(account.env_class, &at.region, name, team);
    ctx.settings = account.settings.clone();
    ctx.cost_centre = state.config.cost_centre(team);
    ctx.owner = user.email.clone().unwrap_or_else(|| user.name.clone());
    ctx.request_id = id.to_string();
    ctx.account = AccountRef {
        id: account.id.to_string(),
        name: account.name.clone(),
        purpose: account.purpose.to_string(),
        external_id: account.external_id.clone(),
    };
    if let Some(arn) = &state.config.portal_role_arn {
        ctx.portal = PortalRef {
            role_arn: arn.clone(),
            account_id: arn.split(':').nth(4).unwrap_or_default().to_string(),
        };
    }
    if let Some(env) = &at.environment {
        ctx.environment = env.name.clone();
        for input in &blueprint.inputs {
            if let Some(value) = env.outputs.get(&input.output) {
                ctx.inputs.insert(input.name.clone(), input.value(value));
            }
        }
    }
    ctx
}

/// The stored blueprint version a request names (its newest published version when it names
/// none), and whether that version is deprecated (then only an update of a stack may use it).
/// Drafts, retired and unknown versions are field errors on `blueprint`.
async fn resolve(
    state: &AppState,
    input: &NewRequest,
    errors: &mut Vec<FieldError>,
) -> Result<(Option<Blueprint>, bool), AppError> {
    let slug = input.blueprint.as_str();
    let Some(version) = input.blueprint_version.as_deref() else {
        let latest = state.library.latest(slug).await?;
        if latest.is_none() {
            errors.push(FieldError::new(
                "blueprint",
                "Choose a blueprint from the catalog.",
            ));
        }
        return Ok((latest.map(|b| Blueprint::clone(&b)), false));
    };
    match state.library.get(slug, version).await? {
        None => {
            errors.push(FieldError::new(
                "blueprint",
                format!(
                    "{slug} has no version {version}: choose a published version from the catalog"
                ),
            ));
            Ok((None, false))
        }
        Some((bp, VersionState::Published)) => Ok((Some(Blueprint::clone(&bp)), false)),
        Some((bp, VersionState::Deprecated)) => Ok((Some(Blueprint::clone(&bp)), true)),
        Some((_, other)) => {
            errors.push(FieldError::new(
                "blueprint",
                format!("{slug} {version} is {other}: only published versions can be requested"),
            ));
            Ok((None, false))
        }
    }
}

/// Validates, renders and policy-checks a new request. Authorization failures are errors;
/// input problems come back as one [`FieldError`] per field.
pub async fn prepare(
    state: &AppState,
    user: &CurrentUser,
    input: &NewRequest,
) -> Result<Prepared, AppError> {
    let mut errors = Vec::new();
    let (blueprint, deprecated) = resolve(state, input, &mut errors).await?;
    let team = requesting_team(user, blueprint.as_ref(), input.team.as_deref())?;
    let placement = place(state, &team, blueprint.as_ref(), input, &mut errors).await?;
    let (Some(blueprint), Some(at)) = (blueprint, placement) else {
        // Rendering checks the name; without a blueprint or account, say it here too.
        if let Err(m) = check_env_name(&input.name) {
            errors.push(FieldError::new("name", m));
        }
        return Err(AppError::Invalid(errors));
    };
    let own_name = match &at.environment {
        Some(env) => format!("{}-{}", env.name, input.name),
        None => input.name.clone(),
    };
    let stack_name = stack_name(&team, &own_name, at.account.env_class);
    let stack = StackKey {
        account_id: at.account.id.as_str(),
        region: &at.region,
        stack_name: &stack_name,
    };
    let origin = super::store::addresses::stack_origin(&state.db, stack).await?;
    if deprecated && origin.is_none() {
        errors.push(FieldError::new(
            "blueprint",
            format!(
                "{} {} is deprecated: it only serves updates of environments already on it; request a new one from the newest published version",
                blueprint.slug, blueprint.version
            ),
        ));
        return Err(AppError::Invalid(errors));
    }
    let id = uuid::Uuid::new_v4().to_string();
    // An update keeps the stack's first request as its `stackgate:request` tag, so an unchanged
    // update renders the same template and changes nothing.
    let tag_id = origin
        .as_ref()
        .map_or(id.as_str(), |(first, _)| first.as_str());
    let ctx = context(state, user, (tag_id, &team, &input.name), &at, &blueprint);
    let mut params = input.parameters.clone();
    let current = origin.as_ref().and_then(|(_, block)| block.as_deref());
    let target = (&blueprint, &at, stack);
    let address = addresses::fill(state, target, current, &mut params, &mut errors).await?;
    let (bp, policy) = (blueprint.clone(), state.policy.clone());
    // Rendering and the policy check are CPU work: off the async executor.
    let (rendered, policy) = state
        .cpu
        .run(move || {
            bp.render(&ctx, &params).map(|r| {
                let report = policy.check(&r.body);
                (r, report)
            })
        })
        .await?
        .map_err(|param_errors| {
            errors.extend(param_errors);
            AppError::Invalid(errors.clone())
        })?;
    if let Some((param, cidr)) = &address {
        addresses::check(state, (param, cidr), stack, &mut errors).await?;
    }
    if !errors.is_empty() {
        return Err(AppError::Invalid(errors));
    }
    let content_hash = Binding {
        blueprint_digest: &blueprint.digest,
        template_digest: &rendered.digest,
        params: &rendered.params,
        account_id: at.account.id.as_str(),
        region: &at.region,
        stack_name: &stack_name,
        deploy_role_arn: at.account.deploy_role_arn.as_str(),
        execution_role_arn: at
            .account
            .cfn_execution_role_arn
            .as_ref()
            .map(|r| r.as_str()),
        capabilities: &blueprint.capabilities,
    }
    .hash();
    Ok(Prepared {
        id,
        team,
        region: at.region,
        name: input.name.clone(),
        stack_name,
        blueprint,
        account: at.account,
        environment: at.environment,
        address: address.map(|(_, cidr)| cidr),
        rendered,
        policy,
        content_hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_split_into_context_and_parameters() {
        let form: BTreeMap<String, String> = [
            ("blueprint", "network"),
            ("account_id", "444444444444"),
            ("region", "eu-west-2"),
            ("name", " core "),
            ("param.vpc_cidr", "10.1.0.0/16"),
            ("csrf_token", "x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let r = NewRequest::from_form(&form);
        assert_eq!(r.name, "core");
        assert_eq!(r.parameters.len(), 1);
        assert_eq!(
            r.parameters.get("vpc_cidr").map(String::as_str),
            Some("10.1.0.0/16")
        );
    }
}
