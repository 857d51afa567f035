"""A fake kiosk for server tests: an Ed25519 key, a chain of signed records, signed HTTP calls.

It builds records exactly as the agent's ledger does (sync.wire.canonical), so the server is
tested against the same bytes a real kiosk would send.
"""

from __future__ import annotations

import base64
import gzip
import json
import uuid
from typing import Any

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sync.wire.canonical import genesis_hash, public_key_b64, record_hash, sign_hash
from sync.wire.signing import sign_request
from sync.wire.verhoeff import token_for_serial

BASE_TIME_MS = 1_790_000_000_000  # 2026-09-21 ~19:43 IST: records made before enrolling


class FakeKiosk:
    def __init__(
        self, base_url: str, session: requests.Session | None = None, device_id: str | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session or requests.Session()
        self.key = Ed25519PrivateKey.generate()
        self.device_id = device_id or str(uuid.uuid4())
        self.chain: list[dict[str, Any]] = []  # full records with prev_hash, hash, sig
        self.leases: list[dict[str, Any]] = []
        self.kiosk_code = ""
        self.enrollment: dict[str, Any] = {}
        self._used: set[int] = set()
        self.now: float | None = None  # signing time; None = the real clock

    # --- enrollment and signed calls -------------------------------------------------------------

    def enroll(self, code: str) -> dict[str, Any]:
        resp = self.session.post(
            f"{self.base_url}/v1/enroll",
            json={
                "enrollment_code": code,
                "device_public_key": public_key_b64(self.key.public_key()),
                "device_id": self.device_id,
            },
            timeout=30,
        )
        assert resp.status_code == 200, resp.text
        self.enrollment = resp.json()
        self.kiosk_code = self.enrollment["kiosk_code"]
        self.leases = list(self.enrollment["leases"])
        return self.enrollment

    def signed_headers(
        self, method: str, path: str, body: bytes = b"", nonce: str | None = None
    ) -> dict[str, str]:
        return sign_request(self.key, self.device_id, method, path, body, now=self.now, nonce=nonce)

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        encoding: str | None = None,
        headers: dict[str, str] | None = None,
        nonce: str | None = None,
    ) -> requests.Response:
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        hdrs = {"Content-Type": "application/json"} if data else {}
        if encoding == "gzip":
            data = gzip.compress(data)
            hdrs["Content-Encoding"] = "gzip"
        hdrs.update(self.signed_headers(method, path, data, nonce))
        hdrs.update(headers or {})
        return self.session.request(method, self.base_url + path, data=data, headers=hdrs, timeout=60)

    # --- tokens and records --------------------------------------------------------------------

    def add_leases(self, leases: list[dict[str, Any]]) -> None:
        self.leases.extend(leases)

    def next_token(self) -> str:
        used = self._used
        for lease in self.leases:
            for s in range(lease["start_serial"], lease["end_serial"]):
                if s not in used:
                    used.add(s)
                    return token_for_serial(s)
        raise RuntimeError("no serials left in the fake kiosk's leases")

    @property
    def base_ms(self) -> int:
        """Records are made 1 ms apart from the moment the server enrolled this kiosk (the server
        refuses a leased token used before its device enrolled, or made in its future)."""
        return int(self.enrollment.get("server_time_ms", BASE_TIME_MS))

    @property
    def head_hash(self) -> str:
        return self.chain[-1]["hash"] if self.chain else genesis_hash(self.device_id)

    def make_record(
        self,
        *,
        kind: str = "sale",
        service: str = "ELEC_BILL",
        amount_paise: int = 150_000,
        fee_paise: int = 1000,
        token: str | None = None,
        created_at: int | None = None,
        catalog_version: int | None = 1,
        append: bool = True,
        prev_hash: str | None = None,
        seq: int | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        seq = seq if seq is not None else len(self.chain) + 1
        rec: dict[str, Any] = {
            "seq": seq,
            "txn_id": str(uuid.uuid4()),
            "kind": kind,
            "created_at": created_at if created_at is not None else self.base_ms + seq,
            "operator": "op1",
            "service": service,
            "amount_paise": amount_paise,
            "fee_paise": fee_paise,
            "fields": {"k_number": "210412345678"},
            "prev_hash": prev_hash or self.head_hash,
            **extra,
        }
        if kind == "sale" and token is None:
            token = self.next_token()
        if token is not None:
            rec["token"] = token
        if catalog_version is not None:
            rec["catalog_version"] = catalog_version
        rec["hash"] = record_hash(rec)
        rec["sig"] = sign_hash(self.key, rec["hash"])
        if append:
            self.chain.append(rec)
        return rec

    def make_records(self, n: int, **kw: Any) -> list[dict[str, Any]]:
        return [self.make_record(**kw) for _ in range(n)]

    @staticmethod
    def wire(rec: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in rec.items() if k not in ("prev_hash", "hash")}

    def batch(self, recs: list[dict[str, Any]]) -> dict[str, Any]:
        return {"prev_hash": recs[0]["prev_hash"], "records": [self.wire(r) for r in recs]}

    def push(self, recs: list[dict[str, Any]], **kw: Any) -> requests.Response:
        return self.call("POST", "/v1/batches", self.batch(recs), **kw)

    def lease(self, count: int = 1) -> list[dict[str, Any]]:
        resp = self.call("POST", "/v1/leases", {"count": count})
        assert resp.status_code == 200, resp.text
        return list(resp.json()["leases"])


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
