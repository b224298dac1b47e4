"""AssumeRole is decided by the role's trust policy, and refused with real STS's words.

Real STS answers HTTP 403 `AccessDenied` "User: <caller> is not authorized to perform: <action> on
resource: <role ARN>" unless the role exists in the ARN's account and its trust policy allows the
caller `sts:AssumeRole` under its conditions (`sts:ExternalId`, `sts:SourceIdentity`, ...); a
request carrying a SourceIdentity also needs `sts:SetSourceIdentity`, one carrying session tags
`sts:TagSession`. The action named is the only difference between refusals: a missing role, a
wrong or missing ExternalId and a missing SourceIdentity all read "...perform: sts:AssumeRole...".
A successful answer echoes the SourceIdentity. Stock moto 5.2.5 hands out credentials for any role
ARN, existing or not, with any ExternalId or none, ignores SourceIdentity and session tags, and
does not echo SourceIdentity.

This refuses AssumeRole, before moto records anything, unless `emulator.trust_policy` finds the
role's trust policy allows each action the request needs, for the caller (moto's identity of the
access key) and its request context. Each refusal is kept as an `sts` / `AssumeRoleRefusal` model
(GET /moto-api/data.json?service=sts&model=AssumeRoleRefusal), with the reason real STS keeps to
itself, so a test can check it was refused for the reason it meant. An accepted one records
`source_identity` and `session_tags` on moto's AssumedRole and answers with SourceIdentity.
`--roles` creates the roles the tests assume; without it every AssumeRole is refused.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

from ..proof import ProofContext
from ..roles import ROLE_ARN
from ..trust_policy import denial

NAME = "assume_role_enforces_roles"
LOG_REFUSALS = [False]  # set once the proofs (which provoke refusals on purpose) are over

_REFUSAL_MODEL: list[Any] = []


def refusal_model() -> Any:
    """A moto-tracked model class (service `sts`): its instances show in data.json and go on reset."""
    if not _REFUSAL_MODEL:
        from moto.core.common_models import BaseModel

        def init(self: Any, **fields: Any) -> None:
            self.__dict__.update(fields)

        _REFUSAL_MODEL.append(type("AssumeRoleRefusal", (BaseModel,), {"__module__": "moto.sts.refusals", "__init__": init}))
    return _REFUSAL_MODEL[0]


def refusal(role_arn: str | None, caller_arn: str, caller_account: str, context: dict[str, Any]) -> tuple[str, str] | None:
    """(action refused, reason) for an AssumeRole request, or None when it is allowed."""
    from moto.iam.models import iam_backends

    match = ROLE_ARN.match(role_arn or "")
    if match is None:
        return "sts:AssumeRole", f"{role_arn!r} is not a role ARN"
    partition, account, path, name = match.groups()
    role = next((r for r in iam_backends[account][partition].get_roles() if r.name == name), None)
    if role is None or (path != "/" and role.path != path):
        return "sts:AssumeRole", f"the role {name} does not exist in account {account}"
    needed = ["sts:AssumeRole"]
    if context.get("tags"):
        needed.append("sts:TagSession")
    if context.get("sts:SourceIdentity") is not None:
        needed.append("sts:SetSourceIdentity")
    keys = {k: v for k, v in context.items() if k != "tags"}
    for action in needed:
        why = denial(role.assume_role_policy_document, action, caller_arn, caller_account, keys)
        if why is not None:
            return action, why
    return None


def apply() -> None:
    from moto.core.exceptions import ServiceException
    from moto.core.responses import ActionResult
    from moto.sts.responses import TokenResponse

    class AccessDenied(ServiceException):
        code = "AccessDenied"

    original = TokenResponse.assume_role
    model = refusal_model()

    def assume_role(self: TokenResponse) -> Any:
        role_arn = self._get_param("RoleArn")
        source_identity = self._get_param("SourceIdentity")
        tags = self._get_param("Tags") or []
        context = {
            "sts:ExternalId": self._get_param("ExternalId"),
            "sts:SourceIdentity": source_identity,
            "sts:RoleSessionName": self._get_param("RoleSessionName"),
            "tags": tags,
        }
        _, caller_arn, caller_account = self.backend.get_caller_identity(self.get_access_key(), self.region)
        refused = refusal(role_arn, caller_arn, caller_account, context)
        if refused is None:
            result = original(self)
            assumed = result.result["Credentials"]  # moto's AssumedRole
            assumed.source_identity = source_identity
            assumed.session_tags = [{"Key": t.get("Key"), "Value": t.get("Value")} for t in tags]
            if source_identity is not None:
                result.result["SourceIdentity"] = source_identity
            return result
        action, reason = refused
        message = f"User: {caller_arn} is not authorized to perform: {action} on resource: {role_arn}"
        model(role_arn=role_arn, caller_arn=caller_arn, action=action, reason=reason, message=message,
              session_name=context["sts:RoleSessionName"], external_id=context["sts:ExternalId"],
              source_identity=source_identity)
        with warnings.catch_warnings():  # moto warns that STS's model declares no AccessDenied
            warnings.simplefilter("ignore")
            _, headers, body = self.serialized(ActionResult(AccessDenied(message)))
        if LOG_REFUSALS[0]:
            print(f"emulator: AssumeRole {role_arn} refused ({action}): {reason}", file=sys.stderr, flush=True)
        headers["status"] = 403  # STS's model declares no AccessDenied shape: moto would say 400
        return 403, headers, body

    TokenResponse.assume_role = assume_role


def prove(ctx: ProofContext) -> None:
    import json
    import urllib.request

    from botocore.exceptions import ClientError

    from ..proof import require
    from ..roles import RoleSpec, create_role

    sts = ctx.portal_client("sts")
    caller = sts.get_caller_identity()["Arn"]

    def attempt(role_arn: str, session: str = "emulator-proof-denied", **kwargs: Any) -> Any:
        try:
            return sts.assume_role(RoleArn=role_arn, RoleSessionName=session, **kwargs)
        except ClientError as exc:
            return exc

    def refused(role_arn: str, action: str, reason: str, what: str, **kwargs: Any) -> None:
        got = attempt(role_arn, **kwargs)
        require(isinstance(got, ClientError), f"{what} was allowed")
        err, status = got.response["Error"], got.response["ResponseMetadata"]["HTTPStatusCode"]
        want = f"User: {caller} is not authorized to perform: {action} on resource: {role_arn}"
        require(
            status == 403 and err.get("Code") == "AccessDenied" and err.get("Type") == "Sender"
            and err.get("Message") == want,
            f"{what} gave HTTP {status} {err}, not AccessDenied {want!r}",
        )
        with urllib.request.urlopen(f"{ctx.endpoint}/moto-api/data.json", timeout=10) as resp:
            rows = json.loads(resp.read()).get("sts", {}).get("AssumeRoleRefusal", [])
        require(rows and reason in rows[-1].get("reason", ""), f"{what}: the recorded reason is {rows[-1:]}, not {reason!r}")

    def allowed(role_arn: str, what: str, **kwargs: Any) -> dict[str, Any]:
        got = attempt(role_arn, "emulator-proof-allowed", **kwargs)
        require(not isinstance(got, ClientError), f"{what} was refused: {got}")
        return got

    plain = "arn:aws:iam::999999999999:role/emulator-proof-plain"
    refused(plain, "sts:AssumeRole", "does not exist in account 999999999999", "a role that does not exist")
    create_role(RoleSpec("arn:aws:iam::999999999998:role/emulator-proof-plain"))
    refused(plain, "sts:AssumeRole", "does not exist", "a role that exists only in another account")
    create_role(RoleSpec(plain))
    allowed(plain, "a role without conditions, any ExternalId", ExternalId="anything-at-all")
    got = allowed(plain, "a role without conditions, with SourceIdentity and tags",
                  SourceIdentity="user-proof", Tags=[{"Key": "team", "Value": "platform"}])
    require(got.get("SourceIdentity") == "user-proof", f"AssumeRole does not echo SourceIdentity: {got.keys()}")

    # The assumed credentials act as the assumed role, in the role's account.
    who = ctx.credentials_client("sts", got["Credentials"]).get_caller_identity()
    arn = "arn:aws:sts::999999999999:assumed-role/emulator-proof-plain/emulator-proof-allowed"
    require(
        who["Arn"] == arn and who["Account"] == "999999999999" and who["UserId"].startswith("AROA")
        and who["UserId"].endswith(":emulator-proof-allowed") and got["AssumedRoleUser"]["Arn"] == arn,
        f"GetCallerIdentity with assumed credentials gave {who}, not {arn}",
    )
    with urllib.request.urlopen(f"{ctx.endpoint}/moto-api/data.json", timeout=10) as resp:
        assumed = json.loads(resp.read())["sts"]["AssumedRole"]
    require(
        any(r.get("source_identity") == "user-proof" and r.get("session_tags") == [{"Key": "team", "Value": "platform"}]
            for r in assumed),
        "data.json does not show the SourceIdentity and session tags of an AssumeRole",
    )
    require(not any(r.get("session_name") == "emulator-proof-denied" for r in assumed), "a refused AssumeRole was recorded")

    pinned = "arn:aws:iam::999999999999:role/emulator-proof-pinned"
    create_role(RoleSpec(pinned, external_id="proof-expected-id", require_source_identity=True))
    refused(pinned, "sts:AssumeRole", "condition on sts:ExternalId does not hold ('wrong' was given)",
            "a wrong ExternalId", ExternalId="wrong", SourceIdentity="user-proof")
    refused(pinned, "sts:AssumeRole", "condition on sts:ExternalId does not hold (none was given)",
            "no ExternalId", SourceIdentity="user-proof")
    refused(pinned, "sts:AssumeRole", "condition on sts:SourceIdentity does not hold (none was given)",
            "no SourceIdentity to a role that requires one", ExternalId="proof-expected-id")
    allowed(pinned, "the right ExternalId and a SourceIdentity", ExternalId="proof-expected-id", SourceIdentity="u-1")

    other = "arn:aws:iam::999999999999:role/emulator-proof-other-principal"
    create_role(RoleSpec(other, trusted_principal="arn:aws:iam::111111111111:root"))
    refused(other, "sts:AssumeRole", f"trusts {caller}", "a caller the trust policy does not name")

    # A role made through IAM in the caller's account, trusting sts:AssumeRole only, with a list.
    ctx.portal_client("iam").create_role(RoleName="emulator-proof-own", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "sts:AssumeRole",
                       "Condition": {"StringEquals": {"sts:ExternalId": ["proof-a", "proof-b"]}}}],
    }))
    own = "arn:aws:iam::123456789012:role/emulator-proof-own"
    refused(own, "sts:AssumeRole", "('proof-c' was given)", "an ExternalId not in the list", ExternalId="proof-c")
    refused(own, "sts:SetSourceIdentity", "does not allow sts:SetSourceIdentity",
            "a SourceIdentity the trust policy does not allow", ExternalId="proof-b", SourceIdentity="u-1")
    refused(own, "sts:TagSession", "does not allow sts:TagSession", "session tags the trust policy does not allow",
            ExternalId="proof-b", Tags=[{"Key": "k", "Value": "v"}])
    allowed(own, "an ExternalId in the list, no SourceIdentity or tags", ExternalId="proof-b")
