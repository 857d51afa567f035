"""GET /v1/directory: every enrolled device's public key, signed by the server's key, incremental
by version (enrolled_at), pages that never split a version."""

from __future__ import annotations

import base64

import sqlalchemy as sa

from server_stub import directory
from server_stub.db import devices
from server_stub.keys import ServerKeys
from sync.wire import canonical
from sync.wire.directory import DirectoryPage, verify_page
from tests.server_stub.conftest import Harness
from tests.server_stub.kiosk_fake import FakeKiosk


def _server_key(fake: FakeKiosk) -> object:
    return canonical.load_public_key_b64(fake.enrollment["server_sign_public_key"])


def test_directory_lists_every_device_signed_and_incrementally(server: Harness) -> None:
    a = server.enrolled()
    server.clock.offset += 1
    b = server.enrolled()
    page = DirectoryPage.model_validate(a.call("GET", "/v1/directory?since=0").json())
    assert verify_page(_server_key(a), page)  # type: ignore[arg-type]
    by_code = {d.kiosk_code: d for d in page.body.devices}
    assert set(by_code) == {a.kiosk_code, b.kiosk_code} and page.body.more == 0
    assert (
        by_code[b.kiosk_code].public_key == base64.b64encode(b.key.public_key().public_bytes_raw()).decode()
    )
    assert by_code[b.kiosk_code].device_id == b.device_id
    first = by_code[a.kiosk_code].enrolled_at
    newer = DirectoryPage.model_validate(a.call("GET", f"/v1/directory?since={first}").json())
    assert [d.kiosk_code for d in newer.body.devices] == [b.kiosk_code]
    latest = DirectoryPage.model_validate(a.call("GET", f"/v1/directory?since={newer.body.version}").json())
    assert latest.body.devices == [] and latest.body.version == newer.body.version
    assert verify_page(_server_key(a), latest)  # type: ignore[arg-type]


def test_a_changed_page_or_signature_does_not_verify(server: Harness) -> None:
    a = server.enrolled()
    doc = a.call("GET", "/v1/directory").json()
    key = _server_key(a)
    page = DirectoryPage.model_validate(doc)
    assert verify_page(key, page)  # type: ignore[arg-type]
    forged = page.model_copy(deep=True)
    forged.body.devices[0].public_key = base64.b64encode(bytes(32)).decode()
    assert not verify_page(key, forged)  # type: ignore[arg-type]
    sig = page.sig
    for i in range(len(sig) - 2):  # every character of the signature (before the padding)
        for ch in ("A", "B"):
            if sig[i] != ch:
                assert not verify_page(key, page.model_copy(update={"sig": sig[:i] + ch + sig[i + 1 :]}))  # type: ignore[arg-type]


def test_directory_needs_a_signed_device(server: Harness) -> None:
    resp = server.session.get(server.url + "/v1/directory", timeout=10)
    assert resp.status_code == 401 and resp.json()["error"]


def test_pages_never_split_a_version(server: Harness) -> None:
    fakes = [server.enrolled() for _ in range(4)]
    with server.engine.begin() as conn:  # three devices enrolled in the same millisecond, one after
        for i, f in enumerate(fakes):
            at = 1_000 if i < 3 else 2_000
            conn.execute(sa.update(devices).where(devices.c.device_id == f.device_id).values(enrolled_at=at))
    keys = ServerKeys.generate()
    with server.engine.connect() as conn:
        first = directory.page(conn, keys, 0, limit=2)
        assert len(first.body.devices) == 3 and first.body.more == 1  # the whole version
        second = directory.page(conn, keys, first.body.version, limit=2)
        assert len(second.body.devices) == 1 and second.body.more == 0
        assert verify_page(keys.sign.public_key(), second)


def test_the_directory_travels_gzipped(server: Harness) -> None:
    a = server.enrolled()
    resp = a.call("GET", "/v1/directory")
    assert resp.headers["Content-Encoding"] == "gzip"  # requests asks for it and unpacks it
    assert verify_page(_server_key(a), DirectoryPage.model_validate(resp.json()))  # type: ignore[arg-type]
