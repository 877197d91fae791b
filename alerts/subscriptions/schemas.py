"""What goes in and out of the alerts API, and the rules every way in (API, web form,
manage page) shares: one email normalisation, one time-zone check, one set of bounds."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from db.models import Alert
from db.statuses import AlertStatus

MAX_EMAIL_LENGTH = 320


class Frequency(StrEnum):
    daily = "daily"
    weekly = "weekly"


class Weekday(StrEnum):
    monday = "monday"
    tuesday = "tuesday"
    wednesday = "wednesday"
    thursday = "thursday"
    friday = "friday"
    saturday = "saturday"
    sunday = "sunday"


#: Alerts that still exist for their subscriber; a new one for the same target is a
#: duplicate. An `unsubscribed` row is kept for the record and re-used on re-subscription.
LIVE_STATUSES = (AlertStatus.pending, AlertStatus.active, AlertStatus.paused)


def normalise_email(value: str) -> str:
    """The one form of an address stored and compared: syntax checked (no DNS lookup),
    surrounding spaces removed, the whole address lower-cased.

    Lower-casing the local part is not what RFC 5321 promises, but no mail system in
    use distinguishes `Ann@` from `ann@`, and one address must be one subscriber."""
    candidate = value.strip()
    if not candidate:
        raise ValueError("an email address is required")
    if len(candidate) > MAX_EMAIL_LENGTH:
        raise ValueError(f"an email address has at most {MAX_EMAIL_LENGTH} characters")
    try:
        checked = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid email address: {exc}") from None
    return checked.normalized.lower()


def check_timezone(value: str) -> str:
    """An IANA zone name known to this system's tz database, e.g. `Europe/Paris`."""
    name = value.strip()
    # ZoneInfo also opens file paths relative to the tz directory; refuse anything
    # that is not a plain zone key before asking it.
    if not name or name.startswith(("/", ".")) or ".." in name:
        raise ValueError(f"unknown time zone {value!r}: use an IANA name such as Europe/Paris")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"unknown time zone {value!r}: use an IANA name such as Europe/Paris"
        ) from None
    return name


#: The areas of canonical IANA zone names; legacy aliases (US/Eastern, Mexico/General)
#: are still accepted when typed, but not offered.
_ZONE_AREAS = ("Africa/", "America/", "Antarctica/", "Arctic/", "Asia/", "Atlantic/",
               "Australia/", "Europe/", "Indian/", "Pacific/")


def timezone_names() -> list[str]:
    """The zones the forms offer, sorted, UTC first."""
    return ["UTC", *sorted(n for n in available_timezones() if n.startswith(_ZONE_AREAS))]


Email = Annotated[str, Field(max_length=MAX_EMAIL_LENGTH + 20), AfterValidator(normalise_email)]
TimeZoneName = Annotated[str, Field(max_length=64), AfterValidator(check_timezone)]
SendHour = Annotated[int, Field(ge=0, le=23, description="Local hour of delivery, 0-23.")]
MaxItems = Annotated[int, Field(ge=1, le=200, description="Items per alert in one digest.")]


class Preferences(BaseModel):
    """When and how much a subscriber receives for one alert."""

    model_config = ConfigDict(extra="forbid")

    frequency: Frequency
    weekday: Weekday = Weekday.monday
    send_hour: SendHour = 8
    timezone: TimeZoneName = "UTC"
    max_items: MaxItems = 50
    send_when_empty: bool = False


class AlertCreate(Preferences):
    email: Email
    target: Annotated[str, Field(min_length=1, max_length=64, description="A target slug.")]
    confirmed: bool = Field(
        False,
        description="With the admin token: active at once, no confirmation mail. "
        "Ignored for anonymous callers, whose alerts always wait for the link.",
    )


class AlertUpdate(BaseModel):
    """A partial change; fields left out keep their value."""

    model_config = ConfigDict(extra="forbid")

    frequency: Frequency | None = None
    weekday: Weekday | None = None
    send_hour: SendHour | None = None
    timezone: TimeZoneName | None = None
    max_items: MaxItems | None = None
    send_when_empty: bool | None = None
    status: Literal["active", "paused", "unsubscribed"] | None = Field(
        None,
        description="`active` <-> `paused`; `unsubscribed` ends the alert. A pending "
        "alert becomes active only through its confirmation link (or the admin token).",
    )


class AlertOut(BaseModel):
    id: int
    email: str
    target: str
    frequency: Frequency
    weekday: Weekday
    send_hour: int
    timezone: str
    max_items: int
    send_when_empty: bool
    status: AlertStatus
    created_at: datetime
    activated_at: datetime | None

    @classmethod
    def of(cls, alert: Alert) -> AlertOut:
        """The API shape of an alert loaded with its subscriber and target."""
        return cls(
            id=alert.id,
            email=alert.subscriber.email,
            target=alert.target.slug,
            frequency=Frequency(alert.frequency),
            weekday=Weekday(alert.weekday),
            send_hour=alert.send_hour,
            timezone=alert.timezone,
            max_items=alert.max_items,
            send_when_empty=alert.send_when_empty,
            status=AlertStatus(alert.status),
            created_at=alert.created_at,
            activated_at=alert.activated_at,
        )


class AlertPage(BaseModel):
    data: list[AlertOut]
    next_cursor: str | None = Field(None, description="Pass as `?cursor=` for the next page.")


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email


class Accepted(BaseModel):
    detail: str


class SubscriptionAccepted(BaseModel):
    """The anonymous answer to POST /api/v1/alerts, the same whatever the address's
    state: nothing in it says whether the address is subscribed."""

    detail: str
    email: str
    target: str
