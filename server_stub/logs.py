"""The server's log lines: uvicorn's text format (the default) or one JSON object per line
(``serve --log-format json``: ``ts``, ``level``, ``logger``, ``msg``, and for an access line
``method``, ``path``, ``status``, ``client``), as the agent writes them.

Every message passes :func:`sync.wire.redact.redact` (a long number becomes ``<number>``), so a
citizen's number in a URL or an error never reaches the log; paths are logged without their query.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from sync.wire.redact import redact

FORMATS = ("text", "json")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, path, _version, status = record.args
            doc.update(
                method=str(method),
                path=redact(str(path).split("?", 1)[0]),
                status=status if isinstance(status, int) else str(status),
                client=str(client),
            )
            doc["msg"] = f"{doc['method']} {doc['path']} {doc['status']}"
        if record.exc_info:
            doc["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(doc, ensure_ascii=False)


def uvicorn_log_config(fmt: str, level: str) -> dict[str, Any] | None:
    """A logging dictConfig for uvicorn (and our own loggers) in ``fmt``; None keeps uvicorn's."""
    if fmt == "text":
        return None
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    lvl = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "server_stub.logs.JsonFormatter"}},
        "handlers": {"json": handler},
        "loggers": {
            "uvicorn": {"handlers": ["json"], "level": lvl, "propagate": False},
            "uvicorn.error": {"level": lvl},
            "uvicorn.access": {"handlers": ["json"], "level": lvl, "propagate": False},
        },
        "root": {"handlers": ["json"], "level": lvl},
    }
