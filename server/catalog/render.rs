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

/// Where and for whom a blueprint is rendered. Both strings come from the account registry and
/// the request, and are checked before they reach the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderContext {
    /// Class of the target environment; selects parameter defaults.
    pub env_class: EnvClass,
    /// AWS region, e.g. `eu-west-2`; AZ names are `<region>a`, `b`, `c`.
    pub region: String,
    /// Environment name, `[a-z][a-z0-9-]{1,30}`; used in resource names and tags.
    pub name: String,
}

/// A rendered, parsed template and what an approver needs to know about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// The template as JSON.
    pub template: serde_json::Value,
    /// The template as pretty JSON: identical input gives byte-identical output.
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
    if !ctx.env_class.is_workload() {
        errors.push(FieldError::new(
            "env_class",
            "core accounts do not take team environments: choose a dev, test or prod account",
        ));
    }
    errors
}

#[derive(Serialize)]
struct TemplateContext<'a> {
    env_class: &'a str,
    region: &'a str,
    name: &'a str,
    blueprint: BlueprintRef<'a>,
    params: &'a BTreeMap<String, serde_json::Value>,
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
    ctx: &RenderContext,
    params: BTreeMap<String, serde_json::Value>,
) -> Result<Rendered, Vec<FieldError>> {
    let defect = |what: String| {
        vec![FieldError::new(
            "blueprint",
            format!("blueprint {slug} {version} {what}: report this to the platform team"),
        )]
    };
    let tctx = TemplateContext {
        env_class: ctx.env_class.as_str(),
        region: &ctx.region,
        name: &ctx.name,
        blueprint: BlueprintRef { slug, version },
        params: &params,
    };
    let text = env
        .get_template(TEMPLATE_NAME)
        .and_then(|t| t.render(minijinja::value::Serde(&tctx)))
        .map_err(|e| defect(format!("failed to render ({e:#})")))?;
    let template: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| defect(format!("rendered invalid JSON ({e})")))?;
    let mut body = serde_json::to_string_pretty(&template)
        .map_err(|e| defect(format!("could not be serialised ({e})")))?;
    body.push('\n');
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
