"""Bad input never gets a 5xx: size limits, gzip bombs, broken encodings, wrong types."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable

import pytest

from server_stub.bodies import supported_encodings
from tests.server_stub.conftest import Harness

LIMIT = 64 * 1024


@pytest.fixture
def small(start_server: Callable[..., Harness]) -> Harness:
    return start_server(rate_per_s=0, max_body_bytes=LIMIT)


def _error(resp, status: int, code: str | None = None) -> None:  # type: ignore[no-untyped-def]
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error", "detail"}
    if code:
        assert body["error"] == code


def test_oversized_body_is_413(small: Harness) -> None:
    fake = small.enrolled()
    _error(fake.call("POST", "/v1/heartbeat", raw=b"{" + b" " * LIMIT + b"}"), 413, "body_too_large")


def test_gzip_bomb_is_413_before_it_is_inflated(small: Harness) -> None:
    fake = small.enrolled()
    bomb = gzip.compress(b"[" + b"0," * (20 * 1024 * 1024) + b"0]", compresslevel=9)
    assert len(bomb) < LIMIT  # small on the wire, 40 MiB inflated
    resp = fake.call("POST", "/v1/batches", raw=bomb, headers={"Content-Encoding": "gzip"})
    _error(resp, 413, "body_too_large")


def test_broken_gzip_is_400(small: Harness) -> None:
    fake = small.enrolled()
    good = gzip.compress(b'{"head_seq":0}')
    for raw in (b"not gzip at all", good[:-6], good + b"trailing"):
        _error(
            fake.call("POST", "/v1/heartbeat", raw=raw, headers={"Content-Encoding": "gzip"}),
            400,
            "bad_encoding",
        )
    assert (
        fake.call("POST", "/v1/heartbeat", raw=good, headers={"Content-Encoding": "gzip"}).status_code == 200
    )


def test_unknown_encoding_and_wrong_content_type_are_415(small: Harness) -> None:
    fake = small.enrolled()
    _error(
        fake.call("POST", "/v1/heartbeat", raw=zlib.compress(b"{}"), headers={"Content-Encoding": "br"}), 415
    )
    _error(
        fake.call("POST", "/v1/heartbeat", raw=b'{"head_seq":0}', headers={"Content-Type": "text/plain"}), 415
    )


@pytest.mark.skipif("zstd" not in supported_encodings(), reason="zstandard is not installed")
def test_zstd_body(small: Harness) -> None:
    import zstandard

    fake = small.enrolled()
    body = fake.batch(fake.make_records(3))
    raw = zstandard.ZstdCompressor().compress(json.dumps(body).encode())
    resp = fake.call("POST", "/v1/batches", raw=raw, headers={"Content-Encoding": "zstd"})
    assert resp.status_code == 200 and [a["status"] for a in resp.json()["acks"]] == ["accepted"] * 3
    _error(
        fake.call("POST", "/v1/heartbeat", raw=b"\x28\xb5\x2f\xfdjunk", headers={"Content-Encoding": "zstd"}),
        400,
    )


@pytest.mark.skipif("zstd" not in supported_encodings(), reason="zstandard is not installed")
def test_zstd_bombs_broken_frames_and_frames_of_undeclared_size(small: Harness) -> None:
    """A frame that declares its size is taken in one pass, one that does not in two: either way
    a bomb is a 413, a truncated frame, trailing bytes or a second frame a 400."""
    import zstandard

    fake = small.enrolled()
    zstd = {"Content-Encoding": "zstd"}
    inflated = b"[" + b"0," * (20 * 1024 * 1024) + b"0]"
    for sized in (True, False):
        bomb = zstandard.ZstdCompressor(write_content_size=sized).compress(inflated)
        assert len(bomb) < LIMIT
        _error(fake.call("POST", "/v1/batches", raw=bomb, headers=zstd), 413, "body_too_large")
        good = zstandard.ZstdCompressor(write_content_size=sized).compress(b'{"head_seq":0}')
        for raw in (good[:-3], good + b"xx", good + good):
            _error(fake.call("POST", "/v1/heartbeat", raw=raw, headers=zstd), 400, "bad_encoding")
        assert fake.call("POST", "/v1/heartbeat", raw=good, headers=zstd).status_code == 200


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"[]",
        b'{"prev_hash": 5, "records": []}',
        b'{"prev_hash": "' + b"0" * 64 + b'", "records": [{"seq": "1"}]}',
        b'{"prev_hash": "' + b"0" * 64 + b'", "records": [{"seq": 1, "txn_id": "x", "kind": "sale", '
        b'"created_at": 1.5, "service": "A", "sig": "AA=="}]}',
        b'{"prev_hash": "' + b"0" * 64 + b'", "records": [{"seq": 99999999999999999999999, "txn_id": "x", '
        b'"kind": "sale", "created_at": 1, "service": "A", "sig": "AA=="}]}',
        b'{"prev_hash": "' + b"0" * 64 + b'", "records": [{"seq": 1, "txn_id": "x\\u0000", '
        b'"kind": "sale", "created_at": 1, "service": "A", "sig": "AA==", "extra": 1}]}',
        "\udcff".encode("utf-8", "surrogatepass"),
    ],
)
def test_malformed_json_and_wrong_types_are_4xx(small: Harness, raw: bytes) -> None:
    fake = small.enrolled()
    resp = fake.call("POST", "/v1/batches", raw=raw)
    assert 400 <= resp.status_code < 500, resp.text
    assert "error" in resp.json()


def test_batch_with_non_consecutive_seqs_is_422(small: Harness) -> None:
    fake = small.enrolled()
    recs = fake.make_records(3)
    body = fake.batch([recs[0], recs[2]])
    _error(fake.call("POST", "/v1/batches", body), 422, "bad_batch")


def test_unknown_path_and_method_are_json_4xx(small: Harness) -> None:
    _error(small.session.get(small.url + "/v1/nope"), 404, "not_found")
    _error(small.session.delete(small.url + "/v1/batches"), 405, "method_not_allowed")


def test_validation_errors_never_echo_personal_data(small: Harness) -> None:
    fake = small.enrolled()
    rec = fake.wire(fake.make_record())
    rec["mobile"] = "9876543210" * 5  # too long: refused, but never repeated back
    resp = fake.call("POST", "/v1/batches", {"prev_hash": "0" * 64, "records": [rec]})
    assert resp.status_code == 422
    assert "9876543210" not in resp.text
