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
    """A rotating log whose files are created 0600 (the first one, and each after a rollover).

    Cheaper per record than the stdlib's (which stats the file twice, seeks to its end and formats
    every record a second time to decide on a rollover): the size is counted in memory from the
    file's size at open. Another process appending to the same file is not counted, so a file may
    outgrow ``maxBytes`` by what others wrote; rollover stays approximate, as it always was.

    A record that can't be written (a full disk) is dropped without a word: the stdlib would print
    a traceback on stderr under the CLI's one error line."""

    _size = 0
    dropped = 0

    def _open(self) -> io.TextIOWrapper:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._size = os.fstat(fd).st_size
        return open(fd, "a", encoding=self.encoding, errors=self.errors)  # noqa: SIM115 - the handler keeps it

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = self.format(record) + self.terminator
            if self.stream is None:
                self.stream = self._open()
            if 0 < self.maxBytes <= self._size + len(msg) and self._size > 0:
                self.doRollover()
                if self.stream is None:
                    self.stream = self._open()
            self.stream.write(msg)
            self.stream.flush()
            self._size += len(msg)
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def handleError(self, record: logging.LogRecord) -> None:
        self.dropped += 1


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


def _collect_only_what_is_shown() -> None:
    """Neither format shows the caller, thread or process: don't look them up for every record
    (the logging HOWTO's "Optimization"; the caller's frame walk was ~1/3 of a committed sale's
    log line)."""
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def setup(cfg: Config, *, fmt: str | None = None, console: bool = False) -> None:
    """Route the agent's loggers to ``<data_dir>/logs/agent.log`` once the data dir exists.

    Called again for the same data dir, it changes nothing; for another one (one process running
    commands for several kiosks, as the tests do), that kiosk's log replaces the first."""
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "_kiosk_agent", False)]
    if any(getattr(h, "baseFilename", None) == os.path.abspath(cfg.log_dir / "agent.log") for h in ours):
        return
    for old in ours:
        root.removeHandler(old)
        old.close()
    a = cfg.settings.agent
    root.setLevel(a.log_level)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # its per-run INFO lines drown ours
    _collect_only_what_is_shown()
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
