"""Choose the mailer from the settings: SMTP when a host is set, else the mailbox."""

from __future__ import annotations

from alerts.config import Settings
from alerts.mail.base import Mailer
from alerts.mail.mailbox import MailboxMailer
from alerts.mail.smtp import LatencyObserver, SmtpMailer


def make_mailer(settings: Settings, *, observe_latency: LatencyObserver | None = None) -> Mailer:
    if settings.smtp_host:
        return SmtpMailer(
            host=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            starttls=settings.smtp_starttls,
            timeout=settings.smtp_timeout_seconds,
            observe_latency=observe_latency,
        )
    return MailboxMailer(settings.mailbox_dir)
