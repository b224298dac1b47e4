"""Stack deletion goes in reverse dependency order, with a DELETE event per resource (stock bug 5).

Real CloudFormation deletes a resource only after every resource that depends on it (through Ref,
Fn::GetAtt, Fn::Sub or DependsOn) is gone, and records DELETE_IN_PROGRESS / DELETE_COMPLETE (or
DELETE_FAILED with the reason) for each resource; a resource whose dependent failed to delete is
left alone. Stock moto 5.2.5 deletes in the iteration order of a Python set, which depends on
PYTHONHASHSEED, retrying what fails: a primary RDS instance deleted before its read replica makes
the replica's delete fail (so DeleteStack fails or not from run to run), and no resource events
are recorded. This replaces `ResourceMap.delete` (used by DeleteStack and by a create's rollback)
with an ordered one that keeps moto's retry passes for dependencies the template does not show,
and adds the resource events to the stack.
"""

from __future__ import annotations

import re
from typing import Any

from ..proof import ProofContext, deploy_ok, require
from .common import error_text

NAME = "cfn_delete_order"


def references(node: Any, names: set[str]) -> set[str]:
    """The resources `node` (part of a resource's JSON) refers to."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str) and value in names:
                found.add(value)
            elif key == "Fn::GetAtt":
                target = value[0] if isinstance(value, list) and value else str(value).split(".")[0]
                if target in names:
                    found.add(target)
            elif key == "Fn::Sub":
                text = value[0] if isinstance(value, list) else value
                found |= {m.split(".")[0] for m in re.findall(r"\$\{([^!}][^}]*)\}", str(text))} & names
                found |= references(value[1:] if isinstance(value, list) else [], names)
            else:
                found |= references(value, names)
    elif isinstance(node, list):
        for item in node:
            found |= references(item, names)
    return found


def dependencies(resources: dict[str, Any]) -> dict[str, set[str]]:
    names = set(resources)
    deps = {}
    for name, resource in resources.items():
        depends_on = resource.get("DependsOn", []) if isinstance(resource, dict) else []
        deps[name] = (references(resource.get("Properties", {}), names) | set([depends_on] if isinstance(depends_on, str) else depends_on)) - {name}
    return deps


def apply() -> None:
    from moto.cloudformation.models import Event, cloudformation_backends
    from moto.cloudformation.parsing import ResourceMap

    def record(self: ResourceMap, logical_id: str, resource: Any, status: str, reason: str | None = None) -> None:
        stack = cloudformation_backends[self._account_id][self._region_name].stacks.get(self.stack_id)
        if stack is not None:
            stack.events.append(Event(
                stack_id=stack.stack_id, stack_name=stack.name, logical_resource_id=logical_id,
                physical_resource_id=getattr(resource, "physical_resource_id", "") or "",
                resource_type=self._resource_json_map[logical_id].get("Type", ""), resource_status=status,
                resource_status_reason=reason, resource_properties=None))

    def delete(self: ResourceMap) -> None:
        deps = dependencies(self._resource_json_map)
        retained = {k for k, v in self._resource_json_map.items() if v.get("DeletionPolicy") == "Retain"}
        remaining = [k for k in self._resource_json_map if k not in retained]
        last_exception: Exception | None = None
        progress = True
        while remaining and progress:
            progress = False
            for logical_id in list(remaining):
                if any(logical_id in deps[other] for other in remaining if other != logical_id):
                    continue  # something that depends on it is still there
                resource = self._parsed_resources.get(logical_id)
                if resource is not None and not isinstance(resource, str):
                    record(self, logical_id, resource, "DELETE_IN_PROGRESS")
                    try:
                        self._delete_resource(resource, self._resource_json_map[logical_id])
                    except Exception as exc:  # may be a dependency the template does not show: retry
                        last_exception = exc
                        record(self, logical_id, resource, "DELETE_FAILED", error_text(exc))
                        continue
                    self._parsed_resources.pop(logical_id, None)
                    record(self, logical_id, resource, "DELETE_COMPLETE")
                remaining.remove(logical_id)
                progress = True
        if remaining:
            raise last_exception or RuntimeError(f"could not delete {remaining}")

    ResourceMap.delete = delete


def prove(ctx: ProofContext) -> None:
    cfn = ctx.client("cloudformation", "999999999999")
    template = {"Resources": {
        "Sg": {"Type": "AWS::EC2::SecurityGroup", "Properties": {"GroupDescription": "x", "VpcId": {"Ref": "Vpc"}}},
        "Subnet": {"Type": "AWS::EC2::Subnet", "Properties": {"VpcId": {"Ref": "Vpc"},
                   "CidrBlock": "10.25.1.0/24", "AvailabilityZone": "us-east-1a"}},
        "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.25.0.0/16"}},
        "Later": {"Type": "AWS::EC2::InternetGateway", "DependsOn": "Subnet", "Properties": {}},
    }}
    stack, _ = deploy_ok(cfn, template, "a VPC stack")
    stack_id = cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackId"]
    cfn.delete_stack(StackName=stack)
    events = cfn.describe_stack_events(StackName=stack_id)["StackEvents"][::-1]  # oldest first
    done = [e["LogicalResourceId"] for e in events if e["ResourceStatus"] == "DELETE_COMPLETE" and e["LogicalResourceId"] != stack]
    require(sorted(done) == ["Later", "Sg", "Subnet", "Vpc"], f"resource DELETE_COMPLETE events: {done}")
    require(done.index("Later") < done.index("Subnet") < done.index("Vpc") and done.index("Sg") < done.index("Vpc"),
            f"resources deleted out of dependency order: {done}")
    require(events[-1]["ResourceStatus"] == "DELETE_COMPLETE" and events[-1]["LogicalResourceId"] == stack,
            "the stack's DELETE_COMPLETE is not the newest event")
