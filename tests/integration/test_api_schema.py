"""The HTTP API against its own OpenAPI document (schemathesis), and its limits on request bodies.

schemathesis generates requests for every operation of the document the app serves, valid ones and invalid ones,
sends them as the administrator to the real app (real Tansu, InfluxDB and Mosquitto behind it) over real HTTP, and
checks that nothing answers 5xx and that every documented answer matches its documented schema. The fuzzing runs in
a thread: it is synchronous (``requests``), and the server it talks to runs on the test's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import response_schema_conformance

from core.http.limits import DEFAULT_MAX_BODY_BYTES
from devices.api import IMPORT_MAX_BODY_BYTES
from tests.alerts_util import ADMIN
from tests.api_util import LiveApi, bearer, water_gauge
from tests.unit.alerts.factories import finding

pytestmark = [
    pytest.mark.integration,
    # schemathesis's generators use the ``random`` module (seeded by hypothesis); hypothesis notes it, harmlessly
    pytest.mark.filterwarnings("ignore:Do not use the `random` module:hypothesis.errors.HypothesisDeprecationWarning"),
]

# Per operation and generation mode (valid, invalid): 22 operations fuzzed in about 20 s (150: 4 minutes, nothing more).
MAX_EXAMPLES = 25
# The live stream never ends by itself: a request to it would wait for ever. Its 401 is tested in test_api_auth.py.
NOT_FUZZED = {"GET /api/alerts/stream"}
CHECKS = [not_a_server_error, response_schema_conformance]


async def known_ids(api: LiveApi, unique: str) -> dict[str, str]:
    """Things that exist, so that generated requests reach past the 404s: an alert, a device, a silence, a drill."""
    alert = await api.raise_alert(finding(f"gas-{unique}"))
    async with api.client() as http:
        device = await http.put(f"/api/devices/dev-{unique}", json=water_gauge(f"dev-{unique}"))
        assert device.status_code == 201, device.text
        ends = int(time.time() * 1000) + 3_600_000
        silence = await http.post("/api/silences", json={"matchers": {"site_id": "s"}, "reason": "r", "ends_at": ends})
        assert silence.status_code == 201, silence.text
        drill = await http.post("/api/drills", json={"name": "演练", "device_ids": [f"dev-{unique}"], "ends_at": ends})
        assert drill.status_code == 201, drill.text
    return {
        "alert_id": alert.id,
        "device_id": f"dev-{unique}",
        "silence_id": silence.json()["id"],
        "drill_id": drill.json()["id"],
        "department": "emergency",
    }


def fuzz(schema: schemathesis.BaseSchema, base_url: str, known: dict[str, str]) -> Iterator[str]:
    """Run every operation's examples; yield a report per failing operation (all are run, none stops the others)."""
    headers = bearer(ADMIN)
    operations = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()  # the document itself is wrong: nothing to fuzz against
        operations.append(result.ok())
    # DELETEs last: the known device, silence and drill stay there for every other operation
    for operation in sorted(operations, key=lambda op: op.method.upper() == "DELETE"):
        if operation.label in NOT_FUZZED:
            continue
        names = {p.name for p in operation.path_parameters}
        ids = {name: value for name, value in known.items() if name in names}
        strategies = [
            operation.as_strategy(generation_mode=mode, headers=headers, path_parameters=fixed)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
            for fixed in ([None, ids] if ids else [None])
        ]

        @given(case=st.one_of(strategies))
        @settings(
            max_examples=MAX_EXAMPLES * 2,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case[Any]) -> None:
            case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS, timeout=30)

        try:
            check()
        except Exception as exc:  # a failed check: collected, so that one run shows every operation that fails
            yield f"{operation.label}: {exc}"


async def test_no_operation_answers_5xx_and_every_answer_matches_its_schema(api: LiveApi, unique: str) -> None:
    known = await known_ids(api, unique)
    schema = schemathesis.openapi.from_dict(api.app.openapi())
    started = time.monotonic()
    failures = await asyncio.to_thread(lambda: list(fuzz(schema, api.url, known)))
    assert not failures, "\n\n".join(failures)
    assert time.monotonic() - started < 120, "keep the fuzzing under two minutes (MAX_EXAMPLES)"


async def post_chunked(url: str, path: str, token: str, size: int) -> tuple[int, Any]:
    """POST a JSON body of about ``size`` bytes in 64 KiB chunks, no length declared, and read the answer: over a
    raw connection, because httpx stops reading when the server closes the connection while it is still sending."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        body = b'{"note": "' + b"x" * size + b'"}'
        with contextlib.suppress(ConnectionError):  # the server may close before the last chunk
            for start in range(0, len(body), 65_536):
                chunk = body[start : start + 65_536]
                writer.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        head, _, rest = (await asyncio.wait_for(reader.read(65_536), 10)).partition(b"\r\n\r\n")
        return int(head.split()[1]), json.loads(rest)
    finally:
        writer.close()


async def test_an_oversized_body_is_refused_with_413_before_it_is_read(api: LiveApi, unique: str) -> None:
    limit = DEFAULT_MAX_BODY_BYTES
    refusal = {"detail": f"request body too large: this route takes at most {limit} bytes"}
    alert = await api.raise_alert(finding(f"gas-{unique}"))
    async with api.client() as http:
        declared = await http.post(f"/api/alerts/{alert.id}/ack", json={"note": "x" * limit})
        assert (declared.status_code, declared.json()) == (413, refusal)
        assert declared.headers["connection"] == "close"
        # no length declared (chunked): counted as it arrives, refused when the count passes the limit
        assert await post_chunked(api.url, f"/api/alerts/{alert.id}/ack", ADMIN, 3 * limit) == (413, refusal)
        assert api.alerts.book.get(alert.id).alert.acknowledged is False  # type: ignore[union-attr]
        # a body just under the limit is read: refused for what it says (the note's 2000 characters), not its size
        under = await http.post(f"/api/alerts/{alert.id}/ack", json={"note": "x" * (limit - 100)})
        assert under.status_code == 422, under.text
        assert under.json()["detail"][0]["loc"] == ["body", "note"]
        # the import takes more than the default: 2 MiB of records are read (and refused as records, not as a size)
        assert limit * 2 < IMPORT_MAX_BODY_BYTES
        bulky = [water_gauge(f"big-{unique}", site_name="y" * (2 * limit))]
        imported = await http.post("/api/devices/import", json=bulky)
        assert imported.status_code == 422, imported.text
        assert imported.json()["detail"][0]["loc"] == ["body", 0, "site_name"]


MALFORMED = {  # body, Content-Type, status, what the detail says (its text, or the type of its first error)
    "truncated": (b'{"matchers": {"site_id": "s"}, "ends_at": ', "application/json", 422, "json_invalid"),
    "not UTF-8": (b'{"matchers": {"site_id": "s\xff"}}', "application/json", 400, "not valid utf-8"),
    "nested deep": (b"[" * 100_000 + b"]" * 100_000, "application/json", 400, "nested too deeply"),
    "not declared JSON": (b'{"reason": "r", "ends_at": 1}', "text/plain", 422, "model_attributes_type"),
}


async def test_a_malformed_body_is_a_4xx_that_says_what_is_wrong(api: LiveApi) -> None:
    wrong = []
    async with api.client() as http:
        for case, (body, content_type, status, says) in MALFORMED.items():
            response = await http.post("/api/silences", content=body, headers={"Content-Type": content_type})
            detail = response.json()["detail"]
            if response.status_code != status or says not in (detail if isinstance(detail, str) else detail[0]["type"]):
                wrong.append(f"{case}: {response.status_code} {response.text[:300]}")
    assert not wrong, "\n".join(wrong)


async def test_a_malformed_import_is_a_4xx_that_says_what_is_wrong(api: LiveApi) -> None:
    """The import reads its body itself, after the token check (test_api_auth.py): its answers to bodies it cannot
    read are still 4xx that say why, and never echo the bytes back."""
    async with api.client() as http:
        for body, content_type, says in [
            (b"\xa6[", "application/json", "Invalid JSON: expected value at line 1 column 1"),
            (b'[{"id": "a\xff"}]', "application/json", "Invalid JSON: invalid unicode code point"),
            (b"[" * 100_000 + b"]" * 100_000, "application/json", "Invalid JSON: recursion limit exceeded"),
            (b"", "application/json", "Invalid JSON: EOF while parsing a value"),
        ]:
            response = await http.post("/api/devices/import", content=body, headers={"Content-Type": content_type})
            assert response.status_code == 422, response.text
            [error] = response.json()["detail"]
            assert (error["type"], error["loc"], error["input"]) == ("json_invalid", ["body"], {})
            assert says in error["msg"]
        response = await http.post("/api/devices/import", content=b"[]", headers={"Content-Type": "text/csv"})
        assert (response.status_code, response.json()) == (
            415, {"detail": "send the records as application/json, not 'text/csv'"},
        )  # fmt: skip
        assert (await http.post("/api/devices/import", json={"devices": []})).json()["detail"][0]["type"] == "list_type"
