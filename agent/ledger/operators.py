"""Operators enrolled on the R30x sensor (``ledger.operators``): the template stays on
the sensor; the ledger keeps name -> slot, and who is logged in now."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.ledger.ledger import Ledger

MAX_SLOT = 9_999


class Operators:
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def slot_of(self, name: str) -> int | None:
        row = self._ledger.conn.execute("SELECT slot FROM operators WHERE name = ?", (name,)).fetchone()
        return None if row is None else int(row[0])

    def name_at(self, slot: int) -> str | None:
        row = self._ledger.conn.execute("SELECT name FROM operators WHERE slot = ?", (slot,)).fetchone()
        return None if row is None else str(row[0])

    def free_slot(self) -> int:
        """The lowest sensor slot no operator holds."""
        used = {int(r[0]) for r in self._ledger.conn.execute("SELECT slot FROM operators")}
        return next(i for i in range(1, MAX_SLOT + 1) if i not in used)

    def add(self, name: str, slot: int) -> None:
        with self._ledger.write() as conn:
            conn.execute(
                "INSERT INTO operators (name, slot, created_at) VALUES (?, ?, ?)",
                (name, slot, self._ledger.now()),
            )

    def logged_in(self) -> str | None:
        return self._ledger.meta("operator_current")

    def log_in(self, name: str) -> None:
        self._ledger.set_meta({"operator_current": name})


__all__ = ["Operators"]
