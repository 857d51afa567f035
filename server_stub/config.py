"""Server configuration: defaults -> environment -> flags, validated once into a frozen object."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server_stub.errors import ConfigError

DEFAULT_DB_URL = "sqlite:///server-data/server.db"
ENV_PREFIX = "KIOSK_SERVER_"
# The CLI hands the validated config to uvicorn worker processes through this variable.
ENV_CONFIG_JSON = "KIOSK_SERVER_CONFIG_JSON"
SLA_RULES = ("sync", "heartbeat", "fork")  # server_stub.sla evaluates each


def default_keys_dir(db_url: str) -> Path:
    """``keys/`` beside a SQLite file, else ``./server-data/keys``."""
    from sqlalchemy.engine.url import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(db_url)
    except ArgumentError:
        return Path("server-data") / "keys"
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return Path(url.database).parent / "keys"
    return Path("server-data") / "keys"


@dataclass(frozen=True)
class ServerConfig:
    """Every setting of the server, validated once.

    Trust settings (see README, "What the server checks"):

    - ``catalog_grace_hours``: a sale may name a catalog version for this long after the next
      version was loaded (a kiosk that was offline pulls the new one late).
    - ``future_margin_s``: a record made more than this ahead of the server's receive time is
      refused (``time_implausible``), and so is one made this much before its device enrolled
      while carrying a token only an enrolled device has. ``clock_tolerance_s``: a record made
      more than this before the record before it, or ahead of the receive time (within the
      margin), is accepted but counted as ``clock_suspect`` in reconciliation.
    - Leases: a device may hold at most ``lease_cap_days`` days of its observed rate in unused
      serials, never less than ``lease_cap_min`` and never more than ``lease_cap_max``.
    - ``enroll_failures_per_min``: failed enrollment attempts, all callers together, per minute;
      beyond it every enrollment answers 429 until the minute is over.
    - ``token_lookups_per_min``: follow-up lookups per device per minute (counted in the database,
      so every worker shares the count).
    - Console: a kiosk whose last heartbeat is older than ``stale_after_minutes`` is *stale*,
      older than ``offline_after_hours`` (or never) *offline*. ``login_failures_per_user`` /
      ``login_failures_per_ip``: wrong passwords per 15 minutes before that user name / address
      must wait for the window to end (counted in the database: every worker shares them).
    - Load (see docs/DEPLOYMENT.md): a worker runs at most ``max_in_flight`` requests at once
      (its database pool and thread pool are sized to it) and queues what it drains in
      ``queue_wait_s``; beyond that a caller is answered 429 with a ``Retry-After``
      (:mod:`server_stub.admission`). ``shared_state``: where the rate limits live; empty = this
      process and the database (one host), ``redis://...`` = shared by every host.
      ``global_rate_per_s``: requests per second from all devices together (0 = no limit).
    - ``keys_dir``: the folder of the server's key files (0700, files 0600); empty means beside the
      SQLite file, or ``./server-data/keys`` for PostgreSQL.

    SLA (evaluated per kiosk per month, :mod:`server_stub.sla`; a kiosk that breaks a rule in
    ``sla_rules`` has its month's commission held):

    - ``sync``: more than ``sla_max_late_syncs`` records reached the server later than
      ``sla_hours`` after they were made;
    - ``heartbeat``: fewer than ``sla_heartbeat_days`` days of the month with a heartbeat (for a
      kiosk enrolled part of the month: more missed days than the month allows, days in the
      month minus ``sla_heartbeat_days``, at least 0: 31 means every day);
    - ``fork``: a device of the kiosk is flagged for a fork (unresolved) at the end of the month.

    ``cookie_secure``: the console's cookies are ``Secure`` when the request came over https
    (``auto``) or always (``always``: behind a load balancer that ends TLS).

    ``metrics_token``: ``GET /metrics`` needs ``Authorization: Bearer <token>``; empty means only
    loopback clients may read it.
    """

    db: str = DEFAULT_DB_URL
    block_size: int = 1000  # serials per lease
    initial_blocks: int = 2  # leases handed out at enrollment
    max_blocks_per_request: int = 16
    sla_hours: int = 24  # a record received later than this after creation is a late sync
    enrollment_ttl_hours: int = 72
    max_body_bytes: int = 2 * 1024 * 1024  # on the wire and after decompression
    max_skew_s: int = 300  # request timestamp window
    rate_per_s: float = 20.0  # per device and worker; 0 turns the limit off
    rate_burst: int = 60
    timezone: str = "Asia/Kolkata"
    catalog_grace_hours: int = 72
    future_margin_s: int = 3600
    clock_tolerance_s: int = 300
    lease_cap_days: int = 30
    lease_cap_min: int = 20_000
    lease_cap_max: int = 2_000_000
    enroll_failures_per_min: int = 60
    token_lookups_per_min: int = 30
    keys_dir: str = ""
    # console: kiosk state by last heartbeat, and the login limit (failures per 15 minutes)
    stale_after_minutes: int = 30
    offline_after_hours: int = 24
    login_failures_per_user: int = 5
    login_failures_per_ip: int = 30
    sla_max_late_syncs: int = 0
    sla_heartbeat_days: int = 25
    sla_rules: str = "sync,heartbeat,fork"
    metrics_token: str = ""
    max_in_flight: int = 8  # requests a worker runs at once (also its DB pool and thread pool)
    queue_wait_s: float = 1.5  # beyond what a worker drains in this long, callers are shed (429)
    shared_state: str = ""  # "" = in this process / the database; "redis://host:6379/0" = shared by hosts
    global_rate_per_s: float = 0.0  # requests per second from all devices together; 0 = off
    # console cookies: "auto" = Secure when the request came over https; "always" behind a proxy
    # that ends TLS (the server then sees plain http, but the browser must never send them so)
    cookie_secure: str = "auto"

    def __post_init__(self) -> None:
        if not self.db or "://" not in self.db:
            raise ConfigError("the database URL is not a URL (e.g. sqlite:///server-data/server.db)")
        for name in (
            "block_size",
            "initial_blocks",
            "max_blocks_per_request",
            "sla_hours",
            "enrollment_ttl_hours",
            "max_body_bytes",
            "max_skew_s",
            "future_margin_s",
            "clock_tolerance_s",
            "lease_cap_days",
            "lease_cap_min",
            "enroll_failures_per_min",
            "token_lookups_per_min",
            "stale_after_minutes",
            "offline_after_hours",
            "login_failures_per_user",
            "login_failures_per_ip",
            "max_in_flight",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        if self.catalog_grace_hours < 0:
            raise ConfigError("catalog_grace_hours must be at least 0")
        if self.block_size * self.max_blocks_per_request > 100_000:  # leases.SERIAL_RANGE
            raise ConfigError("block_size x max_blocks_per_request must be at most 100000 serials")
        if self.lease_cap_max < self.lease_cap_min:
            raise ConfigError("lease_cap_max must be at least lease_cap_min")
        if self.clock_tolerance_s > self.future_margin_s:
            raise ConfigError("clock_tolerance_s must not be above future_margin_s")
        if self.rate_per_s < 0 or self.rate_burst < 1:
            raise ConfigError("rate_per_s must be >= 0 and rate_burst >= 1")
        if self.queue_wait_s <= 0 or self.global_rate_per_s < 0:
            raise ConfigError("queue_wait_s must be above 0 and global_rate_per_s at least 0")
        if self.shared_state and not self.shared_state.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError("shared_state must be empty or a redis:// URL (e.g. redis://127.0.0.1:6379/0)")
        if self.cookie_secure not in ("auto", "always"):
            raise ConfigError("cookie_secure must be auto or always")
        self._check_sla()

    def _check_sla(self) -> None:
        if self.sla_max_late_syncs < 0:
            raise ConfigError("sla_max_late_syncs must be at least 0")
        if not 0 <= self.sla_heartbeat_days <= 31:
            raise ConfigError("sla_heartbeat_days must be 0 to 31")
        unknown = set(self.sla_rule_names()) - set(SLA_RULES)
        if unknown:
            raise ConfigError(
                f"sla_rules: unknown rule {sorted(unknown)[0]!r} (known: {', '.join(SLA_RULES)})"
            )

    def sla_rule_names(self) -> tuple[str, ...]:
        """The SLA rules in force, in the order of ``SLA_RULES``."""
        named = {r.strip() for r in self.sla_rules.split(",") if r.strip()}
        return tuple(r for r in SLA_RULES if r in named) + tuple(sorted(named - set(SLA_RULES)))

    def keys_path(self) -> Path:
        """Where the key files live (``keys_dir``, else :func:`default_keys_dir` of the database)."""
        return Path(self.keys_dir) if self.keys_dir else default_keys_dir(self.db)

    def replace(self, **changes: Any) -> ServerConfig:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServerConfig:
        return cls(**json.loads(text))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, base: ServerConfig | None = None) -> ServerConfig:
        """``KIOSK_SERVER_DB``, ``KIOSK_SERVER_BLOCK_SIZE``, ... over ``base`` (or the defaults)."""
        env = os.environ if env is None else env
        base = base or cls()
        changes: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            raw = env.get(ENV_PREFIX + field.name.upper())
            if raw is None or raw == "":
                continue
            current = getattr(base, field.name)
            try:
                changes[field.name] = type(current)(raw)
            except ValueError:
                raise ConfigError(f"{ENV_PREFIX}{field.name.upper()} is not a valid value") from None
        return base.replace(**changes)
