"""Click commands for the hardware layer; thin over the plain modules.

The agent's CLI mounts :data:`sim` and :data:`fingerprint` (and :data:`printer`)
and passes its config values as options.  ``cli`` groups them all for
standalone use: ``python -m hardware.cli sim printer --port 9100``.
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from hardware.errors import HardwareError, RDServiceError
from hardware.fingerprint.r30x import R30xSensor
from hardware.fingerprint.rdservice import PidOptions, RDServiceClient
from hardware.printer import open_printer
from hardware.sim.modes import PRINTER_FAIL_MODES, R30X_FAIL_MODES, RDSERVICE_FAIL_MODES

if TYPE_CHECKING:
    from hardware.sim._stream import StreamSim

FC = TypeVar("FC", bound=Callable[..., Any])


def _run_until_interrupted() -> None:
    """Block until Ctrl-C / SIGTERM; the handlers only set an event."""
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        stop.set()

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        stop.wait()
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


def _fail(exc: HardwareError, as_json: bool) -> None:
    out: dict[str, Any] = {"error": str(exc), "transient": exc.transient}
    if isinstance(exc, RDServiceError):
        out.update(errCode=exc.err_code, errInfo=exc.err_info)
    if as_json:
        click.echo(json.dumps(out))
    else:
        click.echo(f"Error: {exc}", err=True)
    raise SystemExit(1)


def _emit(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(data))
    else:
        for key, value in data.items():
            click.echo(f"{key}: {value}")


@click.group("hardware")
def cli() -> None:
    """Kiosk hardware: printer, fingerprint devices and their simulators."""


# --- simulators ----------------------------------------------------------------------------------


@click.group("sim")
def sim() -> None:
    """Run a device simulator until Ctrl-C."""


def _modes_help(modes: dict[str, str]) -> str:
    return "Misbehave from the start. " + "; ".join(f"{name}: {what}" for name, what in modes.items()) + "."


def _fail_option(modes: dict[str, str]) -> Callable[[FC], FC]:
    return click.option(
        "--fail", "fail_mode", type=click.Choice(list(modes)), default=None, help=_modes_help(modes)
    )


_unplug_options = [
    click.option(
        "--unplug-after",
        type=click.IntRange(min=0),
        default=0,
        show_default=True,
        help="With --fail unplug: bytes taken before the line drops (mid-job).",
    ),
    click.option(
        "--replug-after",
        type=click.FloatRange(min=0),
        default=2.0,
        show_default=True,
        help="With --fail unplug: seconds until the device comes back, as when the cable is "
        "pushed back in (TCP: the same port; pty: a new path, printed).",
    ),
]


def _stream_sim_options(f: FC) -> FC:
    for option in reversed(_unplug_options):
        f = option(f)
    return f


def _arm(s: StreamSim, fail_mode: str | None, unplug_after: int, replug_after: float) -> None:
    s.unplug_after = unplug_after
    s.replug_after = replug_after
    s.on_replug = lambda url: click.echo(f"{s.name} simulator plugged back in on {url}")
    s.fail_mode = fail_mode


@sim.command("printer")
@click.option("--port", type=int, default=9100, show_default=True, help="TCP port (ignored with --pty).")
@click.option("--pty", "use_pty", is_flag=True, help="Listen on a pty instead of TCP.")
@click.option("--width", "width_dots", type=click.Choice(["384", "576"]), default="576", show_default=True)
@_fail_option(PRINTER_FAIL_MODES)
@_stream_sim_options
@click.option(
    "--delay", type=click.FloatRange(min=0), default=2.0, show_default=True, help="With --fail slow."
)
@click.option(
    "--png", "png", type=click.Path(dir_okay=False, path_type=Path), help="Save the paper here on exit."
)
def sim_printer(
    port: int,
    use_pty: bool,
    width_dots: str,
    fail_mode: str | None,
    unplug_after: int,
    replug_after: float,
    delay: float,
    png: Path | None,
) -> None:
    """ESC/POS printer simulator (prints its pyserial URL)."""
    from hardware.sim.printer import PrinterSim

    with PrinterSim(
        transport="pty" if use_pty else "tcp", port=port, width_dots=int(width_dots), delay=delay
    ) as s:
        _arm(s, fail_mode, unplug_after, replug_after)
        click.echo(f"printer simulator listening on {s.url}", nl=True)
        _run_until_interrupted()
        if png is not None:
            s.paper.save_png(png)
            click.echo(f"paper saved to {png}")


@sim.command("fingerprint")
@click.option("--pty/--tcp", "use_pty", default=True, show_default=True, help="Transport.")
@click.option("--port", type=int, default=0, help="TCP port with --tcp (0 = any free port).")
@click.option("--finger", default=None, help="Name of the finger resting on the sensor.")
@_fail_option(R30X_FAIL_MODES)
@_stream_sim_options
def sim_fingerprint(
    use_pty: bool,
    port: int,
    finger: str | None,
    fail_mode: str | None,
    unplug_after: int,
    replug_after: float,
) -> None:
    """R30x fingerprint sensor simulator (prints its pyserial URL)."""
    from hardware.sim.r30x import R30xSim

    with R30xSim(transport="pty" if use_pty else "tcp", port=port) as s:
        s.finger = finger
        _arm(s, fail_mode, unplug_after, replug_after)
        click.echo(f"r30x simulator listening on {s.url}", nl=True)
        _run_until_interrupted()


@sim.command("rdservice")
@click.option("--port", type=int, default=11100, show_default=True)
@click.option(
    "--https", "use_https", is_flag=True, help="Serve HTTPS with a throwaway self-signed certificate."
)
@_fail_option(RDSERVICE_FAIL_MODES)
@click.option(
    "--delay", type=click.FloatRange(min=0), default=3.0, show_default=True, help="With --fail slow."
)
def sim_rdservice(port: int, use_https: bool, fail_mode: str | None, delay: float) -> None:
    """UIDAI RD service simulator on 127.0.0.1."""
    from hardware.sim.rdservice import RDServiceSim

    with RDServiceSim(port=port, scheme="https" if use_https else "http", delay=delay) as s:
        s.fail_mode = fail_mode
        click.echo(f"rdservice simulator listening on {s.url}", nl=True)
        _run_until_interrupted()


# --- fingerprint ---------------------------------------------------------------------------------


@click.group("fingerprint")
def fingerprint() -> None:
    """Query the fingerprint device."""


_ports_option = click.option(
    "--ports", default="11100-11120", show_default=True, help="RD service ports to probe, e.g. 11100-11120."
)


@fingerprint.command("info")
@click.option("--kind", type=click.Choice(["rdservice", "r30x"]), default="rdservice", show_default=True)
@click.option("--url", default=None, help="Serial port of the R30x sensor (with --kind r30x).")
@_ports_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def fingerprint_info(kind: str, url: str | None, ports: str, as_json: bool) -> None:
    """Show the device found: port, status, dpId, rdsId, mi (RD service) or template count (R30x)."""
    try:
        if kind == "r30x":
            if not url:
                raise click.UsageError("--url is required with --kind r30x")
            with R30xSensor(url) as sensor:
                _emit(sensor.info(), as_json)
            return
        _emit(RDServiceClient(ports=ports).info(), as_json)
    except HardwareError as exc:
        _fail(exc, as_json)


@fingerprint.command("capture")
@_ports_option
@click.option("--timeout-ms", type=int, default=10000, show_default=True)
@click.option(
    "--env", default="P", show_default=True, help="P (production), PP (pre-production), S (staging)."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def fingerprint_capture(ports: str, timeout_ms: int, env: str, as_json: bool) -> None:
    """Test a capture: prints errCode, errInfo and qScore -- never the PID data."""
    client = RDServiceClient(ports=ports, options=PidOptions(timeout_ms=timeout_ms, env=env))
    try:
        result = client.capture()
    except HardwareError as exc:
        _fail(exc, as_json)
        return
    summary = result.summary()
    del result  # the PID block goes nowhere
    _emit({k: summary[k] for k in ("errCode", "errInfo", "qScore", "nmPoints")}, as_json)


# --- printer -------------------------------------------------------------------------------------


@click.group("printer")
def printer() -> None:
    """Query the receipt printer."""


@printer.command("status")
@click.option(
    "--url", required=True, help='pyserial URL, e.g. socket://127.0.0.1:9100 or /dev/ttyUSB0; "none".'
)
@click.option("--usb-id", default=None, help="VID:PID to re-find a USB printer, e.g. 0483:5743.")
@click.option("--json", "as_json", is_flag=True)
def printer_status(url: str, usb_id: str | None, as_json: bool) -> None:
    """Ask the printer for its status (DLE EOT); no answer is "unknown"."""
    p = open_printer(url, usb_id=usb_id)
    try:
        _emit({"url": url, "status": str(p.status())}, as_json)
    finally:
        p.close()


cli.add_command(sim)
cli.add_command(fingerprint)
cli.add_command(printer)

__all__ = ["cli", "fingerprint", "printer", "sim"]

if __name__ == "__main__":  # pragma: no cover
    cli()
