//! Stored blueprint versions: their life cycle (draft → published → deprecated → retired), the
//! checks an uploaded draft passes before it is stored or published (it parses, renders for each
//! environment class with its examples, passes the policy rules, and keeps the compatibility
//! promise of its version number), and the [`Library`] that hands out compiled versions by
//! slug and version from the database.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::{AccountRef, Blueprint, PolicyEngine, PortalRef, RenderContext, Source, manifest};
use crate::db::Db;
use crate::error::FieldError;
use crate::ids::EnvClass;

/// Where a version is in its life.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    serde::Serialize,
    strum::Display,
    strum::EnumString,
    strum::AsRefStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum VersionState {
    /// Uploaded and checked; not yet requestable.
    Draft,
    /// Requestable for new environments and updates.
    Published,
    /// Serves updates of stacks already on it; no new environments.
    Deprecated,
    /// No stacks left on it; nothing may use it.
    Retired,
}

/// The admin actions that move a version, with the states each may start from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Publish,
    Deprecate,
    Retire,
}

impl Transition {
    /// Parses the last segment of `/versions/{version}/{action}`.
    pub fn parse(action: &str) -> Option<Transition> {
        match action {
            "publish" => Some(Transition::Publish),
            "deprecate" => Some(Transition::Deprecate),
            "retire" => Some(Transition::Retire),
            _ => None,
        }
    }

    pub fn from(self) -> &'static [VersionState] {
        match self {
            Transition::Publish => &[VersionState::Draft],
            Transition::Deprecate => &[VersionState::Published],
            Transition::Retire => &[VersionState::Deprecated],
        }
    }

    pub fn to(self) -> VersionState {
        match self {
            Transition::Publish => VersionState::Published,
            Transition::Deprecate => VersionState::Deprecated,
            Transition::Retire => VersionState::Retired,
        }
    }

    /// The audit action.
    pub fn action(self) -> &'static str {
        match self {
            Transition::Publish => "blueprint.version_published",
            Transition::Deprecate => "blueprint.version_deprecated",
            Transition::Retire => "blueprint.version_retired",
        }
    }
}

/// A semantic version `MAJOR.MINOR.PATCH` (no pre-release or build suffix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Semver {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Semver {
    /// Parses `1.2.3`; the message says what is wrong.
    pub fn parse(text: &str) -> Result<Semver, String> {
        let bad =
            || format!("'{text}' is not a semantic version: write MAJOR.MINOR.PATCH, e.g. 1.2.0");
        let parts: Vec<&str> = text.split('.').collect();
        let [major, minor, patch] = parts.as_slice() else {
            return Err(bad());
        };
        let number = |p: &str| {
            let ok = !p.is_empty()
                && p.chars().all(|c| c.is_ascii_digit())
                && (p == "0" || !p.starts_with('0'));
            ok.then(|| p.parse::<u32>().ok()).flatten().ok_or_else(bad)
        };
        Ok(Semver {
            major: number(major)?,
            minor: number(minor)?,
            patch: number(patch)?,
        })
    }
}

impl std::fmt::Display for Semver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// A stored version's row.
#[derive(Debug, Clone)]
pub struct StoredVersion {
    pub slug: String,
    pub version: String,
    pub source: Source,
    pub digest: String,
    pub state: VersionState,
    /// `bundled` or `upload`.
    pub origin: String,
    pub created_by: Option<String>,
    pub created_at: i64,
}

/// Compiled versions from the database, by digest (a version's texts never change, so neither
/// does what they compile to).
#[derive(Clone)]
pub struct Library {
    db: Db,
    compiled: moka::sync::Cache<String, Arc<Blueprint>>,
}

impl std::fmt::Debug for Library {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Library").finish_non_exhaustive()
    }
}

impl Library {
    pub fn new(db: Db) -> Library {
        Library {
            db,
            compiled: moka::sync::Cache::new(256),
        }
    }

    /// Compiles a stored version, or takes it from the cache.
    pub fn compile(&self, stored: &StoredVersion) -> anyhow::Result<Arc<Blueprint>> {
        if let Some(bp) = self.compiled.get(&stored.digest) {
            return Ok(bp);
        }
        let bp = Arc::new(stored.source.compile()?);
        self.compiled.insert(stored.digest.clone(), bp.clone());
        Ok(bp)
    }

    /// The version `(slug, version)` with its state, compiled.
    pub async fn get(
        &self,
        slug: &str,
        version: &str,
    ) -> anyhow::Result<Option<(Arc<Blueprint>, VersionState)>> {
        let Some(stored) = super::store::get(&self.db, slug, version).await? else {
            return Ok(None);
        };
        let bp = self.compile(&stored)?;
        Ok(Some((bp, stored.state)))
    }

    /// The newest published version of each blueprint, by slug: what the catalog offers.
    pub async fn published(&self) -> anyhow::Result<Vec<Arc<Blueprint>>> {
        let mut list = Vec::new();
        for (slug, version) in super::store::latest_published(&self.db).await? {
            if let Some((bp, _)) = self.get(&slug, &version).await? {
                list.push(bp);
            }
        }
        Ok(list)
    }

    /// The newest published version of one blueprint.
    pub async fn latest(&self, slug: &str) -> anyhow::Result<Option<Arc<Blueprint>>> {
        let Some(version) = super::store::latest_published(&self.db)
            .await?
            .into_iter()
            .find(|(s, _)| s == slug)
            .map(|(_, v)| v)
        else {
            return Ok(None);
        };
        Ok(self.get(slug, &version).await?.map(|(bp, _)| bp))
    }
}

/// The context a check renders an example with: a plausible team, owner and account.
fn example_context(bp: &Blueprint, class: EnvClass, example: &manifest::Example) -> RenderContext {
    let mut ctx = RenderContext::new(class, "eu-west-2", "check", "platform");
    ctx.cost_centre = "CC-0000".into();
    ctx.owner = "blueprint-check@example.com".into();
    ctx.request_id = "00000000-0000-4000-8000-000000000000".into();
    ctx.account = AccountRef {
        id: "111111111111".into(),
        name: format!("check-{class}"),
        purpose: class.to_string(),
        external_id: "00000000-0000-4000-8000-000000000001".into(),
    };
    ctx.portal = PortalRef {
        role_arn: "arn:aws:iam::999999999999:role/stackgate-portal".into(),
        account_id: "999999999999".into(),
    };
    bp.apply_example(example, &mut ctx);
    ctx
}

/// Renders every example for every class (`policy`: and checks each); returns the union of the
/// outputs the renders declare, or one error per failing render or rule.
pub fn render_examples(
    bp: &Blueprint,
    policy: Option<&PolicyEngine>,
) -> Result<BTreeSet<String>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut outputs = BTreeSet::new();
    if bp.examples.is_empty() {
        errors.push(FieldError::new(
            "manifest",
            "blueprint.toml: declare at least one [[examples]] (named default) so the version can be rendered and checked",
        ));
    }
    for class in &bp.classes {
        for example in &bp.examples {
            let where_ = format!("class {class}, example {}", example.name);
            let ctx = example_context(bp, *class, example);
            let rendered = match bp.render(&ctx, &bp.example_values(example)) {
                Ok(r) => r,
                Err(errs) => {
                    for e in errs {
                        errors.push(FieldError::new(
                            "template",
                            format!(
                                "template.json.j2 does not render ({where_}): parameter {}: {}",
                                e.field, e.message
                            ),
                        ));
                    }
                    continue;
                }
            };
            if let Some(out) = rendered.template["Outputs"].as_object() {
                outputs.extend(out.keys().cloned());
            }
            let Some(policy) = policy else { continue };
            let report = policy.check(&rendered.body);
            for r in report.results.iter().filter(|r| !r.passed) {
                errors.push(FieldError::new(
                    "template",
                    format!(
                        "policy rule {} fails ({where_}): {}",
                        r.rule,
                        r.messages.join("; ")
                    ),
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(outputs)
    } else {
        Err(errors)
    }
}

/// The name of a parameter's kind, for messages and comparisons.
fn kind_name(kind: &super::ParamKind) -> &'static str {
    match kind {
        super::ParamKind::Boolean => "boolean",
        super::ParamKind::Cidr => "cidr",
        super::ParamKind::Choice(_) => "choice",
        super::ParamKind::Integer { .. } => "integer",
        super::ParamKind::String { .. } => "string",
    }
}

/// What the new version's number promises relative to the previous one (AWS Proton's rule): a
/// new major may change anything; a minor may add parameters with defaults for every class but
/// not remove or retype one, nor remove an output; a patch changes no parameter or output.
pub fn compatibility(
    (new, new_outputs): (&Blueprint, &BTreeSet<String>),
    (old, old_outputs): (&Blueprint, &BTreeSet<String>),
) -> Vec<FieldError> {
    let (Ok(nv), Ok(ov)) = (Semver::parse(&new.version), Semver::parse(&old.version)) else {
        return Vec::new();
    };
    if nv.major != ov.major {
        return Vec::new();
    }
    let patch = nv.minor == ov.minor;
    let major = Semver {
        major: nv.major + 1,
        minor: 0,
        patch: 0,
    };
    let what = if patch { "a patch" } else { "a minor" };
    let mut errors = Vec::new();
    let mut refuse = |field: &str, change: String| {
        errors.push(FieldError::new(
            field,
            format!(
                "{change}: {what} version ({}) may not do that after {}; publish it as a new major version ({major})",
                new.version, old.version
            ),
        ));
    };
    let old_params: BTreeMap<&str, &str> = old
        .parameters
        .iter()
        .map(|p| (p.name.as_str(), kind_name(&p.kind)))
        .collect();
    for (name, kind) in &old_params {
        match new.param(name) {
            None => refuse(name, format!("parameter '{name}' is removed")),
            Some(p) if kind_name(&p.kind) != *kind => refuse(
                name,
                format!(
                    "parameter '{name}' changes type from {kind} to {}",
                    kind_name(&p.kind)
                ),
            ),
            Some(_) => {}
        }
    }
    for p in new
        .parameters
        .iter()
        .filter(|p| !old_params.contains_key(p.name.as_str()))
    {
        if patch {
            refuse(&p.name, format!("parameter '{}' is added", p.name));
        } else if let Some(class) = new.classes.iter().find(|c| p.default_for(**c).is_none()) {
            refuse(
                &p.name,
                format!(
                    "new parameter '{}' has no default for {class} (a new parameter must be optional)",
                    p.name
                ),
            );
        }
    }
    for output in old_outputs.difference(new_outputs) {
        refuse(output, format!("output '{output}' is removed"));
    }
    if patch {
        for output in new_outputs.difference(old_outputs) {
            refuse(output, format!("output '{output}' is added"));
        }
    }
    errors
}

/// Checks an uploaded version for `slug` before it is stored: the manifest parses (the error
/// names its line), names this slug and a semantic version, the template compiles and renders
/// for each class with each example, every policy rule passes, and it is compatible with
/// `previous` (the highest stored version below it).
pub fn check_upload(
    slug: &str,
    source: &Source,
    previous: Option<&Source>,
    policy: &PolicyEngine,
) -> Result<Blueprint, Vec<FieldError>> {
    let one = |field: &str, message: String| vec![FieldError::new(field, message)];
    let m = manifest::Manifest::parse(&source.manifest)
        .map_err(|e| one("manifest", format!("blueprint.toml: {e:#}")))?;
    if m.slug != slug {
        return Err(one(
            "manifest",
            format!(
                "blueprint.toml: slug '{}' is not this blueprint's ({slug})",
                m.slug
            ),
        ));
    }
    Semver::parse(&m.version)
        .map_err(|e| one("version", format!("blueprint.toml: version {e}")))?;
    let bp = source
        .compile()
        .map_err(|e| one("template", format!("{e:#}")))?;
    let outputs = render_examples(&bp, Some(policy))?;
    if let Some(previous) = previous {
        // The previous version was checked when stored; if it no longer renders (a bundled one
        // may not), only its parameters are compared.
        if let Ok(old) = previous.compile() {
            let old_outputs = render_examples(&old, None).unwrap_or_else(|_| outputs.clone());
            let errors = compatibility((&bp, &outputs), (&old, &old_outputs));
            if !errors.is_empty() {
                return Err(errors);
            }
        }
    }
    Ok(bp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semantic_versions_parse_and_order() {
        assert_eq!(
            Semver::parse("1.10.0").map(|v| (v.major, v.minor, v.patch)),
            Ok((1, 10, 0))
        );
        assert!(Semver::parse("1.2.0").unwrap() < Semver::parse("1.10.0").unwrap());
        for bad in [
            "1.2",
            "1.2.3.4",
            "v1.2.3",
            "01.2.3",
            "1.2.x",
            "",
            "1..3",
            "1.2.3-rc1",
        ] {
            assert!(Semver::parse(bad).is_err(), "{bad} must be refused");
        }
    }

    /// The bundled network's source under another version, with `extra` appended to its manifest.
    fn network(version: &str, extra: &str) -> Blueprint {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("cloudformation/network");
        let mut source = match Source::read(&dir) {
            Ok(s) => s,
            Err(e) => panic!("{e:#}"),
        };
        let old = source
            .manifest
            .lines()
            .find(|l| l.starts_with("version = "))
            .map(str::to_string);
        if let Some(old) = old {
            source.manifest =
                source
                    .manifest
                    .replacen(&old, &format!("version = \"{version}\""), 1);
        }
        source.manifest.push_str(extra);
        match source.compile() {
            Ok(bp) => bp,
            Err(e) => panic!("{e:#}"),
        }
    }

    const FLAG: &str = "\n[[parameters]]\nname = \"extra_flag\"\nlabel = \"Extra\"\nhelp = \"An extra switch.\"\nsection = \"Extra\"\nkind = \"boolean\"\n";

    #[test]
    fn a_minor_version_may_add_only_parameters_with_defaults_and_a_patch_none() {
        let outputs = BTreeSet::from(["VpcId".to_string()]);
        let old = network("1.0.0", "");
        let optional = network("1.1.0", &format!("{FLAG}default = false\n"));
        assert!(compatibility((&optional, &outputs), (&old, &outputs)).is_empty());
        let required = network("1.1.0", FLAG);
        let errors = compatibility((&required, &outputs), (&old, &outputs));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].field, "extra_flag");
        assert!(
            errors[0].message.contains("has no default for dev"),
            "{}",
            errors[0].message
        );
        let patch = network("1.0.1", &format!("{FLAG}default = false\n"));
        let errors = compatibility((&patch, &outputs), (&old, &outputs));
        assert!(
            errors[0]
                .message
                .contains("parameter 'extra_flag' is added"),
            "{errors:?}"
        );
        assert!(
            errors[0].message.contains("new major version (2.0.0)"),
            "{errors:?}"
        );
        let major = network("2.0.0", FLAG);
        assert!(compatibility((&major, &BTreeSet::new()), (&old, &outputs)).is_empty());
        let fewer = network("1.1.0", "");
        let errors = compatibility((&fewer, &BTreeSet::new()), (&old, &outputs));
        assert!(
            errors[0].message.contains("output 'VpcId' is removed"),
            "{errors:?}"
        );
    }

    #[test]
    fn transitions_start_only_from_their_states() {
        assert_eq!(Transition::parse("publish"), Some(Transition::Publish));
        assert_eq!(Transition::parse("delete"), None);
        assert_eq!(Transition::Retire.from(), &[VersionState::Deprecated]);
        assert_eq!(Transition::Deprecate.to(), VersionState::Deprecated);
    }
}
