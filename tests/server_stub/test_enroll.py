"""Enrollment you can't guess or replay: failed attempts limited for all callers together, a used
code never enrolls again once expired or for a revoked device, the answer's keys match the
fingerprint `kiosk add` prints."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import requests

from server_stub import admin
from sync.wire.canonical import public_key_b64
from sync.wire.fingerprint import server_fingerprint
from tests.server_stub.conftest import Harness, run_cli
from tests.server_stub.kiosk_fake import FakeKiosk


def _enroll(server: Harness, fake: FakeKiosk, code: str) -> requests.Response:
    body = {"enrollment_code": code, "device_public_key": public_key_b64(fake.key.public_key())}
    return server.session.post(
        f"{server.url}/v1/enroll", json={**body, "device_id": fake.device_id}, timeout=30
    )


def test_failed_enrollments_are_limited_for_everyone(start_server: Any) -> None:
    server: Harness = start_server(rate_per_s=0, enroll_failures_per_min=5)
    now = time.time()
    server.clock.offset = math.ceil(now / 60) * 60 + 1 - now  # just into a minute: the test fits in it
    code = server.kiosk(server.lsp().lsp_id).enrollment_code
    guesses = [_enroll(server, FakeKiosk(server.url), f"GUES-S{i:03d}-XXXX").status_code for i in range(5)]
    assert guesses == [401] * 5
    blocked = _enroll(server, FakeKiosk(server.url), code)  # even a good code waits out the minute
    assert blocked.status_code == 429 and 1 <= int(blocked.headers["Retry-After"]) <= 60
    assert blocked.json()["error"] == "rate_limited"
    server.clock.offset += 60  # the next minute
    assert _enroll(server, FakeKiosk(server.url), code).status_code == 200


def test_a_used_code_answers_again_only_while_valid_and_never_for_a_revoked_device(server: Harness) -> None:
    lsp = server.lsp().lsp_id
    new = server.kiosk(lsp, ttl_hours=1)
    fake = FakeKiosk(server.url, server.session)
    first = _enroll(server, fake, new.enrollment_code)
    assert first.status_code == 200
    assert (
        _enroll(server, fake, new.enrollment_code).json()["leases"] == first.json()["leases"]
    )  # a lost answer
    assert (
        _enroll(server, FakeKiosk(server.url), new.enrollment_code).json()["error"] == "enrollment_code_used"
    )
    with server.engine.begin() as conn:
        admin.revoke_device(conn, fake.device_id, server.now_ms())
    assert _enroll(server, fake, new.enrollment_code).json()["error"] == "device_revoked"
    with server.engine.begin() as conn:
        admin.reinstate_device(conn, fake.device_id, server.now_ms())
    assert _enroll(server, fake, new.enrollment_code).status_code == 200
    server.clock.offset += 2 * 3600  # the code has expired
    assert _enroll(server, fake, new.enrollment_code).json()["error"] == "enrollment_code_expired"


def test_kiosk_add_prints_the_fingerprint_the_enroll_answer_matches(server: Harness, tmp_path: Path) -> None:
    lsp = json.loads(run_cli(server.db_url, "lsp", "add", "--name", "Printed", "--json").stdout)
    out = run_cli(server.db_url, "kiosk", "add", "--lsp", lsp["lsp_id"], "--name", "Shop", "--json")
    doc = json.loads(out.stdout)
    human = run_cli(server.db_url, "kiosk", "add", "--lsp", lsp["lsp_id"], "--name", "Shop 2").stdout
    assert f"Server fingerprint: {doc['server_fingerprint']}" in human
    answer = FakeKiosk(server.url).enroll(doc["enrollment_code"])
    pair = (answer["server_sign_public_key"], answer["server_seal_public_key"])
    assert server_fingerprint(*pair) == doc["server_fingerprint"]
