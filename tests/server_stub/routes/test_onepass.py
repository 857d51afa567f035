"""A one-pass route: the body reaches the endpoint parsed once, by pydantic's JSON parser, and a
body that does not validate is answered as FastAPI answers it on a plain route."""

from __future__ import annotations

from typing import Any, ClassVar

import requests
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, StrictInt

from server_stub.routes.onepass import one_pass_route
from tests.server_stub.conftest import ThreadServer


class Body(BaseModel):
    n: StrictInt
    items: list[StrictInt]
    parsed: ClassVar[list[bytes | str | bytearray]] = []

    @classmethod
    def model_validate_json(cls, json_data: bytes | str | bytearray, **kw: Any) -> Body:
        cls.parsed.append(json_data)
        return super().model_validate_json(json_data, **kw)


def _app() -> FastAPI:
    app = FastAPI()
    router = APIRouter()

    def endpoint(body: Body) -> dict[str, int]:
        return {"sum": body.n + sum(body.items)}

    router.add_api_route("/one-pass", endpoint, methods=["POST"], route_class_override=one_pass_route(Body))
    router.add_api_route("/plain", endpoint, methods=["POST"])
    app.include_router(router)
    app.add_api_route("/healthz", lambda: {"status": "ok"})
    return app


def test_the_body_is_parsed_once_and_errors_are_fastapis() -> None:
    with ThreadServer(_app()) as server, requests.Session() as http:
        Body.parsed.clear()
        good = b'{"n": 1, "items": [2, 3]}'
        resp = http.post(server.url + "/one-pass", data=good, headers={"Content-Type": "application/json"})
        assert resp.status_code == 200 and resp.json() == {"sum": 6}
        assert Body.parsed == [good]  # one pass, by pydantic, straight from the bytes
        for bad in (b'{"n": "1", "items": []}', b'{"n": 1}', b"{not json", b"[]", b"\xff"):
            answers = [
                http.post(server.url + path, data=bad, headers={"Content-Type": "application/json"})
                for path in ("/one-pass", "/plain")
            ]
            assert answers[0].status_code == answers[1].status_code >= 400, bad
            assert answers[0].json() == answers[1].json(), bad
