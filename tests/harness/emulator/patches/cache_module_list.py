"""moto's server lists its own package directory once, not on every request (a harness patch).

Not an AWS behaviour but a cost: for every request, moto's DomainDispatcherApplication checks the
Host header against `moto.backends.list_of_moto_modules()`, which lists moto's package directory
and stats each of its ~170 entries: a few milliseconds a request, about a second of a start-up's
proofs, and as much again for every few hundred requests of the test suite. The list cannot change
while the server runs; this caches it.
"""

from __future__ import annotations

import functools

from ..proof import ProofContext, require

NAME = "cache_module_list"


def apply() -> None:
    from moto import backends

    listed = functools.lru_cache(maxsize=1)(lambda: tuple(backends.list_of_moto_modules.__wrapped__()))

    def list_of_moto_modules() -> tuple[str, ...]:
        return listed()

    list_of_moto_modules.__wrapped__ = backends.list_of_moto_modules  # type: ignore[attr-defined]
    list_of_moto_modules.cache_info = listed.cache_info  # type: ignore[attr-defined]
    backends.list_of_moto_modules = list_of_moto_modules


def prove(ctx: ProofContext) -> None:
    from moto import backends

    info = getattr(backends.list_of_moto_modules, "cache_info", None)
    require(info is not None, "moto.backends.list_of_moto_modules is not the cached one")
    before = info().hits
    ctx.client("sts").get_caller_identity()
    ctx.client("sts").get_caller_identity()
    require(info().hits > before and "ec2" in backends.list_of_moto_modules(), f"requests do not use the cached module list ({info()})")
