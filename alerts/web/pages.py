"""The server-rendered pages: subscribe form, confirmation, manage, unsubscribe.

Plain HTML forms that work without JavaScript. Every form POST is CSRF-checked except
RFC 8058 one-click unsubscribe, whose identity is the opaque token in its URL. A GET
never changes anything: /confirm and /unsubscribe only show what their link would do
and a button, because mail scanners open links; the button's POST does it.

Errors are pages, not JSON: a bad or expired link, a refused form. They are raised
before anything is written, so answering with a page (which commits the request's
empty transaction) loses nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import FormData, QueryParams

from alerts.config import Settings
from alerts.deps import SessionDep, SettingsDep, TargetIndexDep
from alerts.errors import AlertsError, TooManyRequests
from alerts.mail.outbox import MailingSessionDep
from alerts.pagination import MAX_ID
from alerts.subscriptions import repository, service
from alerts.subscriptions.schemas import (
    AlertStatus,
    AlertUpdate,
    Frequency,
    Preferences,
    Weekday,
    normalise_email,
    timezone_names,
)
from alerts.subscriptions.throttle import mail_throttle
from alerts.subscriptions.tokens import InvalidToken, manage_url
from alerts.targets import service as targets
from alerts.targets.search import MAX_QUERY_LENGTH, Entry, IndexCache
from alerts.targets.service import list_targets
from alerts.templating import environment
from alerts.web import csrf
from db.models import Alert, Item, Subscriber, Target

#: What the form shows before anything was entered.
DEFAULT_VALUES: dict[str, Any] = {
    "email": "",
    "targets": [],
    "frequency": "weekly",
    "weekday": "monday",
    "send_hour": "8",
    "timezone": "UTC",
    "max_items": "50",
    "send_when_empty": False,
}

#: Targets the subscribe page lists for a search, and before one (a catalogue this
#: small is listed whole).
SEARCH_RESULTS = 20
FEATURED_TARGETS = 8
#: Targets one form may carry; more is refused before anything is looked up.
MAX_FORM_TARGETS = 100

#: Form messages a person understands, per field (pydantic's speak to programmers).
FIELD_MESSAGES = {
    "frequency": "Choose daily or weekly.",
    "weekday": "Choose a day of the week.",
    "send_hour": "Choose an hour from 0 to 23.",
    "max_items": "Enter a number from 1 to 200.",
    "send_when_empty": "Tick the box or leave it empty.",
}

#: Messages after a manage action, keyed by the `done` query parameter.
DONE_MESSAGES = {
    "saved": "Your changes are saved.",
    "paused": "The alert is paused; nothing is sent for it until you resume it.",
    "resumed": "The alert is active again.",
    "removed": "The alert has ended; nothing more is sent for it.",
    "added": "The alert is added.",
    "added-pending": "We sent you a mail to confirm the new alert.",
    "tokens-revoked": "Your API tokens are revoked; POST /api/v1/tokens mails a new one.",
}


class PageError(Exception):
    """Answer with an error page of this status."""

    def __init__(self, status_code: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.title = title
        self.message = message


class PageRoute(APIRoute):
    """Turns the errors of page handlers into HTML pages instead of JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except InvalidToken as exc:
                return error_page(exc.status_code, "This link does not work", str(exc.detail)
                                  + ". Links in our mails expire or may have been cut by "
                                  "your mail program; start again from the home page.")
            except csrf.CsrfError as exc:
                return error_page(403, "Form refused", f"{exc}. Reload the page and submit "
                                  "the form again.")
            except PageError as exc:
                return error_page(exc.status_code, exc.title, exc.message)
            except RequestValidationError:
                return error_page(422, "This address is damaged", "A part of the link or "
                                  "form is missing or not what the page expects; start "
                                  "again from the link in your mail or the home page.")
            except TooManyRequests as exc:
                headers = exc.headers or {}
                page = error_page(429, "Please wait a little", f"There were {exc.detail}. "
                                  f"Try again in {headers.get('Retry-After', 60)} seconds.")
                page.headers.update(headers)
                return page

        return page_handler


router = APIRouter(route_class=PageRoute, include_in_schema=False)


async def _read_form(request: Request) -> FormData:
    return await request.form()


FormDep = Annotated[FormData, Depends(_read_form)]


# --- rendering -------------------------------------------------------------------------


def render(
    template: str,
    *,
    status_code: int = 200,
    token: csrf.CsrfToken | None = None,
    **context: Any,
) -> HTMLResponse:
    html = environment().get_template(f"web/{template}").render(
        csrf_field=csrf.FIELD_NAME, csrf_token=token.field if token else "", **context
    )
    # Page URLs carry personal tokens: keep them out of Referer headers and caches.
    response = HTMLResponse(
        html,
        status_code=status_code,
        headers={"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"},
    )
    if token is not None:
        token.apply(response)
    return response


def error_page(status_code: int, title: str, message: str) -> HTMLResponse:
    return render("error.html", status_code=status_code, title=title, message=message)


def http_url(value: str | None) -> str | None:
    """`value` if it is an http(s) URL, else None: an upstream link such as
    `javascript:...` must never become an href."""
    if not value:
        return None
    try:
        scheme = urlsplit(value.strip()).scheme.lower()
    except ValueError:
        return None
    return value.strip() if scheme in ("http", "https") else None


def _item_view(item: Item) -> dict[str, Any]:
    return {
        "title": item.title,
        "source": {"pubmed": "PubMed", "ctgov": "ClinicalTrials.gov", "rss": "News"}.get(
            item.source, item.source
        ),
        "date": item.published_at or item.first_seen_at,
        "url": http_url(item.url),
    }


def _choices() -> dict[str, Any]:
    return {
        "frequencies": [f.value for f in Frequency],
        "weekdays": [d.value for d in Weekday],
        "hours": list(range(24)),
        "timezones": timezone_names(),
    }


# --- subscribe -------------------------------------------------------------------------


def _target_view(entry: Entry, matched_on: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"slug": entry.slug, "name": entry.name, "description": entry.description,
            "matched_on": matched_on}


def _subscribe_page(
    request: Request,
    session: Session,
    settings: Settings,
    cache: IndexCache,
    *,
    values: Mapping[str, Any],
    errors: Mapping[str, str],
    status_code: int = 200,
) -> HTMLResponse:
    """The form with the targets of the search `values["q"]` (at most SEARCH_RESULTS),
    or before a search the most followed ones; targets already ticked stay listed and
    ticked whatever the search shows."""
    index = targets.catalogue_index(session, cache)
    query = values["q"] if len(values["q"]) <= MAX_QUERY_LENGTH else ""
    if query.strip():
        hits, total = index.search(query, SEARCH_RESULTS)
        listed = [_target_view(h.entry, h.matched_on) for h in hits]
    elif len(index) <= SEARCH_RESULTS:
        listed = [_target_view(e) for e in index.entries]
        total = len(index)
    else:
        listed = [_target_view(e) for e in
                  targets.featured_targets(session, cache, FEATURED_TARGETS)]
        total = len(index)
    chosen = [s for s in values["targets"] if s in index.by_slug]
    if not chosen and len(index) == 1 and not errors:
        chosen = [index.entries[0].slug]
    shown = {t["slug"] for t in listed}
    return render(
        "subscribe.html",
        status_code=status_code,
        token=csrf.CsrfToken(request, settings),
        query=query.strip(),
        listed=listed,
        kept=[_target_view(index.by_slug[s]) for s in chosen if s not in shown],
        total=total,
        catalogue_size=len(index),
        max_query_length=MAX_QUERY_LENGTH,
        values={**values, "targets": chosen},
        errors=errors,
        **_choices(),
    )


@router.get("/", response_class=HTMLResponse)
def subscribe_form(
    request: Request, session: SessionDep, settings: SettingsDep, index: TargetIndexDep
) -> HTMLResponse:
    """The form; `?q=` searches the catalogue and `?target=` ticks targets (a link may
    carry them). An address in the URL is ignored: the form never puts it there."""
    params = request.query_params
    values = {**DEFAULT_VALUES, "q": params.get("q", ""),
              "targets": _slugs(params)[:MAX_FORM_TARGETS]}
    return _searched(request, session, settings, index, values)


@router.post("/search", response_class=HTMLResponse)
def search_in_form(
    request: Request, form: FormDep, session: SessionDep, settings: SettingsDep,
    index: TargetIndexDep,
) -> HTMLResponse:
    """The form's Search button: the whole form comes here in the body (ticked targets,
    the address and the preferences), so nothing typed or ticked is lost by searching
    and the address never appears in a URL, a history or a server log. Nothing is
    sent or stored."""
    values = {**DEFAULT_VALUES, **_preference_values(form), "email": _text(form, "email"),
              "q": _text(form, "q"), "targets": _slugs(form)[:MAX_FORM_TARGETS]}
    return _searched(request, session, settings, index, values)


def _searched(
    request: Request, session: Session, settings: Settings, index: IndexCache,
    values: dict[str, Any],
) -> HTMLResponse:
    errors: dict[str, str] = {}
    status_code = 200
    if len(values["q"]) > MAX_QUERY_LENGTH:
        errors["q"] = f"Type at most {MAX_QUERY_LENGTH} characters."
        status_code = 422
    return _subscribe_page(request, session, settings, index, values=values, errors=errors,
                           status_code=status_code)


def _text(form: Mapping[str, Any], name: str, default: str = "") -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else default


def _slugs(form: FormData | QueryParams) -> list[str]:
    """The ticked targets, each once, in order."""
    return list(dict.fromkeys(s for s in form.getlist("target") if isinstance(s, str)))


def _preference_values(form: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "frequency": _text(form, "frequency"),
        "weekday": _text(form, "weekday", "monday") or "monday",
        "send_hour": _text(form, "send_hour", "8"),
        "timezone": _text(form, "timezone", "UTC") or "UTC",
        "max_items": _text(form, "max_items", "50") or "50",
        "send_when_empty": _text(form, "send_when_empty") in ("on", "true", "1", "yes"),
    }


def _validate_preferences(
    values: Mapping[str, Any], errors: dict[str, str], model: type[Preferences] = Preferences
) -> Preferences | None:
    try:
        return model.model_validate(
            {name: values[name] for name in Preferences.model_fields}
        )
    except ValidationError as exc:
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else "form"
            message = FIELD_MESSAGES.get(name) or str(error["msg"]).removeprefix("Value error, ")
            errors.setdefault(name, message)
        return None


@router.post("/subscribe", response_class=HTMLResponse, dependencies=[Depends(mail_throttle)])
def subscribe(
    request: Request, form: FormDep, session: MailingSessionDep, settings: SettingsDep,
    index: TargetIndexDep,
) -> HTMLResponse:
    """Pending alerts and one confirmation mail; the same answer for every address."""
    csrf.check(request, settings, _text(form, csrf.FIELD_NAME))
    slugs = _slugs(form)
    values = {"email": _text(form, "email"), "targets": slugs, "q": _text(form, "q"),
              **_preference_values(form)}
    errors: dict[str, str] = {}
    email = ""
    try:
        email = normalise_email(values["email"])
    except ValueError as exc:
        errors["email"] = str(exc)
    chosen = []
    if not slugs:
        errors["target"] = "Choose at least one target."
    elif len(slugs) > MAX_FORM_TARGETS:
        errors["target"] = f"Choose at most {MAX_FORM_TARGETS} targets at a time."
    else:
        known = targets.targets_by_slugs(session, slugs)
        chosen = [known[s] for s in slugs if s in known]
        if len(chosen) != len(slugs):
            errors["target"] = "Choose targets from the list."
    prefs = _validate_preferences(values, errors)
    if errors or prefs is None:
        return _subscribe_page(request, session, settings, index, values=values,
                               errors=errors, status_code=422)
    service.subscribe_from_form(session, settings, email, chosen, prefs)
    return render("check_inbox.html", email=email)


# --- confirm ---------------------------------------------------------------------------


@router.get("/confirm", response_class=HTMLResponse)
def confirm_form(
    request: Request, session: SessionDep, settings: SettingsDep, token: str = ""
) -> HTMLResponse:
    """What the link confirms, and a Confirm button; the GET itself changes nothing."""
    confirmation = service.confirmation_of(session, settings, token)
    return render(
        "confirm.html",
        token=csrf.CsrfToken(request, settings),
        email=confirmation.subscriber.email,
        pending=[a for a in confirmation.alerts if a.status == AlertStatus.pending],
        action_url="/confirm?" + urlencode({"token": token}),
    )


@router.post("/confirm", response_class=HTMLResponse)
def confirm(
    request: Request, form: FormDep, session: SessionDep, settings: SettingsDep,
    token: str = "",
) -> HTMLResponse:
    """The double opt-in click: activates the link's pending alerts, mails nothing,
    and shows the latest items of each."""
    csrf.check(request, settings, _text(form, csrf.FIELD_NAME))
    confirmation = service.confirm(session, settings, token)
    sections = [
        {
            "target": alert.target,
            "status": alert.status,
            "items": [_item_view(i) for i in confirmation.latest.get(alert.target_id, [])],
        }
        for alert in confirmation.alerts
    ]
    return render(
        "confirmed.html",
        email=confirmation.subscriber.email,
        sections=sections,
        activated=len(confirmation.activated),
        manage_link=manage_url(settings, confirmation.subscriber.id),
    )


# --- manage ----------------------------------------------------------------------------


def _manage_page(
    request: Request,
    session: Session,
    settings: Settings,
    subscriber: Subscriber,
    token: str,
    *,
    message: str | None = None,
    error: str | None = None,
    error_alert: int | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    alerts = repository.alerts_of(session, subscriber.id)
    live = [a for a in alerts if a.status != AlertStatus.unsubscribed]
    taken = {a.target_id for a in live}
    if error_alert not in {a.id for a in live}:
        error_alert = None  # shown at the top of the page instead of next to an alert
    return render(
        "manage.html",
        status_code=status_code,
        token=csrf.CsrfToken(request, settings),
        email=subscriber.email,
        action_url="/manage?" + urlencode({"token": token}),
        live=live,
        ended=[a for a in alerts if a.status == AlertStatus.unsubscribed],
        addable=[t for t in list_targets(session) if t.id not in taken],
        defaults=DEFAULT_VALUES,
        message=message,
        error=error,
        error_alert=error_alert,
        **_choices(),
    )


@router.get("/manage", response_class=HTMLResponse)
def manage(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    token: str = "",
    done: str | None = None,  # only a key of DONE_MESSAGES is shown
) -> HTMLResponse:
    subscriber = service.manage_subscriber(session, settings, token)
    return _manage_page(request, session, settings, subscriber, token,
                        message=DONE_MESSAGES.get(done or ""))


@router.post("/manage", response_class=HTMLResponse, response_model=None)
def manage_action(
    request: Request,
    form: FormDep,
    session: MailingSessionDep,
    settings: SettingsDep,
    token: str = "",
) -> HTMLResponse | RedirectResponse:
    """One action per POST (`action` = save, pause, resume, remove, add, revoke-tokens,
    erase), then back to the manage page (303, so reloading does not repeat it). `erase`
    only asks again; `erase-confirmed` erases the address and its history."""
    subscriber = service.manage_subscriber(session, settings, token)
    csrf.check(request, settings, _text(form, csrf.FIELD_NAME))
    action = _text(form, "action")
    if action == "erase":
        return render("erase.html", token=csrf.CsrfToken(request, settings),
                      email=subscriber.email, action_url="/manage?" + urlencode({"token": token}))
    if action == "erase-confirmed":
        email = subscriber.email
        service.erase(session, subscriber)
        return render("erased.html", email=email)
    alert_id: int | None = None
    try:
        if action == "add":
            done = _add(session, settings, subscriber, form)
        elif action == "revoke-tokens":
            service.revoke_all_tokens(session, subscriber)
            done = "tokens-revoked"
        else:
            alert_id = _int_field(form, "alert_id")
            alert = service.owned_alert(session, subscriber, alert_id)
            done = _change(session, alert, action, form)
    except (PageError, AlertsError) as exc:
        session.rollback()
        text = exc.message if isinstance(exc, PageError) else _detail_text(exc.detail)
        status_code = exc.status_code
        return _manage_page(request, session, settings, subscriber, token, error=text,
                            error_alert=alert_id, status_code=status_code)
    return RedirectResponse("/manage?" + urlencode({"token": token, "done": done}), 303)


def _change(session: Session, alert: Alert, action: str, form: FormData) -> str:
    if action == "save":
        errors: dict[str, str] = {}
        values = _preference_values(form)
        prefs = _validate_preferences(values, errors)
        if prefs is None:
            raise PageError(422, "Not saved", " ".join(errors.values()))
        service.update_alert(session, alert, AlertUpdate(**prefs.model_dump()), is_admin=False)
        return "saved"
    if action == "pause":
        service.change_status(alert, AlertStatus.paused, is_admin=False)
        return "paused"
    if action == "resume":
        service.change_status(alert, AlertStatus.active, is_admin=False)
        return "resumed"
    if action == "remove":
        service.end_alert(session, alert)
        return "removed"
    raise PageError(422, "Unknown action", "That button does not exist.")


def _add(session: Session, settings: Settings, subscriber: Subscriber, form: FormData) -> str:
    target = service.find_target(session, _text(form, "target"))
    if target is None:
        raise PageError(422, "Not added", "Choose a target from the list.")
    errors: dict[str, str] = {}
    prefs = _validate_preferences(_preference_values(form), errors)
    if prefs is None:
        raise PageError(422, "Not added", " ".join(errors.values()))
    alert = service.add_alert(session, settings, subscriber, target, prefs)
    return "added" if alert.status == AlertStatus.active else "added-pending"


def _int_field(form: FormData, name: str) -> int:
    """A positive id from the form, within what a row's id can be."""
    value = _text(form, name)
    if not (value.isascii() and value.isdigit() and len(value) <= 19) or not (
        1 <= int(value) <= MAX_ID
    ):
        raise PageError(422, "Not changed", "That alert does not exist.")
    return int(value)


def _detail_text(detail: Any) -> str:
    if isinstance(detail, list):
        return " ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail)
    return str(detail)


# --- unsubscribe -----------------------------------------------------------------------


def _targets(alerts: list[Alert]) -> list[Target]:
    return [a.target for a in alerts]


@router.get("/unsubscribe", response_class=HTMLResponse)
def unsubscribe_form(session: SessionDep, settings: SettingsDep, token: str = "") -> HTMLResponse:
    """What the link would end, and a button; the GET itself changes nothing."""
    alerts = service.alerts_of_unsubscribe_link(session, settings, token)
    return render(
        "unsubscribe.html",
        alerts=alerts,
        live=[a for a in alerts if a.status != AlertStatus.unsubscribed],
        action_url="/unsubscribe?" + urlencode({"token": token}),
    )


@router.post("/unsubscribe", response_class=HTMLResponse)
def unsubscribe(session: SessionDep, settings: SettingsDep, token: str = "") -> HTMLResponse:
    """RFC 8058 one-click: ends the link's alerts and answers 200 (never a redirect).
    No cookie and no CSRF token: mail clients POST `List-Unsubscribe=One-Click` with
    nothing else, so the signed token in the URL is the whole proof."""
    alerts = service.unsubscribe(session, settings, token)
    manage_link = manage_url(settings, alerts[0].subscriber_id) if alerts else None
    return render("unsubscribed.html", targets=_targets(alerts), manage_link=manage_link)
