"""The registry's HTTP API: ``PUT/GET/DELETE /api/devices/{id}`` and ``GET /api/devices`` with filters, text search
(``q``), ``sort`` and paging, all done by the store, so ``total`` and the pages are those of the whole registry.

Creating a device answers 201 with its MQTT credentials, once: ``{"device": {...}, "credentials": {"username",
"password"}}``; replacing one answers 200 without them. Bad records are refused with 422 and pydantic's field errors,
threshold overrides out of order with 422 naming the metric and its levels (``override_problems``).
"""

from __future__ import annotations

from typing import Annotated, Any, Final, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from core.clock import now_ms
from core.contracts.catalogue import Department, DeviceKind
from core.contracts.device import Device, override_problems
from devices.health import Health, Status
from devices.registry import Registry
from devices.store import Sort

PREFIX: Final = "/api/devices"
IMPORT_PATH: Final = f"{PREFIX}/import"
MAX_IMPORT_RECORDS: Final = 10_000
# One import takes up to 10,000 records (MAX_IMPORT_RECORDS); a record with thresholds and meta is about a kilobyte.
IMPORT_MAX_BODY_BYTES: Final = 16 * 1024 * 1024
SQLITE_MAX_INT: Final = 2**63 - 1  # a larger offset is not an SQLite integer: 422, not 500
Q_DOC: Final = "text in the id, site id or site name: case-insensitive, literal (% and _ are not wildcards)"
SORT_DOC: Final = "id, site (site id), kind or updated (last change), each ascending; - first for descending"
_IMPORT_RECORDS: Final = TypeAdapter(Annotated[list[Device], Field(max_length=MAX_IMPORT_RECORDS)])
# The import reads its body itself (``_import_body``); its document says what a body parameter's would.
_IMPORT_DOC: Final[dict[str, Any]] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/Device"},
                    "maxItems": MAX_IMPORT_RECORDS,
                    "title": "Devices",
                }
            }
        },
    },
    "responses": {
        "422": {
            "description": "Validation Error",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}},
        }
    },
}


class CredentialsOut(BaseModel):
    username: str
    password: str


class SavedOut(BaseModel):
    device: Device
    created: bool
    credentials: CredentialsOut | None = None


class PageOut(BaseModel):
    devices: list[Device]
    total: int
    offset: int
    limit: int
    health: dict[str, Health] = Field(default_factory=dict, description="the page's devices' health, by id")


T = TypeVar("T")


def _found(thing: T | None, device_id: str) -> T:
    if thing is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no device {device_id!r}")
    return thing


async def _import_body(request: Request) -> list[Device]:
    """The import's records, read only when the route runs, after the router's dependencies have checked the token
    and that it is an administrator's. Not a body parameter: FastAPI reads and parses those before it runs any
    dependency, so anyone without a token could make the API take and parse 16 MiB on the event loop the alerts
    service shares. Errors are 422 in FastAPI's own shape, as a body parameter's were; a body that is not JSON is
    not echoed back (``input: {}``, as FastAPI answers it)."""
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, f"send the records as application/json, not {content_type[:60]!r}"
        )
    body = await request.body()
    try:
        return _IMPORT_RECORDS.validate_json(body)
    except ValidationError as exc:
        errors = [
            {**e, "loc": ("body", *e["loc"]), "input": {} if e["type"] == "json_invalid" else e["input"]}
            for e in exc.errors(include_url=False, include_context=False)
        ]
        raise RequestValidationError(errors) from exc


def _check_overrides(devices: list[Device], *, listed: bool) -> None:
    """422 naming every threshold override out of order (``override_problems``): metric, levels and, in an import
    (``listed``), the record's index; FastAPI's own shape, ``loc`` ``["body", (index,) "thresholds", metric]``."""
    errors = [
        {
            "type": "value_error",
            "loc": ("body", *((i,) if listed else ()), "thresholds", metric),
            "msg": message,
            "input": device.thresholds[metric],
        }
        for i, device in enumerate(devices)
        for metric, message in override_problems(device.thresholds).items()
    ]
    if errors:
        raise RequestValidationError(errors)


def devices_router(registry: Registry, auth: Any) -> APIRouter:
    """``auth`` is the dependency that checks the bearer token (shared by every /api/ router)."""
    router = APIRouter(prefix=PREFIX, tags=["devices"], dependencies=[Depends(auth)])

    @router.put("/{device_id}", response_model=SavedOut, response_model_exclude_none=True)
    async def put_device(device_id: str, device: Device, response: Response) -> SavedOut:
        if device.id != device_id:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, f"body id {device.id!r} differs from path {device_id!r}")
        _check_overrides([device], listed=False)
        saved = await registry.put(device)
        response.status_code = status.HTTP_201_CREATED if saved.created else status.HTTP_200_OK
        creds = saved.credentials
        return SavedOut(
            device=saved.device,
            created=saved.created,
            credentials=CredentialsOut(username=creds.username, password=creds.password) if creds else None,
        )

    @router.post(
        IMPORT_PATH.removeprefix(PREFIX),
        response_model=list[SavedOut],
        response_model_exclude_none=True,
        openapi_extra=_IMPORT_DOC,
    )
    async def import_devices(request: Request) -> list[SavedOut]:
        """Create or replace many devices at once (``smartcity devices import`` uses it); ids must be unique."""
        devices = await _import_body(request)
        ids = [d.id for d in devices]
        if len(set(ids)) != len(ids):
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "duplicate device ids in one import")
        _check_overrides(devices, listed=True)
        return [
            SavedOut(
                device=s.device,
                created=s.created,
                credentials=CredentialsOut(username=s.credentials.username, password=s.credentials.password)
                if s.credentials
                else None,
            )
            for s in await registry.put_many(devices)
        ]

    @router.get("/{device_id}", response_model=Device)
    async def get_device(device_id: str) -> Device:
        return _found(registry.get(device_id), device_id)

    @router.get("/{device_id}/health", response_model=Health)
    async def device_health(device_id: str) -> Health:
        return _found(registry.health_of(device_id), device_id)

    @router.delete("/{device_id}", status_code=status.HTTP_204_NO_CONTENT)
    async def delete_device(device_id: str) -> None:
        if not await registry.delete(device_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no device {device_id!r}")

    @router.get("", response_model=PageOut)
    async def list_devices(
        kind: DeviceKind | None = None,
        site: str | None = None,
        department: Department | None = None,
        status: Annotated[Status | None, Query(description="online or offline (see /health)")] = None,
        q: Annotated[str | None, Query(max_length=200, description=Q_DOC)] = None,
        sort: Annotated[Sort, Query(description=SORT_DOC)] = Sort.ID,
        offset: Annotated[int, Query(ge=0, le=SQLITE_MAX_INT)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> PageOut:
        page = registry.query(
            kind=kind, site_id=site, department=department, status=status, text=q, sort=sort, offset=offset, limit=limit
        )
        now = now_ms()
        health = {d.id: registry.health.health(d, now) for d in page.devices}
        return PageOut(devices=page.devices, total=page.total, offset=offset, limit=limit, health=health)

    return router
