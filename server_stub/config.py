"""Server configuration: defaults -> environment -> flags, validated once into a frozen object."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from server_stub.errors import ConfigError

DEFAULT_DB_URL = "sqlite:///server-data/server.db"
ENV_PREFIX = "KIOSK_SERVER_"
# The CLI hands the validated config to uvicorn worker processes through this variable.
ENV_CONFIG_JSON = "KIOSK_SERVER_CONFIG_JSON"


@dataclass(frozen=True)
class ServerConfig:
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

    def __post_init__(self) -> None:
        if not self.db or "://" not in self.db:
            raise ConfigError(f"database URL {self.db!r} is not a URL (e.g. sqlite:///server-data/server.db)")
        for name in (
            "block_size",
            "initial_blocks",
            "max_blocks_per_request",
            "sla_hours",
            "enrollment_ttl_hours",
            "max_body_bytes",
            "max_skew_s",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        if self.rate_per_s < 0 or self.rate_burst < 1:
            raise ConfigError("rate_per_s must be >= 0 and rate_burst >= 1")

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
                raise ConfigError(f"{ENV_PREFIX}{field.name.upper()}={raw!r} is not a valid value") from None
        return base.replace(**changes)
