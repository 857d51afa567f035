"""The agent's side of sync: enrollment, and building the engine for this
kiosk from its config and ledger."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import requests

from agent.config import Config
from agent.errors import InvalidInput, ServerUnreachable
from agent.ledger import Ledger
from agent.ledger.outbox import LedgerOutbox
from sync.client import SyncClient
from sync.engine import Backoff, SyncEngine
from sync.errors import SyncError
from sync.outbox import Outbox
from sync.wire import canonical

log = logging.getLogger(__name__)


def server_url(cfg: Config, ledger: Ledger) -> str | None:
    """``[server] url`` when set, else the URL stored at enrollment."""
    return cfg.settings.server.url or ledger.meta("server_url")


def link_up(cfg: Config, ledger: Ledger) -> bool:
    """Whether the server answers now (an online-only service asks; offline work never does)."""
    url = server_url(cfg, ledger)
    return bool(url and ledger.kiosk_code and make_client(cfg, ledger, url).healthy())


def make_client(cfg: Config, ledger: Ledger, url: str, session: requests.Session | None = None) -> SyncClient:
    return SyncClient(
        url,
        device_id=ledger.device_id,
        private_key=ledger.signing_key,
        session=session,
        timeout_s=cfg.settings.server.timeout_s,
        encoding="zstd",  # ~7% fewer bytes than gzip on a batch; the server takes both
    )


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


def enroll(
    cfg: Config, ledger: Ledger, url: str, code: str, session: requests.Session | None = None
) -> dict[str, Any]:
    """Register this device with the server; store K-code, LSP, server keys,
    first leases and the catalog. Refuses a second enrollment."""
    url = url.rstrip("/")
    if not (url.startswith("http://") or url.startswith("https://")):
        raise InvalidInput("the server URL must start with http:// or https://")
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
    }
