"""AWS::Organizations::Policy (a service control policy and its targets) in moto's Organizations backend.

Real CloudFormation, in an organization's management account, creates the policy (Ref and Id:
`p-...`; GetAtt Arn, AwsManaged), attaches it to each of TargetIds (root `r-...`, OU `ou-...` or
account id; an unknown target fails the resource), and on delete detaches and deletes it; in an
account that is not an organization's management account it fails with
AWSOrganizationsNotInUseException. Stock moto 5.2.5 has the service but no template model: the
stack completes with no policy, a Ref resolves to nothing and GetAtt fails, in an output with
HTTP 500. This creates, attaches, detaches and deletes the policy through moto's backend of the
stack's account: a test deploying the organization blueprint first calls CreateOrganization in
that account and uses the root, OU and account ids it answers.
"""

from __future__ import annotations

import json
from typing import Any

from ..cfn_types import Created, Request, TypeSpec, define_type
from ..proof import ProofContext, delete_ok, describe, failure_reason, require, run_change_set, unique

NAME = "cfn_organizations"
# What this patch does to each resource type (emulator.probe_table reads it for README.md).
TYPES = {
    'AWS::Organizations::Policy': "created and attached in moto's Organizations backend (needs an organization)",
}


def _backend(account_id: str) -> Any:
    from moto.organizations.exceptions import AWSOrganizationsNotInUseException
    from moto.organizations.models import organizations_backends

    backend = organizations_backends[account_id]["aws"]
    if backend.org is None:
        raise AWSOrganizationsNotInUseException()
    return backend


def create_policy(req: Request) -> Created:
    p = req.props
    backend = _backend(req.account_id)
    content = p["Content"] if isinstance(p["Content"], str) else json.dumps(p["Content"])
    summary = backend.create_policy(Name=p["Name"], Description=p.get("Description", ""), Content=content, Type=p["Type"],
                                    Tags=p.get("Tags") or [])["Policy"]["PolicySummary"]
    for target in p.get("TargetIds") or []:
        backend.attach_policy(PolicyId=summary["Id"], TargetId=target)
    return Created(summary["Id"], {"Id": summary["Id"], "Arn": summary["Arn"], "AwsManaged": False}, list(p.get("TargetIds") or []))


def delete_policy(resource: Any) -> None:
    backend = _backend(resource.account_id)
    for target in resource.state:
        backend.detach_policy(PolicyId=resource.physical_resource_id, TargetId=target)
    backend.delete_policy(PolicyId=resource.physical_resource_id)


def apply() -> None:
    define_type(TypeSpec("AWS::Organizations::Policy", create_policy, delete_policy, ("Id", "Arn", "AwsManaged")))


def prove(ctx: ProofContext) -> None:
    management = "999999999990"
    cfn = ctx.client("cloudformation", management)
    scp = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "organizations:LeaveOrganization", "Resource": "*"}]}
    template = {"Resources": {"Scp": {"Type": "AWS::Organizations::Policy", "Properties": {
        "Name": "proof-deny-leave", "Type": "SERVICE_CONTROL_POLICY", "Content": scp, "TargetIds": [{"Ref": "Target"}]}}},
        "Parameters": {"Target": {"Type": "String"}}, "Outputs": {"Id": {"Value": {"Ref": "Scp"}}, "Arn": {"Value": {"Fn::GetAtt": ["Scp", "Arn"]}}}}
    stack = unique("proof-no-org")  # no organization yet: refused as by AWS
    run_change_set(cfn, stack, template, parameters={"Target": "r-abcd"})
    require(describe(cfn, stack)["StackStatus"] == "ROLLBACK_COMPLETE" and "AWSOrganizationsNotInUse" in failure_reason(cfn, stack),
            f"an SCP outside an organization gave {failure_reason(cfn, stack)}")
    org = ctx.client("organizations", management)
    org.create_organization(FeatureSet="ALL")
    root = org.list_roots()["Roots"][0]["Id"]
    ou = org.create_organizational_unit(ParentId=root, Name="workloads")["OrganizationalUnit"]["Id"]
    stack = unique("proof-scp")
    run_change_set(cfn, stack, template, parameters={"Target": ou})
    described = describe(cfn, stack)
    require(described["StackStatus"] == "CREATE_COMPLETE", f"the SCP stack ends {described['StackStatus']} ({failure_reason(cfn, stack)})")
    out = {o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]}
    targets = [t["TargetId"] for t in org.list_targets_for_policy(PolicyId=out["Id"])["Targets"]]
    require(out["Id"].startswith("p-") and targets == [ou] and out["Arn"].endswith(out["Id"]), f"SCP {out}, targets {targets}")
    delete_ok(cfn, stack, "the SCP stack")
    require(not [p for p in org.list_policies(Filter="SERVICE_CONTROL_POLICY")["Policies"] if p["Id"] == out["Id"]], "the SCP outlived its stack")
