#!/usr/bin/env python
"""A statewide reconnect storm against `kiosk-server serve`, checked record by record afterwards.

K kiosks are added with the admin module and enrolled through the real HTTP API; each pre-signs a
backlog of R records as the agent would (bench/kiosks.py: leased tokens, the last share
provisional, zstd bodies, signed requests). Then all of them push at once over C concurrent
connections, each behaving like the agent (bench/storm_client.py: 15 s timeout; on 429/503 the
agent's Backoff: Retry-After plus up to a second, then the same batch again; the same on a timeout,
a connection error or a 5xx), until every backlog is acked or the deadline passes.

Reported per storm: records/s (records acked over wall time), p50/p99 of admitted requests (not
shed), 429/503 and their Retry-After, other 5xx, client timeouts, batches sent per kiosk, server
CPU seconds per acked record (the server and its worker processes, from /proc) beside one Ed25519
verify measured in this process in the same run, and on PostgreSQL the CPU of the server's
backends. Then the database is checked: stored == sent, no seq or token stored twice, every
chain head right, nothing quarantined.

    .venv/bin/python bench/storm.py                                  # SQLite, 50 kiosks x 10, C=20
    .venv/bin/python bench/storm.py --kiosks 300 --records 50 --compare-concurrency 100,300
    .venv/bin/python bench/storm.py --db postgresql --compare-workers 1,2 --concurrency 200
    .venv/bin/python bench/storm.py --db postgresql --workers 2 --lease-storm --resend --no-storm
    .venv/bin/python bench/storm.py --json ...                       # one JSON document

`--db postgresql` uses $KIOSK_TEST_POSTGRES_URL or postgresql+psycopg://postgres@127.0.0.1:5432/test
and a fresh schema per server, dropped at the end. `--compare-concurrency A,B` runs one storm per
level on the same server (fresh kiosks each) and prints records/s of each against the first;
`--compare-workers 1,2` starts one server (fresh database) per worker count. `--lease-storm`: 200
enrolled devices ask for a block at once (`--lease-rounds` times each): grants/s and whether the
ranges are disjoint, then the same client against a do-nothing endpoint served the same way
(bench/bare_server.py): grants/s over its answers/s is how close a grant comes to what this machine
and this client can do at all. `--resend`: `--resend-kiosks` kiosks send one batch each, one at a time, then
the same batches again: server CPU and time of the second pass against the first.

Tests import :func:`storm` (one server, one storm, figures and the integrity verdict).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import lease_client  # noqa: E402
from bench import storm_client as client  # noqa: E402
from bench.storm_server import (  # noqa: E402
    Expected,
    Server,
    bare,
    leases_overlapping,
    pg_base_url,
    serve,
    settle,
    tree_cpu,
    verify,
)
from server_stub.config import ServerConfig  # noqa: E402


@dataclass(frozen=True)
class Options:
    """How the kiosks build their backlogs and behave, and how the server is started."""

    provisional_share: float = 0.1
    batch_records: int = 500  # the agent's [sync] batch_max_records
    batch_bytes: int = 262_144  # the agent's [sync] batch_max_bytes
    encoding: str | None = "zstd"  # what the agent sends; None = plain JSON
    timeout_s: float = 15.0  # the agent's sync client
    deadline_s: float = 600.0
    spread_s: float = 0.0  # 0: every kiosk at once
    backoff_base_s: float = 2.0  # the agent's [sync] backoff_base_s / backoff_cap_s
    backoff_cap_s: float = 900.0
    rate_limit: float | None = None  # None: the server's default
    serve_flags: tuple[str, ...] = ()  # more `serve` flags, e.g. ("--max-in-flight", "4")
    seed: int = 1
    timeline: str | None = None  # a path prefix: each storm's timeline() written to PREFIX-wW-cC.json

    def backlog(self) -> dict[str, Any]:
        return {
            "provisional_share": self.provisional_share,
            "max_records": self.batch_records,
            "max_bytes": self.batch_bytes,
            "encoding": self.encoding,
        }


def verify_us(chunks: int = 25, per_chunk: int = 200) -> float:
    """CPU time of one Ed25519 verify (cryptography, a 32-byte message as the server verifies a
    record hash): the median over ``chunks`` runs of ``per_chunk``, in microseconds. Thread CPU
    time, like the server's figure, so other jobs on a shared machine do not inflate it."""
    key = Ed25519PrivateKey.generate()
    pub, msg = key.public_key(), os.urandom(32)
    sig = key.sign(msg)
    times = []
    for _ in range(chunks):
        t0 = time.thread_time()
        for _ in range(per_chunk):
            pub.verify(sig, msg)
        times.append((time.thread_time() - t0) / per_chunk)
    return statistics.median(times) * 1e6


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def _ms(v: float | None) -> float | None:
    return None if v is None else round(v * 1000, 1)


def _figures(
    fired: client.FireResult, server_cpu: float, pg_cpu: float | None, v_us: float
) -> dict[str, Any]:
    t = fired.tally
    acked = sum(r.acked_seq for r in fired.runs)
    sent = [r.sent - r.shed for r in fired.runs]  # batches the server took in (not turned away)
    posts = [r.sent for r in fired.runs]
    five = sum(n for s, n in t.status.items() if s >= 500) - t.shed[503]  # a 503 without Retry-After
    per_record_us = server_cpu / acked * 1e6 if acked else None
    answered = sum(t.status.values())
    return {
        "wall_s": round(fired.wall_s, 2),
        "records_acked": acked,
        "records_per_s": round(acked / fired.wall_s, 1) if fired.wall_s else 0.0,
        "requests": sum(t.status.values()) + t.timeouts + t.conn_errors,
        "status": {str(k): v for k, v in sorted(t.status.items())},
        "p50_ms": _ms(_pct(t.latencies, 0.50)),
        "p99_ms": _ms(_pct(t.latencies, 0.99)),
        "max_ms": _ms(max(t.latencies, default=None)),
        "shed_429": t.shed[429],
        "shed_503": t.shed[503],
        "retry_after_s": {f"{k:g}": v for k, v in sorted(Counter(t.retry_after).items())},
        "retry_after_ignored": sum(r.early for r in fired.runs),  # attempts sooner than told
        "http_5xx": five,
        "client_timeouts": t.timeouts,
        "connection_errors": t.conn_errors,
        "connection_error_kinds": dict(t.conn_error_kinds),
        "rejected": dict(t.rejected),
        "other_4xx": dict(t.errors),
        "accepted": t.accepted,
        "duplicate": t.duplicate,
        "batches_per_kiosk_mean": round(statistics.fmean(sent), 3) if sent else 0.0,
        "batches_per_kiosk_max": max(sent, default=0),
        "posts_per_kiosk_mean": round(statistics.fmean(posts), 3) if posts else 0.0,
        "batches_per_kiosk_needed": round(statistics.fmean(len(r.kiosk.batches) for r in fired.runs), 3),
        "kiosks_unfinished": sum(1 for r in fired.runs if not r.done),
        "kiosks_failed": sum(1 for r in fired.runs if r.failed),
        "server_cpu_s": round(server_cpu, 2),
        "server_cpu_us_per_record": None if per_record_us is None else round(per_record_us, 1),
        "server_cpu_ms_per_request": round(server_cpu / answered * 1000, 2) if answered else None,
        "pg_backend_cpu_us_per_record": round(pg_cpu / acked * 1e6, 1)
        if pg_cpu is not None and acked
        else None,
        "verify_us": round(v_us, 1),
        "server_cpu_per_record_over_verify": None
        if per_record_us is None
        else round(per_record_us / v_us, 2),
    }


def timeline(fired: client.FireResult, slots: int, step_s: float = 0.1) -> dict[str, Any]:
    """The storm from the client's side, in ``step_s`` steps from the release: requests started,
    shed, admitted ones finished, and how many admitted requests were in flight (queued or
    running, the mean over the step). Fewer in flight than the server's ``slots`` (workers x
    max_in_flight) means the server had room it did not use. Per second: the same, the share of
    steps with room left, and the Retry-After handed out. ``requests``: every request as
    [start s, end s, status, Retry-After] (status 0: a timeout or a connection error)."""
    events = sorted((a - fired.started, b - fired.started, st, ra) for a, b, st, ra in fired.tally.timeline)
    end = max((b for _, b, _, _ in events), default=0.0)
    n = int(end / step_s) + 1
    started, shed, done, busy = [0] * n, [0] * n, [0] * n, [0.0] * n
    for a, b, _st, ra in events:
        started[int(a / step_s)] += 1
        if ra is not None:
            shed[int(b / step_s)] += 1
            continue
        done[int(b / step_s)] += 1
        i, j = int(a / step_s), int(b / step_s)  # in flight from a to b: its share of each step
        for k in range(i, j + 1):
            busy[k] += (min(b, (k + 1) * step_s) - max(a, k * step_s)) / step_s
    per = max(1, round(1 / step_s))
    seconds = []
    for sec in range(0, n, per):
        window = slice(sec, sec + per)
        told = [ra for _a, b, _s, ra in events if ra is not None and sec * step_s <= b < (sec + per) * step_s]
        seconds.append(
            {
                "s": round(sec * step_s, 1),
                "started": sum(started[window]),
                "shed": sum(shed[window]),
                "done": sum(done[window]),
                "in_flight_mean": round(statistics.fmean(busy[window]), 1),
                "room_share": round(sum(x < slots for x in busy[window]) / len(busy[window]), 2),
                "retry_after": {f"{k:g}": v for k, v in sorted(Counter(told).items())},
            }
        )
    # Each kiosk's turnings away, and when it finished (its last attempt): the stragglers.
    finished = sorted((r.history[-1][0] - fired.started, r.shed) for r in fired.runs if r.history)
    tail = finished[len(finished) * 9 // 10 :]
    return {
        "step_s": step_s,
        "slots": slots,
        "sheds_per_kiosk": {str(k): v for k, v in sorted(Counter(r.shed for r in fired.runs).items())},
        "last_tenth": {
            "from_s": round(tail[0][0], 1) if tail else None,
            "sheds_mean": round(statistics.fmean(n for _, n in tail), 2) if tail else None,
            "others_sheds_mean": round(
                statistics.fmean(n for _, n in finished[: len(finished) - len(tail)]), 2
            )
            if len(finished) > len(tail)
            else None,
        },
        "room_share": round(sum(x < slots for x in busy) / n, 3) if n else 0.0,
        "in_flight": [round(x, 2) for x in busy],
        "seconds": seconds,
        "requests": [[round(a, 4), round(b, 4), st, ra] for a, b, st, ra in events],
    }


def _client_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def warm_up(server: Server, workers: int, opts: Options) -> None:
    """A few small batches over several connections, so every worker has imported, connected and
    compiled what it needs before anything is measured (a storm hits a server that was running)."""
    fleet = server.new_kiosks(4 * workers, 2, **opts.backlog())
    client.fire(server.url, fleet, 4 * workers, timeout_s=60, deadline_s=120)


def storm_on(
    server: Server, kiosks: int, records: int, concurrency: int, opts: Options, workers: int = 1
) -> dict[str, Any]:
    """One storm on a running server with ``kiosks`` fresh kiosks: figures and the integrity verdict
    (and with ``opts.timeline`` its timeline, written to a file, the per-second part kept)."""
    t_prep, shed0 = time.monotonic(), server.enroll_shed
    fleet = server.new_kiosks(kiosks, records, **opts.backlog())
    prep_s = time.monotonic() - t_prep
    settle(server)
    load = os.getloadavg()[0]
    errors_before = server.exceptions()
    cpu0, client0 = server.cpu_s(), _client_cpu_s()
    with server.pg_backends() as pg:
        fired = client.fire(
            server.url,
            fleet,
            concurrency,
            timeout_s=opts.timeout_s,
            deadline_s=opts.deadline_s,
            spread_s=opts.spread_s,
            backoff_base_s=opts.backoff_base_s,
            backoff_cap_s=opts.backoff_cap_s,
            seed=opts.seed,
        )
    server_cpu, client_cpu = server.cpu_s() - cpu0, _client_cpu_s() - client0
    figures = _figures(fired, server_cpu, pg.seconds if pg is not None else None, verify_us())
    expected = [Expected(r.kiosk, r.acked_seq, r.finals) for r in fired.runs]
    extra: dict[str, Any] = {}
    if opts.timeline:
        tl = timeline(fired, workers * _max_in_flight(opts))
        Path(f"{opts.timeline}-w{workers}-c{concurrency}.json").write_text(json.dumps(tl))
        extra["timeline"] = {
            k: tl[k] for k in ("slots", "room_share", "sheds_per_kiosk", "last_tenth", "seconds")
        }
    return {
        "kiosks": kiosks,
        "records_per_kiosk": records,
        "concurrency": concurrency,
        **figures,
        "client_cpu_s": round(client_cpu, 2),
        "prepare_s": round(prep_s, 1),
        "enroll_shed": server.enroll_shed - shed0,
        "load_average_1m": round(load, 2),
        "server_exceptions": dict(server.exceptions() - errors_before),
        "integrity": verify(server.engine, expected),
        **extra,
    }


def _max_in_flight(opts: Options) -> int:
    flags = list(opts.serve_flags)
    if "--max-in-flight" in flags:
        return int(flags[flags.index("--max-in-flight") + 1])
    return ServerConfig().max_in_flight


def storm(
    kiosks: int,
    records: int,
    concurrency: int,
    db: str = "sqlite",
    workers: int = 1,
    opts: Options | None = None,
) -> dict[str, Any]:
    """Start a server on a fresh ``db``, run one storm, stop it: the figures and ``integrity``."""
    opts = opts or Options()
    with serve(db, workers, rate_limit=opts.rate_limit, flags=opts.serve_flags) as server:
        warm_up(server, workers, opts)
        result = storm_on(server, kiosks, records, concurrency, opts, workers)
    return {"db": _db_kind(db), "workers": workers, **result}


def _db_kind(db: str) -> str:
    return "sqlite" if pg_base_url(db) is None else "postgresql"


def lease_storm_on(
    server: Server, devices: int, rounds: int, workers: int, warm_up: int = 0
) -> dict[str, Any]:
    """``devices`` enrolled devices each ask ``rounds`` times for one block, all at once; then the
    same client against the do-nothing server with as many workers (the ceiling of this machine
    and client, in the same run). ``warm_up`` of them ask once first, unmeasured."""
    fleet = server.new_kiosks(devices, 0)
    warm = lease_client.lease_storm(server.url, fleet[:warm_up], 1).leases if warm_up else []
    settle(server)
    cpu0, client0 = server.cpu_s(), _client_cpu_s()
    with server.pg_backends() as pg:
        got = lease_client.lease_storm(server.url, fleet, rounds)
    cpu, client_cpu = server.cpu_s() - cpu0, _client_cpu_s() - client0
    pg_cpu = pg.seconds if pg is not None else None
    enrolled = [(le["start_serial"], le["end_serial"]) for k in fleet for le in k.leases]
    checks = leases_overlapping(server.engine, got.leases + enrolled + warm)
    ceiling = _bare_lease_storm(fleet, rounds, workers)
    ours = _bare_lease_storm(fleet, rounds, workers, "bench.bare_server:ours")
    per_s = round(len(got.leases) / got.wall_s, 1) if got.wall_s else 0.0
    return {
        "devices": devices,
        "warm_up": warm_up,
        "rounds": rounds,
        "grants": len(got.leases),
        "wall_s": round(got.wall_s, 2),
        "grants_per_s": per_s,
        "p50_ms": _ms(_pct(got.latencies, 0.5)),
        "p99_ms": _ms(_pct(got.latencies, 0.99)),
        "status": {str(k): v for k, v in sorted(got.status.items())},
        "failed": got.failed,
        "server_cpu_ms_per_grant": round(cpu / len(got.leases) * 1000, 2) if got.leases else None,
        "pg_cpu_ms_per_grant": round(pg_cpu / len(got.leases) * 1000, 2) if got.leases and pg_cpu else None,
        "client_cpu_ms_per_grant": round(client_cpu / len(got.leases) * 1000, 2) if got.leases else None,
        **checks,
        "disjoint": not checks["granted_overlaps"] and not checks["stored_overlaps"],
        "bare": ceiling,
        "ours_do_nothing": ours,
        "over_bare": round(per_s / ceiling["answers_per_s"], 3) if ceiling["answers_per_s"] else None,
    }


def _bare_lease_storm(
    fleet: list[Any], rounds: int, workers: int, app: str = "bench.bare_server:app"
) -> dict[str, Any]:
    """The same lease storm against bench/bare_server.py (``app``): answers/s and its CPU per answer.
    A short storm first, so admission in the server's own app has measured its rate."""
    with bare(workers, app) as (url, pid):
        lease_client.lease_storm(url, fleet[:40], 2)
        cpu0 = tree_cpu(pid)[0]
        got = lease_client.lease_storm(url, fleet, rounds)
        cpu = tree_cpu(pid)[0] - cpu0
    n = len(got.leases)
    return {
        "answers_per_s": round(n / got.wall_s, 1) if got.wall_s else 0.0,
        "p99_ms": _ms(_pct(got.latencies, 0.99)),
        "server_cpu_ms_per_answer": round(cpu / n * 1000, 2) if n else None,
        "status": {str(k): v for k, v in sorted(got.status.items())},
    }


def resend_on(server: Server, kiosks: int, records: int, opts: Options) -> dict[str, Any]:
    """One batch per kiosk sent in turn, then the same batches again: the second pass against the first."""
    fleet = server.new_kiosks(kiosks, records, **opts.backlog())
    settle(server)
    passes = []
    for _ in range(2):
        cpu0, t0 = server.cpu_s(), time.perf_counter()
        statuses = client.send_in_turn(server.url, fleet)
        passes.append((server.cpu_s() - cpu0, time.perf_counter() - t0, statuses))
    (cpu1, wall1, first), (cpu2, wall2, second) = passes
    n = kiosks * records
    return {
        "kiosks": kiosks,
        "records_per_kiosk": records,
        "first": {"server_cpu_s": round(cpu1, 3), "wall_s": round(wall1, 3), "acks": dict(first)},
        "resend": {"server_cpu_s": round(cpu2, 3), "wall_s": round(wall2, 3), "acks": dict(second)},
        "first_cpu_us_per_record": round(cpu1 / n * 1e6, 1),
        "resend_cpu_us_per_record": round(cpu2 / n * 1e6, 1),
        "cpu_ratio": round(cpu2 / cpu1, 3) if cpu1 else None,
        "wall_ratio": round(wall2 / wall1, 3) if wall1 else None,
        "ok": first == Counter({"accepted": n}) and second == Counter({"duplicate": n}),
    }


@dataclass(frozen=True)
class Plan:
    db: str = "sqlite"
    workers: tuple[int, ...] = (1,)
    concurrency: tuple[int, ...] = (20,)
    kiosks: int = 50
    records: int = 10
    storm: bool = True
    lease_devices: int = 0  # 0: no lease storm
    lease_rounds: int = 5
    lease_warm_up: int = 0  # devices that ask once before the lease storm is measured
    resend_kiosks: int = 0  # 0: no resend figure
    options: Options = Options()


def run(plan: Plan) -> dict[str, Any]:
    """Every server (one per worker count) with its storms, lease storm and resend figure; ratios."""
    servers = []
    for workers in plan.workers:
        one: dict[str, Any] = {"workers": workers, "storms": []}
        with serve(
            plan.db, workers, rate_limit=plan.options.rate_limit, flags=plan.options.serve_flags
        ) as server:
            warm_up(server, workers, plan.options)
            if plan.storm:
                for c in plan.concurrency:
                    one["storms"].append(
                        storm_on(server, plan.kiosks, plan.records, c, plan.options, workers)
                    )
            if plan.lease_devices:
                one["lease_storm"] = lease_storm_on(
                    server, plan.lease_devices, plan.lease_rounds, workers, plan.lease_warm_up
                )
            if plan.resend_kiosks:
                one["resend"] = resend_on(server, plan.resend_kiosks, plan.records, plan.options)
            one["enroll_shed_total"] = server.enroll_shed  # warm-up and every phase
            one["server_exceptions_total"] = dict(server.exceptions())
        servers.append(one)
    return {
        "db": _db_kind(plan.db),
        "kiosks": plan.kiosks,
        "records_per_kiosk": plan.records,
        "options": asdict(plan.options),
        "cpus": os.cpu_count(),
        "servers": servers,
        "ratios": _ratios(servers),
        "ok": all(_server_ok(one) for one in servers),
    }


def _server_ok(one: dict[str, Any]) -> bool:
    """Every storm stored exactly what was sent, the leases are disjoint, the resend was all duplicates."""
    lease, resend = one.get("lease_storm"), one.get("resend")
    return (
        all(s["integrity"]["ok"] for s in one["storms"])
        and (lease is None or (lease["disjoint"] and not lease["failed"]))
        and (resend is None or resend["ok"])
    )


def _ratios(servers: list[dict[str, Any]]) -> dict[str, float]:
    """records/s of each concurrency against the first on the same server, and of each worker
    count against the first at the same concurrency."""
    out: dict[str, float] = {}
    for one in servers:
        storms = one["storms"]
        for s in storms[1:]:
            if storms[0]["records_per_s"]:
                key = f"w{one['workers']} c{s['concurrency']} / c{storms[0]['concurrency']}"
                out[key] = round(s["records_per_s"] / storms[0]["records_per_s"], 3)
    for one in servers[1:]:
        for s, base in zip(one["storms"], servers[0]["storms"], strict=True):
            if base["records_per_s"]:
                key = f"c{s['concurrency']} w{one['workers']} / w{servers[0]['workers']}"
                out[key] = round(s["records_per_s"] / base["records_per_s"], 3)
    return out


def _print_storm(s: dict[str, Any]) -> None:
    i = s["integrity"]
    print(f"  storm: {s['kiosks']} kiosks x {s['records_per_kiosk']} records, {s['concurrency']} concurrent")
    print(f"    records/s         {s['records_per_s']:>9}   ({s['records_acked']} acked in {s['wall_s']} s)")
    print(f"    p50 / p99 / max   {s['p50_ms']} / {s['p99_ms']} / {s['max_ms']} ms (admitted requests)")
    print(
        f"    429 / 503 shed    {s['shed_429']} / {s['shed_503']}",
        f"  Retry-After s: {s['retry_after_s'] or '-'}",
    )
    print(f"    5xx               {s['http_5xx']}   client timeouts {s['client_timeouts']}", end="")
    print(f"   connection errors {s['connection_errors']} {s['connection_error_kinds'] or ''}", end="")
    print(f"   statuses {s['status']}")
    print(
        f"    batches per kiosk {s['batches_per_kiosk_mean']} mean, {s['batches_per_kiosk_max']} max"
        f" (needed {s['batches_per_kiosk_needed']}; POSTs incl. shed {s['posts_per_kiosk_mean']});"
        f" unfinished kiosks {s['kiosks_unfinished']}"
    )
    pg = s["pg_backend_cpu_us_per_record"]
    print(
        f"    server CPU        {s['server_cpu_us_per_record']} us/record"
        + f" ({s['server_cpu_ms_per_request']} ms/request)"
        + (f" (+ PostgreSQL backends >= {pg} us)" if pg is not None else "")
        + f"; one Ed25519 verify {s['verify_us']} us; ratio {s['server_cpu_per_record_over_verify']}"
    )
    print(
        f"    client CPU        {s['client_cpu_s']} s; load average at start {s['load_average_1m']};"
        f" enrollments retried {s['enroll_shed']}"
    )
    if s["rejected"] or s["other_4xx"] or s["server_exceptions"]:
        print(
            f"    rejected {s['rejected']}  other 4xx {s['other_4xx']}  server log {s['server_exceptions']}"
        )
    if tl := s.get("timeline"):
        print(
            f"    timeline          steps of 0.1 s with fewer than {tl['slots']} admitted in flight:"
            f" {tl['room_share']:.0%}; kiosks by times turned away {tl['sheds_per_kiosk']}; the last"
            f" tenth to finish (from {tl['last_tenth']['from_s']} s) turned away"
            f" {tl['last_tenth']['sheds_mean']} times each, the others"
            f" {tl['last_tenth']['others_sheds_mean']};"
            " per second: started / shed / done / in flight / room / Retry-After"
        )
        for row in tl["seconds"]:
            print(
                f"      {row['s']:>5.0f} s {row['started']:>5} {row['shed']:>5} {row['done']:>5}"
                f" {row['in_flight_mean']:>6} {row['room_share']:>5.0%}  {row['retry_after'] or ''}"
            )
    bad = {k: v for k, v in i.items() if k not in ("ok", "sent", "stored") and v}
    print(
        f"    integrity         {'OK' if i['ok'] else 'FAILED'}: stored {i['stored']} of {i['sent']}", end=""
    )
    print(f", {bad}" if bad else ", no duplicates, chain heads right")


def report(result: dict[str, Any]) -> None:
    print(f"{result['db']}, {result['cpus']} CPUs (shared: see the load average)")
    for one in result["servers"]:
        print(
            f"serve --workers {one['workers']}: enrollments retried {one['enroll_shed_total']},"
            f" server log {one['server_exceptions_total'] or 'clean'}"
        )
        for s in one["storms"]:
            _print_storm(s)
        if ls := one.get("lease_storm"):
            print(
                f"  lease storm: {ls['devices']} devices x {ls['rounds']}: {ls['grants_per_s']} grants/s"
                f" ({ls['grants']} in {ls['wall_s']} s), p50/p99 {ls['p50_ms']}/{ls['p99_ms']} ms,"
                f" {ls['server_cpu_ms_per_grant']} ms server CPU/grant (PostgreSQL backends"
                f" {ls['pg_cpu_ms_per_grant']}, this client {ls['client_cpu_ms_per_grant']}),"
                f" statuses {ls['status']},"
                f" {'disjoint' if ls['disjoint'] else 'OVERLAPPING'}"
            )
            b = ls["bare"]
            print(
                f"    the same client against a do-nothing endpoint (bench/bare_server.py, same workers):"
                f" {b['answers_per_s']}/s, p99 {b['p99_ms']} ms, {b['server_cpu_ms_per_answer']} ms server"
                f" CPU/answer; grants/s over it {ls['over_bare']}"
            )
            o = ls["ours_do_nothing"]
            print(
                f"    ... and against that do-nothing route inside this server's app (its middleware):"
                f" {o['answers_per_s']}/s, p99 {o['p99_ms']} ms, {o['server_cpu_ms_per_answer']} ms server"
                f" CPU/answer, statuses {o['status']}"
            )
        if rs := one.get("resend"):
            print(
                f"  resend: {rs['kiosks']} batches of {rs['records_per_kiosk']}: server CPU"
                f" {rs['first_cpu_us_per_record']} -> {rs['resend_cpu_us_per_record']} us/record,"
                f" ratio {rs['cpu_ratio']} (time ratio {rs['wall_ratio']}), acks"
                f" {'as expected' if rs['ok'] else (rs['first']['acks'], rs['resend']['acks'])}"
            )
    for k, v in result["ratios"].items():
        print(f"  records/s {k}: {v}")


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--db", default="sqlite", help="sqlite, postgresql or a postgresql+psycopg:// URL")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--compare-workers", type=_ints, metavar="A,B", help="one server per worker count")
    ap.add_argument("--kiosks", type=int, default=50)
    ap.add_argument("--records", type=int, default=10, help="backlog per kiosk")
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--compare-concurrency", type=_ints, metavar="A,B", help="one storm per level")
    ap.add_argument("--provisional-share", type=float, default=0.1)
    ap.add_argument("--batch-records", type=int, default=500)
    ap.add_argument("--encoding", choices=["zstd", "gzip", "none"], default="zstd")
    ap.add_argument("--deadline", type=float, default=600.0, help="seconds for a storm to drain")
    ap.add_argument("--spread", type=float, default=0.0, help="spread first attempts over S seconds")
    ap.add_argument("--rate-limit", type=float, default=None, help="serve --rate-limit (default: server's)")
    ap.add_argument(
        "--max-in-flight", type=int, default=None, help="serve --max-in-flight (default: server's)"
    )
    ap.add_argument("--queue-wait", type=float, default=None, help="serve --queue-wait-s (default: server's)")
    ap.add_argument("--no-storm", action="store_true")
    ap.add_argument("--lease-storm", action="store_true")
    ap.add_argument("--lease-devices", type=int, default=200)
    ap.add_argument("--lease-rounds", type=int, default=5)
    ap.add_argument(
        "--lease-warm-up",
        type=int,
        default=0,
        metavar="N",
        help="N of the devices ask once, unmeasured, before the lease storm (admission then has"
        " measured lease requests, not only the enrollments before them)",
    )
    ap.add_argument("--resend", action="store_true")
    ap.add_argument("--resend-kiosks", type=int, default=50)
    ap.add_argument(
        "--timeline",
        metavar="PREFIX",
        help="record every request; print each storm per second (started, shed, done, admitted in"
        " flight, share of 0.1 s steps with a slot free, Retry-After) and write PREFIX-wW-cC.json",
    )
    ap.add_argument("--json", action="store_true")
    return ap


def _serve_flags(args: argparse.Namespace) -> tuple[str, ...]:
    flags: list[str] = []
    if args.max_in_flight is not None:
        flags += ["--max-in-flight", str(args.max_in_flight)]
    if args.queue_wait is not None:
        flags += ["--queue-wait-s", str(args.queue_wait)]
    return tuple(flags)


def main() -> None:
    args = _parser().parse_args()
    opts = replace(
        Options(),
        provisional_share=args.provisional_share,
        batch_records=args.batch_records,
        encoding=None if args.encoding == "none" else args.encoding,
        deadline_s=args.deadline,
        spread_s=args.spread,
        rate_limit=args.rate_limit,
        serve_flags=_serve_flags(args),
        timeline=args.timeline,
    )
    plan = Plan(
        db=args.db,
        workers=args.compare_workers or (args.workers,),
        concurrency=args.compare_concurrency or (args.concurrency,),
        kiosks=args.kiosks,
        records=args.records,
        storm=not args.no_storm,
        lease_devices=args.lease_devices if args.lease_storm else 0,
        lease_rounds=args.lease_rounds,
        lease_warm_up=args.lease_warm_up,
        resend_kiosks=args.resend_kiosks if args.resend else 0,
        options=opts,
    )
    result = run(plan)
    if args.json:
        print(json.dumps(result))
    else:
        report(result)
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
