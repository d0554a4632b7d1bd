"""The shape every notification channel has, and the error a failed send raises.

A channel is set up once (``start``), sends one delivery at a time (``send``), and is closed (``close``). A send
that fails raises ``DeliveryError`` carrying whether a retry can help and after how long; it never swallows the
failure. The dispatcher (``alerts.channels.dispatch``) owns retries, backoff and the record of what could not be
delivered, so one slow or failing channel never blocks another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from core.contracts.alert import Alert
from core.contracts.incident import Incident
from core.errors import SmartCityError

#: what channels carry: an alert message (machines: MQTT ``alerts/{department}``) or an incident message (people)
Message = Alert | Incident


@dataclass(frozen=True, slots=True)
class Delivery:
    """One alert or incident message for one department through one channel, to one target (a topic, a URL, an
    address)."""

    alert: Message
    department: str
    target: str


class DeliveryError(SmartCityError):
    """The channel could not deliver. ``retry_after`` seconds (None: use the backoff); ``permanent``: do not retry
    (a 4xx answer, an address the server refused)."""

    def __init__(self, message: str, *, retry_after: float | None = None, permanent: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.permanent = permanent


class Channel(Protocol):
    name: str

    async def start(self) -> None: ...

    def targets(self, alert: Message, department: str) -> list[str]:
        """Where this message goes for this department through this channel (none: not at all). People-facing
        channels take incident messages only (one conversation per incident); MQTT takes both."""
        ...

    async def send(self, delivery: Delivery) -> None: ...

    async def close(self) -> None: ...
