"""One typed Settings object, read from ALERTS_* environment variables and `.env`.

Settings are never read at import time: the CLI and the app factory build one and pass
it down, so tests can run many differently configured apps in one process.
"""

from __future__ import annotations

import os
import secrets
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import AnyHttpUrl, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "ALERTS_"
PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "please-change", "xxx", ""}


class Environment(StrEnum):
    development = "development"
    production = "production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", validate_default=True
    )

    env: Environment = Environment.development
    var_dir: Path = Path("./var")

    database_url: str = "sqlite:///./var/alerts.db"
    #: The catalogue `alerts db upgrade`, `alerts run` and `alerts targets sync` load;
    #: None is the reviewed catalogue shipped with the package.
    catalogue_file: Path | None = None
    public_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8000")
    secret_key: SecretStr | None = None
    admin_token: SecretStr | None = None

    smtp_host: str | None = None
    smtp_port: Annotated[int, Field(ge=1, le=65535)] = 25
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_timeout_seconds: Annotated[float, Field(gt=0)] = 30.0
    mail_from: str = "Target Alerts <alerts@localhost>"

    pubmed_base_url: AnyHttpUrl = AnyHttpUrl("https://eutils.ncbi.nlm.nih.gov/entrez/eutils")
    ncbi_api_key: SecretStr | None = None
    ncbi_email: str | None = None
    ncbi_tool: str = "target-alerts"
    ctgov_base_url: AnyHttpUrl = AnyHttpUrl("https://clinicaltrials.gov/api/v2")

    poll_interval_minutes: Annotated[int, Field(ge=1, le=7 * 24 * 60)] = 60
    initial_lookback_days: Annotated[int, Field(ge=0, le=3650)] = 7
    #: Days a record a catalogue-wide poll fetched and no target matched is kept, so a
    #: new or edited target is back-filled from it without refetching.
    unmatched_retention_days: Annotated[int, Field(ge=0, le=365)] = 14
    digest_check_minutes: Annotated[int, Field(ge=1, le=60)] = 5
    #: The scheduler's metronome: how often it looks for due polls and outbox mail and
    #: writes its heartbeat. Short values are for tests and demos.
    scheduler_tick_seconds: Annotated[int, Field(ge=1, le=3600)] = 60
    lease_seconds: Annotated[int, Field(ge=10, le=24 * 3600)] = 600
    failure_alert_threshold: Annotated[int, Field(ge=1, le=1000)] = 3
    http_timeout_seconds: Annotated[float, Field(gt=0, le=600)] = 30.0
    http_max_retries: Annotated[int, Field(ge=0, le=10)] = 3
    feed_concurrency: Annotated[int, Field(ge=1, le=256)] = 32
    #: Total time one poll of a (source, target) may take, retries and every page
    #: included: a server answering one byte at a time never times a single read out,
    #: so only a total bound ends such a poll. Passing it is a recorded failure.
    poll_deadline_seconds: Annotated[float, Field(gt=0, le=24 * 3600)] = 900.0
    #: Total time one feed may take from its first request to its parsed entries
    #: (redirects and retries included); the target's other feeds go on.
    feed_deadline_seconds: Annotated[float, Field(gt=0, le=24 * 3600)] = 120.0
    max_request_bytes: Annotated[int, Field(ge=1024)] = 1_000_000
    #: Requests to routes that send mail (subscribe, create an alert, request a token)
    #: allowed per client address, and from everyone together, in one window; over
    #: either, 429 with Retry-After. Counted in the database, so they hold across
    #: API processes.
    mail_throttle_window_seconds: Annotated[int, Field(ge=1, le=7 * 24 * 3600)] = 3600
    mail_throttle_per_client: Annotated[int, Field(ge=1)] = 20
    mail_throttle_overall: Annotated[int, Field(ge=1)] = 500
    #: Days a personal API token works after it was mailed.
    api_token_ttl_days: Annotated[int, Field(ge=1, le=3650)] = 90

    @field_validator("database_url")
    @classmethod
    def _normalise_database_url(cls, value: str) -> str:
        if value.startswith("postgresql://"):
            return "postgresql+psycopg://" + value.removeprefix("postgresql://")
        if value.startswith("postgres://"):
            return "postgresql+psycopg://" + value.removeprefix("postgres://")
        if not value.startswith(("sqlite", "postgresql+psycopg://")):
            raise ValueError("must be a sqlite:// or postgresql:// URL")
        return value

    @field_validator("ncbi_tool")
    @classmethod
    def _tool_has_no_spaces(cls, value: str) -> str:
        if not value or any(ch.isspace() for ch in value):
            raise ValueError("must be a non-empty name without spaces")
        return value

    @model_validator(mode="after")
    def _feed_deadline_within_the_poll(self) -> Settings:
        if self.feed_deadline_seconds > self.poll_deadline_seconds:
            raise ValueError(
                "ALERTS_FEED_DEADLINE_SECONDS must not exceed ALERTS_POLL_DEADLINE_SECONDS "
                "(a feed is fetched inside its poll)"
            )
        return self

    @model_validator(mode="after")
    def _secrets_outside_development(self) -> Settings:
        if self.env is Environment.production:
            key = self.secret_key.get_secret_value() if self.secret_key else ""
            if key.lower() in PLACEHOLDER_SECRETS or len(key) < 16:
                raise ValueError(
                    "ALERTS_SECRET_KEY is required outside development "
                    "(at least 16 characters, not a placeholder)"
                )
        return self

    @property
    def public_base(self) -> str:
        """The public URL without a trailing slash, for building links."""
        return str(self.public_url).rstrip("/")

    @property
    def pubmed_base(self) -> str:
        return str(self.pubmed_base_url).rstrip("/")

    @property
    def ctgov_base(self) -> str:
        return str(self.ctgov_base_url).rstrip("/")

    @property
    def mailbox_dir(self) -> Path:
        return self.var_dir / "mailbox"

    @property
    def uses_smtp(self) -> bool:
        return bool(self.smtp_host)

    def signing_key(self) -> str:
        """The key that signs tokens; in development it is generated once into var/."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        return _development_key(self.var_dir.resolve())


@lru_cache(maxsize=8)
def _development_key(var_dir: Path) -> str:
    """Read (or create once) the development key in `var_dir`; read once per process."""
    path = var_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    var_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(key)
    temporary.chmod(0o600)
    try:
        # Two processes starting at once must agree on one key: the first link wins.
        os.link(temporary, path)
    except FileExistsError:
        key = path.read_text().strip()
    finally:
        temporary.unlink(missing_ok=True)
    return key


class SettingsError(Exception):
    """A setting is missing or invalid; the message is one line naming the variable."""


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = first.get("loc") or ()
        name = f"{ENV_PREFIX}{str(loc[0]).upper()}" if loc else "ALERTS_*"
        message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
        if not loc and "ALERTS_" in message:
            raise SettingsError(message) from None
        raise SettingsError(f"invalid setting {name}: {message}") from None
