"""The RD service simulator as a browser or another client sees it over real HTTP(S): PidOptions
validated with the specification's errCodes, CORS preflight, a throwaway self-signed certificate."""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterator

import pytest
import requests
import urllib3

from hardware.fingerprint.rdservice import PidOptions
from hardware.sim.rdservice import RDServiceSim, check_pid_options


@pytest.fixture(scope="module")
def sim() -> Iterator[RDServiceSim]:
    with RDServiceSim() as s:
        yield s


def opts(**attrs: str) -> str:
    base = {
        "fCount": "1",
        "fType": "2",
        "iCount": "0",
        "pCount": "0",
        "format": "0",
        "pidVer": "2.0",
        "timeout": "10000",
        "env": "P",
        "wadh": "",
        "posh": "UNKNOWN",
    }
    base.update(attrs)
    shown = " ".join(f'{k}="{v}"' for k, v in base.items())
    return f'<?xml version="1.0"?><PidOptions ver="1.0"><Opts {shown}/></PidOptions>'


def capture(sim: RDServiceSim, body: str) -> tuple[int, str]:
    reply = requests.request("CAPTURE", sim.url + "rd/capture", data=body.encode(), timeout=5)
    assert reply.status_code == 200  # device errors travel inside HTTP 200
    found = re.search(r'errCode="(\d+)" errInfo="([^"]*)"', reply.text)
    assert found, reply.text
    return int(found.group(1)), found.group(2)


@pytest.mark.parametrize(
    ("body", "code", "info"),
    [
        ("not xml at all", 100, "Invalid PidOptions input"),
        ('<PidOptions ver="9"><Opts fCount="1" fType="2" pidVer="2.0"/></PidOptions>', 100, "PidOptions"),
        ('<PidOptions ver="1.0"/>', 100, "PidOptions"),
        (opts(format="7"), 190, "format"),
        (opts(format="1"), 210, "Protobuf"),
        (opts(pidVer="9.9"), 150, "pidVer"),
        (opts(fType="5"), 110, "fType"),
        (opts(fCount="0"), 120, "fCount"),
        (opts(fCount="11"), 120, "fCount"),
        (opts(fCount="x"), 120, "fCount"),
        (opts(iCount="q"), 140, "iCount"),
        (opts(iCount="1"), 760, "Iris"),
        (opts(pCount="1"), 100, "PidOptions"),
        (opts(timeout="abc"), 160, "timeout"),
        (opts(timeout="0"), 160, "timeout"),
        (opts(posh="LEFT_NOSE"), 170, "posh"),
        (opts(fCount="2", posh="LEFT_INDEX,LEFT_INDEX"), 170, "posh"),
        (opts(env="X"), 100, "PidOptions"),
        (opts(wadh="not base64 of a hash"), 100, "PidOptions"),
        # the example: every one of these is wrong; format is checked first
        (opts(format="1", pidVer="9.9", timeout="abc", env="X"), 210, "Protobuf"),
    ],
)
def test_invalid_pid_options_get_the_spec_code(sim: RDServiceSim, body: str, code: int, info: str) -> None:
    got_code, got_info = capture(sim, body)
    assert got_code == code and info in got_info


@pytest.mark.parametrize(
    "body",
    [
        opts(),
        opts(fType="0", env="PP", timeout=""),
        opts(fCount="2", posh="LEFT_INDEX,RIGHT_THUMB", env="S"),
        opts(wadh="sgydIC09zzy6f8Lb3xaAqzKquKe9lFcNR9uTvYxFp+A="),
        PidOptions().to_xml(),  # what our client sends by default
    ],
)
def test_valid_pid_options_capture(sim: RDServiceSim, body: str) -> None:
    assert check_pid_options(body) == 0
    assert capture(sim, body) == (0, "Success")


def test_an_entity_in_pid_options_is_refused() -> None:
    body = (
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "2.0">]>'
        '<PidOptions ver="1.0"><Opts pidVer="&e;"/></PidOptions>'
    )
    assert check_pid_options(body) == 100


def test_cors_preflight_as_browsers_need(sim: RDServiceSim) -> None:
    origin = "https://emitra.example"
    reply = requests.options(
        sim.url + "rd/capture",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "CAPTURE",
            "Access-Control-Request-Headers": "content-type",
            "Access-Control-Request-Private-Network": "true",
        },
        timeout=5,
    )
    assert reply.status_code == 200
    assert reply.headers["Access-Control-Allow-Origin"] == origin
    methods = {m.strip() for m in reply.headers["Access-Control-Allow-Methods"].split(",")}
    assert {"RDSERVICE", "DEVICEINFO", "CAPTURE"} <= methods
    assert reply.headers["Access-Control-Allow-Headers"] == "content-type"
    assert reply.headers["Access-Control-Allow-Private-Network"] == "true"
    # and the actual request carries the origin header back too
    actual = requests.request("RDSERVICE", sim.url, headers={"Origin": origin}, timeout=5)
    assert actual.headers["Access-Control-Allow-Origin"] == origin


def test_https_with_a_throwaway_self_signed_certificate() -> None:
    with RDServiceSim(scheme="https") as sim:
        assert sim.url.startswith("https://127.0.0.1:")
        with pytest.raises(requests.exceptions.SSLError):  # not signed by anyone: verification fails
            requests.request("RDSERVICE", sim.url, timeout=5)
        cert = ssl.get_server_certificate((sim.host, sim.port))
        assert "BEGIN CERTIFICATE" in cert
        with pytest.warns(urllib3.exceptions.InsecureRequestWarning):
            reply = requests.request("RDSERVICE", sim.url, timeout=5, verify=False)
        assert 'status="READY"' in reply.text
        # plain http to the https port gets nowhere, and the simulator keeps serving
        with pytest.raises(requests.ConnectionError):
            requests.request("RDSERVICE", sim.url.replace("https", "http"), timeout=5)
        with pytest.warns(urllib3.exceptions.InsecureRequestWarning):
            assert requests.request("RDSERVICE", sim.url, timeout=5, verify=False).status_code == 200
    with RDServiceSim(scheme="https") as again:  # a new certificate each start: nothing kept on disk
        assert ssl.get_server_certificate((again.host, again.port)) != cert
