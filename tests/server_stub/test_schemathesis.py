"""Property-based API testing against /openapi.json of a real server: no 5xx, and every
response (status, content type, headers, body) matches the schema. Requests are signed like a
kiosk's (and carry the LSP key on LSP endpoints), so the generated data reaches the handlers."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import ignored_auth, missing_required_header

from tests.server_stub.conftest import Harness
from tests.server_stub.kiosk_fake import FakeKiosk


class SignedAuth(requests.auth.AuthBase):
    """Signs each prepared request as a kiosk would; LSP calls get the API key instead."""

    def __init__(self, fake: FakeKiosk, api_key: str) -> None:
        self.fake = fake
        self.api_key = api_key

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        if r.path_url.startswith("/v1/reconciliation"):
            r.headers["Authorization"] = f"Bearer {self.api_key}"
            return r
        body = r.body or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        split = urlsplit(r.url or "")
        path = split.path + (f"?{split.query}" if split.query else "")
        r.headers.update(self.fake.signed_headers(r.method or "GET", path, body))
        return r


@pytest.fixture
def api(start_server) -> Iterator[tuple[Harness, requests.Session]]:  # type: ignore[no-untyped-def]
    h: Harness = start_server(rate_per_s=0)
    lsp = h.lsp()
    fake = h.enrolled(lsp.lsp_id)
    session = requests.Session()
    session.auth = SignedAuth(fake, lsp.api_key)
    yield h, session


def _openapi() -> dict:  # type: ignore[type-arg]
    from server_stub.app import create_app
    from server_stub.config import ServerConfig
    from server_stub.keys import ServerKeys

    return create_app(ServerConfig(db="sqlite://"), keys=ServerKeys.generate()).openapi()


OPENAPI = _openapi()
# 422 is how the server refuses schema-valid but meaningless input the schema cannot express
# (a batch whose seqs are not consecutive, the date 2026-13-45).
CONFIG = schemathesis.config.SchemathesisConfig.from_dict(
    {
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "401", "403", "404", "409", "422", "429"]
            }
        }
    }
)
schema = schemathesis.openapi.from_dict(OPENAPI, config=CONFIG)


def test_served_openapi_is_the_tested_one(api: tuple[Harness, requests.Session]) -> None:
    h, _ = api
    assert requests.get(h.url + "/openapi.json", timeout=30).json() == OPENAPI


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_conforms_to_its_schema(case: schemathesis.Case, api: tuple[Harness, requests.Session]) -> None:
    """Signed like a real kiosk. `ignored_auth` and `missing_required_header` are left out here: the
    session signs every request, so credentials schemathesis leaves out or spoils are put back (the
    unsigned run below checks those)."""
    h, session = api
    if case.meta is not None and case.meta.is_negative_at(ParameterLocation.HEADER):
        # Headers made wrong on purpose (e.g. the LSP's Authorization left out): sent as they are.
        # Signing them would put back what the case removed, and the server would rightly accept.
        session = requests.Session()
    case.call_and_validate(
        base_url=h.url, session=session, excluded_checks=[ignored_auth, missing_required_header]
    )


# Answer without a signature: readiness, enrollment, the server's public key, and /metrics (to
# loopback callers, which the test is).
PUBLIC = ("/healthz", "/v1/enroll", "/v1/server-key", "/metrics")


@schema.parametrize()
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_unsigned_conforms_and_refuses(
    case: schemathesis.Case, api: tuple[Harness, requests.Session]
) -> None:
    h, _ = api
    resp = case.call_and_validate(base_url=h.url, session=requests.Session())
    if case.path not in PUBLIC:
        assert resp.status_code in (400, 401, 404, 405, 413, 415, 422), resp.text
