"""`alerts digests send`: one summary line, exit 1 with one line for a bad --now."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from alerts.cli import app
from tests.conftest import TEST_SECRET
from tests.test_digests.conftest import Post, readers_with_news

runner = CliRunner()


@pytest.fixture
def env(post: Post, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)  # no stray .env
    return {
        "ALERTS_DATABASE_URL": post.settings.database_url,
        "ALERTS_SMTP_HOST": "127.0.0.1",
        "ALERTS_SMTP_PORT": str(post.smtp.port),
        "ALERTS_SECRET_KEY": TEST_SECRET,
        "ALERTS_PUBLIC_URL": "http://alerts.test",
        "ALERTS_VAR_DIR": str(tmp_path / "var"),
    }


def send(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["digests", "send", *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def test_send_prints_what_went_out_and_a_second_run_sends_nothing(
    post: Post, env: dict[str, str]
) -> None:
    readers_with_news(post, [f"reader{n}@example.org" for n in range(2)])
    with post.seed() as make:
        make.alert(make.subscriber("quiet@example.org"), make.target("kras", "KRAS"))
    code, out, _err = send(env, "--now", "2026-05-01T10:00:00+02:00")
    assert code == 0
    assert out.strip() == (
        "sent 2 digests to 2 addresses (planned 2, empty 1, pending 0, failed 0)")
    code, out, _err = send(env, "--now", "2026-05-01T08:30:00Z", "--frequency", "daily")
    assert (code, out.strip()) == (
        0, "sent 0 digests to 0 addresses (planned 0, empty 0, pending 0, failed 0)")
    assert len(post.mails()) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--now", "yesterday"], "--now must be ISO-8601"),
        (["--now", "2026-05-01T08:00:00"], "--now needs an offset or Z"),
        (["--frequency", "hourly"], "--frequency must be daily or weekly"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(
    post: Post, env: dict[str, str], args: list[str], message: str
) -> None:
    code, out, err = send(env, *args)
    assert code == 1
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert message in err
    assert post.digests() == []


def test_an_unmigrated_database_says_what_to_do(
    env: dict[str, str], tmp_path: Path
) -> None:
    env = {**env, "ALERTS_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}"}
    code, _out, err = send(env, "--now", "2026-05-01T08:00:00Z")
    assert code == 1
    assert "alerts db upgrade" in err


def test_an_address_the_relay_cannot_carry_fails_alone_and_the_run_succeeds(
    post: Post, env: dict[str, str]
) -> None:
    readers_with_news(post, ["reader@example.org", "用户@例子.广告", "user@exämple.com"])
    code, out, _err = send(env, "--now", "2026-05-01T08:00:00Z")
    assert (code, out.strip()) == (
        0, "sent 2 digests to 2 addresses (planned 3, empty 0, pending 0, failed 1)")
    assert sorted(r for m in post.smtp.handler.received for r in m.recipients) == [
        "reader@example.org", "user@xn--exmple-cua.com"]
    assert send(env, "--now", "2026-05-01T08:30:00Z")[:2] == (
        0, "sent 0 digests to 0 addresses (planned 0, empty 0, pending 0, failed 0)\n")


def test_a_relay_refusing_everything_stops_the_run_with_one_clear_line(
    post: Post, env: dict[str, str]
) -> None:
    readers_with_news(post, [f"reader{n}@example.org" for n in range(8)])
    post.smtp.handler.refuse_every_rcpt = "550 5.7.1 relaying denied"
    code, out, err = send(env, "--now", "2026-05-01T08:00:00Z")
    assert code == 1
    assert out.strip() == "sent 0 digests to 0 addresses (planned 8, empty 0, pending 8, failed 0)"
    [line] = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert line == (
        "error: stopped: the SMTP relay took none of 5 messages in a row to different addresses "
        "(last: SMTP 550 for reader4@example.org: 5.7.1 relaying denied); nobody was "
        "marked bounced, and 8 digests stay pending for the next run")
    assert "mail.relay_refusing run=digests" in err  # the log line

    post.smtp.handler.refuse_every_rcpt = None
    code, out, _err = send(env, "--now", "2026-05-01T08:10:00Z")
    assert (code, out.strip()) == (
        0, "sent 8 digests to 8 addresses (planned 0, empty 0, pending 0, failed 0)")
