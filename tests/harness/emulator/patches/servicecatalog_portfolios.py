"""Service Catalog portfolios and their shares behave as in AWS (ids, not-found errors, paging).

Real Service Catalog gives portfolios ids `port-` + 13 characters; answers DescribePortfolio,
CreatePortfolioShare, DeletePortfolioShare and ListPortfolioAccess for a portfolio that does not
exist with ResourceNotFoundException; refuses a share that names neither AccountId nor
OrganizationNode with InvalidParametersException; pages ListPortfolios (PageSize at most 20) and
ListPortfolioAccess (at most 100) with NextPageToken. It does not refuse a second portfolio of the
same name: a repeated CreatePortfolio with the same IdempotencyToken returns the first. Stock moto
5.2.5 gives uuid ids, answers DescribePortfolio of an unknown id with an empty PortfolioDetail,
shares, unshares and lists access of unknown portfolios with 200, and does not page. This replaces
those handlers; organization-node shares keep moto's handling.
"""

from __future__ import annotations

from typing import Any

from .. import catalog
from ..proof import ProofContext, require

NAME = "servicecatalog_portfolios"


def apply() -> None:
    from moto.core.responses import ActionResult
    from moto.servicecatalog.models import Portfolio
    from moto.servicecatalog.responses import ServiceCatalogResponse

    original_share, original_unshare = ServiceCatalogResponse.create_portfolio_share, ServiceCatalogResponse.delete_portfolio_share

    def create_portfolio(self: ServiceCatalogResponse) -> Any:
        p, sc = catalog.params(self), catalog.backend(self)
        token = p.get("IdempotencyToken")
        if token and token in sc.idempotency_tokens and sc.idempotency_tokens[token] in sc.portfolios:
            existing = sc.portfolios[sc.idempotency_tokens[token]]
            return ActionResult({"PortfolioDetail": existing.to_dict(), "Tags": existing.tags})
        created = Portfolio(catalog.new_id("port"), p["DisplayName"], p.get("Description") or "", p["ProviderName"], p.get("Tags") or [],
                            sc.region_name, sc.account_id, sc)
        sc.portfolios[created.id] = created
        sc.portfolio_access[created.id] = []
        if token:
            sc.idempotency_tokens[token] = created.id
        return ActionResult({"PortfolioDetail": created.to_dict(), "Tags": created.tags})

    def list_portfolios(self: ServiceCatalogResponse) -> Any:
        p = catalog.params(self)
        items, token = catalog.page([x.to_dict() for x in catalog.backend(self).portfolios.values()], p.get("PageSize"), p.get("PageToken"), 20)
        return ActionResult({"PortfolioDetails": items, **({"NextPageToken": token} if token else {})})

    def describe_portfolio(self: ServiceCatalogResponse) -> Any:
        found = catalog.portfolio(catalog.backend(self), catalog.params(self).get("Id"))
        return ActionResult({"PortfolioDetail": found.to_dict(), "Tags": found.tags, "TagOptions": [], "Budgets": []})

    def check_share(self: ServiceCatalogResponse) -> dict[str, Any]:
        p = catalog.params(self)
        catalog.portfolio(catalog.backend(self), p.get("PortfolioId"))
        if not p.get("AccountId") and not p.get("OrganizationNode"):
            raise catalog.invalid("Either AccountId or OrganizationNode must be specified.")
        return p

    def create_portfolio_share(self: ServiceCatalogResponse) -> Any:
        check_share(self)
        return original_share(self)

    def delete_portfolio_share(self: ServiceCatalogResponse) -> Any:
        check_share(self)
        return original_unshare(self)

    def list_portfolio_access(self: ServiceCatalogResponse) -> Any:
        p, sc = catalog.params(self), catalog.backend(self)
        catalog.portfolio(sc, p.get("PortfolioId"))
        items, token = catalog.page(list(sc.portfolio_access.get(p["PortfolioId"], [])), p.get("PageSize"), p.get("PageToken"), 100)
        return ActionResult({"AccountIds": items, **({"NextPageToken": token} if token else {})})

    for handler in (create_portfolio, list_portfolios, describe_portfolio, create_portfolio_share, delete_portfolio_share,
                    list_portfolio_access):
        setattr(ServiceCatalogResponse, handler.__name__, handler)


def prove(ctx: ProofContext) -> None:
    from botocore.exceptions import ClientError

    sc = ctx.client("servicecatalog", "999999999999", "eu-west-2")

    def refused(code: str, call: Any, **kwargs: Any) -> None:
        try:
            call(**kwargs)
        except ClientError as exc:
            require(exc.response["Error"]["Code"] == code, f"{call.__name__} {kwargs} gave {exc.response['Error']}, not {code}")
            return
        require(False, f"{call.__name__} {kwargs} was accepted, not refused with {code}")

    made = [sc.create_portfolio(DisplayName=f"proof-{i}", ProviderName="platform", IdempotencyToken=f"proof-port-{i}")["PortfolioDetail"]
            for i in range(3)]
    again = sc.create_portfolio(DisplayName="proof-0", ProviderName="platform", IdempotencyToken="proof-port-0")["PortfolioDetail"]
    require(again["Id"] == made[0]["Id"] and all(p["Id"].startswith("port-") and len(p["Id"]) == 18 for p in made), f"portfolios {made}")
    first = sc.list_portfolios(PageSize=2)
    second = sc.list_portfolios(PageSize=2, PageToken=first["NextPageToken"])
    require(len(first["PortfolioDetails"]) == 2 and len(second["PortfolioDetails"]) == 1 and "NextPageToken" not in second,
            f"paging {first} / {second}")
    port = made[0]["Id"]
    require(sc.describe_portfolio(Id=port)["PortfolioDetail"]["DisplayName"] == "proof-0", "DescribePortfolio")
    missing = "port-proofmissing01"
    refused("ResourceNotFoundException", sc.describe_portfolio, Id=missing)
    refused("ResourceNotFoundException", sc.create_portfolio_share, PortfolioId=missing, AccountId="222222222222")
    refused("ResourceNotFoundException", sc.delete_portfolio_share, PortfolioId=missing, AccountId="222222222222")
    refused("ResourceNotFoundException", sc.list_portfolio_access, PortfolioId=missing)
    refused("InvalidParametersException", sc.create_portfolio_share, PortfolioId=port)
    for _ in range(2):  # sharing twice changes nothing
        sc.create_portfolio_share(PortfolioId=port, AccountId="222222222222")
    require(sc.list_portfolio_access(PortfolioId=port)["AccountIds"] == ["222222222222"], "ListPortfolioAccess after sharing")
    sc.delete_portfolio_share(PortfolioId=port, AccountId="222222222222")
    require(sc.list_portfolio_access(PortfolioId=port)["AccountIds"] == [], "ListPortfolioAccess after unsharing")
