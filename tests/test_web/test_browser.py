"""A subscriber's whole path in a real browser (the system's Chromium, driven by
Playwright), at a phone width and a desktop width: subscribe to a target on `/`, open
the confirmation mail in `/dev/mailbox`, follow its link and press Confirm, change the
frequency, pause, resume, then unsubscribe from the link of a digest. Any console error
(a resource the Content-Security-Policy refuses is one) or uncaught page error fails the
walk.

It runs against `alerts serve` on a free loopback port with a temporary SQLite database
and the local mailbox, as `make run` does. Every step leaves a screenshot: in a pytest
temporary directory, or in $SCREENSHOTS_DIR (`make screenshots` writes
docs/screenshots/). Without Chromium (`apt-get install chromium`; .ci/run installs it)
the tests are skipped and say so; with Chromium they run, and a browser that does not
start is an error.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.fakes.smtp import free_port
from tests.test_scheduler.conftest import ALERTS, service_env

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page

CHROMIUM = os.environ.get("ALERTS_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
#: Flags for a headless browser in a container: no sandbox (no user namespaces), no GPU,
#: and none of the background traffic a first run starts (no network here).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORTS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 800}}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).is_file(),
        reason=f"no Chromium at {CHROMIUM}: `apt-get install chromium` (.ci/run does) "
        "or set ALERTS_TEST_CHROMIUM",
    ),
]


@dataclass
class Service:
    base: str
    env: dict[str, str]
    home: Path

    def command(self, *args: str) -> None:
        """Run an `alerts` command against the service's database; fail with its output."""
        done = subprocess.run([*ALERTS, *args], env=self.env, cwd=self.home,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """`alerts serve` on a free port: temporary SQLite database, local mailbox."""
    home = tmp_path_factory.mktemp("browser")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = service_env(f"sqlite:///{home / 'alerts.db'}", home, public_url=base)
    running = Service(base, env, home)
    running.command("db", "upgrade")
    log_path = home / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [*ALERTS, "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
            cwd=home, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"alerts serve did not start:\n{log_path.read_text()}")
                time.sleep(0.1)
        yield running
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    directory = Path(os.environ.get("SCREENSHOTS_DIR") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@dataclass
class Walk:
    """One browser tab at one width: steps with screenshots, and what went wrong."""

    page: Page
    name: str
    shots: Path
    problems: list[str] = field(default_factory=list)

    def listen(self) -> None:
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.problems.append(f"console error on {self.page.url}: {message.text}")

    def shot(self, step: str) -> None:
        """A screenshot of the whole page; a page wider than the screen (which then
        scrolls sideways) is a problem too."""
        self.page.screenshot(path=self.shots / f"{self.name}-{step}.png", full_page=True)
        wide = self.page.evaluate("document.documentElement.scrollWidth")
        screen = self.page.viewport_size
        if screen and wide > screen["width"]:
            self.problems.append(f"{step} ({self.page.url}) is {wide} px wide on a "
                                 f"{screen['width']} px screen")

    def follow(self, selector: str) -> None:
        """Open the first link matching `selector` in this tab."""
        href = self.page.locator(selector).first.get_attribute("href")
        assert href, f"no link {selector} on {self.page.url}"
        self.page.goto(href if href.startswith("http") else self.page.url + href)

    def heading(self) -> str:
        return self.page.locator("h1").inner_text()


def _open_newest_mail(walk: Walk, base: str, email: str) -> None:
    walk.page.goto(base + "/dev/mailbox")  # newest first
    walk.page.locator("tbody tr", has_text=email).first.locator("a").click()
    walk.page.frame_locator("iframe").locator("body").wait_for()  # the HTML part


@pytest.mark.parametrize("width", list(VIEWPORTS))
def test_subscribe_confirm_manage_and_unsubscribe(
    service: Service, browser: Browser, shots: Path, width: str
) -> None:
    context = browser.new_context(viewport=VIEWPORTS[width], timezone_id="UTC")  # type: ignore[arg-type]
    walk = Walk(context.new_page(), width, shots)
    walk.listen()
    page, email = walk.page, f"{width}@example.org"
    try:
        page.goto(service.base + "/")
        walk.shot("1-subscribe")
        page.get_by_label("Email address").fill(email)
        # The catalogue is searched, as a reader who knows a drug's name would.
        # Enter in the search box searches; the address stays out of the URL.
        page.locator("#q").fill("zongertinib")
        page.locator("#q").press("Enter")
        page.wait_for_load_state()
        walk.shot("1-search")
        assert page.get_by_label("Email address").input_value() == email
        assert "example.org" not in page.url and "zongertinib" not in page.url
        page.locator("#q").fill("zongertinib")
        page.get_by_role("button", name="Search").click()
        assert page.get_by_label("Email address").input_value() == email
        page.get_by_role("checkbox", name="HER2 (ERBB2) exon 20").check()
        page.get_by_label("Daily", exact=True).check()
        page.get_by_label("Send a digest even when there is nothing new").check()
        # Enter in another field subscribes (the script; the button without it).
        page.get_by_label("Email address").press("Enter")
        assert walk.heading() == "Check your inbox"
        walk.shot("2-check-inbox")

        _open_newest_mail(walk, service.base, email)  # the confirmation
        walk.shot("3-confirmation-mail")
        walk.follow('a[href*="/confirm?token="]')
        walk.shot("4-confirm")  # the link shows a form: only its button confirms
        page.get_by_role("button", name="Confirm").click()
        walk.shot("5-confirmed")  # the manage page below shows the alert active

        walk.follow('a[href*="/manage?token="]')
        section = page.locator("section", has=page.locator("h2 .status"))
        assert section.locator(".status").inner_text() == "active"
        walk.shot("6-manage")
        section.get_by_label("Weekly", exact=True).check()
        section.get_by_role("button", name="Save changes").click()
        assert page.get_by_role("status").inner_text() == "Your changes are saved."
        assert section.get_by_label("Weekly", exact=True).is_checked()
        walk.shot("7-saved")
        section.get_by_role("button", name="Pause").click()
        assert section.locator(".status").inner_text() == "paused"
        walk.shot("8-paused")
        section.get_by_role("button", name="Resume").click()
        assert section.locator(".status").inner_text() == "active"

        # A weekly digest on Monday at 08:00 UTC; 2030-01-07 is a Monday.
        service.command("digests", "send", "--now", "2030-01-07T08:30:00Z")
        _open_newest_mail(walk, service.base, email)  # the digest
        # The HTML part is what most readers see: it renders, and (scrolled to, as a reader
        # would) it is painted in the screenshot at a phone's width too.
        html_part = page.locator('iframe[title="HTML part of the message"]')
        html_part.scroll_into_view_if_needed()
        heading = html_part.content_frame.get_by_role("heading", name="HER2 (ERBB2) exon 20")
        assert heading.is_visible()
        walk.shot("9-digest")
        walk.follow('a[href*="/unsubscribe?token="]')
        assert walk.heading() == "Unsubscribe?"
        walk.shot("10-unsubscribe")
        page.get_by_role("button", name="Unsubscribe").click()
        walk.shot("11-unsubscribed")
        page.goto(page.url)  # the same link again: nothing left to end
        assert walk.heading() == "Already unsubscribed"
    finally:
        context.close()
    assert walk.problems == []


def _seed_target_history(service: Service) -> None:
    """Trials of zongertinib, a publication and a news item over the last weeks, with
    markup in every upstream string, straight into the service's database."""
    from datetime import timedelta

    from sqlalchemy import select

    from db.clock import utc_now
    from db.models import Target
    from db.session import make_engine, make_sessionmaker, transaction
    from tests.test_digests.factories import Factory

    engine = make_engine(service.env["ALERTS_DATABASE_URL"])
    evil = '<img src=x onerror=alert(1)> & "quotes"'
    try:
        with transaction(make_sessionmaker(engine)) as session:
            make = Factory(session)
            target = session.scalars(select(Target).where(Target.slug == "her2-exon20")).one()
            now = utc_now()
            for n, (phases, status) in enumerate([(["PHASE1", "PHASE2"], "RECRUITING"),
                                                  (["PHASE3"], "NOT_YET_RECRUITING")]):
                trial = make.item("trial", external_id=f"NCT9100000{n}",
                                  title=f"Zongertinib trial {n} {evil}",
                                  published_at=now - timedelta(weeks=3 * n + 1),
                                  data={"phases": phases, "overall_status": status,
                                        "interventions": ["BI 1810631", evil]})
                make.event(trial, target, at=now - timedelta(weeks=n))
            for kind in ("publication", "news"):
                make.event(make.item(kind, title=f"{kind} {evil}", published_at=now), target,
                           at=now)
    finally:
        engine.dispose()


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_a_targets_page_renders_without_errors(
    service: Service, browser: Browser, shots: Path, viewport: str
) -> None:
    if viewport == "phone":
        _seed_target_history(service)
    context = browser.new_context(viewport=VIEWPORTS[viewport])  # type: ignore[arg-type]
    walk = Walk(context.new_page(), f"target-{viewport}", shots)
    walk.listen()
    try:
        walk.page.goto(service.base + "/targets/her2-exon20")
        assert walk.heading() == "HER2 (ERBB2) exon 20"
        walk.page.locator("svg.chart").wait_for()
        assert walk.page.locator("table.pipeline th", has_text="zongertinib").count() == 1
        walk.shot("1-page")
        walk.page.get_by_text("The numbers per week").click()
        walk.page.get_by_role("link", name="name").click()  # sort the pipeline by name
        walk.shot("2-sorted")
    finally:
        context.close()
    assert not walk.problems, walk.problems
