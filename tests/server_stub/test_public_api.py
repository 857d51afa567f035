"""The package names what others may import."""

from __future__ import annotations

import server_stub


def test_all_is_importable_and_small() -> None:
    assert sorted(server_stub.__all__) == ["ServerConfig", "ServerError", "create_app"]
    for name in server_stub.__all__:
        assert getattr(server_stub, name) is not None


def test_config_env_and_validation() -> None:
    import pytest

    from server_stub.config import ServerConfig
    from server_stub.errors import ConfigError

    cfg = ServerConfig.from_env({"KIOSK_SERVER_DB": "sqlite:///x.db", "KIOSK_SERVER_BLOCK_SIZE": "50"})
    assert cfg.db == "sqlite:///x.db" and cfg.block_size == 50 and cfg.sla_hours == 24
    assert ServerConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ConfigError):
        ServerConfig.from_env({"KIOSK_SERVER_BLOCK_SIZE": "many"})
    with pytest.raises(ConfigError):
        ServerConfig(block_size=0)
