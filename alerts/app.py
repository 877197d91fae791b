"""The application factory: settings in, a configured FastAPI app out.

Every response, page or API, carries the security headers of `SecurityHeaders`: a
strict Content-Security-Policy (scripts and styles only from this origin, never framed),
nosniff, no Referer. The web pages' CSS and JavaScript are files under /static for
that reason.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from alerts import __version__
from alerts.config import Settings
from alerts.errors import AlertsError
from alerts.items.json_pages import ItemListFastPath, JsonPages
from alerts.progress.service import DrugNamesCache
from alerts.targets.search import IndexCache
from db.session import make_engine, make_sessionmaker

STATIC_DIR = Path(__file__).parent / "static"

#: Every module that contributes routes exposes `router`; the order is the docs' order.
ROUTER_MODULES = [
    "alerts.ops.api",
    "alerts.targets.api",
    "alerts.items.api",
    "alerts.progress.api",
    "alerts.polling.api",
    "alerts.subscriptions.api",
    "alerts.web.pages",
    "alerts.web.feedback",
    "alerts.web.targets",
    "alerts.web.items",
    "alerts.web.mailbox",
    "alerts.digests.api",
    "alerts.feedback.api",
]


def create_app(
    settings: Settings,
    *,
    engine: Engine | None = None,
    session_factory: sessionmaker[Session] | None = None,
    **state: Any,
) -> FastAPI:
    """Build the app. `engine`/`session_factory` are injectable for tests; extra keyword
    arguments land on `app.state` (e.g. `mailer=`)."""
    engine = engine or make_engine(settings.database_url)
    app = FastAPI(
        title="Target Alerts",
        version=__version__,
        description="Email digests of new publications, trials and news about "
        "drug-discovery targets.",
        lifespan=_lifespan,
    )
    # The item list's PostgreSQL reader opens connections of its own, so it only serves
    # apps whose sessions come from the engine (not tests' injected, rolled-back ones).
    app.state.item_pages = JsonPages.for_engine(engine) if session_factory is None else None
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = session_factory or make_sessionmaker(engine)
    app.state.target_index = IndexCache()  # the catalogue's search index, per process
    app.state.drug_names = DrugNamesCache()  # the target pages' drug names, per process
    for key, value in state.items():
        setattr(app.state, key, value)

    for module_name in ROUTER_MODULES:
        app.include_router(importlib.import_module(module_name).router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    _install_error_handlers(app)
    if app.state.item_pages is not None:  # innermost: inside the two below
        app.add_middleware(ItemListFastPath, pages=app.state.item_pages)  # type: ignore[arg-type]
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)  # type: ignore[arg-type]
    app.add_middleware(SecurityHeaders)  # type: ignore[arg-type]
    return app


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    if app.state.item_pages is not None:
        await app.state.item_pages.close()


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AlertsError)
    async def _alerts_error(_request: Request, exc: AlertsError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": errors}, 422)


class BodySizeLimit:
    """Answer 413 to request bodies over `max_bytes`, declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._too_large(send)
                return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            await self._too_large(send)

    async def _too_large(self, send: Send) -> None:
        response = JSONResponse(
            {"detail": f"request body over {self.max_bytes} bytes"}, status_code=413
        )
        await send(
            {"type": "http.response.start", "status": 413, "headers": response.raw_headers}
        )
        await send({"type": "http.response.body", "body": response.body})


class _BodyTooLarge(Exception):
    pass


#: The policy of every page and API answer: nothing inline, nothing from elsewhere,
#: never in a frame, forms only to this origin.
STRICT_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
#: /docs and /redoc: FastAPI's Swagger UI and ReDoc pages start with an inline script
#: and load their assets from jsDelivr (a CDN; without it these two pages stay blank,
#: /openapi.json works anyway). They carry no personal data.
DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    "font-src https://fonts.gstatic.com; connect-src 'self'; worker-src blob:; "
    "base-uri 'none'; frame-ancestors 'none'"
)
#: /dev/mailbox shows a mail's HTML part in a sandboxed srcdoc frame, which inherits
#: this policy: mails style inline, so inline styles (never scripts) are allowed there.
MAILBOX_CSP = (
    "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
_CSP_BY_PREFIX = (("/docs", DOCS_CSP), ("/redoc", DOCS_CSP), ("/dev/mailbox", MAILBOX_CSP))


def content_security_policy(path: str) -> str:
    for prefix, policy in _CSP_BY_PREFIX:
        if path == prefix or path.startswith(prefix + "/"):
            return policy
    return STRICT_CSP


def _security_headers(policy: str) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-security-policy", policy.encode()),
        (b"x-frame-options", b"DENY"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
    ]


#: The headers of each policy, encoded once rather than per response.
_HEADERS_BY_POLICY = {
    policy: _security_headers(policy)
    for policy in (STRICT_CSP, *(policy for _prefix, policy in _CSP_BY_PREFIX))
}


class SecurityHeaders:
    """Add the security headers to every HTTP response (errors and 413s included),
    keeping any a route set itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = _HEADERS_BY_POLICY[content_security_policy(scope["path"])]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _value in message.get("headers", ())}
                message["headers"] = [
                    *message.get("headers", ()),
                    *((name, value) for name, value in extra if name not in present),
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)
