"""Offline operator login on the R30x sensor (DESIGN section 7): templates
stay on the sensor; the ledger keeps only name -> slot and who is logged in."""

from __future__ import annotations

import re
from typing import Any, TypedDict

from agent.config import Config
from agent.errors import AgentError, InvalidInput
from agent.ledger import Ledger

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")


class SensorTrouble(AgentError):
    """The fingerprint sensor could not be used (message says why)."""


def _sensor(cfg: Config, sensor: Any = None) -> Any:
    if sensor is not None:
        return sensor
    fp = cfg.settings.fingerprint
    if fp.kind != "r30x" or not fp.url:
        raise InvalidInput('operator login needs [fingerprint] kind = "r30x" and its url')
    from hardware import R30xSensor

    return R30xSensor(fp.url)


def _call(fn: Any) -> Any:
    from hardware import HardwareError

    try:
        return fn()
    except HardwareError as exc:
        err = SensorTrouble(f"fingerprint sensor: {exc}")
        err.transient = exc.transient
        raise err from None


class OperatorDoc(TypedDict):
    operator: str
    slot: int


def enroll(cfg: Config, ledger: Ledger, name: str, sensor: Any = None) -> OperatorDoc:
    if not _NAME.match(name):
        raise InvalidInput("operator name: 1-40 letters, digits, '.', '_' or '-'")
    if ledger.operators.slot_of(name) is not None:
        raise InvalidInput(f"operator {name} is already enrolled")
    slot = ledger.operators.free_slot()
    s = _sensor(cfg, sensor)
    with s:
        _call(lambda: s.enroll(slot))  # two presses, RegModel, Store: all on the sensor
    ledger.operators.add(name, slot)
    return {"operator": name, "slot": slot}


def login(cfg: Config, ledger: Ledger, sensor: Any = None) -> OperatorDoc:
    s = _sensor(cfg, sensor)
    with s:
        slot = _call(s.identify)
    if slot is None:
        raise InvalidInput("fingerprint not recognised; try again or ask the kiosk admin")
    name = ledger.operators.name_at(slot)
    if name is None:
        raise InvalidInput("this finger is on the sensor but no operator is registered for it")
    ledger.operators.log_in(name)
    return {"operator": name, "slot": slot}


def current(cfg: Config, ledger: Ledger) -> str:
    """The logged-in operator, else the configured default."""
    return ledger.operators.logged_in() or cfg.settings.agent.operator
