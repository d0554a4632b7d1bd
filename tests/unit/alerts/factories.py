"""Findings and alerts for the alerts tests, built the way the rules engine builds them."""

from __future__ import annotations

from typing import Any

from smartcity.contracts.catalogue import Department, Level
from smartcity.contracts.finding import Finding, FindingEvent, Hazard, Text, finding_id

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
        value=30.0,
        threshold=25.0,
        ts=ts,
        detected_at=ts + 5,
        title=Text(zh="可燃气体浓度超限", en="Combustible gas above limit"),
        **extra,
    )
