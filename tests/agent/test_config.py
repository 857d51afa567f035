from __future__ import annotations

import dataclasses

import pytest

from agent import config
from agent.errors import ConfigError
from tests.conftest import Kiosk


def test_defaults_and_relative_data_dir(kiosk: Kiosk) -> None:
    cfg = kiosk.cfg
    assert cfg.data_dir == (kiosk.root / "data").resolve()
    assert cfg.settings.security.key_source == "file"
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.settings.agent.operator = "x"  # type: ignore[misc]  # frozen


def test_search_order_env_then_cwd(kiosk: Kiosk, tmp_path_factory: pytest.TempPathFactory) -> None:
    other = tmp_path_factory.mktemp("cwd")
    (other / "agent.toml").write_text('[agent]\ndata_dir = "elsewhere"\n')
    assert config.load(env={}, cwd=other).data_dir == (other / "elsewhere").resolve()
    env = {config.ENV_CONFIG: str(kiosk.config_path)}
    assert config.load(env=env, cwd=other).data_dir == kiosk.data_dir.resolve()
    assert config.load(str(other / "agent.toml"), env=env).source == other / "agent.toml"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[agent]\ndata_dri = "x"\n', "[agent] data_dri: unknown setting"),
        ('[printer]\nwidth_dots = "wide"\n', "[printer] width_dots"),
        ("[printer]\nwidth_dots = 500\n", "[printer] width_dots"),
        ("[local_api]\nport = 0\n", "[local_api] port"),
        ("[nosuch]\na = 1\n", "[nosuch]: unknown setting"),
        ("[sync]\ninterval_s = 1.5\n", "[sync] interval_s: must be a whole number"),
        ('[fingerprint]\nrdservice_ports = [11100, "x"]\n', "[fingerprint] rdservice_ports"),
        ('[server]\nurl = "ftp://x"\n', "[server] url: must start with http"),
        ("[agent]\nlog_backups = true\n", "[agent] log_backups"),
        ('[security]\nkey_source = "vault"\n', "[security] key_source"),
        ("[agent\n", "not valid TOML"),
    ],
)
def test_bad_config_is_one_clear_line(kiosk: Kiosk, text: str, expected: str) -> None:
    kiosk.config_path.write_text(text)
    with pytest.raises(ConfigError) as err:
        config.load(str(kiosk.config_path), env={})
    assert expected in err.value.message and str(kiosk.config_path) in err.value.message
    proc = kiosk.run("status")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and expected in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not kiosk.data_dir.exists()


def test_missing_config_file(kiosk: Kiosk) -> None:
    proc = kiosk.run("--config", str(kiosk.root / "nope.toml"), "status")
    assert proc.returncode == 2
    assert "nope.toml: config file not found" in proc.stderr
    env = dict(kiosk.env, KIOSK_AGENT_CONFIG=str(kiosk.root / "gone.toml"))
    with pytest.raises(ConfigError, match="gone.toml"):
        config.load(None, env=env)


def test_repo_agent_toml_lists_every_setting_and_is_valid() -> None:
    import tomllib
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "agent.toml"
    cfg = config.load(str(path), env={})
    raw = tomllib.loads(path.read_text())
    for section, cls in config.SECTIONS.items():
        assert section in raw, section
        for f in dataclasses.fields(cls):
            key = f.name
            assert key in raw[section], f"agent.toml lacks [{section}] {key}"
            assert raw[section][key] == getattr(getattr(cfg.settings, section), key), f"[{section}] {key}"
    assert cfg.settings == config.Settings()  # the file shows the defaults


@pytest.mark.parametrize(
    ("printer", "kind"),
    [
        ("", "none"),
        ('url = "none"', "none"),
        ('url = ""', "none"),
        ('url = "  NONE "', "none"),
        ('url = "socket://192.168.1.50:9100"', "network"),
        ('url = "/dev/ttyUSB0"', "serial"),
        ('url = "COM3"', "serial"),
        ('url = ""\nusb_vid_pid = "0483:5743"', "usb"),
        ('url = "/dev/ttyUSB0"\nusb_vid_pid = "0483:5743"', "usb"),
    ],
)
def test_one_printer_rule(kiosk: Kiosk, printer: str, kind: str) -> None:
    """Whether printing is on, and on what, is decided once, on the validated config."""
    from hardware import open_printer
    from hardware.printer import NullPrinter

    kiosk.config_path.write_text(f'[agent]\ndata_dir = "data"\n[printer]\n{printer}\n')
    p = kiosk.cfg.settings.printer
    assert p.kind == kind and p.enabled is (kind != "none")
    # hardware agrees: what the config calls off is the printer that prints nothing
    assert isinstance(open_printer(p.url, usb_id=p.usb_vid_pid or None), NullPrinter) is (not p.enabled)
