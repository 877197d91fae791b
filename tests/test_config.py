"""Settings fail fast with one line naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from alerts.cli import app
from alerts.config import SettingsError, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("ALERTS_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults_match_the_contract() -> None:
    settings = load_settings()
    assert settings.database_url == "sqlite:///./var/alerts.db"
    assert settings.public_base == "http://127.0.0.1:8000"
    assert settings.smtp_port == 25 and settings.smtp_starttls is False and not settings.uses_smtp
    assert settings.mail_from == "Target Alerts <alerts@localhost>"
    assert settings.ncbi_tool == "target-alerts"
    assert settings.poll_interval_minutes == 60 and settings.initial_lookback_days == 7
    assert settings.pubmed_base.endswith("/entrez/eutils")
    assert settings.ctgov_base.endswith("/api/v2")


def test_plain_postgresql_url_means_psycopg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALERTS_DATABASE_URL", "postgresql://u@h/db")
    assert load_settings().database_url == "postgresql+psycopg://u@h/db"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ALERTS_SMTP_PORT", "not-a-port"),
        ("ALERTS_SMTP_PORT", "70000"),
        ("ALERTS_SMTP_STARTTLS", "maybe"),
        ("ALERTS_PUBLIC_URL", "not a url"),
        ("ALERTS_DATABASE_URL", "mysql://x"),
        ("ALERTS_POLL_INTERVAL_MINUTES", "0"),
        ("ALERTS_NCBI_TOOL", "has spaces"),
    ],
)
def test_a_bad_value_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as excinfo:
        load_settings()
    message = str(excinfo.value)
    assert name in message and "\n" not in message


@pytest.mark.parametrize("secret", [None, "changeme", "short"])
def test_production_requires_a_real_secret(
    monkeypatch: pytest.MonkeyPatch, secret: str | None
) -> None:
    monkeypatch.setenv("ALERTS_ENV", "production")
    if secret is not None:
        monkeypatch.setenv("ALERTS_SECRET_KEY", secret)
    with pytest.raises(SettingsError, match="ALERTS_SECRET_KEY"):
        load_settings()


def test_development_generates_the_secret_once(tmp_path: Path) -> None:
    settings = load_settings(var_dir=tmp_path / "var")
    first = settings.signing_key()
    assert len(first) >= 32
    assert load_settings(var_dir=tmp_path / "var").signing_key() == first


def test_the_command_stops_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALERTS_SMTP_PORT", "abc")
    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0
    assert "ALERTS_SMTP_PORT" in result.output
