"""`serve --log-format json`: every line the server writes is one JSON object (uvicorn's own lines
and the access log with method, path and status), with no long number in it."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import requests

from agent.harness import ServerProcess
from server_stub.logs import JsonFormatter, uvicorn_log_config


def _lines(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8", errors="replace")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_serve_writes_one_json_object_per_line(tmp_path: Path) -> None:
    with ServerProcess(tmp_path, serve_args=["--log-format", "json", "--log-level", "info"]) as srv:
        assert requests.get(srv.url + "/healthz", timeout=30).status_code == 200
        assert requests.get(srv.url + "/no/such?mobile=9876543210", timeout=30).status_code == 404
        assert requests.get(srv.url + "/v1/tokens/98765432101", timeout=30).status_code == 401
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # uvicorn writes the access line after the answer
            access = [d for d in _lines(srv.log) if d["logger"] == "uvicorn.access"]
            if len(access) >= 3:
                break
            time.sleep(0.05)  # polling the log file with a deadline
        log_text = srv.log.read_text(encoding="utf-8")
    docs = _lines(srv.log)
    assert all({"ts", "level", "logger", "msg"} <= set(d) for d in docs)
    assert any(d["logger"].startswith("uvicorn") and "Application startup complete" in d["msg"] for d in docs)
    by_path = {d["path"]: d for d in docs if d["logger"] == "uvicorn.access"}
    assert by_path["/healthz"]["method"] == "GET" and by_path["/healthz"]["status"] == 200
    assert by_path["/no/such"]["status"] == 404  # the query is not logged
    assert by_path["/v1/tokens/<number>"]["status"] == 401
    assert "9876543210" not in log_text and "98765432101" not in log_text


def test_the_formatter_redacts_and_keeps_the_traceback() -> None:
    try:
        raise ValueError("boom for 9876543210")
    except ValueError:
        record = logging.LogRecord(
            "server_stub.x", logging.ERROR, __file__, 1, "failed for %s", ("9876543210",), sys.exc_info()
        )
    doc = json.loads(JsonFormatter().format(record))
    assert (
        doc["msg"] == "failed for <number>" and doc["level"] == "ERROR" and doc["logger"] == "server_stub.x"
    )
    assert "ValueError" in doc["exc"] and "9876543210" not in doc["exc"]
    assert uvicorn_log_config("text", "info") is None
    config = uvicorn_log_config("json", "warning")
    assert config is not None and config["root"]["level"] == "WARNING"
