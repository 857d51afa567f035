"""`kiosk-agent run`: one process holding the ledger, the scheduler, the
printer and the local API (DESIGN section 9).

Signals only set ``stop``; the main thread then shuts down in one path:
stop serving, stop the jobs, finish the current write (the ledger lock),
close the ledger, release the data-dir lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agent import printing, sdnotify, syncing
from agent.config import Config
from agent.errors import AgentError
from agent.ledger import Ledger, LedgerAccess, open_ledger
from agent.ledger.outbox import LedgerOutbox
from agent.lockfile import DirLock
from sync.client import SyncClient
from sync.engine import Backoff

if TYPE_CHECKING:
    from agent.printing import ReprintResult
    from agent.transactions import TxnView
    from hardware import Printer

log = logging.getLogger(__name__)


class LockedOutbox:
    """The ledger's outbox with the ledger lock taken per call, never across
    the engine's network I/O."""

    def __init__(self, inner: LedgerOutbox, lock: Any) -> None:
        self._inner = inner
        self._lock = lock
        self.device_id = inner.device_id

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def locked(*args: Any, **kw: Any) -> Any:
            with self._lock:
                return attr(*args, **kw)

        return locked


class Runner:
    def __init__(
        self,
        cfg: Config,
        stop: threading.Event,
        *,
        session: Any = None,
        clock: Callable[[], float] = time.monotonic,
        printer: Printer | None = None,
    ) -> None:
        """``printer`` replaces the configured one (tests pass a RecordingPrinter); None opens
        ``[printer]`` for each job and status check, so an unplugged printer is found again."""
        self.cfg = cfg
        self.printer = printer
        self.stop = stop
        self.session = session
        self.clock = clock
        self.dir_lock = DirLock(cfg.data_dir)
        self.ledger: Ledger | None = None
        self.access: LedgerAccess | None = None
        self.scheduler: Any = None
        self.api_thread: threading.Thread | None = None
        self.api_stop = threading.Event()
        self.api_ready = threading.Event()
        self.backoff = Backoff(cfg.settings.sync.backoff_base_s, cfg.settings.sync.backoff_cap_s)
        self.next_sync_at = 0.0
        self.sync_state = "starting"
        self.print_worker: printing.PrintWorker | None = None
        self.online = False
        self.port: int | None = None
        self._engine_cache: Any = None
        self._probe: Any = None  # agent.probe.LinkProbe once enrolled
        self.sync_error_code: str | None = None  # the last permanent refusal (device_revoked ...)
        self._directory_at: float | None = None

    # -- start ------------------------------------------------------------
    def start(self) -> None:
        from agent.api import bind, create_app, load_or_create_token, serve

        self.dir_lock.acquire()
        try:
            self.ledger = open_ledger(self.cfg)
            self.access = LedgerAccess(self.ledger)
            if self.cfg.settings.printer.enabled:
                self.print_worker = printing.PrintWorker(self.cfg, self.access, self.printer)
                self.print_worker.start()
            if not self.ledger.kiosk_code:
                self.sync_state = "waiting: not enrolled (kiosk-agent enroll)"
            api = self.cfg.settings.local_api
            sock = bind(api.host, api.port)
            self.port = sock.getsockname()[1]
            app = create_app(
                self.access,
                self.cfg,
                token=load_or_create_token(self.cfg),
                online=lambda: self.online,
                status_extra=self.status_extra,
                remote_lookup=self.remote_lookup,
                reprint=self.reprint if self.cfg.settings.printer.enabled else None,
                on_commit=self.nudge_sync,
                printer=self.printer,
                enqueue_print=None if self.print_worker is None else self.print_worker.enqueue_first_print,
            )
            self.api_thread = threading.Thread(
                target=serve,
                args=(app, api.host, self.port, self.api_ready, self.api_stop),
                kwargs={"sock": sock},
                name="local-api",
                daemon=True,
            )
            self.api_thread.start()
            self.scheduler = self._build_scheduler()
            self.scheduler.start()
            if not self.api_ready.wait(10):
                raise RuntimeError("the local API did not start")
        except BaseException:
            self.shutdown()
            raise
        sdnotify.notify("READY=1")
        log.info("kiosk-agent running: local API on %s:%s", self.cfg.settings.local_api.host, self.port)

    def _build_scheduler(self) -> Any:
        from agent import probe, scheduler

        s = self.cfg.settings.sync
        specs = [
            scheduler.JobSpec("sync", self.sync_job, s.interval_s, max(1, s.interval_s // 6), first_in_s=1),
            scheduler.JobSpec("heartbeat", self.heartbeat_job, s.heartbeat_s, max(1, s.heartbeat_s // 6)),
            scheduler.JobSpec("leases", self.leases_job, 3600, 300),
            scheduler.JobSpec("checkpoint", self.checkpoint_job, 600, 60),
            scheduler.JobSpec("backup", self.backup_job, 86_400, 1800, first_in_s=300),
            scheduler.JobSpec("printer", self.printer_job, 5, 1, first_in_s=0.5),  # the page shows it live
            scheduler.JobSpec("probe", self.probe_job, probe.EVERY_S, 0, first_in_s=0.2),
        ]
        return scheduler.build(specs)

    # -- jobs -------------------------------------------------------------
    def _engine(self) -> Any:
        """One engine (one HTTP session, one learned clock offset) once the kiosk is enrolled;
        None before, asked again each time so an enrollment made meanwhile is picked up."""
        assert self.access is not None
        if self._engine_cache is None:
            with self.access() as led:
                self._engine_cache = syncing.make_engine(
                    self.cfg,
                    led,
                    session=self.session,
                    outbox=LockedOutbox(LedgerOutbox(led), self.access.lock),  # type: ignore[arg-type]
                )
        return self._engine_cache

    def sync_job(self) -> None:
        if self.stop.is_set() or self.clock() < self.next_sync_at:
            return
        engine = self._engine()
        if engine is None:
            self.sync_state = "waiting: not enrolled (kiosk-agent enroll)"
            return
        report = engine.run_once()
        if report.error:
            delay = self.backoff.next_delay(report.retry_after_s)
            self.next_sync_at = self.clock() + delay
            self.online = False if report.transient else self.online
            self.sync_state = f"waiting: {report.error} (retry in {delay:.0f} s)"
            if not report.transient:
                self.sync_error_code = "device_revoked" if "device_revoked" in report.error else "refused"
        else:
            self.backoff.reset()
            self.next_sync_at = 0.0
            self.online = True
            self.sync_error_code = None
            self.sync_state = "ok" if not report.rejected else f"ok, {report.rejected} rejected"
            self.directory_job(engine)
        log.info(
            "sync: sent %d accepted %d duplicate %d rejected %d pending %d%s",
            report.sent,
            report.accepted,
            report.duplicate,
            report.rejected,
            report.pending,
            f" ({report.error})" if report.error else "",
        )

    def probe_job(self) -> None:
        """The link probe (agent.probe): online/offline within seconds; a link that comes back
        ends the backoff and syncs now."""
        from agent import probe

        engine = self._engine()
        if engine is None or self.stop.is_set():
            return
        if self._probe is None:
            self._probe = probe.LinkProbe(engine.client.base_url, self._link_changed)
        self.online = self._probe.check()

    def _link_changed(self, up: bool) -> None:
        from agent import scheduler

        self.online = up
        if up and self.scheduler is not None:
            self.backoff.reset()
            self.next_sync_at = 0.0
            scheduler.run_soon(self.scheduler, "sync", 0.1)

    def directory_job(self, engine: Any) -> None:
        """Pull the device directory (agent.directory) after a good sync, at most every 5 minutes."""
        from agent import directory
        from sync.errors import SyncError

        if self._directory_at is not None and self.clock() - self._directory_at < 300:
            return
        assert self.access is not None
        with self.access() as led:
            key = led.meta("server_sign_pub")
        if not key:
            return
        try:
            directory.pull(self.cfg, key, engine.client)
            self._directory_at = self.clock()
        except (SyncError, AgentError) as exc:
            log.warning("device directory not pulled: %s", getattr(exc, "message", exc))

    def heartbeat_job(self) -> None:
        engine = self._engine()
        if engine is None:
            return
        from sync.errors import SyncError

        try:
            resp = engine.heartbeat(
                {"printer": self.printer_state, "fingerprint": self.cfg.settings.fingerprint.kind}
            )
        except SyncError as exc:
            self.online = False if exc.transient else self.online
            if not exc.transient:
                self.sync_error_code = exc.code
            return
        self.online = True
        for message in resp.messages:
            log.warning("message from the server: %s", message[:200])

    def leases_job(self) -> None:
        engine = self._engine()
        if engine is None:
            return
        from sync.errors import SyncError

        try:
            engine.top_up_leases()
        except SyncError as exc:
            log.info("lease top-up waits: %s", exc.message)

    def checkpoint_job(self) -> None:
        assert self.access is not None
        with self.access() as led:
            led.checkpoint()

    def backup_job(self) -> None:
        from agent.backup import backup_rotate

        assert self.access is not None
        with self.access() as led:
            backup_rotate(self.cfg, led)

    @property
    def printer_state(self) -> str:
        return "disabled" if self.print_worker is None else self.print_worker.state

    def printer_job(self) -> None:
        """The status poll goes through the print worker, in line with the receipts."""
        if self.print_worker is not None:
            self.print_worker.check()

    # -- API hooks ----------------------------------------------------------
    def nudge_sync(self, view: TxnView) -> None:
        """The new-transaction flow's last step (agent.sales): sync soon, debounced."""
        from agent import scheduler

        if self.scheduler is not None:
            scheduler.run_soon(self.scheduler, "printer", 0.1)  # a failed print shows at once
            scheduler.run_soon(self.scheduler, "sync", 2.0)  # debounced: a burst makes one sync
            if self.online:  # offline, the backoff keeps its say
                self.next_sync_at = min(self.next_sync_at, self.clock() + 2.0)

    def reprint(self, token: str) -> ReprintResult:
        assert self.print_worker is not None
        return self.print_worker.reprint(token)

    def remote_lookup(self, token: str) -> dict[str, Any] | None:
        engine = self._engine()
        if engine is None:
            return None
        from sync.errors import SyncError

        c = engine.client  # a short-timeout twin: the operator is waiting, the sync is not
        quick = SyncClient(
            c.base_url,
            device_id=c.device_id,
            private_key=c.private_key,
            session=c.session,
            timeout_s=min(c.timeout_s, 5.0),
        )
        quick.offset_s = c.offset_s
        try:
            return dict(quick.token_status(token).model_dump(exclude_none=True))
        except SyncError:
            return None

    def status_extra(self) -> dict[str, Any]:
        return {
            "online": self.online,
            "sync_state": self.sync_state,
            "sync_error_code": self.sync_error_code,
            "printer": {"kind": self.cfg.settings.printer.kind, "state": self.printer_state},
        }

    # -- run and stop -------------------------------------------------------
    def wait(self) -> None:
        wd = sdnotify.watchdog_interval()
        tick = max(0.5, wd / 2) if wd else 3600.0
        while not self.stop.wait(tick):
            sdnotify.notify("WATCHDOG=1")

    def shutdown(self) -> None:
        sdnotify.notify("STOPPING=1")
        self.api_stop.set()
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self._probe is not None:
            self._probe.close()
        if self.api_thread is not None:
            self.api_thread.join(timeout=3)
        if self.print_worker is not None:
            self.print_worker.stop()
        if self.ledger is not None and self.access is not None:
            with self.access.lock:  # waits for the write in progress, then no more
                self.ledger.close()
            self.ledger = None
        self.dir_lock.release()
        log.info("kiosk-agent stopped")


def run(cfg: Config, stop: threading.Event) -> int:
    """Serve until ``stop`` is set; the one graceful path for signals and services."""
    runner = Runner(cfg, stop)
    runner.start()
    try:
        runner.wait()
    finally:
        runner.shutdown()
    return 0
