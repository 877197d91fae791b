"""The deployment files say only what the code can do.

There is no container engine here, so the checks are static: every command a container
runs is a real `alerts` command with options it accepts, every ALERTS_ variable is a
setting, the secrets have no defaults (compose refuses to start without them), and the
settings the compose file produces load in production mode.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from alerts.cli import app
from alerts.config import ENV_PREFIX, Settings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"

ALERTS_SERVICES = ("migrate", "api", "scheduler")
SECRETS = ("ALERTS_SECRET_KEY", "POSTGRES_PASSWORD")
#: What an operator exports before `docker compose up`.
OPERATOR_ENV = {
    "ALERTS_SECRET_KEY": "k" * 48,
    "POSTGRES_PASSWORD": "0123456789abcdef0123456789abcdef",
}

_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:[?-])(?P<arg>[^}]*))?\}")


class MissingVariable(Exception):
    pass


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's `${NAME}`, `${NAME:-default}` and `${NAME:?error}` (unset or empty)."""

    def _one(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        current = env.get(name, "")
        if current:
            return current
        if op == ":?":
            raise MissingVariable(f"{name}: {arg}")
        return arg if op == ":-" else ""

    return _VARIABLE.sub(_one, value.replace("$$", "\0")).replace("\0", "$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _services(compose: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]  # type: ignore[no-any-return]


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def assert_is_an_alerts_command(argv: list[str]) -> None:
    """`argv` runs a leaf `alerts` command with options it accepts."""
    assert argv[0] == "alerts", argv
    result = CliRunner().invoke(app, [*argv[1:], "--help"])
    assert result.exit_code == 0, f"{shlex.join(argv)}: {result.output}"
    assert "Commands" not in result.output, f"{shlex.join(argv)} names a group, not a command"


def test_the_stack_has_its_five_services(compose: dict[str, Any]) -> None:
    assert set(_services(compose)) == {"postgres", "mailpit", "migrate", "api", "scheduler"}


@pytest.mark.parametrize(
    ("service", "argv"),
    [
        ("migrate", ["alerts", "db", "upgrade"]),
        ("api", ["alerts", "serve", "--host", "0.0.0.0", "--port", "8000"]),
        ("scheduler", ["alerts", "scheduler", "--metrics-port", "9100"]),
    ],
)
def test_each_service_runs_a_real_alerts_command(
    compose: dict[str, Any], service: str, argv: list[str]
) -> None:
    command = _services(compose)[service]["command"]
    assert command == argv
    assert_is_an_alerts_command(command)


@pytest.mark.parametrize(
    "argv",
    [["alerts", "serve", "--bogus"], ["alerts", "nope"], ["alerts", "db"]],
    ids=["unknown-option", "unknown-command", "a-group"],
)
def test_the_command_check_catches_what_would_not_run(argv: list[str]) -> None:
    with pytest.raises(AssertionError):
        assert_is_an_alerts_command(argv)


@pytest.mark.parametrize("service", ALERTS_SERVICES)
def test_every_alerts_variable_is_a_setting(compose: dict[str, Any], service: str) -> None:
    environment = _services(compose)[service]["environment"]
    names = [name for name in environment if name.startswith(ENV_PREFIX)]
    unknown = [n for n in names if n.removeprefix(ENV_PREFIX).lower() not in Settings.model_fields]
    assert names and unknown == []
    assert environment["ALERTS_ENV"] == "production"


def test_secrets_have_no_defaults_anywhere() -> None:
    text = COMPOSE.read_text()
    for secret in SECRETS:
        uses = re.findall(r"\$\{" + secret + r"([^}]*)\}", text)
        assert uses, f"{secret} is never used"
        assert all(use.startswith(":?") for use in uses), f"{secret}: {uses}"


@pytest.mark.parametrize("missing", SECRETS)
def test_the_stack_cannot_be_configured_without_a_secret(
    compose: dict[str, Any], missing: str
) -> None:
    env = {k: v for k, v in OPERATOR_ENV.items() if k != missing}
    with pytest.raises(MissingVariable, match=missing):
        for value in _services(compose)["api"]["environment"].values():
            interpolate(str(value), env)


@pytest.mark.parametrize("service", ALERTS_SERVICES)
def test_the_compose_environment_loads_as_production_settings(
    compose: dict[str, Any], service: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in [n for n in os.environ if n.startswith(ENV_PREFIX)]:
        monkeypatch.delenv(name)
    for name, value in _services(compose)[service]["environment"].items():
        monkeypatch.setenv(name, interpolate(str(value), OPERATOR_ENV))
    settings = load_settings()
    assert settings.env.value == "production"
    assert settings.database_url == (
        f"postgresql+psycopg://alerts:{OPERATOR_ENV['POSTGRES_PASSWORD']}@postgres:5432/alerts"
    )
    assert settings.smtp_host == "mailpit" and settings.smtp_port == 1025
    # Even past compose, the settings refuse production without a real key.
    monkeypatch.setenv("ALERTS_SECRET_KEY", "changeme")
    with pytest.raises(SettingsError, match="ALERTS_SECRET_KEY"):
        load_settings()


def test_postgres_credentials_match_the_database_url(compose: dict[str, Any]) -> None:
    postgres = _services(compose)["postgres"]["environment"]
    url = _services(compose)["api"]["environment"]["ALERTS_DATABASE_URL"]
    user, database = postgres["POSTGRES_USER"], postgres["POSTGRES_DB"]
    assert url.startswith(f"postgresql+psycopg://{user}:")
    assert url.endswith(f"@postgres:5432/{database}")


def test_services_start_in_order_and_report_health(compose: dict[str, Any]) -> None:
    services = _services(compose)
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "scheduler"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["postgres"]["condition"] == "service_healthy"
    assert "/healthz" in " ".join(services["api"]["healthcheck"]["test"])
    port = services["scheduler"]["command"][-1]
    assert f":{port}/metrics" in " ".join(services["scheduler"]["healthcheck"]["test"])
    assert services["migrate"]["restart"] == "no"


def test_mailpit_catches_smtp_and_shows_it(compose: dict[str, Any]) -> None:
    mailpit = _services(compose)["mailpit"]
    assert mailpit["image"].startswith("axllent/mailpit")
    assert {"1025:1025", "8025:8025"} <= set(mailpit["ports"])


def test_every_alerts_service_uses_the_image_built_here(compose: dict[str, Any]) -> None:
    for name in ALERTS_SERVICES:
        assert _services(compose)[name]["build"] == "."


def test_dockerfile_builds_a_non_root_image_that_runs_an_alerts_command() -> None:
    instructions = _dockerfile_instructions()
    keywords = [keyword for keyword, _ in instructions]
    args = dict(instructions)  # the last of each instruction
    assert instructions[0] == ("FROM", "python:3.11-slim")
    assert any(k == "RUN" and "pip install ." in a for k, a in instructions)
    user = args["USER"]
    assert user not in {"root", "0"}
    assert keywords.index("USER") > max(i for i, k in enumerate(keywords) if k == "RUN")
    assert args["EXPOSE"] == "8000"
    assert "/healthz" in args["HEALTHCHECK"]
    assert "ENTRYPOINT" not in keywords
    assert_is_an_alerts_command(json.loads(args["CMD"]))


def test_dockerfile_copies_only_what_exists() -> None:
    for keyword, arguments in _dockerfile_instructions():
        if keyword == "COPY" and "--from" not in arguments:
            *sources, _destination = arguments.split()
            missing = [s for s in sources if not (ROOT / s).exists()]
            assert missing == [], f"COPY of missing {missing}"


def test_dockerignore_keeps_local_state_out_of_the_image() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "var", ".env", "tests"} <= ignored


@pytest.mark.slow
def test_the_installed_package_carries_every_file_it_needs(tmp_path: Path) -> None:
    """What `pip install .` in the image gets: every file of the three packages
    (Alembic scripts, templates, static files), not only the Python modules."""
    source = tmp_path / "src"
    source.mkdir()
    shutil.copy(ROOT / "pyproject.toml", source / "pyproject.toml")
    (source / "README.md").write_text("x\n")  # its presence is checked above
    packages = ("alerts", "scheduler", "db")
    for package in packages:
        shutil.copytree(ROOT / package, source / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    subprocess.run(
        [sys.executable, "-c", "from setuptools import setup; setup()", "-q",
         "build_py", "--build-lib", str(tmp_path / "lib")],
        cwd=source, check=True, capture_output=True,
    )
    wanted = {
        str(path.relative_to(source))
        for package in packages for path in (source / package).rglob("*") if path.is_file()
    }
    built = {
        str(path.relative_to(tmp_path / "lib"))
        for path in (tmp_path / "lib").rglob("*") if path.is_file()
    }
    assert wanted - built == set()
    assert {"db/migrations/versions/0001_initial_schema.py", "scheduler/runner.py"} <= built
