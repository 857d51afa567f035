"""The background jobs of `run` (DESIGN section 9): one APScheduler in the one
process that owns the ledger. Every job coalesces missed runs, never overlaps
itself, and is jittered so 80,000 kiosks don't call the centre in step."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger


@dataclass(frozen=True)
class JobSpec:
    id: str
    func: Callable[[], object]
    every_s: float
    jitter_s: int
    first_in_s: float | None = None  # None: one interval after start


log = logging.getLogger(__name__)


def _one_line_on_agent_errors(job_id: str, func: Callable[[], object]) -> Callable[[], object]:
    """An AgentError (a full disk, a damaged ledger: said in the operator's terms) is one warning
    line, as the CLI says it; APScheduler would log it with a traceback on every run. Anything
    else is a bug and keeps its traceback."""
    from agent.errors import AgentError

    @functools.wraps(func)
    def job() -> object:
        try:
            return func()
        except AgentError as exc:
            log.warning("%s job: %s", job_id, exc.message)
            return None

    return job


def build(specs: list[JobSpec], *, now: Callable[[], object] | None = None) -> BackgroundScheduler:
    """A scheduler (not started) with one job per spec."""
    import datetime as dt

    sched = BackgroundScheduler(
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        timezone=dt.UTC,
    )
    start = dt.datetime.now(dt.UTC)
    for spec in specs:
        first = None if spec.first_in_s is None else start + dt.timedelta(seconds=spec.first_in_s)
        sched.add_job(
            _one_line_on_agent_errors(spec.id, spec.func),
            IntervalTrigger(seconds=spec.every_s, jitter=spec.jitter_s),
            id=spec.id,
            name=spec.id,
            next_run_time=first or start + dt.timedelta(seconds=spec.every_s),
            coalesce=True,
            max_instances=1,
        )
    return sched


def run_soon(sched: BackgroundScheduler, job_id: str, in_s: float) -> None:
    """Bring a job forward (debounced: an earlier planned run is kept)."""
    import datetime as dt

    job = sched.get_job(job_id)
    if job is None:
        return
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=in_s)
    if job.next_run_time is None or job.next_run_time > when:
        job.modify(next_run_time=when)
