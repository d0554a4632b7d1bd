"""Alerts: what duty officers see and act on. One message per change of an alert (the contract in design.md).

Published on MQTT ``alerts/{department}`` (QoS 1) for every department the alert is routed to, on the Kafka topic
``alerts`` (key = alert ``key``), on the console's live stream, and kept in InfluxDB (measurement ``alert_events``).

An alert has two axes: ``active`` (the condition still holds) and ``acknowledged`` (an officer took it). A cleared
alert nobody acknowledged stays open, and visible, until it is acknowledged or closed; it is ``closed`` once it is
both cleared and acknowledged, or when an officer closes it. A new occurrence of the condition after that is a new
alert with a new ``id`` under the same ``key``.

``seq`` counts the alert's messages from 1; with ``id`` it names one message, so a consumer that sees a message twice
(at-least-once delivery) can drop the repeat.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.contracts.catalogue import Department, Level
from core.contracts.finding import Hazard, Text
from core.contracts.telemetry import SCHEMA_VERSION

ALERTS_TOPIC: Final = "alerts"
ALERTS_MQTT_TOPIC: Final = "alerts/{department}"
DRILL_PREFIX: Final = Text(zh="演练", en="DRILL")


class AlertEvent(StrEnum):
    RAISED = "raised"
    ESCALATED = "escalated"  # a higher level
    DEESCALATED = "deescalated"  # a lower level, still active
    REMINDER = "reminder"  # nobody acknowledged yet: repeated, and escalated to more departments; or unmuted
    ACKNOWLEDGED = "acknowledged"
    CLEARED = "cleared"  # the condition ended
    CLOSED = "closed"  # done: cleared and acknowledged, or closed by an officer


class Acknowledgement(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    by: str
    note: str = ""
    at: int = Field(description="epoch ms")


class Alert(BaseModel):
    """The alert as it is after ``event``: every message carries the whole state, so the last one is enough."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = SCHEMA_VERSION
    id: str = Field(description="one occurrence of the condition; a new one after close gets a new id")
    key: str = Field(description="'{device}:{rule}' or 'site:{site}:{rule}'; drills: 'drill:' + key")
    seq: int = Field(ge=1, description="this alert's message number, from 1")
    event: AlertEvent
    level: Level = Field(description="China's warning level: blue IV, yellow III, orange II, red I")
    hazard: Hazard
    rule: str
    device_id: str | None = None
    site_id: str | None = None
    site_name: str | None = None
    lat: float | None = None
    lon: float | None = None
    metric: str | None = None
    value: float | bool | None = None
    threshold: float | bool | None = None
    peak: float | bool | None = Field(
        None,
        description="the value that raised the alert to the highest level it reached (raised or escalated to it); "
        "it stays after the alert clears, when `value` is the one that cleared it. Additive: absent before",
    )
    peak_threshold: float | bool | None = Field(None, description="the threshold that `peak` passed")
    departments: list[Department] = Field(description="every department this alert is routed to now")
    active: bool = Field(description="the condition still holds")
    acknowledged: bool
    acknowledgement: Acknowledgement | None = None
    closed: bool = False
    closed_by: str | None = None
    exercise: bool = Field(description="a drill: never a real event")
    confirmed: bool = False
    flapping: bool = False
    escalations: int = Field(0, description="reminders sent because nobody acknowledged")
    silenced_by: list[str] = Field(default_factory=list, description="ids of the silences muting it now")
    muted_departments: list[Department] = Field(
        default_factory=list,
        description="departments a silence mutes it for now (a department's silence mutes only that department)",
    )
    inhibited_by: str | None = Field(
        None,
        description="id of the alert that makes this one redundant: its device's offline alert, or the "
        "confirmed site alert it is part of",
    )
    confirms: list[str] = Field(default_factory=list, description="site alerts: the device alert keys behind it")
    incident_id: str | None = Field(
        None,
        description="the incident this alert is a member of (core.contracts.incident); it may change once, when an "
        "alert links its incident to an older one (merged). Additive: absent before",
    )
    opened_at: int = Field(description="epoch ms the alert was raised")
    updated_at: int = Field(description="epoch ms of this message")
    ts: int = Field(description="event time (epoch ms) of the reading or check behind the latest change")
    title: Text

    @property
    def muted(self) -> bool:
        """No department is notified (MQTT, webhook, e-mail) while muted; the console still shows it."""
        return self.inhibited_by is not None or set(self.departments) <= set(self.muted_departments)

    @property
    def open(self) -> bool:
        return not self.closed
