"""Incidents: the alerts of one hazard event, as one entry and one conversation (issue 21).

An incident groups the alerts of one hazard event (same or nearby sites, one hazard family, close in time; the
alerts service's grouping rules, docs/alerts.md). Its level is its worst open member's, it is ``active`` while any
member is, ``acknowledged`` once every open member is, ``closed`` once every member is, and it carries the union of
its members' departments.

One message per change that matters to a person (opened, a change of level, of the membership summary or of state,
a reminder), not one per member alert: people-facing channels (webhooks, WeCom, DingTalk, e-mail, the console's
sound) and MQTT ``incidents/{department}`` (QoS 1) carry these. The per-alert messages (MQTT ``alerts/{department}``,
Kafka ``alerts``) go on as before, each naming its ``incident_id``.

Like an alert message, every incident message carries the whole state; ``id`` + ``seq`` name one message.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.contracts.catalogue import Department, Level
from core.contracts.finding import Hazard, Text
from core.contracts.telemetry import SCHEMA_VERSION

INCIDENTS_MQTT_TOPIC: Final = "incidents/{department}"
#: members listed in one message at most (the summary counts them all; the API lists every member)
MESSAGE_MEMBERS: Final = 50


class IncidentEvent(StrEnum):
    OPENED = "opened"
    ESCALATED = "escalated"  # a higher level
    DEESCALATED = "deescalated"  # a lower level, still active
    UPDATED = "updated"  # members joined, or their summary changed
    REMINDER = "reminder"  # active, nobody acknowledged: repeated, escalated to more departments
    ACKNOWLEDGED = "acknowledged"  # every open member acknowledged
    CLEARED = "cleared"  # no member active any more
    REACTIVATED = "reactivated"  # a member active again after the incident cleared
    CLOSED = "closed"  # every member closed
    MERGED = "merged"  # an alert linked it to an older incident, which goes on with its members (``merged_into``)


class Member(BaseModel):
    """One member alert as the incident last saw it."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    alert_id: str
    key: str
    level: Level
    hazard: Hazard
    rule: str
    device_id: str | None = None
    site_id: str | None = None
    site_name: str | None = None
    lat: float | None = None
    lon: float | None = None
    departments: list[Department]
    muted_departments: list[Department] = Field(
        default_factory=list, description="departments not notified of this member now (silenced or inhibited)"
    )
    active: bool
    acknowledged: bool
    closed: bool
    opened_at: int
    ended_at: int | None = Field(None, description="epoch ms it stopped being active (cleared or closed)")


class Summary(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    alerts: int = Field(description="member alerts, open and closed")
    active: int = Field(description="members whose condition still holds")
    sites: int
    devices: int
    levels: dict[Level, int] = Field(description="open members by level")


class Area(BaseModel):
    """Where the incident is: a circle around its members (CAP ``circle``), and their hull when they span an area
    (CAP ``polygon``: three or more distinct points; closed, first point repeated last)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    lat: float
    lon: float
    radius_m: float = Field(ge=0)
    polygon: list[tuple[float, float]] = Field(default_factory=list, description="(lat, lon) pairs, WGS84")


class Incident(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = SCHEMA_VERSION
    id: str = Field(description="'inc-' + 16 hex digits")
    seq: int = Field(ge=0, description="this incident's message number, from 1; 0 before its first message")
    event: IncidentEvent
    family: str = Field(description="the grouping family (routing file, incidents.families)")
    hazard: Hazard = Field(description="the hazard of its worst member")
    level: Level = Field(description="its worst open member's level (every member's once all are closed)")
    active: bool
    acknowledged: bool
    closed: bool = False
    exercise: bool = Field(description="a drill's incident: never a real event")
    departments: list[Department] = Field(description="every department of its members, plus escalations'")
    muted_departments: list[Department] = Field(
        default_factory=list, description="departments none of whose members notify now (silenced or inhibited)"
    )
    escalations: int = Field(0, description="reminders sent because nobody acknowledged")
    summary: Summary
    members: list[Member] = Field(description=f"at most {MESSAGE_MEMBERS} in a message, worst first")
    area: Area | None = None
    merged_into: str | None = None
    opened_at: int = Field(description="epoch ms its first member was raised")
    updated_at: int = Field(description="epoch ms of this message")
    title: Text

    @property
    def muted(self) -> bool:
        return set(self.departments) <= set(self.muted_departments)
