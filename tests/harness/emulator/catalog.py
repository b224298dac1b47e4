"""What the Service Catalog patches share: ids, lookups, errors, response shapes, pagination.

State lives on moto's own per-account, per-region ServiceCatalogBackend (so a reset clears it and
moto's remaining handlers, DeletePortfolio, DescribeProduct, DeleteProduct and tagging, see the
same portfolios and products): portfolios and products are moto's objects with Service Catalog's
id formats (`port-`, `prod-` + 13 characters); a product also carries `view_id` (`prodview-...`),
`artifacts` (provisioning artifacts, `pa-...`, as dicts) and `portfolio_ids`.
"""

from __future__ import annotations

import json
import random
import string
from typing import Any

ARTIFACT_TYPES = {"CLOUD_FORMATION_TEMPLATE", "MARKETPLACE_AMI", "MARKETPLACE_CAR", "TERRAFORM_OPEN_SOURCE", "TERRAFORM_CLOUD", "EXTERNAL"}


def new_id(prefix: str) -> str:
    return f"{prefix}-" + "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(13))


def params(response: Any) -> dict[str, Any]:
    return json.loads(response.body or "{}")


def backend(response: Any) -> Any:
    from moto.servicecatalog.models import servicecatalog_backends

    return servicecatalog_backends[response.current_account][response.region]


def not_found(message: str) -> Exception:
    from moto.servicecatalog.exceptions import ResourceNotFoundException

    return ResourceNotFoundException(message)


def invalid(message: str) -> Exception:
    from moto.servicecatalog.exceptions import InvalidParametersException

    return InvalidParametersException(message)


def portfolio(sc: Any, portfolio_id: str | None) -> Any:
    found = sc.portfolios.get(portfolio_id or "")
    if found is None:
        raise not_found(f"Portfolio {portfolio_id} not found.")
    return found


def product(sc: Any, product_id: str | None = None, name: str | None = None) -> Any:
    if product_id:
        found = sc.products.get(product_id)
        if found is None:
            raise not_found(f"Product {product_id} not found.")
        return found
    if not name:
        raise invalid("Either Id or Name must be specified.")
    named = [p for p in sc.products.values() if p.name == name]
    if not named:
        raise not_found(f"Product {name} not found.")
    if len(named) > 1:
        raise invalid(f"Multiple products with name {name} found.")
    return named[0]


def artifact(prod: Any, artifact_id: str | None = None, name: str | None = None) -> dict[str, Any]:
    if artifact_id:
        found = [a for a in catalog_state(prod)["artifacts"] if a["Id"] == artifact_id]
    elif name:
        found = [a for a in catalog_state(prod)["artifacts"] if a["Name"] == name]
        if len(found) > 1:
            raise invalid(f"Multiple Provisioning Artifact with name {name} found.")
    else:
        raise invalid("Either ProvisioningArtifactId or ProvisioningArtifactName must be specified.")
    if not found:
        raise not_found(f"Provisioning artifact {artifact_id or name} not found for product {prod.id}.")
    return found[0]


def catalog_state(prod: Any) -> dict[str, Any]:
    """The emulator's additions to a moto Product (created empty for products moto made itself)."""
    return prod.__dict__.setdefault("stackgate", {"view_id": new_id("prodview"), "artifacts": [], "portfolio_ids": []})


def new_artifact(parameters: dict[str, Any] | None) -> dict[str, Any]:
    """A provisioning artifact from ProvisioningArtifactParameters / Parameters, validated as AWS does."""
    from moto.core.utils import utcnow

    parameters = parameters or {}
    info = parameters.get("Info") or {}
    url, physical = info.get("LoadTemplateFromURL"), info.get("ImportFromPhysicalId")
    if bool(url) == bool(physical):
        raise invalid("Exactly one of LoadTemplateFromURL and ImportFromPhysicalId must be given in Info.")
    if url and not (url.startswith("https://") or url.startswith("s3://")):
        raise invalid(f"Invalid templateUrl: {url}")
    if physical and not physical.startswith("arn:aws:cloudformation:"):
        raise invalid(f"Invalid physical id: {physical}")
    kind = parameters.get("Type", "CLOUD_FORMATION_TEMPLATE")
    if kind not in ARTIFACT_TYPES:
        raise invalid(f"Invalid provisioning artifact type: {kind}")
    return {"Id": new_id("pa"), "Name": parameters.get("Name") or "", "Description": parameters.get("Description") or "",
            "Type": kind, "CreatedTime": utcnow(), "Active": True, "Guidance": "DEFAULT",
            "_info": {"TemplateUrl": url} if url else {"ImportFromPhysicalId": physical}}


def artifact_detail(art: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in art.items() if not k.startswith("_")}


def artifact_summary(art: dict[str, Any]) -> dict[str, Any]:
    return {"Id": art["Id"], "Name": art["Name"], "Description": art["Description"], "CreatedTime": art["CreatedTime"],
            "ProvisioningArtifactMetadata": {}}


def view_detail(prod: Any) -> dict[str, Any]:
    summary = {"Id": catalog_state(prod)["view_id"], "ProductId": prod.id, "Name": prod.name, "Owner": prod.owner,
               "ShortDescription": prod.description, "Type": prod.product_type, "Distributor": prod.distributor,
               "HasDefaultPath": False, "SupportEmail": prod.support_email, "SupportDescription": prod.support_description,
               "SupportUrl": prod.support_url}
    detail = {"ProductViewSummary": {k: v for k, v in summary.items() if v is not None}, "Status": "AVAILABLE",
              "ProductARN": prod.arn, "CreatedTime": prod.created_time}
    if prod.source_connection:
        detail["SourceConnection"] = prod.source_connection
    return detail


def page(items: list[Any], page_size: Any, token: Any, limit: int) -> tuple[list[Any], str | None]:
    """One page of `items` and the next page's token (an offset), as Service Catalog pages."""
    size = int(page_size or limit)
    if size < 0 or size > limit:
        raise invalid(f"PageSize must be between 0 and {limit}.")
    size = size or limit
    start = int(token) if token and str(token).isdigit() else 0
    rest = items[start:]
    return rest[:size], (str(start + size) if len(rest) > size else None)
