"""`kiosk-agent`: thin click commands over plain modules."""

from __future__ import annotations

import io
import sys

import click

from agent.cli._common import State, fail_with, storage_error_for_cli
from agent.cli.backup_cmds import backup_cmd, rekey_cmd, restore_cmd
from agent.cli.demo_cmd import demo_cmd
from agent.cli.doctor_cmd import doctor_cmd
from agent.cli.hardware_cmds import hardware_defaults, operator, receipt
from agent.cli.ledger_cmds import catalog_cmd, init_cmd, status_cmd, verify_cmd
from agent.cli.run_cmd import run_cmd
from agent.cli.service_cmd import service
from agent.cli.sync_cmds import enroll_cmd, sync_cmd
from agent.cli.txn import txn
from agent.errors import AgentError
from sync.wire.redact import redact

__all__ = ["cli", "main"]


class _Group(click.Group):
    """Mounts the hardware groups lazily: `status` must not pay for importing pyserial and Pillow."""

    lazy = ("sim", "fingerprint", "printer")

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            import hardware.cli

            cmd: click.Command = getattr(hardware.cli, name)
            return cmd
        return super().get_command(ctx, name)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
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
    if ctx.invoked_subcommand in ("fingerprint", "printer"):
        ctx.default_map = hardware_defaults(ctx.obj)


for command in (
    init_cmd,
    txn,
    verify_cmd,
    status_cmd,
    catalog_cmd,
    enroll_cmd,
    sync_cmd,
    receipt,
    operator,
    run_cmd,
    demo_cmd,
    backup_cmd,
    restore_cmd,
    rekey_cmd,
    doctor_cmd,
    service,
):
    cli.add_command(command)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except AgentError as exc:
        fail_with(exc)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        shown = io.StringIO()
        exc.show(file=shown)
        click.echo(redact(shown.getvalue()), err=True, nl=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # SQLite's and the disk's errors that escaped a ledger call: one line
        named = storage_error_for_cli(exc)
        if named is None:
            raise
        fail_with(named)
