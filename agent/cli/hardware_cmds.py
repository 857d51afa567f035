"""receipt reprint|render|verify, operator enroll|login, and the hardware
groups (sim, fingerprint, printer) with their defaults taken from the config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from agent.cli._common import State, emit, json_option, pass_state


@click.group("receipt")
def receipt() -> None:
    """Print again, render or check receipts."""


@receipt.command("reprint")
@click.argument("token")
@json_option
@pass_state
def receipt_reprint(state: State, token: str, as_json: bool) -> None:
    """Print a receipt again, marked DUPLICATE if a copy printed before (exit 0 only if it printed)."""
    from agent import printing
    from agent.errors import AgentError
    from agent.ledger import open_ledger

    with open_ledger(state.cfg) as ledger:
        doc = printing.reprint(state.cfg, ledger, token)
    emit(
        doc,
        as_json,
        lambda d: (
            f"reprinted {d['token']}"
            + (" (DUPLICATE)" if d["duplicate"] else " (the original: none printed before)")
            if d["print_state"] == "printed"
            else f"not printed: {d['print_error']}"
        ),
    )
    if doc["print_state"] != "printed":
        err = AgentError(f"printer: {doc['print_error']}; the job stays pending")
        err.exit_code = 5
        raise err


@receipt.command("render")
@click.argument("token")
@click.option("--png", "png", type=click.Path(dir_okay=False, path_type=Path), required=True)
@json_option
@pass_state
def receipt_render(state: State, token: str, png: Path, as_json: bool) -> None:
    """Draw the receipt as the printer would, into a PNG (no printer needed)."""
    from agent import printing
    from agent.ledger import open_ledger

    with open_ledger(state.cfg) as ledger:
        path = printing.render(state.cfg, ledger, token, png)
    emit({"png": str(path)}, as_json, lambda d: f"receipt drawn in {d['png']}")


@receipt.command("verify")
@click.argument("text")
@json_option
@pass_state
def receipt_verify(state: State, text: str, as_json: bool) -> None:
    """Check a scanned receipt QR from any kiosk, offline: this kiosk's own against its key and
    ledger, another's against the device directory (exit 2 if it fails)."""
    from agent import directory
    from agent.ledger import open_ledger

    with open_ledger(state.cfg) as ledger:
        doc = directory.verify_receipt(state.cfg, ledger, text)
    emit(
        dict(doc, ok=True),
        as_json,
        lambda d: f"genuine: token {d['token']}, seq {d['seq']}, {d['kiosk_code']}",
    )


@click.group("operator")
def operator() -> None:
    """Operators who log in with a finger on the R30x sensor."""


@operator.command("enroll")
@click.argument("name")
@json_option
@pass_state
def operator_enroll(state: State, name: str, as_json: bool) -> None:
    """Register an operator: press the same finger twice."""
    from agent import operators
    from agent.ledger import open_ledger

    with open_ledger(state.cfg) as ledger:
        doc = operators.enroll(state.cfg, ledger, name)
    emit(doc, as_json, lambda d: f"operator {d['operator']} enrolled (sensor slot {d['slot']})")


@operator.command("login")
@json_option
@pass_state
def operator_login(state: State, as_json: bool) -> None:
    """Log in by fingerprint; later transactions carry this operator."""
    from agent import operators
    from agent.ledger import open_ledger

    with open_ledger(state.cfg) as ledger:
        doc = operators.login(state.cfg, ledger)
    emit(doc, as_json, lambda d: f"logged in: {d['operator']}")


def hardware_defaults(state: State) -> dict[str, Any]:
    """click default_map for the mounted hardware groups, from the config."""
    s = state.cfg.settings
    ports = ",".join(str(p) for p in s.fingerprint.rdservice_ports)
    kind = s.fingerprint.kind if s.fingerprint.kind != "none" else "rdservice"
    return {
        "fingerprint": {
            "info": {"kind": kind, "url": s.fingerprint.url or None, "ports": ports},
            "capture": {"ports": ports},
        },
        "printer": {"status": {"url": s.printer.url, "usb_id": s.printer.usb_vid_pid or None}},
    }
