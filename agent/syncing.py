"""The agent's side of sync: enrollment, and building the engine for this
kiosk from its config and ledger.

Enrollment can't be intercepted unnoticed:

- ``http://`` is refused for a server that is not on this machine (``localhost``, 127.0.0.0/8,
  ``::1``) unless the operator says ``insecure``: the check runs before any connection is made.
- The enroll answer carries the server's public keys (the lease key, and the seal key every
  Aadhaar number is sealed to). With ``fingerprint`` (what ``kiosk-server kiosk add`` printed
  beside the code) they are checked against it before anything is stored; a mismatch stores
  nothing. Without it the enrollment goes ahead with a loud warning and the answer says
  ``fingerprint_checked: false`` with the fingerprint to compare by hand.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import requests

from agent.config import Config
from agent.errors import InvalidInput, ServerUnreachable
from agent.ledger import Ledger
from agent.ledger.outbox import LedgerOutbox
from sync.client import SyncClient
from sync.engine import Backoff, SyncEngine
from sync.errors import SyncError
from sync.outbox import Outbox
from sync.wire import canonical, fingerprint, protocol

log = logging.getLogger(__name__)


def server_url(cfg: Config, ledger: Ledger) -> str | None:
    """``[server] url`` when set, else the URL stored at enrollment."""
    return cfg.settings.server.url or ledger.meta("server_url")


def link_up(cfg: Config, ledger: Ledger) -> bool:
    """Whether the server answers now (an online-only service asks; offline work never does)."""
    url = server_url(cfg, ledger)
    return bool(url and ledger.kiosk_code and make_client(cfg, ledger, url).healthy())


def make_client(cfg: Config, ledger: Ledger, url: str, session: requests.Session | None = None) -> SyncClient:
    """Starts from the clock offset the ledger stored (so its first request is signed right)."""
    client = SyncClient(
        url,
        device_id=ledger.device_id,
        private_key=ledger.signing_key,
        session=session,
        timeout_s=cfg.settings.server.timeout_s,
        encoding="zstd",  # ~7% fewer bytes than gzip on a batch; the server takes both
    )
    client.offset_s = ledger.clock.offset_s
    return client


def make_engine(
    cfg: Config,
    ledger: Ledger,
    *,
    session: requests.Session | None = None,
    progress: Callable[[int, int], None] | None = None,
    sleep: Callable[[float], None] | None = None,
    outbox: Outbox | None = None,
) -> SyncEngine | None:
    """None before enrollment (nothing to sync to). ``outbox`` replaces the
    plain LedgerOutbox (``run`` passes one that takes the ledger lock per call)."""
    url = server_url(cfg, ledger)
    if not url or not ledger.kiosk_code:
        return None
    s = cfg.settings.sync
    kw: dict[str, Any] = {"sleep": sleep} if sleep else {}
    return SyncEngine(
        outbox or LedgerOutbox(ledger),
        make_client(cfg, ledger, url, session),
        batch_max_records=s.batch_max_records,
        batch_max_bytes=s.batch_max_bytes,
        backoff=Backoff(s.backoff_base_s, s.backoff_cap_s),
        days_target=cfg.settings.tokens.days_target,
        min_remaining=cfg.settings.tokens.min_remaining,
        progress=progress,
        **kw,
    )


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it could resolve anywhere


def check_server_url(url: str, *, insecure: bool = False) -> str:
    """The URL without a trailing slash; refuses what is not http(s), and http:// off this machine
    unless ``insecure`` (no connection is made here)."""
    url = url.strip().rstrip("/")
    try:
        scheme, host = urlsplit(url).scheme, urlsplit(url).hostname
    except ValueError:  # e.g. a broken [IPv6] literal
        scheme, host = "", None
    if scheme not in ("http", "https") or not host:
        raise InvalidInput("the server URL must start with http:// or https:// and name the server")
    if scheme == "http" and not insecure and not _is_loopback(host):
        raise InvalidInput(
            "refusing http:// to a server on another machine: anyone on the way could read and change "
            "the enrollment; use https://, or --insecure on a network you trust"
        )
    return url


def _check_fingerprint(expected: str | None) -> None:
    if expected is not None and len(fingerprint.normalise(expected)) != 64:
        raise InvalidInput("the fingerprint must be the 64 hex digits kiosk-server printed (spaces allowed)")


def enroll(
    cfg: Config,
    ledger: Ledger,
    url: str,
    code: str,
    session: requests.Session | None = None,
    *,
    expected_fingerprint: str | None = None,
    insecure: bool = False,
) -> dict[str, Any]:
    """Register this device with the server; store K-code, LSP, server keys,
    first leases and the catalog. Refuses a second enrollment, and server keys
    that don't match ``expected_fingerprint`` (nothing stored)."""
    url = check_server_url(url, insecure=insecure)
    _check_fingerprint(expected_fingerprint)
    if ledger.kiosk_code:
        raise InvalidInput(f"this kiosk is already enrolled as {ledger.kiosk_code}")
    client = make_client(cfg, ledger, url, session)
    pub = canonical.public_key_b64(ledger.public_key)
    try:
        resp = client.enroll(code.strip(), pub, ledger.device_id)
    except SyncError as exc:
        if exc.transient:
            raise ServerUnreachable(f"{exc.message}; nothing changed, try again") from None
        raise InvalidInput(f"enrollment refused: {exc.message}") from None
    served = fingerprint.server_fingerprint(resp.server_sign_public_key, resp.server_seal_public_key)
    if expected_fingerprint is not None and not fingerprint.matches(expected_fingerprint, served):
        raise InvalidInput(
            "the server's keys do not match the fingerprint you were given: this may not be the real "
            "server (or the fingerprint was mistyped); nothing was stored"
        )
    if expected_fingerprint is None:
        log.warning("enrolled without a fingerprint: the server's keys were not checked")
    ledger.set_clock_offset(client.offset_s)  # the first sales already get the server's day
    _store_enrollment(ledger, resp, url)
    return _after_enrollment(cfg, ledger, resp, url, served, expected_fingerprint is not None)


def _store_enrollment(ledger: Ledger, resp: protocol.EnrollResponse, url: str) -> None:
    ledger.set_meta(
        {
            "kiosk_code": resp.kiosk_code,
            "lsp_id": resp.lsp_id,
            "server_url": url,
            "server_sign_pub": resp.server_sign_public_key,
            "server_seal_pub": resp.server_seal_public_key,
            "enrolled_at": str(ledger.now()),
        }
    )
    ledger.retire_dev_leases()  # development blocks are never valid at a real server


def _after_enrollment(
    cfg: Config, ledger: Ledger, resp: protocol.EnrollResponse, url: str, served: str, checked: bool
) -> dict[str, Any]:
    """First leases and the catalog; the answer of ``enroll``."""
    outbox = LedgerOutbox(ledger)
    outbox.add_leases(resp.leases)
    engine = make_engine(cfg, ledger)
    assert engine is not None
    try:
        engine.pull_catalog()
    except SyncError as exc:  # enrollment stands; the catalog comes with the next sync
        log.warning("catalog not pulled at enrollment: %s", exc.message)
    log.info("enrolled as %s (lsp %s)", resp.kiosk_code, resp.lsp_id)
    return {
        "device_id": ledger.device_id,
        "kiosk_code": resp.kiosk_code,
        "lsp_id": resp.lsp_id,
        "server_url": url,
        "tokens_remaining": ledger.tokens_remaining(),
        "catalog_version": outbox.catalog_version(),
        "server_fingerprint": served,
        "fingerprint_checked": checked,
    }
