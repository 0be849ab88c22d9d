"""Settings: environment names, SDK variables, one clear line per bad value."""

from __future__ import annotations

import pytest

from ingest.cli import main
from ingest.errors import ConfigError
from ingest.settings import Settings, iter_fields, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith(("INGEST_", "AIONVISION_")):
            monkeypatch.delenv(name)


def test_nested_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_WORKER__CONCURRENCY", "7")
    monkeypatch.setenv("INGEST_API__TIER", "ENTERPRISE")
    s = load_settings()
    assert s.worker.concurrency == 7
    assert s.api.tier == "ENTERPRISE"
    assert s.files_per_batch() == 50
    assert s.requests_per_minute() == 500


def test_sdk_variables_and_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIONVISION_API_KEY", "aion_sdk_key")
    monkeypatch.setenv("AIONVISION_BASE_URL", "http://127.0.0.1:9/api/v2")
    s = load_settings()
    assert s.api.key is not None and s.api.key.get_secret_value() == "aion_sdk_key"
    assert s.api.base_url == "http://127.0.0.1:9/api/v2"
    monkeypatch.setenv("INGEST_API__KEY", "aion_ingest_key")
    s = load_settings()
    assert s.api.key is not None and s.api.key.get_secret_value() == "aion_ingest_key"


def test_key_is_hidden_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIONVISION_API_KEY", "aion_secret_value_123")
    s = load_settings()
    assert "aion_secret_value_123" not in repr(s)
    assert "aion_secret_value_123" not in str(s.model_dump())


def test_bad_value_is_one_line_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_WORKER__CONCURRENCY", "lots")
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert message.count("\n") == 0
    assert "INGEST_WORKER__CONCURRENCY" in message
    assert "'lots'" in message


def test_unknown_tier_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_API__TIER", "GOLD")
    with pytest.raises(ConfigError, match="INGEST_API__TIER"):
        load_settings()


def test_command_line_reports_bad_setting_without_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("INGEST_API__READ_TIMEOUT", "-1")
    assert main(["settings"]) == 2
    err = capsys.readouterr().err
    assert "INGEST_API__READ_TIMEOUT" in err
    assert "Traceback" not in err


def test_every_field_is_described() -> None:
    rows = iter_fields(Settings)
    assert len(rows) > 30
    assert all(description for _, _, description in rows), [r for r in rows if not r[2]]


def test_batch_files_capped_by_tier(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_API__TIER", "FREE")
    monkeypatch.setenv("INGEST_WORKER__BATCH_FILES", "40")
    assert load_settings().files_per_batch() == 10
