"""Configuration: found once, validated once, frozen.

Search order: ``--config PATH``, ``$KIOSK_AGENT_CONFIG``, ``./agent.toml``,
then the platform config dir (``$XDG_CONFIG_HOME/kiosk-agent/agent.toml`` or
``%APPDATA%\\kiosk-agent\\agent.toml``). With none found the defaults apply and
relative paths are taken from the platform data dir. Relative paths in a file
are taken from the file's folder.
"""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agent.errors import ConfigError

ENV_CONFIG = "KIOSK_AGENT_CONFIG"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class AgentSection(_Section):
    data_dir: str = "agent-data"
    operator: str = Field(default="operator", min_length=1, max_length=40)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    log_max_bytes: int = Field(default=1_048_576, ge=65_536)
    log_backups: int = Field(default=5, ge=1, le=100)


class SecuritySection(_Section):
    key_source: Literal["file", "env", "keyring"] = "file"
    key_file: str = "db.key"
    keyring_service: str = "kiosk-agent"


class ServerSection(_Section):
    url: str = ""
    timeout_s: float = Field(default=15.0, gt=0)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if v and not (v.startswith("http://") or v.startswith("https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/")


class SyncSection(_Section):
    interval_s: int = Field(default=60, ge=5)
    batch_max_records: int = Field(default=500, ge=1, le=5000)
    batch_max_bytes: int = Field(default=262_144, ge=4096)
    backoff_base_s: float = Field(default=2.0, gt=0)
    backoff_cap_s: float = Field(default=900.0, gt=0)
    heartbeat_s: int = Field(default=300, ge=10)


class TokensSection(_Section):
    days_target: int = Field(default=14, ge=1, le=365)
    min_remaining: int = Field(default=200, ge=0)


class PrinterSection(_Section):
    url: str = "none"
    width_dots: Literal[384, 576] = 576
    usb_vid_pid: str = ""
    timeout_s: float = Field(default=5.0, gt=0)
    lang: Literal["hi", "en"] = "hi"


class FingerprintSection(_Section):
    kind: Literal["rdservice", "r30x", "none"] = "none"
    url: str = ""
    rdservice_ports: list[int] = Field(default_factory=lambda: list(range(11100, 11121)))


class LocalApiSection(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=1, le=65535)


class Settings(_Section):
    agent: AgentSection = AgentSection()
    security: SecuritySection = SecuritySection()
    server: ServerSection = ServerSection()
    sync: SyncSection = SyncSection()
    tokens: TokensSection = TokensSection()
    printer: PrinterSection = PrinterSection()
    fingerprint: FingerprintSection = FingerprintSection()
    local_api: LocalApiSection = LocalApiSection()


class Config(BaseModel):
    """The validated settings plus where they came from; paths resolved."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    settings: Settings
    source: Path | None
    data_dir: Path

    @property
    def key_file(self) -> Path:
        return self.data_dir / self.settings.security.key_file

    @property
    def ledger_path(self) -> Path:
        return self.data_dir / "ledger.db"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"


def platform_config_dir() -> Path:
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming")) / "kiosk-agent"
    return Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "kiosk-agent"


def platform_data_dir() -> Path:
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "kiosk-agent"
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "kiosk-agent"


def find_config(
    explicit: str | None, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Path | None:
    named = explicit or (os.environ if env is None else env).get(ENV_CONFIG)
    if named:
        path = Path(named)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        return path
    for candidate in ((cwd or Path.cwd()) / "agent.toml", platform_config_dir() / "agent.toml"):
        if candidate.is_file():
            return candidate
    return None


def _describe(err: dict[str, Any]) -> str:
    loc = [str(p) for p in err["loc"]]
    where = f"[{loc[0]}] {'.'.join(loc[1:])}" if len(loc) > 1 else f"[{loc[0]}]" if loc else "(top level)"
    if err["type"] == "extra_forbidden":
        return f"{where}: unknown setting"
    return f"{where}: {err['msg']}"


def load(explicit: str | None = None, env: dict[str, str] | None = None, cwd: Path | None = None) -> Config:
    """Find, parse and validate the config once. Raises ConfigError (one line)."""
    path = find_config(explicit, env, cwd)
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read config file ({exc.__class__.__name__})") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"{path or 'defaults'}: {_describe(dict(first))}") from None
    base = path.parent.resolve() if path is not None else platform_data_dir()
    data_dir = Path(settings.agent.data_dir).expanduser()
    if not data_dir.is_absolute():
        data_dir = (base / data_dir).resolve()
    return Config(settings=settings, source=path, data_dir=data_dir)
