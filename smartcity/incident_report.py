"""The after-action report (事故分析) of an incident: what was measured, what the platform said, who was told, who
acted, and how long each step took. JSON for the console's report page, and a printable page (print or save as PDF
from the browser) for the file.

It joins the two halves of the platform, which is why it lives on the top floor: the alert history (members, their
events, the incident's messages, deliveries and officers' actions, from the alerts service) and the readings of every
member device from ``LEAD_MS`` (30 minutes) before the first alert to the close (or now), from InfluxDB. Drills
report the same way, from the drill's readings.

Limits: the report exists while the incident does (closed incidents are kept for ``alerts_closed_retention_s``, a
week by default); at most ``MAX_SERIES`` device metrics, each as raw points or, past the query's point limit, as
the aggregates it suggests.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import jinja2
from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel

from alerts.incident_api import IncidentDetail, incident_detail, visible_incident
from alerts.incident_text import EVENTS as INCIDENT_EVENTS
from alerts.officers import Officer
from alerts.service import AlertService
from alerts.text import EVENTS, LEVELS, when
from core.contracts.catalogue import METRICS, DeviceKind
from core.contracts.device import Device
from core.contracts.incident import IncidentEvent
from core.errors import SmartCityError
from storage.query import ReadingsQuery, TooManyPoints

logger = logging.getLogger(__name__)

LEAD_MS: Final = 30 * 60 * 1000
MAX_SERIES: Final = 30
_KINDS: Final = frozenset(k.value for k in DeviceKind)
_TEMPLATE: Final = Path(__file__).with_name("templates") / "incident_report.html.j2"


class Series(BaseModel):
    device_id: str
    metric: str
    unit: str = ""
    every_s: int | None = None
    points: list[dict[str, Any]]
    error: str | None = None


class AlertEventRow(BaseModel):
    at: int
    alert_id: str
    device_id: str | None
    site_name: str | None
    rule: str
    event: str
    level: str
    by: str | None = None
    note: str | None = None


class DepartmentResponse(BaseModel):
    department: str
    first_told_at: int | None
    acknowledged_at: int | None
    acknowledged_by: str | None
    seconds_to_acknowledge: float | None


class Report(BaseModel):
    detail: IncidentDetail
    generated_at: int
    from_ms: int
    to_ms: int
    events: list[AlertEventRow]
    departments: list[DepartmentResponse]
    seconds_to_first_message: float | None
    seconds_to_close: float | None
    readings: list[Series]


async def build_report(
    service: AlertService,
    incident_id: str,
    officer: Officer,
    query: ReadingsQuery | None,
    lookup: Callable[[str], Device | None],
) -> Report:
    rec = visible_incident(service, incident_id, officer)
    detail = incident_detail(service, rec, officer)
    inc = rec.incident
    now = service.clock()
    closed_at = next((h.at for h in reversed(rec.history) if h.event == IncidentEvent.CLOSED), None)
    if closed_at is None and inc.closed:
        closed_at = inc.updated_at
    start, end = inc.opened_at - LEAD_MS, (closed_at or now)
    events = sorted(
        (
            AlertEventRow(
                at=h.at,
                alert_id=m.alert.id,
                device_id=m.alert.device_id,
                site_name=m.alert.site_name,
                rule=m.alert.rule,
                event=h.event.value,
                level=h.level,
                by=h.by,
                note=h.note,
            )
            for m in detail.alerts
            for h in m.history
        ),
        key=lambda e: (e.at, e.alert_id),
    )
    departments = []
    for d in inc.departments:
        told = [e.at for e in rec.deliveries if e.department == d.value and e.delivered]
        told_at = min(told) if told else None
        acks = [a for a in rec.actions if a.kind == "acknowledge" and d in a.departments]
        first = min(acks, key=lambda a: a.at) if acks else None
        base = told_at if told_at is not None else inc.opened_at
        departments.append(
            DepartmentResponse(
                department=d.value,
                first_told_at=told_at,
                acknowledged_at=first.at if first else None,
                acknowledged_by=first.by if first else None,
                seconds_to_acknowledge=(first.at - base) / 1000 if first else None,
            )
        )
    first_message = rec.history[0].at if rec.history else None
    return Report(
        detail=detail,
        generated_at=now,
        from_ms=start,
        to_ms=end,
        events=events,
        departments=departments,
        seconds_to_first_message=(first_message - inc.opened_at) / 1000 if first_message else None,
        seconds_to_close=(closed_at - inc.opened_at) / 1000 if closed_at else None,
        readings=await _readings(detail, query, lookup, start, end),
    )


async def _readings(
    detail: IncidentDetail,
    query: ReadingsQuery | None,
    lookup: Callable[[str], Device | None],
    start: int,
    end: int,
) -> list[Series]:
    # (device, metric) -> the measurement: the device's kind, from the registry, or from the alert's hazard when
    # the device is gone (a drill's fleet is unregistered when the drill ends; its readings stay)
    pairs: dict[tuple[str, str], str | None] = {}
    for m in detail.alerts:
        a = m.alert
        if a.device_id and a.metric:
            device = lookup(a.device_id)
            found = device.kind.value if device is not None else a.hazard.value
            pairs[(a.device_id, a.metric)] = found if found in _KINDS else None
    out = []
    for (device_id, metric), kind in list(pairs.items())[:MAX_SERIES]:
        unit = METRICS[metric].unit if metric in METRICS else ""
        if query is None or kind is None:
            why = "no readings store" if query is None else "not a measured metric of a registered device"
            out.append(Series(device_id=device_id, metric=metric, unit=unit, points=[], error=why))
            continue
        drill = detail.incident.exercise
        every: int | None = None
        try:
            try:
                points = await query.readings(kind, device_id, metric, start, end, None, drill=drill)
            except TooManyPoints as exc:
                every = exc.every_s
                points = await query.readings(kind, device_id, metric, start, end, every, drill=drill)
        except SmartCityError as exc:
            logger.warning("report: readings of %s %s not read: %s", device_id, metric, exc)
            out.append(Series(device_id=device_id, metric=metric, unit=unit, points=[], error=str(exc)))
            continue
        out.append(Series(device_id=device_id, metric=metric, unit=unit, every_s=every, points=points))
    return out


def _sparkline(series: Series, start: int, end: int, width: int = 560, height: int = 90) -> str:
    """SVG polyline points of a series over [start, end]: the page needs no script to draw it."""
    pts: list[tuple[int, float]] = []
    for p in series.points:
        value = p.get("value", p.get("mean"))
        if isinstance(value, int | float) and not isinstance(value, bool) and isinstance(p.get("ts"), int):
            pts.append((p["ts"], float(value)))
    if not pts:
        return ""
    low, high = min(v for _, v in pts), max(v for _, v in pts)
    span = (high - low) or 1.0
    return " ".join(
        f"{(t - start) / max(end - start, 1) * width:.1f},{height - (v - low) / span * (height - 8) - 4:.1f}"
        for t, v in pts
    )


def render_report(report: Report) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATE.parent), autoescape=True, undefined=jinja2.StrictUndefined
    )
    env.filters["when"] = when
    env.globals.update(
        LEVELS=LEVELS, EVENTS={e.value: t for e, t in EVENTS.items()},
        INCIDENT_EVENTS={e.value: t for e, t in INCIDENT_EVENTS.items()}, sparkline=_sparkline,
    )  # fmt: skip
    return env.get_template(_TEMPLATE.name).render(r=report, i=report.detail.incident)


def report_router(
    service: AlertService,
    query: ReadingsQuery | None,
    lookup: Callable[[str], Device | None],
    auth: Callable[..., Officer],
) -> APIRouter:
    router = APIRouter(prefix="/api/incidents", tags=["incidents"])
    signed_in = Depends(auth)

    @router.get("/{incident_id}/report", response_model=Report)
    async def report(incident_id: str, officer: Officer = signed_in) -> Report:
        """The after-action report (事故分析): every member's readings from 30 minutes before the first alert to the
        close, every alert event, the incident's messages and who was told on which channel when, the time each
        department took to acknowledge, and the time to close."""
        return await build_report(service, incident_id, officer, query, lookup)

    @router.get("/{incident_id}/report.html", response_class=Response)
    async def report_page(incident_id: str, officer: Officer = signed_in) -> Response:
        """The report as one printable page, Chinese first (print it, or save it as PDF, from the browser)."""
        built = await build_report(service, incident_id, officer, query, lookup)
        return Response(render_report(built), media_type="text/html; charset=utf-8")

    return router
