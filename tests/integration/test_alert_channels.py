"""Alert channels against real receivers: an HTTP server (aiohttp) for webhooks and robots, an SMTP server (aiosmtpd).

No Kafka or MQTT is involved: the dispatcher is fed Alert objects directly, and what the receivers got is checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import json
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from alerts.channels.base import Channel, Delivery
from alerts.channels.dispatch import CLOSED, QUEUE_FULL, Dispatcher
from alerts.channels.email import EmailChannel
from alerts.channels.webhook import WebhookChannel, dingtalk_sign, verify_signature
from alerts.contacts import Contacts, parse_contacts
from core.contracts.alert import Alert, AlertEvent
from core.contracts.catalogue import Department
from core.contracts.finding import Text
from core.process import free_port
from tests.unit.alerts.factories import alert

pytestmark = pytest.mark.integration

T0 = 1_763_900_000_000
SECRET = "s3cret-签名"
DING_SECRET = "SECabc123"


def make_alert(seq: int = 1, event: AlertEvent = AlertEvent.RAISED, **overrides: Any) -> Alert:
    return alert(**({"id": "a-7f3c", "seq": seq, "event": event} | overrides))


# --- an HTTP receiver with scripted answers --------------------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON; None: {"errcode": 0, "errmsg": "ok"}
    headers: dict[str, str] = field(default_factory=dict)
    hang_s: float = 0.0


@dataclass
class Hit:
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float


class Receiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.hits: dict[str, list[Hit]] = defaultdict(list)
        self.script: dict[str, list[Reply]] = defaultdict(list)
        self.always: dict[str, Reply] = {}
        self.release = asyncio.Event()

    def url(self, name: str, query: str = "") -> str:
        return f"http://127.0.0.1:{self.port}/hooks/{name}" + (f"?{query}" if query else "")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        body = await request.read()
        self.hits[name].append(Hit(dict(request.query), dict(request.headers), body, time.monotonic()))
        reply = self.script[name].pop(0) if self.script[name] else self.always.get(name, Reply())
        if reply.hang_s:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.release.wait(), reply.hang_s)
        answer = {"errcode": 0, "errmsg": "ok"} if reply.body is None else reply.body
        return web.json_response(answer, status=reply.status, headers=reply.headers)

    async def wait_hits(self, name: str, count: int, timeout: float = 10.0) -> list[Hit]:
        deadline = time.monotonic() + timeout
        while len(self.hits[name]) < count:
            assert time.monotonic() < deadline, f"{name}: {len(self.hits[name])} of {count} requests"
            await asyncio.sleep(0.01)
        return self.hits[name]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rx = Receiver()
    app = web.Application()
    app.router.add_post("/hooks/{name}", rx.handle)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", rx.port).start()
    try:
        yield rx
    finally:
        rx.release.set()
        await runner.cleanup()


# --- an SMTP server collecting messages ------------------------------------------------------------------------


class Mailbox:
    """aiosmtpd handler: refuses ``nobody@`` (550) and ``busy@`` (451), keeps everything else."""

    def __init__(self) -> None:
        self.messages: list[tuple[Envelope, EmailMessage]] = []

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        if address.startswith("busy@"):
            return "451 4.3.2 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content
        assert isinstance(content, bytes)
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((envelope, parsed))
        return "250 Message accepted"

    async def wait(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            assert time.monotonic() < deadline, f"{len(self.messages)} of {count} e-mails"
            await asyncio.sleep(0.01)
        return [m for _, m in self.messages]


@pytest.fixture
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield mailbox, controller.port
    finally:
        controller.stop()


# --- helpers -----------------------------------------------------------------------------------------------------


@dataclass
class Record:
    undelivered: list[tuple[Delivery, str, str, int]] = field(default_factory=list)
    delivered: list[tuple[Delivery, str, float]] = field(default_factory=list)

    async def on_undelivered(self, delivery: Delivery, channel: str, reason: str, attempts: int) -> None:
        self.undelivered.append((delivery, channel, reason, attempts))

    def on_delivered(self, delivery: Delivery, channel: str, seconds: float) -> None:
        self.delivered.append((delivery, channel, seconds))


DispatcherFactory = Callable[..., Awaitable[tuple[Dispatcher, Record]]]


@pytest.fixture
async def dispatcher() -> AsyncIterator[DispatcherFactory]:
    made: list[Dispatcher] = []

    async def make(channels: list[Channel], **options: Any) -> tuple[Dispatcher, Record]:
        record = Record()
        options = {"base_backoff_s": 0.02, "max_backoff_s": 0.1} | options
        d = Dispatcher(channels, on_undelivered=record.on_undelivered, on_delivered=record.on_delivered, **options)
        await d.start()
        made.append(d)
        return d, record

    yield make
    for d in made:
        await d.close(drain_timeout=0)


def contacts(
    webhooks: Sequence[dict[str, Any]] = (), email: Sequence[str] = (), smtp_port: int | None = None
) -> Contacts:
    """Contacts told of every alert message (``per: alert``), as these tests send alerts straight to a channel;
    incident messages are ``test_incident_messages_reach_people_and_alerts_do_not``'s."""
    mine = {"webhooks": [{"per": "alert", **w} for w in webhooks], "email": [{"to": a, "per": "alert"} for a in email]}
    data: dict[str, Any] = {"departments": {"emergency": mine}}
    if smtp_port is not None:
        data["smtp"] = {"host": "127.0.0.1", "port": smtp_port, "starttls": False, "sender": "预警 <alerts@sc.test>"}
    return parse_contacts(data, "test-contacts", {})


# --- webhooks ----------------------------------------------------------------------------------------------------


async def test_json_webhook_is_signed(receiver: Receiver, dispatcher: DispatcherFactory) -> None:
    channel = WebhookChannel(contacts([{"url": receiver.url("json"), "secret": SECRET}]))
    d, record = await dispatcher([channel])
    sent = make_alert()
    d.submit(sent)
    assert await d.drain(10)
    (hit,) = receiver.hits["json"]
    assert Alert.model_validate_json(hit.body) == sent
    assert hit.headers["X-SmartCity-Event"] == "raised"
    assert hit.headers["X-SmartCity-Delivery"] == "a-7f3c:1"
    assert hit.headers["X-SmartCity-Department"] == "emergency"
    stamp, signature = hit.headers["X-SmartCity-Timestamp"], hit.headers["X-SmartCity-Signature"]
    assert signature.startswith("sha256=")
    assert verify_signature(SECRET, stamp, hit.body, signature, max_age_s=300)
    assert not verify_signature(SECRET, stamp, hit.body + b" ", signature)
    assert not verify_signature("other", stamp, hit.body, signature)
    assert not verify_signature(SECRET, int(stamp) - 1000, hit.body, signature)
    assert [(r[0].target, r[1]) for r in record.delivered] == [(channel.targets(sent, "emergency")[0], "webhook")]
    assert record.undelivered == []


async def test_wecom_and_dingtalk_robots(receiver: Receiver, dispatcher: DispatcherFactory) -> None:
    hooks = [
        {"url": receiver.url("wecom", "key=KEY-1"), "format": "wecom"},
        {"url": receiver.url("dingtalk", "access_token=TOKEN-1"), "format": "dingtalk", "secret": DING_SECRET},
    ]
    d, record = await dispatcher([WebhookChannel(contacts(hooks), console_url="http://console.test")])
    d.submit(make_alert())
    assert await d.drain(10)
    assert record.undelivered == []

    (wecom,) = receiver.hits["wecom"]
    assert wecom.query == {"key": "KEY-1"}
    payload = json.loads(wecom.body)
    assert payload["msgtype"] == "markdown"
    content = payload["markdown"]["content"]
    assert "红色预警 RED" in content
    assert "甲烷浓度超过二级报警值" in content
    assert "(http://console.test/?alert=a-7f3c)" in content

    (ding,) = receiver.hits["dingtalk"]
    assert ding.query["access_token"] == "TOKEN-1"
    stamp = int(ding.query["timestamp"])
    assert abs(stamp - time.time() * 1000) < 60_000
    assert ding.query["sign"] == dingtalk_sign(DING_SECRET, stamp)
    body = json.loads(ding.body)
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["title"].startswith("【红色预警 RED】新发 raised")
    assert "坪山燃气站" in body["markdown"]["text"]


async def test_robot_errcodes(receiver: Receiver, dispatcher: DispatcherFactory) -> None:
    receiver.always["dingtalk"] = Reply(body={"errcode": 310000, "errmsg": "sign not match"})
    receiver.script["wecom"] = [Reply(body={"errcode": 45009, "errmsg": "api freq out of limit"})]
    hooks = [
        {"url": receiver.url("wecom", "key=K"), "format": "wecom"},
        {"url": receiver.url("dingtalk", "access_token=T"), "format": "dingtalk", "secret": DING_SECRET},
    ]
    d, record = await dispatcher([WebhookChannel(contacts(hooks))])
    d.submit(make_alert())
    assert await d.drain(10)
    assert len(receiver.hits["wecom"]) == 2  # rate limited, then delivered
    assert len(receiver.hits["dingtalk"]) == 1  # a signature failure is permanent
    ((delivery, channel, reason, attempts),) = record.undelivered
    assert (channel, attempts) == ("webhook", 1)
    assert "310000" in reason
    assert "access_token" not in reason + delivery.target  # robot keys stay out of logs and records


async def test_server_errors_are_retried_until_delivered(receiver: Receiver, dispatcher: DispatcherFactory) -> None:
    receiver.script["flaky"] = [Reply(status=500), Reply(status=502), Reply(status=500)]
    d, record = await dispatcher([WebhookChannel(contacts([{"url": receiver.url("flaky")}]))])
    d.submit(make_alert())
    assert await d.drain(10)
    hits = receiver.hits["flaky"]
    assert len(hits) == 4
    assert {h.headers["X-SmartCity-Delivery"] for h in hits} == {"a-7f3c:1"}  # one id: receivers drop repeats
    assert record.undelivered == []
    assert len(record.delivered) == 1


async def test_always_failing_webhook_is_recorded_undelivered(
    receiver: Receiver, dispatcher: DispatcherFactory
) -> None:
    receiver.always["down"] = Reply(status=500)
    d, record = await dispatcher([WebhookChannel(contacts([{"url": receiver.url("down")}]))], max_attempts=3)
    d.submit(make_alert())
    assert await d.drain(10)
    assert len(receiver.hits["down"]) == 3
    ((delivery, channel, reason, attempts),) = record.undelivered
    assert (channel, attempts, delivery.department) == ("webhook", 3, "emergency")
    assert "HTTP 500" in reason


async def test_retry_after_is_honoured(receiver: Receiver, dispatcher: DispatcherFactory) -> None:
    receiver.script["limited"] = [Reply(status=429, headers={"Retry-After": "1"})]
    d, record = await dispatcher([WebhookChannel(contacts([{"url": receiver.url("limited")}]))], max_backoff_s=5)
    d.submit(make_alert())
    assert await d.drain(10)
    first, second = receiver.hits["limited"]
    assert second.at - first.at >= 0.95  # base backoff is 0.02 s: only Retry-After explains the wait
    assert record.undelivered == []


async def test_client_error_is_permanent(receiver: Receiver, dispatcher: DispatcherFactory) -> None:
    receiver.always["bad"] = Reply(status=400)
    d, record = await dispatcher([WebhookChannel(contacts([{"url": receiver.url("bad")}]))])
    d.submit(make_alert())
    assert await d.drain(10)
    assert len(receiver.hits["bad"]) == 1
    ((_, _, reason, attempts),) = record.undelivered
    assert attempts == 1
    assert "HTTP 400" in reason


async def test_messages_to_one_target_keep_their_order(receiver: Receiver, dispatcher: DispatcherFactory) -> None:
    receiver.script["ordered"] = [Reply(status=503), Reply(status=503)]
    d, record = await dispatcher([WebhookChannel(contacts([{"url": receiver.url("ordered")}]))])
    for seq, event in enumerate([AlertEvent.RAISED, AlertEvent.ESCALATED, AlertEvent.CLEARED], start=1):
        d.submit(make_alert(seq, event))
    assert await d.drain(10)
    order = [h.headers["X-SmartCity-Delivery"] for h in receiver.hits["ordered"]]
    assert order == ["a-7f3c:1", "a-7f3c:1", "a-7f3c:1", "a-7f3c:2", "a-7f3c:3"]
    assert record.undelivered == []


async def test_muted_alert_notifies_nobody(receiver: Receiver, dispatcher: DispatcherFactory) -> None:
    d, record = await dispatcher([WebhookChannel(contacts([{"url": receiver.url("quiet")}]))])
    d.submit(make_alert(silenced_by=["silence-1"], muted_departments=[Department.EMERGENCY]))
    d.submit(make_alert(inhibited_by="a-offline"))
    assert await d.drain(1)
    await asyncio.sleep(0.1)
    assert receiver.hits["quiet"] == []
    assert record.delivered == []
    assert record.undelivered == []


async def test_shared_target_gets_one_message(receiver: Receiver, dispatcher: DispatcherFactory) -> None:
    hook = {"url": receiver.url("shared"), "per": "alert"}
    data = {"departments": {"emergency": {"webhooks": [hook]}, "fire": {"webhooks": [hook]}}}
    d, _ = await dispatcher([WebhookChannel(parse_contacts(data, "test", {}))])
    d.submit(make_alert(departments=[Department.FIRE, Department.EMERGENCY]))
    assert await d.drain(10)
    (hit,) = receiver.hits["shared"]
    assert hit.headers["X-SmartCity-Department"] == "fire"


async def test_full_queue_and_close_record_undelivered(receiver: Receiver, dispatcher: DispatcherFactory) -> None:
    receiver.always["stuck"] = Reply(hang_s=30)
    hook = {"url": receiver.url("stuck"), "timeout_s": 5}
    d, record = await dispatcher([WebhookChannel(contacts([hook]))], max_queue=2)
    for seq in (1, 2, 3):
        d.submit(make_alert(seq))
    await receiver.wait_hits("stuck", 1)
    assert d.pending == {"webhook": 2}
    await asyncio.sleep(0.05)
    assert [(r[0].alert.seq, r[2]) for r in record.undelivered] == [(3, QUEUE_FULL)]
    await d.close(drain_timeout=0)
    assert [(r[0].alert.seq, r[2]) for r in record.undelivered] == [(3, QUEUE_FULL), (1, CLOSED), (2, CLOSED)]


# --- e-mail --------------------------------------------------------------------------------------------------------


async def test_email_threads_an_alert(smtp_server: tuple[Mailbox, int], dispatcher: DispatcherFactory) -> None:
    mailbox, port = smtp_server
    d, record = await dispatcher([EmailChannel(contacts(email=["duty@sc.test"], smtp_port=port))])
    d.submit(make_alert(1, AlertEvent.RAISED))
    d.submit(make_alert(2, AlertEvent.CLEARED, exercise=False))
    assert await d.drain(10)
    first, second = await mailbox.wait(2)
    assert first["Subject"] == "【红色预警 RED】新发 raised: 甲烷浓度超过二级报警值 / Methane above the level-2 alarm"
    assert second["Subject"].startswith("【红色预警 RED】已解除 cleared")
    assert first["Message-ID"] == "<a-7f3c.1@sc.test>"
    assert "In-Reply-To" not in first
    assert second["Message-ID"] == "<a-7f3c.2@sc.test>"
    assert second["In-Reply-To"] == second["References"] == first["Message-ID"]
    assert first["X-SmartCity-Level"] == "red"
    assert first["Importance"] == "high"
    body = first.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "地点 Site: 坪山燃气站 (site-1)" in text
    assert "时间 Time: 2025-11-23 20:13:20" in text
    assert [e.rcpt_tos for e, _ in mailbox.messages] == [["duty@sc.test"], ["duty@sc.test"]]
    assert [e.mail_from for e, _ in mailbox.messages] == ["alerts@sc.test"] * 2
    assert record.undelivered == []


async def test_email_drill_is_marked(smtp_server: tuple[Mailbox, int], dispatcher: DispatcherFactory) -> None:
    mailbox, port = smtp_server
    d, _ = await dispatcher([EmailChannel(contacts(email=["duty@sc.test"], smtp_port=port))])
    drill_title = Text(zh="演练 / DRILL：甲烷浓度超过二级报警值", en="DRILL: Methane above the level-2 alarm")
    d.submit(make_alert(exercise=True, key="drill:gas-1:gas.ch4", title=drill_title))
    assert await d.drain(10)
    (message,) = await mailbox.wait(1)
    assert "演练" in message["Subject"]
    assert message["X-SmartCity-Exercise"] == "yes"
    assert "Importance" not in message


async def test_email_refusals(smtp_server: tuple[Mailbox, int], dispatcher: DispatcherFactory) -> None:
    mailbox, port = smtp_server
    channel = EmailChannel(contacts(email=["nobody@sc.test", "busy@sc.test"], smtp_port=port))
    d, record = await dispatcher([channel], max_attempts=3)
    d.submit(make_alert())
    assert await d.drain(10)
    outcome = {r[0].target: (r[3], r[2]) for r in record.undelivered}
    assert outcome.keys() == {"busy@sc.test", "nobody@sc.test"}
    assert outcome["nobody@sc.test"][0] == 1
    assert "550" in outcome["nobody@sc.test"][1]
    assert outcome["busy@sc.test"][0] == 3
    assert "451" in outcome["busy@sc.test"][1]
    assert mailbox.messages == []


async def test_hanging_webhook_does_not_delay_email(
    receiver: Receiver, smtp_server: tuple[Mailbox, int], dispatcher: DispatcherFactory
) -> None:
    mailbox, port = smtp_server
    receiver.always["hang"] = Reply(hang_s=30)
    book = contacts([{"url": receiver.url("hang"), "timeout_s": 1.0}], email=["duty@sc.test"], smtp_port=port)
    d, record = await dispatcher([WebhookChannel(book), EmailChannel(book)], max_attempts=2)
    started = time.monotonic()
    d.submit(make_alert())
    await mailbox.wait(1, timeout=5)
    while not record.delivered:  # the relay has the message; the client is reading its answer
        await asyncio.sleep(0.005)
    assert time.monotonic() - started < 1.0  # before the webhook's first timeout
    assert record.undelivered == []  # the webhook is still trying
    assert [r[1] for r in record.delivered] == ["email"]
    assert await d.drain(10)
    ((_, channel, reason, attempts),) = record.undelivered
    assert (channel, attempts) == ("webhook", 2)
    assert "timed out" in reason


class BrokenChannel:
    """A channel with a bug: ``send`` raises something other than DeliveryError."""

    name = "broken"

    async def start(self) -> None:
        return None

    def targets(self, alert: Alert, department: str) -> list[str]:
        return ["somewhere"]

    async def send(self, delivery: Delivery) -> None:
        raise RuntimeError("bug in the channel")

    async def close(self) -> None:
        return None


async def test_every_delivery_ends_in_one_callback(receiver: Receiver, dispatcher: DispatcherFactory) -> None:
    d, record = await dispatcher([BrokenChannel(), WebhookChannel(contacts([{"url": receiver.url("fine")}]))])
    assert d.submit(make_alert()) == 2
    assert d.submit(make_alert(2, silenced_by=["s-1"], muted_departments=[Department.EMERGENCY])) == 0
    assert await d.drain(10)
    assert [(r[0].target, r[1]) for r in record.delivered] == [(record.delivered[0][0].target, "webhook")]
    ((delivery, channel, reason, attempts),) = record.undelivered
    assert (delivery.target, channel, attempts) == ("somewhere", "broken", 1)
    assert reason == "channel error: RuntimeError: bug in the channel"
