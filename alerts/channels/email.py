"""E-mail to duty officers through an SMTP relay (aiosmtplib), one message per alert message per address.

Guarantees:

- The subject and body are ``alerts.text``'s: Chinese first, English beside, drills marked. Headers are encoded
  per RFC 2047 and the body is UTF-8, so any mail client shows the Chinese subject correctly.
- Every message of one alert is one thread: ``Message-ID`` is derived from the alert id and ``seq``
  (``<{id}.{seq}@{sender domain}>``, the same on every retry and for every recipient), and messages after the
  first carry ``In-Reply-To`` and ``References`` naming the first one (seq 1), so clients group raised, escalated,
  acknowledged and cleared together even when an earlier one was lost.
- ``X-SmartCity-*`` headers (alert id, level, event, exercise) let mail rules filter without parsing the subject;
  red alerts are sent with high importance.
- Failures: connection errors, timeouts and 4xx replies (a greylisting or busy relay) are retryable; 5xx replies
  (an address the server refused, authentication failure, a message refused) are permanent, since a retry would get
  the same answer.

One SMTP connection per message keeps the channel stateless; the dispatcher bounds how many run at once.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Final

import aiosmtplib

from alerts.channels.base import Delivery, DeliveryError, Message
from alerts.contacts import Contacts, SmtpSettings
from alerts.incident_text import incident_body_text, incident_subject
from alerts.text import TZ, body_text, subject
from core.contracts.alert import Alert
from core.contracts.catalogue import Level
from core.contracts.incident import Incident

logger = logging.getLogger(__name__)

_ID_UNSAFE: Final = re.compile(r"[^A-Za-z0-9._-]")


def message_id(alert_id: str, seq: int, domain: str) -> str:
    """``<{alert id}.{seq}@{domain}>``: the same for the same alert message, whoever receives it."""
    return f"<{_ID_UNSAFE.sub('-', alert_id)}.{seq}@{domain}>"


def build_message(alert: Message, to: str, sender: str, console_url: str | None = None) -> EmailMessage:
    """The e-mail for one alert or incident message to one address, threaded on its first message."""
    address = parseaddr(sender)[1]
    domain = address.rpartition("@")[2] or "smartcity.invalid"
    message = EmailMessage()
    message["Subject"] = subject(alert) if isinstance(alert, Alert) else incident_subject(alert)
    message["From"] = sender
    message["To"] = to
    message["Date"] = format_datetime(datetime.fromtimestamp(alert.updated_at / 1000, tz=TZ))
    message["Message-ID"] = message_id(alert.id, alert.seq, domain)
    if alert.seq > 1:
        first = message_id(alert.id, 1, domain)
        message["In-Reply-To"] = first
        message["References"] = first
    message["X-SmartCity-Incident-Id" if isinstance(alert, Incident) else "X-SmartCity-Alert-Id"] = alert.id
    message["X-SmartCity-Level"] = alert.level.value
    message["X-SmartCity-Event"] = alert.event.value
    message["X-SmartCity-Exercise"] = "yes" if alert.exercise else "no"
    if alert.level is Level.RED and not alert.exercise:
        message["Importance"] = "high"
        message["X-Priority"] = "1"
    body = body_text(alert, console_url) if isinstance(alert, Alert) else incident_body_text(alert, console_url)
    message.set_content(body, charset="utf-8")
    return message


class EmailChannel:
    """Delivers alert messages to the department addresses in ``contacts`` through ``contacts.smtp``."""

    name = "email"

    def __init__(self, contacts: Contacts, *, console_url: str | None = None) -> None:
        self._contacts = contacts
        self._console_url = console_url

    async def start(self) -> None:
        smtp = self._contacts.smtp
        if smtp is not None:
            mode = "tls" if smtp.tls else "starttls" if smtp.starttls else "plain"
            logger.info("email channel: relay %s:%d (%s), sender %s", smtp.host, smtp.port, mode, smtp.sender)

    def targets(self, alert: Message, department: str) -> list[str]:
        return [r.to for r in self._contacts.emails(department) if r.accepts(alert)]

    async def send(self, delivery: Delivery) -> None:
        smtp = self._contacts.smtp
        if smtp is None:
            raise DeliveryError("no smtp block in the contacts file", permanent=True)
        message = build_message(delivery.alert, delivery.target, smtp.sender, self._console_url)
        try:
            await self._send(smtp, message, delivery.target)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            detail = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
            raise DeliveryError(
                f"{delivery.target}: refused: {detail}", permanent=all(c >= 500 for c in codes)
            ) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise DeliveryError(f"{delivery.target}: SMTP {exc.code} {exc.message}", permanent=exc.code >= 500) from exc
        except aiosmtplib.SMTPNotSupported as exc:
            raise DeliveryError(f"{delivery.target}: relay {smtp.host}: {exc}", permanent=True) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            # timeouts, refused or dropped connections: the relay may be back soon
            raise DeliveryError(f"{delivery.target}: relay {smtp.host}:{smtp.port}: {exc}") from exc

    async def close(self) -> None:
        return None

    @staticmethod
    async def _send(smtp: SmtpSettings, message: EmailMessage, to: str) -> None:
        await aiosmtplib.send(
            message,
            sender=parseaddr(smtp.sender)[1],
            recipients=[to],
            hostname=smtp.host,
            port=smtp.port,
            username=smtp.username,
            password=smtp.password.get_secret_value() if smtp.password is not None else None,
            use_tls=smtp.tls,
            start_tls=smtp.starttls,
            timeout=smtp.timeout_s,
        )
