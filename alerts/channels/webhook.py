"""HTTP webhooks: signed JSON for integrations, markdown for WeCom (企业微信) and DingTalk (钉钉) group robots.

One ``POST`` per delivery through one shared ``httpx.AsyncClient`` (connection pooling, no redirects followed, each
webhook's own ``timeout_s`` bounding the whole request). What a receiver gets:

``json``
    The alert message exactly as on Kafka and MQTT (``alert.model_dump_json()``), with headers
    ``X-SmartCity-Event`` (the event), ``X-SmartCity-Delivery`` (``{alert id}:{seq}``: the same on every retry, so a
    receiver drops repeats), ``X-SmartCity-Department``, ``X-SmartCity-Timestamp`` (unix seconds) and, when the
    webhook has a ``secret``, ``X-SmartCity-Signature: sha256=<hex>``, the HMAC-SHA256 of ``"{timestamp}.{body}"``
    under the secret (the scheme Stripe uses: the timestamp is signed with the body, so a captured request cannot
    be replayed later). Receivers check it with ``verify_signature`` or the snippet in docs/channels.md, compare in
    constant time, and refuse timestamps older than a few minutes.
``wecom``
    ``{"msgtype": "markdown", "markdown": {"content": ...}}`` to the robot's URL (the key in its query).
``dingtalk``
    ``{"msgtype": "markdown", "markdown": {"title": ..., "text": ...}}``; with a ``secret`` (加签) the URL gets
    ``timestamp`` (ms) and ``sign`` = base64(HMAC-SHA256(key=secret, msg="{timestamp}\\n{secret}")), URL-encoded.

How a failure is classified (``DeliveryError``; the dispatcher retries):

- connection errors and timeouts, HTTP 5xx, 408: retryable; 429 and 503 honour ``Retry-After``;
- any other 4xx and 3xx: permanent (the URL or the payload is wrong; a retry sends the same thing);
- WeCom and DingTalk answer HTTP 200 with ``errcode`` != 0 on failure: rate limits and "system busy" are retryable
  (after 60 s for rate limits: both robots allow 20 messages a minute); errors a retry cannot fix (an invalid key,
  a failed signature, a missing keyword) are permanent; an unknown code is retryable, since giving up on an alert
  is worse than trying again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Final

import httpx

from alerts.channels.base import Delivery, DeliveryError, Message
from alerts.contacts import Contacts, Webhook, WebhookFormat
from alerts.incident_text import incident_body_markdown, incident_subject
from alerts.text import body_markdown, subject
from core.contracts.alert import Alert

logger = logging.getLogger(__name__)

SIGNATURE_HEADER: Final = "X-SmartCity-Signature"
TIMESTAMP_HEADER: Final = "X-SmartCity-Timestamp"
WECOM_MAX_BYTES: Final = 4096  # WeCom refuses markdown content over 4096 bytes (UTF-8)
RATE_LIMIT_WAIT_S: Final = 60.0

# WeCom: -1 system busy (try again later); 45009 API frequency out of limit (20 messages a minute per robot);
# 45033 API concurrency out of limit. Permanent: 93000 invalid webhook URL (key), 40008 invalid message type,
# 40058 invalid parameter, 44004 empty content.
_WECOM_RETRY: Final = frozenset({-1, 45009, 45033})
_WECOM_PERMANENT: Final = frozenset({93000, 40008, 40058, 44004})
# DingTalk: 130101 send too fast (more than 20 a minute); 90030 webhook over limit (quota). Permanent: 310000
# security settings not met (keyword missing, signature mismatch, IP not allowed); 300001 token does not exist.
_DINGTALK_RETRY: Final = frozenset({-1, 130101, 90030})
_DINGTALK_PERMANENT: Final = frozenset({310000, 300001})
_RATE_LIMITS: Final = frozenset({45009, 45033, 130101, 90030})


def sign_body(secret: str, timestamp: int | str, body: bytes) -> str:
    """The ``X-SmartCity-Signature`` value: ``sha256=`` + hex HMAC-SHA256 of ``"{timestamp}.{body}"``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: str,
    timestamp: int | str,
    body: bytes,
    header: str,
    *,
    max_age_s: float | None = None,
    now: float | None = None,
) -> bool:
    """Whether ``header`` is the signature of ``body`` sent at ``timestamp`` (constant-time comparison).

    With ``max_age_s``, a timestamp further than that from ``now`` (default: the clock) also fails: a receiver
    should use about 300 s so a captured request cannot be replayed.
    """
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if max_age_s is not None and abs((time.time() if now is None else now) - sent) > max_age_s:
        return False
    return hmac.compare_digest(sign_body(secret, sent, body).encode(), header.strip().encode())


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's 加签: base64(HMAC-SHA256(key=secret, msg="{timestamp}\\n{secret}")), before URL encoding."""
    mac = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def _truncate_utf8(text: str, limit: int) -> str:
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[: limit - len("…".encode())].decode(errors="ignore") + "…"


def _retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """``Retry-After`` as seconds: a number, or an HTTP date."""
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return None


class WebhookChannel:
    """Delivers alert messages to the webhooks in ``contacts``; one target per configured webhook."""

    name = "webhook"

    def __init__(
        self,
        contacts: Contacts,
        *,
        console_url: str | None = None,
        clock: Callable[[], float] = time.time,
        user_agent: str = "SmartCity-alerts/0.1",
    ) -> None:
        self._contacts = contacts
        self._console_url = console_url
        self._clock = clock
        self._user_agent = user_agent
        self._by_target: dict[str, Webhook] = {w.target: w for w in contacts.all_webhooks()}
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(10.0, connect=5.0),
                limits=httpx.Limits(max_connections=32, max_keepalive_connections=8),
                follow_redirects=False,
                headers={"User-Agent": self._user_agent},
            )
            logger.info("webhook channel started: %d webhooks", len(self._by_target))

    def targets(self, alert: Message, department: str) -> list[str]:
        return [w.target for w in self._contacts.webhooks(department) if w.accepts(alert)]

    async def send(self, delivery: Delivery) -> None:
        if self._client is None:
            raise DeliveryError("webhook channel not started")
        webhook = self._by_target.get(delivery.target)
        if webhook is None:
            raise DeliveryError(f"no webhook configured as {delivery.target}", permanent=True)
        url, body, headers = self._request(webhook, delivery)
        try:
            response = await self._client.post(url, content=body, headers=headers, timeout=webhook.timeout_s)
        except httpx.UnsupportedProtocol as exc:
            raise DeliveryError(f"{delivery.target}: {exc}", permanent=True) from exc
        except httpx.TimeoutException as exc:
            raise DeliveryError(f"{delivery.target}: timed out after {webhook.timeout_s:g} s") from exc
        except httpx.TransportError as exc:
            raise DeliveryError(f"{delivery.target}: {type(exc).__name__}: {exc}") from exc
        self._check(webhook, delivery.target, response)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _request(self, webhook: Webhook, delivery: Delivery) -> tuple[httpx.URL, bytes, dict[str, str]]:
        alert = delivery.alert
        headers = {"Content-Type": "application/json; charset=utf-8"}
        url = httpx.URL(webhook.url)
        if webhook.format is WebhookFormat.JSON:
            body = alert.model_dump_json().encode()
            timestamp = int(self._clock())
            headers |= {
                "X-SmartCity-Kind": "alert" if isinstance(alert, Alert) else "incident",
                "X-SmartCity-Event": alert.event.value,
                "X-SmartCity-Delivery": f"{alert.id}:{alert.seq}",
                "X-SmartCity-Department": delivery.department,
                TIMESTAMP_HEADER: str(timestamp),
            }
            if webhook.secret is not None:
                headers[SIGNATURE_HEADER] = sign_body(webhook.secret.get_secret_value(), timestamp, body)
        elif webhook.format is WebhookFormat.WECOM:
            content = (
                body_markdown(alert, self._console_url, font_colour=True)
                if isinstance(alert, Alert)
                else incident_body_markdown(alert, self._console_url, font_colour=True)
            )
            markdown = {"content": _truncate_utf8(content, WECOM_MAX_BYTES)}
            body = json.dumps({"msgtype": "markdown", "markdown": markdown}, ensure_ascii=False).encode()
        else:
            markdown = (
                {"title": subject(alert), "text": body_markdown(alert, self._console_url)}
                if isinstance(alert, Alert)
                else {"title": incident_subject(alert), "text": incident_body_markdown(alert, self._console_url)}
            )
            body = json.dumps({"msgtype": "markdown", "markdown": markdown}, ensure_ascii=False).encode()
            if webhook.secret is not None:
                timestamp_ms = int(self._clock() * 1000)
                sign = dingtalk_sign(webhook.secret.get_secret_value(), timestamp_ms)
                url = url.copy_merge_params({"timestamp": str(timestamp_ms), "sign": sign})
        return url, body, headers

    def _check(self, webhook: Webhook, target: str, response: httpx.Response) -> None:
        status = response.status_code
        if status in (429, 503):
            wait = _retry_after(response.headers, self._clock())
            raise DeliveryError(f"{target}: HTTP {status}", retry_after=wait)
        if status >= 500 or status == 408:
            raise DeliveryError(f"{target}: HTTP {status}", retry_after=_retry_after(response.headers, self._clock()))
        if status >= 300:
            raise DeliveryError(f"{target}: HTTP {status} {response.reason_phrase}", permanent=True)
        if webhook.format is WebhookFormat.JSON:
            return
        try:
            answer = response.json()
        except ValueError as exc:
            raise DeliveryError(f"{target}: HTTP {status} but not a robot's JSON answer") from exc
        code = answer.get("errcode") if isinstance(answer, dict) else None
        if code == 0:
            return
        message = answer.get("errmsg", "") if isinstance(answer, dict) else ""
        if not isinstance(code, int):
            raise DeliveryError(f"{target}: HTTP {status}, answer without errcode")
        retry, permanent = (
            (_WECOM_RETRY, _WECOM_PERMANENT)
            if webhook.format is WebhookFormat.WECOM
            else (_DINGTALK_RETRY, _DINGTALK_PERMANENT)
        )
        text = f"{target}: {webhook.format.value} errcode {code} {message}".rstrip()
        if code in permanent:
            raise DeliveryError(text, permanent=True)
        if code not in retry:
            logger.warning("%s: unknown %s errcode %s (%s), retrying", target, webhook.format.value, code, message)
        raise DeliveryError(text, retry_after=RATE_LIMIT_WAIT_S if code in _RATE_LIMITS else None)
