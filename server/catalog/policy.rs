//! Policy checks: the project's cfn-guard rules (`cloudformation/rules/*.guard`) run in-process
//! against a rendered, literal template.
//!
//! cfn-guard is used as a library: a `Validate` command built with `payload(true)`, structured
//! JSON output, and an in-memory reader and writer (its `run_checks` helper truncates reports
//! over 8 KB). Each rule file is parsed once at load time (a dry run against an empty document),
//! so a broken rule stops the portal at start-up.

use std::collections::BTreeSet;
use std::io::Cursor;
use std::path::Path;

use anyhow::{Context, bail};
use cfn_guard::commands::Executable;
use cfn_guard::commands::validate::{OutputFormatType, ShowSummaryType};
use cfn_guard::utils::reader::{ReadBuffer, Reader};
use cfn_guard::utils::writer::{WriteBuffer, Writer};
use cfn_guard::{CommandBuilder, ValidateBuilder};
use serde_json::{Value, json};

/// The outcome of one named rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleResult {
    /// The rule's name (`rule <name> { .. }` in a `.guard` file).
    pub rule: String,
    /// Whether it passed (a rule that does not apply, e.g. about S3 when there is no bucket,
    /// passes).
    pub passed: bool,
    /// For a failure, the rule's custom messages, each with the path of the offending value.
    pub messages: Vec<String>,
}

/// The outcome of all rules on one template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyReport {
    /// True when every rule passed.
    pub passed: bool,
    /// One entry per rule, sorted by rule name.
    pub results: Vec<RuleResult>,
}

/// The loaded rule files.
#[derive(Debug, Clone)]
pub struct PolicyEngine {
    /// The text of each `.guard` file, in file-name order.
    texts: Vec<String>,
    /// Every rule name declared in the files.
    rules: BTreeSet<String>,
}

/// cfn-guard's exit status for a run with a rule or data error (as opposed to a failed rule).
const GUARD_ERROR_STATUS: i32 = 5;

impl PolicyEngine {
    /// Reads every `*.guard` file in `dir` and checks that each one parses.
    pub fn load(dir: &Path) -> anyhow::Result<PolicyEngine> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry
                .with_context(|| format!("reading {}", dir.display()))?
                .path();
            if path.extension().and_then(|e| e.to_str()) != Some("guard") {
                continue;
            }
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            files.push((name.to_owned(), text));
        }
        files.sort();
        Self::from_rules(files)
    }

    /// Builds an engine from `(file name, rule text)` pairs.
    pub fn from_rules(files: Vec<(String, String)>) -> anyhow::Result<PolicyEngine> {
        if files.is_empty() {
            bail!("no .guard rule files found");
        }
        let mut rules = BTreeSet::new();
        for (name, text) in &files {
            let (status, out) = run_guard(std::slice::from_ref(text), "{}")
                .with_context(|| format!("rule file {name}"))?;
            if status == GUARD_ERROR_STATUS {
                bail!("rule file {name} does not parse: {}", out.trim());
            }
            let report: Value = serde_json::from_str(&out)
                .with_context(|| format!("rule file {name}: unreadable cfn-guard report"))?;
            let found = rule_names(&report);
            if found.is_empty() {
                bail!("rule file {name} declares no named rule");
            }
            rules.extend(found);
        }
        let texts = files.into_iter().map(|(_, text)| text).collect();
        Ok(PolicyEngine { texts, rules })
    }

    /// Names of all loaded rules.
    pub fn rule_names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(String::as_str)
    }

    /// Runs every rule against a JSON template. A template cfn-guard cannot evaluate fails as a
    /// whole, with the reason, under the pseudo-rule `cfn-guard`.
    pub fn check(&self, template_json: &str) -> PolicyReport {
        let report = run_guard(&self.texts, template_json).and_then(|(status, out)| {
            if status == GUARD_ERROR_STATUS {
                bail!("cfn-guard could not evaluate the template: {}", out.trim());
            }
            serde_json::from_str::<Value>(&out).context("unreadable cfn-guard report")
        });
        let report = match report {
            Ok(r) => r,
            Err(e) => {
                return PolicyReport {
                    passed: false,
                    results: vec![RuleResult {
                        rule: "cfn-guard".into(),
                        passed: false,
                        messages: vec![format!("{e:#}")],
                    }],
                };
            }
        };
        let mut failures = failures(&report);
        let any_fail = report
            .as_array()
            .into_iter()
            .flatten()
            .any(|f| f["status"] == "FAIL");
        if any_fail && failures.is_empty() {
            let why = "cfn-guard failed the template without naming a rule".to_owned();
            failures.push(("cfn-guard".into(), vec![why]));
        }
        let results: Vec<RuleResult> = self
            .rules
            .iter()
            .chain(
                failures
                    .iter()
                    .map(|(n, _)| n)
                    .filter(|n| !self.rules.contains(*n)),
            )
            .map(|rule| {
                let messages = failures
                    .iter()
                    .find(|(name, _)| name == rule)
                    .map(|(_, m)| m.clone());
                RuleResult {
                    rule: rule.clone(),
                    passed: messages.is_none(),
                    messages: messages.unwrap_or_default(),
                }
            })
            .collect();
        PolicyReport {
            passed: results.iter().all(|r| r.passed),
            results,
        }
    }
}

/// Runs cfn-guard's validate command over a payload; returns the status and the report (or, for
/// an error status, the error text).
fn run_guard(rules: &[String], data: &str) -> anyhow::Result<(i32, String)> {
    let payload = json!({ "rules": rules, "data": [data] }).to_string();
    let mut reader = Reader::new(ReadBuffer::Cursor(Cursor::new(payload.into_bytes())));
    let mut writer = Writer::new_with_err(WriteBuffer::Vec(vec![]), WriteBuffer::Vec(vec![]))
        .map_err(|e| anyhow::anyhow!("cfn-guard writer: {e}"))?;
    let cmd = ValidateBuilder::default()
        .payload(true)
        .structured(true)
        .output_format(OutputFormatType::JSON)
        .show_summary(vec![ShowSummaryType::None])
        .try_build()
        .map_err(|e| anyhow::anyhow!("building the cfn-guard command: {e}"))?;
    let status = cmd
        .execute(&mut writer, &mut reader)
        .map_err(|e| anyhow::anyhow!("cfn-guard: {e}"))?;
    // Both accessors consume the writer: on an error status the explanation is on stderr.
    let text = if status == GUARD_ERROR_STATUS {
        writer.err_to_stripped()
    } else {
        writer.into_string()
    };
    let text = text.map_err(|e| anyhow::anyhow!("cfn-guard output: {e}"))?;
    Ok((status, text))
}

/// All rule names mentioned in a structured report (compliant, failing or not applicable).
fn rule_names(report: &Value) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for file in report.as_array().into_iter().flatten() {
        for key in ["compliant", "not_applicable"] {
            for n in file[key].as_array().into_iter().flatten() {
                if let Some(s) = n.as_str() {
                    names.insert(s.to_owned());
                }
            }
        }
        for (name, _) in failures_in(file) {
            names.insert(name);
        }
    }
    names
}

fn failures(report: &Value) -> Vec<(String, Vec<String>)> {
    report
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(failures_in)
        .collect()
}

/// `(rule, messages)` for each failing rule in one file's report.
fn failures_in(file: &Value) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for entry in file["not_compliant"].as_array().into_iter().flatten() {
        let Some(rule) = entry.get("Rule") else {
            continue;
        };
        let name = rule["name"].as_str().unwrap_or_default().to_owned();
        let mut messages = Vec::new();
        collect_messages(rule, &mut messages);
        messages.dedup();
        out.push((name, messages));
    }
    out
}

/// Walks a rule report collecting each clause's custom message with the offending path.
fn collect_messages(node: &Value, out: &mut Vec<String>) {
    match node {
        Value::Object(map) => {
            if let Some(msgs) = map.get("messages") {
                let text = msgs["custom_message"]
                    .as_str()
                    .or_else(|| msgs["error_message"].as_str())
                    .map(|s| s.trim().to_owned());
                if let Some(text) = text.filter(|t| !t.is_empty()) {
                    let path = map.get("check").and_then(find_path);
                    out.push(match path {
                        Some(p) => format!("{text} (at {p})"),
                        None => text,
                    });
                }
            }
            map.iter()
                .filter(|(k, _)| k.as_str() != "messages")
                .for_each(|(_, v)| collect_messages(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_messages(v, out)),
        _ => {}
    }
}

/// The first `path` found under a clause's check (the value that failed).
fn find_path(node: &Value) -> Option<String> {
    match node {
        Value::Object(map) => map
            .get("path")
            .and_then(|p| p.as_str().map(str::to_owned))
            .or_else(|| map.values().find_map(find_path)),
        Value::Array(items) => items.iter().find_map(find_path),
        _ => None,
    }
}
