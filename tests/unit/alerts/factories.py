"""Findings and alerts for the alerts tests, built the way the rules engine builds them."""

from __future__ import annotations

from typing import Any

from alerts.incidents import IncidentBook
from alerts.lifecycle import AlertRecord
from alerts.routing import load_routing
from core.contracts.alert import Alert, AlertEvent
from core.contracts.catalogue import Department, Level
from core.contracts.finding import Finding, FindingEvent, Hazard, Text, finding_id
from core.contracts.incident import Incident

T0 = 1_763_900_000_000


def finding(
    device: str = "gas-1",
    rule: str = "gas.ch4",
    event: FindingEvent = FindingEvent.RAISED,
    level: Level = Level.ORANGE,
    *,
    ts: int = T0,
    hazard: Hazard = Hazard.GAS,
    exercise: bool = False,
    site: str = "site-1",
    **extra: Any,
) -> Finding:
    key = extra.pop("key", None) or f"{'drill:' if exercise else ''}{device}:{rule}"
    flapping = extra.pop("flapping", False)
    return Finding(
        id=finding_id(key, event, level, ts, flapping),
        key=key,
        event=event,
        rule=rule,
        hazard=hazard,
        level=level,
        active=event != FindingEvent.CLEARED,
        flapping=flapping,
        exercise=exercise,
        device_id=extra.pop("device_id", device),
        site_id=site,
        site_name="坪山燃气站 <b>&",
        lat=22.7,
        lon=114.25,
        departments=extra.pop("departments", [Department.EMERGENCY]),
        metric="ch4_lel",
        value=extra.pop("value", 30.0),
        threshold=extra.pop("threshold", 25.0),
        ts=ts,
        detected_at=ts + 5,
        title=Text(zh="可燃气体浓度超限", en="Combustible gas above limit"),
        **extra,
    )


def alert(**overrides: Any) -> Alert:
    """An alert message as the alerts service sends it (a red methane alarm, raised); ``overrides`` change fields."""
    event = overrides.get("event", AlertEvent.RAISED)
    fields: dict[str, Any] = {
        "id": "a-1",
        "key": "gas-1:gas.ch4",
        "seq": 1,
        "event": event,
        "level": Level.RED,
        "hazard": Hazard.GAS,
        "rule": "gas.ch4",
        "device_id": "gas-1",
        "site_id": "site-1",
        "site_name": "坪山燃气站",
        "lat": 22.7,
        "lon": 114.25,
        "metric": "ch4_lel",
        "value": 55.0,
        "threshold": 50.0,
        "departments": [Department.EMERGENCY],
        "active": event not in (AlertEvent.CLEARED, AlertEvent.CLOSED),
        "acknowledged": False,
        "exercise": False,
        "opened_at": T0,
        "updated_at": T0 + overrides.get("seq", 1) - 1,
        "ts": T0,
        "title": Text(zh="甲烷浓度超过二级报警值", en="Methane above the level-2 alarm"),
    }
    return Alert(**(fields | overrides))


def incident_of(*alerts: Alert, now: int = T0) -> Incident:
    """The incident these alerts (of one place and hazard) make, as its latest message."""
    book = IncidentBook(load_routing())
    _, records = book.apply([AlertRecord(alert=a) for a in alerts], now, lambda _id: None)
    return records[0].message()
