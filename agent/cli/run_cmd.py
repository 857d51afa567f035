"""run: the agent as a long-running service."""

from __future__ import annotations

import click

from agent.cli._common import State, pass_state


@click.command("run")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default=None,
    help="Log lines as text or JSON (default from [agent] log_format).",
)
@pass_state
def run_cmd(state: State, log_format: str | None) -> None:
    """Serve: ledger, sync/heartbeat/lease/backup jobs, printer, local API on 127.0.0.1.
    SIGTERM or Ctrl-C stops it gracefully (exit 0)."""
    import logging
    import os
    import signal
    import threading

    from agent import runner

    state.log_format = log_format
    state.log_console = True
    cfg = state.cfg
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:  # only sets the flag
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    code = runner.run(cfg, stop)
    logging.shutdown()
    os._exit(code)  # the ledger is closed; don't wait on a job thread stuck in a network timeout
