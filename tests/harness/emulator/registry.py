"""The patches, in the order they are applied and proven.

Order matters where proofs lean on other patches: serialising first (every later request goes
through it), AssumeRole enforcement before anything that assumes a role, the change-set execution
before the proofs that deploy stacks.
"""

from __future__ import annotations

from types import ModuleType

from .patches import (
    assume_role,
    cache_module_list,
    cfn_account_baseline,
    cfn_alarms_scaling,
    cfn_delete_order,
    cfn_ec2_network,
    cfn_elasticache,
    cfn_iam_managed_policy,
    cfn_model_attributes,
    cfn_organizations,
    cfn_rds,
    cfn_s3,
    cfn_secrets,
    cfn_unmodelled_types,
    cfn_wafv2,
    delete_stack_failure,
    execute_change_set,
    json_templates_first,
    kms_key_policy,
    kms_key_tags,
    model_data_filter,
    resource_failure_attribution,
    route_table_delete,
    s3_object_lock,
    serialize_requests,
    servicecatalog_artifacts,
    servicecatalog_portfolios,
    servicecatalog_products,
    template_format_errors,
)

PATCHES: list[ModuleType] = [
    serialize_requests,
    cache_module_list,
    assume_role,
    resource_failure_attribution,
    execute_change_set,
    route_table_delete,
    delete_stack_failure,
    kms_key_policy,
    kms_key_tags,
    template_format_errors,
    json_templates_first,
    model_data_filter,
    cfn_delete_order,
    cfn_model_attributes,
    cfn_rds,
    cfn_ec2_network,
    cfn_unmodelled_types,
    cfn_s3,
    cfn_wafv2,
    cfn_alarms_scaling,
    cfn_secrets,
    cfn_elasticache,
    cfn_account_baseline,
    cfn_organizations,
    cfn_iam_managed_policy,
    servicecatalog_portfolios,
    servicecatalog_products,
    servicecatalog_artifacts,
    s3_object_lock,
]


def by_name(name: str) -> ModuleType | None:
    """A patch by NAME (the launcher's old `patch_` prefix is accepted too)."""
    name = name.removeprefix("patch_")
    if name == "assume_role_enforces_roles" or name == "assume_role":
        name = assume_role.NAME
    return next((p for p in PATCHES if p.NAME == name), None)
