"""AWS::EC2::SecurityGroupEgress created for real; Transit Gateway and network-ACL types recorded.

Real CloudFormation adds a SecurityGroupEgress rule to its group (Ref and GetAtt Id: the rule id
`sgr-...`) and revokes it on delete; creates a TransitGatewayAttachment / TransitGatewayVpcAttachment
(Ref and Id `tgw-attach-...`) after checking the VPC and subnets, against a transit gateway that
usually lives in a network account and is shared through RAM; creates NetworkAcl (`acl-...`),
NetworkAclEntry and SubnetNetworkAclAssociation (`aclassoc-...`). Stock moto 5.2.5 has no model
for any of them: the stack completes, but each is missing from DescribeStackResources' logical
ids, a Ref to it resolves to nothing (the referring property silently disappears) and a GetAtt
fails, in an output with HTTP 500 from DescribeStacks.

This creates the egress rule in moto's EC2 backend and revokes it on delete. The other types
become recorded placeholders: their VPC and subnets must exist in the account (as AWS checks), they
get plausible ids and attributes, and are listed like any resource, but moto's EC2 state does not
change (no attachment exists, subnets keep the default ACL): assert on them through the template.
"""

from __future__ import annotations

from typing import Any

from ..cfn_types import Created, Request, TypeSpec, define_type, hex_id
from ..proof import ProofContext, delete_ok, deploy_ok, require

NAME = "cfn_ec2_network"
# What this patch does to each resource type (emulator.probe_table reads it for README.md).
TYPES = {
    'AWS::EC2::SecurityGroupEgress': "created in moto's EC2 backend (Ref/Id: the rule id)",
    'AWS::EC2::TransitGatewayAttachment': 'recorded placeholder `tgw-attach-...` (VPC and subnets checked)',
    'AWS::EC2::TransitGatewayVpcAttachment': 'recorded placeholder `tgw-attach-...` (VPC and subnets checked)',
    'AWS::EC2::NetworkAcl': 'recorded placeholder `acl-...` (VPC checked)',
    'AWS::EC2::NetworkAclEntry': 'recorded placeholder',
    'AWS::EC2::SubnetNetworkAclAssociation': 'recorded placeholder `aclassoc-...` (subnet checked)',
}


def _ec2(account_id: str, region: str) -> Any:
    from moto.ec2.models import ec2_backends

    return ec2_backends[account_id][region]


def _egress_args(props: dict[str, Any]) -> dict[str, Any]:
    ranges = [{"CidrIp": props["CidrIp"], **({"Description": props["Description"]} if props.get("Description") else {})}] if props.get("CidrIp") else []
    if props.get("CidrIpv6"):
        ranges.append({"CidrIpv6": props["CidrIpv6"]})
    return {
        "group_name_or_id": props["GroupId"], "ip_protocol": str(props["IpProtocol"]),
        "from_port": str(props.get("FromPort", -1)), "to_port": str(props.get("ToPort", -1)), "ip_ranges": ranges,
        "source_groups": [{"GroupId": props["DestinationSecurityGroupId"]}] if props.get("DestinationSecurityGroupId") else [],
        "prefix_list_ids": [{"PrefixListId": props["DestinationPrefixListId"]}] if props.get("DestinationPrefixListId") else [],
    }


def create_egress(req: Request) -> Created:
    rules, _ = _ec2(req.account_id, req.region).authorize_security_group_egress(**_egress_args(req.props))
    rule_id = rules[0].id if rules else hex_id("sgr")
    return Created(rule_id, {"Id": rule_id})


def delete_egress(resource: Any) -> None:
    try:
        _ec2(resource.account_id, resource.region_name).revoke_security_group_egress(**_egress_args(resource.props))
    except Exception:  # the group went first, or the rule was revoked by hand: gone either way
        pass


def create_attachment(req: Request) -> Created:
    ec2 = _ec2(req.account_id, req.region)
    ec2.get_vpc(req.props["VpcId"])
    for subnet_id in req.props.get("SubnetIds") or []:
        ec2.get_subnet(subnet_id)
    attachment_id = hex_id("tgw-attach")
    return Created(attachment_id, {"Id": attachment_id})


def create_acl(req: Request) -> Created:
    _ec2(req.account_id, req.region).get_vpc(req.props["VpcId"])
    acl_id = hex_id("acl")
    return Created(acl_id, {"Id": acl_id})


def create_acl_association(req: Request) -> Created:
    _ec2(req.account_id, req.region).get_subnet(req.props["SubnetId"])
    association_id = hex_id("aclassoc")
    return Created(association_id, {"AssociationId": association_id})


def apply() -> None:
    define_type(TypeSpec("AWS::EC2::SecurityGroupEgress", create_egress, delete_egress, ("Id",)))
    for cfn_type in ("AWS::EC2::TransitGatewayAttachment", "AWS::EC2::TransitGatewayVpcAttachment"):
        define_type(TypeSpec(cfn_type, create_attachment, None, ("Id",)))
    define_type(TypeSpec("AWS::EC2::NetworkAcl", create_acl, None, ("Id",)))
    define_type(TypeSpec("AWS::EC2::NetworkAclEntry", lambda req: Created(req.name), None, ("Id",)))
    define_type(TypeSpec("AWS::EC2::SubnetNetworkAclAssociation", create_acl_association, None, ("AssociationId",)))


def prove(ctx: ProofContext) -> None:
    cfn, ec2 = ctx.client("cloudformation", "999999999999"), ctx.client("ec2", "999999999999")
    ref = lambda r: {"Ref": r}  # noqa: E731
    template = {
        "Resources": {
            "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.26.0.0/16"}},
            "Subnet": {"Type": "AWS::EC2::Subnet", "Properties": {"VpcId": ref("Vpc"), "CidrBlock": "10.26.1.0/24", "AvailabilityZone": "us-east-1a"}},
            "Sg": {"Type": "AWS::EC2::SecurityGroup", "Properties": {"GroupDescription": "proof", "VpcId": ref("Vpc")}},
            "Egress": {"Type": "AWS::EC2::SecurityGroupEgress", "Properties": {"GroupId": ref("Sg"), "IpProtocol": "tcp",
                       "FromPort": 5432, "ToPort": 5432, "CidrIp": "10.26.0.0/16", "Description": "db"}},
            "Attachment": {"Type": "AWS::EC2::TransitGatewayVpcAttachment", "Properties": {
                "TransitGatewayId": "tgw-0a1b2c3d4e5f60718", "VpcId": ref("Vpc"), "SubnetIds": [ref("Subnet")]}},
            "Acl": {"Type": "AWS::EC2::NetworkAcl", "Properties": {"VpcId": ref("Vpc")}},
            "AclAssoc": {"Type": "AWS::EC2::SubnetNetworkAclAssociation", "Properties": {"SubnetId": ref("Subnet"), "NetworkAclId": ref("Acl")}},
        },
        "Outputs": {"Sg": {"Value": ref("Sg")}, "Egress": {"Value": ref("Egress")}, "EgressId": {"Value": {"Fn::GetAtt": ["Egress", "Id"]}},
                    "Attachment": {"Value": {"Fn::GetAtt": ["Attachment", "Id"]}}, "Acl": {"Value": ref("Acl")}},
    }
    stack, out = deploy_ok(cfn, template, "an egress rule, a TGW attachment and a network ACL")
    rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [out["Sg"]]}])["SecurityGroupRules"]
    mine = [r for r in rules if r.get("IsEgress") and r.get("FromPort") == 5432]
    require(mine and mine[0]["SecurityGroupRuleId"] == out["Egress"] == out["EgressId"], f"egress rule {out.get('Egress')} vs {mine}")
    require(out["Attachment"].startswith("tgw-attach-") and out["Acl"].startswith("acl-"), f"placeholder ids {out}")
    listed = {r["LogicalResourceId"]: r for r in cfn.describe_stack_resources(StackName=stack)["StackResources"]}
    require(listed.get("AclAssoc", {}).get("PhysicalResourceId", "").startswith("aclassoc-"), f"listing {sorted(listed)}")
    delete_ok(cfn, stack, "the network stack")
