"""Service Catalog provisioning artifacts (product versions): listed, added, described, deprecated.

Real Service Catalog's CreateProvisioningArtifact adds a version to a product (`pa-...`, Active,
Guidance DEFAULT; Info as for CreateProduct; a repeated IdempotencyToken returns the first) and
answers ProvisioningArtifactDetail, Info (`TemplateUrl` or `ImportFromPhysicalId`) and Status;
ListProvisioningArtifacts lists a product's versions; DescribeProvisioningArtifact finds one by
ProvisioningArtifactId or ProvisioningArtifactName within ProductId or ProductName ("Multiple
Provisioning Artifact with name ... found" when a name is ambiguous); UpdateProvisioningArtifact
changes Name, Description, Active and Guidance (DEFAULT or DEPRECATED); unknown products or
versions are ResourceNotFoundException. Same-named versions are allowed. Stock moto 5.2.5 answers
all four with HTTP 500. This adds the handlers, over the versions servicecatalog_products' CreateProduct stores.
The emulator completes at once: Status is AVAILABLE on the first answer.
"""

from __future__ import annotations

from typing import Any

from .. import catalog
from ..proof import ProofContext, require

NAME = "servicecatalog_artifacts"


def apply() -> None:
    from moto.core.responses import ActionResult
    from moto.servicecatalog.responses import ServiceCatalogResponse

    def answer(art: dict[str, Any]) -> Any:
        return ActionResult({"ProvisioningArtifactDetail": catalog.artifact_detail(art), "Info": art["_info"], "Status": "AVAILABLE"})

    def list_provisioning_artifacts(self: ServiceCatalogResponse) -> Any:
        prod = catalog.product(catalog.backend(self), catalog.params(self).get("ProductId"))
        return ActionResult({"ProvisioningArtifactDetails": [catalog.artifact_detail(a) for a in catalog.catalog_state(prod)["artifacts"]]})

    def create_provisioning_artifact(self: ServiceCatalogResponse) -> Any:
        p, sc = catalog.params(self), catalog.backend(self)
        state = catalog.catalog_state(catalog.product(sc, p.get("ProductId")))
        tokens = sc.__dict__.setdefault("stackgate_artifact_tokens", {})
        token = p.get("IdempotencyToken")
        if token and token in tokens:
            return answer(next(a for a in state["artifacts"] if a["Id"] == tokens[token]))
        art = catalog.new_artifact(p.get("Parameters"))
        state["artifacts"].append(art)
        if token:
            tokens[token] = art["Id"]
        return answer(art)

    def describe_provisioning_artifact(self: ServiceCatalogResponse) -> Any:
        p, sc = catalog.params(self), catalog.backend(self)
        prod = catalog.product(sc, p.get("ProductId"), p.get("ProductName"))
        art = catalog.artifact(prod, p.get("ProvisioningArtifactId"), p.get("ProvisioningArtifactName"))
        result = answer(art).result
        if p.get("IncludeProvisioningArtifactParameters"):
            result["ProvisioningArtifactParameters"] = []  # the emulator does not read the template
        return ActionResult(result)

    def update_provisioning_artifact(self: ServiceCatalogResponse) -> Any:
        p, sc = catalog.params(self), catalog.backend(self)
        art = catalog.artifact(catalog.product(sc, p.get("ProductId")), p.get("ProvisioningArtifactId"))
        if p.get("Guidance") is not None and p["Guidance"] not in ("DEFAULT", "DEPRECATED"):
            raise catalog.invalid(f"Invalid guidance: {p['Guidance']}")
        for key in ("Name", "Description", "Active", "Guidance"):
            if p.get(key) is not None:
                art[key] = p[key]
        return answer(art)

    for handler in (list_provisioning_artifacts, create_provisioning_artifact, describe_provisioning_artifact, update_provisioning_artifact):
        setattr(ServiceCatalogResponse, handler.__name__, handler)


def prove(ctx: ProofContext) -> None:
    from botocore.exceptions import ClientError

    sc = ctx.client("servicecatalog", "999999999999", "eu-west-2")
    url = "https://proof-bucket.s3.eu-west-2.amazonaws.com/web-app/{}.json"
    made = sc.create_product(Name="proof-web-app", Owner="platform", ProductType="CLOUD_FORMATION_TEMPLATE", IdempotencyToken="proof-web-app",
                             ProvisioningArtifactParameters={"Name": "1.0.0", "Info": {"LoadTemplateFromURL": url.format("1.0.0")}})
    product_id, first = made["ProductViewDetail"]["ProductViewSummary"]["ProductId"], made["ProvisioningArtifactDetail"]["Id"]
    version = {"Name": "1.1.0", "Description": "TLS 1.3", "Info": {"LoadTemplateFromURL": url.format("1.1.0")}, "Type": "CLOUD_FORMATION_TEMPLATE"}
    added = sc.create_provisioning_artifact(ProductId=product_id, Parameters=version, IdempotencyToken="proof-web-app-1.1.0")
    again = sc.create_provisioning_artifact(ProductId=product_id, Parameters=version, IdempotencyToken="proof-web-app-1.1.0")
    second = added["ProvisioningArtifactDetail"]["Id"]
    require(added["Status"] == "AVAILABLE" and added["Info"] == {"TemplateUrl": url.format("1.1.0")} and again["ProvisioningArtifactDetail"]["Id"] == second,
            f"CreateProvisioningArtifact {added} / {again}")
    listed = [a["Id"] for a in sc.list_provisioning_artifacts(ProductId=product_id)["ProvisioningArtifactDetails"]]
    require(listed == [first, second], f"ListProvisioningArtifacts {listed}")
    described = sc.describe_provisioning_artifact(ProductName="proof-web-app", ProvisioningArtifactName="1.0.0")
    require(described["ProvisioningArtifactDetail"]["Id"] == first and described["Info"]["TemplateUrl"] == url.format("1.0.0"), f"{described}")
    updated = sc.update_provisioning_artifact(ProductId=product_id, ProvisioningArtifactId=first, Guidance="DEPRECATED", Active=False)
    detail = sc.describe_provisioning_artifact(ProductId=product_id, ProvisioningArtifactId=first)["ProvisioningArtifactDetail"]
    require(updated["ProvisioningArtifactDetail"]["Guidance"] == detail["Guidance"] == "DEPRECATED" and detail["Active"] is False, f"{detail}")
    for call, kwargs in [(sc.list_provisioning_artifacts, {"ProductId": "prod-proofmissing01"}),
                         (sc.describe_provisioning_artifact, {"ProductId": product_id, "ProvisioningArtifactId": "pa-proofmissing001"}),
                         (sc.update_provisioning_artifact, {"ProductId": product_id, "ProvisioningArtifactId": "pa-proofmissing001", "Active": True})]:
        try:
            call(**kwargs)
            require(False, f"{call.__name__} {kwargs} was accepted")
        except ClientError as exc:
            require(exc.response["Error"]["Code"] == "ResourceNotFoundException", f"{call.__name__} {kwargs} gave {exc}")
