//! Policy checks: the project's cfn-guard rules (`cloudformation/rules/*.guard`) run in-process
//! against a rendered, literal template.
//!
//! cfn-guard is used as a library: a `Validate` command built with `payload(true)`, structured
//! JSON output, and an in-memory reader and writer (its `run_checks` helper truncates reports
//! over 8 KB). Each rule file is checked at load time (a dry run against an empty document), so a
//! broken rule stops the portal at start-up.
//!
//! Speed: cfn-guard's cost is evaluation, which grows with the resources it is shown (it clones
//! its value tree per query); parsing the rules is about 0.5 ms in all. So each rule file is shown
//! only the resources of the types its text names (all of them when it names none, or names them
//! other than as quoted literals), the files run in parallel, and a template's report is kept by
//! its digest (a form preview checks the same template again and again). A test proves, for
//! every rendered blueprint, that the filtered results equal the whole-template results.

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
use sha2::Digest;

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

/// One loaded `.guard` file.
#[derive(Debug, Clone)]
struct RuleFile {
    text: String,
    /// The resource types its text names; `None`: it is shown the whole template.
    types: Option<BTreeSet<String>>,
    /// It fails nothing in a template without resources (checked at load), so a template with
    /// none of its types need not be shown to it.
    quiet_when_absent: bool,
}

/// The loaded rule files.
#[derive(Clone)]
pub struct PolicyEngine {
    /// The `.guard` files, in file-name order.
    files: Vec<RuleFile>,
    /// Every rule name declared in the files.
    rules: BTreeSet<String>,
    /// Reports by template digest.
    reports: moka::sync::Cache<String, PolicyReport>,
}

impl std::fmt::Debug for PolicyEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyEngine")
            .field("files", &self.files.len())
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

/// The resource types a rule text names as quoted literals (`'AWS::S3::Bucket'`). `None` when it
/// names none, or mentions a type any other way (a regular expression, say): such a file needs
/// the whole template. Comment lines (`# …`) and messages (`<<…>>`) do not count.
pub(crate) fn referenced_types(text: &str) -> Option<BTreeSet<String>> {
    let mut code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    // Nor do the messages (`<<…>>`), which name types in prose.
    while let Some(start) = code.find("<<") {
        let Some(len) = code[start..].find(">>") else {
            break;
        };
        code.replace_range(start..start + len + 2, "");
    }
    let text = code.as_str();
    let mut types = BTreeSet::new();
    for (at, _) in text.match_indices("AWS::") {
        let quote = text[..at].chars().next_back()?;
        if quote != '\'' && quote != '"' {
            return None;
        }
        let rest = &text[at..];
        let end = rest.find(quote)?;
        let name = &rest[..end];
        let parts: Vec<&str> = name.split("::").collect();
        let well_formed = parts.len() == 3
            && parts[1..]
                .iter()
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric()));
        if !well_formed {
            return None;
        }
        types.insert(name.to_owned());
    }
    (!types.is_empty()).then_some(types)
}

/// The template with only the resources of `types` (every other section kept), as JSON text.
fn filtered(template: &Value, types: &BTreeSet<String>) -> String {
    let mut copy = serde_json::Map::new();
    for (key, value) in template.as_object().into_iter().flatten() {
        if key == "Resources" {
            let kept: serde_json::Map<String, Value> = value
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(_, r)| r["Type"].as_str().is_some_and(|t| types.contains(t)))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            copy.insert(key.clone(), Value::Object(kept));
        } else {
            copy.insert(key.clone(), value.clone());
        }
    }
    Value::Object(copy).to_string()
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
            if let Some(dup) = found.iter().find(|r| rules.contains(*r)) {
                bail!("rule file {name}: rule {dup} is declared in another file too");
            }
            rules.extend(found);
        }
        let mut loaded = Vec::new();
        for (name, text) in files {
            let empty = report_of(&text, r#"{"Resources": {}}"#)
                .with_context(|| format!("rule file {name} on a template without resources"))?;
            loaded.push(RuleFile {
                types: referenced_types(&text),
                quiet_when_absent: failures(&empty).is_empty(),
                text,
            });
        }
        let files = loaded;
        Ok(PolicyEngine {
            files,
            rules,
            reports: moka::sync::Cache::new(1_000),
        })
    }

    /// Names of all loaded rules.
    pub fn rule_names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(String::as_str)
    }

    /// Runs every rule against a JSON template. A template cfn-guard cannot evaluate fails as a
    /// whole, with the reason, under the pseudo-rule `cfn-guard`.
    pub fn check(&self, template_json: &str) -> PolicyReport {
        let digest = hex::encode(sha2::Sha256::digest(template_json.as_bytes()));
        if let Some(report) = self.reports.get(&digest) {
            return report;
        }
        let report = self.evaluate(template_json, true);
        self.reports.insert(digest, report.clone());
        report
    }

    /// Evaluates without the report cache; `filter` shows each file only the resources of the
    /// types it names (false: the whole template to every file, for the equivalence test).
    fn evaluate(&self, template_json: &str, filter: bool) -> PolicyReport {
        let template: Value = match serde_json::from_str(template_json) {
            Ok(v) => v,
            Err(e) => return unusable(format!("the template is not JSON: {e}")),
        };
        // Each file is shown the resources of the types it names; a file none of whose types
        // the template has, and which fails nothing without them, is not run at all.
        let (files, inputs): (Vec<&RuleFile>, Vec<String>) =
            self.files
                .iter()
                .filter_map(|f| match (&f.types, filter) {
                    (Some(types), true) => {
                        let present =
                            template["Resources"].as_object().into_iter().flatten().any(
                                |(_, r)| r["Type"].as_str().is_some_and(|t| types.contains(t)),
                            );
                        (present || !f.quiet_when_absent).then(|| (f, filtered(&template, types)))
                    }
                    _ => Some((f, template_json.to_owned())),
                })
                .unzip();
        // The files in parallel: each core takes the next file, the largest inputs first, so
        // that one long file does not leave a core idle at the end.
        let mut order: Vec<usize> = (0..files.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(inputs[i].len()));
        let next = std::sync::atomic::AtomicUsize::new(0);
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let outputs: Vec<anyhow::Result<Value>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads.min(files.len()))
                .map(|_| {
                    scope.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some(&i) = order.get(k) else { break };
                            done.push(report_of(&files[i].text, &inputs[i]));
                        }
                        done
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| {
                    h.join().unwrap_or_else(|_| {
                        vec![Err(anyhow::anyhow!("a policy check thread panicked"))]
                    })
                })
                .collect()
        });
        let mut failures = Vec::new();
        for output in outputs {
            match output {
                Ok(report) => {
                    let found = self::failures(&report);
                    let any_fail = report
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|f| f["status"] == "FAIL");
                    if any_fail && found.is_empty() {
                        let why = "cfn-guard failed the template without naming a rule".to_owned();
                        failures.push(("cfn-guard".into(), vec![why]));
                    }
                    failures.extend(found);
                }
                Err(e) => return unusable(format!("{e:#}")),
            }
        }
        self.results(failures)
    }

    /// One result per loaded rule (and per failing name that is not one, such as `cfn-guard`).
    fn results(&self, failures: Vec<(String, Vec<String>)>) -> PolicyReport {
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

    /// For tests: whether showing each file only its types changes any result on `template`.
    #[cfg(test)]
    pub(crate) fn filtering_changes_results(&self, template_json: &str) -> Option<String> {
        let (a, b) = (
            self.evaluate(template_json, true),
            self.evaluate(template_json, false),
        );
        (a != b).then(|| format!("filtered {a:?}\nwhole {b:?}"))
    }
}

/// The report of a template cfn-guard cannot evaluate.
fn unusable(why: String) -> PolicyReport {
    PolicyReport {
        passed: false,
        results: vec![RuleResult {
            rule: "cfn-guard".into(),
            passed: false,
            messages: vec![why],
        }],
    }
}

/// One file's structured report on one input.
fn report_of(rules: &str, data: &str) -> anyhow::Result<Value> {
    let (status, out) = run_guard(&[rules.to_owned()], data)?;
    if status == GUARD_ERROR_STATUS {
        bail!("cfn-guard could not evaluate the template: {}", out.trim());
    }
    serde_json::from_str::<Value>(&out).context("unreadable cfn-guard report")
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
