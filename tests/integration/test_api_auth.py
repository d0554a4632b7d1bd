"""Who may call what, for every operation of the API's OpenAPI document (a new route is covered, or fails here until
it is placed): no token or a wrong one is 401; an officer outside a resource's departments, or not an administrator
where one is needed, is 403. And no token or password ever reaches a log line or a settings object's repr.

Against the whole app (``tests.api_util``) on real Tansu, InfluxDB and Mosquitto, over real HTTP.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.routing import APIRoute, iter_route_contexts

from alerts.settings import AlertsSettings
from core.contracts.finding import Hazard
from devices.api import IMPORT_MAX_BODY_BYTES
from devices.mqtt_accounts import Credentials
from smartcity.stack.services import Launch
from tests.alerts_util import ADMIN, FIRE_OFFICER
from tests.api_util import LiveApi, accounts_conn, api_settings, bearer, live_api, water_gauge
from tests.mqtt_util import CONTROL_PASSWORD
from tests.unit.alerts.factories import finding

pytestmark = pytest.mark.integration

# Documented operations anyone may call: the allow-list. Everything else in the document needs a token.
PUBLIC = {"GET /healthz", "GET /metrics"}
# Pages outside the document, public too: the duty console (static files at /, it signs in through /api/me) and the
# document itself with its two viewers. And one that is not public: /api/layers/, the layers' landing page written
# with a slash (test_layers.py checks its token), which the console's static files would otherwise answer.
UNDOCUMENTED = {"/", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/api/layers/"}
FUTURE = int(time.time() * 1000) + 86_400_000


@dataclass(frozen=True)
class Probe:
    """A request for one operation; ``{alert}``, ``{incident}``, ``{silence}``, ``{drill}``, ``{device}`` in the path
    are filled in with things the administrator made. ``why``: the rule the expected answer follows."""

    why: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    body: Any = None


# Refused with 403 to the fire officer (the resources are the emergency department's, or an administrator's).
REFUSED = {
    "GET /api/alerts": Probe("filtering by another department", "/api/alerts", {"department": "emergency"}),
    "GET /api/alerts/{alert_id}": Probe("an alert routed elsewhere", "/api/alerts/{alert}"),
    "POST /api/alerts/{alert_id}/ack": Probe("an alert routed elsewhere", "/api/alerts/{alert}/ack", body={}),
    "POST /api/alerts/{alert_id}/close": Probe("an alert routed elsewhere", "/api/alerts/{alert}/close", body={}),
    "GET /api/alerts/{alert_id}/cap": Probe("an alert routed elsewhere", "/api/alerts/{alert}/cap"),
    "GET /api/feeds/{department}.atom": Probe("another department's feed", "/api/feeds/emergency.atom"),
    "POST /api/silences": Probe(
        "silencing another department",
        "/api/silences",
        body={"matchers": {"department": "emergency"}, "reason": "检修", "ends_at": FUTURE},
    ),
    "DELETE /api/silences/{silence_id}": Probe("a silence someone else made", "/api/silences/{silence}"),
    "POST /api/drills": Probe(
        "administrators declare drills", "/api/drills", body={"name": "d", "site_ids": ["s"], "ends_at": FUTURE}
    ),
    "DELETE /api/drills/{drill_id}": Probe("administrators end drills", "/api/drills/{drill}"),
    "PUT /api/devices/{device_id}": Probe(
        "administrators change the registry", "/api/devices/{device}", body=water_gauge("{device}")
    ),
    "POST /api/devices/import": Probe(
        "administrators change the registry", "/api/devices/import", body=[water_gauge("{device}")]
    ),
    "DELETE /api/devices/{device_id}": Probe("administrators change the registry", "/api/devices/{device}"),
    "GET /api/incidents": Probe("filtering by another department", "/api/incidents", {"department": "emergency"}),
    "GET /api/incidents/{incident_id}": Probe("an incident routed elsewhere", "/api/incidents/{incident}"),
    "POST /api/incidents/{incident_id}/ack": Probe(
        "an incident routed elsewhere", "/api/incidents/{incident}/ack", body={}
    ),
    "POST /api/incidents/{incident_id}/close": Probe(
        "an incident routed elsewhere", "/api/incidents/{incident}/close", body={}
    ),
    "GET /api/incidents/{incident_id}/cap": Probe("an incident routed elsewhere", "/api/incidents/{incident}/cap"),
    "GET /api/incidents/{incident_id}/report": Probe(
        "an incident routed elsewhere", "/api/incidents/{incident}/report"
    ),
    "GET /api/incidents/{incident_id}/report.html": Probe(
        "an incident routed elsewhere", "/api/incidents/{incident}/report.html"
    ),
    "GET /api/layers/collections/{collection_id}/items": Probe(
        "filtering by another department", "/api/layers/collections/alerts/items", {"department": "emergency"}
    ),
    "GET /api/layers/collections/{collection_id}/items/{feature_id}": Probe(
        "an alert routed elsewhere", "/api/layers/collections/alerts/items/{alert}"
    ),
}
# Open to every officer: what they get is their departments' share, or not scoped by department at all.
EVERY_OFFICER = {
    "GET /api/me": Probe("who the token belongs to", "/api/me"),
    "GET /api/alerts/summary": Probe("counts the officer's departments' alerts only", "/api/alerts/summary"),
    "GET /api/alerts/stream": Probe("streams the officer's departments' alerts only", "/api/alerts/stream"),
    "GET /api/silences": Probe("silences are shown to every officer", "/api/silences"),
    "GET /api/drills": Probe("drill windows are shown to every officer", "/api/drills"),
    "GET /api/devices": Probe("the registry is read by every officer", "/api/devices"),
    "GET /api/devices/{device_id}": Probe("the registry is read by every officer", "/api/devices/{device}"),
    "GET /api/devices/{device_id}/health": Probe(
        "the registry is read by every officer", "/api/devices/{device}/health"
    ),
    "GET /api/devices/{device_id}/readings": Probe(
        "readings are not scoped by department (storage.api)",
        "/api/devices/{device}/readings",
        {"metric": "level_m"},
    ),
    "GET /api/layers": Probe("the layers' landing page", "/api/layers"),
    "GET /api/layers/api": Probe("the layers' API definition", "/api/layers/api"),
    "GET /api/layers/conformance": Probe("the layers' conformance classes", "/api/layers/conformance"),
    "GET /api/layers/collections": Probe("extents of the officer's departments' features", "/api/layers/collections"),
    "GET /api/layers/collections/{collection_id}": Probe(
        "the extent of the officer's departments' features", "/api/layers/collections/alerts"
    ),
}


def operations(api: LiveApi) -> dict[str, dict[str, Any]]:
    """``"METHOD /path"`` to its OpenAPI operation, for every operation of the document the app serves."""
    paths: dict[str, dict[str, Any]] = api.app.openapi()["paths"]
    return {f"{method.upper()} {path}": op for path, ops in paths.items() for method, op in ops.items()}


def placeholder_request(path: str, op: dict[str, Any]) -> tuple[str, dict[str, str], Any]:
    """A request any validation would accept the shape of: path parameters and required query parameters filled
    in (an enum's first value, else ``x``), a JSON body when one is taken. Enough to reach the token check."""

    def value(param: dict[str, Any]) -> str:
        return str(param.get("schema", {}).get("enum", ["x"])[0])

    params = op.get("parameters", [])
    for param in params:
        if param["in"] == "path":
            path = path.replace("{" + param["name"] + "}", value(param))
    query = {p["name"]: value(p) for p in params if p["in"] == "query" and p.get("required")}
    return path, query, {} if "requestBody" in op else None


async def test_every_route_is_documented_and_the_document_says_which_need_a_token(api: LiveApi) -> None:
    documented = operations(api)
    for context in iter_route_contexts(api.app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and route.include_in_schema:
            assert {f"{m} {route.path}" for m in route.methods or ()} <= set(documented)
        else:
            assert (context.path or "/") in UNDOCUMENTED, f"{context.path}: a route outside the document"
    assert set(documented) >= PUBLIC
    for name, op in documented.items():
        assert ("security" not in op) == (name in PUBLIC), f"{name}: the document is wrong about its token"


async def test_no_token_or_a_wrong_one_is_401_on_every_protected_operation(api: LiveApi) -> None:
    wrong: list[str] = []
    attempts = {
        "no token": {},
        "unknown token": bearer("not-" + FIRE_OFFICER),
        "no credentials": {"Authorization": "Bearer"},
        "another scheme": {"Authorization": f"Basic {FIRE_OFFICER}"},
    }
    async with api.client(token=None) as http:
        for name, op in operations(api).items():
            method, path = name.split(" ", 1)
            url, query, body = placeholder_request(path, op)
            for attempt, headers in attempts.items() if name not in PUBLIC else {"no token": {}}.items():
                response = await http.request(method, url, params=query, json=body, headers=headers)
                expected = 200 if name in PUBLIC else 401
                if response.status_code != expected:
                    wrong.append(f"{name} with {attempt}: {response.status_code} {response.text[:200]}")
                elif expected == 401 and response.headers.get("www-authenticate") != "Bearer":
                    wrong.append(f"{name} with {attempt}: 401 without WWW-Authenticate: Bearer")
        # the live stream also takes its token in the query (EventSource cannot send headers)
        streamed = await http.get("/api/alerts/stream", params={"token": "not-" + FIRE_OFFICER})
        if streamed.status_code != 401:
            wrong.append(f"GET /api/alerts/stream?token=<unknown>: {streamed.status_code}")
    assert not wrong, "\n".join(wrong)


# What the import tests below send of a body: the opening of a JSON list, 256 KiB.
OPENING = b"[" + b" " * (256 * 1024)


async def post_part(url: str, path: str, headers: dict[str, str], declared: int, sent: bytes = OPENING) -> Any:
    """POST declaring a ``declared``-byte body, send ``sent`` of it and read the answer (at most 10 s): with less
    sent than declared, the server must answer before it has the rest, which never comes. Over a raw connection:
    httpx reads an answer only after it has sent the whole body. (status, JSON body)."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        lines = [f"POST {path} HTTP/1.1", f"Host: {parts.netloc}", "Content-Type: application/json",
                 f"Content-Length: {declared}", *(f"{k}: {v}" for k, v in headers.items())]  # fmt: skip
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + sent)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        length = next(int(h.split(b":")[1]) for h in head.lower().split(b"\r\n") if h.startswith(b"content-length:"))
        return int(head.split()[1]), json.loads(await asyncio.wait_for(reader.readexactly(length), 10))
    finally:
        writer.close()


async def test_the_import_checks_the_token_before_it_reads_its_16_mib(api: LiveApi) -> None:
    """The import takes up to 16 MiB, on the event loop that also runs the alerts service: no token, a wrong one,
    or an officer's (only an administrator changes the registry) is answered before the body has arrived, so the
    body is neither read nor parsed. (Before: the API waited for all 16 MiB and parsed them, then said 401.)"""
    path, declared = "/api/devices/import", IMPORT_MAX_BODY_BYTES - 1024
    assert await post_part(api.url, path, {}, declared) == (401, {"detail": "missing bearer token"})
    assert await post_part(api.url, path, bearer("not-" + FIRE_OFFICER), declared) == (401, {"detail": "unknown token"})
    assert await post_part(api.url, path, bearer(FIRE_OFFICER), declared) == (
        403, {"detail": "only an administrator changes the device registry"},
    )  # fmt: skip
    # the administrator's body is read whole and judged: an empty list imports nothing
    assert await post_part(api.url, path, bearer(ADMIN), len(OPENING) + 1, OPENING + b"]") == (200, [])


async def test_an_officer_is_refused_other_departments_and_administrators_work(api: LiveApi, unique: str) -> None:
    protected = set(operations(api)) - PUBLIC
    assert set(REFUSED) | set(EVERY_OFFICER) == protected, "place each operation in REFUSED or EVERY_OFFICER"
    assert not set(REFUSED) & set(EVERY_OFFICER)

    emergency = await api.raise_alert(finding(f"gas-{unique}"))  # gas: routed to the emergency department
    fire = await api.raise_alert(finding(f"fire-{unique}", rule="fire.temp", hazard=Hazard.FIRE))
    assert fire.departments == ["fire"]
    async with api.client(ADMIN) as admin, api.client(FIRE_OFFICER) as officer:
        silence = await admin.post(
            "/api/silences", json={"matchers": {"site_id": "s"}, "reason": "r", "ends_at": FUTURE}
        )
        drill = await admin.post("/api/drills", json={"name": "演练", "site_ids": ["s"], "ends_at": FUTURE})
        device = await admin.put(f"/api/devices/d-{unique}", json=water_gauge(f"d-{unique}"))
        assert (silence.status_code, drill.status_code, device.status_code) == (201, 201, 201)
        ids = {
            "alert": emergency.id,
            "silence": silence.json()["id"],
            "drill": drill.json()["id"],
            "device": f"d-{unique}",
            "incident": emergency.incident_id,
        }

        async def ask(http: httpx.AsyncClient, name: str, probe: Probe) -> httpx.Response:
            body = _filled(probe.body, ids)
            path = probe.path.format(**ids)
            if name == "GET /api/alerts/stream":  # never ends: the status line is the answer
                async with http.stream("GET", path) as response:
                    return response
            return await http.request(name.split()[0], path, params=probe.params, json=body)

        wrong: list[str] = []
        for name, probe in REFUSED.items():
            refused = await ask(officer, name, probe)
            if refused.status_code != 403:
                wrong.append(f"{name} ({probe.why}): fire officer got {refused.status_code} {refused.text[:200]}")
        for name, probe in {**EVERY_OFFICER, **REFUSED}.items():  # and the administrator is refused nothing
            answered = await (ask(admin, name, probe) if name in REFUSED else ask(officer, name, probe))
            if answered.status_code in (401, 403) or answered.status_code >= 500:
                wrong.append(f"{name} ({probe.why}): {answered.status_code} {answered.text[:200]}")
        assert not wrong, "\n".join(wrong)

        # The same officer acts in its own department: the 403s above are the department boundary, nothing else.
        assert (await officer.get(f"/api/alerts/{fire.id}")).status_code == 200
        assert (await officer.get(f"/api/alerts/{fire.id}/cap")).status_code == 200
        assert (await officer.get("/api/feeds/fire.atom")).status_code == 200
        assert (await officer.post(f"/api/alerts/{fire.id}/ack", json={"by": "ignored"})).json()["acknowledgement"][
            "by"
        ] == "火警值班员", "an officer's own token records the officer's name"
        listed = (await officer.get("/api/alerts", params={"state": "all"})).json()
        assert [a["id"] for a in listed] == [fire.id], "the list shows the officer's departments only"
        own = await officer.post(
            "/api/silences", json={"matchers": {"department": "fire"}, "reason": "演练", "ends_at": FUTURE}
        )
        assert own.status_code == 201, own.text
        assert (await officer.delete(f"/api/silences/{own.json()['id']}")).status_code == 200


def _filled(body: Any, ids: dict[str, str]) -> Any:
    if isinstance(body, str):
        return body.format(**ids)
    if isinstance(body, list):
        return [_filled(b, ids) for b in body]
    if isinstance(body, dict):
        return {k: _filled(v, ids) for k, v in body.items()}
    return body


# -- nothing secret in the logs ---------------------------------------------------------------------------------


@contextmanager
def every_log_record() -> Iterator[tuple[list[logging.LogRecord], Callable[[], None]]]:
    """Keep every record of every logger, at DEBUG, whatever levels, propagation and handlers were set; yields the
    records and a function that raises every logger to DEBUG again (uvicorn sets its own when it is configured).
    Everything is put back afterwards."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    root = logging.getLogger()
    saved: dict[logging.Logger, tuple[int, bool, bool]] = {}

    def everything_at_debug() -> None:
        for logger in [root, *logging.Logger.manager.loggerDict.values()]:
            if isinstance(logger, logging.Logger):
                saved.setdefault(logger, (logger.level, logger.propagate, logger.disabled))
                logger.setLevel(logging.DEBUG)
                logger.propagate, logger.disabled = True, False

    handler = Keep(logging.DEBUG)
    root.addHandler(handler)
    everything_at_debug()
    try:
        yield records, everything_at_debug
    finally:
        root.removeHandler(handler)
        for logger, (level, propagate, disabled) in saved.items():
            logger.setLevel(level)
            logger.propagate, logger.disabled = propagate, disabled


async def test_tokens_and_passwords_are_never_logged(
    alerts_settings: AlertsSettings, secured: tuple[Launch, Path], tmp_path: Path, unique: str
) -> None:
    settings = api_settings(alerts_settings, tmp_path, unique)
    conn = accounts_conn(secured)
    issued: list[str] = []
    with every_log_record() as (records, everything_at_debug):
        # A bare transport: httpx's client would log the test's own URLs (``?token=``) as if the API had.
        async with (
            live_api(settings, conn, configured=everything_at_debug) as api,
            httpx.AsyncHTTPTransport() as transport,
        ):

            async def call(method: str, path: str, token: str | None, **kwargs: Any) -> httpx.Response:
                headers = bearer(token) if token is not None else {}
                request = httpx.Request(method, api.url + path, headers=headers, **kwargs)
                response = await transport.handle_async_request(request)
                if path.startswith("/api/alerts/stream"):
                    await response.aclose()
                else:
                    await response.aread()
                return response

            assert (await call("GET", "/api/me", FIRE_OFFICER)).status_code == 200
            assert (await call("GET", "/api/me", ADMIN)).status_code == 200
            # a wrong token that contains the right one: logging the refused token would show the admin's
            assert (await call("GET", "/api/me", ADMIN + "-wrong")).status_code == 401
            assert (await call("GET", f"/api/alerts/stream?token={FIRE_OFFICER}", None)).status_code == 200
            assert (await call("GET", f"/api/alerts/stream?token={ADMIN}x", None)).status_code == 401
            created = await call("PUT", f"/api/devices/a-{unique}", ADMIN, json=water_gauge(f"a-{unique}"))
            assert created.status_code == 201, created.text
            issued.append(created.json()["credentials"]["password"])
            batch = [water_gauge(f"b-{unique}-{i}") for i in range(3)]
            imported = await call("POST", "/api/devices/import", ADMIN, json=batch)
            assert imported.status_code == 200, imported.text
            issued += [saved["credentials"]["password"] for saved in imported.json()]
            assert (await call("DELETE", f"/api/devices/a-{unique}", ADMIN)).status_code == 204
            refused = await call("PUT", f"/api/devices/b-{unique}-0", FIRE_OFFICER, json=batch[0])
            assert refused.status_code == 403

    secrets = {"admin token": ADMIN, "officer token": FIRE_OFFICER, "MQTT control password": CONTROL_PASSWORD}
    secrets |= {f"issued password {i}": password for i, password in enumerate(issued)}
    assert len(issued) == 4
    assert len(records) > 100, "the capture saw the services' DEBUG lines"
    access = [r.getMessage() for r in records if r.name == "uvicorn.access"]
    assert any("/api/alerts/stream?token=<redacted>" in line for line in access), "uvicorn's access lines were seen"
    formatter = logging.Formatter()
    leaks = [
        f"{what} in {record.name}: {record.getMessage()[:200]}"
        for record in records
        for text in [formatter.format(record) + repr(vars(record))]
        for what, secret in secrets.items()
        if secret in text
    ]
    assert not leaks, "\n".join(leaks)
    shown = [repr(settings), str(settings), settings.model_dump_json(), repr(conn), str(conn), conn.model_dump_json()]
    shown.append(repr(Credentials("device", issued[0])))
    for what, secret in secrets.items():
        assert not any(secret in text for text in shown), f"{what} in a settings repr"
