//! Every guard rule against its fixtures: `tests/fixtures/guard/<rule file stem>/<rule>.pass.json`
//! and `<rule>.fail.json` (optionally more cases as `<rule>.pass.<case>.json` and
//! `<rule>.fail.<case>.json`), small literal CloudFormation templates.
//!
//! A pass fixture passes every rule; a fail fixture fails its rule, with a message, and no other.
//! Every rule declared in `cloudformation/rules/*.guard` has at least one of each, in the folder
//! named after the file that declares it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{engine, root};
use crate::catalog::PolicyEngine;

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/guard")
}

/// One fixture file.
struct Fixture {
    /// `<stem>/<file name>`, for messages.
    name: String,
    /// The rule file stem (the folder).
    stem: String,
    /// The rule it is about.
    rule: String,
    /// Whether it must pass every rule (true) or fail exactly `rule` (false).
    pass: bool,
    text: String,
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut paths: Vec<PathBuf> = entries
        .map(|e| {
            e.unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .path()
        })
        .collect();
    paths.sort();
    paths
}

fn fixtures() -> Vec<Fixture> {
    let mut out = Vec::new();
    for folder in sorted_entries(&fixtures_dir()) {
        if !folder.is_dir() {
            continue;
        }
        let stem = folder
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        for path in sorted_entries(&folder) {
            let file = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            let parts: Vec<&str> = file.split('.').collect();
            let well_named = (3..=4).contains(&parts.len())
                && parts.last() == Some(&"json")
                && ["pass", "fail"].contains(&parts[1]);
            assert!(
                well_named,
                "{stem}/{file}: fixture names are <rule>.pass[.<case>].json or <rule>.fail[.<case>].json"
            );
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            out.push(Fixture {
                name: format!("{stem}/{file}"),
                stem: stem.clone(),
                rule: parts[0].to_owned(),
                pass: parts[1] == "pass",
                text,
            });
        }
    }
    assert!(
        !out.is_empty(),
        "no fixtures in {}",
        fixtures_dir().display()
    );
    out
}

/// The rules each `.guard` file declares, by file stem.
fn rules_by_file() -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for path in sorted_entries(&root().join("rules")) {
        if path.extension().and_then(|e| e.to_str()) != Some("guard") {
            continue;
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let stem = path
            .file_stem()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let one = PolicyEngine::from_rules(vec![(name.clone(), text)])
            .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        out.insert(stem, one.rule_names().map(str::to_owned).collect());
    }
    out
}

#[test]
fn every_rule_has_a_passing_and_a_failing_fixture_next_to_its_file() {
    let by_file = rules_by_file();
    let all: BTreeSet<&str> = engine().rule_names().collect();
    let declared: BTreeSet<&str> = by_file.values().flatten().map(String::as_str).collect();
    assert_eq!(all, declared);
    let fixtures = fixtures();
    let mut problems = Vec::new();
    for f in &fixtures {
        if !by_file
            .get(&f.stem)
            .is_some_and(|rules| rules.contains(&f.rule))
        {
            problems.push(format!(
                "{}: no rule {} in {}.guard",
                f.name, f.rule, f.stem
            ));
        }
    }
    for (stem, rules) in &by_file {
        for rule in rules {
            for pass in [true, false] {
                let found = fixtures
                    .iter()
                    .any(|f| &f.stem == stem && &f.rule == rule && f.pass == pass);
                if !found {
                    let kind = if pass { "pass" } else { "fail" };
                    problems.push(format!("missing {stem}/{rule}.{kind}.json"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    eprintln!(
        "{} rules in {} files, {} fixtures",
        all.len(),
        by_file.len(),
        fixtures.len()
    );
}

#[test]
fn pass_fixtures_pass_every_rule_and_fail_fixtures_fail_only_their_rule() {
    let rule_count = engine().rule_names().count();
    let mut problems = Vec::new();
    let mut slowest = (Duration::ZERO, String::new());
    let started = Instant::now();
    let fixtures = fixtures();
    for f in &fixtures {
        let at = Instant::now();
        let report = engine().check(&f.text);
        let took = at.elapsed();
        if took > slowest.0 {
            slowest = (took, f.name.clone());
        }
        if report.results.len() != rule_count {
            problems.push(format!("{}: not evaluated: {report:?}", f.name));
            continue;
        }
        let failed: Vec<&crate::catalog::RuleResult> =
            report.results.iter().filter(|r| !r.passed).collect();
        assert_eq!(report.passed, failed.is_empty(), "{}", f.name);
        if f.pass {
            if !report.passed {
                problems.push(format!("{}: must pass, fails {failed:?}", f.name));
            }
        } else {
            let names: Vec<&str> = failed.iter().map(|r| r.rule.as_str()).collect();
            if names != [f.rule.as_str()] {
                problems.push(format!(
                    "{}: must fail {} only, fails {names:?}: {failed:?}",
                    f.name, f.rule
                ));
            } else if failed[0].messages.iter().all(|m| m.trim().is_empty()) {
                problems.push(format!("{}: {} fails without a message", f.name, f.rule));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    eprintln!(
        "{} fixtures checked in {:?}; slowest {:?} ({})",
        fixtures.len(),
        started.elapsed(),
        slowest.0,
        slowest.1
    );
}

/// Every rule file names the resource types it reads as quoted literals only, so that
/// `PolicyEngine` shows it just those resources (a type named any other way in its code, a
/// regular expression say, makes the file see the whole template).
#[test]
fn every_rule_file_names_its_types_as_quoted_literals() {
    for path in sorted_entries(&root().join("rules")) {
        if path.extension().and_then(|e| e.to_str()) != Some("guard") {
            continue;
        }
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            crate::catalog::policy::referenced_types(&text).is_some(),
            "{}: name resource types as quoted literals ('AWS::S3::Bucket') in the rules",
            path.display()
        );
    }
}

/// The filtering of `PolicyEngine` (each file sees only the resource types it names) changes no
/// fixture's result: the rule files name their types as quoted literals.
#[test]
fn showing_each_rule_file_only_its_types_changes_no_fixture_result() {
    for f in fixtures() {
        if let Some(diff) = engine().filtering_changes_results(&f.text) {
            panic!("{}: {diff}", f.name);
        }
    }
}
