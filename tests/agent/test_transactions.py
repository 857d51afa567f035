from __future__ import annotations

import base64
import json
import subprocess
import sys
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent import catalog, money, transactions
from agent.errors import InvalidInput, NeedsConnection
from agent.ledger import Ledger
from sync.wire import sealing, verhoeff
from tests.conftest import ELEC, Kiosk

AADHAAR = "234567890124"
assert verhoeff.is_valid(AADHAAR)


def _new(ledger: Ledger, **over: object) -> dict:
    kw = {"service": ELEC["service"], "amount": "100", "operator": "op", "fields": dict(ELEC["fields"])}
    kw.update(over)
    return transactions.create(ledger, transactions.NewTxn(**kw))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"service": "NOPE"}, "unknown service"),
        ({"amount": "-5"}, "negative"),
        ({"amount": "10.005"}, "at most 2 decimals"),
        ({"amount": "1e3"}, "not rupees"),
        ({"amount": "2000000.01"}, "above this service's limit"),
        ({"fields": {"discom": "JVVNL"}}, "needs --field k_number"),
        ({"fields": {**ELEC["fields"], "colour": "red"}}, "has no field of that name"),
        ({"fields": {"discom": "JVVNL", "k_number": "12"}}, "field 'k_number' is not in the expected form"),
        ({"mobile": "12345"}, "mobile number must be 10 digits"),
        ({"mobile": "5876543210"}, "mobile number must be 10 digits"),
        (
            {
                "service": "CASTE_CERT",
                "fields": {"applicant_name": "Sita", "caste": "Jat", "district": "Ajmer"},
                "aadhaar": "234567890123",
            },
            "Aadhaar number is not valid",
        ),
        (
            {
                "service": "CASTE_CERT",
                "fields": {"applicant_name": "Sita", "caste": "Jat", "district": "Ajmer"},
                "aadhaar": AADHAAR,
            },
            "only after this kiosk is enrolled",
        ),
        (
            {"service": "WATER_BILL", "fields": {"consumer_number": "123456"}, "aadhaar": AADHAAR},
            "does not take an Aadhaar",
        ),
    ],
)
def test_invalid_input_writes_nothing(ledger: Ledger, over: dict, message: str) -> None:
    with pytest.raises(InvalidInput) as err:
        _new(ledger, **over)
    assert message in err.value.message
    for typed in (over.get("mobile"), over.get("aadhaar")):
        assert not typed or str(typed) not in err.value.message  # never echo a citizen's number
    assert ledger.count() == 0 and ledger.tokens_remaining() == 100_000


def test_online_only_refused_offline(ledger: Ledger) -> None:
    with pytest.raises(NeedsConnection, match="needs a live connection"):
        _new(
            ledger,
            service="MOBILE_RECHARGE",
            amount="199",
            mobile="9876543210",
            fields={"operator_code": "JIO"},
        )
    assert ledger.count() == 0


def test_aadhaar_is_sealed_to_the_server_key(ledger: Ledger) -> None:
    priv, pub = sealing.new_keypair()
    ledger.set_meta({"server_seal_pub": pub})
    v = _new(
        ledger,
        service="CASTE_CERT",
        amount="0",
        aadhaar="2345 6789 0124",
        fields={"applicant_name": "Sita Devi", "caste": "Jat", "district": "Ajmer"},
    )
    assert v["aadhaar"] == "XXXX XXXX 0124"
    row = ledger.find(v["token"])
    assert AADHAAR not in json.dumps(row)
    assert sealing.open_sealed(priv, row["aadhaar_sealed"]) == AADHAAR
    assert len(base64.b64decode(row["aadhaar_sealed"])) > 44


@pytest.mark.parametrize("queue_print", [False, True])
def test_the_view_of_a_new_sale_is_what_reading_it_back_gives(ledger: Ledger, queue_print: bool) -> None:
    priv, pub = sealing.new_keypair()
    ledger.set_meta({"server_seal_pub": pub})
    elec = transactions.NewTxn(
        ELEC["service"], "120.50", "op1", fields=dict(ELEC["fields"]), mobile="9812345678"
    )
    caste = transactions.NewTxn(
        "CASTE_CERT",
        "0",
        "op1",
        aadhaar="2345 6789 0124",
        fields={"applicant_name": "Sita Devi", "caste": "Jat", "district": "Ajmer"},
    )
    for req in (elec, caste):
        made = transactions.create(ledger, req, queue_print=queue_print)  # built, not read back
        assert made == transactions.view(ledger.find(made["txn_id"]))
        assert made["sync_state"] == "pending" and made["print_state"] == ("pending" if queue_print else None)


def test_cli_txn_new_contract(kiosk: Kiosk) -> None:
    kiosk.run("init", "--dev-leases", check=True)
    proc = kiosk.run(
        "txn",
        "new",
        "--service",
        "ELEC_BILL",
        "--amount",
        "1250.50",
        "--mobile",
        "9876543210",
        "--field",
        "discom=JVVNL",
        "--field",
        "k_number=210412345678",
        "--json",
        check=True,
    )
    doc = json.loads(proc.stdout)
    for key in ("txn_id", "seq", "token", "service", "amount_paise", "fee_paise", "created_at", "hash"):
        assert key in doc
    assert doc["amount_paise"] == 125050 and doc["fee_paise"] == 1000 and doc["mobile"] == "XXXXXX3210"
    bad = kiosk.run("txn", "new", "--service", "ELEC_BILL", "--amount", "abc", "--json")
    assert bad.returncode == 2 and bad.stdout == "" and bad.stderr.count("\n") == 1
    assert (
        kiosk.run("txn", "new", "--service", "ELEC_BILL", "--amount", "1", "--field", "oops").returncode == 2
    )
    listed = kiosk.json("txn", "list")
    assert [d["seq"] for d in listed] == [1] and listed[0]["sync_state"] == "pending"
    assert kiosk.json("txn", "list", "--pending")[0]["token"] == doc["token"]
    shown = kiosk.json("txn", "show", doc["token"])
    assert shown["hash"] == doc["hash"]
    void = kiosk.json("txn", "void", doc["token"], "--reason", "duplicate entry")
    assert void["kind"] == "void" and void["token"] == doc["token"] and void["seq"] == 2
    assert kiosk.run("txn", "show", "99999999999").returncode == 2
    st_ = kiosk.json("status")
    assert st_["kiosk_code"] is None and st_["ledger"]["count"] == 2 and st_["outbox"]["pending"] == 2
    assert st_["tokens"]["remaining"] == 99_999 and st_["ledger"]["head_seq"] == 2
    assert kiosk.json("verify")["ok"] is True


def test_catalog_contract(kiosk: Kiosk) -> None:
    services = kiosk.json("catalog")
    codes = {s["code"] for s in services}
    assert {
        "CASTE_CERT",
        "DOMICILE_CERT",
        "INCOME_CERT",
        "BIRTH_CERT",
        "DEATH_CERT",
        "ELEC_BILL",
        "WATER_BILL",
        "JAN_AADHAAR",
        "SCHOLARSHIP",
        "JOB_APP",
        "MOBILE_RECHARGE",
        "AEPS",
        "BUS_TICKET",
        "PRINT_LAMINATION",
    } <= codes
    cat = catalog.bundled()
    assert "SAMPLE" in cat.note
    for s in services:
        assert {"code", "name_en", "name_hi", "fee_paise", "online_only", "fields"} <= set(s)
        svc = cat.get(s["code"])
        example = {f["name"]: f["example"] for f in s["fields"]}
        assert svc.check_fields(example) == example  # every example passes its validator


def test_commands_need_init(kiosk: Kiosk) -> None:
    proc = kiosk.run("txn", "list")
    assert proc.returncode == 2 and "run kiosk-agent init" in proc.stderr
    assert not (kiosk.data_dir / "ledger.db").exists()


@given(st.text(max_size=14))
def test_amount_parsing_refuses_what_it_should(text: str) -> None:
    try:
        paise = money.parse_rupees(text)
    except InvalidInput:
        return
    d = Decimal(text.strip())
    assert d >= 0 and d == d.quantize(Decimal("0.01")) or d.as_tuple().exponent >= -2  # type: ignore[operator]
    assert paise == int(d * 100) and paise >= 0
    assert text.strip().replace(".", "", 1).isdigit()


@given(st.integers(min_value=0, max_value=10**11 - 1), st.integers(min_value=0, max_value=10**11))
def test_amount_round_trips_and_limit(paise: int, limit: int) -> None:
    text = money.format_rupees(paise)
    if paise > limit:
        with pytest.raises(InvalidInput):
            money.parse_rupees(text, limit_paise=limit)
    elif paise < 10**11:
        assert money.parse_rupees(text, limit_paise=limit) == paise


@given(st.decimals(allow_nan=True, allow_infinity=True, places=None))
def test_amount_never_accepts_negative_or_sub_paisa(d: Decimal) -> None:
    text = str(d)
    try:
        paise = money.parse_rupees(text)
    except InvalidInput:
        return
    assert d.is_finite() and d >= 0 and d * 100 == int(d * 100) and paise == int(d * 100)


def test_an_offline_sale_does_not_load_the_sync_client(kiosk: Kiosk) -> None:
    """`txn new` for a service that works offline never asks the network, so it does not import
    the sync client either (requests and the wire models were half of its start-up)."""
    kiosk.run("init", "--dev-leases", check=True)
    probe = (
        "import sys\n"
        "from agent.cli import main\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "print(sorted({'requests', 'agent.syncing', 'sync.client'} & set(sys.modules)), file=sys.stderr)\n"
    )
    argv = [*kiosk.argv("txn", "new", "--service", "ELEC_BILL", "--amount", "100")][3:]
    argv += [a for k, v in ELEC["fields"].items() for a in ("--field", f"{k}={v}")]
    proc = subprocess.run(
        [sys.executable, "-c", probe, *argv], capture_output=True, text=True, env=kiosk.env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "[]"
