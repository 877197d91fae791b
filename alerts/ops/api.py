"""Liveness and readiness probes, and the Prometheus scrape endpoint."""

from __future__ import annotations

import threading

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from alerts.ops.metrics import Metrics
from db.migrate import is_current

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    """The database answers and its migrations are current."""
    engine = request.app.state.engine
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        current = is_current(engine)
    except SQLAlchemyError as exc:
        return JSONResponse(
            {"status": "unavailable", "detail": f"database: {type(exc).__name__}"}, 503
        )
    if not current:
        return JSONResponse({"status": "unavailable", "detail": "migrations pending"}, 503)
    return JSONResponse({"status": "ok"})


_metrics_lock = threading.Lock()


def app_metrics(app: FastAPI) -> Metrics:
    """The app's `Metrics` (passed as `create_app(..., metrics=...)` by the CLI so the
    mailer and the embedded scheduler share it), or one made on first use; either way
    it reports the database facts through the app's own session factory."""
    with _metrics_lock:
        metrics: Metrics | None = getattr(app.state, "metrics", None)
        if metrics is None:
            metrics = Metrics()
            app.state.metrics = metrics
        metrics.watch_database(app.state.session_factory, app.state.settings)
    return metrics


@router.get("/metrics", response_class=Response)
def prometheus_metrics(request: Request) -> Response:
    """Prometheus text format: service-wide facts read from the database at scrape time
    (the same from every API process), plus this process's own timings."""
    body, content_type = app_metrics(request.app).render(request.headers.get("accept", ""))
    return Response(body, headers={"Content-Type": content_type})
