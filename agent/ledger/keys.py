"""Where the 256-bit database key comes from: a 0600 file, the environment or
the OS keyring. The key is never logged or printed."""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from agent.errors import KeyUnavailable
from agent.fsutil import atomic_write

ENV_KEY = "KIOSK_AGENT_DB_KEY"
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_KEYRING_USER = "ledger-db-key"


def _check(hex_key: str, where: str) -> str:
    hex_key = hex_key.strip()
    if not _HEX64.match(hex_key):
        raise KeyUnavailable(f"the database key in {where} is not 64 hex characters")
    return hex_key.lower()


def load_key(source: str, key_file: Path, keyring_service: str, env: dict[str, str] | None = None) -> str:
    """The key as 64 lowercase hex chars, or KeyUnavailable."""
    if source == "env":
        value = (os.environ if env is None else env).get(ENV_KEY)
        if value is None:
            raise KeyUnavailable(f"key_source is env but {ENV_KEY} is not set")
        return _check(value, ENV_KEY)
    if source == "keyring":
        import keyring  # lazy: talks to the OS credential store

        try:
            value = keyring.get_password(keyring_service, _KEYRING_USER)
        except Exception as exc:  # keyring backends raise many kinds
            raise KeyUnavailable(f"the OS keyring is not available ({exc.__class__.__name__})") from None
        if value is None:
            raise KeyUnavailable(f"no database key in the OS keyring under '{keyring_service}'; run init")
        return _check(value, "the OS keyring")
    try:
        return _check(key_file.read_text(encoding="ascii"), str(key_file))
    except FileNotFoundError:
        raise KeyUnavailable(f"{key_file}: database key file not found; run kiosk-agent init") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyUnavailable(f"{key_file}: cannot read the database key ({exc.__class__.__name__})") from None


def create_key(source: str, key_file: Path, keyring_service: str, env: dict[str, str] | None = None) -> str:
    """Make (or, for env, check) the key for a new ledger."""
    if source == "env":
        return load_key(source, key_file, keyring_service, env)
    key = secrets.token_hex(32)
    if source == "keyring":
        import keyring

        try:
            keyring.set_password(keyring_service, _KEYRING_USER, key)
        except Exception as exc:
            raise KeyUnavailable(
                f"cannot store the key in the OS keyring ({exc.__class__.__name__})"
            ) from None
    else:
        atomic_write(key_file, (key + "\n").encode("ascii"))  # 0600 from creation
    return key
