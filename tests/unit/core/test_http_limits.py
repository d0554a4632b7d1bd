"""``BodyLimit`` on its own, at the ASGI level: what is refused, when, and how much of a body is ever read."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from pydantic import BaseModel
from starlette.types import Message, Receive, Scope, Send

from core.http.limits import BodyLimit

LIMIT = 1000


class Note(BaseModel):
    note: str


def app(limit: int = LIMIT, routes: dict[str, int] | None = None) -> FastAPI:
    api = FastAPI()
    api.add_middleware(BodyLimit, max_bytes=limit, routes=routes)

    @api.post("/notes")
    async def notes(body: Note) -> dict[str, int]:
        return {"length": len(body.note)}

    @api.post("/bulk")
    async def bulk(body: Note) -> dict[str, int]:
        return {"length": len(body.note)}

    @api.post("/ignores-body")
    async def ignores() -> dict[str, str]:
        return {"status": "ok"}

    @api.post("/raw")
    async def raw(request: Request) -> dict[str, int]:
        return {"length": len(await request.body())}

    return api


async def post(api: FastAPI, path: str, body: bytes | AsyncIterator[bytes], **headers: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        return await http.post(path, content=body, headers={"Content-Type": "application/json", **headers})


def note(size: int) -> bytes:
    return json.dumps({"note": "x" * (size - 12)}).encode()


async def chunks(body: bytes, size: int = 100) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def test_a_body_at_the_limit_is_read() -> None:
    response = await post(app(), "/notes", note(LIMIT))
    assert response.status_code == 200
    assert response.json() == {"length": LIMIT - 12}


@pytest.mark.parametrize("path", ["/notes", "/ignores-body", "/raw", "/no-such-route"])
async def test_a_declared_length_over_the_limit_is_refused_whatever_the_route(path: str) -> None:
    response = await post(app(), path, note(LIMIT + 1))
    assert response.status_code == 413
    assert response.json() == {"detail": f"request body too large: this route takes at most {LIMIT} bytes"}
    assert response.headers["connection"] == "close"


@pytest.mark.parametrize("path", ["/notes", "/raw"])
async def test_an_undeclared_length_is_counted_as_it_arrives(path: str) -> None:
    response = await post(app(), path, chunks(note(LIMIT + 1)))
    assert response.status_code == 413
    assert "at most 1000 bytes" in response.json()["detail"]
    assert (await post(app(), path, chunks(note(LIMIT)))).status_code == 200


async def test_reading_stops_one_chunk_past_the_limit() -> None:
    """The app is handed the chunks one by one; the one that passes the limit is the last one read."""
    handed: list[int] = []
    limited = BodyLimit(app(limit=10**9), max_bytes=LIMIT)  # the inner app would take anything

    chunk = b"x" * 100
    messages: list[Message] = [{"type": "http.request", "body": chunk, "more_body": True} for _ in range(100)]

    async def receive() -> Message:
        message = messages.pop(0)
        handed.append(len(message["body"]))
        return message

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/raw", "raw_path": b"/raw", "query_string": b"", "root_path": "",
        "headers": [(b"host", b"api")], "client": ("127.0.0.1", 1), "server": ("api", 80),
    }  # fmt: skip
    await limited(scope, receive, send)
    assert sum(handed) == LIMIT + 100
    assert sent[0]["status"] == 413


async def test_a_route_can_take_more_or_less() -> None:
    api = app(routes={"/bulk": 10 * LIMIT, "/raw": 10})
    assert (await post(api, "/bulk", note(5 * LIMIT))).status_code == 200
    assert (await post(api, "/bulk", chunks(note(5 * LIMIT)))).status_code == 200
    assert (await post(api, "/notes", note(5 * LIMIT))).status_code == 413
    assert (await post(api, "/raw", b"x" * 11)).json()["detail"].endswith("at most 10 bytes")


async def test_a_length_that_is_not_a_number_is_400() -> None:
    answers: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        answers.append(message)

    async def never(_scope: Scope, _receive: Receive, _send: Send) -> None:
        raise AssertionError("the app must not be called")

    scope: dict[str, Any] = {"type": "http", "path": "/notes", "headers": [(b"content-length", b"12abc")]}
    await BodyLimit(never, max_bytes=LIMIT)(scope, receive, send)
    assert answers[0]["status"] == 400
    assert json.loads(answers[1]["body"]) == {"detail": "Content-Length '12abc' is not a number of bytes"}


def test_limits_are_not_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        BodyLimit(app(), max_bytes=-1)
