"""The local stack runs several instances of the API function as threads of one process; Powertools keeps
the request being resolved on its router class. Each thread must see its own request."""

from __future__ import annotations

import threading
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

from pipelinejobs.local.functions import isolate_powertools_routers


def _event(path: str, token: str) -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": "GET /jobs/{uuid}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"authorization": f"Bearer {token}"},
        "requestContext": {"http": {"method": "GET", "path": path}, "stage": "$default"},
        "isBase64Encoded": False,
    }


def test_two_resolvers_resolving_at_once_each_read_their_own_request() -> None:
    # given two resolvers (two instances of a function, each its own module), whose routes read the
    # request's header only after the other has started resolving its own
    assert isolate_powertools_routers()
    both_inside = threading.Barrier(2, timeout=5)
    seen: dict[str, str] = {}

    def resolver() -> APIGatewayHttpResolver:
        app = APIGatewayHttpResolver()

        @app.get("/jobs/<uuid>")
        def get_job(uuid: str) -> dict[str, str]:
            both_inside.wait()
            seen[uuid] = app.current_event.headers["authorization"]
            return {}

        return app

    apps = {"a": resolver(), "b": resolver()}
    # when each resolves a request for its job, with its job's token, in its own thread
    threads = [
        threading.Thread(target=apps[name].resolve, args=(_event(f"/jobs/{name}", f"token-{name}"), None))
        for name in apps
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # then each read its own token, not the other's
    assert seen == {"a": "Bearer token-a", "b": "Bearer token-b"}


def test_isolating_twice_changes_nothing_more() -> None:
    from aws_lambda_powertools.event_handler.api_gateway import BaseRouter

    assert isolate_powertools_routers()
    meta = type(BaseRouter)
    assert isolate_powertools_routers()
    assert type(BaseRouter) is meta
    BaseRouter.current_event = "this thread's"  # type: ignore[assignment]
    other: list[Any] = []
    thread = threading.Thread(target=lambda: other.append(getattr(BaseRouter, "current_event", None)))
    thread.start()
    thread.join()
    assert BaseRouter.current_event == "this thread's"
    assert other == [None]
