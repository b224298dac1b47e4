//! The guard rules on rendered and mutated templates.

use serde_json::{Value, json};

use super::{engine, render};
use crate::ids::EnvClass;

#[test]
fn policy_passes_on_every_rendered_template() {
    let names: Vec<&str> = engine().rule_names().collect();
    assert!(
        names.contains(&"restricted_tier_has_no_internet_route"),
        "{names:?}"
    );
    assert!(names.len() >= 7, "{names:?}");
    for env in [EnvClass::Dev, EnvClass::Test, EnvClass::Prod] {
        for azs in ["2", "3"] {
            let report = engine().check(&render(env, &[("az_count", azs)]).body);
            assert!(report.passed, "{env} {azs}: {report:?}");
            assert_eq!(report.results.len(), names.len());
        }
    }
}

fn failing_rules(template: &Value) -> Vec<(String, Vec<String>)> {
    let report = engine().check(&template.to_string());
    assert_eq!(report.passed, report.results.iter().all(|r| r.passed));
    report
        .results
        .into_iter()
        .filter(|r| !r.passed)
        .map(|r| (r.rule, r.messages))
        .collect()
}

#[test]
fn policy_fails_with_the_right_rule_on_mutated_templates() {
    let base = render(EnvClass::Dev, &[]).template;
    let cases: Vec<(&str, Value)> = vec![
        ("vpc_flow_logs_enabled", json!({"FlowLog": null})),
        (
            "kms_keys_rotate",
            json!({"FlowLogKey": {"Type": "AWS::KMS::Key", "Properties": {"EnableKeyRotation": false, "Tags": base["Resources"]["FlowLogKey"]["Properties"]["Tags"]}}}),
        ),
        (
            "restricted_tier_has_no_internet_route",
            json!({"Bad": {"Type": "AWS::EC2::Route", "Properties": {"RouteTableId": {"Ref": "RestrictedRouteTable"}, "DestinationCidrBlock": "0.0.0.0/0", "GatewayId": {"Ref": "InternetGateway"}}}}),
        ),
        (
            "no_admin_ports_from_anywhere",
            json!({"Ssh": {"Type": "AWS::EC2::SecurityGroupIngress", "Properties": {"GroupId": "sg-1", "IpProtocol": "tcp", "FromPort": 20, "ToPort": 25, "CidrIp": "0.0.0.0/0"}}}),
        ),
        (
            "s3_buckets_encrypted",
            json!({
                "Logs": {"Type": "AWS::S3::Bucket", "Properties": {"PublicAccessBlockConfiguration": {"BlockPublicAcls": true, "BlockPublicPolicy": true, "IgnorePublicAcls": true, "RestrictPublicBuckets": true}, "Tags": base["Resources"]["FlowLogKey"]["Properties"]["Tags"]}},
                "LogsPolicy": {"Type": "AWS::S3::BucketPolicy", "Properties": {"Bucket": {"Ref": "Logs"}, "PolicyDocument": {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}}}
            }),
        ),
        (
            "resources_tagged",
            json!({"Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.10.0.0/16"}}}),
        ),
    ];
    for (rule, patch) in cases {
        let mut t = base.clone();
        for (id, res) in patch.as_object().into_iter().flatten() {
            match (res.is_null(), t["Resources"].as_object_mut()) {
                (true, Some(m)) => drop(m.remove(id)),
                (false, Some(m)) => drop(m.insert(id.clone(), res.clone())),
                _ => panic!("no Resources"),
            }
        }
        let failed = failing_rules(&t);
        assert_eq!(failed.len(), 1, "{rule}: {failed:?}");
        assert_eq!(failed[0].0, rule);
        assert!(!failed[0].1.is_empty(), "{rule} has no message");
    }
    let mut t = base.clone();
    t["Resources"]["FlowLogGroup"]["Properties"]["KmsKeyId"] = Value::Null;
    if let Some(p) = t["Resources"]["FlowLogGroup"]["Properties"].as_object_mut() {
        p.remove("KmsKeyId");
    }
    let failed = failing_rules(&t);
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0].1[0].starts_with("CloudWatch log group is not KMS-encrypted"),
        "{failed:?}"
    );
    assert!(
        failed[0].1[0].ends_with("(at /Resources/FlowLogGroup/Properties)"),
        "{failed:?}"
    );
}

#[test]
fn an_unparseable_template_fails_the_policy_as_a_whole() {
    let report = engine().check("{ not json");
    assert!(!report.passed);
    assert_eq!(report.results.len(), 1);
    assert_eq!(report.results[0].rule, "cfn-guard");
}

#[test]
fn broken_or_empty_rule_files_are_refused_at_load() {
    let load = |text: &str| {
        crate::catalog::PolicyEngine::from_rules(vec![("x.guard".into(), text.into())])
            .map(|_| ())
            .map_err(|e| format!("{e:#}"))
    };
    let broken = load("rule broken { Resources.*[ Type == ");
    assert!(
        broken.as_ref().is_err_and(|e| e.contains("x.guard")),
        "{broken:?}"
    );
    let empty = crate::catalog::PolicyEngine::from_rules(vec![]).map(|_| ());
    assert!(empty.is_err());
    assert_eq!(load("rule ok { Resources exists }"), Ok(()));
}

#[test]
fn a_template_without_route_tables_or_vpcs_is_evaluated_not_refused() {
    // A blueprint need not contain every resource type the rules look at: rules that do not
    // apply pass instead of failing the whole evaluation.
    let mut tags = super::ctx(EnvClass::Dev).tags(("test", "1.0.0"));
    tags.push(json!({"Key": "Name", "Value": "x"}));
    let template = serde_json::json!({
        "Resources": {
            "Subnet": {
                "Type": "AWS::EC2::Subnet",
                "Properties": {
                    "VpcId": "vpc-0123456789abcdef0",
                    "CidrBlock": "10.0.0.0/24",
                    "Tags": tags
                }
            }
        }
    });
    let report = engine().check(&template.to_string());
    assert!(report.passed, "{report:?}");
    assert!(report.results.iter().all(|r| r.rule != "cfn-guard"));
}

/// The speed-up of showing each rule file only its resource types changes no result: on every
/// render of every blueprint and on every mutated template of the test above.
#[test]
fn showing_each_rule_file_only_its_types_changes_no_result() {
    let mut templates = vec![];
    for env in [EnvClass::Dev, EnvClass::Test, EnvClass::Prod] {
        for azs in ["2", "3"] {
            templates.push(render(env, &[("az_count", azs)]).body);
        }
    }
    let base = render(EnvClass::Dev, &[]).template;
    let mut open_ssh = base.clone();
    open_ssh["Resources"]["Ssh"] = json!({"Type": "AWS::EC2::SecurityGroupIngress", "Properties": {"GroupId": "sg-1", "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "CidrIp": "0.0.0.0/0"}});
    let mut untagged = base.clone();
    untagged["Resources"]["Vpc"]["Properties"]
        .as_object_mut()
        .map(|p| p.remove("Tags"));
    templates.push(open_ssh.to_string());
    templates.push(untagged.to_string());
    for t in &templates {
        if let Some(diff) = engine().filtering_changes_results(t) {
            panic!("{diff}");
        }
    }
}

#[test]
fn a_rule_file_names_its_types_only_as_quoted_literals() {
    use crate::catalog::policy::referenced_types;
    let t =
        referenced_types("let b = Resources.*[ Type == 'AWS::S3::Bucket' ]\nrule x { %b exists }");
    assert_eq!(
        t.map(|t| t.into_iter().collect::<Vec<_>>()),
        Some(vec!["AWS::S3::Bucket".to_string()])
    );
    assert_eq!(referenced_types("rule x { Resources exists }"), None);
    assert_eq!(
        referenced_types("let b = Resources.*[ Type == /AWS::S3::.*/ ]"),
        None
    );
    assert_eq!(
        referenced_types("let b = Resources.*[ Type IN ['AWS::EC2::VPC', \"AWS::EC2::Subnet\"] ]")
            .map(|t| t.len()),
        Some(2)
    );
    // Prose names types too: in comments and messages it does not widen what a file is shown.
    let prose = "# Every AWS::S3::Bucket is encrypted\nlet b = Resources.*[ Type == 'AWS::S3::Bucket' ]\n\
                 rule x { %b.Properties.BucketEncryption exists <<add it to the AWS::S3::Bucket>> }";
    assert_eq!(
        referenced_types(prose).map(|t| t.into_iter().collect::<Vec<_>>()),
        Some(vec!["AWS::S3::Bucket".to_string()])
    );
}
