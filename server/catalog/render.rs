//! Rendering a blueprint's minijinja template into a literal CloudFormation JSON template.
//!
//! The template sees `env_class`, `region`, `name`, `blueprint` (`slug`, `version`) and `params`
//! (the validated parameter values), plus two helpers: `cidr_subnet(cidr, newbits, index)` (like
//! Terraform's `cidrsubnet`) and the `tojson` filter. Everything the emulator cannot evaluate
//! (`Fn::Cidr`, `Fn::GetAZs`) is computed here, so the result is literal.

use std::collections::BTreeMap;

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::FieldError;
use super::cidr::Cidr;
use crate::ids::EnvClass;

/// Where and for whom a blueprint is rendered (the context of `docs/blueprints.md`). Every
/// string comes from the account registry, the configuration, the request or the environment's
/// recorded outputs, and is checked before it reaches the template.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RenderContext {
    /// Class of the target environment; selects parameter defaults.
    pub env_class: EnvClass,
    /// AWS region, e.g. `eu-west-2`; AZ names are `<region>a`, `b`, `c`.
    pub region: String,
    /// The stack's own name, `[a-z][a-z0-9-]{1,30}`; used in resource names and tags.
    pub name: String,
    /// The environment it belongs to (a workload's network); the same as `name` otherwise.
    pub environment: String,
    pub team: String,
    pub cost_centre: String,
    /// The requester's e-mail.
    pub owner: String,
    pub request_id: String,
    pub account: AccountRef,
    pub portal: PortalRef,
    /// Values from the environment's outputs, by input name.
    pub inputs: BTreeMap<String, serde_json::Value>,
    /// Admin-set settings of the target account, by name.
    pub settings: BTreeMap<String, serde_json::Value>,
}

/// The target account as a template sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct AccountRef {
    pub id: String,
    pub name: String,
    pub purpose: String,
    pub external_id: String,
}

/// The portal's own identity, which the bootstrap blueprint trusts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct PortalRef {
    pub role_arn: String,
    pub account_id: String,
}

impl RenderContext {
    /// A context for a stack called `name` of team `team`, with nothing else known yet (the
    /// command line, tests and previews fill in what they have).
    pub fn new(env_class: EnvClass, region: &str, name: &str, team: &str) -> RenderContext {
        RenderContext {
            env_class,
            region: region.to_string(),
            name: name.to_string(),
            environment: name.to_string(),
            team: team.to_string(),
            cost_centre: String::new(),
            owner: String::new(),
            request_id: String::new(),
            account: AccountRef::default(),
            portal: PortalRef::default(),
            inputs: BTreeMap::new(),
            settings: BTreeMap::new(),
        }
    }

    /// The seven tags every taggable resource carries, as a CloudFormation tag list.
    pub fn tags(&self, (slug, version): (&str, &str)) -> Vec<serde_json::Value> {
        [
            ("stackgate:team", self.team.clone()),
            ("stackgate:environment", self.environment.clone()),
            ("stackgate:env-class", self.env_class.to_string()),
            ("stackgate:cost-centre", self.cost_centre.clone()),
            ("stackgate:owner", self.owner.clone()),
            ("stackgate:request", self.request_id.clone()),
            ("stackgate:blueprint", format!("{slug}@{version}")),
        ]
        .into_iter()
        .map(|(k, v)| serde_json::json!({"Key": k, "Value": v}))
        .collect()
    }
}

/// A rendered, parsed template and what an approver needs to know about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// The template as JSON.
    pub template: serde_json::Value,
    /// The template as compact JSON: identical input gives byte-identical output.
    pub body: String,
    /// SHA-256 (hex) of `body`.
    pub digest: String,
    /// Number of resources per CloudFormation type, sorted by type.
    pub resources: Vec<(String, usize)>,
    /// The validated parameter values the template was rendered with.
    pub params: BTreeMap<String, serde_json::Value>,
}

impl Rendered {
    /// The parameter values as a JSON object's text, as stored with a request.
    pub fn params_json(&self) -> String {
        let object: serde_json::Map<String, serde_json::Value> = self
            .params
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        serde_json::Value::Object(object).to_string()
    }
}

/// A stored (compact) template indented for people to read; the stored text as it is when it
/// does not parse.
pub fn readable(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| body.to_string())
}

/// The largest `TemplateBody` CloudFormation accepts, in bytes.
pub const TEMPLATE_BODY_LIMIT: usize = 51_200;

/// The name under which a blueprint's template is stored in its environment.
pub(crate) const TEMPLATE_NAME: &str = "template.json.j2";

/// Builds the environment for one blueprint and compiles its template.
pub(crate) fn environment(source: String) -> Result<Environment<'static>, minijinja::Error> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.add_function("cidr_subnet", cidr_subnet);
    env.add_filter("tojson", tojson);
    env.add_template_owned(TEMPLATE_NAME, source)?;
    Ok(env)
}

fn cidr_subnet(cidr: String, newbits: u8, index: u32) -> Result<String, minijinja::Error> {
    let invalid = |e: String| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e);
    let block = Cidr::parse(&cidr).map_err(invalid)?;
    Ok(block.subnet(newbits, index).map_err(invalid)?.to_string())
}

fn tojson(value: minijinja::Value) -> Result<minijinja::Value, minijinja::Error> {
    serde_json::to_string(&value)
        .map(minijinja::Value::from_safe_string)
        .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::BadSerialization, e.to_string()))
}

/// Checks the context's own fields; one error per bad field.
/// Environment names: 2–31 lowercase letters, digits and dashes, starting with a letter and not
/// ending with a dash (they become part of stack and resource names).
pub fn check_env_name(name: &str) -> Result<(), String> {
    let ok = (2..=31).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && !name.contains("--")
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{name}' is not a valid environment name: use 2-31 characters, lowercase letters, \
             digits and single '-', starting with a letter (e.g. core)"
        ))
    }
}

/// Checks the context's own fields; one error per bad field.
pub(crate) fn check_context(ctx: &RenderContext) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if let Err(message) = check_env_name(&ctx.name) {
        errors.push(FieldError::new("name", message));
    }
    if let Err(message) = crate::ids::Region::try_from(ctx.region.clone()) {
        errors.push(FieldError::new("region", message));
    }
    if check_env_name(&ctx.environment).is_err() {
        errors.push(FieldError::new(
            "environment",
            format!("'{}' is not a valid environment name", ctx.environment),
        ));
    }
    errors
}

#[derive(Serialize)]
struct TemplateContext<'a> {
    #[serde(flatten)]
    ctx: &'a RenderContext,
    blueprint: BlueprintRef<'a>,
    params: &'a BTreeMap<String, serde_json::Value>,
    files: &'a BTreeMap<String, serde_json::Value>,
    tags: Vec<serde_json::Value>,
}

#[derive(Serialize)]
struct BlueprintRef<'a> {
    slug: &'a str,
    version: &'a str,
}

/// Renders, parses and summarises. Failures here are blueprint defects, reported as one
/// `FieldError` on the field `blueprint`.
pub(crate) fn render(
    env: &Environment<'static>,
    (slug, version): (&str, &str),
    (ctx, files): (&RenderContext, &BTreeMap<String, serde_json::Value>),
    checks: &[super::manifest::Check],
    params: BTreeMap<String, serde_json::Value>,
) -> Result<Rendered, Vec<FieldError>> {
    let defect = |what: String| {
        vec![FieldError::new(
            "blueprint",
            format!("blueprint {slug} {version} {what}: report this to the platform team"),
        )]
    };
    let tctx = TemplateContext {
        ctx,
        blueprint: BlueprintRef { slug, version },
        params: &params,
        files,
        tags: ctx.tags((slug, version)),
    };
    let value = minijinja::Value::from(minijinja::value::Serde(&tctx));
    let mut failed = Vec::new();
    for c in checks {
        let holds = env
            .compile_expression(&c.assert)
            .and_then(|e| e.eval(&value))
            .map_err(|e| {
                defect(format!(
                    "has a check on {} that fails to run ({e:#})",
                    c.field
                ))
            })?;
        if !holds.is_true() {
            failed.push(FieldError::new(c.field.as_str(), c.message.clone()));
        }
    }
    if !failed.is_empty() {
        return Err(failed);
    }
    let text = env
        .get_template(TEMPLATE_NAME)
        .and_then(|t| t.render(&value))
        .map_err(|e| defect(format!("failed to render ({e:#})")))?;
    let template: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| defect(format!("rendered invalid JSON ({e})")))?;
    // Compact: CloudFormation takes at most 51,200 bytes of TemplateBody, and indentation
    // would spend a third of it. Pages pretty-print it for reading.
    let body = serde_json::to_string(&template)
        .map_err(|e| defect(format!("could not be serialised ({e})")))?;
    if body.len() > TEMPLATE_BODY_LIMIT {
        return Err(defect(format!(
            "renders {} bytes, more than CloudFormation's {TEMPLATE_BODY_LIMIT}",
            body.len()
        )));
    }
    let digest = hex::encode(Sha256::digest(body.as_bytes()));
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    if let Some(resources) = template.get("Resources").and_then(|r| r.as_object()) {
        for res in resources.values() {
            let ty = res
                .get("Type")
                .and_then(|t| t.as_str())
                .unwrap_or("(no type)");
            *counts.entry(ty.to_owned()).or_default() += 1;
        }
    }
    Ok(Rendered {
        template,
        body,
        digest,
        resources: counts.into_iter().collect(),
        params,
    })
}
