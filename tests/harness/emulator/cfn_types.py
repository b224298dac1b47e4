"""Machinery the CloudFormation resource-type patches share (the patch side; proofs use `proof`).

`define_type` gives moto a model for a resource type it has none for: a `create` function turns
the template's (already resolved) Properties into a physical id and the type's GetAtt attributes,
usually by calling moto's own backend for the service, and `delete` undoes it. `add_attributes`
and `set_ref` complete the GetAtt attributes and Ref of a type moto does model. Models defined here
are tracked by moto like its own (service `cloudformation`), so /moto-api/data.json shows them and
a reset forgets them.
"""

from __future__ import annotations

import inspect
import random
from dataclasses import dataclass, field
from typing import Any, Callable

_HEX = "0123456789abcdef"


def hex_id(prefix: str, length: int = 17) -> str:
    """An EC2-style id: `prefix-` and `length` hex digits."""
    return f"{prefix}-{''.join(random.choice(_HEX) for _ in range(length))}"


def call(fn: Callable[..., Any], **kwargs: Any) -> Any:
    """Call a moto backend method with `kwargs`, every parameter not given passed as None."""
    params = inspect.signature(fn).parameters
    full = {name: kwargs.get(name) for name, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    return fn(**full)


def tags_dict(tags: Any) -> dict[str, str]:
    return {t["Key"]: t.get("Value", "") for t in tags or [] if isinstance(t, dict) and "Key" in t}


@dataclass
class Request:
    """What a type's create function gets."""

    props: dict[str, Any]
    account_id: str
    region: str
    logical_id: str
    stack_name: str
    name: str  # the name property's value, or the name CloudFormation generated (kept across updates)

    def short(self, limit: int) -> str:
        """The name within `limit` characters: the stack-and-logical-id part cut, the suffix kept."""
        if len(self.name) <= limit:
            return self.name
        head, _, tail = self.name.rpartition("-")
        return f"{head[: max(limit - len(tail) - 1, 1)].rstrip('-')}-{tail}"[:limit]


@dataclass
class Created:
    """What a create function returns: the physical id (Ref), GetAtt attributes, private state."""

    physical_id: str
    attributes: dict[str, Any] = field(default_factory=dict)
    state: Any = None


@dataclass
class TypeSpec:
    cfn_type: str
    create: Callable[[Request], Created]
    delete: Callable[[Any], None] | None = None  # gets the model instance (.physical_resource_id, .state, ...)
    attributes: tuple[str, ...] = ()
    name_property: str = ""


def _stack_name(kwargs: dict[str, Any]) -> str:  # from the StackId moto passes
    stack_id = kwargs.get("StackId") or ""
    parts = stack_id.split("/")
    return parts[1] if len(parts) > 2 else "stack"


def define_type(spec: TypeSpec, module: str = "moto.cloudformation.stackgate") -> type:
    """Register a model for `spec.cfn_type` with moto's CloudFormation parser; returns the class."""
    from moto.cloudformation import parsing
    from moto.cloudformation.exceptions import UnformattedGetAttTemplateException
    from moto.core.common_models import CloudFormationModel

    def __init__(self: Any, created: Created, request: Request) -> None:
        self.cfn_type = spec.cfn_type
        self.physical_id = created.physical_id
        self.attributes = created.attributes
        self.state = created.state
        self.props = request.props
        self.account_id = request.account_id
        self.region_name = request.region
        self.logical_id = request.logical_id
        self.stack_name = request.stack_name
        self.name = request.name

    def create(cls: type, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any) -> Any:
        props = dict(cloudformation_json.get("Properties") or {})
        request = Request(props, account_id, region_name, kwargs.get("LogicalId", ""), _stack_name(kwargs), resource_name)
        return cls(spec.create(request), request)

    def update(cls: type, original_resource: Any, new_resource_name: str, cloudformation_json: Any, account_id: str,
               region_name: str) -> Any:
        # Delete, then create from the new properties. The name (hence Ref) is kept unless the
        # template renames the resource, as in CloudFormation's updates without replacement.
        original_resource.delete(account_id, region_name)
        props = dict(cloudformation_json.get("Properties") or {})
        renamed = bool(spec.name_property) and spec.name_property in props
        request = Request(props, account_id, region_name, original_resource.logical_id, original_resource.stack_name,
                          new_resource_name if renamed else original_resource.name)
        return cls(spec.create(request), request)

    def delete(self: Any, account_id: str, region_name: str) -> None:
        if spec.delete is not None:
            spec.delete(self)

    def get_cfn_attribute(self: Any, attribute_name: str) -> Any:
        if attribute_name in self.attributes:
            return self.attributes[attribute_name]
        raise UnformattedGetAttTemplateException()

    cls = type(spec.cfn_type.replace("::", ""), (CloudFormationModel,), {
        "__module__": module,
        "__init__": __init__,
        "physical_resource_id": property(lambda self: self.physical_id),
        "cloudformation_type": staticmethod(lambda: spec.cfn_type),
        "cloudformation_name_type": staticmethod(lambda: spec.name_property),
        "has_cfn_attr": classmethod(lambda cls, attr: attr in spec.attributes),
        "create_from_cloudformation_json": classmethod(create),
        "update_from_cloudformation_json": classmethod(update),
        "delete": delete,
        "get_cfn_attribute": get_cfn_attribute,
        "spec": spec,
    })
    parsing.get_model_map()[spec.cfn_type] = cls
    parsing.get_name_type_map()[spec.cfn_type] = spec.name_property
    return cls


def add_attributes(model: type, getters: dict[str, Callable[[Any], Any]]) -> None:
    """Give a moto model the GetAtt attributes `getters` computes (others keep moto's handling)."""
    from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

    original_has = model.has_cfn_attr.__func__  # type: ignore[attr-defined]
    original_get = model.__dict__.get("get_cfn_attribute") or getattr(model, "get_cfn_attribute", None)

    def has_cfn_attr(cls: type, attr: str) -> bool:
        return attr in getters or original_has(cls, attr)

    def get_cfn_attribute(self: Any, attribute_name: str) -> Any:
        if attribute_name in getters:
            return getters[attribute_name](self)
        if original_get is None:
            raise UnformattedGetAttTemplateException()
        return original_get(self, attribute_name)

    model.has_cfn_attr = classmethod(has_cfn_attr)  # type: ignore[attr-defined]
    model.get_cfn_attribute = get_cfn_attribute  # type: ignore[attr-defined]


def set_ref(model: type, getter: Callable[[Any], str]) -> None:
    """Make `getter` the model's physical id, which is what Ref returns."""
    model.physical_resource_id = property(getter)  # type: ignore[attr-defined]
