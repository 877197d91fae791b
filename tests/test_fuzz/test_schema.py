"""Schema fuzzing: schemathesis generates requests for every operation of the OpenAPI
document and sends them to a real `alerts serve` on loopback, anonymously, with a
personal token and with the admin token. No answer may be a 5xx, and every answer must
be one the document lists for that operation, in its documented shape.

Sized for CI (FUZZ_EXAMPLES examples per operation, caller and mode, 10 by default); `make
fuzz` runs a longer campaign.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode, checks
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from db.clock import utc_now
from db.models import Alert, ApiToken, Subscriber, Target
from tests.conftest import TEST_SECRET, _copy_database, _drop_database

pytestmark = pytest.mark.slow

ADMIN_TOKEN = "fuzz-admin-token-0123456789abcdef"
PERSONAL_TOKEN = "ta_fuzz-personal-token-0123456789"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10"))
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]
CALLERS = {
    "anonymous": {},
    "personal": {"Authorization": f"Bearer {PERSONAL_TOKEN}"},
    "admin": {"Authorization": f"Bearer {ADMIN_TOKEN}"},
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _seed(url: str) -> None:
    """A verified subscriber with an active alert and a personal token."""
    engine = create_engine(url)
    with Session(engine) as session, session.begin():
        target = session.query(Target).filter_by(slug="her2-exon20").one()
        ann = Subscriber(email="ann@example.org", verified_at=utc_now())
        session.add(ann)
        session.flush()
        session.add(Alert(subscriber_id=ann.id, target_id=target.id, frequency="daily",
                          status="active", activated_at=utc_now()))
        session.add(ApiToken(subscriber_id=ann.id,
                             token_hash=hashlib.sha256(PERSONAL_TOKEN.encode()).hexdigest()))
    engine.dispose()


@pytest.fixture(scope="module")
def base_url(template_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("fuzz")
    url = _copy_database(template_url, f"fuzz{os.getpid()}", directory)
    _seed(url)
    port = _free_port()
    env = {**os.environ, "ALERTS_DATABASE_URL": url, "ALERTS_ADMIN_TOKEN": ADMIN_TOKEN,
           "ALERTS_SECRET_KEY": TEST_SECRET, "ALERTS_VAR_DIR": str(directory / "var"),
           "ALERTS_PUBLIC_URL": f"http://127.0.0.1:{port}", "ALERTS_SMTP_HOST": ""}
    log = directory / "serve.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "alerts.cli", "serve", "--host", "127.0.0.1",
         "--port", str(port)],
        env=env, cwd=directory, stdout=subprocess.DEVNULL, stderr=log.open("wb"),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"alerts serve did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=10)
        _drop_database(url)


@pytest.fixture(scope="module")
def api_schema(base_url: str) -> schemathesis.schemas.BaseSchema:
    return schemathesis.openapi.from_url(f"{base_url}/openapi.json")


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                         ids=["valid", "invalid"])
@pytest.mark.parametrize("caller", CALLERS)
def test_every_answer_is_documented_and_none_is_a_5xx(
    api_schema: schemathesis.schemas.BaseSchema, base_url: str, caller: str,
    mode: GenerationMode,
) -> None:
    operations = sum(1 for _ in api_schema.get_all_operations())

    @given(case=api_schema.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES * operations, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck), database=None)
    def fuzz(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=base_url, headers=CALLERS[caller], checks=CHECKS)

    fuzz()
