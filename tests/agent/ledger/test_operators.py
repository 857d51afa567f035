"""ledger.operators: name -> sensor slot, and who is logged in."""

from __future__ import annotations

import pytest
import sqlcipher3

from agent.ledger import Ledger


def test_slots_names_and_the_logged_in_operator(ledger: Ledger) -> None:
    ops = ledger.operators
    assert ops.free_slot() == 1 and ops.logged_in() is None
    ops.add("asha", 1)
    ops.add("ravi", 3)
    assert ops.free_slot() == 2
    assert ops.slot_of("asha") == 1 and ops.slot_of("nobody") is None
    assert ops.name_at(3) == "ravi" and ops.name_at(2) is None
    ops.log_in("ravi")
    assert ops.logged_in() == "ravi"


def test_a_name_or_slot_is_held_once(ledger: Ledger) -> None:
    ledger.operators.add("asha", 1)
    for name, slot in (("asha", 2), ("ravi", 1)):
        with pytest.raises(sqlcipher3.IntegrityError):
            ledger.operators.add(name, slot)
    assert ledger.operators.name_at(1) == "asha" and ledger.operators.slot_of("ravi") is None
