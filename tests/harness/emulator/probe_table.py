"""Turn `emulator.probe` results into README.md's table (markdown)."""

from __future__ import annotations

from typing import Any


def _short(text: str, limit: int = 110) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def failure(text: str) -> str:
    """A failed Ref/GetAtt probe, in a few words."""
    if "references undefined resource" in text:
        return "fails the stack (moto skipped the resource)"
    if "does not support attribute type" in text:
        return "fails the stack (unsupported attribute)"
    if "get_cfn_attribute" in text:
        return "fails the stack (`" + text.split(": ", 2)[-1].strip() + "`)"
    if "HTTP 500" in text:
        return "DescribeStacks answers 500"
    return _short(text, 80)


def outcome(result: dict[str, Any], placeholder: bool = False) -> str:
    """One cell: what happened to the case's Subject (`placeholder`: the patch only records it)."""
    create = result["create"]
    if create != "COMPLETE":
        return "**breaks**: " + _short(create)
    phys = result.get("physical_id", "")
    if phys.startswith("(not listed"):
        cell = "accepted, **not created** (listed without logical id)"
    elif not phys:
        cell = "accepted, **no physical id**"
    else:
        cell = "recorded (placeholder)" if placeholder else "created"
    bad = []
    for name, got in result.get("outputs", {}).items():
        label = "Ref" if name == "Ref" else f"GetAtt {name}"
        if got.startswith("= "):
            value = got[2:]
            if "object at 0x" in value or value.startswith("{'Fn::GetAtt'"):
                bad.append(f"{label} → garbage `{_short(value, 40)}`")
        elif got == "no output (value empty)":
            bad.append(f"{label} → empty")
        else:
            bad.append(f"{label} → {failure(got)}")
    if result.get("ignored"):
        cell += "; **ignores** " + ", ".join(result["ignored"])
    if bad:
        cell += "; " + "; ".join(bad)
    if result.get("delete", "ok") != "ok":
        cell += "; delete: " + _short(result["delete"], 80)
    return cell


def patch_notes() -> dict[str, list[str]]:
    """type -> ["patch: what it does", ...] from the registry's TYPES declarations."""
    from .registry import PATCHES

    notes: dict[str, list[str]] = {}
    for patch in PATCHES:
        for rtype, how in getattr(patch, "TYPES", {}).items():
            notes.setdefault(rtype, []).append(f"`{patch.NAME}`: {how}")
    return notes


def table(baseline: list[dict[str, Any]], patched: list[dict[str, Any]]) -> str:
    notes = patch_notes()
    lines = [
        "| resource type (probe case) | blueprint | moto 5.2.5 (+ change-set patches) | with every patch | patch |",
        "| --- | --- | --- | --- | --- |",
    ]
    for before, after in zip(baseline, patched):
        how = "<br>".join(notes.get(before["type"], [])) or "—"
        recorded = "placeholder" in how or "recorded" in how
        lines.append(f"| {before['label']} | {before['blueprint']} | {outcome(before)} | {outcome(after, recorded)} | {how} |")
    return "\n".join(lines)
