"""Shared plumbing of the CLI: config on the context, JSON or human output,
one-line errors with the right exit code."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from typing import Any

import click

from agent.config import Config
from agent.errors import AgentError
from sync.wire.redact import redact


class State:
    """Loaded once per invocation, lazily: --help never reads the config."""

    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self.log_format: str | None = None  # `run --log-format` sets it before the first cfg use
        self.log_console = False
        self._cfg: Config | None = None

    @property
    def cfg(self) -> Config:
        if self._cfg is None:
            from agent import config, logs

            self._cfg = config.load(self.config_path)
            logs.setup(self._cfg, fmt=self.log_format, console=self.log_console)
        return self._cfg


pass_state = click.make_pass_decorator(State)


def emit(obj: Any, as_json: bool, human: Callable[[Any], str] | None = None) -> None:
    if as_json or human is None:
        click.echo(json.dumps(obj, ensure_ascii=False))
    else:
        click.echo(human(obj))


def fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    logging.getLogger("agent.cli").debug("exit %d", code)
    sys.exit(code)


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


def fail_with(exc: AgentError) -> None:
    """The one line for an error (never a citizen's number, as typed) and its exit code."""
    click.echo(f"error: {redact(exc.message)}", err=True)
    sys.exit(exc.exit_code)


def storage_error_for_cli(exc: Exception) -> AgentError | None:
    """SQLite's or the disk's error named for the operator (exit 3 with the way out), or None for
    anything else (a bug: the traceback is the useful report)."""
    import errno
    from pathlib import Path

    from agent.errors import LedgerIOError
    from agent.ledger.db import RESTORE_HINT, DatabaseError, is_storage, storage_error

    where = Path.cwd()
    if isinstance(exc, DatabaseError):
        if is_storage(exc):
            return storage_error(exc, where / "ledger.db")
        name = getattr(exc, "sqlite_errorname", None) or exc.__class__.__name__
        return LedgerIOError(
            f"the ledger answered an error ({name}); try again; if it keeps failing, {RESTORE_HINT}"
        )
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO):
        return storage_error(exc, where / "ledger.db")
    return None
