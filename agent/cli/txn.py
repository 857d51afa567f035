"""txn new | list | show | void."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from agent.cli._common import State, emit, json_option, pass_state

if TYPE_CHECKING:
    from agent.config import Config
    from agent.ledger import Ledger


def _line(v: dict[str, Any]) -> str:
    from agent.money import format_rupees

    what = f"VOID of seq {v['voids_seq']}" if v["kind"] == "void" else v["service"]
    return (
        f"#{v['seq']:<5} {v['token'] or '-':<16} {what:<17} Rs {format_rupees(v['amount_paise']):>10} "
        f"+ fee {format_rupees(v['fee_paise']):>7}  {v['created_at']}  {v['sync_state']}"
    )


@click.group("txn")
def txn() -> None:
    """Make, list, show and void transactions."""


@txn.command("new")
@click.option("--service", required=True, help="Service code (see kiosk-agent catalog).")
@click.option("--amount", default="", help="Rupees, e.g. 150 or 150.50 (left out for a fee-only service).")
@click.option("--mobile", default=None, help="Citizen's 10-digit mobile (stored encrypted, shown masked).")
@click.option("--aadhaar", default=None, help="Citizen's Aadhaar (sealed to the server; needs enrollment).")
@click.option("--field", "fields", multiple=True, metavar="NAME=VALUE", help="A service field; repeat.")
@click.option(
    "--operator", default=None, help="Operator serving (default: the one logged in, else from config)."
)
@json_option
@pass_state
def txn_new(
    state: State,
    service: str,
    amount: str,
    mobile: str | None,
    aadhaar: str | None,
    fields: tuple[str, ...],
    operator: str | None,
    as_json: bool,
) -> None:
    """Record a transaction and issue its token; the receipt prints after the commit."""
    from agent import sales, transactions
    from agent.ledger import open_ledger

    cfg = state.cfg
    req = transactions.NewTxn(
        service,
        amount,
        operator,
        mobile=mobile,
        aadhaar=aadhaar,
        fields=transactions.parse_field_options(fields),
    )
    with open_ledger(cfg) as ledger:
        # asked only for online-only services: offline work never waits on the network
        v = sales.new_sale(cfg, ledger, req, online=lambda: _link_up(cfg, ledger))
    emit(v, as_json, lambda d: f"token {d['token']}  (seq {d['seq']})\n{_line(d)}")


@txn.command("list")
@click.option("--pending", is_flag=True, help="Only those not yet acknowledged by the server.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the newest N.")
@json_option
@pass_state
def txn_list(state: State, pending: bool, limit: int | None, as_json: bool) -> None:
    """Transactions, oldest first."""
    from agent.ledger import open_ledger
    from agent.transactions import view

    with open_ledger(state.cfg) as ledger:
        views = [view(r) for r in ledger.rows(pending_only=pending, limit=limit)]
    emit(views, as_json, lambda vs: "\n".join(_line(v) for v in vs) or "no transactions")


@txn.command("show")
@click.argument("token")
@json_option
@pass_state
def txn_show(state: State, token: str, as_json: bool) -> None:
    """One transaction by token (leased, provisional or final) or txn id."""
    from agent.ledger import open_ledger
    from agent.transactions import view

    with open_ledger(state.cfg) as ledger:
        v = view(ledger.find(token))
    emit(v, as_json, lambda d: "\n".join(f"{k:<17} {val}" for k, val in d.items() if val not in (None, {})))


@txn.command("void")
@click.argument("token")
@click.option("--reason", required=True, help="Why (shown to the LSP in reconciliation).")
@click.option(
    "--operator", default=None, help="Operator voiding (default: the one logged in, else from config)."
)
@json_option
@pass_state
def txn_void(state: State, token: str, reason: str, operator: str | None, as_json: bool) -> None:
    """Append a void record for a sale; the sale itself is never changed."""
    from agent import sales
    from agent.ledger import open_ledger

    with open_ledger(state.cfg) as ledger:
        v = sales.void_sale(state.cfg, ledger, token, reason, operator)
    emit(v, as_json, lambda d: f"voided token {d['token']} (void seq {d['seq']})")


def _link_up(cfg: Config, ledger: Ledger) -> bool:
    """Whether the server answers now. Imported only when an online-only service asks: an offline
    sale never loads the sync client (requests, the wire models: half of `txn new`'s start-up)."""
    from agent import syncing

    return syncing.link_up(cfg, ledger)
