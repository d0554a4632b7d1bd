"""Layers for other departments' GIS: the devices and the open alerts (``alerts.layer_sources``) as OGC API -
Features collections under ``/api/layers``, GeoJSON in CRS84, paged by ``next`` links, filtered by their properties,
``bbox`` and ``datetime``, each officer seeing their own departments' share. QGIS opens it as it is (docs/layers.md).

    /api/layers                                       landing page (also /api/layers/)
    /api/layers/api                                   OpenAPI 3.0 definition of what follows (``service-desc``)
    /api/layers/conformance                           Part 1 core, GeoJSON, OpenAPI 3.0
    /api/layers/collections[/{id}]                    the collections, with their extent as the officer sees it
    /api/layers/collections/{id}/items[/{featureId}]  features (``application/geo+json``)

Every route takes the officer's token as ``Authorization: Bearer`` (QGIS: an "API Header" authentication) or as
``?token=`` (a GIS client that sends no header: QGIS adds the query of the address it was given to every request it
derives, ``next`` links included); links never carry a token, so a saved document holds no credentials. No token
or an unknown one is 401; ``department=`` naming another department, or a feature outside the officer's, is 403. A
parameter the collection does not take, or a value it cannot read, is 400 (Part 1 asks for that), except a
``limit`` above the most, which is taken as the most.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from alerts import ogc_features as ogc
from alerts.layer_sources import Layer, Selection
from alerts.officers import Officer, Officers
from core.clock import now_ms
from core.contracts.catalogue import Department

PREFIX: Final = "/api/layers"
_COMMON: Final = frozenset({"limit", "offset", "bbox", "datetime", "department", "token"})
_bearer = HTTPBearer(auto_error=False)
_UNAUTHORIZED: Final = {"WWW-Authenticate": "Bearer"}
_REFUSAL: Final = {"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]}
_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    code: {"description": why, "content": {"application/json": {"schema": _REFUSAL}}}
    for code, why in [
        (400, "a parameter the collection does not take, or a value it cannot read: the detail says which"),
        (403, "another department's feature, or department= naming one"),
        (404, "no such collection or feature"),
    ]
}


class GeoJsonResponse(JSONResponse):
    media_type = ogc.GEOJSON


class OpenApiResponse(JSONResponse):
    media_type = ogc.OPENAPI_JSON


def _reader(officers: Officers) -> Callable[..., Officer]:
    """The officer of the bearer token, or of ``?token=`` when no bearer token is sent; else 401."""

    def officer(
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        token: Annotated[
            str | None,
            Query(description="the officer's token, for a GIS client that cannot send Authorization: Bearer"),
        ] = None,
    ) -> Officer:
        given = creds.credentials if creds is not None else token
        found = officers.by_token(given) if given else None
        if found is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or unknown token", headers=_UNAUTHORIZED)
        return found

    return officer


def layers_router(layers: Sequence[Layer], officers: Officers, prefix: str = PREFIX) -> APIRouter:
    """``layers``: the collections, in the order they are listed; their ids must differ."""
    by_id = {layer.id: layer for layer in layers}
    if len(by_id) != len(layers):
        raise ValueError(f"layer ids must be unique: {[layer.id for layer in layers]}")
    router = APIRouter(prefix=prefix, tags=["layers"], responses=_ERRORS)
    signed_in = Depends(_reader(officers))

    def collection_id() -> Any:  # a parameter object of its own for each route
        return Path(description="a collection's id", json_schema_extra={"enum": list(by_id)})

    items_doc = {"parameters": _items_parameters(layers)}

    def base(request: Request) -> str:
        return str(request.base_url).rstrip("/") + prefix

    def layer_of(name: str) -> Layer:
        layer = by_id.get(name)
        if layer is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no collection {name!r}; there are {', '.join(by_id)}")
        return layer

    def described(layer: Layer, request: Request, officer: Officer) -> dict[str, Any]:
        return ogc.collection(layer, base(request), layer.extent(_scope(officer, None)))

    @router.get("", response_class=JSONResponse)
    async def landing(request: Request, officer: Officer = signed_in) -> JSONResponse:
        """The landing page: links to the API definition, the conformance classes and the collections."""
        return JSONResponse(ogc.landing(base(request)))

    @router.get("/", response_class=JSONResponse, include_in_schema=False)
    async def landing_slash(request: Request, officer: Officer = signed_in) -> JSONResponse:
        return JSONResponse(ogc.landing(base(request)))

    @router.get("/api", response_class=OpenApiResponse)
    async def definition(request: Request, officer: Officer = signed_in) -> OpenApiResponse:
        """The layers' own OpenAPI 3.0 definition: each collection's items path with its filters (QGIS reads it)."""
        return OpenApiResponse(ogc.openapi(base(request), layers))

    @router.get("/conformance", response_class=JSONResponse)
    async def conformance(officer: Officer = signed_in) -> JSONResponse:
        return JSONResponse(ogc.conformance())

    @router.get("/collections", response_class=JSONResponse)
    async def collections(request: Request, officer: Officer = signed_in) -> JSONResponse:
        entries = [described(layer, request, officer) for layer in layers]
        return JSONResponse(ogc.collections(entries, base(request)))

    @router.get("/collections/{collection_id}", response_class=JSONResponse)
    async def collection(
        request: Request, collection_id: str = collection_id(), officer: Officer = signed_in
    ) -> JSONResponse:
        return JSONResponse(described(layer_of(collection_id), request, officer))

    @router.get("/collections/{collection_id}/items", response_class=GeoJsonResponse, openapi_extra=items_doc)
    async def items(
        request: Request, collection_id: str = collection_id(), officer: Officer = signed_in
    ) -> GeoJsonResponse:
        """A page of the collection's features: ``numberMatched`` in all, a ``next`` link while there are more."""
        layer = layer_of(collection_id)
        selection = _selection(request, layer, officer)
        page = layer.page(selection)
        here = request.url.remove_query_params("token")
        links = [
            ogc.link(str(here), "self", ogc.GEOJSON, "this page"),
            ogc.link(f"{base(request)}/collections/{layer.id}", "collection", ogc.JSON, layer.title),
        ]
        if selection.offset + len(page.features) < page.matched:
            after = here.include_query_params(offset=selection.offset + selection.limit, limit=selection.limit)
            links.append(ogc.link(str(after), "next", ogc.GEOJSON, "the next page"))
        if selection.offset > 0:
            before = here.include_query_params(offset=max(0, selection.offset - selection.limit), limit=selection.limit)
            links.append(ogc.link(str(before), "prev", ogc.GEOJSON, "the page before"))
        return GeoJsonResponse(ogc.feature_collection(page, links, now_ms()))

    @router.get("/collections/{collection_id}/items/{feature_id}", response_class=GeoJsonResponse)
    async def item(
        request: Request, feature_id: str, collection_id: str = collection_id(), officer: Officer = signed_in
    ) -> GeoJsonResponse:
        layer = layer_of(collection_id)
        found = layer.get(feature_id)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no feature {feature_id!r} in {layer.id}")
        if not officer.sees(list(found.departments)):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "this feature is not your departments'")
        here = f"{base(request)}/collections/{layer.id}"
        links = [
            ogc.link(str(request.url.remove_query_params("token")), "self", ogc.GEOJSON),
            ogc.link(here, "collection", ogc.JSON, layer.title),
        ]
        return GeoJsonResponse(ogc.feature(found, links))

    return router


def _selection(request: Request, layer: Layer, officer: Officer) -> Selection:
    """The items request's parameters, checked against what the collection takes (400 naming the one at fault)."""
    params = request.query_params
    unknown = sorted(set(params) - _COMMON - set(layer.filters))
    if unknown:
        takes = ", ".join(sorted((_COMMON - {"token"}) | set(layer.filters)))
        raise _bad(f"{layer.id} takes no {', '.join(unknown)}; it takes {takes}")
    repeated = sorted(name for name in set(params) if len(params.getlist(name)) > 1)
    if repeated:
        raise _bad(f"give {', '.join(repeated)} once")

    def read(name: str, parse: Callable[[str], Any]) -> Any:
        text = params.get(name)
        if text is None:
            return None
        try:
            return parse(text)
        except ValueError as exc:
            raise _bad(f"{name}: {exc}") from None

    limit = read("limit", lambda t: _whole(t, minimum=1))
    offset = read("offset", lambda t: _whole(t, minimum=0))
    department = read("department", _department)
    if department is not None and not officer.may_act_for(department):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"not an officer of {department}")
    equals = {f.property or name: read(name, f.parse) for name, f in layer.filters.items() if name in params}
    return Selection(
        departments=_scope(officer, department),
        equals=equals,
        bbox=read("bbox", ogc.parse_bbox),
        interval=read("datetime", ogc.parse_datetime),
        offset=offset or 0,
        limit=min(ogc.DEFAULT_LIMIT if limit is None else limit, ogc.MAX_LIMIT),
    )


def _scope(officer: Officer, department: Department | None) -> frozenset[Department] | None:
    """What the request may see: the department asked for, else the officer's (an administrator's: everything)."""
    if department is not None:
        return frozenset({department})
    return None if officer.admin else frozenset(officer.departments)


def _whole(text: str, *, minimum: int) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) < minimum:
        raise ValueError(f"a whole number, at least {minimum}")
    return int(text)


def _department(text: str) -> Department:
    try:
        return Department(text)
    except ValueError:
        raise ValueError(f"one of {', '.join(d.value for d in Department)}") from None


def _bad(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_400_BAD_REQUEST, detail)


def _items_parameters(layers: Sequence[Layer]) -> list[dict[str, Any]]:
    """The items route's query parameters for the app's document: the common ones, then every collection's own
    (each collection takes its own only: ``/api/layers/api`` lists them per collection)."""
    own: dict[str, list[str]] = {}
    for layer in layers:
        for name in layer.filters:
            own.setdefault(name, []).append(layer.id)
    return list(ogc.COMMON_PARAMETERS.values()) + [
        {"name": name, "in": "query", "required": False, "schema": {"type": "string"},
         "description": f"a filter of {', '.join(ids)}"}
        for name, ids in own.items()
    ]  # fmt: skip
