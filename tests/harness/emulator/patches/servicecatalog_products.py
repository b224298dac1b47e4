"""Service Catalog products: created with their first version, searched, described, associated.

Real Service Catalog's CreateProduct stores the product (ids `prod-...`, view `prodview-...`) with
the provisioning artifact of ProvisioningArtifactParameters (`pa-...`, Active, Guidance DEFAULT;
Info needs exactly one of LoadTemplateFromURL, an https/S3 template URL, or ImportFromPhysicalId, a
stack ARN) and answers its ProvisioningArtifactDetail; SearchProductsAsAdmin lists products,
optionally those of one PortfolioId, filtered by FullTextSearch, Owner, ProductType or
SourceProductId, sorted by Title, VersionCount or CreationDate, paged; DescribeProductAsAdmin (by
Id or a unique Name) gives the product with its ProvisioningArtifactSummaries;
AssociateProductWithPortfolio (idempotent) and ListPortfoliosForProduct link both ways; unknown ids
are ResourceNotFoundException. Same-named products are allowed. Stock moto 5.2.5 stores no artifact
(ProvisioningArtifactDetail is `{}`), uses uuids, and answers every other call here with HTTP 500.
This replaces CreateProduct and adds the four handlers, over moto's own product objects.
"""

from __future__ import annotations

from typing import Any

from .. import catalog
from ..proof import ProofContext, require

NAME = "servicecatalog_products"


def matches(prod: Any, filters: dict[str, list[str]]) -> bool:
    text = " ".join(str(v) for v in (prod.name, prod.owner, prod.description, prod.distributor, prod.support_description) if v).lower()
    checks = {
        "FullTextSearch": lambda v: v.lower() in text,
        "Owner": lambda v: v == prod.owner,
        "ProductType": lambda v: v == prod.product_type,
        "SourceProductId": lambda v: v == prod.id,
    }
    for key, values in (filters or {}).items():
        if key not in checks:
            raise catalog.invalid(f"Invalid filter: {key}")
        if not any(checks[key](v) for v in values):
            return False
    return True


def apply() -> None:
    from moto.core.responses import ActionResult, EmptyResult
    from moto.servicecatalog.models import Product
    from moto.servicecatalog.responses import ServiceCatalogResponse

    def create_product(self: ServiceCatalogResponse) -> Any:
        p, sc = catalog.params(self), catalog.backend(self)
        token = p.get("IdempotencyToken")
        if token and sc.idempotency_tokens.get(token) in sc.products:
            prod = sc.products[sc.idempotency_tokens[token]]
        else:
            first = catalog.new_artifact(p.get("ProvisioningArtifactParameters")) if p.get("ProvisioningArtifactParameters") else None
            prod = Product(p["Name"], p["Owner"], p.get("Description"), p.get("Distributor"), p.get("SupportDescription"),
                           p.get("SupportEmail"), p.get("SupportUrl"), p["ProductType"], p.get("Tags"), None, p.get("SourceConnection"),
                           p.get("AcceptLanguage"), sc.region_name, sc.account_id, sc)
            prod.id = catalog.new_id("prod")
            catalog.catalog_state(prod)["artifacts"] = [first] if first else []
            sc.products[prod.id] = prod
            if token:
                sc.idempotency_tokens[token] = prod.id
        artifacts = catalog.catalog_state(prod)["artifacts"]
        result = {"ProductViewDetail": catalog.view_detail(prod), "Tags": prod.tags}
        if artifacts:
            result["ProvisioningArtifactDetail"] = catalog.artifact_detail(artifacts[0])
        return ActionResult(result)

    def describe_product_as_admin(self: ServiceCatalogResponse) -> Any:
        p = catalog.params(self)
        prod = catalog.product(catalog.backend(self), p.get("Id"), p.get("Name"))
        return ActionResult({"ProductViewDetail": catalog.view_detail(prod), "Tags": prod.tags, "TagOptions": [], "Budgets": [],
                             "ProvisioningArtifactSummaries": [catalog.artifact_summary(a) for a in catalog.catalog_state(prod)["artifacts"]]})

    def search_products_as_admin(self: ServiceCatalogResponse) -> Any:
        p, sc = catalog.params(self), catalog.backend(self)
        found = list(sc.products.values())
        if p.get("PortfolioId"):
            catalog.portfolio(sc, p["PortfolioId"])
            found = [x for x in found if p["PortfolioId"] in catalog.catalog_state(x)["portfolio_ids"]]
        found = [x for x in found if matches(x, p.get("Filters") or {})]
        keys = {"Title": lambda x: x.name, "VersionCount": lambda x: len(catalog.catalog_state(x)["artifacts"]),
                "CreationDate": lambda x: x.created_time}
        if p.get("SortBy"):
            found.sort(key=keys[p["SortBy"]], reverse=p.get("SortOrder") == "DESCENDING")
        items, token = catalog.page([catalog.view_detail(x) for x in found], p.get("PageSize"), p.get("PageToken"), 100)
        return ActionResult({"ProductViewDetails": items, **({"NextPageToken": token} if token else {})})

    def associate_product_with_portfolio(self: ServiceCatalogResponse) -> Any:
        p, sc = catalog.params(self), catalog.backend(self)
        port = catalog.portfolio(sc, p.get("PortfolioId"))
        linked = catalog.catalog_state(catalog.product(sc, p.get("ProductId")))["portfolio_ids"]
        if port.id not in linked:
            linked.append(port.id)
        return EmptyResult()

    def list_portfolios_for_product(self: ServiceCatalogResponse) -> Any:
        p, sc = catalog.params(self), catalog.backend(self)
        ids = catalog.catalog_state(catalog.product(sc, p.get("ProductId")))["portfolio_ids"]
        items, token = catalog.page([sc.portfolios[i].to_dict() for i in ids if i in sc.portfolios], p.get("PageSize"),
                                    p.get("PageToken"), 20)
        return ActionResult({"PortfolioDetails": items, **({"NextPageToken": token} if token else {})})

    for handler in (create_product, describe_product_as_admin, search_products_as_admin, associate_product_with_portfolio,
                    list_portfolios_for_product):
        setattr(ServiceCatalogResponse, handler.__name__, handler)


def prove(ctx: ProofContext) -> None:
    from botocore.exceptions import ClientError

    sc = ctx.client("servicecatalog", "999999999999", "eu-west-2")
    port = sc.create_portfolio(DisplayName="proof-products", ProviderName="platform", IdempotencyToken="proof-products")["PortfolioDetail"]["Id"]
    version = {"Name": "1.0.0", "Description": "first", "Type": "CLOUD_FORMATION_TEMPLATE",
               "Info": {"LoadTemplateFromURL": "https://proof-bucket.s3.eu-west-2.amazonaws.com/network/1.0.0.json"}}
    made = sc.create_product(Name="proof-network", Owner="platform", Description="three-tier VPC", ProductType="CLOUD_FORMATION_TEMPLATE",
                             IdempotencyToken="proof-network", ProvisioningArtifactParameters=version)
    prod = made["ProductViewDetail"]["ProductViewSummary"]
    first = made["ProvisioningArtifactDetail"]
    require(prod["ProductId"].startswith("prod-") and prod["Id"].startswith("prodview-") and first["Id"].startswith("pa-")
            and first["Name"] == "1.0.0" and first["Active"] and first["Guidance"] == "DEFAULT", f"CreateProduct {made}")
    again = sc.create_product(Name="proof-network", Owner="platform", ProductType="CLOUD_FORMATION_TEMPLATE", IdempotencyToken="proof-network",
                              ProvisioningArtifactParameters=version)
    require(again["ProductViewDetail"]["ProductViewSummary"]["ProductId"] == prod["ProductId"], "CreateProduct is not idempotent by token")
    try:
        sc.create_product(Name="proof-bad", Owner="platform", ProductType="CLOUD_FORMATION_TEMPLATE", IdempotencyToken="proof-bad",
                          ProvisioningArtifactParameters={"Name": "1", "Info": {}})
        require(False, "a product version without a template was accepted")
    except ClientError as exc:
        require(exc.response["Error"]["Code"] == "InvalidParametersException", f"a version without a template gave {exc}")
    sc.create_product(Name="proof-other", Owner="someone", ProductType="CLOUD_FORMATION_TEMPLATE", IdempotencyToken="proof-other",
                      ProvisioningArtifactParameters=version)
    for _ in range(2):  # associating twice changes nothing
        sc.associate_product_with_portfolio(ProductId=prod["ProductId"], PortfolioId=port)
    in_portfolio = sc.search_products_as_admin(PortfolioId=port)["ProductViewDetails"]
    by_text = sc.search_products_as_admin(Filters={"FullTextSearch": ["THREE-tier"]}, SortBy="Title")["ProductViewDetails"]
    require([p["ProductViewSummary"]["ProductId"] for p in in_portfolio] == [prod["ProductId"]] == [p["ProductViewSummary"]["ProductId"] for p in by_text],
            f"SearchProductsAsAdmin: {in_portfolio} / {by_text}")
    described = sc.describe_product_as_admin(Name="proof-network")
    require([a["Id"] for a in described["ProvisioningArtifactSummaries"]] == [first["Id"]], f"DescribeProductAsAdmin {described}")
    require([p["Id"] for p in sc.list_portfolios_for_product(ProductId=prod["ProductId"])["PortfolioDetails"]] == [port], "ListPortfoliosForProduct")
    for call, kwargs in [(sc.describe_product_as_admin, {"Id": "prod-proofmissing01"}),
                         (sc.associate_product_with_portfolio, {"ProductId": prod["ProductId"], "PortfolioId": "port-proofmissing01"}),
                         (sc.list_portfolios_for_product, {"ProductId": "prod-proofmissing01"})]:
        try:
            call(**kwargs)
            require(False, f"{call.__name__} {kwargs} was accepted")
        except ClientError as exc:
            require(exc.response["Error"]["Code"] == "ResourceNotFoundException", f"{call.__name__} {kwargs} gave {exc}")
