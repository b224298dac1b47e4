"""CloudTrail, GuardDuty, Config and Security Hub resources, created in moto's backends.

Real CloudFormation creates: a CloudTrail Trail (Ref: name; GetAtt Arn), started when IsLogging,
refused with "Incorrect S3 bucket policy is detected for bucket" unless the bucket's policy lets
cloudtrail.amazonaws.com write; a GuardDuty Detector (Ref and Id: the detector id; one per account
and region); a Config ConfigurationRecorder, DeliveryChannel (which needs a recorder) and
ConfigRule (Ref: name; GetAtt Arn, ConfigRuleId; an AWS managed rule needs a recorder); a Security
Hub Hub (Ref and ARN: `arn:aws:securityhub:<region>:<account>:hub/default`) and Standard (Ref:
the subscription ARN; needs the hub). Stock moto 5.2.5 has these services but no template model
for any: the stack completes with nothing created, a Ref resolves to nothing and GetAtt fails, in
an output with HTTP 500.

This creates and deletes them through moto's CloudTrail, GuardDuty, Config and Security Hub
backends, with the checks above. moto has no Security Hub standards: a Standard is checked against
the hub and recorded on the backend, not visible through GetEnabledStandards. The recorder is not
started (moto would then refuse to delete the delivery channel first).
"""

from __future__ import annotations

from typing import Any

from ..cfn_types import Created, Request, TypeSpec, call, define_type, tags_dict
from ..proof import ProofContext, delete_ok, deploy_ok, require

NAME = "cfn_account_baseline"
# What this patch does to each resource type (emulator.probe_table reads it for README.md).
TYPES = {
    'AWS::CloudTrail::Trail': "created in moto's CloudTrail backend (bucket policy checked, logging started)",
    'AWS::GuardDuty::Detector': "created in moto's GuardDuty backend",
    'AWS::Config::ConfigurationRecorder': "created in moto's Config backend (not started)",
    'AWS::Config::DeliveryChannel': "created in moto's Config backend",
    'AWS::Config::ConfigRule': "created in moto's Config backend",
    'AWS::SecurityHub::Hub': "created in moto's Security Hub backend",
    'AWS::SecurityHub::Standard': 'checked against the hub and recorded (moto has no standards)',
}


def camel(value: Any) -> Any:
    """CloudFormation's `RecordingGroup: {AllSupported: ..}` in Config's spelling `{allSupported: ..}`."""
    if isinstance(value, dict):
        return {k[:1].lower() + k[1:]: camel(v) for k, v in value.items()}
    return [camel(v) for v in value] if isinstance(value, list) else value


def create_trail(req: Request) -> Created:
    from moto.cloudtrail.exceptions import S3BucketDoesNotExistException
    from moto.cloudtrail.models import cloudtrail_backends
    from moto.s3.models import s3_backends

    p = req.props
    try:
        policy = s3_backends[req.account_id]["aws"].get_bucket(p["S3BucketName"]).policy or b""
    except Exception:
        raise S3BucketDoesNotExistException(f"S3 bucket {p['S3BucketName']} does not exist!") from None
    if b"cloudtrail.amazonaws.com" not in policy:
        from moto.core.exceptions import JsonRESTError

        raise JsonRESTError("InsufficientS3BucketPolicyException", f"Incorrect S3 bucket policy is detected for bucket: {p['S3BucketName']}")
    backend = cloudtrail_backends[req.account_id][req.region]
    name = req.short(128)
    flag = lambda key, default=False: str(p.get(key, default)).lower() == "true"  # noqa: E731
    trail = call(backend.create_trail, name=name, bucket_name=p["S3BucketName"], s3_key_prefix=p.get("S3KeyPrefix"),
                 sns_topic_name=p.get("SnsTopicName"), is_global=flag("IncludeGlobalServiceEvents", True),
                 is_multi_region=flag("IsMultiRegionTrail"), log_validation=flag("EnableLogFileValidation"),
                 is_org_trail=flag("IsOrganizationTrail"), cw_log_group_arn=p.get("CloudWatchLogsLogGroupArn"),
                 cw_role_arn=p.get("CloudWatchLogsRoleArn"), kms_key_id=p.get("KMSKeyId"), tags_list=p.get("Tags") or [])
    if flag("IsLogging"):
        backend.start_logging(name)
    return Created(name, {"Arn": trail.arn, "SnsTopicArn": trail.topic_arn})


def delete_trail(resource: Any) -> None:
    from moto.cloudtrail.models import cloudtrail_backends

    cloudtrail_backends[resource.account_id][resource.region_name].delete_trail(resource.physical_resource_id)


def create_detector(req: Request) -> Created:
    from moto.guardduty.exceptions import GuardDutyException
    from moto.guardduty.models import guardduty_backends

    backend = guardduty_backends[req.account_id][req.region]
    if backend.detectors:
        raise GuardDutyException("BadRequestException", "The request is rejected because a detector already exists for the current account.")
    p = req.props
    detector_id = call(backend.create_detector, enable=str(p.get("Enable", True)).lower() == "true",
                       finding_publishing_frequency=p.get("FindingPublishingFrequency", "SIX_HOURS"), data_sources=p.get("DataSources") or {},
                       tags=tags_dict(p.get("Tags")), features=p.get("Features") or [])
    return Created(detector_id, {"Id": detector_id})


def delete_detector(resource: Any) -> None:
    from moto.guardduty.models import guardduty_backends

    guardduty_backends[resource.account_id][resource.region_name].delete_detector(resource.physical_resource_id)


def _config(account_id: str, region: str) -> Any:
    from moto.config.models import config_backends

    return config_backends[account_id][region]


def create_recorder(req: Request) -> Created:
    name = req.short(256)
    recorder = {"name": name, "roleARN": req.props["RoleARN"]}
    if req.props.get("RecordingGroup"):
        recorder["recordingGroup"] = camel(req.props["RecordingGroup"])
    _config(req.account_id, req.region).put_configuration_recorder(recorder)
    return Created(name)


def create_channel(req: Request) -> Created:
    p = req.props
    channel = {"name": req.short(256), **camel({k: v for k, v in p.items() if k != "Name"})}
    if "snsTopicARN" not in channel and p.get("SnsTopicARN"):
        channel["snsTopicARN"] = p["SnsTopicARN"]
    _config(req.account_id, req.region).put_delivery_channel(channel)
    return Created(channel["name"])


def create_rule(req: Request) -> Created:
    import json

    from moto.config.exceptions import NoAvailableConfigurationRecorderException

    p = req.props
    backend = _config(req.account_id, req.region)
    if (p.get("Source") or {}).get("Owner") == "AWS" and not backend.recorders:
        raise NoAvailableConfigurationRecorderException()
    name = req.short(128)
    rule = {k: v for k, v in p.items() if k not in ("Compliance", "EvaluationModes")}
    rule["ConfigRuleName"] = name
    if isinstance(rule.get("InputParameters"), dict):
        rule["InputParameters"] = json.dumps(rule["InputParameters"])
    backend.put_config_rule(rule)
    created = backend.config_rules[name]
    return Created(name, {"Arn": created.config_rule_arn, "ConfigRuleId": created.config_rule_id})


def config_delete(method: str) -> Any:
    def delete(resource: Any) -> None:
        getattr(_config(resource.account_id, resource.region_name), method)(resource.physical_resource_id)

    return delete


def _hub(account_id: str, region: str) -> Any:
    from moto.securityhub.models import securityhub_backends

    return securityhub_backends[account_id][region]


def create_hub(req: Request) -> Created:
    hub = _hub(req.account_id, req.region)
    hub.enable_security_hub(enable_default_standards=str(req.props.get("EnableDefaultStandards", True)).lower() == "true",
                            tags=req.props.get("Tags") or {})
    described = hub.describe_hub()
    return Created(described["HubArn"], {"ARN": described["HubArn"], "SubscribedAt": described["SubscribedAt"],
                                         "AutoEnableControls": req.props.get("AutoEnableControls", True)})


def create_standard(req: Request) -> Created:
    hub = _hub(req.account_id, req.region)
    hub.describe_hub()  # InvalidAccessException "Account is not subscribed to AWS Security Hub" without one
    path = req.props["StandardsArn"].split(":", 5)[5].split("/", 1)[1]
    arn = f"arn:aws:securityhub:{req.region}:{req.account_id}:subscription/{path}"
    hub.__dict__.setdefault("stackgate_standards", {})[arn] = req.props["StandardsArn"]
    return Created(arn, {"StandardsSubscriptionArn": arn})


def delete_standard(resource: Any) -> None:
    _hub(resource.account_id, resource.region_name).__dict__.get("stackgate_standards", {}).pop(resource.physical_resource_id, None)


def apply() -> None:
    define_type(TypeSpec("AWS::CloudTrail::Trail", create_trail, delete_trail, ("Arn", "SnsTopicArn"), "TrailName"))
    define_type(TypeSpec("AWS::GuardDuty::Detector", create_detector, delete_detector, ("Id",)))
    define_type(TypeSpec("AWS::Config::ConfigurationRecorder", create_recorder, config_delete("delete_configuration_recorder"), (), "Name"))
    define_type(TypeSpec("AWS::Config::DeliveryChannel", create_channel, config_delete("delete_delivery_channel"), (), "Name"))
    define_type(TypeSpec("AWS::Config::ConfigRule", create_rule, config_delete("delete_config_rule"), ("Arn", "ConfigRuleId"), "ConfigRuleName"))
    define_type(TypeSpec("AWS::SecurityHub::Hub", create_hub, lambda r: _hub(r.account_id, r.region_name).disable_security_hub(),
                         ("ARN", "SubscribedAt", "AutoEnableControls")))
    define_type(TypeSpec("AWS::SecurityHub::Standard", create_standard, delete_standard, ("StandardsSubscriptionArn",)))


def prove(ctx: ProofContext) -> None:
    account = "999999999999"
    cfn = ctx.client("cloudformation", account)
    ref, att = (lambda r: {"Ref": r}), (lambda r, a: {"Fn::GetAtt": [r, a]})
    trusting = lambda service: {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": service},  # noqa: E731
                                                                        "Action": "sts:AssumeRole"}]}
    write = {"Effect": "Allow", "Principal": {"Service": ["cloudtrail.amazonaws.com", "config.amazonaws.com"]},
             "Action": "s3:PutObject", "Resource": {"Fn::Sub": "${Logs.Arn}/*"}}
    template = {
        "Resources": {
            "Logs": {"Type": "AWS::S3::Bucket", "Properties": {}},
            "LogsPolicy": {"Type": "AWS::S3::BucketPolicy", "Properties": {"Bucket": ref("Logs"),
                           "PolicyDocument": {"Version": "2012-10-17", "Statement": [write]}}},
            "Trail": {"Type": "AWS::CloudTrail::Trail", "DependsOn": "LogsPolicy", "Properties": {
                "S3BucketName": ref("Logs"), "IsLogging": True, "IsMultiRegionTrail": True, "EnableLogFileValidation": True}},
            "Detector": {"Type": "AWS::GuardDuty::Detector", "Properties": {"Enable": True}},
            "ConfigRole": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": trusting("config.amazonaws.com")}},
            "Recorder": {"Type": "AWS::Config::ConfigurationRecorder", "Properties": {"RoleARN": att("ConfigRole", "Arn"),
                         "RecordingGroup": {"AllSupported": True, "IncludeGlobalResourceTypes": True}}},
            "Channel": {"Type": "AWS::Config::DeliveryChannel", "DependsOn": "Recorder", "Properties": {"S3BucketName": ref("Logs")}},
            "Rule": {"Type": "AWS::Config::ConfigRule", "DependsOn": "Recorder", "Properties": {
                "Source": {"Owner": "AWS", "SourceIdentifier": "S3_BUCKET_VERSIONING_ENABLED"},
                "Scope": {"ComplianceResourceTypes": ["AWS::S3::Bucket"]}}},
            "Hub": {"Type": "AWS::SecurityHub::Hub", "Properties": {"EnableDefaultStandards": False}},
            "Standard": {"Type": "AWS::SecurityHub::Standard", "DependsOn": "Hub", "Properties": {
                "StandardsArn": "arn:aws:securityhub:us-east-1::standards/aws-foundational-security-best-practices/v/1.0.0"}},
        },
        "Outputs": {k: {"Value": v} for k, v in {
            "Trail": ref("Trail"), "TrailArn": att("Trail", "Arn"), "Detector": ref("Detector"), "Rule": ref("Rule"),
            "Recorder": ref("Recorder"), "Channel": ref("Channel"),
            "RuleArn": att("Rule", "Arn"), "Hub": ref("Hub"), "Standard": ref("Standard")}.items()},
    }
    stack, out = deploy_ok(cfn, template, "a trail, a detector, a Config recorder/channel/rule and a Security Hub standard")
    status = ctx.client("cloudtrail", account).get_trail_status(Name=out["TrailArn"])
    require(status["IsLogging"], "the trail is not logging")
    require(ctx.client("guardduty", account).list_detectors()["DetectorIds"] == [out["Detector"]], "GuardDuty detector missing")
    config = ctx.client("config", account)
    require([r["name"] for r in config.describe_configuration_recorders()["ConfigurationRecorders"]] == [out["Recorder"]]
            and [c["name"] for c in config.describe_delivery_channels()["DeliveryChannels"]] == [out["Channel"]], "Config recorder/channel missing")
    rules = config.describe_config_rules(ConfigRuleNames=[out["Rule"]])["ConfigRules"]
    require(rules and rules[0]["ConfigRuleArn"] == out["RuleArn"], f"Config rule {rules}")
    hub = ctx.client("securityhub", account).describe_hub()
    require(hub["HubArn"] == out["Hub"] == f"arn:aws:securityhub:us-east-1:{account}:hub/default", f"hub {hub}")
    require(out["Standard"] == f"arn:aws:securityhub:us-east-1:{account}:subscription/aws-foundational-security-best-practices/v/1.0.0",
            f"standard subscription {out['Standard']}")
    delete_ok(cfn, stack, "the account-baseline stack")
    require(not ctx.client("guardduty", account).list_detectors()["DetectorIds"], "the detector outlived its stack")
    require(not config.describe_configuration_recorders()["ConfigurationRecorders"], "the recorder outlived its stack")
