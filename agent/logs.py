"""Logging for the agent: a size-bounded rotating file in the data dir, text
or JSON lines. Nothing here may carry PII; callers log ids and codes only.

The data dir and ``logs/`` are 0700 and every log file 0600, made so and tightened (with a
warning in the log) when found looser: every command sets logging up first, so this is the
start-up check."""

from __future__ import annotations

import io
import json
import logging
import logging.handlers
import os

from agent.config import Config
from agent.fsutil import private_dir, private_file


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log whose files are created 0600 (the first one, and each after a rollover)."""

    def _open(self) -> io.TextIOWrapper:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return open(fd, "a", encoding=self.encoding, errors=self.errors)  # noqa: SIM115 - the handler keeps it


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


def setup(cfg: Config, *, fmt: str | None = None, console: bool = False) -> None:
    """Route the agent's loggers to ``<data_dir>/logs/agent.log`` once the data dir exists."""
    root = logging.getLogger()
    if any(getattr(h, "_kiosk_agent", False) for h in root.handlers):
        return
    a = cfg.settings.agent
    root.setLevel(a.log_level)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # its per-run INFO lines drown ours
    formatter: logging.Formatter = (
        JsonFormatter()
        if (fmt or a.log_format) == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    if console:  # the service's stderr: the journal under systemd
        stream = logging.StreamHandler()
        stream.setFormatter(formatter)
        root.addHandler(stream)
    if not cfg.data_dir.exists():
        return
    tightened = [p for p in (cfg.data_dir, cfg.log_dir) if private_dir(p)]
    tightened += [p for p in sorted(cfg.log_dir.glob("agent.log*")) if private_file(p)]
    handler = PrivateRotatingFileHandler(
        cfg.log_dir / "agent.log", maxBytes=a.log_max_bytes, backupCount=a.log_backups, encoding="utf-8"
    )
    handler.setFormatter(formatter)
    handler._kiosk_agent = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    for path in tightened:
        logging.getLogger(__name__).warning("%s could be read by other users; made it private", path)
