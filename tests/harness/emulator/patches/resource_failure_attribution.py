"""Name the resource that failed when a stack operation raises (supports stock bug 6).

Real CloudFormation emits a `CREATE_FAILED` (or `UPDATE_FAILED`) event for the logical resource
that failed, with the service's error message. Stock moto 5.2.5 creates resources lazily and lets
the first exception escape with no record of which logical resource raised it. This wraps
`parse_and_create_resource` / `parse_and_update_resource` so the innermost failing resource's
logical id and type ride along on the exception, for `execute_change_set` to report.
"""

from __future__ import annotations

from typing import Any, Callable

from ..proof import ProofContext, describe, require, run_change_set, unique
from .common import FAILED_RESOURCE_ATTR

NAME = "resource_failure_attribution"

# The subnet's CIDR lies outside the VPC's: CreateChangeSet accepts it, execution fails on the
# subnet after the VPC was created, so a rollback has something to delete.
FAILING_TEMPLATE = {
    "AWSTemplateFormatVersion": "2010-09-09",
    "Resources": {
        "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.30.0.0/16"}},
        "BadSubnet": {
            "Type": "AWS::EC2::Subnet",
            "Properties": {"VpcId": {"Ref": "Vpc"}, "CidrBlock": "10.99.0.0/24", "AvailabilityZone": "us-east-1a"},
        },
    },
}


def apply() -> None:
    from moto.cloudformation import parsing

    def wrap(original: Callable[..., Any], failed_status: str) -> Callable[..., Any]:
        def wrapper(logical_id: str, resource_json: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
            try:
                return original(logical_id, resource_json, *args, **kwargs)
            except Exception as exc:
                # Nested creation (a Ref to a not-yet-created resource) re-raises through the
                # outer resource: keep the innermost, which is the one that really failed.
                if not hasattr(exc, FAILED_RESOURCE_ATTR):
                    rtype = resource_json.get("Type", "") if isinstance(resource_json, dict) else ""
                    setattr(exc, FAILED_RESOURCE_ATTR, (logical_id, rtype, failed_status))
                raise

        wrapper.__wrapped__ = original  # type: ignore[attr-defined]
        return wrapper

    parsing.parse_and_create_resource = wrap(parsing.parse_and_create_resource, "CREATE_FAILED")
    parsing.parse_and_update_resource = wrap(parsing.parse_and_update_resource, "UPDATE_FAILED")


def prove(ctx: ProofContext) -> None:
    cfn = ctx.client("cloudformation", "999999999999")
    stack = unique("proof-fail")
    run_change_set(cfn, stack, FAILING_TEMPLATE)
    require(describe(cfn, stack)["StackStatus"] == "ROLLBACK_COMPLETE", "the failing stack did not roll back")
    failed = [e for e in cfn.describe_stack_events(StackName=stack)["StackEvents"] if e["ResourceStatus"].endswith("_FAILED")]
    require(
        failed and failed[0]["LogicalResourceId"] == "BadSubnet" and failed[0]["ResourceType"] == "AWS::EC2::Subnet"
        and "10.99.0.0/24" in failed[0].get("ResourceStatusReason", ""),
        f"no CREATE_FAILED event naming BadSubnet with the reason: {failed}",
    )
