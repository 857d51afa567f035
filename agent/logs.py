"""Logging for the agent: a size-bounded rotating file in the data dir, text
or JSON lines. Nothing here may carry PII; callers log ids and codes only."""

from __future__ import annotations

import json
import logging
import logging.handlers

from agent.config import Config


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
    cfg.log_dir.mkdir(exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(
        cfg.log_dir / "agent.log", maxBytes=a.log_max_bytes, backupCount=a.log_backups, encoding="utf-8"
    )
    handler.setFormatter(formatter)
    handler._kiosk_agent = True  # type: ignore[attr-defined]
    root.addHandler(handler)
