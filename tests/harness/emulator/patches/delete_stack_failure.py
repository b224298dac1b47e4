"""A DeleteStack that fails leaves the stack in DELETE_FAILED (second half of stock bug 2).

Real CloudFormation answers DeleteStack with 200, keeps the stack, emits a DELETE_FAILED event with
the reason and leaves the stack in DELETE_FAILED for a human to resolve; deleting a stack that does
not exist succeeds. Stock moto 5.2.5 removes the stack record before deleting its resources, so
when a resource delete raises, the stack vanishes from DescribeStacks while its resources leak,
and the call answers 400. This replaces the backend's `delete_stack` and its handler; the
DeleteStack ClientRequestToken is recorded on the stack's delete events.
"""

from __future__ import annotations

from typing import Any

from ..proof import ProofContext, describe, require, run_change_set, unique
from .common import error_text

NAME = "delete_stack_failure"


def apply() -> None:
    from moto.cloudformation.models import CloudFormationBackend, Stack
    from moto.cloudformation.responses import CloudFormationResponse
    from moto.core.responses import EmptyResult

    def delete_stack(
        self: CloudFormationBackend, name_or_stack_id: str, client_request_token: str | None = None
    ) -> None:
        stack: Stack | None = self.stacks.get(name_or_stack_id)
        if stack is None:
            for candidate in self.stacks.values():
                if candidate.name == name_or_stack_id:
                    stack = candidate
                    break
        if stack is None:
            return  # real CloudFormation: deleting a stack that does not exist succeeds
        first_event = len(stack.events)
        try:
            stack.delete()
        except Exception as exc:
            reason = error_text(exc)
            stack._add_stack_event("DELETE_FAILED", resource_status_reason=reason)
            stack.status = "DELETE_FAILED"
            stack.stack_status_reason = reason
            for event in stack.events[first_event:]:
                event.client_request_token = client_request_token
            return
        for event in stack.events[first_event:]:
            event.client_request_token = client_request_token
        self.stacks.pop(stack.stack_id, None)
        self.deleted_stacks[stack.stack_id] = stack
        for name in [n for n, e in self.exports.items() if e.exporting_stack_id == stack.stack_id]:
            self.exports.pop(name)

    def delete_stack_response(self: CloudFormationResponse) -> Any:
        self.cloudformation_backend.delete_stack(
            self._get_param("StackName"), self._get_param("ClientRequestToken")
        )
        return EmptyResult()

    CloudFormationBackend.delete_stack = delete_stack
    CloudFormationResponse.delete_stack = delete_stack_response


def prove(ctx: ProofContext) -> None:
    cfn, ec2 = ctx.client("cloudformation", "999999999999"), ctx.client("ec2", "999999999999")
    stack = unique("proof-delfail")
    run_change_set(cfn, stack, {"Resources": {"Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.22.0.0/16"}}}})
    vpc_id = cfn.describe_stack_resources(StackName=stack)["StackResources"][0]["PhysicalResourceId"]
    # A subnet created outside the stack blocks the VPC's deletion, in AWS as in moto.
    stray = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.22.9.0/24")["Subnet"]["SubnetId"]
    cfn.delete_stack(StackName=stack, ClientRequestToken="proof-delete")
    status = describe(cfn, stack)["StackStatus"]
    require(status == "DELETE_FAILED", f"a failed delete left the stack {status}, not DELETE_FAILED")
    newest = cfn.describe_stack_events(StackName=stack)["StackEvents"][0]
    require(
        newest["ResourceStatus"] == "DELETE_FAILED" and "DependencyViolation" in newest.get("ResourceStatusReason", "")
        and newest.get("ClientRequestToken") == "proof-delete",
        f"the newest event is {newest}",
    )
    ec2.delete_subnet(SubnetId=stray)
    cfn.delete_stack(StackName=stack)
    require(not [s for s in cfn.describe_stacks()["Stacks"] if s["StackName"] == stack], "a retried delete did not remove the stack")
    cfn.delete_stack(StackName=unique("proof-never-existed"))  # succeeds, as in CloudFormation
