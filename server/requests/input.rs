//! Turning what a requester typed (form or JSON) into a validated, rendered, policy-checked
//! request — or one message per bad field.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Binding, stack_name};
use crate::accounts::{self, Account};
use crate::catalog::render::check_env_name;
use crate::catalog::{Blueprint, FieldError, PolicyReport, RenderContext, Rendered};
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
    pub account_id: String,
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
    pub team: String,
    pub blueprint: Blueprint,
    pub account: Account,
    pub region: String,
    pub name: String,
    pub stack_name: String,
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

/// Validates, renders and policy-checks a new request. Authorization failures are errors;
/// input problems come back as one [`FieldError`] per field.
pub async fn prepare(
    state: &AppState,
    user: &CurrentUser,
    input: &NewRequest,
) -> Result<Prepared, AppError> {
    let team = pick_team(user, input.team.as_deref())?;
    let mut errors = Vec::new();
    let blueprint = state.catalog.get(&input.blueprint).cloned();
    if blueprint.is_none() {
        errors.push(FieldError::new(
            "blueprint",
            "Choose a blueprint from the catalog.",
        ));
    }
    let account = match accounts::store::get(&state.db, &input.account_id).await? {
        Some(a) if a.env_class.is_workload() && a.allows_team(&team) => Some(a),
        _ => {
            errors.push(FieldError::new(
                "account_id",
                format!("Choose one of team {team}'s accounts."),
            ));
            None
        }
    };
    if let Some(a) = &account
        && !a.allows_region(&input.region)
    {
        let allowed: Vec<&str> = a.regions.iter().map(|r| r.as_str()).collect();
        errors.push(FieldError::new(
            "region",
            format!("{} allows {}.", a.name, allowed.join(", ")),
        ));
    }
    let (Some(blueprint), Some(account)) = (blueprint, account) else {
        // Rendering checks the name; without a blueprint or account, say it here too.
        if let Err(m) = check_env_name(&input.name) {
            errors.push(FieldError::new("name", m));
        }
        return Err(AppError::Invalid(errors));
    };
    let ctx = RenderContext {
        env_class: account.env_class,
        region: input.region.clone(),
        name: input.name.clone(),
    };
    let (bp, params, policy) = (
        blueprint.clone(),
        input.parameters.clone(),
        state.policy.clone(),
    );
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
    if !errors.is_empty() {
        return Err(AppError::Invalid(errors));
    }
    let stack_name = stack_name(&team, &input.name, account.env_class);
    let content_hash = Binding {
        blueprint_digest: &blueprint.digest,
        template_digest: &rendered.digest,
        params: &rendered.params,
        account_id: account.id.as_str(),
        region: &input.region,
        stack_name: &stack_name,
        deploy_role_arn: account.deploy_role_arn.as_str(),
        execution_role_arn: account.cfn_execution_role_arn.as_ref().map(|r| r.as_str()),
        capabilities: &blueprint.capabilities,
    }
    .hash();
    Ok(Prepared {
        team,
        region: input.region.clone(),
        name: input.name.clone(),
        stack_name,
        blueprint,
        account,
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
