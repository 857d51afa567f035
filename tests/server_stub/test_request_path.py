"""What every signed device request pays before its handler runs: no thread-pool hop but the
handler's own (FastAPI runs a plain ``def`` dependency in the thread pool, and on a lease grant
each hop cost ~0.25 ms of the server's ~4.5 ms), and no security scheme solved per request (the
signing headers are documented in OpenAPI, and read once by ``signed_call``)."""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security.base import SecurityBase

from server_stub.app import create_app
from server_stub.config import ServerConfig
from server_stub.keys import ServerKeys
from server_stub.routes.deps import signed_call
from server_stub.routes.device import router
from sync.wire.signing import HEADER_DEVICE, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP

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


@pytest.mark.parametrize("path", SIGNED_HOT_PATHS)
def test_signed_hot_paths_solve_no_security_scheme(routes: dict[str, APIRoute], path: str) -> None:
    schemes = [c for c in _calls(routes[path].dependant) if isinstance(c, SecurityBase)]
    assert schemes == [], f"{path}: each security scheme is a dependency solved per request"


def test_every_signed_route_documents_the_signing_headers(routes: dict[str, APIRoute]) -> None:
    """A route that reads the signed call (itself or through the signed device) names the four
    signing schemes, and the components define them as the headers the kiosk sends."""
    doc = create_app(ServerConfig(db="sqlite://"), keys=ServerKeys.generate()).openapi()
    schemes = doc["components"]["securitySchemes"]
    names = {"DeviceId": HEADER_DEVICE, "Timestamp": HEADER_TIMESTAMP, "Nonce": HEADER_NONCE}
    names["Signature"] = HEADER_SIGNATURE
    for scheme, header in names.items():
        got = schemes[scheme]
        assert (got["type"], got["in"], got["name"]) == ("apiKey", "header", header), scheme
    signed = [r for r in routes.values() if signed_call in _calls(r.dependant)]
    assert {r.path for r in signed} >= {*SIGNED_HOT_PATHS, "/v1/catalog", "/v1/heartbeat"}
    for r in signed:
        for method in r.methods:
            security = doc["paths"][r.path][method.lower()]["security"]
            assert security == [{name: []} for name in names], r.path
