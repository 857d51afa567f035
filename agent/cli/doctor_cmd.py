"""doctor."""

from __future__ import annotations

import sys

import click

from agent.cli._common import State, emit, json_option, pass_state


@click.command("doctor")
@json_option
@pass_state
def doctor_cmd(state: State, as_json: bool) -> None:
    """Check config, key, ledger, disk, server, clock and devices (exit 1 on any FAIL)."""
    from agent import doctor

    checks = doctor.run_checks(lambda: state.cfg)  # a bad config becomes a FAIL line, not an exit
    doc = {"ok": not doctor.failed(checks), "checks": [c.as_dict() for c in checks]}

    def human(d: dict[str, object]) -> str:
        lines = []
        for c in checks:
            lines.append(f"{c.status:<5} {c.name:<12} {c.detail}")
            if c.fix and c.status != "OK":
                lines.append(f"{'':<18}-> {c.fix}")
        return "\n".join(lines)

    emit(doc, as_json, human)
    if doctor.failed(checks):
        sys.exit(1)


__all__ = ["doctor_cmd"]
