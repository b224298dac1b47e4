//! Blueprint manifests (`blueprint.toml`): identity, description and the parameter list.
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
    /// CloudFormation capabilities its change sets are created with.
    pub capabilities: Vec<String>,
    pub parameters: Vec<ParamSpec>,
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
    #[serde(default)]
    capabilities: Vec<String>,
    #[serde(default)]
    parameters: Vec<RawParam>,
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
        other => bail!(
            "expected a string or an integer, found {}",
            other.type_str()
        ),
    }
}

fn is_ident(s: &str, extra: char) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == extra)
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
        let mut parameters: Vec<ParamSpec> = Vec::new();
        for p in raw.parameters {
            let name = p.name.clone();
            if parameters.iter().any(|q| q.name == name) {
                bail!("parameter '{name}' is declared twice");
            }
            parameters.push(param(p).with_context(|| format!("parameter '{name}'"))?);
        }
        Ok(Manifest {
            slug: raw.slug,
            name: raw.name,
            version: raw.version,
            summary: raw.summary,
            description: raw.description,
            capabilities: raw.capabilities,
            parameters,
        })
    }
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
        other => bail!("unknown kind '{other}': use cidr, choice, integer or string"),
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
