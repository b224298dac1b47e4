"""Give AWS::EC2::RouteTable and SubnetRouteTableAssociation a CloudFormation delete (stock bug 2).

Real CloudFormation deletes the association, then the route table (its routes go with it), then
the VPC. Stock moto 5.2.5 has no CloudFormation delete for either, so DeleteStack of a stack with
a route table leaves the table (and its subnet associations) behind, then fails deleting the VPC
with DependencyViolation. This adds both deletes, idempotent as CloudFormation's are.
"""

from __future__ import annotations

from ..proof import ProofContext, delete_ok, deploy_ok, require

NAME = "route_table_delete"

VPC_TEMPLATE = {
    "AWSTemplateFormatVersion": "2010-09-09",
    "Description": "emulator proof: VPC, subnet, route table",
    "Resources": {
        "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.20.0.0/16"}},
        "Subnet": {
            "Type": "AWS::EC2::Subnet",
            "Properties": {"VpcId": {"Ref": "Vpc"}, "CidrBlock": "10.20.1.0/24", "AvailabilityZone": "us-east-1a"},
        },
        "Igw": {"Type": "AWS::EC2::InternetGateway", "Properties": {}},
        "IgwAttach": {
            "Type": "AWS::EC2::VPCGatewayAttachment",
            "Properties": {"VpcId": {"Ref": "Vpc"}, "InternetGatewayId": {"Ref": "Igw"}},
        },
        "RouteTable": {"Type": "AWS::EC2::RouteTable", "Properties": {"VpcId": {"Ref": "Vpc"}}},
        "DefaultRoute": {
            "Type": "AWS::EC2::Route",
            "DependsOn": "IgwAttach",
            "Properties": {"RouteTableId": {"Ref": "RouteTable"}, "DestinationCidrBlock": "0.0.0.0/0", "GatewayId": {"Ref": "Igw"}},
        },
        "Assoc": {
            "Type": "AWS::EC2::SubnetRouteTableAssociation",
            "Properties": {"SubnetId": {"Ref": "Subnet"}, "RouteTableId": {"Ref": "RouteTable"}},
        },
    },
    "Outputs": {"VpcId": {"Value": {"Ref": "Vpc"}}, "RouteTableId": {"Value": {"Ref": "RouteTable"}}},
}


def apply() -> None:
    from moto.ec2.exceptions import InvalidAssociationIdError, InvalidRouteTableIdError
    from moto.ec2.models import ec2_backends
    from moto.ec2.models.route_tables import RouteTable
    from moto.ec2.models.subnets import SubnetRouteTableAssociation

    def route_table_delete(self: RouteTable, account_id: str, region_name: str) -> None:
        backend = ec2_backends[account_id][region_name]
        # Associations a template did not declare (or whose delete already ran) must not block.
        for association_id in list(self._associations):
            try:
                backend.disassociate_route_table(association_id)
            except InvalidAssociationIdError:
                pass
        try:
            backend.delete_route_table(self.id)
        except InvalidRouteTableIdError:
            pass  # already gone: deleting is idempotent, as in CloudFormation

    def association_delete(self: SubnetRouteTableAssociation, account_id: str, region_name: str) -> None:
        try:
            ec2_backends[account_id][region_name].disassociate_route_table(self.id)
        except InvalidAssociationIdError:
            pass

    RouteTable.delete = route_table_delete
    SubnetRouteTableAssociation.delete = association_delete


def prove(ctx: ProofContext) -> None:
    cfn, ec2 = ctx.client("cloudformation", "999999999999"), ctx.client("ec2", "999999999999")
    stack, out = deploy_ok(cfn, VPC_TEMPLATE, "VPC + route table stack")
    require(len(ec2.describe_route_tables(RouteTableIds=[out["RouteTableId"]])["RouteTables"]) == 1, "route table not created")
    delete_ok(cfn, stack, "a stack with a route table")
    require(not ec2.describe_vpcs(Filters=[{"Name": "vpc-id", "Values": [out["VpcId"]]}])["Vpcs"], "the VPC leaked after DeleteStack")
    require(
        not ec2.describe_route_tables(Filters=[{"Name": "route-table-id", "Values": [out["RouteTableId"]]}])["RouteTables"],
        "the route table leaked after DeleteStack",
    )
