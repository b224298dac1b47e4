"""AWS::IAM::ManagedPolicy is detached and deleted with its stack, and has PolicyArn / PolicyId.

Real CloudFormation deletes a managed policy by detaching it from the roles, users and groups it
names and deleting it; its Ref is the ARN, GetAtt PolicyArn and PolicyId resolve. Stock moto 5.2.5
has no delete for it: the policy stays attached, so deleting the role it names fails with
"DeleteConflict: Cannot delete entity, must detach all policies first" and the stack ends
DELETE_FAILED (or, when a GetAtt PolicyArn fails the create, ROLLBACK_FAILED), and the policy
leaks. This adds the delete (detach everywhere, then DeletePolicy) and the two attributes.
"""

from __future__ import annotations

from ..cfn_types import add_attributes
from ..proof import ProofContext, delete_ok, deploy_ok, require

NAME = "cfn_iam_managed_policy"
# What this patch does to each resource type (emulator.probe_table reads it for README.md).
TYPES = {
    'AWS::IAM::ManagedPolicy': 'delete detaches and deletes; adds PolicyArn, PolicyId',
}


def apply() -> None:
    from moto.iam.models import ManagedPolicy, iam_backends

    def delete(self: ManagedPolicy, account_id: str, region_name: str) -> None:
        backend = iam_backends[account_id][self.partition]
        for holder in [*backend.roles.values(), *backend.users.values(), *backend.groups.values()]:
            if self.arn in holder.managed_policies:
                self.detach_from(holder)
        if self.arn in backend.managed_policies:
            backend.delete_policy(self.arn)

    ManagedPolicy.delete = delete
    add_attributes(ManagedPolicy, {"PolicyArn": lambda p: p.arn, "PolicyId": lambda p: p.id})


def prove(ctx: ProofContext) -> None:
    account = "999999999999"
    cfn, iam = ctx.client("cloudformation", account), ctx.client("iam", account)
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    template = {
        "Resources": {
            "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": trust}},
            "Policy": {"Type": "AWS::IAM::ManagedPolicy", "Properties": {"Roles": [{"Ref": "Role"}], "PolicyDocument": {
                "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "cloudformation:DescribeStacks", "Resource": "*"}]}}},
        },
        "Outputs": {"Ref": {"Value": {"Ref": "Policy"}}, "Arn": {"Value": {"Fn::GetAtt": ["Policy", "PolicyArn"]}},
                    "Id": {"Value": {"Fn::GetAtt": ["Policy", "PolicyId"]}}, "Role": {"Value": {"Ref": "Role"}}},
    }
    stack, out = deploy_ok(cfn, template, "a role with a managed policy")
    attached = [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=out["Role"])["AttachedPolicies"]]
    require(out["Ref"] == out["Arn"] and attached == [out["Arn"]] and out["Id"], f"policy {out}, attached {attached}")
    delete_ok(cfn, stack, "the role and managed policy stack")
    require(out["Arn"] not in [p["Arn"] for p in iam.list_policies(Scope="Local")["Policies"]], "the managed policy outlived its stack")
