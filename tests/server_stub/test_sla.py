"""SLA rules per kiosk per month over a simulated month: a late sync, missed heartbeats and a fork
each break their rule, with the evidence; the thresholds and rules come from the config."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from server_stub.config import ServerConfig
from server_stub.errors import ConfigError
from server_stub.monthly import month_report, parse_month
from server_stub.sla import SlaTerms, evaluate
from tests.server_stub.conftest import Harness
from tests.server_stub.month_sim import FORK_DAY, HELD_BACK, MONTH, SILENT_AFTER, Month, ist_ms, simulate


def _breaches(h: Harness, m: Month, config: ServerConfig) -> dict[str, dict[str, Any]]:
    """kiosk name -> rule -> evidence."""
    names = {fake.kiosk_code: name for name, fake in m.kiosks.items()}
    with h.engine.connect() as conn:
        report = month_report(conn, m.lsp.lsp_id, MONTH, tz=config.timezone, sla_hours=24, now_ms=h.now_ms())
        found = evaluate(
            conn, report.kiosks, parse_month(MONTH), SlaTerms.of(config), config.timezone, h.now_ms()
        )
    return {names[code]: {b.rule: b.evidence for b in bs} for code, bs in found.items()}


def test_each_kiosk_breaks_the_rule_it_broke_with_the_evidence(server: Harness) -> None:
    m = simulate(server)
    found = _breaches(server, m, ServerConfig())
    assert found["good"] == {}
    assert set(found["late"]) == {"sync"} and found["late"]["sync"]["late_syncs"] == 2
    latest = found["late"]["sync"]["latest"]
    assert isinstance(latest, list) and [r["seq"] for r in latest] == list(HELD_BACK)
    assert all(r["received_at"] - r["created_at"] > 24 * 3_600_000 for r in latest)
    assert latest[0]["received_at"] >= ist_ms(11, 7, 18)
    assert set(found["silent"]) == {"heartbeat"}
    beats = found["silent"]["heartbeat"]
    missed = [
        (date(2026, 11, SILENT_AFTER + 1) + timedelta(days=i)).isoformat() for i in range(30 - SILENT_AFTER)
    ]
    assert beats == {
        "days_counted": 30,
        "heartbeat_days": SILENT_AFTER,
        "allowed_missed": 5,
        "missed_days": missed,
    }
    assert set(found["forked"]) == {"fork"}
    fork = found["forked"]["fork"]
    assert fork["forks_in_month"] == 1
    assert [d["device_id"] for d in fork["devices"]] == [m.kiosks["forked"].device_id]
    assert ist_ms(11, FORK_DAY, 0) < fork["devices"][0]["flagged_at"] < ist_ms(11, FORK_DAY + 1, 0)

    # thresholds and rules are the config's
    lenient = _breaches(server, m, ServerConfig(sla_max_late_syncs=2, sla_heartbeat_days=10))
    assert lenient["late"] == {} and lenient["silent"] == {} and set(lenient["forked"]) == {"fork"}
    only_forks = _breaches(server, m, ServerConfig(sla_rules="fork"))
    assert {n for n, b in only_forks.items() if b} == {"forked"}
    every_day = _breaches(server, m, ServerConfig(sla_heartbeat_days=31))
    assert every_day["good"] == {} and every_day["silent"]["heartbeat"]["allowed_missed"] == 0


@pytest.mark.parametrize(
    "changes",
    [
        {"sla_rules": "sync,uptime"},
        {"sla_heartbeat_days": 32},
        {"sla_heartbeat_days": -1},
        {"sla_max_late_syncs": -1},
    ],
)
def test_bad_sla_settings_are_refused_once(changes: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        ServerConfig(**changes)  # type: ignore[arg-type]


def test_sla_settings_come_from_the_environment() -> None:
    config = ServerConfig.from_env(
        {"KIOSK_SERVER_SLA_RULES": "heartbeat, fork", "KIOSK_SERVER_SLA_HEARTBEAT_DAYS": "20"}
    )
    assert SlaTerms.of(config).rules == ("heartbeat", "fork") and config.sla_heartbeat_days == 20


def test_records_a_kiosk_reported_but_never_sent_break_the_sync_rule(server: Harness) -> None:
    from tests.server_stub.month_sim import set_clock

    lsp = server.lsp()
    set_clock(server, [], ist_ms(10, 15, 9))
    quiet = server.enrolled(lsp.lsp_id)
    set_clock(server, [quiet], ist_ms(10, 15, 18))
    quiet.make_records(5)  # made, never pushed
    assert quiet.call("POST", "/v1/heartbeat", {"head_seq": 5}).status_code == 200
    set_clock(server, [quiet], ist_ms(11, 2, 9))
    with server.engine.connect() as conn:
        report = month_report(
            conn, lsp.lsp_id, "2026-10", tz="Asia/Kolkata", sla_hours=24, now_ms=server.now_ms()
        )
        found = evaluate(
            conn,
            report.kiosks,
            parse_month("2026-10"),
            SlaTerms.of(ServerConfig()),
            "Asia/Kolkata",
            server.now_ms(),
        )
    by_rule = {b.rule: b for b in found[quiet.kiosk_code]}
    sync = by_rule["sync"].evidence
    assert sync["late_syncs"] == 0 and sync["not_received"] == 5
    assert sync["devices_behind"] == [
        {"device_id": quiet.device_id, "reported_head_seq": 5, "server_head_seq": 0}
    ]
    assert "5 records the kiosk reported holding" in by_rule["sync"].detail
    assert by_rule["heartbeat"].evidence["days_counted"] == 17  # enrolled on the 15th: 17 days of October
