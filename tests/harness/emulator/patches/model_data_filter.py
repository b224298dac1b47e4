"""`GET /moto-api/data.json?service=sts&model=AssumedRole` returns only that slice (a harness patch).

Not a correctness bug but a speed one: the stock endpoint serialises every tracked model of every
service (default VPCs, subnets, ... of every account and region touched), megabytes that grow with
every test, seconds per call. The tests only read `sts` -> `AssumedRole` (and
`AssumeRoleRefusal`, see assume_role). Without the query parameters the answer is the stock one,
so a test asking with them also works against a stock server.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from ..proof import PROOF_SESSION, ProofContext, require

NAME = "model_data_filter"


def apply() -> None:
    from urllib.parse import parse_qs, urlparse

    from moto.moto_api._internal.responses import MotoAPIResponse

    original = MotoAPIResponse.model_data

    def model_data(self: Any, request: Any, full_url: str, headers: Any) -> Any:
        query = parse_qs(urlparse(full_url).query)
        services, models = set(query.get("service", [])), set(query.get("model", []))
        if not services and not models:
            return original(self, request, full_url, headers)
        from moto.core.model_instances import model_data as tracked

        results: dict[str, dict[str, list[Any]]] = {}
        for service in sorted(tracked):
            if services and service not in services:
                continue
            results[service] = {}
            for name in sorted(tracked[service]):
                if models and name not in models:
                    continue
                rows = []
                for instance in tracked[service][name].instances_tracked:  # type: ignore[attr-defined]
                    row = {}
                    for attr in dir(instance):
                        if attr.startswith("_"):
                            continue
                        try:
                            value = getattr(instance, attr)
                            json.dumps(value)
                        except (TypeError, AttributeError, ValueError):
                            continue
                        row[attr] = value
                    rows.append(row)
                results[service][name] = rows
        return 200, {"Content-Type": "application/javascript"}, json.dumps(results)

    MotoAPIResponse.model_data = model_data


def prove(ctx: ProofContext) -> None:
    ctx.credentials("999999999999")  # an AssumeRole to find
    with urllib.request.urlopen(f"{ctx.endpoint}/moto-api/data.json?service=sts&model=AssumedRole", timeout=10) as resp:
        data = json.loads(resp.read())
    require(
        list(data) == ["sts"] and list(data["sts"]) == ["AssumedRole"]
        and any(r.get("session_name") == PROOF_SESSION and r.get("account_id") == "999999999999" for r in data["sts"]["AssumedRole"]),
        f"the filtered data.json is {str(data)[:300]}",
    )
