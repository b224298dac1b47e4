//! Unit tests for the catalog: manifest checks, validation messages, rendering of the `network`
//! blueprint for every environment class, digests, and the guard rules.

mod guard_fixtures;
mod manifest;
mod policy;
mod render;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use sha2::Digest;

use crate::catalog::*;
use crate::ids::EnvClass;

pub(super) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("cloudformation")
}

pub(super) fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| match Catalog::load(&root()) {
        Ok(c) => c,
        Err(e) => panic!("catalog does not load: {e:#}"),
    })
}

pub(super) fn engine() -> &'static PolicyEngine {
    static ENGINE: OnceLock<PolicyEngine> = OnceLock::new();
    ENGINE.get_or_init(|| match PolicyEngine::load(&root().join("rules")) {
        Ok(e) => e,
        Err(e) => panic!("rules do not load: {e:#}"),
    })
}

pub(super) fn network() -> &'static Blueprint {
    catalog()
        .get("network")
        .unwrap_or_else(|| panic!("no network blueprint"))
}

pub(super) fn raw(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub(super) fn ctx(env: EnvClass) -> RenderContext {
    RenderContext::new(env, "eu-west-2", &format!("payments-{env}"), "payments")
}

pub(super) fn render(env: EnvClass, pairs: &[(&str, &str)]) -> Rendered {
    match network().render(&ctx(env), &raw(pairs)) {
        Ok(r) => r,
        Err(e) => panic!("{env} {pairs:?} does not render: {e:?}"),
    }
}

pub(super) fn count(r: &Rendered, ty: &str) -> usize {
    r.resources
        .iter()
        .find(|(t, _)| t == ty)
        .map_or(0, |(_, n)| *n)
}

#[test]
fn catalog_lists_the_network_blueprint() {
    let bp = network();
    assert_eq!(
        (bp.slug.as_str(), bp.version.as_str()),
        ("network", "1.1.0")
    );
    assert!(catalog().list().iter().any(|b| b.slug == "network"));
    assert!(catalog().get("nope").is_none());
    let names: Vec<&str> = bp.parameters.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "vpc_cidr",
            "az_count",
            "nat_gateways",
            "app_port",
            "http_redirect",
            "vpc_endpoints",
            "transit_gateway",
            "flow_log_retention_days"
        ]
    );
    let manifest = std::fs::read(root().join("network/blueprint.toml")).unwrap_or_default();
    let template = std::fs::read(root().join("network/template.json.j2")).unwrap_or_default();
    let mut h = sha2::Sha256::new();
    h.update(&manifest);
    h.update(&template);
    assert_eq!(bp.digest, hex::encode(h.finalize()));
}

#[test]
fn catalog_load_reports_bad_blueprints_at_start_up() {
    let dir = std::env::temp_dir().join(format!("stackgate-catalog-{}", std::process::id()));
    let bp = dir.join("other");
    let write = |name: &str, text: &str| {
        std::fs::create_dir_all(&bp).and_then(|()| std::fs::write(bp.join(name), text))
    };
    let manifest = "slug = \"network\"\nname = \"n\"\nversion = \"1.0.0\"\nsummary = \"s\"\n\
                    description = \"d\"\nkind = \"standalone\"\nclasses = [\"dev\"]\n\
                    [[examples]]\nname = \"default\"\ndescription = \"d\"\n";
    assert!(write("blueprint.toml", manifest).is_ok());
    assert!(write("template.json.j2", "{\"Resources\": {}}").is_ok());
    let err = Catalog::load(&dir)
        .map(|_| ())
        .map_err(|e| format!("{e:#}"));
    assert!(
        err.as_ref()
            .is_err_and(|e| e.contains("must equal the folder name")),
        "{err:?}"
    );
    assert!(write("blueprint.toml", &manifest.replace("network", "other")).is_ok());
    assert!(write("template.json.j2", "{% for x in %}").is_ok());
    let err = Catalog::load(&dir)
        .map(|_| ())
        .map_err(|e| format!("{e:#}"));
    assert!(
        err.as_ref().is_err_and(|e| e.contains("template.json.j2")),
        "{err:?}"
    );
    assert!(write("template.json.j2", "{\"Resources\": {}}").is_ok());
    let loaded = Catalog::load(&dir).map(|c| c.list().len());
    assert_eq!(loaded.ok(), Some(1));
    let _ = std::fs::remove_dir_all(&dir);
}
