"""The Windows service (pywin32). Import only on Windows: everything is under a platform guard,
so the module is empty elsewhere and ruff/mypy pass on Linux.

The service reads its config path from the service's registry options (set at
install), loads the config, and calls ``agent.runner.run(cfg, stop_event)``;
SvcStop sets the event, so a service stop takes the same graceful path as
SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import sys

SERVICE_NAME = "kiosk-agent"
DISPLAY_NAME = "Kiosk agent (e-Mitra offline ledger and sync)"

if sys.platform == "win32":
    import threading

    import servicemanager
    import win32service
    import win32serviceutil

    class KioskAgentService(win32serviceutil.ServiceFramework):
        _svc_name_ = SERVICE_NAME
        _svc_display_name_ = DISPLAY_NAME
        _svc_description_ = (
            "Keeps the kiosk's encrypted ledger, issues tokens offline and syncs to the server."
        )

        def __init__(self, args: list[str]) -> None:
            win32serviceutil.ServiceFramework.__init__(self, args)
            self.stop_event = threading.Event()

        def SvcStop(self) -> None:  # noqa: N802 - pywin32's name
            self.ReportServiceStatus(win32service.SERVICE_STOP_PENDING, waitHint=30_000)
            self.stop_event.set()

        def SvcDoRun(self) -> None:  # noqa: N802 - pywin32's name
            from agent import config, logs
            from agent.runner import run

            path = win32serviceutil.GetServiceCustomOption(SERVICE_NAME, "config")
            try:
                cfg = config.load(path, env={})
                logs.setup(cfg)
                servicemanager.LogInfoMsg(f"{SERVICE_NAME}: starting with {path}")
                run(cfg, self.stop_event)
            except Exception as exc:  # the event log gets the reason; no PII in our messages
                servicemanager.LogErrorMsg(f"{SERVICE_NAME} stopped: {getattr(exc, 'message', exc)!s}")
                raise
            servicemanager.LogInfoMsg(f"{SERVICE_NAME}: stopped")

    def install(config_path: str) -> None:
        win32serviceutil.InstallService(
            win32serviceutil.GetServiceClassString(KioskAgentService),
            SERVICE_NAME,
            DISPLAY_NAME,
            startType=win32service.SERVICE_AUTO_START,
            description=KioskAgentService._svc_description_,
        )
        win32serviceutil.SetServiceCustomOption(SERVICE_NAME, "config", config_path)

    def remove() -> None:
        win32serviceutil.RemoveService(SERVICE_NAME)

    def start() -> None:
        win32serviceutil.StartService(SERVICE_NAME)

    def stop() -> None:
        win32serviceutil.StopService(SERVICE_NAME)

    if __name__ == "__main__":
        win32serviceutil.HandleCommandLine(KioskAgentService)
