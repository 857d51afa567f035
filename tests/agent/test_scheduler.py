"""The run scheduler: jitter, coalescing, one instance per job, run_soon."""

from __future__ import annotations

import threading
import time

from apscheduler.triggers.interval import IntervalTrigger

from agent import scheduler


def test_jobs_are_jittered_coalesced_single_instance() -> None:
    specs = [
        scheduler.JobSpec("sync", lambda: None, 60, 10, first_in_s=1),
        scheduler.JobSpec("heartbeat", lambda: None, 300, 50),
        scheduler.JobSpec("leases", lambda: None, 3600, 300),
    ]
    sched = scheduler.build(specs)
    sched.start(paused=True)
    try:
        for spec in specs:
            job = sched.get_job(spec.id)
            assert job.coalesce is True and job.max_instances == 1
            assert isinstance(job.trigger, IntervalTrigger) and job.trigger.jitter == spec.jitter_s
            assert job.trigger.interval.total_seconds() == spec.every_s
    finally:
        sched.shutdown(wait=False)


def test_a_slow_job_never_overlaps_itself_and_run_soon_brings_it_forward() -> None:
    lock = threading.Lock()
    state = {"active": 0, "max": 0, "runs": 0}
    release = threading.Event()
    ran_again = threading.Event()

    def slow() -> None:
        with lock:
            state["active"] += 1
            state["max"] = max(state["max"], state["active"])
            state["runs"] += 1
            if state["runs"] >= 3:
                ran_again.set()
        release.wait(0.3)  # the job's own work outlasts several intervals
        with lock:
            state["active"] -= 1

    sched = scheduler.build([scheduler.JobSpec("sync", slow, 0.05, 0, first_in_s=0)])
    sched.start()
    try:
        assert ran_again.wait(10)
        assert state["max"] == 1
    finally:
        release.set()
        sched.shutdown(wait=True)

    fired = threading.Event()
    later = scheduler.build([scheduler.JobSpec("sync", fired.set, 3600, 0)])
    later.start()
    try:
        t0 = time.monotonic()
        scheduler.run_soon(later, "sync", 0.1)
        assert fired.wait(5) and time.monotonic() - t0 < 5
    finally:
        later.shutdown(wait=False)


def test_a_job_refused_for_a_full_disk_logs_one_line_not_a_traceback(caplog) -> None:  # type: ignore[no-untyped-def]
    from agent.errors import DiskFull

    ran = threading.Event()

    def full() -> None:
        ran.set()
        raise DiskFull("the disk is full: free some space (1 MB free, 64 MB needed)")

    sched = scheduler.build([scheduler.JobSpec("backup", full, 60, 0, first_in_s=0)])
    with caplog.at_level("INFO"):
        sched.start()
        try:
            assert ran.wait(10)
            deadline = time.monotonic() + 10
            while "backup job" not in caplog.text and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            sched.shutdown(wait=True)
    lines = [r for r in caplog.records if "backup" in r.getMessage()]
    assert [r.getMessage() for r in lines if r.name == "agent.scheduler"] == [
        "backup job: the disk is full: free some space (1 MB free, 64 MB needed)"
    ]
    assert not any(r.exc_info for r in caplog.records), [r.getMessage() for r in caplog.records]
