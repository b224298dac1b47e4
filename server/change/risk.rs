//! Risk flags: what a change does that deserves another pair of eyes, derived from the change
//! set's resource changes and from the template diff against what is deployed. Flags show on the
//! request page and in the inbox, and feed the approval rules (`STACKGATE_RISK_ROUTES`: an extra
//! approver group per flag).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Change;

/// One risk a change carries.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum RiskFlag {
    /// A stateful resource (database, cache, bucket, key, log group, volume, secret) is
    /// replaced or removed: its data may be lost.
    StatefulReplacement,
    /// A security group or network ACL rule opens to 0.0.0.0/0 or ::/0.
    NetworkWidening,
    /// An IAM role, policy, user or group is added, changed or removed.
    IamChange,
    /// Deletion protection, encryption or logging is turned off (or a logging resource removed).
    ProtectionOff,
    /// More resources change than the configured threshold.
    LargeChange,
}

impl RiskFlag {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn parse(s: &str) -> Option<RiskFlag> {
        s.parse().ok()
    }

    /// Words for people.
    pub fn label(self) -> &'static str {
        match self {
            RiskFlag::StatefulReplacement => "replaces or removes a stateful resource",
            RiskFlag::NetworkWidening => "opens network access to the internet",
            RiskFlag::IamChange => "changes IAM roles or policies",
            RiskFlag::ProtectionOff => "turns off deletion protection, encryption or logging",
            RiskFlag::LargeChange => "changes many resources",
        }
    }
}

/// Resource types whose replacement or removal can lose data.
const STATEFUL: &[&str] = &[
    "AWS::RDS::DBInstance",
    "AWS::RDS::DBCluster",
    "AWS::ElastiCache::ReplicationGroup",
    "AWS::ElastiCache::CacheCluster",
    "AWS::S3::Bucket",
    "AWS::KMS::Key",
    "AWS::Logs::LogGroup",
    "AWS::EC2::Volume",
    "AWS::SecretsManager::Secret",
    "AWS::DynamoDB::Table",
    "AWS::EFS::FileSystem",
];

/// Resources that record or protect: removing one turns logging or detection off.
const LOGGING: &[&str] = &[
    "AWS::CloudTrail::Trail",
    "AWS::EC2::FlowLog",
    "AWS::Config::ConfigurationRecorder",
    "AWS::GuardDuty::Detector",
];

/// Properties that protect when true: true → false (or removed) turns protection off.
const PROTECTING_FLAGS: &[&str] = &[
    "DeletionProtection",
    "DeletionProtectionEnabled",
    "StorageEncrypted",
    "Encrypted",
    "EnableKeyRotation",
    "IsLogging",
    "EnableLogFileValidation",
    "AtRestEncryptionEnabled",
    "TransitEncryptionEnabled",
];

/// Properties whose removal turns encryption or logging off.
const PROTECTING_BLOCKS: &[&str] = &[
    "BucketEncryption",
    "KmsKeyId",
    "KmsMasterKeyId",
    "SSESpecification",
    "LoggingConfiguration",
    "LogPublishingOptions",
    "EnableCloudwatchLogsExports",
    "PublicAccessBlockConfiguration",
];

/// The flags of a change: `changes` from the change set, `base` the deployed template (`None`
/// for a new stack), `new` the template to deploy; more than `threshold` changes is large.
pub fn flags(
    changes: &[Change],
    base: Option<&Value>,
    new: &Value,
    threshold: usize,
) -> Vec<RiskFlag> {
    let mut out = Vec::new();
    let replaced = |c: &Change| {
        c.action == "Remove"
            || (c.action == "Modify"
                && matches!(c.replacement.as_deref(), Some("True" | "Conditional")))
    };
    if changes
        .iter()
        .any(|c| replaced(c) && STATEFUL.contains(&c.resource_type.as_str()))
    {
        out.push(RiskFlag::StatefulReplacement);
    }
    let base_resources = base.map(resources).unwrap_or_default();
    let new_resources = resources(new);
    let before = |id: &str| base_resources.iter().find(|(k, _)| k == id).map(|(_, v)| *v);
    if new_resources.iter().any(|(id, r)| {
        let old_rules = before(id).map(world_open_rules).unwrap_or_default();
        world_open_rules(r).iter().any(|rule| !old_rules.contains(rule))
    }) {
        out.push(RiskFlag::NetworkWidening);
    }
    let iam_changed = changes
        .iter()
        .any(|c| c.resource_type.starts_with("AWS::IAM::"))
        || new_resources
            .iter()
            .any(|(id, r)| type_of(r).starts_with("AWS::IAM::") && before(id) != Some(*r))
        || base_resources.iter().any(|(id, r)| {
            type_of(r).starts_with("AWS::IAM::") && !new_resources.iter().any(|(k, _)| k == id)
        });
    if iam_changed {
        out.push(RiskFlag::IamChange);
    }
    let logging_removed = changes
        .iter()
        .any(|c| c.action == "Remove" && LOGGING.contains(&c.resource_type.as_str()))
        || base_resources.iter().any(|(id, r)| {
            LOGGING.contains(&type_of(r)) && !new_resources.iter().any(|(k, _)| k == id)
        });
    let weakened = new_resources
        .iter()
        .any(|(id, r)| before(id).is_some_and(|old| protection_removed(old, r)));
    if logging_removed || weakened {
        out.push(RiskFlag::ProtectionOff);
    }
    if changes.len() > threshold {
        out.push(RiskFlag::LargeChange);
    }
    out
}

/// The template's resources as (logical id, resource), in template order.
fn resources(template: &Value) -> Vec<(String, &Value)> {
    template
        .get("Resources")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v)).collect())
        .unwrap_or_default()
}

fn type_of(resource: &Value) -> &str {
    resource.get("Type").and_then(Value::as_str).unwrap_or("")
}

fn props(resource: &Value) -> Option<&serde_json::Map<String, Value>> {
    resource.get("Properties").and_then(Value::as_object)
}

/// The rules of a security group, ingress rule or ACL entry that admit the whole internet.
fn world_open_rules(resource: &Value) -> Vec<Value> {
    let Some(p) = props(resource) else {
        return vec![];
    };
    let world = |rule: &serde_json::Map<String, Value>| {
        ["CidrIp", "CidrBlock"]
            .iter()
            .any(|k| rule.get(*k).and_then(Value::as_str) == Some("0.0.0.0/0"))
            || ["CidrIpv6", "Ipv6CidrBlock"]
                .iter()
                .any(|k| rule.get(*k).and_then(Value::as_str) == Some("::/0"))
    };
    match type_of(resource) {
        "AWS::EC2::SecurityGroup" => p
            .get("SecurityGroupIngress")
            .and_then(Value::as_array)
            .map(|rules| {
                rules
                    .iter()
                    .filter(|r| r.as_object().is_some_and(world))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default(),
        "AWS::EC2::SecurityGroupIngress" if world(p) => vec![Value::Object(p.clone())],
        "AWS::EC2::NetworkAclEntry"
            if world(p)
                && p.get("RuleAction").and_then(Value::as_str) == Some("allow")
                && !p.get("Egress").is_some_and(truthy) =>
        {
            vec![Value::Object(p.clone())]
        }
        _ => vec![],
    }
}

fn truthy(v: &Value) -> bool {
    v.as_bool() == Some(true) || v.as_str().is_some_and(|s| s.eq_ignore_ascii_case("true"))
}

/// Whether `new` drops a protection `old` had: a protecting flag no longer true, a protecting
/// block removed, or a `DeletionPolicy: Retain` given up.
fn protection_removed(old: &Value, new: &Value) -> bool {
    let (Some(op), np) = (props(old), props(new)) else {
        return false;
    };
    let new_has = |k: &str| np.and_then(|m| m.get(k));
    let flag_dropped = PROTECTING_FLAGS.iter().any(|k| {
        op.get(*k).is_some_and(truthy) && !new_has(k).is_some_and(truthy)
    });
    let block_dropped = PROTECTING_BLOCKS
        .iter()
        .any(|k| op.contains_key(*k) && new_has(k).is_none());
    let retain = |r: &Value| r.get("DeletionPolicy").and_then(Value::as_str) == Some("Retain");
    flag_dropped || block_dropped || (retain(old) && !retain(new))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(id: &str, ty: &str, action: &str, replacement: Option<&str>) -> Change {
        Change {
            logical_id: id.into(),
            resource_type: ty.into(),
            action: action.into(),
            replacement: replacement.map(str::to_string),
        }
    }

    fn template(resources: Value) -> Value {
        json!({ "Resources": resources })
    }

    #[test]
    fn replacing_or_removing_a_stateful_resource_is_flagged_but_modifying_in_place_is_not() {
        let t = template(json!({}));
        for (action, replacement) in [("Modify", Some("True")), ("Modify", Some("Conditional")), ("Remove", None)] {
            let c = [change("Db", "AWS::RDS::DBInstance", action, replacement)];
            assert_eq!(flags(&c, Some(&t), &t, 50), vec![RiskFlag::StatefulReplacement], "{action} {replacement:?}");
        }
        let in_place = [change("Db", "AWS::RDS::DBInstance", "Modify", Some("False"))];
        assert!(flags(&in_place, Some(&t), &t, 50).is_empty());
        let stateless = [change("Sg", "AWS::EC2::SecurityGroup", "Remove", None)];
        assert!(flags(&stateless, Some(&t), &t, 50).is_empty());
    }

    #[test]
    fn a_new_world_open_rule_is_flagged_and_an_unchanged_one_is_not() {
        let sg = |cidr: &str| {
            template(json!({ "Sg": { "Type": "AWS::EC2::SecurityGroup", "Properties": {
                "SecurityGroupIngress": [{ "IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIp": cidr }]
            }}}))
        };
        let closed = sg("10.0.0.0/16");
        let open = sg("0.0.0.0/0");
        assert_eq!(flags(&[], Some(&closed), &open, 50), vec![RiskFlag::NetworkWidening]);
        assert_eq!(flags(&[], None, &open, 50), vec![RiskFlag::NetworkWidening], "a new stack");
        assert!(flags(&[], Some(&open), &open, 50).is_empty(), "already open");
        let v6 = template(json!({ "In": { "Type": "AWS::EC2::SecurityGroupIngress", "Properties": {
            "GroupId": "sg-1", "IpProtocol": "-1", "CidrIpv6": "::/0" }}}));
        assert_eq!(flags(&[], Some(&closed), &v6, 50), vec![RiskFlag::NetworkWidening]);
        let acl = |egress: bool, action: &str| template(json!({ "E": { "Type": "AWS::EC2::NetworkAclEntry", "Properties": {
            "CidrBlock": "0.0.0.0/0", "Egress": egress, "RuleAction": action, "RuleNumber": 100, "Protocol": 6 }}}));
        assert_eq!(flags(&[], None, &acl(false, "allow"), 50), vec![RiskFlag::NetworkWidening]);
        assert!(flags(&[], None, &acl(true, "allow"), 50).is_empty(), "egress");
        assert!(flags(&[], None, &acl(false, "deny"), 50).is_empty(), "a deny");
    }

    #[test]
    fn iam_changes_are_flagged_from_the_change_set_or_the_template() {
        let role = |policy: &str| template(json!({ "R": { "Type": "AWS::IAM::Role", "Properties": { "Description": policy }}}));
        let a = role("a");
        assert!(flags(&[], Some(&a), &a, 50).is_empty());
        assert_eq!(flags(&[], Some(&a), &role("b"), 50), vec![RiskFlag::IamChange]);
        let empty = template(json!({}));
        assert_eq!(flags(&[], Some(&a), &empty, 50), vec![RiskFlag::IamChange], "removed");
        let c = [change("P", "AWS::IAM::ManagedPolicy", "Add", None)];
        assert_eq!(flags(&c, Some(&empty), &empty, 50), vec![RiskFlag::IamChange]);
    }

    #[test]
    fn turning_protection_encryption_or_logging_off_is_flagged() {
        let db = |p: Value| template(json!({ "Db": { "Type": "AWS::RDS::DBInstance", "Properties": p }}));
        let protected = db(json!({ "DeletionProtection": true, "StorageEncrypted": true, "KmsKeyId": "k" }));
        for weaker in [
            db(json!({ "DeletionProtection": false, "StorageEncrypted": true, "KmsKeyId": "k" })),
            db(json!({ "StorageEncrypted": true, "KmsKeyId": "k" })),
            db(json!({ "DeletionProtection": true, "StorageEncrypted": "false", "KmsKeyId": "k" })),
            db(json!({ "DeletionProtection": true, "StorageEncrypted": true })),
        ] {
            assert_eq!(flags(&[], Some(&protected), &weaker, 50), vec![RiskFlag::ProtectionOff], "{weaker}");
        }
        assert!(flags(&[], Some(&protected), &protected, 50).is_empty());
        let trail = template(json!({ "T": { "Type": "AWS::CloudTrail::Trail", "Properties": { "IsLogging": true }}}));
        assert_eq!(flags(&[], Some(&trail), &template(json!({})), 50), vec![RiskFlag::ProtectionOff]);
        let retained = template(json!({ "B": { "Type": "AWS::S3::Bucket", "DeletionPolicy": "Retain", "Properties": {} }}));
        let deletable = template(json!({ "B": { "Type": "AWS::S3::Bucket", "Properties": {} }}));
        assert_eq!(flags(&[], Some(&retained), &deletable, 50), vec![RiskFlag::ProtectionOff]);
    }

    #[test]
    fn more_changes_than_the_threshold_is_a_large_change() {
        let t = template(json!({}));
        let many: Vec<Change> = (0..3).map(|i| change(&format!("S{i}"), "AWS::SNS::Topic", "Add", None)).collect();
        assert!(flags(&many, None, &t, 3).is_empty());
        assert_eq!(flags(&many, None, &t, 2), vec![RiskFlag::LargeChange]);
    }

    #[test]
    fn flags_round_trip_through_their_names() {
        use strum::VariantArray;
        for f in RiskFlag::VARIANTS {
            assert_eq!(RiskFlag::parse(f.as_str()), Some(*f));
            assert!(!f.label().is_empty());
        }
    }
}
