"""Configuration: found once, validated once, frozen.

Search order: ``--config PATH``, ``$KIOSK_AGENT_CONFIG``, ``./agent.toml``,
then the platform config dir (``$XDG_CONFIG_HOME/kiosk-agent/agent.toml`` or
``%APPDATA%\\kiosk-agent\\agent.toml``). With none found the defaults apply and
relative paths are taken from the platform data dir. Relative paths in a file
are taken from the file's folder.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from agent.errors import ConfigError

ENV_CONFIG = "KIOSK_AGENT_CONFIG"

# Validation is a few lines of stdlib on dataclasses rather than pydantic models: building
# nine pydantic models costs ~100 ms at every CLI start, which `status` (< 0.3 s) can't afford.


def _limits(
    ge: float | None = None,
    le: float | None = None,
    gt: float | None = None,
    min_len: int | None = None,
    max_len: int | None = None,
) -> dict[str, Any]:
    return {"ge": ge, "le": le, "gt": gt, "min_len": min_len, "max_len": max_len}


def _f(default: Any, **limits: Any) -> Any:
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=_limits(**limits))
    return field(default=default, metadata=_limits(**limits))


def _check_url(v: str) -> str:
    if v and not (v.startswith("http://") or v.startswith("https://")):
        raise ValueError("must start with http:// or https://")
    return v.rstrip("/")


@dataclass(frozen=True)
class AgentSection:
    data_dir: str = "agent-data"
    operator: str = _f("operator", min_len=1, max_len=40)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    log_max_bytes: int = _f(1_048_576, ge=65_536)
    log_backups: int = _f(5, ge=1, le=100)


@dataclass(frozen=True)
class SecuritySection:
    key_source: Literal["file", "env", "keyring"] = "file"
    key_file: str = "db.key"
    keyring_service: str = "kiosk-agent"


@dataclass(frozen=True)
class ServerSection:
    url: str = field(default="", metadata={"check": _check_url})
    timeout_s: float = _f(15.0, gt=0)


@dataclass(frozen=True)
class SyncSection:
    interval_s: int = _f(60, ge=5)
    batch_max_records: int = _f(500, ge=1, le=5000)
    batch_max_bytes: int = _f(262_144, ge=4096)
    backoff_base_s: float = _f(2.0, gt=0)
    backoff_cap_s: float = _f(900.0, gt=0)
    heartbeat_s: int = _f(300, ge=10)
    clock_margin_s: int = _f(120, ge=5, le=86_400)


@dataclass(frozen=True)
class TokensSection:
    days_target: int = _f(14, ge=1, le=365)
    min_remaining: int = _f(200, ge=0)


PrinterKind = Literal["none", "network", "serial", "usb"]


@dataclass(frozen=True)
class PrinterSection:
    url: str = "none"
    width_dots: Literal[384, 576] = 576
    usb_vid_pid: str = ""
    timeout_s: float = _f(5.0, gt=0)
    lang: Literal["hi", "en"] = "hi"

    @property
    def kind(self) -> PrinterKind:
        """The one rule for "is printing on, and on what": ``url`` "none" or empty with no USB id is
        off (what ``hardware.open_printer`` gives a NullPrinter for); a USB id finds the printer by
        VID:PID; ``socket://`` is a network printer; any other pyserial URL a serial one."""
        if self.usb_vid_pid.strip():
            return "usb"
        url = self.url.strip()
        if url.lower() in ("", "none"):
            return "none"
        return "network" if url.startswith("socket://") else "serial"

    @property
    def enabled(self) -> bool:
        """Whether receipts are printed (and print jobs queued) at all."""
        return self.kind != "none"


@dataclass(frozen=True)
class FingerprintSection:
    kind: Literal["rdservice", "r30x", "none"] = "none"
    url: str = ""
    rdservice_ports: list[int] = _f(list(range(11100, 11121)), ge=1, le=65535, min_len=1)


@dataclass(frozen=True)
class LocalApiSection:
    host: str = "127.0.0.1"
    port: int = _f(8765, ge=1, le=65535)


@dataclass(frozen=True)
class LedgerSection:
    warn_free_mb: int = _f(500, ge=0)
    min_free_mb: int = _f(100, ge=0)
    reserve_mb: int = _f(16, ge=0)
    wal_checkpoint_pages: int = _f(256, ge=16, le=100_000)


@dataclass(frozen=True)
class Settings:
    agent: AgentSection = field(default_factory=AgentSection)
    security: SecuritySection = field(default_factory=SecuritySection)
    server: ServerSection = field(default_factory=ServerSection)
    sync: SyncSection = field(default_factory=SyncSection)
    tokens: TokensSection = field(default_factory=TokensSection)
    printer: PrinterSection = field(default_factory=PrinterSection)
    fingerprint: FingerprintSection = field(default_factory=FingerprintSection)
    local_api: LocalApiSection = field(default_factory=LocalApiSection)
    ledger: LedgerSection = field(default_factory=LedgerSection)


SECTIONS: dict[str, type] = {
    f.name: typing.get_type_hints(Settings)[f.name] for f in dataclasses.fields(Settings)
}


class _Invalid(Exception):
    pass


def _value(hint: Any, v: Any, meta: Any) -> Any:
    """Check one value against its annotation (strict: no coercion but int -> float) and limits."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        choices = typing.get_args(hint)
        if isinstance(v, bool) or v not in choices:
            raise _Invalid("must be one of " + ", ".join(repr(c) for c in choices))
        return v
    if origin is list:
        if not isinstance(v, list):
            raise _Invalid("must be a list")
        (item,) = typing.get_args(hint)
        out = [_value(item, x, meta) for x in v]
        if meta.get("min_len") is not None and len(out) < meta["min_len"]:
            raise _Invalid(f"needs at least {meta['min_len']} item(s)")
        return out
    if hint is float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _Invalid("must be a number")
        v = float(v)
    elif hint is int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise _Invalid("must be a whole number")
    elif hint is str:
        if not isinstance(v, str):
            raise _Invalid("must be a string (in quotes)")
        if meta.get("min_len") is not None and len(v) < meta["min_len"]:
            raise _Invalid(f"must be at least {meta['min_len']} character(s)")
        if meta.get("max_len") is not None and len(v) > meta["max_len"]:
            raise _Invalid(f"must be at most {meta['max_len']} characters")
    if isinstance(v, (int, float)):
        for key, ok, word in (
            ("ge", lambda a, b: a >= b, ">="),
            ("le", lambda a, b: a <= b, "<="),
            ("gt", lambda a, b: a > b, ">"),
        ):
            if meta.get(key) is not None and not ok(v, meta[key]):
                raise _Invalid(f"must be {word} {meta[key]}")
    if meta.get("check"):
        try:
            v = meta["check"](v)
        except ValueError as exc:
            raise _Invalid(str(exc)) from None
    return v


def _section(name: str, raw: Any) -> Any:
    cls = SECTIONS[name]
    if not isinstance(raw, dict):
        raise _Invalid(f"[{name}]: must be a table")
    hints = typing.get_type_hints(cls, include_extras=False)
    known = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, v in raw.items():
        if key not in known:
            raise _Invalid(f"[{name}] {key}: unknown setting")
        try:
            values[key] = _value(hints[key], v, known[key].metadata)
        except _Invalid as exc:
            raise _Invalid(f"[{name}] {key}: {exc}") from None
    return cls(**values)


def validate(raw: dict[str, Any]) -> Settings:
    """Settings from a parsed TOML document; raises ValueError with '[section] key: problem'."""
    for name in raw:
        if name not in SECTIONS:
            raise ValueError(f"[{name}]: unknown setting")
    try:
        return Settings(**{name: _section(name, v) for name, v in raw.items()})
    except _Invalid as exc:
        raise ValueError(str(exc)) from None


@dataclass(frozen=True)
class Config:
    """The validated settings plus where they came from; paths resolved."""

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
        settings = validate(raw)
    except ValueError as exc:
        raise ConfigError(f"{path or 'defaults'}: {exc}") from None
    base = path.parent.resolve() if path is not None else platform_data_dir()
    data_dir = Path(settings.agent.data_dir).expanduser()
    if not data_dir.is_absolute():
        data_dir = (base / data_dir).resolve()
    return Config(settings=settings, source=path, data_dir=data_dir)
