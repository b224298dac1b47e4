"""Evaluate a role's trust policy for one STS action, as IAM does, with the reason when it denies.

Covers what deploy-role trust policies use: Allow/Deny statements; Action/NotAction with
wildcards; `Principal` "*" or `{"AWS": ...}` naming an account (`123456789012`,
`arn:aws:iam::123456789012:root`), a role (matched by its sessions), a user or an assumed-role
session; and the condition operators StringEquals, StringNotEquals, StringEqualsIgnoreCase,
StringLike, StringNotLike (each also ...IfExists) and Null, on the request-context keys
sts:ExternalId, sts:SourceIdentity, sts:RoleSessionName, aws:PrincipalArn, aws:PrincipalAccount.
Anything else (an unknown operator, NotPrincipal, a Service principal) makes its statement not
apply: an unmodelled policy fails closed, and the reason says why.
"""

from __future__ import annotations

import fnmatch
import json
import re
from typing import Any

_STRING_OPS = {"stringequals", "stringnotequals", "stringequalsignorecase", "stringlike", "stringnotlike"}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements(document: Any) -> list[dict[str, Any]]:
    """The statements of a policy (a JSON string, as IAM stores it, or already a dict)."""
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError:
            return []
    found = document.get("Statement", []) if isinstance(document, dict) else []
    return [s for s in _as_list(found) if isinstance(s, dict)]


def _action_matches(statement: dict[str, Any], action: str) -> bool:
    def hit(patterns: Any) -> bool:
        return any(isinstance(p, str) and fnmatch.fnmatchcase(action.lower(), p.lower()) for p in _as_list(patterns))

    if "Action" in statement:
        return hit(statement["Action"])
    if "NotAction" in statement:
        return not hit(statement["NotAction"])
    return False


def _principal_matches(statement: dict[str, Any], caller_arn: str, caller_account: str) -> bool:
    principal = statement.get("Principal")
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        return False
    for value in _as_list(principal.get("AWS", [])):
        if not isinstance(value, str):
            continue
        if value == "*" or value in (caller_account, f"arn:aws:iam::{caller_account}:root"):
            return True
        role = re.match(r"^arn:aws[a-z-]*:iam::(\d{12}):role/(?:.*/)?([^/]+)$", value)
        if role and re.match(rf"^arn:aws[a-z-]*:sts::{role[1]}:assumed-role/{re.escape(role[2])}/[^/]+$", caller_arn):
            return True
        user = re.match(r"^arn:aws[a-z-]*:iam::(\d{12}):user/(?:.*/)?([^/]+)$", value)
        if user and user[1] == caller_account and caller_arn.endswith(f":user/{user[2]}"):
            return True
        if value == caller_arn:
            return True
    return False


def _condition_failure(condition: Any, context: dict[str, str | None]) -> str | None:
    """Why a statement's Condition block does not hold, or None when it holds."""
    if condition is None:
        return None
    if not isinstance(condition, dict):
        return "its Condition block is malformed"
    for operator, clauses in condition.items():
        op = operator.lower()
        if_exists = op.endswith("ifexists")
        base = op[: -len("ifexists")] if if_exists else op
        if (base not in _STRING_OPS and base != "null") or not isinstance(clauses, dict):
            return f"it uses the condition operator {operator}, which the emulator does not model"
        for key, wanted in clauses.items():
            value = context.get(key.lower())
            values = [str(w) for w in _as_list(wanted)]
            if base == "null":
                holds = (value is None) == (values[0].lower() == "true")
            elif value is None:
                holds = if_exists or base in ("stringnotequals", "stringnotlike")
            elif base == "stringequals":
                holds = value in values
            elif base == "stringequalsignorecase":
                holds = value.lower() in [w.lower() for w in values]
            elif base == "stringnotequals":
                holds = value not in values
            elif base == "stringlike":
                holds = any(fnmatch.fnmatchcase(value, w) for w in values)
            else:  # stringnotlike
                holds = not any(fnmatch.fnmatchcase(value, w) for w in values)
            if not holds:
                given = "none was given" if value is None else f"{value!r} was given"
                return f"its {operator} condition on {key} does not hold ({given})"
    return None


def denial(document: Any, action: str, caller_arn: str, caller_account: str, context: dict[str, str | None]) -> str | None:
    """Why the trust policy does not allow `action` for the caller, or None when it does."""
    context = {k.lower(): v for k, v in context.items()}
    context.setdefault("aws:principalarn", caller_arn)
    context.setdefault("aws:principalaccount", caller_account)
    reasons: list[str] = []
    allowed = False
    for statement in statements(document):
        if not _action_matches(statement, action):
            continue
        if not _principal_matches(statement, caller_arn, caller_account):
            reasons.append(f"no statement allowing {action} trusts {caller_arn}")
            continue
        failure = _condition_failure(statement.get("Condition"), context)
        if statement.get("Effect") == "Deny" and failure is None:
            return f"an explicit Deny of {action} in the trust policy"
        if statement.get("Effect") == "Allow":
            if failure is None:
                allowed = True
            else:
                reasons.append(f"the statement allowing {action} does not apply: {failure}")
    if allowed:
        return None
    return reasons[-1] if reasons else f"the trust policy does not allow {action}"
