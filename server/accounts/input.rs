//! What an admin types for an account (the form or the API body), checked into an
//! [`AccountSpec`], or one message per field that names it.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{AccountSpec, AwsAccountId, Purpose, Region, check_settings, role_in_account};
use crate::error::FieldError;

/// The AWS regions an account may list (commercial and GovCloud partitions, as of 2026).
pub const KNOWN_REGIONS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "us-gov-east-1",
    "us-gov-west-1",
];

/// An account as the API takes it (`POST` and `PUT /api/v1/accounts…`). Unknown fields are
/// refused: the ExternalId is never typed.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AccountBody {
    /// Only when creating (the path names it when editing).
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub purpose: String,
    #[serde(default)]
    pub deploy_role_arn: String,
    #[serde(default)]
    pub cfn_execution_role_arn: Option<String>,
    #[serde(default)]
    pub regions: Vec<String>,
    #[serde(default)]
    pub teams: Vec<String>,
    #[serde(default)]
    pub settings: BTreeMap<String, serde_json::Value>,
}

/// The same from the form: lists are comma- or space-separated, settings a JSON object.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct AccountForm {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub purpose: String,
    #[serde(default)]
    pub deploy_role_arn: String,
    #[serde(default)]
    pub cfn_execution_role_arn: String,
    #[serde(default)]
    pub regions: String,
    #[serde(default)]
    pub teams: String,
    #[serde(default)]
    pub settings: String,
}

fn words(s: &str) -> Vec<String> {
    s.split([',', ' ', '\n', '\r', '\t'])
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

impl AccountForm {
    /// The form as an API body; a settings field that is not a JSON object is a field error.
    pub fn body(&self) -> Result<AccountBody, FieldError> {
        let settings = match self.settings.trim() {
            "" => BTreeMap::new(),
            text => serde_json::from_str(text).map_err(|e| {
                FieldError::new("settings", format!("Write a JSON object of settings: {e}."))
            })?,
        };
        let exec = self.cfn_execution_role_arn.trim();
        Ok(AccountBody {
            id: Some(self.id.trim().to_string()),
            name: self.name.clone(),
            purpose: self.purpose.clone(),
            deploy_role_arn: self.deploy_role_arn.clone(),
            cfn_execution_role_arn: (!exec.is_empty()).then(|| exec.to_string()),
            regions: words(&self.regions),
            teams: words(&self.teams),
            settings,
        })
    }

    /// The form filled with an account's values (to edit it).
    pub fn of(spec: &AccountSpec) -> AccountForm {
        AccountForm {
            id: spec.id.to_string(),
            name: spec.name.clone(),
            purpose: spec.purpose.to_string(),
            deploy_role_arn: spec.deploy_role_arn.to_string(),
            cfn_execution_role_arn: spec
                .cfn_execution_role_arn
                .as_ref()
                .map(|r| r.to_string())
                .unwrap_or_default(),
            regions: spec.regions_csv().replace(',', ", "),
            teams: spec.teams.join(", "),
            settings: if spec.settings.is_empty() {
                String::new()
            } else {
                serde_json::to_string_pretty(&spec.settings).unwrap_or_default()
            },
        }
    }
}

/// Checks an account: a 12-digit id, a name, a purpose, role ARNs of this account, known
/// regions (at least one), configured teams, known settings. Every problem, field by field.
pub fn validate(
    body: &AccountBody,
    id: &str,
    known_teams: &[&str],
) -> Result<AccountSpec, Vec<FieldError>> {
    let mut errors = Vec::new();
    let id = AwsAccountId::try_from(id.trim().to_string())
        .map_err(|e| errors.push(FieldError::new("id", format!("{e}."))))
        .ok();
    let name = body.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 64 {
        errors.push(FieldError::new(
            "name",
            "Give the account a name (1–64 characters).",
        ));
    }
    let purpose = Purpose::named(body.purpose.trim())
        .map_err(|e| errors.push(FieldError::new("purpose", format!("{e}."))))
        .ok();
    let mut role = |field: &str, arn: &str| {
        let id = id.as_ref()?;
        role_in_account(id, arn)
            .map_err(|e| errors.push(FieldError::new(field, format!("{e}."))))
            .ok()
    };
    let deploy = role("deploy_role_arn", &body.deploy_role_arn);
    let exec = body
        .cfn_execution_role_arn
        .as_deref()
        .filter(|a| !a.trim().is_empty())
        .map(|a| role("cfn_execution_role_arn", a));
    let mut regions = Vec::new();
    for r in &body.regions {
        let r = r.trim();
        if !KNOWN_REGIONS.contains(&r) {
            errors.push(FieldError::new(
                "regions",
                format!("'{r}' is not a known AWS region (such as eu-west-2)."),
            ));
        } else if let Ok(region) = Region::try_from(r.to_string())
            && !regions.contains(&region)
        {
            regions.push(region);
        }
    }
    if body.regions.is_empty() {
        errors.push(FieldError::new(
            "regions",
            "List at least one region; the first is the default.",
        ));
    }
    let mut teams: Vec<String> = body.teams.iter().map(|t| t.trim().to_string()).collect();
    teams.sort();
    teams.dedup();
    for t in &teams {
        if !known_teams.contains(&t.as_str()) {
            errors.push(FieldError::new(
                "teams",
                format!(
                    "'{t}' is not a configured team: use {}.",
                    known_teams.join(", ")
                ),
            ));
        }
    }
    if let Err(e) = check_settings(&body.settings) {
        errors.push(FieldError::new("settings", format!("{e}.")));
    }
    match (id, purpose, deploy, exec) {
        (Some(id), Some(purpose), Some(deploy_role_arn), exec) if errors.is_empty() => {
            Ok(AccountSpec {
                id,
                name,
                purpose,
                deploy_role_arn,
                cfn_execution_role_arn: exec.flatten(),
                regions,
                teams,
                settings: body.settings.clone(),
            })
        }
        _ => Err(errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> AccountBody {
        AccountBody {
            id: None,
            name: "sandbox".into(),
            purpose: "dev".into(),
            deploy_role_arn: "arn:aws:iam::210000000001:role/stackgate-deploy".into(),
            cfn_execution_role_arn: None,
            regions: vec!["eu-west-2".into()],
            teams: vec!["payments".into()],
            settings: BTreeMap::new(),
        }
    }

    fn fields(body: &AccountBody, id: &str) -> Vec<String> {
        validate(body, id, &["payments", "lending"])
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn bad_input_is_refused_naming_the_field() {
        let id = "210000000001";
        assert!(validate(&good(), id, &["payments"]).is_ok());
        assert_eq!(fields(&good(), "2100000001"), ["id"]);
        let other = AccountBody {
            deploy_role_arn: "arn:aws:iam::999999999999:role/stackgate-deploy".into(),
            ..good()
        };
        assert_eq!(fields(&other, id), ["deploy_role_arn"]);
        let user = AccountBody {
            deploy_role_arn: "arn:aws:iam::210000000001:user/admin".into(),
            ..good()
        };
        assert_eq!(fields(&user, id), ["deploy_role_arn"]);
        let team = AccountBody {
            teams: vec!["ghosts".into()],
            ..good()
        };
        assert_eq!(fields(&team, id), ["teams"]);
        let region = AccountBody {
            regions: vec!["eu-west-9".into()],
            ..good()
        };
        assert_eq!(fields(&region, id), ["regions"]);
        let name = AccountBody {
            name: "  ".into(),
            ..good()
        };
        assert_eq!(fields(&name, id), ["name"]);
        let purpose = AccountBody {
            purpose: "core".into(),
            ..good()
        };
        assert_eq!(fields(&purpose, id), ["purpose"]);
    }
}
