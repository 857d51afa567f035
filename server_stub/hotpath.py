"""The few statements every batch runs, sent straight to psycopg on PostgreSQL.

SQLAlchemy's ``Connection.execute`` costs the worker ~50-150 us of Python per statement around
the driver's own work (the cache lookup, building the parameters, reading the cursor's
description of a wide row, the result object); a batch runs four or five of these statements,
each the same text every time. A :class:`Hot` statement is compiled once per dialect and, on
PostgreSQL, executed on the connection's psycopg cursor with the parameters as they are (strings
and integers: nothing for SQLAlchemy to convert) and rows made straight into a named tuple of
the statement's columns (``row.head_seq`` as on a SQLAlchemy row). psycopg still prepares the
statement server-side after a few runs (the same text each time). Elsewhere (SQLite) it is a
plain ``conn.execute``.

It runs in the caller's SQLAlchemy transaction (or autocommit block): psycopg opens the
transaction on the first statement, whichever cursor sends it. A database error is raised as
SQLAlchemy's (``IntegrityError``, ``OperationalError`` ...), as from ``conn.execute``, and
SQLAlchemy's ``before_cursor_execute`` / ``after_cursor_execute`` events fire as they would.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection


class Hot:
    """One fixed statement: its parameters come with each call; values bound in the statement
    itself (a ``LIMIT 1``) are sent with every call."""

    def __init__(self, statement: sa.Select[Any] | sa.CompoundSelect[Any] | sa.Update | sa.Insert) -> None:
        self.statement = statement
        names: list[str] = []
        if isinstance(statement, sa.SelectBase):
            names = [str(c.key) for c in statement.selected_columns]
        self._row: Callable[[Sequence[Any]], Any] | None = (
            namedtuple("HotRow", names, rename=True)._make if names else None  # type: ignore[misc,attr-defined]
        )
        self._sql: dict[str, tuple[str, dict[str, Any]]] = {}  # dialect name -> text, own values

    def _compiled(self, conn: Connection) -> tuple[str, dict[str, Any]]:
        known = self._sql.get(conn.dialect.name)
        if known is None:
            compiled = self.statement.compile(dialect=conn.dialect)
            own = {k: v for k, v in compiled.params.items() if v is not None}
            known = self._sql[conn.dialect.name] = (str(compiled), own)
        return known

    def rows(self, conn: Connection, params: Mapping[str, Any]) -> list[Any]:
        """Every row of the statement run with ``params``."""
        if conn.dialect.name != "postgresql":
            return list(conn.execute(self.statement, params))
        return self._run(conn, params, fetch=True)

    def one(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        """The one row of the statement (``NoResultFound`` / ``MultipleResultsFound`` otherwise)."""
        rows = self.rows(conn, params)
        if len(rows) != 1:
            raise sa.exc.NoResultFound() if not rows else sa.exc.MultipleResultsFound()
        return rows[0]

    def run(self, conn: Connection, params: Mapping[str, Any]) -> None:
        """Run a statement that returns no rows (an UPDATE, an INSERT)."""
        if conn.dialect.name != "postgresql":
            conn.execute(self.statement, params)
            return
        self._run(conn, params, fetch=False)

    def _run(self, conn: Connection, params: Mapping[str, Any], *, fetch: bool) -> list[Any]:
        import psycopg

        text, own = self._compiled(conn)
        if own:
            params = {**own, **params}
        driver = conn.connection.driver_connection
        assert isinstance(driver, psycopg.Connection)
        make = self._row
        events = conn.dispatch  # SQLAlchemy's cursor events still fire (tests watch statements)
        try:
            with driver.cursor(row_factory=lambda _cursor: make) if make else driver.cursor() as cursor:
                if events.before_cursor_execute:
                    events.before_cursor_execute(conn, cursor, text, params, None, False)
                cursor.execute(text, params)
                rows = cursor.fetchall() if fetch and make else []
                if events.after_cursor_execute:
                    events.after_cursor_execute(conn, cursor, text, params, None, False)
                return rows
        except psycopg.Error as exc:
            raise sa.exc.DBAPIError.instance(text, params, exc, psycopg.Error) from exc
