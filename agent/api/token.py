"""The per-install API token: made at first start, kept in a 0600 file in the data dir.

A file (not the ledger's meta table) so the kiosk's own front end, running as
the same user, can read it; the operator page gets it embedded server-side.
"""

from __future__ import annotations

import secrets

from agent.config import Config
from agent.fsutil import atomic_write

TOKEN_FILE = "api.token"


def load_or_create_token(cfg: Config) -> str:
    path = cfg.data_dir / TOKEN_FILE
    try:
        text = path.read_text(encoding="ascii").strip()
        if len(text) >= 32:
            return text
    except FileNotFoundError:
        pass
    token = secrets.token_urlsafe(32)
    atomic_write(path, (token + "\n").encode("ascii"))
    return token
