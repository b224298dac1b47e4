//! Blueprint manifests (`blueprint.toml`): identity, description, where the blueprint may be
//! used (kind, audience, classes), what it takes from elsewhere (inputs from an environment's
//! outputs, admin-set settings), its parameters, cross-field checks and named examples. The keys
//! are described in `docs/blueprints.md`.
//!
//! A manifest is checked completely at load time, defaults included (every default must pass its
//! own parameter's validation), so that a bad manifest stops the portal at start-up rather than
//! surfacing as a confusing form error later.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use serde::Deserialize;

use super::param::{ParamKind, ParamSpec};
use super::pattern::Pattern;
use crate::ids::EnvClass;

/// The parsed, checked contents of a `blueprint.toml`.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub slug: String,
    pub name: String,
    pub version: String,
    pub summary: String,
    pub description: String,
    pub kind: Kind,
    pub audience: Audience,
    /// Environment classes it may be rendered for.
    pub classes: Vec<EnvClass>,
    /// CloudFormation capabilities its change sets are created with.
    pub capabilities: Vec<String>,
    /// Names of the admin-set settings of the target account its template reads.
    pub settings: Vec<String>,
    /// Values taken from the outputs of the environment's stack.
    pub inputs: Vec<InputSpec>,
    pub parameters: Vec<ParamSpec>,
    pub checks: Vec<Check>,
    pub examples: Vec<Example>,
}

/// What a blueprint builds, which decides what a request for it names.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, strum::Display, strum::EnumString,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Kind {
    /// A network that workloads are put into (an account and region).
    Environment,
    /// Goes into one of the team's environments, whose outputs it takes as inputs.
    Workload,
    /// A team resource in an account and region, outside any environment.
    Standalone,
    /// An account-wide control (baseline, log archive, organization, bootstrap).
    Account,
}

/// Who may request a blueprint.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, strum::Display, strum::EnumString,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Audience {
    Teams,
    Admins,
}

/// A value read from the environment stack's outputs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InputSpec {
    pub name: String,
    /// The output's key, e.g. `VpcId`.
    pub output: String,
    /// A comma-separated output, split into a list.
    pub list: bool,
}

impl InputSpec {
    /// The template value of an output: a list input's comma-separated text as a list.
    pub fn value(&self, output: &str) -> serde_json::Value {
        if self.list {
            serde_json::Value::from(output.split(',').map(str::trim).collect::<Vec<_>>())
        } else {
            serde_json::Value::from(output)
        }
    }
}

/// A rule across fields: `assert` is a minijinja expression over the render context that is
/// true when the values are acceptable; otherwise `message` is shown on `field`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub field: String,
    pub assert: String,
    pub message: String,
}

/// A named set of values a blueprint renders with on the command line and in tests.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub name: String,
    pub description: String,
    /// Parameter values as a form carries them.
    pub params: BTreeMap<String, String>,
    pub inputs: BTreeMap<String, serde_json::Value>,
    pub settings: BTreeMap<String, serde_json::Value>,
}

/// The capabilities a blueprint may ask for.
pub const KNOWN_CAPABILITIES: [&str; 3] = [
    "CAPABILITY_IAM",
    "CAPABILITY_NAMED_IAM",
    "CAPABILITY_AUTO_EXPAND",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    slug: String,
    name: String,
    version: String,
    summary: String,
    description: String,
    kind: String,
    #[serde(default = "teams")]
    audience: String,
    classes: Vec<String>,
    #[serde(default)]
    capabilities: Vec<String>,
    #[serde(default)]
    settings: Vec<String>,
    #[serde(default)]
    inputs: BTreeMap<String, RawInput>,
    #[serde(default)]
    parameters: Vec<RawParam>,
    #[serde(default)]
    checks: Vec<RawCheck>,
    #[serde(default)]
    examples: Vec<RawExample>,
}

fn teams() -> String {
    "teams".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInput {
    output: String,
    #[serde(default)]
    list: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    field: String,
    assert: String,
    message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExample {
    name: String,
    description: String,
    #[serde(default)]
    params: BTreeMap<String, toml::Value>,
    #[serde(default)]
    inputs: BTreeMap<String, toml::Value>,
    #[serde(default)]
    settings: BTreeMap<String, toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParam {
    name: String,
    label: String,
    help: String,
    section: String,
    kind: String,
    #[serde(default)]
    options: Vec<RawOption>,
    min: Option<i64>,
    max: Option<i64>,
    pattern: Option<String>,
    max_len: Option<usize>,
    default: Option<toml::Value>,
    #[serde(default)]
    defaults: BTreeMap<String, toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOption {
    value: toml::Value,
    label: String,
}

/// A TOML scalar as the string a form would carry.
fn scalar(v: &toml::Value) -> anyhow::Result<String> {
    match v {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        other => bail!(
            "expected a string, an integer or a boolean, found {}",
            other.type_str()
        ),
    }
}

/// An input or setting value: a string or a list of strings.
fn text_or_list(v: &toml::Value) -> anyhow::Result<serde_json::Value> {
    match v {
        toml::Value::String(s) => Ok(serde_json::Value::String(s.clone())),
        toml::Value::Array(items) => items
            .iter()
            .map(|i| match i {
                toml::Value::String(s) => Ok(serde_json::Value::String(s.clone())),
                other => bail!("expected a list of strings, found {}", other.type_str()),
            })
            .collect::<anyhow::Result<Vec<_>>>()
            .map(serde_json::Value::Array),
        other => bail!(
            "expected a string or a list of strings, found {}",
            other.type_str()
        ),
    }
}

/// Setting names: what an account's settings may hold (docs/blueprints.md).
pub const KNOWN_SETTINGS: [&str; 9] = [
    "transit_gateway_id",
    "transit_gateway_cidrs",
    "bastion_admin_cidrs",
    "log_archive_bucket",
    "organization_id",
    "allowed_regions",
    "workload_ou_ids",
    "core_ou_ids",
    "home_region",
];

fn is_ident(s: &str, extra: char) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == extra)
}

/// Whether `s` could be a blueprint slug (lowercase letters, digits and '-').
pub fn is_slug(s: &str) -> bool {
    is_ident(s, '-')
}

impl Manifest {
    /// Parses and checks a manifest.
    pub fn parse(text: &str) -> anyhow::Result<Manifest> {
        let raw: RawManifest = toml::from_str(text)?;
        if !is_ident(&raw.slug, '-') {
            bail!(
                "slug '{}' must be lowercase letters, digits and '-'",
                raw.slug
            );
        }
        let parts: Vec<&str> = raw.version.split('.').collect();
        if parts.len() != 3
            || parts
                .iter()
                .any(|p| p.is_empty() || p.parse::<u32>().is_err())
        {
            bail!("version '{}' must be MAJOR.MINOR.PATCH", raw.version);
        }
        if let Some(bad) = raw
            .capabilities
            .iter()
            .find(|c| !KNOWN_CAPABILITIES.contains(&c.as_str()))
        {
            bail!(
                "capabilities: '{bad}' is not one of {}",
                KNOWN_CAPABILITIES.join(", ")
            );
        }
        let kind: Kind = raw.kind.parse().map_err(|_| {
            anyhow::anyhow!(
                "kind '{}': use environment, workload, standalone or account",
                raw.kind
            )
        })?;
        let audience: Audience = raw
            .audience
            .parse()
            .map_err(|_| anyhow::anyhow!("audience '{}': use teams or admins", raw.audience))?;
        let classes = raw
            .classes
            .iter()
            .map(|c| {
                c.parse::<EnvClass>()
                    .map_err(|_| anyhow::anyhow!("classes: '{c}' is not dev, test, prod or core"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        if classes.is_empty() {
            bail!("classes: name at least one environment class");
        }
        if let Some(bad) = raw
            .settings
            .iter()
            .find(|s| !KNOWN_SETTINGS.contains(&s.as_str()))
        {
            bail!(
                "settings: '{bad}' is not one of {}",
                KNOWN_SETTINGS.join(", ")
            );
        }
        if kind == Kind::Workload && raw.inputs.is_empty() {
            bail!("inputs: a workload takes at least one output of its environment");
        }
        if kind != Kind::Workload && !raw.inputs.is_empty() {
            bail!("inputs: only a workload takes inputs from an environment");
        }
        let inputs = raw
            .inputs
            .into_iter()
            .map(|(name, i)| InputSpec {
                name,
                output: i.output,
                list: i.list,
            })
            .collect();
        let mut parameters: Vec<ParamSpec> = Vec::new();
        for p in raw.parameters {
            let name = p.name.clone();
            if parameters.iter().any(|q| q.name == name) {
                bail!("parameter '{name}' is declared twice");
            }
            parameters.push(param(p).with_context(|| format!("parameter '{name}'"))?);
        }
        let checks = raw
            .checks
            .into_iter()
            .map(|c| check(c, &parameters))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut examples: Vec<Example> = Vec::new();
        for e in raw.examples {
            let name = e.name.clone();
            if examples.iter().any(|x| x.name == name) {
                bail!("example '{name}' is declared twice");
            }
            examples.push(example(e).with_context(|| format!("example '{name}'"))?);
        }
        if !examples.iter().any(|e| e.name == "default") {
            bail!("examples: one must be named 'default'");
        }
        Ok(Manifest {
            slug: raw.slug,
            name: raw.name,
            version: raw.version,
            summary: raw.summary,
            description: raw.description,
            kind,
            audience,
            classes,
            capabilities: raw.capabilities,
            settings: raw.settings,
            inputs,
            parameters,
            checks,
            examples,
        })
    }

    /// The example called `name`.
    pub fn example(&self, name: &str) -> Option<&Example> {
        self.examples.iter().find(|e| e.name == name)
    }
}

fn check(c: RawCheck, parameters: &[ParamSpec]) -> anyhow::Result<Check> {
    if !parameters.iter().any(|p| p.name == c.field) {
        bail!("checks: field '{}' is not a parameter", c.field);
    }
    let env = minijinja::Environment::new();
    env.compile_expression(&c.assert)
        .map_err(|e| anyhow::anyhow!("checks on '{}': assert does not parse: {e}", c.field))?;
    Ok(Check {
        field: c.field,
        assert: c.assert,
        message: c.message,
    })
}

fn example(e: RawExample) -> anyhow::Result<Example> {
    let params = e
        .params
        .iter()
        .map(|(k, v)| Ok((k.clone(), scalar(v).with_context(|| format!("params.{k}"))?)))
        .collect::<anyhow::Result<_>>()?;
    let values = |m: &BTreeMap<String, toml::Value>, what: &str| {
        m.iter()
            .map(|(k, v)| {
                Ok((
                    k.clone(),
                    text_or_list(v).with_context(|| format!("{what}.{k}"))?,
                ))
            })
            .collect::<anyhow::Result<BTreeMap<_, _>>>()
    };
    Ok(Example {
        name: e.name,
        description: e.description,
        params,
        inputs: values(&e.inputs, "inputs")?,
        settings: values(&e.settings, "settings")?,
    })
}

fn param(p: RawParam) -> anyhow::Result<ParamSpec> {
    if !is_ident(&p.name, '_') {
        bail!("name must be lowercase letters, digits and '_'");
    }
    let mut numeric = false;
    let mut compiled = None;
    let kind = match p.kind.as_str() {
        "cidr" => ParamKind::Cidr,
        "choice" => {
            if p.options.is_empty() {
                bail!("a choice needs at least one option");
            }
            numeric = p.options.iter().all(|o| o.value.is_integer());
            let options = p
                .options
                .iter()
                .map(|o| Ok((scalar(&o.value)?, o.label.clone())));
            ParamKind::Choice(options.collect::<anyhow::Result<_>>()?)
        }
        "boolean" => ParamKind::Boolean,
        "integer" => match (p.min, p.max) {
            (Some(min), Some(max)) if min <= max => ParamKind::Integer { min, max },
            _ => bail!("an integer needs min <= max"),
        },
        "string" => {
            let Some(max_len) = p.max_len else {
                bail!("a string needs max_len");
            };
            if let Some(src) = &p.pattern {
                compiled = Some(Pattern::compile(src).map_err(anyhow::Error::msg)?);
            }
            ParamKind::String {
                pattern: p.pattern.clone(),
                max_len,
            }
        }
        other => bail!("unknown kind '{other}': use boolean, cidr, choice, integer or string"),
    };
    let mut spec = ParamSpec {
        name: p.name,
        label: p.label,
        help: p.help,
        section: p.section,
        kind,
        numeric,
        defaults: BTreeMap::new(),
        pattern: compiled,
    };
    let fallback = p.default.as_ref().map(scalar).transpose()?;
    for env in [
        EnvClass::Dev,
        EnvClass::Test,
        EnvClass::Prod,
        EnvClass::Core,
    ] {
        let value = match p.defaults.get(env.as_str()) {
            Some(v) => Some(scalar(v)?),
            None => fallback.clone(),
        };
        if let Some(v) = value {
            spec.check(&v)
                .map_err(|e| anyhow::anyhow!("default for {env}: {e}"))?;
            spec.defaults.insert(env, v);
        }
    }
    if let Some(bad) = p.defaults.keys().find(|k| k.parse::<EnvClass>().is_err()) {
        bail!("defaults: '{bad}' is not an environment class (dev, test, prod, core)");
    }
    Ok(spec)
}
