from __future__ import annotations

import pytest

from config.settings import Settings
from core.errors import ConfigError


def test_settings_come_from_the_documented_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h/db")
    monkeypatch.setenv("ALERTMANAGER_TOKEN", "s3cr3t-value-123")
    monkeypatch.setenv("AIOPS_HTTP_PORT", "9000")
    settings = Settings.from_env()
    assert settings.secret("database_url") == "postgresql://u@h/db"
    assert settings.http_port == 9000
    assert "s3cr3t" not in repr(settings) and "s3cr3t" not in str(settings.alertmanager_token)


@pytest.mark.parametrize("value", ["changeme", "<your-token>", "xxxx", "${TOKEN}", "your-token-here", "  "])
def test_placeholder_secrets_are_refused_outside_dev_mode(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("SLACK_SIGNING_SECRET", value)
    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET"):
        Settings.from_env()
    monkeypatch.setenv("AIOPS_DEV_MODE", "1")
    assert Settings.from_env().dev_mode


def test_invalid_number_is_a_config_error_naming_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOPS_HTTP_PORT", "eighty")
    with pytest.raises(ConfigError, match="AIOPS_HTTP_PORT"):
        Settings.from_env()
