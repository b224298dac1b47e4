"""The Ref and GetAtt attributes moto's own models lack, for the types the blueprints use.

Real CloudFormation resolves, among others: SecurityGroup VpcId; SecurityGroupIngress Ref/Id (the
rule id); VPCEndpoint Id, DnsEntries, NetworkInterfaceIds; SNS Topic TopicArn; ELBv2 LoadBalancer
LoadBalancerArn, CanonicalHostedZoneID, LoadBalancerFullName, SecurityGroups; TargetGroup
TargetGroupArn, TargetGroupFullName, TargetGroupName, LoadBalancerArns; Listener ListenerArn; KMS
Key KeyId; SQS Queue QueueUrl; and gives a Logs LogGroup's Arn with the `:*` suffix (RDS's are in
cfn_rds). Stock moto 5.2.5 fails the stack for most (`'FakeTargetGroup' object has no attribute
'get_cfn_attribute'`, or a "does not support attribute" error that, in an output, also made
DescribeStacks answer 500), silently outputs the literal `{'Fn::GetAtt': [...]}` for
CanonicalHostedZoneID and LoadBalancerFullName, gives a Python object's repr as the Ref of a
SecurityGroupIngress (so DescribeStackResources has no physical id), and a LogGroup Arn without
`:*`. This adds those attributes, computed from moto's objects.
"""

from __future__ import annotations

from typing import Any

from ..cfn_types import add_attributes, hex_id, set_ref
from ..proof import ProofContext, delete_ok, deploy_ok, require

NAME = "cfn_model_attributes"
# What this patch does to each resource type (emulator.probe_table reads it for README.md).
TYPES = {
    'AWS::EC2::SecurityGroup': 'adds GetAtt VpcId',
    'AWS::EC2::SecurityGroupIngress': 'Ref/Id: a rule id `sgr-...` (was an object repr)',
    'AWS::EC2::VPCEndpoint': 'adds GetAtt Id, DnsEntries, NetworkInterfaceIds, CreationTimestamp',
    'AWS::SNS::Topic': 'adds GetAtt TopicArn',
    'AWS::ElasticLoadBalancingV2::LoadBalancer': 'adds GetAtt LoadBalancerArn, CanonicalHostedZoneID, LoadBalancerFullName, SecurityGroups',
    'AWS::ElasticLoadBalancingV2::TargetGroup': 'adds GetAtt TargetGroupArn, TargetGroupFullName, TargetGroupName, LoadBalancerArns',
    'AWS::ElasticLoadBalancingV2::Listener': 'adds GetAtt ListenerArn',
    'AWS::KMS::Key': 'adds GetAtt KeyId',
    'AWS::SQS::Queue': 'adds GetAtt QueueUrl',
    'AWS::Logs::LogGroup': 'GetAtt Arn ends `:*`, as in CloudFormation',
}

# ELBv2 (ALB/NLB) hosted zone ids of the regions the portal deploys to.
ELB_ZONES = {"us-east-1": "Z35SXDOTRQ7X7K", "eu-west-1": "Z32O12XQLNTSW2", "eu-west-2": "ZHURV8PSTC4K8"}


def _rule_id(ingress: Any) -> str:
    if "_stackgate_id" not in ingress.__dict__:
        ingress._stackgate_id = hex_id("sgr")
    return ingress._stackgate_id


def _dns_entries(endpoint: Any) -> list[str]:
    """`hostedzone:dnsname` strings, as CloudFormation gives them."""
    entries = endpoint.dns_entries or []
    entries = [entries] if isinstance(entries, dict) else entries
    return [f"{e['hosted_zone_id']}:{e['dns_name']}" for e in entries if isinstance(e, dict)]


def apply() -> None:
    from moto.ec2.models.security_groups import SecurityGroup, SecurityGroupIngress
    from moto.ec2.models.vpcs import VPCEndPoint
    from moto.elbv2.models import FakeListener, FakeLoadBalancer, FakeTargetGroup
    from moto.kms.models import Key
    from moto.logs.models import LogGroup
    from moto.sns.models import Topic
    from moto.sqs.models import Queue

    add_attributes(SecurityGroup, {"VpcId": lambda sg: sg.vpc_id})
    set_ref(SecurityGroupIngress, _rule_id)
    add_attributes(SecurityGroupIngress, {"Id": _rule_id})
    add_attributes(VPCEndPoint, {
        "Id": lambda e: e.id,
        "DnsEntries": _dns_entries,
        "NetworkInterfaceIds": lambda e: list(e.network_interface_ids),
        "CreationTimestamp": lambda e: e.creation_timestamp.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
    })
    add_attributes(Topic, {"TopicArn": lambda t: t.arn})
    add_attributes(FakeLoadBalancer, {
        "LoadBalancerArn": lambda lb: lb.arn,
        "CanonicalHostedZoneID": lambda lb: ELB_ZONES.get(lb.arn.split(":")[3], "Z2IFOLAFXWLO4F"),
        "LoadBalancerFullName": lambda lb: lb.arn.split(":loadbalancer/", 1)[1],
        "SecurityGroups": lambda lb: list(lb.security_groups or []),
    })
    add_attributes(FakeTargetGroup, {
        "TargetGroupArn": lambda tg: tg.arn,
        "TargetGroupFullName": lambda tg: tg.arn.split(":", 5)[5],
        "TargetGroupName": lambda tg: tg.name,
        "LoadBalancerArns": lambda tg: list(tg.load_balancer_arns),
    })
    add_attributes(FakeListener, {"ListenerArn": lambda listener: listener.arn})
    add_attributes(Key, {"KeyId": lambda key: key.id})
    add_attributes(Queue, {"QueueUrl": lambda q: q.physical_resource_id})
    add_attributes(LogGroup, {"Arn": lambda g: f"{g.arn}:*"})


def prove(ctx: ProofContext) -> None:
    account, region = "999999999999", "us-east-1"
    cfn = ctx.client("cloudformation", account, region)
    ref, att = (lambda r: {"Ref": r}), (lambda r, a: {"Fn::GetAtt": [r, a]})
    subnets = [{"Ref": "SubnetA"}, {"Ref": "SubnetB"}]
    template = {
        "Resources": {
            "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.23.0.0/16"}},
            "SubnetA": {"Type": "AWS::EC2::Subnet", "Properties": {"VpcId": ref("Vpc"), "CidrBlock": "10.23.1.0/24", "AvailabilityZone": "us-east-1a"}},
            "SubnetB": {"Type": "AWS::EC2::Subnet", "Properties": {"VpcId": ref("Vpc"), "CidrBlock": "10.23.2.0/24", "AvailabilityZone": "us-east-1b"}},
            "Sg": {"Type": "AWS::EC2::SecurityGroup", "Properties": {"GroupDescription": "proof", "VpcId": ref("Vpc")}},
            "Ingress": {"Type": "AWS::EC2::SecurityGroupIngress", "Properties": {"GroupId": ref("Sg"), "IpProtocol": "tcp",
                        "FromPort": 443, "ToPort": 443, "CidrIp": "10.23.0.0/16"}},
            "Endpoint": {"Type": "AWS::EC2::VPCEndpoint", "Properties": {"VpcEndpointType": "Interface", "VpcId": ref("Vpc"),
                         "ServiceName": "com.amazonaws.us-east-1.ssm", "SubnetIds": subnets, "SecurityGroupIds": [ref("Sg")]}},
            "Topic": {"Type": "AWS::SNS::Topic", "Properties": {}},
            "Alb": {"Type": "AWS::ElasticLoadBalancingV2::LoadBalancer", "Properties": {"Subnets": subnets, "SecurityGroups": [ref("Sg")]}},
            "Tg": {"Type": "AWS::ElasticLoadBalancingV2::TargetGroup", "Properties": {"Port": 80, "Protocol": "HTTP", "VpcId": ref("Vpc")}},
            "Listener": {"Type": "AWS::ElasticLoadBalancingV2::Listener", "Properties": {"LoadBalancerArn": ref("Alb"), "Port": 80,
                         "Protocol": "HTTP", "DefaultActions": [{"Type": "forward", "TargetGroupArn": ref("Tg")}]}},
            "Key": {"Type": "AWS::KMS::Key", "Properties": {}},
            "Queue": {"Type": "AWS::SQS::Queue", "Properties": {}},
            "Logs": {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": "/proof/attributes"}},
        },
        "Outputs": {k: {"Value": v} for k, v in {
            "VpcId": ref("Vpc"), "SgVpcId": att("Sg", "VpcId"), "IngressRef": ref("Ingress"), "IngressId": att("Ingress", "Id"),
            "EndpointId": att("Endpoint", "Id"), "EndpointDns": {"Fn::Select": [0, att("Endpoint", "DnsEntries")]},
            "TopicRef": ref("Topic"), "TopicArn": att("Topic", "TopicArn"),
            "AlbRef": ref("Alb"), "AlbArn": att("Alb", "LoadBalancerArn"), "AlbZone": att("Alb", "CanonicalHostedZoneID"),
            "AlbFullName": att("Alb", "LoadBalancerFullName"), "TgRef": ref("Tg"), "TgArn": att("Tg", "TargetGroupArn"),
            "TgFullName": att("Tg", "TargetGroupFullName"), "ListenerRef": ref("Listener"), "ListenerArn": att("Listener", "ListenerArn"),
            "KeyRef": ref("Key"), "KeyId": att("Key", "KeyId"), "QueueRef": ref("Queue"), "QueueUrl": att("Queue", "QueueUrl"),
            "LogsArn": att("Logs", "Arn"),
        }.items()},
    }
    stack, out = deploy_ok(cfn, template, "a stack reading the attributes")
    same = [("SgVpcId", "VpcId"), ("IngressId", "IngressRef"), ("TopicArn", "TopicRef"), ("AlbArn", "AlbRef"), ("TgArn", "TgRef"),
            ("ListenerArn", "ListenerRef"), ("KeyId", "KeyRef"), ("QueueUrl", "QueueRef")]
    for a, b in same:
        require(out.get(a) and out.get(a) == out.get(b), f"GetAtt {a} is {out.get(a)!r}, not {out.get(b)!r}")
    require(out["IngressRef"].startswith("sgr-") and out["EndpointId"].startswith("vpce-"), f"ids: {out}")
    require(out["EndpointDns"].split(":", 1)[1].startswith(out["EndpointId"]), f"DnsEntries: {out['EndpointDns']}")
    require(out["AlbZone"] == ELB_ZONES[region] and out["AlbRef"].endswith(out["AlbFullName"]) and out["AlbFullName"].startswith("app/"),
            f"ALB zone/full name: {out['AlbZone']} {out['AlbFullName']}")
    require(out["TgFullName"].startswith("targetgroup/") and out["TgRef"].endswith(out["TgFullName"]), f"TG full name {out['TgFullName']}")
    require(out["LogsArn"] == f"arn:aws:logs:{region}:{account}:log-group:/proof/attributes:*", f"LogGroup Arn {out['LogsArn']}")
    listed = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in cfn.describe_stack_resources(StackName=stack)["StackResources"]}
    require(listed.get("Ingress") == out["IngressRef"], f"physical ids {listed}")
    delete_ok(cfn, stack, "the attributes stack")
