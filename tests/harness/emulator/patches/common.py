"""What several patches share: error text as CloudFormation shows it, and the failed-resource marker."""

from __future__ import annotations

from typing import Any, Callable

# Attribute set on an exception raised while creating/updating a resource, naming the resource
# (set by resource_failure_attribution, read by execute_change_set).
FAILED_RESOURCE_ATTR = "_stackgate_failed_resource"


def error_text(exc: BaseException) -> str:
    """The message real CloudFormation would surface: `Code: message` when moto gives both."""
    code = getattr(exc, "code", None) or getattr(exc, "error_type", None)
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    if isinstance(code, str) and code and code not in message:
        return f"{code}: {message}"
    return message


def rewrite_properties_before_create(model: type, rewrite: Callable[[dict[str, Any]], None]) -> None:
    """Wrap `model.create_from_cloudformation_json` so `rewrite` can correct a copy of the
    template's Properties first (several patches may stack on one model)."""
    original = model.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]

    def create_from_cloudformation_json(
        cls: type, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> Any:
        cfn = dict(cloudformation_json)
        props = dict(cfn.get("Properties") or {})
        rewrite(props)
        cfn["Properties"] = props
        return original(cls, resource_name, cfn, account_id, region_name, **kwargs)

    model.create_from_cloudformation_json = classmethod(create_from_cloudformation_json)  # type: ignore[attr-defined]
