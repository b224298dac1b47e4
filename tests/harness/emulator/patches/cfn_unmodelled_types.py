"""Any other resource type moto cannot model becomes a recorded placeholder, listed like the rest.

Real CloudFormation creates every resource of a template, lists each in DescribeStackResources
(logical id, type, physical id), resolves Ref to its physical id, and rejects a GetAtt of an
attribute the type does not have ("Template error: resource X does not support attribute type Y
in Fn::GetAtt", at CreateChangeSet; moto fails the execution with that message instead). Stock moto 5.2.5 skips a type it has no
model for: the stack completes, but DescribeStackResources lists the resource with no logical id,
type or physical id, a Ref to it resolves to nothing (the referring property silently disappears)
and a GetAtt fails, in an output with HTTP 500 from DescribeStacks. AWS::AccessAnalyzer::Analyzer,
which moto has no service for, is one the blueprints use.

This gives such types a placeholder model: the resource is recorded (cloudformation /
`<Type>` in /moto-api/data.json, with its properties), gets a plausible physical id (the name
CloudFormation would generate; an ARN for the Access Analyzer analyzer, with GetAtt Arn), no
other attributes, and nothing else happens: README.md lists the types that end up here.
"""

from __future__ import annotations

from typing import Any

from ..cfn_types import Created, Request, TypeSpec, define_type
from ..proof import ProofContext, delete_ok, deploy_ok, describe, failure_reason, require, run_change_set, unique

NAME = "cfn_unmodelled_types"
# What this patch does to each resource type (emulator.probe_table reads it for README.md).
TYPES = {
    'AWS::AccessAnalyzer::Analyzer': 'recorded placeholder (Ref/Arn: the analyzer ARN); moto has no Access Analyzer',
    '(any other type moto lacks)': 'recorded placeholder with a generated name as physical id, no attributes',
}


def create_analyzer(req: Request) -> Created:
    name = req.short(64)
    arn = f"arn:aws:access-analyzer:{req.region}:{req.account_id}:analyzer/{name}"
    return Created(arn, {"Arn": arn})


def apply() -> None:
    from moto.cloudformation import parsing

    define_type(TypeSpec("AWS::AccessAnalyzer::Analyzer", create_analyzer, None, ("Arn",), "AnalyzerName"))
    original = parsing.resource_class_from_type
    placeholders: dict[str, type] = {}

    def resource_class_from_type(resource_type: str) -> Any:
        if (not isinstance(resource_type, str) or resource_type in parsing.get_model_map() or resource_type in parsing.NULL_MODELS
                or resource_type.startswith("Custom::")):
            return original(resource_type)
        if resource_type not in placeholders:
            placeholders[resource_type] = define_type(TypeSpec(resource_type, lambda req: Created(req.name)))
        return placeholders[resource_type]

    parsing.resource_class_from_type = resource_class_from_type


def prove(ctx: ProofContext) -> None:
    cfn = ctx.client("cloudformation", "999999999999")
    template = {
        "Resources": {
            "Analyzer": {"Type": "AWS::AccessAnalyzer::Analyzer", "Properties": {"AnalyzerName": "proof", "Type": "ACCOUNT"}},
            "Unknown": {"Type": "AWS::Proof::Unmodelled", "Properties": {"Anything": "at all"}},
            "User": {"Type": "AWS::SQS::Queue", "Properties": {"Tags": [{"Key": "ref", "Value": {"Ref": "Unknown"}}]}},
        },
        "Outputs": {"Analyzer": {"Value": {"Ref": "Analyzer"}}, "Arn": {"Value": {"Fn::GetAtt": ["Analyzer", "Arn"]}},
                    "Unknown": {"Value": {"Ref": "Unknown"}}},
    }
    stack, out = deploy_ok(cfn, template, "an Access Analyzer analyzer and an unknown type")
    require(out["Analyzer"] == out["Arn"] == "arn:aws:access-analyzer:us-east-1:999999999999:analyzer/proof", f"analyzer {out}")
    require(out.get("Unknown", "").startswith(f"{stack}-Unknown-"), f"the unknown type's Ref is {out.get('Unknown')!r}")
    listed = {r.get("LogicalResourceId"): r for r in cfn.describe_stack_resources(StackName=stack)["StackResources"]}
    require(listed.get("Unknown", {}).get("ResourceType") == "AWS::Proof::Unmodelled"
            and listed["Unknown"].get("PhysicalResourceId") == out["Unknown"], f"the unknown type is listed as {listed.get('Unknown')}")
    delete_ok(cfn, stack, "the placeholder stack")
    # A GetAtt the placeholder does not have fails the stack with CloudFormation's words (real
    # CloudFormation already refuses it at CreateChangeSet).
    stack = unique("proof-unmodelled-getatt")
    run_change_set(cfn, stack, {"Resources": template["Resources"], "Outputs": {"X": {"Value": {"Fn::GetAtt": ["Unknown", "Nope"]}}}})
    described = describe(cfn, stack)
    require(described["StackStatus"] == "ROLLBACK_COMPLETE" and "does not support attribute type Nope" in failure_reason(cfn, stack),
            f"a GetAtt of an unknown type's attribute ends {described['StackStatus']} ({failure_reason(cfn, stack)})")
