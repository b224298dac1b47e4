"""AssumeRole needs an existing role and the ExternalId its trust policy demands (stock: anything goes).

Stock moto hands out credentials for any role ARN in any account, whether or not the role
exists, with any ExternalId or none, so a portal that assumes the wrong role, or sends the
wrong ExternalId, is never caught. Real STS refuses with HTTP 403 `AccessDenied` (`User:
<caller> is not authorized to perform: sts:AssumeRole on resource: <role ARN>`, the same
answer whatever the reason, so it does not reveal whether the role exists) unless the role
exists in the ARN's account and its trust policy allows the caller; a `StringEquals`
`sts:ExternalId` condition (a string or a list) must be met by the request's ExternalId.

This refuses AssumeRole, before stock moto records anything, unless a role of that name (and
path, when the ARN has one) exists in that account's IAM backend with an Allow statement for
sts:AssumeRole whose `StringEquals` `sts:ExternalId` condition, if any, contains the request's
ExternalId. The caller's own account gets no special treatment. Principals and other condition
keys are not evaluated: every caller counts as trusted. `--roles` creates the roles the tests
need; without it every AssumeRole is refused.
"""

from __future__ import annotations

import json
import sys
import warnings
from typing import Any

from ..proof import ProofContext, ProofFailed, require
from ..roles import ROLE_ARN, create_role

NAME = "assume_role_enforces_roles"
LOG_REFUSALS = [False]  # refusals are logged once the proofs (which provoke some on purpose) are over


def _trust_statements(document: Any) -> list[dict[str, Any]]:
    """The statements of a trust policy (a JSON string, as IAM stores it, or already a dict)."""
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError:
            return []
    statements = document.get("Statement", []) if isinstance(document, dict) else []
    if isinstance(statements, dict):
        statements = [statements]
    return [s for s in statements if isinstance(s, dict)]


def _allows_assume_role(statement: dict[str, Any]) -> bool:
    actions = statement.get("Action", [])
    actions = [actions] if isinstance(actions, str) else actions
    return statement.get("Effect") == "Allow" and any(
        isinstance(a, str) and a.lower() in ("sts:assumerole", "sts:*", "*") for a in actions
    )


def _external_id_condition(statement: dict[str, Any]) -> list[str] | None:
    """The ExternalIds a statement's `StringEquals` `sts:ExternalId` condition allows, or None."""
    condition = statement.get("Condition")
    string_equals = condition.get("StringEquals") if isinstance(condition, dict) else None
    if not isinstance(string_equals, dict):
        return None
    for key, value in string_equals.items():
        if key.lower() == "sts:externalid":  # condition keys are case-insensitive in IAM
            return [value] if isinstance(value, str) else [v for v in value if isinstance(v, str)]
    return None


def assume_role_refusal(role_arn: str | None, external_id: str | None) -> str | None:
    """Why AssumeRole of `role_arn` with `external_id` is refused, or None when it is allowed."""
    from moto.iam.models import iam_backends

    match = ROLE_ARN.match(role_arn or "")
    if match is None:
        return "not a role ARN"
    partition, account, path, name = match.groups()
    role = next((r for r in iam_backends[account][partition].get_roles() if r.name == name), None)
    if role is None or (path != "/" and role.path != path):
        return f"role {name} does not exist in account {account}"
    allowing = [s for s in _trust_statements(role.assume_role_policy_document) if _allows_assume_role(s)]
    if not allowing:
        return "the role's trust policy allows no sts:AssumeRole"
    for statement in allowing:
        expected = _external_id_condition(statement)
        if expected is None or (external_id is not None and external_id in expected):
            return None
    return "missing ExternalId" if external_id is None else "ExternalId does not match the trust policy"


def apply() -> None:
    from moto.core.exceptions import ServiceException
    from moto.core.responses import ActionResult
    from moto.sts.responses import TokenResponse

    class AccessDenied(ServiceException):
        code = "AccessDenied"

    original = TokenResponse.assume_role

    def assume_role(self: TokenResponse) -> Any:
        role_arn = self._get_param("RoleArn")
        refusal = assume_role_refusal(role_arn, self._get_param("ExternalId"))
        if refusal is None:
            return original(self)
        _, caller, _ = self.backend.get_caller_identity(self.get_access_key(), self.region)
        error = AccessDenied(f"User: {caller} is not authorized to perform: sts:AssumeRole on resource: {role_arn}")
        with warnings.catch_warnings():  # moto warns that STS's model declares no AccessDenied
            warnings.simplefilter("ignore")
            _, headers, body = self.serialized(ActionResult(error))
        if LOG_REFUSALS[0]:  # the reason real STS keeps to itself, for whoever debugs a test
            print(f"emulator: AssumeRole {role_arn} refused: {refusal}", file=sys.stderr, flush=True)
        headers["status"] = 403  # STS's model declares no AccessDenied shape: moto would say 400
        return 403, headers, body

    TokenResponse.assume_role = assume_role


def prove(ctx: ProofContext) -> None:
    import urllib.request

    import uuid

    from botocore.exceptions import ClientError

    sts = ctx.portal_client("sts")

    # no role, no credentials; an ExternalId condition holds.
    def refused(role_arn: str, external_id: str | None, what: str) -> None:
        kwargs = {"RoleArn": role_arn, "RoleSessionName": "emulator-proof-denied"}
        if external_id is not None:
            kwargs["ExternalId"] = external_id
        try:
            sts.assume_role(**kwargs)
        except ClientError as exc:
            err, status = exc.response["Error"], exc.response["ResponseMetadata"]["HTTPStatusCode"]
            require(
                status == 403 and err.get("Code") == "AccessDenied" and err.get("Type") == "Sender"
                and f"sts:AssumeRole on resource: {role_arn}" in err.get("Message", ""),
                f"{what} gave HTTP {status} {err}",
            )
            return
        raise ProofFailed(f"{what} was allowed")

    def allowed(role_arn: str, external_id: str | None, what: str) -> dict[str, Any]:
        kwargs = {"RoleArn": role_arn, "RoleSessionName": "emulator-proof"}
        if external_id is not None:
            kwargs["ExternalId"] = external_id
        try:
            return sts.assume_role(**kwargs)["Credentials"]
        except ClientError as exc:
            raise ProofFailed(f"{what} was refused: {exc}") from None

    proof_role = "arn:aws:iam::999999999999:role/emulator-proof-plain"
    refused(proof_role, None, "AssumeRole of a role that does not exist (other account)")
    refused("arn:aws:iam::123456789012:role/emulator-proof-own", "x1",
            "AssumeRole of a role that does not exist (caller's own account)")
    # A role of that name in another account does not count.
    create_role("arn:aws:iam::999999999998:role/emulator-proof-plain", None)
    refused(proof_role, "any-id", "AssumeRole of a role that exists only in another account")
    # A role without an ExternalId condition takes any ExternalId, or none.
    create_role(proof_role, None)
    allowed(proof_role, f"any-{uuid.uuid4()}", "a role without ExternalId condition, any ExternalId")
    allowed(proof_role, None, "a role without ExternalId condition, no ExternalId")
    # An ExternalId condition as a string (made like --roles does) and as a list (through the IAM
    # API, in the caller's own account).
    pinned = "arn:aws:iam::999999999999:role/emulator-proof-pinned"
    create_role(pinned, "proof-expected-id")
    ctx.portal_client("iam").create_role(
        RoleName="emulator-proof-own",
        AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": ["proof-a", "proof-b"]}},
            }],
        }),
    )
    own = "arn:aws:iam::123456789012:role/emulator-proof-own"
    for role_arn, right in [(pinned, "proof-expected-id"), (own, "proof-b")]:
        refused(role_arn, "proof-wrong-id", f"{role_arn} with a wrong ExternalId")
        refused(role_arn, None, f"{role_arn} without ExternalId")
        allowed(role_arn, right, f"{role_arn} with the right ExternalId")
    with urllib.request.urlopen(f"{ctx.endpoint}/moto-api/data.json?service=sts&model=AssumedRole", timeout=10) as resp:
        assumed = json.loads(resp.read())["sts"]["AssumedRole"]
    require(not any(r.get("session_name") == "emulator-proof-denied" for r in assumed), "a refused AssumeRole was recorded")
