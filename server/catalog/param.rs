//! Blueprint parameters: what kind of value each takes, its defaults per environment class, and
//! the check that turns one raw form value into a typed template value.

use std::collections::BTreeMap;

use serde_json::Value;

use super::cidr::Cidr;
use super::pattern::Pattern;
use crate::ids::EnvClass;

/// The smallest and largest VPC blocks a `cidr` parameter accepts.
pub const CIDR_PREFIX_RANGE: (u8, u8) = (16, 24);

/// What kind of value a parameter takes, with what a form needs to render and check it.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamKind {
    /// On or off (a checkbox).
    Boolean,
    /// A private RFC 1918 IPv4 block with a prefix between /16 and /24.
    Cidr,
    /// One of a fixed list of `(value, label)` options.
    Choice(Vec<(String, String)>),
    /// A whole number between `min` and `max` inclusive.
    Integer { min: i64, max: i64 },
    /// Free text of at most `max_len` characters, matching `pattern` if one is given
    /// (the subset of regular-expression syntax described in `pattern.rs`).
    String {
        pattern: Option<String>,
        max_len: usize,
    },
}

/// One parameter of a blueprint, as the request form shows it.
#[derive(Debug, Clone)]
pub struct ParamSpec {
    /// Name used in requests and in the template (`params.<name>`).
    pub name: String,
    /// Short label for the form.
    pub label: String,
    /// Help text shown under the field.
    pub help: String,
    /// Form section the field belongs to.
    pub section: String,
    /// Kind of value, with its bounds or options.
    pub kind: ParamKind,
    /// Whether a `Choice` value is a number in the template (e.g. an AZ count).
    pub(crate) numeric: bool,
    pub(crate) defaults: BTreeMap<EnvClass, String>,
    pub(crate) pattern: Option<Pattern>,
}

impl ParamSpec {
    /// The default value (as a form would show it) for an environment class, if any.
    pub fn default_for(&self, env: EnvClass) -> Option<String> {
        self.defaults.get(&env).cloned()
    }

    /// Checks one raw value and converts it to what the template receives.
    /// The error says what is wrong and what to do instead.
    pub fn check(&self, raw: &str) -> Result<Value, String> {
        let raw = raw.trim();
        match &self.kind {
            ParamKind::Boolean => match raw.to_ascii_lowercase().as_str() {
                "true" | "on" | "yes" | "1" => Ok(Value::Bool(true)),
                "false" | "off" | "no" | "0" => Ok(Value::Bool(false)),
                _ => Err(format!("'{raw}' is not on or off: use true or false")),
            },
            ParamKind::Cidr => {
                let cidr = Cidr::parse(raw)?;
                cidr.check_vpc(CIDR_PREFIX_RANGE.0, CIDR_PREFIX_RANGE.1)?;
                Ok(Value::String(cidr.to_string()))
            }
            ParamKind::Choice(options) => {
                if !options.iter().any(|(v, _)| v == raw) {
                    let list: Vec<&str> = options.iter().map(|(v, _)| v.as_str()).collect();
                    return Err(format!(
                        "'{raw}' is not allowed: choose one of {}",
                        list.join(", ")
                    ));
                }
                if self.numeric {
                    let n: i64 = raw
                        .parse()
                        .map_err(|_| format!("'{raw}' is not a number"))?;
                    Ok(Value::from(n))
                } else {
                    Ok(Value::String(raw.to_owned()))
                }
            }
            ParamKind::Integer { min, max } => match raw.parse::<i64>() {
                Ok(n) if (*min..=*max).contains(&n) => Ok(Value::from(n)),
                Ok(n) => Err(format!(
                    "{n} is out of range: use a number from {min} to {max}"
                )),
                Err(_) => Err(format!(
                    "'{raw}' is not a whole number: use a number from {min} to {max}"
                )),
            },
            ParamKind::String { pattern, max_len } => {
                let len = raw.chars().count();
                if len > *max_len {
                    return Err(format!(
                        "{len} characters is too long: use at most {max_len}"
                    ));
                }
                if let (Some(src), Some(p)) = (pattern, &self.pattern)
                    && !p.is_match(raw)
                {
                    return Err(format!("'{raw}' does not have the required form {src}"));
                }
                Ok(Value::String(raw.to_owned()))
            }
        }
    }
}
