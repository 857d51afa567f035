"""The link probe: a real HTTP server on loopback answers /healthz, then goes away; the probe says
so on each change (and only on a change), within one check."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from agent.harness import free_port
from agent.probe import LinkProbe


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200 if self.path == "/healthz" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_probe_reports_each_change_of_the_link() -> None:
    port = free_port()
    changes: list[bool] = []
    probe = LinkProbe(f"http://127.0.0.1:{port}", changes.append, timeout_s=1.0)
    assert probe.check() is False and changes == [False]  # nothing listens yet
    httpd = ThreadingHTTPServer(("127.0.0.1", port), _Health)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        assert probe.check() is True and probe.check() is True
        assert changes == [False, True]  # told once per change
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
    assert probe.check() is False and changes == [False, True, False]
    probe.close()
