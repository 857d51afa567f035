"""init, verify, status, catalog."""

from __future__ import annotations

from typing import Any

import click

from agent.cli._common import State, emit, json_option, pass_state


@click.command("init")
@click.option(
    "--dev-leases",
    is_flag=True,
    help="DEVELOPMENT ONLY: add a local token block so the CLI works before enrollment. "
    "The server rejects these tokens.",
)
@json_option
@pass_state
def init_cmd(state: State, dev_leases: bool, as_json: bool) -> None:
    """Make the data dir, database key, device key and ledger (safe to run again)."""
    from agent.ledger import init_ledger

    res = init_ledger(state.cfg, dev_leases=dev_leases)
    doc = {
        "created": res.created,
        "device_id": res.device_id,
        "data_dir": res.data_dir,
        "dev_lease_added": res.dev_lease_added,
    }

    def human(d: dict[str, Any]) -> str:
        what = "initialised" if d["created"] else "already initialised, nothing changed"
        extra = "\nadded a development token block (not valid at the server)" if d["dev_lease_added"] else ""
        return f"{what}: device {d['device_id']} in {d['data_dir']}{extra}"

    emit(doc, as_json, human)


@click.command("verify")
@json_option
@pass_state
def verify_cmd(state: State, as_json: bool) -> None:
    """Check the whole chain and every signature (exit 3 names the first bad seq)."""
    from agent.errors import LedgerCorrupt
    from agent.ledger import open_ledger, verify

    with open_ledger(state.cfg) as ledger:
        res = verify(ledger)
    if res.ok:
        emit(res.as_dict(), as_json, lambda d: f"ok: {d['count']} records, head seq {d['head_seq']}")
        return
    if as_json:
        emit(res.as_dict(), True)
    if res.bad_seq is None:  # the file, or the ledger behind what it committed
        raise LedgerCorrupt(str(res.problem))
    raise LedgerCorrupt(f"ledger broken at seq {res.bad_seq}: {res.problem}")


def status_doc(state: State) -> dict[str, Any]:
    from agent.alerts import alerts  # not agent.api: status must not import the web stack
    from agent.ledger import open_ledger

    with open_ledger(state.cfg) as ledger:
        st = ledger.status()
        offset, found = round(ledger.clock.offset_s, 1), alerts(ledger, state.cfg)
    return {
        "device_id": st.device_id,
        "kiosk_code": st.kiosk_code,
        "lsp_id": st.lsp_id,
        "data_dir": str(state.cfg.data_dir),
        "ledger": {"count": st.count, "head_seq": st.head_seq, "head_hash": st.head_hash},
        "outbox": st.outbox,
        "tokens": {"remaining": st.tokens_remaining, "days_left": st.tokens_days_left},
        "last_sync_at": st.last_sync_at,
        "clock_offset_s": offset,
        "alerts": found,
    }


@click.command("status")
@json_option
@pass_state
def status_cmd(state: State, as_json: bool) -> None:
    """Device, ledger head, queue and tokens left."""
    doc = status_doc(state)

    def human(d: dict[str, Any]) -> str:
        o = d["outbox"]
        return "\n".join(
            [
                f"device      {d['device_id']}",
                f"kiosk code  {d['kiosk_code'] or '(not enrolled)'}",
                f"ledger      {d['ledger']['count']} records, head seq {d['ledger']['head_seq']}",
                f"queue       {o['waiting']} waiting for the server, {o['rejected']} rejected",
                f"tokens      {d['tokens']['remaining']} left"
                + (f" (~{d['tokens']['days_left']} days)" if d["tokens"]["days_left"] is not None else ""),
                f"last sync   {d['last_sync_at'] or 'never'}",
                *[f"alert       {a['severity']}: {a['code']} {a['detail']}" for a in d["alerts"]],
            ]
        )

    emit(doc, as_json, human)


@click.command("catalog")
@json_option
@pass_state
def catalog_cmd(state: State, as_json: bool) -> None:
    """The services this kiosk offers, with fees and fields."""
    from agent import catalog
    from agent.money import format_rupees

    cfg = state.cfg
    if cfg.ledger_path.exists():
        from agent.ledger import open_ledger
        from agent.transactions import current_catalog

        with open_ledger(cfg) as ledger:
            cat = current_catalog(ledger)
    else:
        cat = catalog.bundled()
    doc = [s.public() for s in cat.services]

    def human(d: list[dict[str, Any]]) -> str:
        lines = []
        for s in d:
            flag = " (online only)" if s["online_only"] else ""
            names = " ".join(f"{f['name']}{'' if f['required'] else '?'}" for f in s["fields"])
            lines.append(
                f"{s['code']:<17} Rs {format_rupees(s['fee_paise']):>7}  {s['name_en']}{flag}  [{names}]"
            )
        return "\n".join(lines)

    emit(doc, as_json, human)
