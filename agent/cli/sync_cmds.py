"""enroll, sync."""

from __future__ import annotations

import sys
from typing import Any

import click

from agent.cli._common import State, emit, json_option, pass_state


@click.command("enroll")
@click.option("--server", "url", required=True, help="Central server URL, e.g. https://emitra-sync.example")
@click.option("--code", required=True, help="One-time enrollment code from the LSP / DOIT&C.")
@click.option(
    "--fingerprint",
    "expected",
    default=None,
    metavar="FP",
    help="The server fingerprint given with the code (kiosk-server kiosk add prints it); the server's "
    "keys are checked against it before anything is stored.",
)
@click.option("--insecure", is_flag=True, help="Allow http:// to a server on another machine.")
@json_option
@pass_state
def enroll_cmd(
    state: State, url: str, code: str, expected: str | None, insecure: bool, as_json: bool
) -> None:
    """Register this kiosk with the server: K-code, server keys, first token blocks, catalog."""
    from agent import syncing
    from agent.ledger import open_ledger

    with open_ledger(state.cfg) as ledger:
        doc = syncing.enroll(state.cfg, ledger, url, code, expected_fingerprint=expected, insecure=insecure)
    emit(
        doc,
        as_json,
        lambda d: (
            f"enrolled as {d['kiosk_code']} (LSP {d['lsp_id']}), {d['tokens_remaining']} tokens in hand"
        ),
    )
    if not doc["fingerprint_checked"]:
        click.echo(
            "WARNING: the server's keys were NOT checked (no --fingerprint). Compare this fingerprint "
            f"with the one your LSP gave you, now: {doc['server_fingerprint']}",
            err=True,
        )


class _Progress:
    """A rich progress bar on a terminal, plain lines otherwise."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar: Any = None
        self.task: Any = None
        self.last = -1

    def __enter__(self) -> _Progress:
        if not self.quiet and sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self.bar = Progress(TextColumn("syncing"), BarColumn(), MofNCompleteColumn(), transient=True)
            self.bar.start()
            self.task = self.bar.add_task("sync", total=None)
        return self

    def __call__(self, done: int, total: int) -> None:
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.update(self.task, completed=done, total=total)
        elif done != self.last:
            click.echo(f"synced {done}/{total}", err=True)
            self.last = done

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


def _pull_directory(state: State, server_key: str, client: Any) -> int | None:
    """New devices in the directory (receipts of other kiosks verify offline); None, with a
    warning, when it could not be pulled: the sync itself went well and stays a success."""
    from agent import directory
    from agent.errors import AgentError
    from sync.errors import SyncError

    try:
        return directory.pull(state.cfg, server_key, client)["devices"]
    except (SyncError, AgentError) as exc:
        click.echo(f"warning: device directory not pulled: {getattr(exc, 'message', exc)}", err=True)
        return None


@click.command("sync")
@click.option("--once", is_flag=True, help="One round: push, leases, catalog; no retries.")
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=1),
    default=300.0,
    show_default=True,
    help="Without --once: keep retrying (with backoff) for at most this many seconds.",
)
@json_option
@pass_state
def sync_cmd(state: State, once: bool, timeout_s: float, as_json: bool) -> None:
    """Send queued transactions to the server. Exit 0 all acked, 4 server unreachable,
    1 when some records were rejected and need the operator."""
    from agent import syncing
    from agent.errors import NotInitialised, ServerUnreachable
    from agent.ledger import open_ledger

    with open_ledger(state.cfg) as ledger, _Progress(as_json) as progress:
        engine = syncing.make_engine(state.cfg, ledger, progress=progress)
        if engine is None:
            raise NotInitialised(
                "this kiosk is not enrolled yet; run kiosk-agent enroll --server URL --code CODE"
            )
        report = engine.run_once() if once else engine.drain(timeout_s)
        rejected_total = ledger.outbox_counts()["rejected"]
        server_key = None if report.error else ledger.meta("server_sign_pub")
    doc = report.public()
    if server_key:  # the device directory, as `run` pulls it after a good sync
        doc["directory_devices_added"] = _pull_directory(state, server_key, engine.client)
    if report.error and report.transient:
        if as_json:
            emit(doc, True)
        raise ServerUnreachable(f"{report.error}; {report.pending} transactions wait safely in the queue")
    emit(
        doc,
        as_json,
        lambda d: (
            f"sent {d['sent']}: {d['accepted']} accepted, {d['duplicate']} already there, "
            f"{d['rejected']} rejected; {d['pending']} still queued"
        ),
    )
    if report.error:
        from agent.errors import AgentError

        raise AgentError(f"sync refused: {report.error}")
    if rejected_total:
        click.echo(
            f"warning: {rejected_total} transactions were rejected by the server; see kiosk-agent txn list",
            err=True,
        )
        sys.exit(1)
