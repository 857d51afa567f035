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
