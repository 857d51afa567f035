"""RD service client against the HTTP simulator on loopback."""

from __future__ import annotations

import pickle
from collections.abc import Iterator

import pytest
import requests

from agent.harness import free_port
from hardware.errors import (
    CaptureTimeout,
    DeviceBusy,
    DeviceNotReady,
    FingerprintProtocolError,
    FingerprintUnavailable,
    PermanentHardwareError,
    RDServiceError,
    ResponseTooLarge,
    TransientHardwareError,
    UnsafeXML,
)
from hardware.fingerprint.rdservice import PidOptions, RDServiceClient, parse_ports
from hardware.sim.rdservice import RDServiceSim


@pytest.fixture
def sim() -> Iterator[RDServiceSim]:
    with RDServiceSim() as s:
        yield s


@pytest.fixture
def client(sim: RDServiceSim) -> Iterator[RDServiceClient]:
    with requests.Session() as session:
        yield RDServiceClient(session=session, ports=[free_port(), sim.port], timeout=2, probe_timeout=1)


def test_parse_ports() -> None:
    assert parse_ports("11100-11103,11110") == [11100, 11101, 11102, 11103, 11110]
    assert parse_ports(None)[0] == 11100 and parse_ports(None)[-1] == 11120
    with pytest.raises(ValueError):
        parse_ports("11120-11100")


def test_discovery_skips_dead_ports(sim: RDServiceSim, client: RDServiceClient) -> None:
    svc = client.discover()
    assert svc.port == sim.port and svc.ready
    assert svc.paths == {"DEVICEINFO": "/rd/info", "CAPTURE": "/rd/capture"}
    assert sim.requests[0][0] == "RDSERVICE"


def test_discovery_ignores_other_http_servers(sim: RDServiceSim) -> None:
    # a plain HTTP server that does not speak RDSERVICE (answers 501) comes first
    with RDServiceSim() as other:
        other.fail_mode = "garbage"
        client = RDServiceClient(ports=[other.port, sim.port])
        assert client.discover().port == sim.port


def test_nothing_found_is_transient() -> None:
    client = RDServiceClient(ports=[free_port()], probe_timeout=0.5)
    with pytest.raises(FingerprintUnavailable, match="No RD service"):
        client.discover()


def test_device_info(sim: RDServiceSim, client: RDServiceClient) -> None:
    info = client.info()
    assert info["port"] == sim.port
    assert info["status"] == "READY"
    assert (info["dpId"], info["rdsId"], info["mi"]) == (sim.dp_id, sim.rds_id, sim.mi)
    assert "mc" not in repr(client.device_info())


def test_capture_ok_hides_the_pid_block(sim: RDServiceSim, client: RDServiceClient) -> None:
    result = client.capture(PidOptions(timeout_ms=5000, env="PP"))
    assert result.err_code == 0 and result.q_score == str(sim.q_score)
    assert "<Data" in result.pid_xml and "<Skey" in result.pid_xml
    shown = repr(result) + str(result) + repr(result.summary())
    assert "Data" not in shown and "Skey" not in shown
    with pytest.raises(TypeError):
        pickle.dumps(result)
    method, path, body = sim.requests[-1]
    assert (method, path) == ("CAPTURE", "/rd/capture")
    assert 'pidVer="2.0"' in body and 'timeout="5000"' in body and 'env="PP"' in body


@pytest.mark.parametrize(
    ("mode", "error", "code"),
    [
        ("busy", DeviceBusy, 710),
        ("timeout", CaptureTimeout, 700),
        ("capture_failed", TransientHardwareError, 730),
    ],
)
def test_capture_errors_inside_http_200(
    sim: RDServiceSim, client: RDServiceClient, mode: str, error: type[Exception], code: int
) -> None:
    client.discover()
    sim.fail_mode = mode
    with pytest.raises(error) as info:
        client.capture()
    assert isinstance(info.value, RDServiceError) and info.value.err_code == code
    assert isinstance(info.value, TransientHardwareError)


def test_not_ready(sim: RDServiceSim, client: RDServiceClient) -> None:
    sim.fail_mode = "not_ready"
    assert client.info()["status"] == "NOTREADY"
    with pytest.raises(DeviceNotReady):
        client.capture()
    sim.fail_mode = None
    assert client.capture().err_code == 0  # rediscovers once the device is ready


def test_not_ready_reported_only_by_capture(sim: RDServiceSim, client: RDServiceClient) -> None:
    client.discover()
    sim.fail_mode = "not_ready"
    with pytest.raises(DeviceNotReady) as info:
        client.capture()
    assert info.value.err_code == 720  # type: ignore[attr-defined]


def test_slow_service_times_out(sim: RDServiceSim) -> None:
    client = RDServiceClient(ports=[sim.port], timeout=0.3, probe_timeout=0.3)
    client.discover()
    sim.fail_mode = "slow"
    sim.delay = 3
    with pytest.raises(FingerprintUnavailable):
        client.capture(PidOptions(timeout_ms=0))


def test_oversized_reply_is_refused(sim: RDServiceSim, client: RDServiceClient) -> None:
    client.discover()
    sim.fail_mode = "oversized"
    with pytest.raises(ResponseTooLarge):
        client.capture()
    assert issubclass(ResponseTooLarge, PermanentHardwareError)


def test_billion_laughs_is_refused(sim: RDServiceSim, client: RDServiceClient) -> None:
    client.discover()
    sim.fail_mode = "entity"
    with pytest.raises(UnsafeXML):
        client.capture()
    with pytest.raises(UnsafeXML):
        client.discover(refresh=True)


def test_garbage_reply_is_a_protocol_error(sim: RDServiceSim, client: RDServiceClient) -> None:
    client.discover()
    sim.fail_mode = "garbage"
    with pytest.raises(FingerprintProtocolError):
        client.capture()
