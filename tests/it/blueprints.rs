//! Every blueprint, for every environment class it supports, every named example of its manifest
//! and every option of every choice parameter, passes the real template checkers: cfn-lint (no
//! errors, no warnings) and checkov (no failed checks; a skipped check only with its written
//! reason in the template's top-level `Metadata`), and the in-process cfn-guard policy.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::Value;
use stackgate::catalog::{
    AccountRef, Blueprint, Catalog, ParamKind, ParamSpec, PolicyEngine, PortalRef, RenderContext,
};
use stackgate::ids::EnvClass;

use crate::support::harness_env;

fn cloudformation_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("cloudformation")
}

/// Choice parameters with at most this many options are rendered in every combination with each
/// other; longer ones (a retention period) take each of their values once across the renders.
const COMBINE_UP_TO: usize = 4;

/// The sets of choice values to render a blueprint with, so that every option of every choice
/// parameter appears at least once, and the short ones in every combination with each other.
fn option_sets(parameters: &[ParamSpec]) -> Vec<BTreeMap<String, String>> {
    let choices: Vec<(&str, Vec<&str>)> = parameters
        .iter()
        .filter_map(|p| match &p.kind {
            ParamKind::Choice(options) => Some((
                p.name.as_str(),
                options.iter().map(|(v, _)| v.as_str()).collect(),
            )),
            _ => None,
        })
        .collect();
    let (short, long): (Vec<_>, Vec<_>) = choices
        .into_iter()
        .partition(|(_, options)| options.len() <= COMBINE_UP_TO);
    let mut combinations = vec![BTreeMap::new()];
    for (name, options) in &short {
        combinations = combinations
            .iter()
            .flat_map(|set| {
                options.iter().map(move |v| {
                    let mut next = set.clone();
                    next.insert(name.to_string(), v.to_string());
                    next
                })
            })
            .collect();
    }
    let rows = long
        .iter()
        .map(|(_, options)| options.len())
        .max()
        .unwrap_or(0)
        .max(combinations.len());
    (0..rows)
        .map(|i| {
            let mut set = combinations[i % combinations.len()].clone();
            for (name, options) in &long {
                set.insert(name.to_string(), options[i % options.len()].to_string());
            }
            set
        })
        .collect()
}

/// The context a test render uses: a plausible team, owner, request and account, so that
/// names built from them (buckets, roles) look as they will in a real account.
fn context(env: EnvClass, name: &str) -> RenderContext {
    let mut ctx = RenderContext::new(env, "eu-west-2", name, "payments");
    ctx.cost_centre = "CC-1042".into();
    ctx.owner = "alice@example.com".into();
    ctx.request_id = "0b3e0a0e-7d4f-4f6e-9a55-6b0f7f1d2c3a".into();
    ctx.account = AccountRef {
        id: "111111111111".into(),
        name: format!("payments-{env}"),
        purpose: env.to_string(),
        external_id: "3f0c6d4e-8a1b-4c2d-9e7f-5a6b7c8d9e0f".into(),
    };
    ctx.portal = PortalRef {
        role_arn: "arn:aws:iam::999999999999:role/stackgate-portal".into(),
        account_id: "999999999999".into(),
    };
    ctx
}

/// What to render a blueprint with: each named example, then the option sets over the
/// `default` example's values.
fn value_sets(bp: &Blueprint) -> Vec<(String, BTreeMap<String, String>, RenderContext)> {
    let mut sets = Vec::new();
    for env in &bp.classes {
        for example in &bp.examples {
            let mut ctx = context(*env, &format!("orders-{env}"));
            bp.apply_example(example, &mut ctx);
            sets.push((example.name.clone(), bp.example_values(example), ctx));
        }
        let Some(default) = bp.example("default") else {
            panic!("{} has no default example", bp.slug)
        };
        for (i, options) in option_sets(&bp.parameters).into_iter().enumerate() {
            let mut ctx = context(*env, &format!("orders-{env}"));
            bp.apply_example(default, &mut ctx);
            let mut values = bp.example_values(default);
            values.extend(options);
            sets.push((format!("options{i:02}"), values, ctx));
        }
    }
    sets
}

/// Renders one value set. Examples must render; an option set may only be refused by the
/// manifest's own cross-field checks (e.g. prod with a short retention): it is then skipped.
fn render_set(
    bp: &Blueprint,
    set: &str,
    raw: &BTreeMap<String, String>,
    ctx: &RenderContext,
) -> Option<stackgate::catalog::Rendered> {
    match bp.render(ctx, raw) {
        Ok(r) => Some(r),
        Err(errors)
            if set.starts_with("options")
                && errors
                    .iter()
                    .all(|e| bp.checks.iter().any(|c| c.message == e.message)) =>
        {
            None
        }
        Err(e) => panic!("{} {} {set}: {e:?}", bp.slug, ctx.env_class),
    }
}

/// Renders every blueprint with each of its value sets into a fresh directory; returns the
/// files, named `<slug>-<class>-<set>.json`.
fn render_all(tag: &str) -> Vec<PathBuf> {
    let catalog = Catalog::load(&cloudformation_dir()).unwrap_or_else(|e| panic!("{e:#}"));
    let dir = std::env::temp_dir().join(format!("stackgate-it-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut files = Vec::new();
    for bp in catalog.list() {
        for (set, raw, ctx) in value_sets(bp) {
            let Some(rendered) = render_set(bp, &set, &raw, &ctx) else {
                continue;
            };
            let path = dir.join(format!("{}-{}-{set}.json", bp.slug, ctx.env_class));
            std::fs::write(&path, &rendered.body).unwrap_or_else(|e| panic!("{e}"));
            files.push(path);
        }
    }
    files
}

#[test]
fn every_blueprint_renders_every_example_for_every_class_it_supports() {
    let catalog = Catalog::load(&cloudformation_dir()).unwrap_or_else(|e| panic!("{e:#}"));
    let slugs: Vec<&str> = catalog.list().iter().map(|b| b.slug.as_str()).collect();
    for expected in [
        "account-baseline",
        "account-bootstrap",
        "data",
        "log-archive",
        "network",
        "organization",
        "serverless",
        "storage",
        "web-app",
    ] {
        assert!(
            slugs.contains(&expected),
            "no {expected} blueprint: {slugs:?}"
        );
    }
    for bp in catalog.list() {
        assert!(
            bp.example("full").is_some(),
            "{} has no example with every optional feature on",
            bp.slug
        );
        for (set, raw, ctx) in value_sets(bp) {
            let Some(r) = render_set(bp, &set, &raw, &ctx) else {
                continue;
            };
            // Every resource that takes a tag list carries the seven common tags.
            for (id, res) in r.template["Resources"].as_object().into_iter().flatten() {
                let Some(tags) = res["Properties"]["Tags"].as_array() else {
                    continue;
                };
                for key in ["stackgate:team", "stackgate:request", "stackgate:blueprint"] {
                    assert!(
                        tags.iter().any(|t| t["Key"] == key),
                        "{} {set}: {id} lacks {key}",
                        bp.slug
                    );
                }
            }
        }
    }
}

#[test]
fn option_sets_cover_every_option_and_every_combination_of_the_short_choices() {
    let catalog = Catalog::load(&cloudformation_dir()).unwrap_or_else(|e| panic!("{e:#}"));
    let network = catalog
        .get("network")
        .unwrap_or_else(|| panic!("no network blueprint"));
    let sets = option_sets(&network.parameters);
    for p in &network.parameters {
        if let ParamKind::Choice(options) = &p.kind {
            for (value, _) in options {
                assert!(
                    sets.iter().any(|s| s.get(&p.name) == Some(value)),
                    "{} = {value} is never rendered",
                    p.name
                );
            }
        }
    }
    for az in ["2", "3"] {
        for nat in ["single", "per_az"] {
            assert!(
                sets.iter()
                    .any(|s| s.get("az_count").map(String::as_str) == Some(az)
                        && s.get("nat_gateways").map(String::as_str) == Some(nat)),
                "{az} zones with {nat} NAT is never rendered"
            );
        }
    }
}

/// Removes the rendered files once a test has passed (a failing test leaves them to inspect).
fn cleanup(files: &[PathBuf]) {
    if let Some(dir) = files.first().and_then(|f| f.parent()) {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn every_blueprint_option_set_and_class_passes_cfn_lint() {
    let cfn_lint = harness_env("STACKGATE_TEST_CFN_LINT");
    let files = render_all("lint");
    let started = Instant::now();
    // cfn-lint takes the templates first: --regions would swallow them otherwise.
    let out = Command::new(&cfn_lint)
        .args(&files)
        .args(["--regions", "eu-west-2", "--format", "json"])
        .output()
        .unwrap_or_else(|e| panic!("running {cfn_lint}: {e}"));
    let code = out
        .status
        .code()
        .unwrap_or_else(|| panic!("cfn-lint was killed"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let findings: Vec<Value> = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "cfn-lint output is not JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    eprintln!(
        "cfn-lint: {} templates in {:?}, exit {code}",
        files.len(),
        started.elapsed()
    );
    let summary: Vec<String> = findings
        .iter()
        .map(|f| {
            format!(
                "{} {} {}: {}",
                f["Level"], f["Rule"]["Id"], f["Filename"], f["Message"]
            )
        })
        .collect();
    assert_eq!(
        code & 2,
        0,
        "cfn-lint reported errors:\n{}",
        summary.join("\n")
    );
    assert!(
        code & 1 == 0,
        "cfn-lint failed to run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        findings.is_empty(),
        "cfn-lint findings:\n{}",
        summary.join("\n")
    );
    assert_eq!(code, 0);
    cleanup(&files);
}

#[test]
fn every_blueprint_option_set_and_class_passes_checkov() {
    let checkov = harness_env("STACKGATE_TEST_CHECKOV");
    let files = render_all("checkov");
    let started = Instant::now();
    let mut cmd = Command::new(&checkov);
    for f in &files {
        cmd.arg("-f").arg(f);
    }
    let out = cmd
        .args([
            "--framework",
            "cloudformation",
            "-o",
            "json",
            "--quiet",
            "--compact",
        ])
        .arg("--skip-download")
        .output()
        .unwrap_or_else(|e| panic!("running {checkov}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "checkov output is not JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    eprintln!(
        "checkov: {} templates in {:?}",
        files.len(),
        started.elapsed()
    );
    let reports = match report {
        Value::Array(list) => list,
        single => vec![single],
    };
    let cfn = reports
        .iter()
        .find(|r| r["check_type"] == "cloudformation")
        .unwrap_or_else(|| panic!("no cloudformation report: {stdout}"));
    let summary = &cfn["summary"];
    let failed: Vec<String> = cfn["results"]["failed_checks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            format!(
                "{} {} {} {}",
                c["check_id"], c["check_name"], c["file_path"], c["resource"]
            )
        })
        .collect();
    assert_eq!(
        summary["failed"],
        0,
        "checkov failed checks:\n{}",
        failed.join("\n")
    );
    assert_eq!(summary["parsing_errors"], 0, "{summary}");
    assert!(
        summary["passed"].as_u64().unwrap_or(0) > 0,
        "checkov checked nothing: {summary}"
    );
    // A waiver carries its written reason where checkov reads it: the resource's own
    // Metadata.checkov.skip entry, with a comment a reviewer can judge.
    for c in cfn["results"]["skipped_checks"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let file = c["file_abs_path"]
            .as_str()
            .or_else(|| c["file_path"].as_str())
            .unwrap_or_default();
        let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{file}: {e}"));
        let template: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        let resource = c["resource"].as_str().unwrap_or_default();
        let logical_id = resource.rsplit('.').next().unwrap_or_default();
        let reasons = &template["Resources"][logical_id]["Metadata"]["checkov"]["skip"];
        let reasoned = reasons.as_array().into_iter().flatten().any(|w| {
            w["id"] == c["check_id"] && w["comment"].as_str().is_some_and(|r| r.trim().len() >= 20)
        });
        assert!(
            reasoned,
            "{file}: {} is skipped on {resource} without a written reason",
            c["check_id"]
        );
    }
    assert!(out.status.success(), "checkov exit {:?}", out.status.code());
    cleanup(&files);
}

#[test]
fn every_blueprint_option_set_and_class_passes_the_guard_policy() {
    let engine =
        PolicyEngine::load(&cloudformation_dir().join("rules")).unwrap_or_else(|e| panic!("{e:#}"));
    let files = render_all("guard");
    for file in &files {
        let body = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{e}"));
        let report = engine.check(&body);
        let failed: Vec<_> = report.results.iter().filter(|r| !r.passed).collect();
        assert!(report.passed, "{}: {failed:?}", file.display());
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with("network-") {
            assert!(
                report
                    .results
                    .iter()
                    .any(|r| r.rule == "vpc_flow_logs_enabled" && r.passed)
            );
        }
    }
    cleanup(&files);
}
