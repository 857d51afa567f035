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
    RDServiceBusy,
    RDServiceCaptureFailed,
    RDServiceError,
    RDServiceInternalError,
    RDServiceNotReady,
    RDServiceOptionsRejected,
    RDServiceRejected,
    RDServiceUnsupported,
    ResponseTooLarge,
    TransientHardwareError,
    UnsafeXML,
)
from hardware.fingerprint.rdcodes import error_for
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


# --- http and https discovery ---------------------------------------------------------------------


@pytest.fixture
def https_sim() -> Iterator[RDServiceSim]:
    with RDServiceSim(scheme="https") as s:
        yield s


def test_https_discovery_and_capture(https_sim: RDServiceSim) -> None:
    with requests.Session() as session:
        client = RDServiceClient(session=session, ports=[free_port(), https_sim.port], probe_timeout=1)
        svc = client.discover()
        assert (svc.port, svc.scheme, svc.status) == (https_sim.port, "https", "READY")
        assert client.capture().err_code == 0  # over https, self-signed, from 127.0.0.1
        assert client.info()["scheme"] == "https"
    # it was found after a plain-http probe of the same port failed
    assert [m for m, _, _ in https_sim.requests].count("RDSERVICE") >= 1


def test_http_and_https_services_side_by_side(sim: RDServiceSim, https_sim: RDServiceSim) -> None:
    sim.fail_mode = "not_ready"  # the http one is not ready: the https one is chosen
    client = RDServiceClient(ports=[sim.port, https_sim.port], probe_timeout=1)
    svc = client.discover()
    assert (svc.port, svc.scheme) == (https_sim.port, "https")


def test_self_signed_is_accepted_on_loopback_only() -> None:
    class Recording(requests.Session):
        """Records what each request was asked to verify; reaches no network."""

        def __init__(self) -> None:
            super().__init__()
            self.calls: list[tuple[str, object]] = []

        def request(
            self, method: str | bytes, url: str | bytes, *args: object, **kwargs: object
        ) -> requests.Response:  # type: ignore[override]
            self.calls.append((str(url), kwargs.get("verify")))
            raise requests.ConnectionError("not reached")

    for host, verify in [("127.0.0.1", False), ("127.5.6.7", False), ("localhost", False), ("::1", False),
                         ("10.0.0.5", True), ("rd.example.invalid", True)]:  # fmt: skip
        session = Recording()
        client = RDServiceClient(session=session, host=host, ports=[11100], probe_timeout=0.1)
        with pytest.raises(FingerprintUnavailable):
            client.discover()
        assert [url.split("://")[0] for url, _ in session.calls] == ["http", "https"]
        assert all(v is verify for _, v in session.calls), (host, session.calls)


# --- status, Interface paths, DeviceInfo ---------------------------------------------------------


def test_used_service_is_busy_then_recovers(sim: RDServiceSim, client: RDServiceClient) -> None:
    sim.fail_mode = "used"
    assert client.discover().status == "USED"
    with pytest.raises(RDServiceBusy) as info:
        client.capture()
    assert info.value.transient and "another application" in str(info.value)
    assert all(m != "CAPTURE" for m, _, _ in sim.requests)  # USED: not even asked
    sim.fail_mode = None
    assert client.capture().err_code == 0  # rediscovered READY


@pytest.mark.parametrize(
    "path",
    [
        "/rd/capture",
        "rd/capture",
        "{base}/rd/capture",
        "127.0.0.1:{port}/rd/capture",
        "/127.0.0.1:{port}/rd/capture",
        "http://localhost:{port}/rd/capture",
    ],
)
def test_interface_paths_relative_and_absolute(sim: RDServiceSim, client: RDServiceClient, path: str) -> None:
    sim.capture_path = path.format(base=sim.url.rstrip("/"), port=sim.port)
    assert client.capture().err_code == 0
    assert sim.requests[-1][:2] == ("CAPTURE", "/rd/capture")


def test_interface_path_to_another_host_is_refused(sim: RDServiceSim, client: RDServiceClient) -> None:
    sim.capture_path = "http://203.0.113.9:11100/rd/capture"
    with pytest.raises(FingerprintProtocolError, match="another host"):
        client.capture()
    assert all(m != "CAPTURE" for m, _, _ in sim.requests)


def test_device_info_from_pid_data(sim: RDServiceSim, client: RDServiceClient) -> None:
    result = client.capture()
    assert result.device is not None
    assert (result.device.dp_id, result.device.rds_id, result.device.rds_ver, result.device.mi) == (
        sim.dp_id,
        sim.rds_id,
        sim.rds_ver,
        sim.mi,
    )
    assert result.device.mc  # the device certificate, needed in the auth request
    assert result.summary()["dpId"] == sim.dp_id and result.summary()["dc"] == sim.dc


# --- errCode families -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "cls", "transient", "words"),
    [
        (100, RDServiceOptionsRejected, False, "capture settings"),
        (150, RDServiceOptionsRejected, False, "configuration problem"),
        (210, RDServiceOptionsRejected, False, "Protobuf"),
        (700, CaptureTimeout, True, "place a finger"),
        (710, RDServiceBusy, True, "another application"),
        (720, RDServiceNotReady, True, "USB cable"),
        (730, RDServiceCaptureFailed, True, "Clean the sensor"),
        (740, RDServiceNotReady, True, "re-initialising"),
        (750, RDServiceUnsupported, False, "does not capture fingerprints"),
        (760, RDServiceUnsupported, False, "iris"),
        (770, RDServiceRejected, False, "address"),
        (999, RDServiceInternalError, True, "restart the RD service"),
        (555, RDServiceRejected, False, "report the code"),
    ],
)
def test_each_error_family_has_its_message(
    code: int, cls: type[Exception], transient: bool, words: str
) -> None:
    err = error_for(code, "")
    assert isinstance(err, cls) and isinstance(err, RDServiceError)
    assert err.transient is transient and err.err_code == code
    assert words in str(err) and f"RD {code}" in str(err)
    assert isinstance(err, TransientHardwareError if transient else PermanentHardwareError)


def test_error_info_is_shown_cleaned_and_capped() -> None:
    err = error_for(730, "bad\x00\x1b[31m finger " + "x" * 500)
    assert "\x00" not in str(err) and "\x1b" not in str(err) and len(str(err)) < 400


@pytest.mark.parametrize(
    ("mode", "cls", "code"),
    [
        ("reinit", RDServiceNotReady, 740),
        ("internal", RDServiceInternalError, 999),
        ("busy", RDServiceBusy, 710),
    ],
)
def test_capture_error_modes_over_http(
    sim: RDServiceSim, client: RDServiceClient, mode: str, cls: type[RDServiceError], code: int
) -> None:
    sim.fail_mode = mode
    with pytest.raises(cls) as info:
        client.capture()
    assert info.value.err_code == code


def test_bad_options_are_refused_with_the_spec_code(sim: RDServiceSim, client: RDServiceClient) -> None:
    with pytest.raises(RDServiceOptionsRejected) as info:
        client.capture(PidOptions(pid_ver="9.9"))
    assert info.value.err_code == 150 and "pidVer" in str(info.value)
    assert not info.value.transient
