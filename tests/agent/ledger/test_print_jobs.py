"""ledger.print_jobs: queued with the sale in one commit, outcomes stored, never deleted."""

from __future__ import annotations

import pytest

from agent import transactions
from agent.errors import InvalidInput
from agent.ledger import Ledger
from tests.conftest import ELEC


def _sale(ledger: Ledger, *, queue_print: bool) -> int:
    req = transactions.NewTxn(ELEC["service"], "100", "op1", fields=dict(ELEC["fields"]))
    return transactions.create(ledger, req, queue_print=queue_print)["seq"]


def test_a_job_is_queued_in_the_same_commit_as_its_sale(ledger: Ledger) -> None:
    seq = _sale(ledger, queue_print=True)
    job_id = ledger.print_jobs.first_print_of(seq)
    assert job_id is not None
    job = ledger.print_jobs.get(job_id)
    assert (job.seq, job.state, job.attempts, job.duplicate) == (seq, "pending", 0, False)
    assert ledger.by_seq(seq)["print_state"] == "pending"
    assert ledger.print_jobs.first_print_of(_sale(ledger, queue_print=False)) is None


def test_attempts_are_counted_and_only_an_untried_job_is_the_first_print(ledger: Ledger) -> None:
    seq = _sale(ledger, queue_print=True)
    job_id = ledger.print_jobs.first_print_of(seq)
    assert job_id is not None
    ledger.print_jobs.finish(job_id, "pending", "paper out")
    assert ledger.print_jobs.first_print_of(seq) is None  # it prints again only when the operator asks
    job = ledger.print_jobs.get(job_id)
    assert job.attempts == 1 and job.last_error == "paper out"
    assert ledger.by_seq(seq)["print_error"] == "paper out"


def test_a_printed_reprint_supersedes_the_pending_ones(ledger: Ledger) -> None:
    seq = _sale(ledger, queue_print=True)
    first = ledger.print_jobs.first_print_of(seq)
    dup = ledger.print_jobs.add(seq, duplicate=True)
    assert first is not None and dup > first and ledger.print_jobs.get(dup).duplicate
    ledger.print_jobs.finish(dup, "printed", None)
    assert ledger.print_jobs.supersede(seq, dup) == 1
    assert ledger.print_jobs.get(first).state == "failed"
    assert ledger.print_jobs.get(first).last_error == "superseded by a reprint"
    assert ledger.by_seq(seq)["print_state"] == "printed"  # the newest job speaks for the record
    assert ledger.print_jobs.supersede(seq, dup) == 0


def test_unknown_job(ledger: Ledger) -> None:
    with pytest.raises(InvalidInput, match="no print job 99"):
        ledger.print_jobs.get(99)
