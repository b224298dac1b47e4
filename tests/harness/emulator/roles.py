"""The deploy roles the tests assume (`--roles FILE`), created straight in each account's IAM backend.

    {"roles": [{"arn": "arn:aws:iam::222222222222:role/stackgate-deploy",
                "external_id": null | "ID",                      # sts:ExternalId StringEquals
                "require_source_identity": false | true,         # Null sts:SourceIdentity = false
                "trusted_principal": "arn:aws:iam::123456789012:root"}]}   # the default

Each role's trust policy is what a stackgate deploy role's must be in real AWS: one statement
allowing the trusted principal `sts:AssumeRole`, `sts:SetSourceIdentity` and `sts:TagSession` (the
portal always sends a SourceIdentity and session tags, and STS refuses either unless the trust
policy allows it), under the conditions the entry asks for. Roles are created in the backend, not
through the API: calling IAM in an account needs an AssumeRole into it first.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

# `arn:<partition>:iam::<account>:role/<optional/path/>name`
ROLE_ARN = re.compile(r"^arn:(aws[a-z-]*):iam::(\d{12}):role(/(?:[\x21-\x7e]+/)?)([\w+=,.@-]{1,64})$")
PRINCIPAL = re.compile(r"^(\d{12}|arn:aws[a-z-]*:(iam|sts)::\d{12}:(root|(user|role|assumed-role)/[\x21-\x7e]+))$")
TRUST_ACTIONS = ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"]


@dataclass(frozen=True)
class RoleSpec:
    arn: str
    external_id: str | None = None
    require_source_identity: bool = False
    trusted_principal: str = "arn:aws:iam::123456789012:root"

    def trust_policy(self) -> dict[str, Any]:
        statement: dict[str, Any] = {
            "Effect": "Allow",
            "Principal": {"AWS": self.trusted_principal},
            "Action": list(TRUST_ACTIONS),
        }
        condition: dict[str, Any] = {}
        if self.external_id is not None:
            condition["StringEquals"] = {"sts:ExternalId": self.external_id}
        if self.require_source_identity:
            condition["Null"] = {"sts:SourceIdentity": "false"}
        if condition:
            statement["Condition"] = condition
        return {"Version": "2012-10-17", "Statement": [statement]}


def create_role(spec: RoleSpec, exist_ok: bool = False) -> None:
    """Create the role in its account's IAM backend with the trust policy `spec` describes."""
    from moto.iam.models import iam_backends

    match = ROLE_ARN.match(spec.arn)
    if match is None:
        raise ValueError(f"not a role ARN: {spec.arn!r}")
    partition, account, path, name = match.groups()
    backend = iam_backends[account][partition]
    if exist_ok and any(r.name == name for r in backend.get_roles()):
        return
    backend.create_role(
        role_name=name,
        assume_role_policy_document=json.dumps(spec.trust_policy()),
        path=path,
        permissions_boundary=None,
        description="created by the stackgate emulator",
        tags=[],
        max_session_duration=None,
    )


def load_roles(path: str) -> list[RoleSpec]:
    """Read and validate a `--roles` file."""
    with open(path) as fh:
        data = json.load(fh)
    entries = data.get("roles") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ValueError('expected {"roles": [...]}')
    roles: list[RoleSpec] = []
    known = {"arn", "external_id", "require_source_identity", "trusted_principal"}
    for entry in entries:
        if not isinstance(entry, dict) or set(entry) - known:
            raise ValueError(f"an entry has only the keys {sorted(known)}: {entry!r}")
        arn, external_id = entry.get("arn"), entry.get("external_id")
        if not isinstance(arn, str) or ROLE_ARN.match(arn) is None:
            raise ValueError(f"not a role ARN: {entry!r}")
        if external_id is not None and not (isinstance(external_id, str) and 2 <= len(external_id) <= 1224):
            raise ValueError(f"external_id must be null or a 2-1224 character string: {entry!r}")
        require_si = entry.get("require_source_identity", False)
        if not isinstance(require_si, bool):
            raise ValueError(f"require_source_identity must be true or false: {entry!r}")
        principal = entry.get("trusted_principal", RoleSpec.trusted_principal)
        if not isinstance(principal, str) or PRINCIPAL.match(principal) is None:
            raise ValueError(f"trusted_principal must be an account id or an IAM principal ARN: {entry!r}")
        if arn in {r.arn for r in roles}:
            raise ValueError(f"duplicate role: {arn}")
        roles.append(RoleSpec(arn, external_id, require_si, principal))
    return roles
