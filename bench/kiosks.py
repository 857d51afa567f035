"""Simulated kiosks and a real `kiosk-server serve` process, shared by the server benches.

A :class:`SimKiosk` holds an Ed25519 key, enrolls over the real HTTP API and pre-builds its
backlog exactly as the agent's ledger and sync client would: records hashed and signed with
:mod:`sync.wire.canonical`, tokens from the kiosk's leases (the last share provisional, as when
the leases ran out), batches cut at the agent's limits (records and canonical bytes), bodies in
the client's compact JSON, compressed as the client does (zstd by default), and every request
signed with :func:`sync.wire.signing.sign_request` at send time (a resend gets a new nonce).

Used by bench/server_ingest.py and bench/storm.py (and the storm's test).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from agent.harness import SERVER_COMMAND, free_port, stop_process, wait_healthy  # noqa: E402
from sync.client import compress  # noqa: E402 - the agent's own body compression
from sync.wire.canonical import canonical_json, genesis_hash, public_key_b64, record_hash, sign_hash  # noqa: E402
from sync.wire.signing import sign_request  # noqa: E402
from sync.wire.tokens import provisional_token, token_for_serial  # noqa: E402

# Records are made from now on, 1 ms apart: the server refuses a leased token used before its
# device enrolled, or a record made further ahead of its arrival than its margin.
BASE_TIME_MS = int(time.time() * 1000)
# The agent's defaults ([sync] batch_max_records, batch_max_bytes; the client compresses over 512 B).
AGENT_BATCH_RECORDS = 500
AGENT_BATCH_BYTES = 262_144
COMPRESS_OVER_BYTES = 512


def server_argv(db_url: str, *args: str) -> list[str]:
    """`kiosk-server --db URL ARGS` with this interpreter."""
    return [*SERVER_COMMAND, "--db", db_url, *args]


@contextlib.contextmanager
def process(argv: list[str], cwd: Path, log: Path | None = None) -> Iterator[tuple[str, int]]:
    """Run ``argv --port P`` (a uvicorn server) on a free loopback port; yield (url, pid).

    ``KIOSK_SERVER_*`` variables are not passed on: the flags alone configure the server."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK_SERVER_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - handed to the child
    try:
        proc = subprocess.Popen([*argv, "--port", str(port)], cwd=cwd, stdout=out, stderr=out, env=env)
    finally:
        if log:
            out.close()  # type: ignore[union-attr]
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, deadline_s=60)
        yield url, proc.pid
    finally:
        stop_process(proc, timeout_s=30)


@dataclass(frozen=True)
class Batch:
    """One POST /v1/batches as the agent sends it: the body on the wire and what it carries."""

    body: bytes
    encoding: str | None  # Content-Encoding, None when sent as plain JSON
    first_seq: int
    last_seq: int

    @property
    def count(self) -> int:
        return self.last_seq - self.first_seq + 1


class SimKiosk:
    """An enrolled kiosk with a pre-signed backlog (see the module docstring)."""

    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()
        self.device_id = str(uuid.uuid4())
        self.kiosk_code = ""
        self.leases: list[dict[str, Any]] = []
        self.hashes: list[str] = []  # hashes[seq - 1]
        self.tokens: dict[int, str] = {}  # seq -> token carried
        self.batches: list[Batch] = []
        self._serials_used = 0

    def try_enroll(self, session: requests.Session, url: str, code: str) -> requests.Response:
        """POST /v1/enroll once; on 200 the kiosk is enrolled (K-code and leases kept)."""
        resp = session.post(
            url + "/v1/enroll",
            json={
                "enrollment_code": code,
                "device_public_key": public_key_b64(self.key.public_key()),
                "device_id": self.device_id,
            },
            timeout=60,
        )
        if resp.status_code == 200:
            doc = resp.json()
            self.kiosk_code = doc["kiosk_code"]
            self.leases = list(doc["leases"])
        return resp

    def enroll(self, session: requests.Session, url: str, code: str) -> None:
        resp = self.try_enroll(session, url, code)
        if resp.status_code != 200:
            raise RuntimeError(f"enrollment answered {resp.status_code}: {resp.text[:200]}")

    @property
    def head(self) -> tuple[int, str]:
        return len(self.hashes), self.hashes[-1] if self.hashes else genesis_hash(self.device_id)

    def _tokens(self, start: int, n: int, provisional_share: float) -> list[str]:
        """Tokens for seqs start..start+n-1: leased serials, then provisional ones (as the agent's
        ledger does once its leases are spent; here the last ``provisional_share`` of them)."""
        n_leased = n - math.floor(n * provisional_share + 0.5)
        serials = [s for lease in self.leases for s in range(lease["start_serial"], lease["end_serial"])]
        leased = [token_for_serial(s) for s in serials[self._serials_used : self._serials_used + n_leased]]
        self._serials_used += len(leased)
        seqs = range(start + len(leased), start + n)
        return leased + [provisional_token(self.kiosk_code, self.device_id, seq) for seq in seqs]

    def build_backlog(
        self,
        n: int,
        *,
        provisional_share: float = 0.0,
        max_records: int = AGENT_BATCH_RECORDS,
        max_bytes: int = AGENT_BATCH_BYTES,
        encoding: str | None = "zstd",
    ) -> None:
        """Sign ``n`` sales after the current head and cut them into batches."""
        prev = self.head[1]
        start = len(self.hashes) + 1
        chain: list[tuple[dict[str, Any], str]] = []
        tokens = self._tokens(start, n, provisional_share)
        for seq, token in zip(range(start, start + n), tokens, strict=True):
            rec: dict[str, Any] = {
                "seq": seq,
                "txn_id": str(uuid.uuid4()),
                "kind": "sale",
                "created_at": BASE_TIME_MS + seq,
                "operator": "op1",
                "service": "ELEC_BILL",
                "amount_paise": 150_000 + seq,
                "fee_paise": 1000,
                "token": token,
                "fields": {"discom": "JVVNL", "k_number": "210412345678"},
                "catalog_version": 1,
                "prev_hash": prev,
            }
            h = record_hash(rec)
            rec["sig"] = sign_hash(self.key, h)
            del rec["prev_hash"]
            chain.append((rec, prev))
            self.hashes.append(h)
            self.tokens[seq] = token
            prev = h
        self.batches.extend(_cut(chain, max_records, max_bytes, encoding))

    def signed_headers(self, method: str, path: str, body: bytes, encoding: str | None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if body:
            headers["Content-Type"] = "application/json"
        if encoding:
            headers["Content-Encoding"] = encoding
        headers.update(sign_request(self.key, self.device_id, method, path, body))
        return headers


def _cut(
    chain: list[tuple[dict[str, Any], str]], max_records: int, max_bytes: int, encoding: str | None
) -> Iterator[Batch]:
    """The agent's next_batch: at most max_records, at most max_bytes of canonical JSON (at least one)."""
    i = 0
    while i < len(chain):
        size, j = 0, i
        while j < len(chain) and j - i < max_records:
            n = len(canonical_json(chain[j][0]))
            if j > i and size + n > max_bytes:
                break
            size += n
            j += 1
        doc = {"prev_hash": chain[i][1], "records": [r for r, _ in chain[i:j]]}
        raw = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
        enc = encoding if encoding and len(raw) > COMPRESS_OVER_BYTES else None
        yield Batch(compress(raw, enc) if enc else raw, enc, chain[i][0]["seq"], chain[j - 1][0]["seq"])
        i = j
