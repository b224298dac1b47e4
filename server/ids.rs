//! Identifiers and classes parsed at the edge: an environment class, an AWS account id, an IAM
//! role ARN, a region, a team name. Everything below the edge takes these, not raw strings.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The class of an environment; it decides defaults, approval rules and how loudly pages mark it.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantNames,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum EnvClass {
    Dev,
    Test,
    Prod,
    /// Core accounts of the landing zone (management, security, log archive, shared services):
    /// listed in the registry, never a target for team requests.
    Core,
}

impl EnvClass {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Parses a class, with a message that lists the classes.
    pub fn named(s: &str) -> Result<EnvClass, String> {
        use strum::VariantNames;
        s.parse().map_err(|_| {
            format!(
                "unknown environment class '{s}': use {}",
                EnvClass::VARIANTS.join(", ")
            )
        })
    }

    /// Whether teams may request workloads in accounts of this class.
    pub fn is_workload(self) -> bool {
        !matches!(self, EnvClass::Core)
    }
}

impl fmt::Display for EnvClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A 12-digit AWS account id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AwsAccountId(String);

impl AwsAccountId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AwsAccountId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(AwsAccountId(s))
        } else {
            Err(format!("'{s}' is not an AWS account id (12 digits)"))
        }
    }
}

impl From<AwsAccountId> for String {
    fn from(v: AwsAccountId) -> String {
        v.0
    }
}

impl fmt::Display for AwsAccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An IAM role ARN (`arn:aws:iam::<account>:role/<path/name>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RoleArn(String);

impl RoleArn {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The account id embedded in the ARN.
    pub fn account_id(&self) -> &str {
        self.0.split(':').nth(4).unwrap_or_default()
    }
}

impl TryFrom<String> for RoleArn {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        let parts: Vec<&str> = s.splitn(6, ':').collect();
        let ok = parts.len() == 6
            && parts[0] == "arn"
            && parts[1].starts_with("aws")
            && parts[2] == "iam"
            && parts[3].is_empty()
            && parts[4].len() == 12
            && parts[4].bytes().all(|b| b.is_ascii_digit())
            && parts[5].starts_with("role/")
            && parts[5].len() > 5
            && parts[5]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-/".contains(&b));
        if ok {
            Ok(RoleArn(s))
        } else {
            Err(format!(
                "'{s}' is not an IAM role ARN (arn:aws:iam::123456789012:role/name)"
            ))
        }
    }
}

impl From<RoleArn> for String {
    fn from(v: RoleArn) -> String {
        v.0
    }
}

impl fmt::Display for RoleArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An AWS region name such as `eu-west-2`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Region(String);

impl Region {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Region {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        // Shape of every commercial and GovCloud region: letters, dash, letters, dash, digit.
        let parts: Vec<&str> = s.split('-').collect();
        let ok = (3..=4).contains(&parts.len())
            && parts[..parts.len() - 1]
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
            && parts[parts.len() - 1].len() == 1
            && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit());
        if ok {
            Ok(Region(s))
        } else {
            Err(format!(
                "'{s}' is not an AWS region name (such as eu-west-2)"
            ))
        }
    }
}

impl From<Region> for String {
    fn from(v: Region) -> String {
        v.0
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Team names: 2–32 lowercase letters, digits and single dashes, starting with a letter and not
/// ending with a dash (a team name is part of stack names, where `--` separates it).
pub fn valid_team(t: &str) -> bool {
    (2..=32).contains(&t.len())
        && !t.contains("--")
        && !t.ends_with('-')
        && t.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && t.as_bytes()[0].is_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids_must_be_twelve_digits() {
        assert!(AwsAccountId::try_from("123456789012".to_string()).is_ok());
        assert!(AwsAccountId::try_from("12345678901".to_string()).is_err());
        assert!(AwsAccountId::try_from("12345678901a".to_string()).is_err());
    }

    #[test]
    fn role_arns_are_parsed_strictly() {
        let arn = RoleArn::try_from("arn:aws:iam::222222222222:role/stackgate-deploy".to_string());
        assert_eq!(
            arn.map(|a| a.account_id().to_string()),
            Ok("222222222222".into())
        );
        for bad in [
            "arn:aws:iam::22222222222:role/x",
            "arn:aws:s3:::bucket",
            "arn:aws:iam::222222222222:user/x",
            "arn:aws:iam::222222222222:role/",
            "arn:aws:iam::222222222222:role/a b",
        ] {
            assert!(RoleArn::try_from(bad.to_string()).is_err(), "{bad}");
        }
    }

    #[test]
    fn regions_have_the_aws_shape() {
        for good in ["eu-west-2", "us-east-1", "us-gov-west-1", "ap-southeast-3"] {
            assert!(Region::try_from(good.to_string()).is_ok(), "{good}");
        }
        for bad in ["", "eu", "EU-WEST-2", "eu-west-22", "eu-west-x", "eu--1"] {
            assert!(Region::try_from(bad.to_string()).is_err(), "{bad}");
        }
    }
}
