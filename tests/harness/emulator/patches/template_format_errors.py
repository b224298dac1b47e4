"""A malformed TemplateBody gets `ValidationError: Template format error` (stock: HTTP 500).

Real CloudFormation answers 400 `ValidationError` "Template format error: ..." when the
TemplateBody is not JSON or YAML, is not an object, has no Resources, or has a resource without a
Type; stackgate must classify that as a rejected template, not a retryable failure. Stock moto
5.2.5 answers CreateChangeSet with a 500 HTML page, which the SDK retries as transient. This
validates the body's structure before stock moto sees it (CreateChangeSet and CreateStack).
"""

from __future__ import annotations

import json
from typing import Any, Callable

from ..proof import ProofContext, require, unique

NAME = "template_format_errors"


def apply() -> None:
    from moto.cloudformation.exceptions import ValidationError
    from moto.cloudformation.models import Stack
    from moto.cloudformation.responses import CloudFormationResponse

    def check(body: Any) -> None:
        if not body:
            return  # TemplateURL / UsePreviousTemplate: stock handling
        try:
            template = Stack.parse_template(body)
        except Exception:
            raise ValidationError(message="Template format error: JSON not well-formed.") from None
        if not isinstance(template, dict):
            raise ValidationError(message="Template format error: template must be a JSON or YAML object")
        resources = template.get("Resources")
        if not isinstance(resources, dict) or not resources:
            raise ValidationError(message="Template format error: At least one Resources member must be defined.")
        bad = sorted(
            name
            for name, res in resources.items()
            if not isinstance(res, dict) or not isinstance(res.get("Type"), str) or "::" not in res["Type"]
        )
        if bad:
            raise ValidationError(
                message=f"Template format error: [/Resources/{bad[0]}] Every Resources object must contain a Type member."
            )

    for action in ("create_change_set", "create_stack"):
        original = getattr(CloudFormationResponse, action)

        def validated(self: CloudFormationResponse, _original: Callable[..., Any] = original) -> Any:
            check(self._get_param("TemplateBody"))
            return _original(self)

        setattr(CloudFormationResponse, action, validated)


def prove(ctx: ProofContext) -> None:
    from botocore.exceptions import ClientError

    cfn = ctx.client("cloudformation", "999999999999")
    for body in ["{ not json", json.dumps({"Description": "no resources"}), json.dumps({"Resources": {"X": {}}})]:
        try:
            cfn.create_change_set(StackName=unique("proof-bad"), ChangeSetName=unique("cs"), TemplateBody=body,
                                  ChangeSetType="CREATE")
        except ClientError as exc:
            err = exc.response["Error"]
            require(
                err.get("Code") == "ValidationError" and "Template format error" in err.get("Message", ""),
                f"template {body!r} gave {err}",
            )
            continue
        require(False, f"template {body!r} was accepted")
