"""The deploy roles the tests assume (`--roles FILE`), created straight in each account's IAM backend.

    {"roles": [{"arn": "arn:aws:iam::ACCOUNT:role/NAME", "external_id": null | "ID"}]}

Each role trusts 123456789012 (the portal's account in the emulator), with an sts:ExternalId
condition when external_id is a string. Roles are created in the backend, not through the API:
calling IAM in an account needs an AssumeRole into it first.
"""

from __future__ import annotations

import json
import re
from typing import Any

# `arn:<partition>:iam::<account>:role/<optional/path/>name`
ROLE_ARN = re.compile(r"^arn:(aws[a-z-]*):iam::(\d{12}):role(/(?:[\x21-\x7e]+/)?)([\w+=,.@-]{1,64})$")


def create_role(role_arn: str, external_id: str | None, trusted_account: str = "123456789012") -> None:
    """Create `role_arn` in its account, trusting `trusted_account`, requiring `external_id` if given.

    Goes straight to the account's IAM backend: putting a role into another account through the
    API would need an AssumeRole into that account first, which the patch above refuses.
    """
    from moto.iam.models import iam_backends

    match = ROLE_ARN.match(role_arn)
    if match is None:
        raise ValueError(f"not a role ARN: {role_arn!r}")
    partition, account, path, name = match.groups()
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:{partition}:iam::{trusted_account}:root"},
        "Action": "sts:AssumeRole",
    }
    if external_id is not None:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    iam_backends[account][partition].create_role(
        role_name=name,
        assume_role_policy_document=json.dumps({"Version": "2012-10-17", "Statement": [statement]}),
        path=path,
        permissions_boundary=None,
        description="created by the stackgate emulator",
        tags=[],
        max_session_duration=None,
    )


def load_roles(path: str) -> list[tuple[str, str | None]]:
    """Read and validate a `--roles` file: `{"roles": [{"arn": ..., "external_id": null | str}]}`."""
    with open(path) as fh:
        data = json.load(fh)
    entries = data.get("roles") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ValueError('expected {"roles": [...]}')
    roles: list[tuple[str, str | None]] = []
    for entry in entries:
        arn = entry.get("arn") if isinstance(entry, dict) else None
        external_id = entry.get("external_id") if isinstance(entry, dict) else None
        if not isinstance(arn, str) or ROLE_ARN.match(arn) is None:
            raise ValueError(f"not a role ARN: {entry!r}")
        if external_id is not None and not (isinstance(external_id, str) and 2 <= len(external_id) <= 1224):
            raise ValueError(f"external_id must be null or a 2-1224 character string: {entry!r}")
        if arn in {a for a, _ in roles}:
            raise ValueError(f"duplicate role: {arn}")
        roles.append((arn, external_id))
    return roles
