"""What every signed device request pays before its handler runs: no thread-pool hop but the
handler's own (FastAPI runs a plain ``def`` dependency in the thread pool, and on a lease grant
each hop cost ~0.25 ms of the server's ~4.5 ms)."""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from server_stub.routes.device import router

SIGNED_HOT_PATHS = ("/v1/leases", "/v1/batches")


@pytest.fixture(scope="module")
def routes() -> dict[str, APIRoute]:
    return {r.path: r for r in router.routes if isinstance(r, APIRoute)}


def _calls(dependant: Dependant) -> Iterator[object]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


def _on_loop(call: object) -> bool:
    """A coroutine function, or an object whose ``__call__`` is one (FastAPI's security schemes)."""
    return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(type(call).__call__)


@pytest.mark.parametrize("path", SIGNED_HOT_PATHS)
def test_signed_hot_paths_solve_their_dependencies_on_the_event_loop(
    routes: dict[str, APIRoute], path: str
) -> None:
    calls = list(_calls(routes[path].dependant))
    assert calls, "the route reads its state and call through dependencies"
    in_pool = [c for c in calls if not _on_loop(c)]
    assert in_pool == [], f"{path}: these dependencies would each take a thread-pool hop"
