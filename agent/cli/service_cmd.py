"""service install | remove | start | stop."""

from __future__ import annotations

import sys

import click

from agent.cli._common import State, pass_state

_user = click.option(
    "--user", default="kiosk-agent", show_default=True, help="System user the service runs as."
)
_dry = click.option(
    "--dry-run", is_flag=True, help="Print the unit and the commands instead of running them."
)


@click.group("service")
def service() -> None:
    """Install and control the agent as a systemd (or Windows) service."""


def _do(state: State, action: str, user: str, dry_run: bool) -> None:
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        _windows(state, action, dry_run)
        return
    from agent import service as svc

    plan = svc.plan(action, state.cfg, user=user)
    if dry_run:
        click.echo(plan.describe())
        return
    svc.apply(plan)
    click.echo(f"service {action}: done ({svc.UNIT_NAME})")


def _windows(state: State, action: str, dry_run: bool) -> None:  # pragma: no cover
    from agent.errors import InvalidInput

    cfg = state.cfg
    if action == "install" and cfg.source is None:
        raise InvalidInput("install needs a config file: kiosk-agent --config PATH service install")
    if dry_run:
        click.echo(
            f"would {action} the Windows service 'kiosk-agent'"
            + (f" with {cfg.source}" if cfg.source else "")
        )
        return
    if sys.platform == "win32":
        from agent import winservice

        if action == "install":
            winservice.install(str(cfg.source.absolute()) if cfg.source else "")
        else:
            getattr(winservice, action)()
    click.echo(f"service {action}: done")


@service.command("install")
@_user
@_dry
@pass_state
def install(state: State, user: str, dry_run: bool) -> None:
    """Write the unit (User, hardening, watchdog), then daemon-reload, enable, start."""
    _do(state, "install", user, dry_run)


@service.command("remove")
@_dry
@pass_state
def remove(state: State, dry_run: bool) -> None:
    """Stop, disable and delete the unit (the data dir is left alone)."""
    _do(state, "remove", "kiosk-agent", dry_run)


@service.command("start")
@_dry
@pass_state
def start(state: State, dry_run: bool) -> None:
    """Start the service."""
    _do(state, "start", "kiosk-agent", dry_run)


@service.command("stop")
@_dry
@pass_state
def stop(state: State, dry_run: bool) -> None:
    """Stop the service (graceful: same path as SIGTERM)."""
    _do(state, "stop", "kiosk-agent", dry_run)


__all__ = ["service"]
