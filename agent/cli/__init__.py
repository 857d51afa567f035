"""`kiosk-agent`: thin click commands over plain modules."""

from __future__ import annotations

import sys

import click

from agent.cli._common import State
from agent.cli.backup_cmds import backup_cmd, rekey_cmd, restore_cmd
from agent.cli.ledger_cmds import catalog_cmd, init_cmd, status_cmd, verify_cmd
from agent.cli.sync_cmds import enroll_cmd, sync_cmd
from agent.cli.txn import txn
from agent.errors import AgentError

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Config file (else $KIOSK_AGENT_CONFIG, ./agent.toml, the platform config dir).",
)
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """Offline-first kiosk agent: encrypted ledger, offline tokens, sync."""
    ctx.obj = State(config_path)


for command in (
    init_cmd,
    txn,
    verify_cmd,
    status_cmd,
    catalog_cmd,
    enroll_cmd,
    sync_cmd,
    backup_cmd,
    restore_cmd,
    rekey_cmd,
):
    cli.add_command(command)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except AgentError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
