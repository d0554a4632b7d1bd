"""Findings: what the rules engine concludes, one Kafka record per change of a rule's state (topic ``findings``).

The streams emit a finding only when a rule's published state changes (raised, a level up or down, cleared, or a
flag such as ``flapping`` or ``confirmed`` changing), never per reading, so the alerts service (issue 5) turns each
into an alert event without deduplicating storms. The record key is ``key``, so every finding of one alert lands on
one partition, in order.

``id`` is derived from the content (key, event, level, event time), not random: a finding re-emitted after a worker
restart replays the same id, and the alerts service can drop it as already seen.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.contracts.catalogue import Department, Level
from core.contracts.telemetry import SCHEMA_VERSION

FINDINGS_TOPIC: Final = "findings"


class Hazard(StrEnum):
    GAS = "gas"
    WATER = "water"
    FIRE = "fire"
    STRUCTURAL = "structural"
    DEVICE = "device"  # the device itself: offline, flat battery


class FindingEvent(StrEnum):
    RAISED = "raised"  # the condition began (level = its level)
    ESCALATED = "escalated"  # a higher level
    DEESCALATED = "deescalated"  # a lower level, still active
    UPDATED = "updated"  # same level; a flag changed (flapping began or ended, confirmed)
    CLEARED = "cleared"  # the condition ended (level = the level it had)


class Text(BaseModel):
    """User-facing text, Chinese first, English beside it."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    zh: str
    en: str


class Finding(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = SCHEMA_VERSION
    id: str = Field(description="content-derived: the same finding replayed has the same id")
    key: str = Field(description="the alert it belongs to: '{device}:{rule}', 'site:{site}:{rule}'; drill: 'drill:'+")
    event: FindingEvent
    rule: str
    hazard: Hazard
    level: Level = Field(description="the level now; for 'cleared', the level the condition had")
    previous_level: Level | None = None
    active: bool = Field(description="the condition holds now (false only for 'cleared')")
    flapping: bool = False
    confirmed: bool = Field(False, description="corroborated: smoke with heat, two detectors of one site")
    exercise: bool = Field(False, description="from drill readings: never a real event")
    device_id: str | None = Field(None, description="None for a site finding")
    site_id: str | None = None
    site_name: str | None = None
    lat: float | None = None
    lon: float | None = None
    departments: list[Department] = Field(default_factory=list, description="the device's own departments")
    metric: str | None = None
    value: float | bool | None = Field(None, description="the value that decided, e.g. the rise for a rate rule")
    threshold: float | bool | None = None
    window_s: float | None = Field(None, description="the rule's window or hold time, when it has one")
    confirms: list[str] = Field(default_factory=list, description="site findings: the device alert keys behind it")
    ts: int = Field(description="event time (epoch ms) of the reading or check that decided")
    detected_at: int = Field(description="wall-clock epoch ms when the engine decided")
    title: Text


def finding_id(key: str, event: FindingEvent, level: Level, ts: int, flapping: bool) -> str:
    digest = hashlib.blake2b(f"{key}|{event}|{level}|{ts}|{int(flapping)}".encode(), digest_size=10)
    return digest.hexdigest()
