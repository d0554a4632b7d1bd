"""The officers' HTTP API for incidents: list, detail, acknowledge or close every member at once, CAP.

The same rules as the alerts' routes (``alerts.api``): a bearer token of an officer; an incident none of whose
departments is the officer's is 403 (404 when there is none); drills are listed with ``exercise=true`` and never
counted with real incidents.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from pydantic import BaseModel

from alerts.api import ActionIn, act, who
from alerts.cap import CAP_MIME_TYPE
from alerts.incident_cap import incident_cap_document
from alerts.incidents import Action, DeliveryEntry, HistoryEntry, IncidentRecord
from alerts.lifecycle import HistoryEntry as AlertHistoryEntry
from alerts.officers import Officer
from alerts.service import AlertService
from core.contracts.alert import Alert
from core.contracts.catalogue import LEVEL_RANK, Department, Level
from core.contracts.finding import Hazard
from core.contracts.incident import Incident


class MemberAlert(BaseModel):
    alert: Alert
    history: list[AlertHistoryEntry]


class IncidentDetail(BaseModel):
    incident: Incident
    alerts: list[MemberAlert]
    history: list[HistoryEntry]
    actions: list[Action]
    deliveries: list[DeliveryEntry]


def visible_incident(service: AlertService, incident_id: str, officer: Officer) -> IncidentRecord:
    rec = service.incidents.get(incident_id)
    if rec is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no incident {incident_id!r}")
    if not officer.sees(rec.incident.departments):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this incident is not routed to your departments")
    return rec


def incident_detail(service: AlertService, rec: IncidentRecord, officer: Officer) -> IncidentDetail:
    """The incident with its member alerts the officer may see (an incident spanning departments shows each
    officer their departments' alerts; the summary counts every one)."""
    found = (service.book.get(m.alert_id) for m in rec.incident.members)
    members = [m for m in found if m is not None and officer.sees(m.alert.departments)]
    return IncidentDetail(
        incident=rec.incident,
        alerts=[MemberAlert(alert=m.alert, history=m.history) for m in members],
        history=rec.history,
        actions=rec.actions,
        deliveries=rec.deliveries,
    )


def incidents_router(service: AlertService, auth: Callable[..., Officer]) -> APIRouter:
    router = APIRouter(prefix="/api/incidents", tags=["incidents"])
    signed_in = Depends(auth)

    @router.get("", response_model=list[Incident])
    async def list_incidents(
        officer: Officer = signed_in,
        state: Literal["open", "closed", "all"] = "open",
        active: bool | None = None,
        acknowledged: bool | None = None,
        department: Department | None = None,
        level: Level | None = None,
        hazard: Hazard | None = None,
        exercise: bool | None = None,
        limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    ) -> list[Incident]:
        """Open first, then by level (red first), then newest first; merged incidents are not listed. Each lists its
        worst 50 members (``summary`` counts them all; the detail lists every one)."""
        if department is not None and not officer.may_act_for(department):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"not an officer of {department}")
        out = []
        for rec in service.incidents.records.values():
            i = rec.incident
            if (
                i.merged_into is None
                and (state == "all" or i.closed == (state == "closed"))
                and officer.sees(i.departments)
                and (active is None or i.active == active)
                and (acknowledged is None or i.acknowledged == acknowledged)
                and (department is None or department in i.departments)
                and (level is None or i.level == level)
                and (hazard is None or i.hazard == hazard)
                and (exercise is None or i.exercise == exercise)
            ):
                out.append(rec)
        out.sort(key=lambda r: (r.incident.closed, -LEVEL_RANK[r.incident.level], -r.incident.updated_at))
        return [r.message() for r in out[:limit]]

    @router.get("/{incident_id}", response_model=IncidentDetail)
    async def get_incident(incident_id: str, officer: Officer = signed_in) -> IncidentDetail:
        """The incident with every member alert and its history, the incident's messages, the officers' actions
        and who was told on which channel when."""
        return incident_detail(service, visible_incident(service, incident_id, officer), officer)

    async def on_members(incident_id: str, kind: str, officer: Officer, body: ActionIn | None) -> Incident:
        visible_incident(service, incident_id, officer)
        body = body or ActionIn()
        return await act(
            lambda: service.act_on_incident(
                incident_id,
                kind,
                who(body, officer),
                body.note,
                list(officer.departments),
                may=lambda alert: officer.sees(alert.departments),
            )
        )

    @router.post("/{incident_id}/ack", response_model=Incident)
    async def acknowledge(incident_id: str, officer: Officer = signed_in, body: ActionIn | None = None) -> Incident:
        """Acknowledge every open, unacknowledged member alert routed to the officer's departments, in one save (all
        or nothing); 409 if none is left."""
        return await on_members(incident_id, "acknowledge", officer, body)

    @router.post("/{incident_id}/close", response_model=Incident)
    async def close(incident_id: str, officer: Officer = signed_in, body: ActionIn | None = None) -> Incident:
        """Close every open member alert routed to the officer's departments, in one save; the incident is closed
        once every member is."""
        return await on_members(incident_id, "close", officer, body)

    @router.get("/{incident_id}/cap", response_class=Response, responses={200: {"content": {CAP_MIME_TYPE: {}}}})
    async def cap(incident_id: str, officer: Officer = signed_in) -> Response:
        """The incident's latest message as one CAP 1.2 alert whose area covers every member (docs/cap.md)."""
        rec = visible_incident(service, incident_id, officer)
        # the message as it was sent (its identifier names that content); before the first, the incident now as #0
        said = rec.last_message or rec.message().model_copy(update={"members": rec.incident.members})
        document = incident_cap_document(said, sender=service.settings.alerts_sender)
        return Response(document, media_type=CAP_MIME_TYPE)

    return router
