"""demo: the whole story in one command."""

from __future__ import annotations

from pathlib import Path

import click

from agent.cli._common import emit, json_option


@click.command("demo")
@click.option(
    "--count",
    type=click.IntRange(1, 5000),
    default=50,
    show_default=True,
    help="Transactions to make while offline.",
)
@click.option(
    "--dir",
    "root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Working folder (default: a new temp folder, kept so you can look at the PNGs).",
)
@json_option
def demo_cmd(count: int, root: Path | None, as_json: bool) -> None:
    """A server, an LSP, a kiosk, 50 offline transactions, the link back, reconciliation."""
    import sys

    from rich.console import Console

    from agent import demo

    stream = sys.stderr if as_json else sys.stdout
    console = Console(stderr=as_json, highlight=False, width=None if stream.isatty() else 100)
    summary = demo.run(console, count=count, root=root)
    if as_json:
        emit(summary, True)
    if summary["report"]["pending"] or not summary["verified"]:
        raise SystemExit(1)
