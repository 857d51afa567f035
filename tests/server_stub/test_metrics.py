"""/metrics in Prometheus format, read back with prometheus_client's own parser: the counters equal
what the test sent (requests by route and status, records by ack and reason, 429s, ingest
latency, lease grants), kiosks by state from the database; who may read it; several workers
summed through the multiprocess folder."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from agent.harness import ServerProcess
from server_stub import admin
from server_stub.errors import Forbidden, Unauthorized
from server_stub.metrics import check_reader
from tests.server_stub.conftest import Harness
from tests.server_stub.kiosk_fake import FakeKiosk

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str, headers: dict[str, str] | None = None) -> Samples:
    resp = requests.get(url + "/metrics", headers=headers, timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain")
    out: Samples = {}
    for family in text_string_to_metric_families(resp.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _traffic(h: Harness, fake: FakeKiosk) -> None:
    """3 accepted, 3 duplicates, 1 fee_mismatch, a lease of 2 blocks, a heartbeat, a token lookup."""
    recs = fake.make_records(3)
    assert [a["status"] for a in fake.push(recs).json()["acks"]] == ["accepted"] * 3
    assert [a["status"] for a in fake.push(recs).json()["acks"]] == ["duplicate"] * 3
    bad = fake.make_record(fee_paise=999)
    assert fake.push([bad]).json()["acks"][0]["reason"] == "fee_mismatch"
    assert len(fake.lease(2)) == 2
    assert fake.call("POST", "/v1/heartbeat", {"head_seq": 4}).status_code == 200
    assert fake.call("GET", f"/v1/tokens/{recs[0]['token']}").status_code == 200


def test_counters_match_what_was_sent(start_server: Callable[..., Harness]) -> None:
    h = start_server(rate_per_s=0.001, rate_burst=7)
    lsp = h.lsp()
    fake = h.enrolled(lsp.lsp_id)
    _traffic(h, fake)
    noisy = h.enrolled(lsp.lsp_id)
    codes = [noisy.call("POST", "/v1/heartbeat", {"head_seq": 0}).status_code for _ in range(10)]
    limited = codes.count(429)
    assert limited >= 3 and set(codes) == {200, 429}
    assert requests.get(h.url + "/no/such/path", timeout=30).status_code == 404
    h.kiosk(lsp.lsp_id)  # never enrolled
    revoked = h.enrolled(lsp.lsp_id)
    with h.engine.begin() as conn:
        admin.revoke_device(conn, revoked.device_id, h.now_ms())

    m = scrape(h.url)
    assert value(m, "kiosk_server_records_total", status="accepted", reason="none") == 3
    assert value(m, "kiosk_server_records_total", status="duplicate", reason="none") == 3
    assert value(m, "kiosk_server_records_total", status="rejected", reason="fee_mismatch") == 1
    assert value(m, "kiosk_server_ingest_seconds_count") == 3
    assert 0 < value(m, "kiosk_server_ingest_seconds_sum") < 30
    assert value(m, "kiosk_server_ingest_seconds_bucket", le="+Inf") == 3
    assert value(m, "kiosk_server_lease_grants_total") == 2
    assert value(m, "kiosk_server_lease_serials_total") == 2 * h.config.block_size
    req = "kiosk_server_http_requests_total"
    assert value(m, req, route="/v1/batches", method="POST", status="200") == 3
    assert value(m, req, route="/v1/enroll", method="POST", status="200") == 3
    assert value(m, req, route="/v1/leases", method="POST", status="200") == 1
    assert value(m, req, route="/v1/tokens/{token}", method="GET", status="200") == 1  # the template
    assert value(m, req, route="/v1/heartbeat", method="POST", status="200") == 1 + codes.count(200)
    assert value(m, req, route="/v1/heartbeat", method="POST", status="429") == limited
    assert value(m, "kiosk_server_rate_limited_total", route="/v1/heartbeat") == limited
    assert value(m, req, route="unmatched", method="GET", status="404") == 1
    assert value(m, req, route="/metrics", method="GET", status="200") == 0  # counted after it answers
    assert not any(fake.chain[0]["token"] in str(labels) for _name, labels in m)
    states = {
        s: value(m, "kiosk_server_kiosks", state=s)
        for s in ("online", "stale", "offline", "not_enrolled", "revoked")
    }
    assert states == {"online": 2, "stale": 0, "offline": 0, "not_enrolled": 1, "revoked": 1}

    h.clock.offset += 3600  # an hour without heartbeats: stale; a day: offline
    assert value(scrape(h.url), "kiosk_server_kiosks", state="stale") == 2
    h.clock.offset += 24 * 3600
    again = scrape(h.url)
    assert value(again, "kiosk_server_kiosks", state="offline") == 2
    assert value(again, req, route="/metrics", method="GET", status="200") == 2


def test_a_metrics_token_guards_it(start_server: Callable[..., Harness]) -> None:
    h = start_server(metrics_token="s3cret-metrics")
    no = requests.get(h.url + "/metrics", timeout=30)
    wrong = requests.get(h.url + "/metrics", headers={"Authorization": "Bearer nope"}, timeout=30)
    assert no.status_code == 401 and wrong.status_code == 401 and set(no.json()) == {"error", "detail"}
    assert "kiosk_server_kiosks" in str(scrape(h.url, {"Authorization": "Bearer s3cret-metrics"}))


def test_without_a_token_only_loopback_reads_it() -> None:
    check_reader("127.0.0.1", None, "")
    check_reader("::1", None, "")
    with pytest.raises(Forbidden):
        check_reader("10.0.0.7", None, "")
    with pytest.raises(Unauthorized):
        check_reader("127.0.0.1", "Bearer x", "token")
    check_reader("10.0.0.7", "Bearer token", "token")


def test_two_workers_are_summed(tmp_path: Path) -> None:
    folder = tmp_path / "metrics"
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    with ServerProcess(tmp_path / "srv", serve_args=["--workers", "2", "--rate-limit", "0"], env=env) as srv:
        lsp = srv.cli_json("lsp", "add", "--name", "Metrics LSP")
        code = srv.cli_json("kiosk", "add", "--lsp", lsp["lsp_id"], "--name", "Shop")["enrollment_code"]
        fake = FakeKiosk(srv.url, requests.Session())
        fake.enroll(code)
        sent = 0
        deadline = time.monotonic() + 60
        while len(list(folder.glob("counter_*.db"))) < 2 and time.monotonic() < deadline:
            fake.session = requests.Session()  # a new connection: either worker may take it
            assert fake.push([fake.make_record()]).json()["acks"][0]["status"] == "accepted"
            sent += 1
        assert len(list(folder.glob("counter_*.db"))) >= 2, "one worker took every connection"
        m = scrape(srv.url)
    assert value(m, "kiosk_server_records_total", status="accepted", reason="none") == sent
    assert (
        value(m, "kiosk_server_http_requests_total", route="/v1/batches", method="POST", status="200") == sent
    )
    assert value(m, "kiosk_server_ingest_seconds_count") == sent
