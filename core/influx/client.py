"""Writing line protocol to InfluxDB: one writer for the v1 and v2 HTTP APIs, and errors that say what to do.

What is guaranteed:

- ``LineWriter.write`` returns only once InfluxDB answered 2xx for every line. Otherwise it raises, and the
  exception tells the caller whether a retry can help:

  ::

      SmartCityError
      ├── TransportError
      │   └── InfluxUnavailable   not now: no connection, a timeout, 5xx, 429; ``retry_after`` seconds
      │                           (from the server's ``Retry-After`` when it sends one)
      └── InfluxRefused           never as it is: 400 (a bad line, a field type conflict), 401/403 (credentials),
                                  404 (no such database), other 4xx; the message carries InfluxDB's own text

- Retrying a whole batch is safe. A point is identified by measurement, tag set and timestamp; writing the same
  line twice stores it once, so a batch that partly got through before an ``InfluxUnavailable`` can be sent again.
- Lines are built with ``influxdb_client.Point`` (``point_line``), never escaped by hand, at millisecond precision
  (the precision of every timestamp in our contracts). One point is always one physical line: line breaks inside
  string fields are written as the two characters ``\\n``, because VictoriaMetrics' parser ends a line at a raw
  newline even inside quotes and silently drops the broken point.
- Batches longer than ``influx_batch_lines`` go out as several requests, in order.

The v1 path (``/write``, ``/query``; InfluxDB 1.x, the one-machine stack) uses httpx; ``ensure_database`` creates
the database (idempotent). The v2 path (``/api/v2/write``; InfluxDB 2.x/3.x, VictoriaMetrics) uses influxdb-client's
async write API and assumes the bucket exists: creating buckets needs an all-access token we do not want services
to hold, so it is created at setup (compose.yaml's ``DOCKER_INFLUXDB_INIT_BUCKET``).

This module knows nothing about readings or alerts: sinks build lines with ``point_line`` and hand batches over.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from email.utils import parsedate_to_datetime
from time import time
from typing import Any, Literal, cast
from urllib.parse import urlsplit

import aiohttp
import httpx
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
from influxdb_client.client.write.point import Point
from influxdb_client.client.write_api_async import WriteApiAsync
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException
from pydantic import Field, SecretStr, field_validator

from core.errors import SmartCityError, TransportError
from core.settings import _Base

logger = logging.getLogger(__name__)

FieldValue = float | int | bool | str
DEFAULT_RETRY_S = 1.0
MAX_RETRY_S = 300.0

# influxdb-client's Point is unannotated, and its WritePrecision members are plain str constants.
_Point: Any = Point
_MS = cast(WritePrecision, WritePrecision.MS)


class InfluxUnavailable(TransportError):
    """InfluxDB did not take the batch now (unreachable, timeout, 5xx, 429). Keep it and retry after
    ``retry_after`` seconds."""


class InfluxRefused(SmartCityError):
    """InfluxDB will not take the batch as it is: a bad line or a field type conflict (400), or a configuration
    problem (401/403 credentials, 404 database). ``status`` is the HTTP status (0: no response)."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class InfluxConnection(_Base):
    """Where InfluxDB is and how to write to it. ``influx_api`` picks the v1 or the v2 fields; the others are
    ignored."""

    influx_url: str = Field("http://127.0.0.1:8086", description="http(s)://host:port of InfluxDB")
    influx_api: Literal["v1", "v2"] = Field("v1", description="v1: InfluxDB 1.x; v2: InfluxDB 2.x/3.x, VictoriaMetrics")
    influx_db: str = Field("smartcity", min_length=1, description="v1: the database (created if missing)")
    influx_rp: str | None = Field(None, description="v1: retention policy (none: the database's default)")
    influx_username: str | None = Field(None, description="v1: basic auth user, when auth is enabled")
    influx_password: SecretStr | None = None
    influx_token: SecretStr | None = Field(None, description="v2: API token with write access to the bucket")
    influx_org: str = Field("smartcity", min_length=1, description="v2: organization name or id")
    influx_bucket: str = Field("smartcity", min_length=1, description="v2: the bucket (must exist)")
    influx_timeout_s: float = Field(10.0, gt=0, le=300, description="one HTTP request, connect to last byte")
    influx_batch_lines: int = Field(5000, ge=1, le=100_000, description="lines per HTTP request at most")

    @field_validator("influx_url")
    @classmethod
    def _influx_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected http://host:port or https://host:port, got {value!r}")
        return value.rstrip("/")

    @property
    def influx_target(self) -> str:
        """Where lines go, for log lines and error messages."""
        if self.influx_api == "v1":
            rp = f", rp {self.influx_rp!r}" if self.influx_rp else ""
            return f"database {self.influx_db!r}{rp} at {self.influx_url}"
        return f"bucket {self.influx_bucket!r} (org {self.influx_org!r}) at {self.influx_url}"


def point_line(measurement: str, tags: Mapping[str, str], fields: Mapping[str, FieldValue], ts_ms: int) -> str:
    """One point in line protocol, timestamp in epoch milliseconds (write with precision ``ms``).

    Escaping is influxdb-client's. Tags with an empty value are left out (InfluxDB has no empty tags). ``int``
    fields are written as integers (``5i``), ``float`` as floats: InfluxDB fixes a field's type on first write and
    refuses the other one afterwards, so callers must pass one Python type per field name. Raises ``ValueError``
    for a value InfluxDB cannot store (not finite, unsupported type) and for a point without fields: a caller's
    bug, never silently dropped.
    """
    if not measurement or measurement.startswith("#"):
        raise ValueError(f"measurement {measurement!r}: must be non-empty and not start with '#' (a comment)")
    point = _Point(measurement)
    for key, tag in tags.items():
        point.tag(key, tag)
    for name, value in fields.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"field {name!r} of {measurement!r} is {value}: InfluxDB stores finite numbers only")
        if not isinstance(value, float | int | str):
            raise ValueError(f"field {name!r} of {measurement!r}: unsupported type {type(value).__name__}")
        if isinstance(value, str):
            value = value.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
        point.field(name, value)
    point.time(ts_ms, _MS)
    line: str = point.to_line_protocol()
    if not line:
        raise ValueError(f"a point of {measurement!r} needs at least one field")
    return line


def _error_text(body: bytes | str | None) -> str:
    """InfluxDB's reason: ``{"error": ...}`` (v1), ``{"message": ...}`` (v2), or plain text (VictoriaMetrics)."""
    if body is None:
        return ""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        doc = json.loads(text)
    except ValueError:
        return text.strip()[:500]
    if isinstance(doc, dict):
        for key in ("error", "message"):
            if isinstance(doc.get(key), str):
                return str(doc[key])[:500]
    return text.strip()[:500]


def _retry_after(header: str | None) -> float:
    """Seconds from a ``Retry-After`` header (delta seconds or an HTTP date), clamped to [0, 300]."""
    if not header:
        return DEFAULT_RETRY_S
    try:
        seconds = float(header)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(header).timestamp() - time()
        except (TypeError, ValueError):
            return DEFAULT_RETRY_S
    return min(max(seconds, 0.0), MAX_RETRY_S)


def status_error(status: int, reason: str, retry_after: str | None, target: str) -> SmartCityError:
    """The exception for a non-2xx answer of InfluxDB (or of anything speaking its protocol)."""
    said = f": {reason}" if reason else ""
    if status in (429, 503) or status >= 500:
        return InfluxUnavailable(f"InfluxDB ({target}) answered {status}{said}", retry_after=_retry_after(retry_after))
    if status in (401, 403):
        return InfluxRefused(
            f"InfluxDB ({target}) refused our credentials ({status}{said}); check SMARTCITY_INFLUX_USERNAME/"
            "SMARTCITY_INFLUX_PASSWORD (v1) or SMARTCITY_INFLUX_TOKEN (v2)",
            status=status,
        )
    if status == 404:
        return InfluxRefused(f"InfluxDB ({target}) has no such database or bucket (404{said})", status=status)
    return InfluxRefused(f"InfluxDB ({target}) refused the batch ({status}{said})", status=status)


class LineWriter:
    """Writes batches of lines (``point_line``) to one database (v1) or bucket (v2); see the module docstring.

    ``start`` before use, ``close`` after; both are idempotent. A writer is not shared between tasks that write at
    the same time: each sink owns one.
    """

    def __init__(self, conn: InfluxConnection) -> None:
        self.conn = conn
        self._http: httpx.AsyncClient | None = None
        self._client: InfluxDBClientAsync | None = None
        self._write_api: WriteApiAsync | None = None

    async def start(self) -> None:
        c = self.conn
        if self._http is not None or self._client is not None:
            return
        if c.influx_api == "v1":
            auth = None
            if c.influx_username:
                password = c.influx_password.get_secret_value() if c.influx_password else ""
                auth = httpx.BasicAuth(c.influx_username, password)
            self._http = httpx.AsyncClient(base_url=c.influx_url, auth=auth, timeout=c.influx_timeout_s)
        else:
            token = c.influx_token.get_secret_value() if c.influx_token else ""  # "": no Authorization header
            self._client = InfluxDBClientAsync(
                url=c.influx_url, token=token, org=c.influx_org, timeout=int(c.influx_timeout_s * 1000)
            )
            self._write_api = self._client.write_api()
        logger.info("InfluxDB writer (%s API) ready for %s", c.influx_api, c.influx_target)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        if self._client is not None:
            await self._client.close()  # type: ignore[no-untyped-call]
            self._client, self._write_api = None, None

    async def __aenter__(self) -> LineWriter:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def ensure_database(self) -> None:
        """v1: create the database unless it exists (``CREATE DATABASE`` is idempotent in InfluxDB 1.x). v2: does
        nothing; the bucket must exist (module docstring)."""
        if self.conn.influx_api != "v1":
            return
        name = self.conn.influx_db.replace("\\", "\\\\").replace('"', '\\"')
        response = await self._v1_post("/query", {"q": f'CREATE DATABASE "{name}"'}, None)
        try:
            doc = response.json()
        except ValueError:
            doc = {}
        results = doc.get("results", []) if isinstance(doc, dict) else []
        errors = [r["error"] for r in results if isinstance(r, dict) and r.get("error")]
        if errors:
            target = self.conn.influx_target
            raise InfluxRefused(f"InfluxDB ({target}): CREATE DATABASE failed: {errors[0]}", status=200)
        logger.info("InfluxDB database %r is ready at %s", self.conn.influx_db, self.conn.influx_url)

    async def write(self, lines: Sequence[str]) -> None:
        """Write ``lines`` (millisecond timestamps), ``influx_batch_lines`` per request, in order."""
        size = self.conn.influx_batch_lines
        for start in range(0, len(lines), size):
            body = "\n".join(lines[start : start + size]).encode()
            if self.conn.influx_api == "v1":
                params = {"db": self.conn.influx_db, "precision": "ms"}
                if self.conn.influx_rp:
                    params["rp"] = self.conn.influx_rp
                await self._v1_post("/write", params, body)
            else:
                await self._v2_write(body)

    async def _v1_post(self, path: str, params: dict[str, str], body: bytes | None) -> httpx.Response:
        if self._http is None:
            raise RuntimeError("LineWriter.start() was not awaited")
        target = self.conn.influx_target
        headers = {"Content-Type": "text/plain; charset=utf-8"} if body is not None else None
        try:
            response = await self._http.post(path, params=params, content=body, headers=headers)
        except httpx.TransportError as exc:
            raise InfluxUnavailable(f"InfluxDB ({target}) unreachable: {exc!r}", retry_after=DEFAULT_RETRY_S) from exc
        if response.is_success:
            return response
        reason = _error_text(response.content)
        raise status_error(response.status_code, reason, response.headers.get("Retry-After"), target)

    async def _v2_write(self, body: bytes) -> None:
        if self._write_api is None:
            raise RuntimeError("LineWriter.start() was not awaited")
        target = self.conn.influx_target
        try:
            await self._write_api.write(self.conn.influx_bucket, self.conn.influx_org, record=body, write_precision=_MS)
        except ApiException as exc:
            headers: Any = exc.headers or {}
            raise status_error(int(exc.status or 0), _v2_reason(exc), headers.get("Retry-After"), target) from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise InfluxUnavailable(f"InfluxDB ({target}) unreachable: {exc!r}", retry_after=DEFAULT_RETRY_S) from exc


def _v2_reason(exc: ApiException) -> str:
    if exc.body:
        return _error_text(exc.body)
    return str(exc.reason or "")
