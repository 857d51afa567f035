"""The batch fast path (server_stub/fastbatch.py) answers as the FastAPI route does: every case sent
both ways (a query string sends a request to the route), a busy database, the metrics."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from server_stub import admin
from server_stub.app import create_app
from server_stub.config import ServerConfig
from server_stub.db import make_engine
from tests.server_stub.conftest import Harness, ThreadServer
from tests.server_stub.kiosk_fake import FakeKiosk

ROUTE = "/v1/batches?via=route"  # signed with its query: the fast path leaves it to FastAPI


def _shape(resp: requests.Response) -> tuple[int, Any]:
    """What an answer says, without what differs from one device to the next (hashes, tokens)."""
    doc = resp.json()
    if "acks" not in doc:
        return resp.status_code, doc
    acks = [(a["seq"], a["status"], a.get("reason"), "final_token" in a) for a in doc["acks"]]
    return resp.status_code, (acks, doc["head"]["seq"], doc["flagged"])


def _cases(fake: FakeKiosk, path: str) -> list[tuple[int, Any]]:
    """A kiosk's life through ``path``: new records, a resend, a gap, a fork, non-consecutive seqs,
    a bad signature, a replayed nonce, a body the schema refuses."""
    push = lambda recs, **kw: fake.call("POST", path, fake.batch(recs), **kw)  # noqa: E731
    first = fake.make_records(3)
    out = [_shape(push(first)), _shape(push(first))]  # accepted, then duplicate
    later = fake.make_records(3)
    out.append(_shape(push(later[1:])))  # a gap: seq 5 before 4
    fork = fake.make_record(append=False, seq=2, prev_hash=first[0]["hash"], amount_paise=1)
    out.append(_shape(push([fork])))
    out.append(_shape(push([later[0], later[2]])))  # seqs 4, 6
    body = fake.batch(later)
    bad_sig = fake.signed_headers("POST", path, b"{}")
    out.append(_shape(fake.call("POST", path, body, headers={"X-Signature": bad_sig["X-Signature"]})))
    again = fake.call("POST", path, body, nonce="ab" * 16)
    out.append(_shape(again))
    out.append(_shape(fake.call("POST", path, body, nonce="ab" * 16)))  # the nonce replayed
    out.append(_shape(fake.call("POST", path, {"prev_hash": "x", "records": []})))
    return out


def test_every_case_gets_the_routes_answer(server: Harness) -> None:
    fast, route = _cases(server.enrolled(), "/v1/batches"), _cases(server.enrolled(), ROUTE)
    assert fast == route
    statuses = [status for status, _ in fast]
    assert statuses == [200, 200, 200, 200, 422, 401, 200, 401, 422]
    acks = [doc[0] for status, doc in fast[:4]]
    assert [a[1] for a in acks[0]] == ["accepted"] * 3 and [a[1] for a in acks[1]] == ["duplicate"] * 3
    assert acks[2][0][2] == "gap" and acks[3][0][2] == "fork" and fast[3][1][2] is True


def test_a_gzipped_batch_and_its_compressed_answer(server: Harness) -> None:
    fake = server.enrolled()
    recs = fake.make_records(40)  # acks of ~3 KB: compressed on the way back
    resp = fake.call(
        "POST", "/v1/batches", fake.batch(recs), encoding="gzip", headers={"Accept-Encoding": "gzip"}
    )
    assert resp.status_code == 200 and resp.headers["Content-Encoding"] == "gzip"
    assert [a["status"] for a in resp.json()["acks"]] == ["accepted"] * 40


def test_no_free_connection_is_a_503_with_retry_after(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 's.db'}"
    admin.init_server(make_engine(db), int(time.time() * 1000), tmp_path / "keys")
    config = ServerConfig(db=db, keys_dir=str(tmp_path / "keys"), rate_per_s=0)
    engine = sa.create_engine(db, pool_size=1, max_overflow=0, pool_timeout=0.2)
    with ThreadServer(create_app(config, engine=engine)) as ts:
        h = Harness(ts.url, db, engine, config, time.time)  # type: ignore[arg-type]
        fake = h.enrolled()
        recs = fake.make_records(2)
        held = engine.connect()  # the only connection in the pool
        try:
            busy = fake.push(recs)
        finally:
            held.close()
        assert busy.status_code == 503 and busy.headers["Retry-After"] == "5"
        assert busy.json() == {"error": "unavailable", "detail": "the server is busy; try again"}
        assert [a["status"] for a in fake.push(recs).json()["acks"]] == ["accepted"] * 2
    engine.dispose()


def _counted(url: str) -> dict[tuple[str, str], float]:
    text = requests.get(url + "/metrics", timeout=30).text
    out: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "kiosk_server_http_requests_total" and s.labels["route"] == "/v1/batches":
                out[(s.labels["method"], s.labels["status"])] = s.value
            if s.name == "kiosk_server_records_total":
                out[("records", s.labels["status"])] = s.value
    return out


def test_answers_are_counted_under_the_route(start_server: Callable[..., Harness]) -> None:
    h = start_server(rate_per_s=0)
    fake = h.enrolled()
    recs = fake.make_records(3)
    assert fake.push(recs).status_code == 200 and fake.push(recs).status_code == 200
    assert fake.push(recs[:1], nonce="cd" * 16).status_code == 200
    assert fake.push(recs[:1], nonce="cd" * 16).status_code == 401
    counted = _counted(h.url)
    assert counted[("POST", "200")] == 3 and counted[("POST", "401")] == 1
    assert counted[("records", "accepted")] == 3 and counted[("records", "duplicate")] == 4


def test_the_plain_path_is_answered_without_the_route(
    server: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The probe: the route's ingest made to fail, only the request with a query string meets it."""
    from server_stub.routes import device

    def route_ran(*_a: Any, **_kw: Any) -> Any:
        raise AssertionError("the FastAPI route ran")

    monkeypatch.setattr(device, "receive", route_ran)
    fake = server.enrolled()
    assert fake.push(fake.make_records(2)).status_code == 200
    assert fake.call("POST", ROUTE, fake.batch(fake.make_records(1))).status_code == 500
