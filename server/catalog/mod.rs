//! The blueprint catalog: pre-approved, versioned CloudFormation blueprints that teams request
//! environments from.
//!
//! A blueprint is a folder under `cloudformation/` holding a manifest (`blueprint.toml`: identity,
//! description, parameters) and a minijinja template (`template.json.j2`) that renders a literal
//! CloudFormation JSON template. [`Catalog::load`] reads and compiles every blueprint at start-up;
//! [`Blueprint::validate`] turns form input into typed parameters with one clear message per bad
//! field; [`Blueprint::render`] produces the exact template an approver reviews, with a digest.
//! [`policy::PolicyEngine`] checks rendered templates against the project's cfn-guard rules.

pub mod admin_routes;
pub mod cidr;
pub mod manifest;
pub mod param;
mod pattern;
pub mod policy;
pub mod render;
pub mod routes;
pub mod store;
#[cfg(test)]
mod tests;
pub mod versions;
pub mod views;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

pub use manifest::{Audience, Check, Example, InputSpec, Kind};
pub use param::{ParamKind, ParamSpec};
pub use policy::{PolicyEngine, PolicyReport, RuleResult};
pub use render::{AccountRef, PortalRef, RenderContext, Rendered};

pub use crate::error::FieldError;
use crate::ids::EnvClass;

/// One blueprint version: its manifest, compiled template and digest.
#[derive(Debug, Clone)]
pub struct Blueprint {
    /// URL-safe identifier, also the folder name (e.g. `network`).
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Semantic version, `MAJOR.MINOR.PATCH`.
    pub version: String,
    /// One-line summary for the catalog list.
    pub summary: String,
    /// Longer description for the blueprint's page.
    pub description: String,
    pub kind: Kind,
    pub audience: Audience,
    /// Environment classes it may be rendered for.
    pub classes: Vec<EnvClass>,
    /// CloudFormation capabilities its change sets are created with (from the manifest).
    pub capabilities: Vec<String>,
    /// Admin-set settings of the target account its template reads.
    pub settings: Vec<String>,
    /// Values it takes from its environment's outputs.
    pub inputs: Vec<InputSpec>,
    /// Parameters in form order.
    pub parameters: Vec<ParamSpec>,
    pub checks: Vec<Check>,
    pub examples: Vec<Example>,
    /// The folder's extra JSON files, parsed, by file stem.
    pub files: BTreeMap<String, serde_json::Value>,
    /// SHA-256 (hex) of the manifest, the template and each extra file (in name order).
    pub digest: String,
    env: minijinja::Environment<'static>,
}

impl Blueprint {
    /// Loads one blueprint folder: `blueprint.toml` and `template.json.j2`.
    pub fn load(dir: &Path) -> anyhow::Result<Blueprint> {
        let source = Source::read(dir)?;
        Self::from_parts(&source.manifest, source.template, &source.files)
            .with_context(|| format!("blueprint in {}", dir.display()))
    }

    /// Builds a blueprint from manifest and template text and its extra files as `(file name,
    /// text)` (used by `load` and by tests).
    pub fn from_parts(
        manifest_text: &str,
        template_text: String,
        extra: &[(String, String)],
    ) -> anyhow::Result<Blueprint> {
        let mut hasher = Sha256::new();
        hasher.update(manifest_text.as_bytes());
        hasher.update(template_text.as_bytes());
        let mut files = BTreeMap::new();
        for (name, text) in extra {
            // Name and length first, so moving bytes between files changes the digest.
            hasher.update(format!("\0{name}\0{}\0", text.len()).as_bytes());
            hasher.update(text.as_bytes());
            let value: serde_json::Value =
                serde_json::from_str(text).with_context(|| format!("{name}: not JSON"))?;
            let stem = name.strip_suffix(".json").unwrap_or(name).replace('-', "_");
            files.insert(stem, value);
        }
        let digest = hex::encode(hasher.finalize());
        let m = manifest::Manifest::parse(manifest_text).context("blueprint.toml")?;
        let env = render::environment(template_text)
            .map_err(anyhow::Error::new)
            .context(render::TEMPLATE_NAME)?;
        Ok(Blueprint {
            slug: m.slug,
            name: m.name,
            version: m.version,
            summary: m.summary,
            description: m.description,
            kind: m.kind,
            audience: m.audience,
            classes: m.classes,
            capabilities: m.capabilities,
            settings: m.settings,
            inputs: m.inputs,
            parameters: m.parameters,
            checks: m.checks,
            examples: m.examples,
            files,
            digest,
            env,
        })
    }

    /// Whether it may be rendered for this class.
    pub fn supports(&self, class: EnvClass) -> bool {
        self.classes.contains(&class)
    }

    /// The example called `name`.
    pub fn example(&self, name: &str) -> Option<&Example> {
        self.examples.iter().find(|e| e.name == name)
    }

    /// The form values of an example for a class: the `default` example's values first (they
    /// give required parameters a value), then the example's own.
    pub fn example_values(&self, example: &Example) -> BTreeMap<String, String> {
        let mut values = self
            .example("default")
            .map(|d| d.params.clone())
            .unwrap_or_default();
        values.extend(example.params.clone());
        values
    }

    /// Puts an example's inputs and settings (over the `default` example's) into a context. A
    /// list input written as one comma-separated string (as the output it stands for) is split.
    pub fn apply_example(&self, example: &Example, ctx: &mut RenderContext) {
        for e in [self.example("default"), Some(example)]
            .into_iter()
            .flatten()
        {
            for (name, value) in &e.inputs {
                let spec = self.inputs.iter().find(|i| &i.name == name);
                let value = match (spec, value.as_str()) {
                    (Some(spec), Some(text)) => spec.value(text),
                    _ => value.clone(),
                };
                ctx.inputs.insert(name.clone(), value);
            }
            ctx.settings.extend(e.settings.clone());
        }
    }

    /// The parameter called `name`, if the blueprint has one.
    pub fn param(&self, name: &str) -> Option<&ParamSpec> {
        self.parameters.iter().find(|p| p.name == name)
    }

    /// Checks form input for an environment class. Missing or blank values take the class's
    /// default; unknown names are errors. Returns the typed values, or one error per bad field.
    pub fn validate(
        &self,
        env: EnvClass,
        raw: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, serde_json::Value>, Vec<FieldError>> {
        let mut errors = Vec::new();
        for key in raw.keys().filter(|k| self.param(k).is_none()) {
            let known: Vec<&str> = self.parameters.iter().map(|p| p.name.as_str()).collect();
            errors.push(FieldError::new(
                key.as_str(),
                format!(
                    "'{key}' is not a parameter of {}: remove it (this blueprint takes {})",
                    self.slug,
                    known.join(", ")
                ),
            ));
        }
        let mut values = BTreeMap::new();
        for p in &self.parameters {
            let given = raw.get(&p.name).filter(|v| !v.trim().is_empty()).cloned();
            let Some(value) = given.or_else(|| p.default_for(env)) else {
                errors.push(FieldError::new(
                    p.name.as_str(),
                    format!("{} is required: enter a value", p.label),
                ));
                continue;
            };
            match p.check(&value) {
                Ok(v) => {
                    values.insert(p.name.clone(), v);
                }
                Err(message) => errors.push(FieldError::new(p.name.as_str(), message)),
            }
        }
        if errors.is_empty() {
            Ok(values)
        } else {
            Err(errors)
        }
    }

    /// Validates the context and the input, then renders the template.
    pub fn render(
        &self,
        ctx: &RenderContext,
        raw: &BTreeMap<String, String>,
    ) -> Result<Rendered, Vec<FieldError>> {
        let mut errors = render::check_context(ctx);
        if !self.supports(ctx.env_class) {
            let classes: Vec<&str> = self.classes.iter().map(|c| c.as_str()).collect();
            errors.push(FieldError::new(
                "env_class",
                format!(
                    "{} is for {} accounts, not {}: choose another account",
                    self.name,
                    classes.join(", "),
                    ctx.env_class
                ),
            ));
        }
        for input in &self.inputs {
            if !ctx.inputs.contains_key(&input.name) {
                errors.push(FieldError::new(
                    "environment",
                    format!(
                        "the environment has no output {} (needed for {}): choose a deployed environment of the network blueprint",
                        input.output, input.name
                    ),
                ));
            }
        }
        let params = match self.validate(ctx.env_class, raw) {
            Ok(p) => Some(p),
            Err(e) => {
                errors.extend(e);
                None
            }
        };
        match params {
            Some(params) if errors.is_empty() => {
                // Only the settings the blueprint declares reach its template.
                let mut ctx = ctx.clone();
                ctx.settings.retain(|k, _| self.settings.contains(k));
                render::render(
                    &self.env,
                    (&self.slug, &self.version),
                    (&ctx, &self.files),
                    &self.checks,
                    params,
                )
            }
            _ => Err(errors),
        }
    }
}

/// The texts a blueprint version is made of, as stored: manifest, template and extra files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub manifest: String,
    pub template: String,
    /// Extra JSON files as `(file name, text)`, in name order.
    pub files: Vec<(String, String)>,
}

impl Source {
    /// Reads a blueprint folder: `blueprint.toml`, `template.json.j2` and its `*.json` files.
    pub fn read(dir: &Path) -> anyhow::Result<Source> {
        let manifest_path = dir.join("blueprint.toml");
        let template_path = dir.join(render::TEMPLATE_NAME);
        let manifest = std::fs::read_to_string(&manifest_path)
            .with_context(|| format!("reading {}", manifest_path.display()))?;
        let template = std::fs::read_to_string(&template_path)
            .with_context(|| format!("reading {}", template_path.display()))?;
        let files = extra_files(dir)?;
        Ok(Source {
            manifest,
            template,
            files,
        })
    }

    /// Compiles it (the digest is computed from these texts).
    pub fn compile(&self) -> anyhow::Result<Blueprint> {
        Blueprint::from_parts(&self.manifest, self.template.clone(), &self.files)
    }
}

/// The folder's `*.json` files as `(file name, text)`, in name order.
fn extra_files(dir: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry
            .with_context(|| format!("reading {}", dir.display()))?
            .path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.ends_with(".json") && path.is_file() {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            files.push((name.to_string(), text));
        }
    }
    files.sort();
    Ok(files)
}

/// All blueprints found under a directory, sorted by slug.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    blueprints: Vec<Blueprint>,
}

impl Catalog {
    /// Loads every subfolder of `dir` that holds a `blueprint.toml`. Any bad manifest or template
    /// is an error, so problems show at start-up.
    pub fn load(dir: &Path) -> anyhow::Result<Catalog> {
        let entries =
            std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
        let mut blueprints: Vec<Blueprint> = Vec::new();
        for entry in entries {
            let path = entry
                .with_context(|| format!("reading {}", dir.display()))?
                .path();
            if !path.join("blueprint.toml").is_file() {
                continue;
            }
            let bp = Blueprint::load(&path)?;
            let folder = path
                .file_name()
                .and_then(|f| f.to_str())
                .unwrap_or_default();
            if bp.slug != folder {
                bail!(
                    "{}: slug '{}' must equal the folder name",
                    path.display(),
                    bp.slug
                );
            }
            blueprints.push(bp);
        }
        blueprints.sort_by(|a, b| a.slug.cmp(&b.slug));
        Ok(Catalog { blueprints })
    }

    /// The blueprint with this slug.
    pub fn get(&self, slug: &str) -> Option<&Blueprint> {
        self.blueprints.iter().find(|b| b.slug == slug)
    }

    /// All blueprints, sorted by slug.
    pub fn list(&self) -> &[Blueprint] {
        &self.blueprints
    }
}
