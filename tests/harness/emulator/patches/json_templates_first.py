"""A JSON template is parsed as JSON before YAML is tried (a harness patch).

Not an AWS behaviour but a cost: moto parses every TemplateBody with PyYAML first and falls back to
JSON, and PyYAML's pure-Python scanner takes tens of milliseconds for a blueprint-sized JSON
template, on every CreateChangeSet, ExecuteChangeSet and stack update. JSON is a subset of YAML and
json.loads gives the same document for it. This tries json.loads first and keeps moto's YAML
parsing (with its short-form intrinsic functions) for everything else.
"""

from __future__ import annotations

import json
from typing import Any

from ..proof import ProofContext, delete_ok, require, unique

NAME = "json_templates_first"
YAML_TEMPLATE = """
Resources:
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      Tags:
        - Key: name
          Value: !Sub "${AWS::StackName}-queue"
Outputs:
  Arn:
    Value: !GetAtt Queue.Arn
"""


def apply() -> None:
    from moto.cloudformation.models import Stack

    yaml_first = Stack.parse_template

    def parse_template(template: Any) -> Any:
        if isinstance(template, str) and template.lstrip().startswith("{"):
            try:
                return json.loads(template)
            except ValueError:
                pass
        return yaml_first(template)

    parse_template.yaml_first = yaml_first  # type: ignore[attr-defined]
    Stack.parse_template = staticmethod(parse_template)  # type: ignore[assignment]


def prove(ctx: ProofContext) -> None:
    from moto.cloudformation.models import Stack

    require(hasattr(Stack.parse_template, "yaml_first"), "Stack.parse_template is moto's own")
    document = {"Resources": {"Q": {"Type": "AWS::SQS::Queue", "Properties": {"DelaySeconds": 5, "FifoQueue": False}}}}
    require(Stack.parse_template(json.dumps(document)) == Stack.parse_template.yaml_first(json.dumps(document)) == document,
            "JSON and YAML parsing disagree on a JSON template")
    cfn = ctx.client("cloudformation", "999999999999")
    stack = unique("proof-yaml")
    created = cfn.create_change_set(StackName=stack, ChangeSetName="cs-proof-yaml", TemplateBody=YAML_TEMPLATE,
                                    ChangeSetType="CREATE")["Id"]
    cfn.execute_change_set(ChangeSetName=created)
    described = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    require(described["StackStatus"] == "CREATE_COMPLETE" and described["Outputs"][0]["OutputValue"].startswith("arn:aws:sqs:"),
            f"a YAML template ends {described['StackStatus']} with {described.get('Outputs')}")
    delete_ok(cfn, stack, "the YAML stack")
