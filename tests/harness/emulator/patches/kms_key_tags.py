"""AWS::KMS::Key accepts CloudFormation's `Tags: [{Key, Value}]` (a bug the facts file misses).

CloudFormation spells every resource's tags `{"Key": .., "Value": ..}`; the KMS API spells them
`{"TagKey": .., "TagValue": ..}`, and real CloudFormation creates the key with its tags. Stock moto
5.2.5 hands the template's list straight to the KMS backend, which looks up `TagKey` and fails the
whole stack with `KeyError: 'TagKey'`, so any tagged key (every stackgate blueprint tags every
resource) rolls back. This translates the spelling before the key is created.
"""

from __future__ import annotations

import json
from typing import Any

from ..proof import ProofContext, delete_ok, deploy_ok, require
from .common import rewrite_properties_before_create
from .kms_key_policy import POLICY

NAME = "kms_key_tags"


def apply() -> None:
    from moto.kms.models import Key

    def rewrite(props: dict[str, Any]) -> None:
        tags = props.get("Tags")
        if isinstance(tags, list):
            props["Tags"] = [
                {"TagKey": t.get("Key", t.get("TagKey")), "TagValue": t.get("Value", t.get("TagValue"))}
                for t in tags
                if isinstance(t, dict)
            ]

    rewrite_properties_before_create(Key, rewrite)


def prove(ctx: ProofContext) -> None:
    cfn, kms = ctx.client("cloudformation", "999999999999"), ctx.client("kms", "999999999999")
    template = {
        "Resources": {"Key": {"Type": "AWS::KMS::Key", "Properties": {
            "Tags": [{"Key": "Name", "Value": "proof"}],
            "KeyPolicy": json.dumps(POLICY),  # a string: this proof stands without kms_key_policy
        }}},
        "Outputs": {"KeyId": {"Value": {"Ref": "Key"}}},
    }
    stack, out = deploy_ok(cfn, template, "a tagged KMS key")
    tags = kms.list_resource_tags(KeyId=out["KeyId"]).get("Tags", [])
    require({"TagKey": "Name", "TagValue": "proof"} in tags, f"the key's CloudFormation tags were not applied ({tags})")
    delete_ok(cfn, stack, "the tagged KMS stack")
