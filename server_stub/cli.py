"""``kiosk-server``: the DOIT&C operator's command line. Thin: parse, call one function, print.

Bad input prints one line on stderr and exits 2; an unreachable database exits 1. Every command
that lists or changes something takes ``--json``. No message repeats a number that may be a
citizen's (:func:`sync.wire.redact.redact` is the last line of defence).
"""

from __future__ import annotations

import getpass
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click
import sqlalchemy as sa

from server_stub import admin, catalog, fleet, reconcile, statements
from server_stub.config import ENV_CONFIG_JSON, ServerConfig
from server_stub.console import audit, users
from server_stub.db import database_url_for_display, make_engine, read, schema_revision, write
from server_stub.errors import ConfigError, ServerError
from server_stub.keys import recorded_fingerprints
from server_stub.sheets import rupees
from sync.wire.redact import redact


def _now_ms() -> int:
    return int(time.time() * 1000)


def _actor() -> admin.Actor:
    try:
        return admin.Actor(f"cli:{getpass.getuser()}")
    except (KeyError, OSError):  # no user name in this environment
        return admin.CLI


def _when(ms: int | None, tz: str) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M IST")


def _show(
    rows: Sequence[Any], as_json: bool, headers: Sequence[str], cells: Callable[[Any], Sequence[object]]
) -> None:
    """Rows as JSON, or as a table (names escaped: a name is data, not markup)."""
    if as_json:
        click.echo(json.dumps(fleet.as_json(list(rows))))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(*headers)
    for row in rows:
        table.add_row(*(escape(str(c)) for c in cells(row)))
    Console(width=None if sys.stdout.isatty() else 200).print(table)


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


class Ctx:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self._engine: sa.Engine | None = None

    def engine(self, require_schema: bool = True) -> sa.Engine:
        if self._engine is None:
            self._engine = make_engine(self.config.db)
        if require_schema and schema_revision(self._engine) is None:
            raise ConfigError(
                f"the database {database_url_for_display(self.config.db)} is not set up; "
                "run `kiosk-server init` first"
            )
        return self._engine


@click.group(help="Central server of kiosk-agent: enrollment, token leases, ingest, reconciliation.")
@click.option(
    "--db",
    "db_url",
    envvar="KIOSK_SERVER_DB",
    default=None,
    metavar="URL",
    help="Database URL (default sqlite:///server-data/server.db; or postgresql+psycopg://...). "
    "Env: KIOSK_SERVER_DB.",
)
@click.option(
    "--keys-dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Folder of the server's key files (default: keys/ beside the SQLite file, else "
    "./server-data/keys). Env: KIOSK_SERVER_KEYS_DIR.",
)
@click.pass_context
def cli(ctx: click.Context, db_url: str | None, keys_dir: str | None) -> None:
    config = ServerConfig.from_env().replace(db=db_url, keys_dir=keys_dir)
    ctx.obj = Ctx(config)


@cli.command(
    help="Create or upgrade the database, the server keys and catalog version 1; print the key fingerprints."
)
@json_option
@click.pass_obj
def init(obj: Ctx, as_json: bool) -> None:
    engine = obj.engine(require_schema=False)
    created = admin.init_server(engine, _now_ms(), obj.config.keys_path())
    with read(engine) as conn:
        prints = recorded_fingerprints(conn)
    where = database_url_for_display(obj.config.db)
    if as_json:
        click.echo(json.dumps({"database": where, "created": created, "fingerprints": prints}))
        return
    click.echo(f"initialised {where}" if created else f"{where} is up to date")
    click.echo(f"lease key (Ed25519): {prints['sign']}\nseal key (X25519):   {prints['seal']}")
    click.echo(f"server fingerprint:  {prints['server']}  (give it to LSPs with each enrollment code)")


@cli.group(help="LSPs (Local Service Providers).")
def lsp() -> None:
    pass


@lsp.command("add", help="Add an LSP; prints its id and its API key (shown only once).")
@click.option("--name", required=True)
@click.option("--json", "as_json", is_flag=True, help='Print {"lsp_id", "api_key"}.')
@click.pass_obj
def lsp_add(obj: Ctx, name: str, as_json: bool) -> None:
    with write(obj.engine()) as conn:
        new = admin.create_lsp(conn, name, _now_ms(), actor=_actor())
    _print_key(new, as_json)


def _print_key(new: admin.NewLsp, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"lsp_id": new.lsp_id, "api_key": new.api_key}))
    else:
        click.echo(
            f"LSP id:  {new.lsp_id}\nAPI key: {new.api_key}\n(store the key now: it is not shown again)"
        )


@lsp.command("list", help="Every LSP with its number of kiosks and devices.")
@json_option
@click.pass_obj
def lsp_list(obj: Ctx, as_json: bool) -> None:
    with read(obj.engine()) as conn:
        rows = fleet.list_lsps(conn, actor=_actor())
    tz = obj.config.timezone
    _show(
        rows,
        as_json,
        ["LSP", "Name", "Created", "Kiosks", "Devices"],
        lambda r: (r.lsp_id, r.name, _when(r.created_at, tz), r.kiosks, r.devices),
    )


@lsp.command("rotate-key", help="Give the LSP a new API key (shown once); the old key stops working.")
@click.argument("lsp_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help='Print {"lsp_id", "api_key"}.')
@click.pass_obj
def lsp_rotate_key(obj: Ctx, lsp_id: str, as_json: bool) -> None:
    with write(obj.engine()) as conn:
        new = admin.rotate_lsp_key(conn, lsp_id, _now_ms(), actor=_actor())
    _print_key(new, as_json)


@cli.group(help="Kiosks.")
def kiosk() -> None:
    pass


@kiosk.command(
    "add",
    help="Add a kiosk to an LSP; prints its K-code, a one-time enrollment code and the server "
    "fingerprint the kiosk checks when it enrolls (`kiosk-agent enroll --fingerprint`).",
)
@click.option("--lsp", "lsp_id", required=True, metavar="ID")
@click.option("--name", required=True)
@click.option("--district", default=None, help="The district the kiosk is in (the console groups by it).")
@click.option(
    "--expires-hours",
    type=click.IntRange(1, 24 * 365),
    default=None,
    help="Validity of the enrollment code (default 72).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='Print {"kiosk_code", "enrollment_code", "server_fingerprint", ...}.',
)
@click.pass_obj
def kiosk_add(
    obj: Ctx, lsp_id: str, name: str, district: str | None, expires_hours: int | None, as_json: bool
) -> None:
    ttl = expires_hours or obj.config.enrollment_ttl_hours
    with write(obj.engine()) as conn:
        fingerprint = recorded_fingerprints(conn)["server"]
        new = admin.create_kiosk(conn, lsp_id, name, _now_ms(), ttl, actor=_actor(), district=district)
    if as_json:
        doc = {
            "kiosk_code": new.kiosk_code,
            "enrollment_code": new.enrollment_code,
            "expires_at_ms": new.expires_at_ms,
            "server_fingerprint": fingerprint,
        }
        click.echo(json.dumps(doc))
    else:
        click.echo(
            f"K-code:             {new.kiosk_code}\nEnrollment code:    {new.enrollment_code} "
            f"(one use, valid {ttl} h)\nServer fingerprint: {fingerprint}"
        )


@kiosk.command("list", help="Kiosks (of one LSP with --lsp): K-code, name, district, enrolled, devices.")
@click.option("--lsp", "lsp_id", default=None, metavar="ID")
@json_option
@click.pass_obj
def kiosk_list(obj: Ctx, lsp_id: str | None, as_json: bool) -> None:
    with read(obj.engine()) as conn:
        rows = fleet.list_kiosks(conn, lsp_id, actor=_actor())
    tz = obj.config.timezone
    _show(
        rows,
        as_json,
        ["K-code", "LSP", "Name", "District", "Enrolled", "Code expires", "Devices"],
        lambda r: (
            r.kiosk_code,
            r.lsp_id,
            r.name,
            r.district or "-",
            _when(r.enrolled_at, tz),
            _when(r.enrollment_expires_at, tz),
            r.devices,
        ),
    )


@cli.group(help="Enrolled devices.")
def device() -> None:
    pass


@device.command("list", help="Enrolled devices: K-code, LSP, revoked, flagged, head seq, last heartbeat.")
@click.option("--lsp", "lsp_id", default=None, metavar="ID")
@click.option("--kiosk", "kiosk_code", default=None, metavar="K-CODE")
@json_option
@click.pass_obj
def device_list(obj: Ctx, lsp_id: str | None, kiosk_code: str | None, as_json: bool) -> None:
    with read(obj.engine()) as conn:
        rows = fleet.list_devices(conn, lsp_id, kiosk_code, actor=_actor())
    tz = obj.config.timezone
    _show(
        rows,
        as_json,
        ["Device", "K-code", "LSP", "Enrolled", "Revoked", "Flagged", "Head", "Heartbeat"],
        lambda r: (
            r.device_id,
            r.kiosk_code,
            r.lsp_id,
            _when(r.enrolled_at, tz),
            _when(r.revoked_at, tz),
            r.flag_reason or "-",
            r.head_seq,
            _when(r.last_heartbeat_at, tz),
        ),
    )


def _device_change(obj: Ctx, ident: str, as_json: bool, verb: str) -> None:
    change = admin.revoke_device if verb == "revoked" else admin.reinstate_device
    with write(obj.engine()) as conn:
        found = change(conn, ident, _now_ms(), actor=_actor())
    if as_json:
        click.echo(json.dumps({verb: found}))
    for device_id in [] if as_json else found:
        click.echo(f"{verb} {device_id}")


@device.command("revoke", help="Revoke a device (by device id, or all devices of a K-code).")
@click.argument("ident", metavar="ID")
@json_option
@click.pass_obj
def device_revoke(obj: Ctx, ident: str, as_json: bool) -> None:
    _device_change(obj, ident, as_json, "revoked")


@device.command("reinstate", help="Undo a revocation (by device id, or all devices of a K-code).")
@click.argument("ident", metavar="ID")
@json_option
@click.pass_obj
def device_reinstate(obj: Ctx, ident: str, as_json: bool) -> None:
    _device_change(obj, ident, as_json, "reinstated")


@cli.group("catalog", help="Service catalog versions.")
def catalog_group() -> None:
    pass


@catalog_group.command(
    "load",
    help="Load FILE (catalog JSON) as a new catalog version; prints what changed against the version "
    "in force. An empty catalog is refused, and so is one that drops a service in force unless "
    "--allow-removal.",
)
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--allow-removal", is_flag=True, help="Accept a catalog that drops services in force.")
@json_option
@click.pass_obj
def catalog_load(obj: Ctx, file: Path, allow_removal: bool, as_json: bool) -> None:
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the catalog file ({exc.__class__.__name__})") from None
    with write(obj.engine()) as conn:
        change = catalog.add_version(conn, text, _now_ms(), allow_removal=allow_removal)
    if as_json:
        click.echo(json.dumps(change.as_json()))
        return
    click.echo(f"catalog version {change.version} loaded (was {change.previous})")
    click.echo(f"added:       {', '.join(change.added) or '-'}")
    click.echo(f"removed:     {', '.join(change.removed) or '-'}")
    fees = [f"{c} {a / 100:.2f} -> {b / 100:.2f}" for c, (a, b) in change.fee_changed.items()]
    click.echo(f"fee changed: {'; '.join(fees) or '-'}")


@cli.command("reconcile", help="Reconciliation of an LSP for one day (IST).")
@click.option("--lsp", "lsp_id", required=True, metavar="ID")
@click.option("--date", "day", required=True, metavar="YYYY-MM-DD")
@click.option("--kiosk", "kiosk_code", default=None, metavar="K-CODE")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table")
@click.option("--sla-hours", type=click.IntRange(1, 24 * 30), default=None)
@click.pass_obj
def reconcile_cmd(
    obj: Ctx, lsp_id: str, day: str, kiosk_code: str | None, fmt: str, sla_hours: int | None
) -> None:
    config = obj.config.replace(sla_hours=sla_hours)
    parsed = reconcile.parse_day(day)
    with read(obj.engine()) as conn:
        if not admin.lsp_exists(conn, lsp_id):
            raise ConfigError("no such LSP; see `kiosk-server lsp list`")
        report = reconcile.build(conn, lsp_id, parsed, config.timezone, config.sla_hours, kiosk_code)
    if fmt == "json":
        click.echo(report.model_dump_json(indent=2))
    elif fmt == "csv":
        click.echo(reconcile.to_csv(report), nl=False)
    else:
        from rich.console import Console

        Console(width=None if sys.stdout.isatty() else 200).print(reconcile.to_table(report))


@cli.group(help="People who sign in to the console (/console).")
def user() -> None:
    pass


@user.command(
    "add", help="Add a console user; asks for the password twice (or reads one line with --password-stdin)."
)
@click.argument("username")
@click.option("--role", type=click.Choice(users.ROLES), required=True)
@click.option("--lsp", "lsp_id", default=None, metavar="ID", help="The LSP of an lsp-admin or lsp-viewer.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@json_option
@click.pass_obj
def user_add(
    obj: Ctx, username: str, role: str, lsp_id: str | None, password_stdin: bool, as_json: bool
) -> None:
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    now = _now_ms()
    with write(obj.engine()) as conn:
        new = users.add_user(conn, username, password, role, lsp_id, now)
        audit.record(conn, _actor(), audit.USER_ADD, new.username, now, f"role {new.role}", new.lsp_id)
    if as_json:
        click.echo(json.dumps({"username": new.username, "role": new.role, "lsp_id": new.lsp_id}))
    else:
        click.echo(f"added {new.username} ({new.role}{', ' + new.lsp_id if new.lsp_id else ''})")


@user.command("list", help="Console users: name, role, LSP.")
@json_option
@click.pass_obj
def user_list(obj: Ctx, as_json: bool) -> None:
    with read(obj.engine()) as conn:
        rows = users.list_users(conn)
    _show(rows, as_json, ["User", "Role", "LSP"], lambda r: (r.username, r.role, r.lsp_id or "-"))


@cli.command("reconcile-month", help="Reconciliation of an LSP for a calendar month (IST), per kiosk.")
@click.option("--lsp", "lsp_id", required=True, metavar="ID")
@click.option("--month", required=True, metavar="YYYY-MM")
@click.option("--kiosk", "kiosk_code", default=None, metavar="K-CODE")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table")
@click.pass_obj
def reconcile_month_cmd(obj: Ctx, lsp_id: str, month: str, kiosk_code: str | None, fmt: str) -> None:
    from server_stub import monthly

    parsed = monthly.parse_month(month)
    with read(obj.engine()) as conn:
        if not admin.lsp_exists(conn, lsp_id):
            raise ConfigError("no such LSP; see `kiosk-server lsp list`")
        report = monthly.month_report(
            conn,
            lsp_id,
            parsed,
            tz=obj.config.timezone,
            sla_hours=obj.config.sla_hours,
            now_ms=_now_ms(),
            kiosk_code=kiosk_code,
        )
    if fmt == "json":
        click.echo(report.model_dump_json(indent=2))
    elif fmt == "csv":
        click.echo(monthly.to_csv(report), nl=False)
    else:
        heads = ["Kiosk", "Name", "Count", "Gross Rs", "Commission Rs", "Voids", "Late", "Gaps", "Forks"]
        _show(
            report.kiosks,
            False,
            [*heads, "Heartbeat days"],
            lambda k: [
                k.kiosk_code + (" (flagged)" if k.flagged else ""),
                k.name,
                k.count,
                rupees(k.gross_paise),
                rupees(k.commission_paise),
                k.voids,
                k.late_syncs,
                k.gaps,
                k.forks,
                f"{k.heartbeat_days}/{k.enrolled_days}",
            ],
        )


@cli.group("statement", help="Signed monthly commission statements (earned, held by SLA rule, payable).")
def statement_group() -> None:
    pass


month_option = click.option("--month", required=True, metavar="YYYY-MM", help="The month (IST).")
lsp_option = click.option("--lsp", "lsp_id", required=True, metavar="ID")
out_option = click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write the signed file here.",
)


def _statement_out(issued: statements.Issued, out: Path | None, as_json: bool, tz: str) -> None:
    if out is not None:
        out.write_bytes(issued.document)
    if as_json:
        click.echo(issued.document.decode("utf-8"), nl=False)
        return
    doc = json.loads(issued.document)["statement"]
    t = doc["totals"]
    state = "issued" if issued.created else "already issued"
    click.echo(
        f"{doc['lsp_id']} {doc['month']}: {state} {_when(issued.issued_at, tz)}; "
        f"earned Rs {rupees(t['earned_paise'])}, held Rs {rupees(t['held_paise'])}, "
        f"payable Rs {rupees(t['payable_paise'])}"
    )
    for k in doc["kiosks"]:
        for b in k["breaches"]:
            click.echo(f"  {k['kiosk_code']}: held Rs {rupees(k['held_paise'])} ({b['rule']}: {b['detail']})")


@statement_group.command(
    "build", help="Issue an LSP's (or, with --all, every LSP's) statement for a month that is over (once)."
)
@click.option("--lsp", "lsp_id", default=None, metavar="ID")
@click.option("--all", "all_lsps", is_flag=True, help="Every LSP (prints one summary each).")
@month_option
@out_option
@json_option
@click.pass_obj
def statement_build(
    obj: Ctx, lsp_id: str | None, all_lsps: bool, month: str, out: Path | None, as_json: bool
) -> None:
    from server_stub.keys import KeySource, load_keys

    if all_lsps == (lsp_id is not None) or (all_lsps and (out or as_json)):
        raise click.UsageError("give --lsp ID (with --out / --json if you like) or --all")
    keys = load_keys(KeySource.at(obj.config.keys_path()))
    engine = obj.engine()
    if lsp_id is None:
        with read(engine) as conn:
            ids = [row.lsp_id for row in fleet.list_lsps(conn)]
    else:
        ids = [lsp_id]
    for one in ids:
        issued = statements.issue(engine, one, month, obj.config, keys, _now_ms())
        _statement_out(issued, out, as_json, obj.config.timezone)


@statement_group.command("show", help="An issued statement, as issued (--json: the signed file).")
@lsp_option
@month_option
@out_option
@json_option
@click.pass_obj
def statement_show(obj: Ctx, lsp_id: str, month: str, out: Path | None, as_json: bool) -> None:
    with read(obj.engine()) as conn:
        issued = statements.stored(conn, lsp_id, month)
    _statement_out(issued, out, as_json, obj.config.timezone)


def _trusted_key(obj: Ctx, public_key: Path | None, server: str | None) -> Any:
    if public_key is not None and server is not None:
        raise click.UsageError("give --public-key FILE or --server URL, not both")
    if public_key is not None:
        return statements.load_public_key(public_key.read_text(encoding="utf-8", errors="replace"))
    if server is not None:
        import requests

        try:
            resp = requests.get(server.rstrip("/") + "/v1/server-key", timeout=15)
            resp.raise_for_status()
            return statements.load_public_key(str(resp.json()["sign_public_key"]))
        except (requests.RequestException, ValueError, KeyError, TypeError):
            _fail(f"cannot read the server's public key from {server}/v1/server-key", 1)
    from server_stub.keys import KeySource, load_keys

    try:
        return load_keys(KeySource.at(obj.config.keys_path())).sign.public_key()
    except ConfigError:
        raise ConfigError("no server key files here: give --public-key FILE or --server URL") from None


@statement_group.command(
    "verify", help="Check a statement file's signature (exit 0 valid, 2 changed, forged or not a statement)."
)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--public-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The server's signing public key (base64 or PEM), e.g. from `statement public-key`.",
)
@click.option("--server", metavar="URL", help="Fetch the public key from this server's /v1/server-key.")
@click.pass_obj
def statement_verify(obj: Ctx, file: Path, public_key: Path | None, server: str | None) -> None:
    key = _trusted_key(obj, public_key, server)
    doc = statements.verify(file.read_bytes(), key)
    click.echo(
        f"valid: {doc['lsp_id']} {doc['month']}, payable Rs {rupees(doc['totals']['payable_paise'])} "
        f"(held Rs {rupees(doc['totals']['held_paise'])}), issued {_when(doc['issued_at'], doc['timezone'])}"
    )


@statement_group.command("public-key", help="Print the server's signing public key (base64) to give to LSPs.")
@click.pass_obj
def statement_public_key(obj: Ctx) -> None:
    from server_stub.keys import KeySource, load_keys

    click.echo(load_keys(KeySource.at(obj.config.keys_path())).sign_public_b64)


# serve's settings flags: (flag, config field, type, help). Defaults are ServerConfig's.
_SERVE_SETTINGS: tuple[tuple[str, str, click.ParamType, str], ...] = (
    ("--block-size", "block_size", click.IntRange(1, 10**7), "Serials per lease (1000)."),
    ("--sla-hours", "sla_hours", click.IntRange(1, 24 * 30), "Late-sync threshold (24)."),
    (
        "--rate-limit",
        "rate_per_s",
        click.FloatRange(0),
        "Requests per second per device and worker; 0 = off (20).",
    ),
    (
        "--catalog-grace-hours",
        "catalog_grace_hours",
        click.IntRange(0, 24 * 365),
        "How long after a new catalog version sales may still name the one before (72).",
    ),
    (
        "--future-margin-s",
        "future_margin_s",
        click.IntRange(1, 7 * 86400),
        "A record made more than this ahead of its receipt is refused (3600).",
    ),
    (
        "--clock-tolerance-s",
        "clock_tolerance_s",
        click.IntRange(1, 7 * 86400),
        "Beyond this a record's time is counted as clock_suspect (300).",
    ),
    (
        "--lease-cap-days",
        "lease_cap_days",
        click.IntRange(1, 3650),
        "Unused tokens a device may hold, in days of its rate (30).",
    ),
    ("--lease-cap-min", "lease_cap_min", click.IntRange(1, 10**9), "... but never fewer than this (20000)."),
    ("--lease-cap-max", "lease_cap_max", click.IntRange(1, 10**9), "... and never more than this (2000000)."),
    (
        "--enroll-failures-per-min",
        "enroll_failures_per_min",
        click.IntRange(1, 10**6),
        "Failed enrollments per minute, all callers together, before enrollment pauses (60).",
    ),
    (
        "--token-lookups-per-min",
        "token_lookups_per_min",
        click.IntRange(1, 10**6),
        "Token follow-ups per device per minute (30).",
    ),
    (
        "--stale-after-minutes",
        "stale_after_minutes",
        click.IntRange(1, 7 * 24 * 60),
        "Console: a kiosk without a heartbeat for this long is stale (30).",
    ),
    (
        "--offline-after-hours",
        "offline_after_hours",
        click.IntRange(1, 24 * 365),
        "Console: ... and offline after this many hours (24).",
    ),
    (
        "--login-failures-per-user",
        "login_failures_per_user",
        click.IntRange(1, 10**6),
        "Console: wrong passwords per user name per 15 minutes before sign-in waits (5).",
    ),
    (
        "--login-failures-per-ip",
        "login_failures_per_ip",
        click.IntRange(1, 10**6),
        "Console: ... per address (30).",
    ),
    (
        "--max-in-flight",
        "max_in_flight",
        click.IntRange(1, 1000),
        "Requests a worker runs at once; also its database connections (8).",
    ),
    (
        "--queue-wait-s",
        "queue_wait_s",
        click.FloatRange(0.01, 60),
        "A worker queues what it drains in this long; beyond it callers get 429 + Retry-After (1.5).",
    ),
    (
        "--shared-state",
        "shared_state",
        click.STRING,
        "Where rate limits live: empty = this host (memory + database), or redis://HOST:6379/0.",
    ),
    (
        "--global-rate-limit",
        "global_rate_per_s",
        click.FloatRange(0),
        "Requests per second from all kiosks together; 0 = off (0).",
    ),
    (
        "--cookie-secure",
        "cookie_secure",
        click.Choice(["auto", "always"]),
        "Console cookies Secure: auto = when served over https; always = behind a proxy ending TLS (auto).",
    ),
)


def _settings_options(f: Any) -> Any:
    for flag, field, kind, text in reversed(_SERVE_SETTINGS):
        f = click.option(flag, field, type=kind, default=None, help=text)(f)
    return f


@cli.command(help="Serve the HTTP API with uvicorn (migrates the database and checks the keys first).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option(
    "--workers", type=click.IntRange(1, 64), default=None, help="Worker processes [default: one per core]."
)
@click.option("--http", type=click.Choice(["auto", "httptools", "h11"]), default="auto", show_default=True)
@click.option("--loop", type=click.Choice(["auto", "uvloop", "asyncio"]), default="auto", show_default=True)
@_settings_options
@click.option(
    "--log-level", default="info", type=click.Choice(["critical", "error", "warning", "info", "debug"])
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one JSON object per line on stderr (ts, level, logger, msg; method, path, status).",
)
@click.pass_obj
def serve(
    obj: Ctx,
    host: str,
    port: int,
    workers: int | None,
    http: str,
    loop: str,
    log_level: str,
    log_format: str,
    **settings: Any,
) -> None:
    import uvicorn

    from server_stub.logs import uvicorn_log_config

    workers = workers or max(1, os.cpu_count() or 1)
    config = obj.config.replace(**settings)
    admin.init_server(obj.engine(require_schema=False), _now_ms(), config.keys_path())
    common: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": log_level,
        "proxy_headers": False,
        "timeout_graceful_shutdown": 10,
        "http": http,  # auto = httptools when installed (it is: uvicorn[standard]), else h11
        "loop": loop,  # auto = uvloop when installed
        "backlog": 4096,  # a storm's connections wait in the kernel, not refused
        # Longer than a load balancer's idle timeout (60 s is usual) and than most Retry-After
        # appointments: a kiosk coming back reuses its connection instead of racing its close.
        "timeout_keep_alive": 75,
    }
    log_config = uvicorn_log_config(log_format, log_level)
    if log_config is not None:
        common["log_config"] = log_config
    if workers == 1:
        from server_stub.app import create_app

        uvicorn.run(create_app(config), **common)
    else:
        _serve_workers(config, workers, common)


def _serve_workers(config: ServerConfig, workers: int, common: dict[str, Any]) -> None:
    import shutil
    import tempfile

    import uvicorn

    from server_stub.metrics import MULTIPROC_ENV, prepare_multiprocess_dir

    made = not os.environ.get(MULTIPROC_ENV)
    # the workers' counters meet in one folder, summed at each scrape (server_stub.metrics)
    folder = prepare_multiprocess_dir(os.environ, lambda: tempfile.mkdtemp(prefix="kiosk-metrics-"))
    os.environ[ENV_CONFIG_JSON] = config.to_json()  # read once by each worker's factory
    try:
        uvicorn.run("server_stub.app:create_app_from_env", factory=True, workers=workers, **common)
    finally:
        if made:
            shutil.rmtree(folder, ignore_errors=True)


def _fail(message: str, code: int) -> None:
    click.echo(f"kiosk-server: {redact(message)}", err=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    try:
        rv = cli.main(args=argv, prog_name="kiosk-server", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        _fail("aborted", 1)
    except click.UsageError as exc:
        _fail(exc.format_message(), 2)
    except click.ClickException as exc:
        _fail(exc.format_message(), exc.exit_code if exc.exit_code else 2)
    except (ServerError, ConfigError) as exc:
        _fail(getattr(exc, "message", None) or str(exc), 2)
    except sa.exc.OperationalError as exc:
        _fail(
            f"cannot use the database ({type(exc.orig).__name__}); check --db and that the server is running",
            1,
        )
    sys.exit(rv if isinstance(rv, int) else 0)
