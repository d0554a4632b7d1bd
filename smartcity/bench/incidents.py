"""Incidents benchmark (issue 21): what grouping costs the alerts service, per finding and per tick.

The alerts service's two books, pure (``alerts.lifecycle.AlertBook`` and ``alerts.incidents.IncidentBook``), driven
as the service drives them: a finding raises an alert, the incident book groups it, both commit. Three shapes:

- **spread**: 3,000 alerts over 300 sites (incidents of about ten members), the everyday case;
- **storm**: 20,000 alerts over 10,000 sites (thousands of small incidents: what a tick over them costs);
- **one event**: 500 alerts at one site (one incident growing to 500 members: the cost grows with its size);
- **chained**: 3,000 alerts over 300 sites 330 m apart (every site linked to its neighbours: without a limit one
  incident of 3,000; with ``max_members`` 500, several).

Per finding: the alert book alone, and with incidents. Per tick: a tick when nothing is due (the common case: only
incidents waiting for a group wait or interval, and due reminders, are looked at).
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

from alerts.incidents import IncidentBook
from alerts.lifecycle import AlertBook
from alerts.routing import load_routing
from alerts.silences import Windows
from core.contracts.catalogue import Department, Level
from core.contracts.finding import Finding, FindingEvent, Hazard, Text, finding_id

T0 = 1_795_000_000_000
SHAPES = {"spread": (3_000, 300), "storm": (20_000, 10_000), "one event": (500, 1), "chained": (3_000, -300)}


def _finding(n: int, site: int, spacing: float) -> Finding:
    key = f"gas-{n}:gas.ch4"
    ts = T0 + n * 100
    return Finding(
        id=finding_id(key, FindingEvent.RAISED, Level.ORANGE, ts, False),
        key=key,
        event=FindingEvent.RAISED,
        rule="gas.ch4",
        hazard=Hazard.GAS,
        level=Level.ORANGE,
        active=True,
        device_id=f"gas-{n}",
        site_id=f"site-{site}",
        site_name=f"bench site {site}",
        lat=22.55 + (site % 100) * spacing,  # 0.01: sites 1.1 km apart, beyond the gas family's 500 m
        lon=114.05 + (site // 100) * spacing,
        departments=[Department.EMERGENCY],
        metric="ch4_lel",
        value=30.0,
        threshold=25.0,
        ts=ts,
        detected_at=ts,
        title=Text(zh="可燃气体浓度超限", en="Combustible gas above limit"),
    )


def shape(alerts: int, sites: int) -> dict[str, Any]:
    routing = load_routing()
    rnd = random.Random(21)
    spacing = 0.003 if sites < 0 else 0.01
    sites = abs(sites)
    findings = [_finding(n, rnd.randrange(sites), spacing) for n in range(alerts)]
    out: dict[str, Any] = {"alerts": alerts, "sites": sites, "spacing_deg": spacing}
    for grouped in (False, True):
        book, incidents = AlertBook(routing, Windows()), IncidentBook(routing)
        start = time.perf_counter()
        for n, f in enumerate(findings):
            now = T0 + n * 10  # 100 alerts a second: the storm lasts less than a reminder interval
            records = book.on_finding(f, now)
            if grouped:
                records, changed = incidents.apply(records, now, book.get)
                incidents.commit(changed)
            book.commit(records)
        out["with_incidents_us" if grouped else "alerts_only_us"] = (time.perf_counter() - start) / alerts * 1e6
    end = T0 + alerts * 10 + 15_000
    incidents.commit(incidents.tick(end))  # the group waits end: every incident's first message
    start = time.perf_counter()
    for k in range(10):
        incidents.commit(incidents.tick(end + (k + 1) * 1000))
    out["tick_ms"] = (time.perf_counter() - start) / 10 * 1000
    out["open_incidents"] = sum(1 for _ in incidents.open_records())
    return out


def run(out: Path) -> list[dict[str, Any]]:
    results = []
    for name, (alerts, sites) in SHAPES.items():
        figures = {"shape": name, **shape(alerts, sites)}
        print(
            f"{name:>9}: {alerts:,} alerts at {abs(sites):,} sites -> {figures['open_incidents']:,} incidents; "
            f"{figures['alerts_only_us']:.0f} us a finding without incidents, {figures['with_incidents_us']:.0f} us "
            f"with; a quiet tick {figures['tick_ms']:.2f} ms"
        )
        results.append(figures)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    return results
