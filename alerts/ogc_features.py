"""OGC API - Features, Part 1 (Core), GeoJSON encoding: the documents ``alerts.layers`` answers and the parameters it
reads. Pure: layers, pages and addresses in, JSON-ready dicts out; a bad parameter is a ValueError saying why.

What QGIS's OAPIF provider needs of them, read from its source, shaped these choices: the landing page must link
``service-desc`` (QGIS fails the layer without it) and ``data``; the API document's
``components.parameters.limit`` gives QGIS the page size it asks for (its ``default``, raised to 1,000 and capped at
the ``maximum``), and an items path's query parameters of ``style: form, explode: false`` are the equality filters
QGIS hands to the server instead of filtering itself; ``next`` links are followed as given, with the connection's
own query (``?token=``) added back; a ``datetime`` bound of year 0000 means "no bound" (QGIS writes open intervals
so). Coordinates are CRS84 (longitude, latitude) only: no Part 2 ``crs`` parameter.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

from alerts.layer_sources import BBox, Feature, Layer, Page, iso
from core.contracts.catalogue import Department

GEOJSON: Final = "application/geo+json"
JSON: Final = "application/json"
OPENAPI_JSON: Final = "application/vnd.oai.openapi+json;version=3.0"
CRS84: Final = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
CONFORMANCE: Final = tuple(
    f"http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/{c}" for c in ("core", "geojson", "oas30")
)
DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = 10_000
_OPEN_YEAR: Final = re.compile(r"^0+-")

Links = list[dict[str, str]]


def link(href: str, rel: str, media_type: str, title: str | None = None) -> dict[str, str]:
    out = {"href": href, "rel": rel, "type": media_type}
    if title is not None:
        out["title"] = title
    return out


def landing(base: str) -> dict[str, Any]:
    return {
        "title": "SmartCity layers",
        "description": "Devices and open alerts of the smart district for other departments' GIS, each department "
        "seeing its own (OGC API - Features, GeoJSON, CRS84)",
        "links": [
            link(base, "self", JSON, "this document"),
            link(f"{base}/api", "service-desc", OPENAPI_JSON, "the API definition"),
            link(f"{base}/conformance", "conformance", JSON, "the conformance classes implemented"),
            link(f"{base}/collections", "data", JSON, "the collections"),
        ],
    }


def conformance() -> dict[str, Any]:
    return {"conformsTo": list(CONFORMANCE)}


def collection(layer: Layer, base: str, extent: BBox | None) -> dict[str, Any]:
    here = f"{base}/collections/{layer.id}"
    out: dict[str, Any] = {
        "id": layer.id,
        "title": layer.title,
        "description": layer.description,
        "itemType": "feature",
        "crs": [CRS84],
        "links": [link(here, "self", JSON), link(f"{here}/items", "items", GEOJSON, "the features")],
    }
    if extent is not None:
        out["extent"] = {"spatial": {"bbox": [list(extent)], "crs": CRS84}}
    return out


def collections(entries: Sequence[dict[str, Any]], base: str) -> dict[str, Any]:
    return {"links": [link(f"{base}/collections", "self", JSON)], "collections": list(entries)}


def feature(f: Feature, links: Links | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "Feature", "id": f.id, "geometry": f.geometry, "properties": dict(f.properties)}
    if links is not None:
        out["links"] = links
    return out


def feature_collection(page: Page, links: Links, now_ms: int) -> dict[str, Any]:
    return {
        "type": "FeatureCollection",
        "features": [feature(f) for f in page.features],
        "numberMatched": page.matched,
        "numberReturned": len(page.features),
        "timeStamp": iso(now_ms),
        "links": links,
    }


# -- parameters -------------------------------------------------------------------------------------------------


def parse_bbox(text: str) -> BBox:
    """``west,south,east,north`` (or six numbers, with heights, which are ignored), CRS84 degrees."""
    try:
        numbers = [float(n) for n in text.split(",")]
    except ValueError:
        raise ValueError("four numbers: west,south,east,north (degrees, CRS84)") from None
    if len(numbers) not in (4, 6) or any(n != n or abs(n) == float("inf") for n in numbers):
        raise ValueError("four numbers: west,south,east,north (degrees, CRS84)")
    west, south, east, north = numbers if len(numbers) == 4 else (numbers[0], numbers[1], numbers[3], numbers[4])
    if not (-90 <= south <= north <= 90) or not (-180 <= west <= 180 and -180 <= east <= 180):
        raise ValueError("south <= north within -90..90, west and east within -180..180 (west > east crosses 180)")
    return BBox(west, south, east, north)


def parse_datetime(text: str) -> tuple[int | None, int | None]:
    """An instant or a date (the whole day), or an interval ``start/end`` of them with ``..`` or nothing for an open
    end, as epoch ms; a time without an offset is UTC (RFC 3339 requires one)."""
    if "/" not in text:
        low, high = _bound(text, end=False), _bound(text, end=True)
        if low is None:
            raise ValueError("an instant, a date or an interval start/end")
        return low, high
    if text.count("/") > 1:
        raise ValueError("one interval: start/end")
    start, _, end = text.partition("/")
    low, high = _bound(start, end=False), _bound(end, end=True)
    if low is None and high is None:
        raise ValueError("an interval has a start, an end or both")
    if low is not None and high is not None and low > high:
        raise ValueError("an interval's start comes before its end")
    return low, high


def _bound(text: str, *, end: bool) -> int | None:
    text = text.strip()
    if text in ("", "..") or _OPEN_YEAR.match(text):
        return None
    try:
        if "T" not in text.upper():
            day = date.fromisoformat(text)
            moment = datetime.combine(day, time(), UTC) + (timedelta(days=1, milliseconds=-1) if end else timedelta())
        else:
            moment = datetime.fromisoformat(text)
            moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError):  # the day after 9999-12-31 overflows
        raise ValueError(f"RFC 3339 date-times or dates, {text[:40]!r} is neither") from None
    return int(moment.timestamp() * 1000)


# -- the API definition (service-desc) --------------------------------------------------------------------------


def _parameter(name: str, schema: Mapping[str, Any], description: str, where: str = "query") -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "description": description,
        "style": "form" if where == "query" else "simple",
        "explode": False,
        "schema": dict(schema),
    }


COMMON_PARAMETERS: Final[dict[str, dict[str, Any]]] = {
    "limit": _parameter(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
        f"features in one page; more than {MAX_LIMIT} is taken as {MAX_LIMIT}",
    ),
    "offset": _parameter(
        "offset", {"type": "integer", "minimum": 0, "default": 0}, "features skipped (the next link sets it)"
    ),
    "bbox": _parameter(
        "bbox",
        {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}},
        "west,south,east,north in degrees (CRS84): features whose geometry's bounding box meets it",
    ),
    "datetime": _parameter(
        "datetime",
        {"type": "string"},
        "an RFC 3339 instant or interval (start/end, .. for open): features whose time meets it (devices: last "
        "seen; alerts: open since opened_at)",
    ),
    "department": _parameter(
        "department",
        {"type": "string", "enum": [d.value for d in Department]},
        "only features of this department (an officer: one of theirs)",
    ),
}


def openapi(base: str, layers: Sequence[Layer]) -> dict[str, Any]:
    """An OpenAPI 3.0 document of the layers, with a path of its own for each collection's items and filters."""
    refs = [{"$ref": f"#/components/parameters/{name}"} for name in COMMON_PARAMETERS]
    paths: dict[str, Any] = {
        "/": _get("the landing page", JSON),
        "/api": _get("this document", OPENAPI_JSON),
        "/conformance": _get("the conformance classes implemented", JSON),
        "/collections": _get("the collections", JSON),
    }
    feature_id = [_parameter("featureId", {"type": "string"}, "a feature's id", "path")]
    for layer in layers:
        own = [_parameter(name, f.schema(), f"features whose {f.property or name} is this") for name, f in
               layer.filters.items()]  # fmt: skip
        paths[f"/collections/{layer.id}"] = _get(f"the {layer.id} collection", JSON)
        paths[f"/collections/{layer.id}/items"] = _get(layer.description, GEOJSON, refs + own)
        paths[f"/collections/{layer.id}/items/{{featureId}}"] = _get(f"one of {layer.id}", GEOJSON, feature_id)
    return {
        "openapi": "3.0.3",
        "info": {"title": "SmartCity layers", "version": "1.0.0", "description": landing(base)["description"]},
        "servers": [{"url": base}],
        "paths": paths,
        "components": {
            "parameters": COMMON_PARAMETERS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "an officer's token"},
                "token": {"type": "apiKey", "in": "query", "name": "token", "description": "the same, in the query"},
            },
        },
        "security": [{"bearer": []}, {"token": []}],
    }


def _get(summary: str, media_type: str, parameters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    responses = {
        "200": {"description": summary, "content": {media_type: {"schema": {"type": "object"}}}},
        "400": {"description": "a parameter is not understood: the detail says which"},
        "401": {"description": "no token, or not an officer's"},
        "403": {"description": "not the officer's department"},
        "404": {"description": "no such collection or feature"},
    }
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if parameters:
        operation["parameters"] = parameters
    return {"get": operation}
