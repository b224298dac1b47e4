//! Every blueprint, for every workload environment class and every option of every choice
//! parameter, passes the real template checkers: cfn-lint (no errors, no warnings) and checkov
//! (no failed checks), and the in-process cfn-guard policy.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::Value;
use stackgate::catalog::{Catalog, ParamKind, ParamSpec, PolicyEngine, RenderContext};
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

/// Renders every blueprint for dev/test/prod with each of its option sets into a fresh
/// directory; returns the files.
fn render_all(tag: &str) -> Vec<PathBuf> {
    let catalog = Catalog::load(&cloudformation_dir()).unwrap_or_else(|e| panic!("{e:#}"));
    let dir = std::env::temp_dir().join(format!("stackgate-it-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut files = Vec::new();
    for bp in catalog.list() {
        let sets = option_sets(&bp.parameters);
        for env in [EnvClass::Dev, EnvClass::Test, EnvClass::Prod] {
            for (i, raw) in sets.iter().enumerate() {
                let ctx = RenderContext {
                    env_class: env,
                    region: "eu-west-2".into(),
                    name: format!("orders-{env}"),
                };
                let rendered = bp
                    .render(&ctx, raw)
                    .unwrap_or_else(|e| panic!("{} {env} {raw:?}: {e:?}", bp.slug));
                let path = dir.join(format!("{}-{env}-{i:02}.json", bp.slug));
                std::fs::write(&path, &rendered.body).unwrap_or_else(|e| panic!("{e}"));
                files.push(path);
            }
        }
    }
    files
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
    // Waivers need a reason; this blueprint needs none.
    assert_eq!(summary["skipped"], 0, "{summary}");
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
        assert!(report.passed, "{}: {report:?}", file.display());
        assert!(
            report
                .results
                .iter()
                .any(|r| r.rule == "vpc_flow_logs_enabled" && r.passed)
        );
    }
    cleanup(&files);
}
