"""backup, restore, rekey."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from agent.cli._common import State, emit, json_option, pass_state


@click.command("backup")
@click.option("--to", "dest", required=True, type=click.Path(dir_okay=False), help="Backup file to write.")
@json_option
@pass_state
def backup_cmd(state: State, dest: str, as_json: bool) -> None:
    """Write an encrypted, verified copy of the ledger (same key) to FILE."""
    from agent.backup import backup_to, current_key
    from agent.ledger import open_ledger

    cfg = state.cfg
    with open_ledger(cfg) as ledger:
        res = backup_to(ledger, Path(dest), current_key(cfg))
    emit(
        res.as_dict(),
        as_json,
        lambda d: f"backup ok: {d['path']} ({d['count']} records, head seq {d['head_seq']}, verified)",
    )


@click.command("restore")
@click.option(
    "--from", "source", required=True, type=click.Path(dir_okay=False), help="Backup file to restore."
)
@click.option(
    "--key-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Key file the backup was made with, if the ledger was rekeyed since.",
)
@click.option("--yes", is_flag=True, help="Really replace the ledger (after reading the warning).")
@json_option
@pass_state
def restore_cmd(state: State, source: str, key_file: str | None, yes: bool, as_json: bool) -> None:
    """Put a verified backup in place of the ledger (keeps the old one beside it)."""
    from agent.errors import InvalidInput
    from agent.restore import apply_restore, plan_restore

    cfg = state.cfg
    plan = plan_restore(cfg, Path(source), old_key_file=Path(key_file) if key_file else None)
    for line in plan.warnings:
        click.echo(f"WARNING: {line}", err=True)
    if not yes:
        raise InvalidInput("nothing was changed; run again with --yes to restore")
    res = apply_restore(cfg, plan)

    def human(d: dict[str, Any]) -> str:
        kept = f"; the replaced ledger is kept as {d['kept_as']}" if d["kept_as"] else ""
        return f"restored: {d['count']} records, head seq {d['head_seq']}{kept}"

    emit(res.as_dict(), as_json, human)


@click.command("rekey")
@json_option
@pass_state
def rekey_cmd(state: State, as_json: bool) -> None:
    """Re-encrypt the ledger with a new random key (stop the service first)."""
    from agent.rekey import rekey

    res = rekey(state.cfg)

    def human(d: dict[str, Any]) -> str:
        out = f"rekeyed: new key stored in {d['where']}"
        if d["old_backups"]:
            out += (
                f"\nnote: {d['old_backups']} earlier backup(s) open only with the old key; "
                "make a new backup now"
            )
        return out

    emit(res.as_dict(), as_json, human)


__all__ = ["backup_cmd", "rekey_cmd", "restore_cmd"]
