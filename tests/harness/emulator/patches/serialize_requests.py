"""Serve one request at a time (moto's backends are not thread-safe).

Real AWS is linearizable per resource. moto's ThreadedMotoServer handles each request on its own
thread, and its backends mutate plain dicts without locks: parallel tests (cargo runs them
concurrently) can hit "dictionary changed size during iteration" and get a 500 that real AWS would
never send. This wraps the WSGI application the server builds in one lock.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from ..proof import ProofContext, require

NAME = "serialize_requests"

# Requests served through the serialising wrapper (proves the wrapper is in the request path).
SERVED = [0]


def apply() -> None:
    from moto.moto_server import threaded_moto_server

    lock = threading.Lock()
    original = threaded_moto_server.DomainDispatcherApplication

    def serialized(*args: Any, **kwargs: Any) -> Callable[..., Any]:
        app = original(*args, **kwargs)

        def wsgi(environ: Any, start_response: Any) -> list[bytes]:
            with lock:
                SERVED[0] += 1
                return list(app(environ, start_response))

        return wsgi

    threaded_moto_server.DomainDispatcherApplication = serialized


def prove(ctx: ProofContext) -> None:
    before = SERVED[0]
    ctx.client("sts").get_caller_identity()
    require(SERVED[0] > before, "requests did not go through the serialising wrapper")
