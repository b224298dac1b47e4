"""AWS::KMS::Key keeps its KeyPolicy as a JSON string, as KMS does (stock bug 3).

Real KMS only ever holds a policy document string; CloudFormation serialises the template's
KeyPolicy object, and applies the default key policy when KeyPolicy is omitted. Stock moto 5.2.5
stores the template's dict as the key's policy, after which DescribeKey (and GetKeyPolicy) answer
500, and raises KeyError when KeyPolicy is omitted. This serialises an object policy to JSON
before the key is created and lets KeyPolicy be omitted.
"""

from __future__ import annotations

import json
from typing import Any

from ..proof import ProofContext, delete_ok, deploy_ok, require
from .common import rewrite_properties_before_create

NAME = "kms_key_policy"

POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Sid": "root", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::999999999999:root"},
                   "Action": "kms:*", "Resource": "*"}],
}


def apply() -> None:
    from moto.kms.models import Key

    def rewrite(props: dict[str, Any]) -> None:
        policy = props.get("KeyPolicy")
        if isinstance(policy, (dict, list)):
            props["KeyPolicy"] = json.dumps(policy)
        elif policy is None:
            props["KeyPolicy"] = None

    rewrite_properties_before_create(Key, rewrite)


def prove(ctx: ProofContext) -> None:
    cfn, kms = ctx.client("cloudformation", "999999999999"), ctx.client("kms", "999999999999")
    template = {
        "Resources": {
            "Key": {"Type": "AWS::KMS::Key", "Properties": {"EnableKeyRotation": True, "KeyPolicy": POLICY}},
            "Bare": {"Type": "AWS::KMS::Key", "Properties": {}},
        },
        "Outputs": {"KeyId": {"Value": {"Ref": "Key"}}, "BareId": {"Value": {"Ref": "Bare"}}},
    }
    stack, out = deploy_ok(cfn, template, "a KMS key with a KeyPolicy object, and one without")
    meta = kms.describe_key(KeyId=out["KeyId"])["KeyMetadata"]
    policy = json.loads(kms.get_key_policy(KeyId=out["KeyId"], PolicyName="default")["Policy"])
    require(meta["KeyId"] == out["KeyId"] and policy["Statement"][0]["Sid"] == "root", f"the key policy round trip gave {policy}")
    kms.describe_key(KeyId=out["BareId"])
    delete_ok(cfn, stack, "the KMS stack")
