"""Silences (maintenance windows) and drill windows: declared through the API, kept on a compacted Kafka topic.

A **silence** mutes notifications (MQTT, webhook, email) of the alerts it matches between ``starts_at`` and
``ends_at``; the alerts are still raised, stored and shown on the console, marked with the silence's id. When a
silence ends while an alert it muted is still active and unacknowledged, officers get a ``reminder``: muting never
loses an alert. A silence whose ``starts_at`` lies ahead is a maintenance window.

Bounds (``alerts.settings``): a silence lasts at most ``SMARTCITY_ALERTS_SILENCE_MAX_S`` (7 days), a department has
at most ``SMARTCITY_ALERTS_SILENCES_PER_DEPARTMENT`` silences not yet ended, and windows that ended more than
``SMARTCITY_ALERTS_WINDOW_RETENTION_S`` ago are dropped (``Windows.ended_before``; the store tombstones them), so the
state stays bounded. Ending a silence early is for the officer who created it, known by ``created_by_id`` (the
officer's stable id, never the display name, which two officers may share), or an administrator.

A **drill window** makes the findings of the devices and sites it names exercise alerts (``exercise: true``, key
``drill:...``, 演练 / DRILL title) while it is open, so a drill on real devices can never be mistaken for a real event.
"""

from __future__ import annotations

import uuid
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.contracts.alert import Alert
from core.contracts.catalogue import Department
from core.contracts.finding import Finding


class Matchers(BaseModel):
    """Every given field must match; at least one must be given (a silence of everything is refused)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    device_id: str | None = None
    site_id: str | None = None
    department: Department | None = None
    rule: str | None = None

    @model_validator(mode="after")
    def _not_everything(self) -> Self:
        if not any((self.device_id, self.site_id, self.department, self.rule)):
            raise ValueError("give at least one of device_id, site_id, department, rule")
        return self

    def match(self, alert: Alert) -> bool:
        return (
            (self.device_id is None or alert.device_id == self.device_id)
            and (self.site_id is None or alert.site_id == self.site_id)
            and (self.department is None or self.department in alert.departments)
            and (self.rule is None or alert.rule == self.rule)
        )


class _Window(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str = Field(default_factory=lambda: uuid.uuid4().hex[:12])
    starts_at: int = Field(description="epoch ms")
    ends_at: int = Field(description="epoch ms")
    created_by: str = Field(description="the creator's display name, for people to read")
    created_by_id: str | None = Field(
        None, description="the creator's stable officer id (alerts.officers); None in windows made before it existed"
    )
    created_at: int

    @model_validator(mode="after")
    def _order(self) -> Self:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self

    def open_at(self, now: int) -> bool:
        return self.starts_at <= now < self.ends_at


class Silence(_Window):
    matchers: Matchers
    reason: str = Field(min_length=1, max_length=500)

    def mutes(self, alert: Alert, now: int) -> bool:
        return self.open_at(now) and self.matchers.match(alert)


class DrillWindow(_Window):
    name: str = Field(min_length=1, max_length=200)
    device_ids: list[str] = Field(default_factory=list)
    site_ids: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _scope(self) -> Self:
        if not self.device_ids and not self.site_ids:
            raise ValueError("name at least one device_id or site_id")
        return self

    def covers(self, finding: Finding, now: int) -> bool:
        return self.open_at(now) and (finding.device_id in self.device_ids or finding.site_id in self.site_ids)


class Windows:
    """The silences and drill windows known now, by id; expired ones are kept a while for the record."""

    def __init__(self) -> None:
        self.silences: dict[str, Silence] = {}
        self.drills: dict[str, DrillWindow] = {}

    def muting(self, alert: Alert, now: int) -> tuple[list[str], list[Department]]:
        """The silences muting ``alert`` now, and the departments they mute it for: a silence naming a department
        mutes that department only; one naming none mutes every department the alert goes to."""
        ids: list[str] = []
        muted: set[Department] = set()
        for silence in self.silences.values():
            if silence.mutes(alert, now):
                ids.append(silence.id)
                department = silence.matchers.department
                muted.update([department] if department is not None else alert.departments)
        return sorted(ids), [d for d in alert.departments if d in muted]

    def in_drill(self, finding: Finding, now: int) -> bool:
        return any(d.covers(finding, now) for d in self.drills.values())

    def silences_of(self, department: Department | None, now: int) -> int:
        """How many silences not yet ended (in force or ahead) name ``department`` (None: name none)."""
        return sum(1 for s in self.silences.values() if s.ends_at > now and s.matchers.department == department)

    def ended_before(self, cutoff: int) -> list[Silence | DrillWindow]:
        """The windows that ended before ``cutoff``: nothing reads them any more once the tick after their end has
        unmuted what they muted (a drill window's also counts findings by event time: keep it long enough for
        readings buffered during the drill)."""
        windows: list[Silence | DrillWindow] = [*self.silences.values(), *self.drills.values()]
        return [w for w in windows if w.ends_at < cutoff]

    def drop(self, windows: list[Silence | DrillWindow]) -> None:
        for w in windows:
            (self.silences if isinstance(w, Silence) else self.drills).pop(w.id, None)
