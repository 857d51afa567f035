"""Every code and state the operator can meet has a Hindi and an English message: each reject
reason the server gives, each error code the local API answers (found in its source, plus the
contract's codes from the ledger work), each status alert, each row, print and printer state.
The JS Verhoeff port agrees with sync/wire/verhoeff.py."""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from agent import i18n
from agent.api import responses
from hardware.printer.base import PrinterStatus
from sync.wire import verhoeff
from sync.wire.protocol import REJECT_REASONS

ROOT = Path(__file__).resolve().parents[2]
# codes the contract gives the ledger/print branch (agent/api/responses.py on that branch)
CONTRACT_ERRORS = {"disk_full", "ledger_damaged", "ledger_behind", "database_error", "idempotency_key_reused"}
CONTRACT_ALERTS = {
    "disk_low",
    "disk_full",
    "ledger_damaged",
    "ledger_behind",
    "ledger_newer",
    "server_ahead",
    "clock_wrong",
}


def _api_error_codes() -> set[str]:
    """Every literal code the local API's source answers with."""
    codes = {code for _status, code in responses._STATUS.values()} | {"not_ready"}
    pattern = re.compile(r'(?:error\(\s*\d+,\s*|return \d+, )"([a-z_]+)"')
    for path in (ROOT / "agent" / "api").rglob("*.py"):
        codes |= set(pattern.findall(path.read_text(encoding="utf-8")))
    from agent.directory import ReceiptRefused  # noqa: F401 - its codes are written at the raise

    directory_src = (ROOT / "agent" / "directory.py").read_text(encoding="utf-8")
    codes |= set(re.findall(r'ReceiptRefused\(\s*"([a-z_]+)"', directory_src))
    return codes


def test_the_source_scan_finds_the_codes() -> None:
    found = _api_error_codes()
    assert {"invalid_input", "print_failed", "offline_lookup", "unauthorized", "bad_host"} <= found
    assert {"receipt_forged", "receipt_unknown_kiosk", "receipt_malformed"} <= found


@pytest.mark.parametrize("lang", i18n.LANGS)
def test_every_code_has_a_message(lang: str) -> None:
    t = i18n.table(lang)
    assert _api_error_codes() | CONTRACT_ERRORS | {"network", "unknown"} <= set(t["errors"])
    assert set(REJECT_REASONS) | {"unknown"} <= set(t["reasons"])
    assert CONTRACT_ALERTS | {"revoked", "not_enrolled", "tokens_low", "unknown"} <= set(t["alerts"])
    states = set(t["states"])
    assert {f"sync.{s}" for s in ("pending", "sent", "acked", "rejected", "none")} <= states
    assert {f"print.{s}" for s in ("pending", "printed", "failed", "queued", "none")} <= states
    assert {f"printer.{s.value}" for s in PrinterStatus} | {"printer.off"} <= states
    assert {f"lookup.{s}" for s in ("synced", "voided", "unknown")} <= states


def test_both_languages_have_the_same_keys_and_hindi_has_no_english_words() -> None:
    hi, en = i18n.table("hi"), i18n.table("en")
    for part in en:
        assert set(hi[part]) == set(en[part]), part
    allowed = {"QR", "P", "JVVNL", "AVVNL", "JDVVNL", "English"}  # the K-code / token letters, a label
    for part in ("states", "reasons", "errors", "alerts"):
        for key, text in hi[part].items():
            words = set(re.findall(r"[A-Za-z]+", text)) - allowed
            assert not words, (part, key, words)


def test_hindi_reasons_and_alerts_say_what_to_do() -> None:
    for lang in i18n.LANGS:
        for part in ("reasons", "alerts"):
            for key, text in i18n.table(lang)[part].items():
                assert len(text.split(" ")) >= 5 and text.rstrip().endswith(("।", ".")), (lang, key)


@pytest.mark.skipif(not shutil.which("node"), reason="needs node to run the page's JS")
def test_js_verhoeff_matches_python() -> None:
    rng = random.Random(14)
    numbers = [str(rng.randrange(10**n)).zfill(n) for n in range(2, 16) for _ in range(150)]
    numbers += [verhoeff.token_for_serial(rng.randrange(1, 10**10)) for _ in range(500)]
    numbers += [t[:-1] + str((int(t[-1]) + 1) % 10) for t in numbers[-500:]]  # every one a typo
    js = ROOT / "agent" / "api" / "static" / "verhoeff.js"
    script = (
        f"const v = require({json.dumps(str(js))});"
        "const ns = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        "console.log(JSON.stringify(ns.map(n => [v.isValid(n), v.checkDigit(n), v.tokenState(n)])));"
    )
    out = subprocess.run(
        ["node", "-e", script],
        input=json.dumps(numbers),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    for n, (valid, digit, state) in zip(numbers, json.loads(out.stdout), strict=True):
        assert valid == verhoeff.is_valid(n), n
        assert digit == verhoeff.check_digit(n), n
        if len(n) == 11:
            assert state == ("ok" if verhoeff.is_valid(n) else "typo"), n
