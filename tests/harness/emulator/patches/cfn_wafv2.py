"""AWS::WAFv2::WebACL, WebACLAssociation and LoggingConfiguration, created in moto's WAFv2 backend.

Real CloudFormation creates the web ACL (Ref `name|id|scope`; GetAtt Arn, Id, LabelNamespace
`awswaf:<account>:webacl:<name>:`), associates it with a resource such as an ALB (physical id
`<resource ARN>|<web ACL ARN>`), and puts a logging configuration on it (physical id: the web ACL's
ARN) whose destinations must be named `aws-waf-logs-...`; each is undone on delete. Stock moto
5.2.5 has a WAFv2 service but no CloudFormation model for any of the three: the stack completes
with nothing created, the resources are listed without logical ids, a Ref to the web ACL resolves
to nothing, and GetAtt Arn (which the association needs) fails, in an output with HTTP 500.

This creates and deletes all three through moto's WAFv2 backend (CLOUDFRONT scope in its global
region), so GetWebACL, GetWebACLForResource and GetLoggingConfiguration answer as in AWS.
"""

from __future__ import annotations

import re
from typing import Any

from ..cfn_types import Created, Request, TypeSpec, call, define_type
from ..proof import ProofContext, delete_ok, deploy_ok, require

NAME = "cfn_wafv2"
# What this patch does to each resource type (emulator.probe_table reads it for README.md).
TYPES = {
    'AWS::WAFv2::WebACL': "created in moto's WAFv2 backend (Ref name|id|scope, Arn, Id, LabelNamespace)",
    'AWS::WAFv2::WebACLAssociation': "created in moto's WAFv2 backend",
    'AWS::WAFv2::LoggingConfiguration': "created in moto's WAFv2 backend (destinations named aws-waf-logs-...)",
}


def _backend(account_id: str, region: str, scope_or_arn: str) -> Any:
    from moto.wafv2.models import GLOBAL_REGION, wafv2_backends

    if scope_or_arn.startswith("arn:"):
        global_scope = scope_or_arn.split(":")[5].startswith("global")
        region = scope_or_arn.split(":")[3] if not global_scope else region
    else:
        global_scope = scope_or_arn == "CLOUDFRONT"
    return wafv2_backends[account_id][GLOBAL_REGION if global_scope else region]


def create_acl(req: Request) -> Created:
    p = req.props
    name = req.short(128)
    acl = call(_backend(req.account_id, req.region, p["Scope"]).create_web_acl, name=name, visibility_config=p["VisibilityConfig"],
               default_action=p["DefaultAction"], scope=p["Scope"], description=p.get("Description"), tags=p.get("Tags") or [],
               rules=p.get("Rules") or [], association_config=p.get("AssociationConfig"), captcha_config=p.get("CaptchaConfig"),
               challenge_config=p.get("ChallengeConfig"), custom_response_bodies=p.get("CustomResponseBodies"),
               token_domains=p.get("TokenDomains"))
    return Created(f"{name}|{acl.id}|{p['Scope']}", {"Arn": acl.arn, "Id": acl.id,
                                                     "LabelNamespace": f"awswaf:{req.account_id}:webacl:{name}:"}, acl.arn)


def delete_acl(resource: Any) -> None:
    name, acl_id, scope = resource.physical_resource_id.split("|")
    backend = _backend(resource.account_id, resource.region_name, scope)
    acl = backend.wacls.get(resource.state)
    if acl is not None:
        backend.delete_web_acl(name, scope, acl_id, acl.lock_token)


def create_association(req: Request) -> Created:
    resource_arn, acl_arn = req.props["ResourceArn"], req.props["WebACLArn"]
    _backend(req.account_id, req.region, acl_arn).associate_web_acl(acl_arn, resource_arn)
    return Created(f"{resource_arn}|{acl_arn}")


def delete_association(resource: Any) -> None:
    resource_arn, acl_arn = resource.physical_resource_id.split("|")
    _backend(resource.account_id, resource.region_name, acl_arn).disassociate_web_acl(resource_arn)


def create_logging(req: Request) -> Created:
    from moto.wafv2.exceptions import WAFv2ClientError

    acl_arn, destinations = req.props["ResourceArn"], req.props["LogDestinationConfigs"]
    for destination in destinations:
        if not re.search(r"[:/]aws-waf-logs-[^:/]*(:\*)?$", destination):
            raise WAFv2ClientError("WAFInvalidParameterException", f"Error reason: The log destination {destination} is not "
                                   "named aws-waf-logs-..., field: LOG_DESTINATION")
    call(_backend(req.account_id, req.region, acl_arn).put_logging_configuration, arn=acl_arn, log_destination_configs=destinations,
         redacted_fields=req.props.get("RedactedFields"), managed_gy_firewall_manager=False, logging_filter=req.props.get("LoggingFilter"))
    return Created(acl_arn, {"ManagedByFirewallManager": False})


def delete_logging(resource: Any) -> None:
    backend = _backend(resource.account_id, resource.region_name, resource.physical_resource_id)
    if resource.physical_resource_id in backend.logging_configurations:
        backend.delete_logging_configuration(resource.physical_resource_id)


def apply() -> None:
    define_type(TypeSpec("AWS::WAFv2::WebACL", create_acl, delete_acl, ("Arn", "Id", "LabelNamespace"), "Name"))
    define_type(TypeSpec("AWS::WAFv2::WebACLAssociation", create_association, delete_association))
    define_type(TypeSpec("AWS::WAFv2::LoggingConfiguration", create_logging, delete_logging, ("ManagedByFirewallManager",)))


def prove(ctx: ProofContext) -> None:
    account, region = "999999999999", "us-east-1"
    cfn, waf = ctx.client("cloudformation", account, region), ctx.client("wafv2", account, region)
    ref, att = (lambda r: {"Ref": r}), (lambda r, a: {"Fn::GetAtt": [r, a]})
    visibility = {"SampledRequestsEnabled": True, "CloudWatchMetricsEnabled": True, "MetricName": "proof"}
    template = {
        "Resources": {
            "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.27.0.0/16"}},
            "SubnetA": {"Type": "AWS::EC2::Subnet", "Properties": {"VpcId": ref("Vpc"), "CidrBlock": "10.27.1.0/24", "AvailabilityZone": "us-east-1a"}},
            "SubnetB": {"Type": "AWS::EC2::Subnet", "Properties": {"VpcId": ref("Vpc"), "CidrBlock": "10.27.2.0/24", "AvailabilityZone": "us-east-1b"}},
            "Alb": {"Type": "AWS::ElasticLoadBalancingV2::LoadBalancer", "Properties": {"Subnets": [ref("SubnetA"), ref("SubnetB")]}},
            "Acl": {"Type": "AWS::WAFv2::WebACL", "Properties": {"Name": "proof-acl", "Scope": "REGIONAL", "DefaultAction": {"Allow": {}},
                    "VisibilityConfig": visibility, "Rules": [{"Name": "common", "Priority": 0, "OverrideAction": {"None": {}},
                    "Statement": {"ManagedRuleGroupStatement": {"VendorName": "AWS", "Name": "AWSManagedRulesCommonRuleSet"}},
                    "VisibilityConfig": visibility}]}},
            "Association": {"Type": "AWS::WAFv2::WebACLAssociation", "Properties": {"ResourceArn": ref("Alb"), "WebACLArn": att("Acl", "Arn")}},
            "WafLogs": {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": "aws-waf-logs-proof"}},
            "Logging": {"Type": "AWS::WAFv2::LoggingConfiguration", "Properties": {"ResourceArn": att("Acl", "Arn"),
                        "LogDestinationConfigs": [{"Fn::Sub": "arn:aws:logs:${AWS::Region}:${AWS::AccountId}:log-group:aws-waf-logs-proof"}]}},
        },
        "Outputs": {"Alb": {"Value": ref("Alb")}, "AclRef": {"Value": ref("Acl")}, "AclArn": {"Value": att("Acl", "Arn")},
                    "AclId": {"Value": att("Acl", "Id")}, "Labels": {"Value": att("Acl", "LabelNamespace")}},
    }
    stack, out = deploy_ok(cfn, template, "a web ACL associated with an ALB, with logging")
    require(out["AclRef"] == f"proof-acl|{out['AclId']}|REGIONAL" and out["Labels"] == f"awswaf:{account}:webacl:proof-acl:",
            f"web ACL Ref/LabelNamespace {out}")
    acl = waf.get_web_acl_for_resource(ResourceArn=out["Alb"]).get("WebACL") or {}
    require(acl.get("ARN") == out["AclArn"], f"GetWebACLForResource gave {acl.get('ARN')}")
    logging = waf.get_logging_configuration(ResourceArn=out["AclArn"])["LoggingConfiguration"]
    require(logging["LogDestinationConfigs"][0].endswith(":log-group:aws-waf-logs-proof"), f"logging {logging}")
    delete_ok(cfn, stack, "the WAF stack")
    require(not waf.list_web_acls(Scope="REGIONAL")["WebACLs"], "the web ACL outlived its stack")
