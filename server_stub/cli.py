"""``kiosk-server``: the DOIT&C operator's command line. Thin: parse, call one function, print.

Bad input prints one line on stderr and exits 2; an unreachable database exits 1.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import click
import sqlalchemy as sa

from server_stub import admin, catalog, reconcile
from server_stub.config import ENV_CONFIG_JSON, ServerConfig
from server_stub.db import database_url_for_display, make_engine, schema_revision
from server_stub.errors import ConfigError, ServerError


def _now_ms() -> int:
    return int(time.time() * 1000)


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
@click.pass_context
def cli(ctx: click.Context, db_url: str | None) -> None:
    config = ServerConfig.from_env().replace(db=db_url)
    ctx.obj = Ctx(config)


@cli.command(help="Create or upgrade the database, the server keys and catalog version 1.")
@click.pass_obj
def init(obj: Ctx) -> None:
    created = admin.init_server(obj.engine(require_schema=False), _now_ms())
    where = database_url_for_display(obj.config.db)
    click.echo(f"initialised {where}" if created else f"{where} is up to date")


@cli.group(help="LSPs (Local Service Providers).")
def lsp() -> None:
    pass


@lsp.command("add", help="Add an LSP; prints its id and its API key (shown only once).")
@click.option("--name", required=True)
@click.option("--json", "as_json", is_flag=True, help='Print {"lsp_id", "api_key"}.')
@click.pass_obj
def lsp_add(obj: Ctx, name: str, as_json: bool) -> None:
    with obj.engine().begin() as conn:
        new = admin.create_lsp(conn, name, _now_ms())
    if as_json:
        click.echo(json.dumps({"lsp_id": new.lsp_id, "api_key": new.api_key}))
    else:
        click.echo(
            f"LSP id:  {new.lsp_id}\nAPI key: {new.api_key}\n(store the key now: it is not shown again)"
        )


@cli.group(help="Kiosks.")
def kiosk() -> None:
    pass


@kiosk.command("add", help="Add a kiosk to an LSP; prints its K-code and a one-time enrollment code.")
@click.option("--lsp", "lsp_id", required=True, metavar="ID")
@click.option("--name", required=True)
@click.option(
    "--expires-hours",
    type=click.IntRange(1, 24 * 365),
    default=None,
    help="Validity of the enrollment code (default 72).",
)
@click.option("--json", "as_json", is_flag=True, help='Print {"kiosk_code", "enrollment_code"}.')
@click.pass_obj
def kiosk_add(obj: Ctx, lsp_id: str, name: str, expires_hours: int | None, as_json: bool) -> None:
    ttl = expires_hours or obj.config.enrollment_ttl_hours
    with obj.engine().begin() as conn:
        new = admin.create_kiosk(conn, lsp_id, name, _now_ms(), ttl)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "kiosk_code": new.kiosk_code,
                    "enrollment_code": new.enrollment_code,
                    "expires_at_ms": new.expires_at_ms,
                }
            )
        )
    else:
        click.echo(
            f"K-code:          {new.kiosk_code}\nEnrollment code: {new.enrollment_code} "
            f"(one use, valid {ttl} h)"
        )


@cli.group(help="Enrolled devices.")
def device() -> None:
    pass


@device.command("revoke", help="Revoke a device (by device id, or all devices of a K-code).")
@click.argument("ident", metavar="ID")
@click.pass_obj
def device_revoke(obj: Ctx, ident: str) -> None:
    with obj.engine().begin() as conn:
        found = admin.revoke_device(conn, ident, _now_ms())
    for device_id in found:
        click.echo(f"revoked {device_id}")


@cli.group("catalog", help="Service catalog versions.")
def catalog_group() -> None:
    pass


@catalog_group.command("load", help="Load FILE (catalog JSON) as a new catalog version.")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
def catalog_load(obj: Ctx, file: Path) -> None:
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {file}: {exc.__class__.__name__}") from None
    with obj.engine().begin() as conn:
        version = catalog.add_version(conn, text, _now_ms())
    click.echo(f"catalog version {version} loaded")


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
    with obj.engine().connect() as conn:
        if not admin.lsp_exists(conn, lsp_id):
            raise ConfigError(f"no LSP {lsp_id!r}")
        report = reconcile.build(conn, lsp_id, parsed, config.timezone, config.sla_hours, kiosk_code)
    if fmt == "json":
        click.echo(report.model_dump_json(indent=2))
    elif fmt == "csv":
        click.echo(reconcile.to_csv(report), nl=False)
    else:
        from rich.console import Console

        Console(width=None if sys.stdout.isatty() else 200).print(reconcile.to_table(report))


@cli.command(help="Serve the HTTP API with uvicorn (migrates the database first).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True)
@click.option("--block-size", type=click.IntRange(1, 10**7), default=None, help="Serials per lease (1000).")
@click.option("--sla-hours", type=click.IntRange(1, 24 * 30), default=None, help="Late-sync threshold (24).")
@click.option(
    "--rate-limit",
    "rate_per_s",
    type=click.FloatRange(0),
    default=None,
    help="Requests per second per device and worker; 0 = off (20).",
)
@click.option(
    "--log-level", default="info", type=click.Choice(["critical", "error", "warning", "info", "debug"])
)
@click.pass_obj
def serve(
    obj: Ctx,
    host: str,
    port: int,
    workers: int,
    block_size: int | None,
    sla_hours: int | None,
    rate_per_s: float | None,
    log_level: str,
) -> None:
    import uvicorn

    config = obj.config.replace(block_size=block_size, sla_hours=sla_hours, rate_per_s=rate_per_s)
    admin.init_server(obj.engine(require_schema=False), _now_ms())
    common: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": log_level,
        "proxy_headers": False,
        "timeout_graceful_shutdown": 10,
    }
    if workers == 1:
        from server_stub.app import create_app

        uvicorn.run(create_app(config), **common)
    else:
        os.environ[ENV_CONFIG_JSON] = config.to_json()  # read once by each worker's factory
        uvicorn.run("server_stub.app:create_app_from_env", factory=True, workers=workers, **common)


def main(argv: list[str] | None = None) -> None:
    try:
        rv = cli.main(args=argv, prog_name="kiosk-server", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("kiosk-server: aborted", err=True)
        sys.exit(1)
    except click.UsageError as exc:
        click.echo(f"kiosk-server: {exc.format_message()}", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        click.echo(f"kiosk-server: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code if exc.exit_code else 2)
    except (ServerError, ConfigError) as exc:
        click.echo(f"kiosk-server: {getattr(exc, 'message', None) or exc}", err=True)
        sys.exit(2)
    except sa.exc.OperationalError as exc:
        click.echo(
            f"kiosk-server: cannot use the database ({type(exc.orig).__name__}); "
            "check --db and that the server is running",
            err=True,
        )
        sys.exit(1)
    sys.exit(rv if isinstance(rv, int) else 0)
