//! Validation and rendering of the `network` blueprint.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sha2::Digest;

use super::{count, ctx, network, raw, render};
use crate::ids::EnvClass;

#[test]
fn defaults_follow_the_environment_class() {
    let bp = network();
    let dev = bp.validate(EnvClass::Dev, &BTreeMap::new());
    let prod = bp.validate(EnvClass::Prod, &BTreeMap::new());
    let expect_dev: BTreeMap<String, Value> = [
        ("app_port", json!(8080)),
        ("az_count", json!(2)),
        ("flow_log_retention_days", json!(30)),
        ("http_redirect", json!(false)),
        ("nat_gateways", json!("single")),
        ("transit_gateway", json!(false)),
        ("vpc_cidr", json!("10.10.0.0/16")),
        ("vpc_endpoints", json!(false)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(dev, Ok(expect_dev));
    let prod = prod.unwrap_or_default();
    assert_eq!(prod["az_count"], json!(3));
    assert_eq!(prod["nat_gateways"], json!("per_az"));
    assert_eq!(prod["flow_log_retention_days"], json!(365));
    let test = bp.validate(EnvClass::Test, &raw(&[("vpc_cidr", " ")]));
    assert_eq!(test.unwrap_or_default()["vpc_cidr"], json!("10.20.0.0/16"));
    let cidr = bp.param("vpc_cidr").map(|p| p.default_for(EnvClass::Prod));
    assert_eq!(cidr, Some(Some("10.30.0.0/16".to_string())));
}

#[test]
fn validation_messages_say_what_to_do_one_per_field() {
    let bad = raw(&[
        ("vpc_cidr", "10.0.0.0/12"),
        ("az_count", "4"),
        ("nat_gateways", "many"),
        ("flow_log_retention_days", "31"),
        ("colour", "blue"),
    ]);
    let errors = network()
        .validate(EnvClass::Dev, &bad)
        .err()
        .unwrap_or_default();
    let by_field: BTreeMap<&str, &str> = errors
        .iter()
        .map(|e| (e.field.as_str(), e.message.as_str()))
        .collect();
    assert_eq!(errors.len(), 5, "{errors:?}");
    assert_eq!(
        by_field["vpc_cidr"],
        "10.0.0.0/12 is too large: use a prefix between /16 and /24"
    );
    assert_eq!(
        by_field["az_count"],
        "'4' is not allowed: choose one of 2, 3"
    );
    assert_eq!(
        by_field["nat_gateways"],
        "'many' is not allowed: choose one of single, per_az"
    );
    assert!(
        by_field["flow_log_retention_days"].starts_with("'31' is not allowed: choose one of 1, 3")
    );
    assert!(by_field["colour"].contains("is not a parameter of network: remove it"));
    let public = network().validate(EnvClass::Dev, &raw(&[("vpc_cidr", "8.8.0.0/16")]));
    let msg = public
        .err()
        .and_then(|e| e.first().map(|e| e.message.clone()));
    assert!(msg.is_some_and(|m| m.contains("not a private range")));
    let host_bits = network().validate(EnvClass::Dev, &raw(&[("vpc_cidr", "10.1.2.0/16")]));
    let msg = host_bits
        .err()
        .and_then(|e| e.first().map(|e| e.message.clone()));
    assert_eq!(
        msg.as_deref(),
        Some("10.1.2.0/16 has host bits set: the network address for /16 is 10.1.0.0/16")
    );
}

#[test]
fn every_env_class_renders_for_two_and_three_azs() {
    for env in [EnvClass::Dev, EnvClass::Test, EnvClass::Prod] {
        for azs in [2usize, 3] {
            let r = render(env, &[("az_count", &azs.to_string())]);
            let nats = if env == EnvClass::Prod { azs } else { 1 };
            assert_eq!(count(&r, "AWS::EC2::Subnet"), 3 * azs, "{env} {azs}");
            assert_eq!(count(&r, "AWS::EC2::NatGateway"), nats, "{env} {azs}");
            assert_eq!(count(&r, "AWS::EC2::EIP"), nats, "{env} {azs}");
            assert_eq!(count(&r, "AWS::EC2::FlowLog"), 1);
            assert_eq!(count(&r, "AWS::EC2::NetworkAcl"), 3);
            for (i, letter) in ["a", "b", "c"].iter().take(azs).enumerate() {
                let subnet =
                    &r.template["Resources"][format!("RestrictedSubnet{}", letter.to_uppercase())];
                assert_eq!(
                    subnet["Properties"]["AvailabilityZone"],
                    json!(format!("eu-west-2{letter}"))
                );
                let cidr = format!("10.{}.{}.0/20", 10 * (env as u8 + 1), 128 + 16 * i);
                assert_eq!(
                    subnet["Properties"]["CidrBlock"],
                    json!(cidr),
                    "{env} {azs}"
                );
            }
            for forbidden in ["\"Fn::Cidr\"", "\"Fn::GetAZs\"", "{{", "{%"] {
                assert!(!r.body.contains(forbidden), "{env} {azs}: {forbidden}");
            }
            let ids = &r.template["Outputs"]["PrivateSubnetIds"]["Value"]["Fn::Join"];
            assert_eq!(ids[0], json!(","));
            assert_eq!(ids[1].as_array().map(Vec::len), Some(azs));
            assert_eq!(
                r.template["Outputs"]["FlowLogGroupName"]["Value"],
                json!({"Ref": "FlowLogGroup"})
            );
            let retention =
                &r.template["Resources"]["FlowLogGroup"]["Properties"]["RetentionInDays"];
            assert_eq!(Some(retention), r.params.get("flow_log_retention_days"));
        }
    }
}

#[test]
fn a_slash_24_vpc_fits_three_tiers_of_three_azs() {
    let r = render(EnvClass::Prod, &[("vpc_cidr", "192.168.5.0/24")]);
    let cidr = |id: &str| r.template["Resources"][id]["Properties"]["CidrBlock"].clone();
    assert_eq!(cidr("PublicSubnetA"), json!("192.168.5.0/28"));
    assert_eq!(cidr("PrivateSubnetC"), json!("192.168.5.96/28"));
    assert_eq!(cidr("RestrictedSubnetC"), json!("192.168.5.160/28"));
    let entry = &r.template["Resources"]["RestrictedInPostgreSQLFromPrivate"]["Properties"];
    assert_eq!(entry["CidrBlock"], json!("192.168.5.64/26"));
    assert_eq!(entry["PortRange"], json!({"From": 5432, "To": 5432}));
}

#[test]
fn restricted_tier_has_no_route_out() {
    let r = render(EnvClass::Prod, &[]);
    let routes: Vec<&Value> = r.template["Resources"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
        .filter(|v| v["Type"] == json!("AWS::EC2::Route"))
        .collect();
    assert_eq!(routes.len(), 4);
    assert!(
        routes
            .iter()
            .all(|v| v["Properties"]["RouteTableId"] != json!({"Ref": "RestrictedRouteTable"}))
    );
}

#[test]
fn digest_is_stable_and_tracks_inputs() {
    let a = render(EnvClass::Test, &[]);
    let b = render(
        EnvClass::Test,
        &[("az_count", "2"), ("vpc_cidr", "10.20.0.0/16")],
    );
    assert_eq!(a.body, b.body);
    assert_eq!(a.digest, b.digest);
    assert_eq!(
        a.digest,
        hex::encode(sha2::Sha256::digest(a.body.as_bytes()))
    );
    let c = render(EnvClass::Test, &[("az_count", "3")]);
    assert_ne!(a.digest, c.digest);
}

#[test]
fn bad_context_and_core_accounts_are_refused() {
    let mut bad = ctx(EnvClass::Dev);
    bad.name = "Payments Dev".into();
    bad.region = "eu-west".into();
    let errors = network()
        .render(&bad, &BTreeMap::new())
        .err()
        .unwrap_or_default();
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["name", "region"]);
    let core = network()
        .render(&ctx(EnvClass::Core), &BTreeMap::new())
        .err()
        .unwrap_or_default();
    assert!(core.iter().any(|e| e.field == "env_class"));
    assert!(
        core.iter()
            .any(|e| e.field == "vpc_cidr" && e.message.contains("required"))
    );
}

#[test]
fn environment_names_are_checked() {
    use crate::catalog::render::check_env_name;
    assert!(check_env_name("core").is_ok());
    assert!(check_env_name("payments-api2").is_ok());
    for bad in [
        "",
        "a",
        "Core",
        "1core",
        "core-",
        "has space",
        &"x".repeat(32),
    ] {
        assert!(check_env_name(bad).is_err(), "{bad}");
    }
}
