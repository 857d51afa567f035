"""Walk the chain: seqs without gaps, each prev_hash the hash before it, each
hash recomputed from the stored columns, each signature checked."""

from __future__ import annotations

from dataclasses import dataclass

from agent.errors import LedgerStorageError
from agent.ledger import db
from agent.ledger.ledger import RECORD_COLUMNS, Ledger, record_from_row
from sync.wire import canonical


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    count: int
    head_seq: int
    head_hash: str
    bad_seq: int | None = None
    problem: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "count": self.count,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "bad_seq": self.bad_seq,
            "problem": self.problem,
        }


def _problem(
    row: dict[str, object], expected: int, prev: str, ledger: Ledger, tokens: set[str]
) -> str | None:
    """What is wrong with this row, or None; on success ``row['_hash']`` is its recomputed hash."""
    if row["seq"] != expected:
        return f"seq {expected} is missing (next stored is {row['seq']})"
    if row["prev_hash"] != prev:
        return "prev_hash does not match the record before it"
    try:
        h = canonical.record_hash(record_from_row(row))
    except (ValueError, TypeError):
        return "record cannot be encoded"
    if h != row["hash"]:
        return "record content does not match its hash"
    if not canonical.verify_hash(ledger.public_key, h, str(row["sig"])):
        return "signature does not match"
    if row["kind"] == "sale":
        if row["token"] in tokens:
            return "token used twice"
        tokens.add(str(row["token"]))
    return None


def file_problem(ledger: Ledger) -> str | None:
    """SQLCipher's check of every page's HMAC, then SQLite's structure check; None if both pass."""
    try:
        bad = ledger.conn.execute("PRAGMA cipher_integrity_check").fetchall()
        if bad:
            return f"{len(bad)} page(s) fail their HMAC (first: {str(bad[0][0])[:80]})"
        rows = ledger.conn.execute("PRAGMA integrity_check(20)").fetchall()
    except db.DatabaseError as exc:
        return f"the file can't be read ({getattr(exc, 'sqlite_errorname', None) or exc})"
    if [r[0] for r in rows] != ["ok"]:
        return f"integrity check: {str(rows[0][0])[:80]}"
    return None


def verify(ledger: Ledger) -> VerifyResult:
    """The file's pages, the chain, then the high-water mark. Damage found is remembered (new sales
    stay refused until a restore); a ledger behind its mark is reported, never "ok"."""
    head_seq, head_hash = 0, ""  # unknown: the file could not be walked
    problem = file_problem(ledger)
    if problem is None:
        try:
            res = walk_chain(ledger)
        except (db.DatabaseError, LedgerStorageError) as exc:
            problem = (
                f"a record can't be read ({getattr(exc, 'sqlite_errorname', None) or exc.__class__.__name__})"
            )
        else:
            if not res.ok or ledger.refusal is None:
                return res
            return VerifyResult(False, res.count, res.head_seq, res.head_hash, None, ledger.refusal.message)
    ledger.mark_damaged(problem)
    why = f"the ledger file is damaged: {problem}; no new sales: {db.RESTORE_HINT}"
    return VerifyResult(False, 0, head_seq, head_hash, None, why)


def walk_chain(ledger: Ledger) -> VerifyResult:
    prev = canonical.genesis_hash(ledger.device_id)
    expected = 1
    count = 0
    tokens: set[str] = set()
    cols = ", ".join(RECORD_COLUMNS)
    cur = ledger.conn.execute(f"SELECT {cols}, hash, sig FROM records ORDER BY seq")
    names = [*RECORD_COLUMNS, "hash", "sig"]
    for raw in cur:
        row = dict(zip(names, raw, strict=True))
        count += 1
        problem = _problem(row, expected, prev, ledger, tokens)
        if problem is not None:
            at = expected if row["seq"] != expected else int(row["seq"])
            return VerifyResult(False, count, int(row["seq"]), str(row["hash"]), at, problem)
        prev = str(row["hash"])
        expected += 1
    return VerifyResult(True, count, expected - 1, prev)
