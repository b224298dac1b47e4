"""AWS::SecretsManager::Secret created for real, and `{{resolve:...}}` dynamic references resolved.

Real CloudFormation creates the secret (Ref and GetAtt Id: its ARN), generating the value when
GenerateSecretString is given (a password of PasswordLength, default 32, characters honouring the
Exclude* options, put under GenerateStringKey of SecretStringTemplate), and deletes it with the
stack. It replaces a dynamic reference in a resource property, `{{resolve:secretsmanager:<name or
ARN>:SecretString:<json-key>:<version-stage>:<version-id>}}` or `{{resolve:ssm:<name>[:<version>]}}`
/ `ssm-secure`, by the current value, failing the resource if the secret, key or parameter does
not exist. Stock moto 5.2.5 has a Secrets Manager service but no template model for Secret (the
stack completes with no secret, a Ref to it resolves to nothing, GetAtt Id fails, in an output with
HTTP 500), and passes dynamic references on as literal text (an RDS master password or an
ElastiCache AuthToken becomes the string "{{resolve:...}}").

This creates and force-deletes the secret through moto's Secrets Manager backend (with moto's
GetRandomPassword), and resolves dynamic references against the account's Secrets Manager and SSM
backends wherever moto evaluates a template value.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..cfn_types import Created, Request, TypeSpec, call, define_type
from ..proof import ProofContext, delete_ok, deploy_ok, describe, failure_reason, require, run_change_set, unique

NAME = "cfn_secrets"
# What this patch does to each resource type (emulator.probe_table reads it for README.md).
TYPES = {
    'AWS::SecretsManager::Secret': "created in moto's Secrets Manager backend (GenerateSecretString honoured)",
    '{{resolve:secretsmanager:...}} / {{resolve:ssm:...}}': "resolved against the account's Secrets Manager / SSM",
}
REFERENCE = re.compile(r"\{\{resolve:(secretsmanager|ssm|ssm-secure):([^}]*)\}\}")


def _secrets(account_id: str, region: str) -> Any:
    from moto.secretsmanager.models import secretsmanager_backends

    return secretsmanager_backends[account_id][region]


def create_secret(req: Request) -> Created:
    p = req.props
    backend = _secrets(req.account_id, req.region)
    name = req.short(512)
    value = p.get("SecretString")
    generate = p.get("GenerateSecretString")
    if generate is not None:
        password = call(backend.get_random_password, password_length=int(generate.get("PasswordLength", 32)),
                        exclude_characters=generate.get("ExcludeCharacters", ""),
                        exclude_numbers=bool(generate.get("ExcludeNumbers")), exclude_punctuation=bool(generate.get("ExcludePunctuation")),
                        exclude_uppercase=bool(generate.get("ExcludeUppercase")), exclude_lowercase=bool(generate.get("ExcludeLowercase")),
                        include_space=bool(generate.get("IncludeSpace")),
                        require_each_included_type=generate.get("RequireEachIncludedType", True))
        password = json.loads(password)["RandomPassword"] if password.startswith("{") else password
        if generate.get("SecretStringTemplate"):
            document = json.loads(generate["SecretStringTemplate"])
            document[generate["GenerateStringKey"]] = password
            value = json.dumps(document)
        else:
            value = password
    call(backend.create_secret, name=name, secret_string=value, description=p.get("Description"), tags=p.get("Tags") or [],
         kms_key_id=p.get("KmsKeyId"), replica_regions=p.get("ReplicaRegions") or [], force_overwrite=False)
    arn = backend.secrets[name].arn
    return Created(arn, {"Id": arn})


def delete_secret(resource: Any) -> None:
    _secrets(resource.account_id, resource.region_name).delete_secret(resource.physical_resource_id, None, True)


def resolve(text: str, account_id: str, region: str) -> str:
    """`text` with every dynamic reference replaced by its value."""
    from moto.cloudformation.exceptions import ValidationError

    def value(match: re.Match[str]) -> str:
        service, rest = match[1], match[2]
        if service != "secretsmanager":
            from moto.ssm.models import ssm_backends

            parameter = ssm_backends[account_id][region].get_parameter(rest)
            if parameter is None:
                raise ValidationError(message=f"Unable to fetch parameters [{rest.split(':')[0]}] from parameter store for this account.")
            return parameter.value
        parts = rest.split(":")
        secret_id, parts = (":".join(parts[:7]), parts[7:]) if rest.startswith("arn:") else (parts[0], parts[1:])
        parts += [""] * (4 - len(parts))
        _, key, stage, version = parts[:4]
        secret = _secrets(account_id, region).get_secret_value(secret_id, version or None, stage or None)
        string = secret.get("SecretString", "")
        if not key:
            return string
        try:
            return str(json.loads(string)[key])
        except (ValueError, KeyError, TypeError):
            raise ValidationError(message=f"Could not find SecretString JSON key {key} in secret {secret_id}") from None

    return REFERENCE.sub(value, text)


def apply() -> None:
    from moto.cloudformation import parsing

    define_type(TypeSpec("AWS::SecretsManager::Secret", create_secret, delete_secret, ("Id",), "Name"))
    original = parsing.clean_json

    def clean_json(resource_json: Any, resources_map: Any) -> Any:
        result = original(resource_json, resources_map)
        if isinstance(result, str) and "{{resolve:" in result and hasattr(resources_map, "_account_id"):
            return resolve(result, resources_map._account_id, resources_map._region_name)
        return result

    parsing.clean_json = clean_json


def prove(ctx: ProofContext) -> None:
    account = "999999999999"
    cfn, sm, ssm = ctx.client("cloudformation", account), ctx.client("secretsmanager", account), ctx.client("ssm", account)
    template = {
        "Resources": {
            "Secret": {"Type": "AWS::SecretsManager::Secret", "Properties": {"GenerateSecretString": {
                "SecretStringTemplate": "{\"username\": \"app\"}", "GenerateStringKey": "password", "PasswordLength": 24,
                "ExcludeCharacters": "\"@/\\"}}},
            "FromSecret": {"Type": "AWS::SSM::Parameter", "Properties": {"Name": "/proof/from-secret", "Type": "String",
                           "Value": {"Fn::Sub": "{{resolve:secretsmanager:${Secret}:SecretString:password}}"}}},
            "FromParameter": {"Type": "AWS::SSM::Parameter", "DependsOn": "FromSecret", "Properties": {
                "Name": "/proof/from-parameter", "Type": "String", "Value": "copy of {{resolve:ssm:/proof/from-secret}}"}},
        },
        "Outputs": {"Secret": {"Value": {"Ref": "Secret"}}, "Id": {"Value": {"Fn::GetAtt": ["Secret", "Id"]}}},
    }
    stack, out = deploy_ok(cfn, template, "a generated secret read through dynamic references")
    require(out["Secret"] == out["Id"] and out["Secret"].startswith(f"arn:aws:secretsmanager:us-east-1:{account}:secret:{stack}-Secret-"),
            f"secret Ref/Id {out}")
    value = json.loads(sm.get_secret_value(SecretId=out["Secret"])["SecretString"])
    password = value.get("password", "")
    require(value.get("username") == "app" and len(password) == 24 and not set(password) & set("\"@/\\"), f"generated value {value}")
    got = ssm.get_parameter(Name="/proof/from-secret")["Parameter"]["Value"]
    require(got == password, f"{{{{resolve:secretsmanager}}}} gave {got!r}")
    got = ssm.get_parameter(Name="/proof/from-parameter")["Parameter"]["Value"]
    require(got == f"copy of {password}", f"{{{{resolve:ssm}}}} gave {got!r}")
    delete_ok(cfn, stack, "the secret stack")
    require(out["Secret"] not in [s["ARN"] for s in sm.list_secrets()["SecretList"]], "the secret outlived its stack")
    missing = unique("proof-missing-secret")
    run_change_set(cfn, missing, {"Resources": {"P": {"Type": "AWS::SSM::Parameter", "Properties": {
        "Type": "String", "Value": "{{resolve:secretsmanager:proof-no-such-secret:SecretString:password}}"}}}})
    require(describe(cfn, missing)["StackStatus"] == "ROLLBACK_COMPLETE" and "can't find the specified secret" in failure_reason(cfn, missing),
            f"a reference to a missing secret gave {failure_reason(cfn, missing)}")
