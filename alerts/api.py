"""The officers' HTTP API: alerts, acknowledgements, silences, drill windows, CAP documents and feeds, live stream.

Every route needs a bearer token that belongs to an officer (``alerts.officers``): no token or an unknown one is
401; an alert, feed or silence outside the officer's departments is 403. The live stream also takes the token as
``?token=`` because a browser's ``EventSource`` cannot send headers.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sse_starlette import EventSourceResponse, ServerSentEvent

from alerts.cap import CAP_MIME_TYPE, atom_feed, cap_document
from alerts.lifecycle import HistoryEntry, LifecycleError
from alerts.officers import Officer, Officers
from alerts.service import AlertService
from alerts.silences import DrillWindow, Matchers, Silence
from core.contracts.alert import Alert
from core.contracts.catalogue import LEVEL_RANK, Department, Level
from core.contracts.finding import Hazard
from core.errors import KafkaUnavailable
from core.http.errors import retry_later, unprocessable, unprocessable_model

_bearer = HTTPBearer(auto_error=False)
W = TypeVar("W", Silence, DrillWindow)
T = TypeVar("T")
_UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


def officer_auth(officers: Officers) -> Callable[..., Officer]:
    """The dependency every /api/ router shares: the officer the bearer token belongs to, or 401."""

    def officer(creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Officer:
        if creds is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing bearer token", headers=_UNAUTHORIZED)
        found = officers.by_token(creds.credentials)
        if found is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown token", headers=_UNAUTHORIZED)
        return found

    return officer


class AlertDetail(BaseModel):
    alert: Alert
    history: list[HistoryEntry]


class ActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    by: str | None = Field(
        None,
        max_length=100,
        description="who acts, for the administrator's token (an integration acting for an "
        "officer); an officer's own token always records the officer's name",
    )
    note: str = Field("", max_length=2000)


class SilenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    matchers: Matchers
    reason: str = Field(min_length=1, max_length=500)
    starts_at: int | None = Field(None, description="epoch ms; default now (later: a maintenance window)")
    ends_at: int = Field(description="epoch ms; at most SMARTCITY_ALERTS_SILENCE_MAX_S (7 days) after starts_at")


class DrillIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    device_ids: list[str] = Field(default_factory=list, max_length=10_000)
    site_ids: list[str] = Field(default_factory=list, max_length=1000)
    starts_at: int | None = None
    ends_at: int


class Summary(BaseModel):
    """Open alerts by level; drills counted apart, never with real alerts."""

    real: dict[Level, int]
    exercise: dict[Level, int]


def alerts_router(service: AlertService, auth: Callable[..., Officer], officers: Officers) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["alerts"])
    signed_in = Depends(auth)  # (not an Annotated alias: these annotations are strings FastAPI resolves globally)

    def visible(alert_id: str, officer: Officer) -> Any:
        rec = service.book.get(alert_id)
        if rec is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert {alert_id!r}")
        if not officer.sees(rec.alert.departments):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "this alert is not routed to your departments")
        return rec

    @router.get("/alerts", response_model=list[Alert])
    async def list_alerts(
        officer: Officer = signed_in,
        state: Literal["open", "closed", "all"] = "open",
        active: bool | None = None,
        acknowledged: bool | None = None,
        department: Department | None = None,
        level: Level | None = None,
        hazard: Hazard | None = None,
        exercise: bool | None = None,
        limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    ) -> list[Alert]:
        """Sorted by level (red first), then newest first."""
        if department is not None and not officer.may_act_for(department):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"not an officer of {department}")
        out = []
        for rec in service.book.records.values():
            a = rec.alert
            if (
                (state == "all" or a.closed == (state == "closed"))
                and officer.sees(a.departments)
                and (active is None or a.active == active)
                and (acknowledged is None or a.acknowledged == acknowledged)
                and (department is None or department in a.departments)
                and (level is None or a.level == level)
                and (hazard is None or a.hazard == hazard)
                and (exercise is None or a.exercise == exercise)
            ):
                out.append(a)
        out.sort(key=lambda a: (-LEVEL_RANK[a.level], -a.updated_at))
        return out[:limit]

    @router.get("/alerts/summary", response_model=Summary)
    async def summary(officer: Officer = signed_in) -> Summary:
        counts: dict[bool, dict[Level, int]] = {flag: dict.fromkeys(Level, 0) for flag in (False, True)}
        for rec in service.book.open_records():
            if officer.sees(rec.alert.departments):
                counts[rec.alert.exercise][rec.alert.level] += 1
        return Summary(real=counts[False], exercise=counts[True])

    # It checks the token itself (header or query), so the document is told it needs one, as the other routes are.
    @router.get("/alerts/stream", response_class=EventSourceResponse, openapi_extra={"security": [{"HTTPBearer": []}]})
    async def stream(request: Request, token: str | None = None) -> EventSourceResponse:
        """Server-sent events: ``ready`` (``{"ping_s": N}``) first; ``alert`` (an Alert as JSON) on every change;
        ``incident`` (an Incident, its worst 50 members) on every change of an incident;
        ``ping`` every N seconds, so a client can tell a dead connection from a quiet one; ``reload`` if this client
        fell behind. Token from ``Authorization: Bearer`` or ``?token=``."""
        header = request.headers.get("authorization", "")
        given = header[7:] if header.lower().startswith("bearer ") else token
        officer = officers.by_token(given) if given else None
        if officer is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or unknown token", headers=_UNAUTHORIZED)

        ping_s = service.settings.alerts_stream_ping_s

        async def events() -> AsyncIterator[ServerSentEvent]:
            yield ServerSentEvent(data=json.dumps({"ping_s": ping_s}), event="ready")
            async for alert in service.live.follow(officer):
                if alert is None:
                    yield ServerSentEvent(data="{}", event="reload")
                    return
                kind = "alert" if isinstance(alert, Alert) else "incident"
                yield ServerSentEvent(data=alert.model_dump_json(), event=kind, id=f"{alert.id}.{alert.seq}")

        # A named event, not sse-starlette's default comment line: EventSource hides comments from the page, and
        # the console needs to see the heartbeat to tell a dead connection (no FIN ever arrives) from a quiet one.
        return EventSourceResponse(
            events(),
            ping=ping_s,
            ping_message_factory=lambda: ServerSentEvent(data="{}", event="ping"),
            headers={"X-Accel-Buffering": "no"},
        )

    @router.get("/alerts/{alert_id}", response_model=AlertDetail)
    async def get_alert(alert_id: str, officer: Officer = signed_in) -> AlertDetail:
        rec = visible(alert_id, officer)
        return AlertDetail(alert=rec.alert, history=rec.history)

    @router.post("/alerts/{alert_id}/ack", response_model=Alert)
    async def acknowledge(alert_id: str, officer: Officer = signed_in, body: ActionIn | None = None) -> Alert:
        visible(alert_id, officer)
        body = body or ActionIn()
        return await act(lambda: service.acknowledge(alert_id, who(body, officer), body.note, officer.departments))

    @router.post("/alerts/{alert_id}/close", response_model=Alert)
    async def close(alert_id: str, officer: Officer = signed_in, body: ActionIn | None = None) -> Alert:
        visible(alert_id, officer)
        body = body or ActionIn()
        return await act(lambda: service.close(alert_id, who(body, officer), body.note, officer.departments))

    @router.get("/alerts/{alert_id}/cap", response_class=Response, responses={200: {"content": {CAP_MIME_TYPE: {}}}})
    async def cap(alert_id: str, officer: Officer = signed_in) -> Response:
        """The alert's latest message as a CAP 1.2 document (docs/cap.md)."""
        rec = visible(alert_id, officer)
        return Response(cap_document(rec.alert, sender=service.settings.alerts_sender), media_type=CAP_MIME_TYPE)

    @router.get("/feeds/{department}.atom", response_class=Response)
    async def feed(department: Department, officer: Officer = signed_in) -> Response:
        """An Atom feed of the department's open alerts, each linking its CAP document."""
        if not officer.may_act_for(department):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"not an officer of {department}")
        alerts = [r.alert for r in service.book.open_records() if department in r.alert.departments]
        alerts.sort(key=lambda a: -a.updated_at)
        body = atom_feed(
            alerts,
            department=department,
            base_url=service.settings.alerts_public_url,
            sender=service.settings.alerts_sender,
        )
        return Response(body, media_type="application/atom+xml")

    # The creator's officer id is for the service to check who may end a silence; it is not shown to others.
    @router.get("/silences", response_model=list[Silence], response_model_exclude={"__all__": {"created_by_id"}})
    async def list_silences(officer: Officer = signed_in) -> list[Silence]:
        """Silences in force or ahead (maintenance windows), soonest first."""
        return _not_ended(service.windows.silences.values(), service.clock())

    @router.post(
        "/silences",
        response_model=Silence,
        response_model_exclude={"created_by_id"},
        status_code=status.HTTP_201_CREATED,
        responses={409: {"description": "the department has as many silences as it may"}},
    )
    async def add_silence(body: SilenceIn, officer: Officer = signed_in) -> Silence:
        """Mute the notifications of matching alerts until ``ends_at``, for at most
        ``SMARTCITY_ALERTS_SILENCE_MAX_S`` (officers: their own departments only)."""
        department = body.matchers.department
        if not officer.admin and (department is None or not officer.may_act_for(department)):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "officers may only silence their own department's alerts")
        now = service.clock()
        silence = _window(Silence, body, officer, now, matchers=body.matchers, reason=body.reason)
        longest = service.settings.alerts_silence_max_s
        if silence.ends_at - silence.starts_at > longest * 1000:
            raise unprocessable(
                ("body", "ends_at"),
                f"a silence lasts at most {_duration(longest)} (SMARTCITY_ALERTS_SILENCE_MAX_S); this one would "
                f"last {_duration((silence.ends_at - silence.starts_at) // 1000)}",
                body.ends_at,
            )
        if silence.ends_at <= now:
            raise unprocessable(("body", "ends_at"), "already past: a silence must end in the future", body.ends_at)
        most = service.settings.alerts_silences_per_department

        def room() -> None:  # under the service's lock: two requests at once cannot both take the last place
            if service.windows.silences_of(department, service.clock()) >= most:
                whose = f"department {department}" if department is not None else "silences naming no department"
                raise HTTPException(
                    status.HTTP_409_CONFLICT,
                    f"{whose} has {most} silences not yet ended, the most allowed "
                    "(SMARTCITY_ALERTS_SILENCES_PER_DEPARTMENT): end one (DELETE /api/silences/{id}) first",
                )

        await act(lambda: service.put_window(silence, check=room))
        return silence

    async def end(window: W | None, what: str, allowed: bool, refusal: str) -> W:
        """End a window now (a copy with ``ends_at`` now, saved): its mutes or drill marking stop at once."""
        if window is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no {what}")
        if not allowed:
            raise HTTPException(status.HTTP_403_FORBIDDEN, refusal)
        ended = window.model_copy(update={"ends_at": max(window.starts_at + 1, service.clock())})
        await act(lambda: service.put_window(ended))
        return ended

    @router.delete("/silences/{silence_id}", response_model=Silence, response_model_exclude={"created_by_id"})
    async def end_silence(silence_id: str, officer: Officer = signed_in) -> Silence:
        """End a silence now: its creator (by officer id, not by name) or an administrator."""
        silence = service.windows.silences.get(silence_id)
        mine = officer.admin or (
            silence is not None and silence.created_by_id is not None and silence.created_by_id == officer.id
        )
        return await end(silence, f"silence {silence_id!r}", mine, "only its creator or an administrator ends it")

    @router.get("/drills", response_model=list[DrillWindow])
    async def list_drills(officer: Officer = signed_in) -> list[DrillWindow]:
        return _not_ended(service.windows.drills.values(), service.clock())

    @router.post("/drills", response_model=DrillWindow, status_code=status.HTTP_201_CREATED)
    async def add_drill(body: DrillIn, officer: Officer = signed_in) -> DrillWindow:
        """While open, alerts of the named devices and sites are exercise alerts (演练 / DRILL)."""
        if not officer.admin:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "drill windows are declared by an administrator")
        drill = _window(
            DrillWindow,
            body,
            officer,
            service.clock(),
            name=body.name,
            device_ids=body.device_ids,
            site_ids=body.site_ids,
        )
        await act(lambda: service.put_window(drill))
        return drill

    @router.delete("/drills/{drill_id}", response_model=DrillWindow)
    async def end_drill(drill_id: str, officer: Officer = signed_in) -> DrillWindow:
        drill = service.windows.drills.get(drill_id)
        return await end(drill, f"drill window {drill_id!r}", officer.admin, "drills are ended by an administrator")

    return router


async def act(action: Callable[[], Awaitable[T]]) -> T:
    """An officer's change, answered as HTTP: a lifecycle refusal with its status, Kafka refusing the save as 503."""
    try:
        return await action()
    except LifecycleError as exc:
        raise HTTPException(exc.status, str(exc)) from exc
    except KafkaUnavailable as exc:
        raise retry_later("not saved, nothing changed", exc) from exc


def _not_ended(windows: Iterable[W], now: int) -> list[W]:
    return sorted((w for w in windows if w.ends_at > now), key=lambda w: w.starts_at)


def _duration(seconds: int) -> str:
    return f"{seconds / 86400:.3g} days" if seconds >= 86400 else f"{seconds / 3600:.3g} h"


def who(body: ActionIn, officer: Officer) -> str:
    return (body.by or officer.name) if officer.admin else officer.name


def _window(cls: type[W], body: SilenceIn | DrillIn, officer: Officer, now: int, **fields: Any) -> W:
    try:
        return cls(
            starts_at=body.starts_at or now,
            ends_at=body.ends_at,
            created_by=officer.name,
            created_by_id=officer.id,
            created_at=now,
            **fields,
        )
    except ValidationError as exc:  # ends before it starts: 422 like any other invalid body
        raise unprocessable_model(exc) from exc
