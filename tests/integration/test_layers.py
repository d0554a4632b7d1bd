"""The GIS layers (``/api/layers``, OGC API - Features) against the whole API on real Tansu, InfluxDB and Mosquitto,
over real HTTP, read the way QGIS's OAPIF provider reads them: landing page, API definition, collections, then items
page by page through ``next`` links.

The documents are checked against a JSON Schema of what OGC API - Features Part 1 (Core) requires of them, written
here from the standard (OGC 17-069r4: landing page, conformance, collections, feature collection and feature with
GeoJSON, links): the OGC's own schema files are not in the environment. jsonschema_rs is schemathesis's validator
(constraints.txt pins it).
"""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

import httpx
import jsonschema_rs
import pytest

from core.contracts.finding import Hazard
from tests.alerts_util import ADMIN, FIRE_OFFICER
from tests.api_util import LiveApi, water_gauge
from tests.unit.alerts.factories import finding

pytestmark = pytest.mark.integration

LAYERS = "/api/layers"
GEOJSON = "application/geo+json"
CORE = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core"
GEOJSON_CLASS = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"

_LINK = {
    "type": "object",
    "required": ["href", "rel"],
    "properties": {"href": {"type": "string", "format": "uri"}, "rel": {"type": "string"}, "type": {"type": "string"},
                   "title": {"type": "string"}},
}  # fmt: skip
_LINKS = {"type": "array", "items": _LINK}
_POSITION = {"type": "array", "minItems": 2, "items": {"type": "number"}}
_FEATURE = {
    "type": "object",
    "required": ["type", "geometry", "properties"],
    "properties": {
        "type": {"const": "Feature"},
        "id": {"type": ["string", "integer"]},
        "geometry": {"oneOf": [
            {"type": "null"},
            {"type": "object", "required": ["type", "coordinates"],
             "properties": {"type": {"const": "Point"}, "coordinates": _POSITION}},
            {"type": "object", "required": ["type", "coordinates"],  # a closed ring of four positions or more
             "properties": {"type": {"const": "Polygon"}, "coordinates": {"type": "array", "minItems": 1, "items": {
                 "type": "array", "minItems": 4, "items": _POSITION}}}},
        ]},
        "properties": {"type": ["object", "null"]},
        "links": _LINKS,
    },
}  # fmt: skip
_BBOX = {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}}
_COLLECTION = {
    "type": "object",
    "required": ["id", "links"],
    "properties": {
        "id": {"type": "string"}, "title": {"type": "string"}, "description": {"type": "string"}, "links": _LINKS,
        "extent": {"type": "object", "properties": {"spatial": {"type": "object", "properties": {
            "bbox": {"type": "array", "minItems": 1, "items": _BBOX}, "crs": {"const": CRS84}}}}},
        "crs": {"type": "array", "items": {"type": "string"}},
        "itemType": {"type": "string"},
    },
}  # fmt: skip
SCHEMAS = {
    "landing": {"type": "object", "required": ["links"], "properties": {"title": {"type": "string"}, "links": _LINKS}},
    "conformance": {"type": "object", "required": ["conformsTo"],
                    "properties": {"conformsTo": {"type": "array", "items": {"type": "string"}}}},
    "collections": {"type": "object", "required": ["links", "collections"],
                    "properties": {"links": _LINKS, "collections": {"type": "array", "items": _COLLECTION}}},
    "collection": _COLLECTION,
    "items": {
        "type": "object",
        "required": ["type", "features"],
        "properties": {
            "type": {"const": "FeatureCollection"},
            "features": {"type": "array", "items": _FEATURE},
            "links": _LINKS,
            "timeStamp": {"type": "string", "format": "date-time"},
            "numberMatched": {"type": "integer", "minimum": 0},
            "numberReturned": {"type": "integer", "minimum": 0},
        },
    },
    "feature": _FEATURE,
}  # fmt: skip
VALIDATORS = {name: jsonschema_rs.validator_for(s, validate_formats=True) for name, s in SCHEMAS.items()}


def valid(what: str, response: httpx.Response, media_type: str = "application/json") -> Any:
    """The body of a 200 answer of ``media_type``, checked against the Part 1 schema of ``what``."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == media_type
    body = response.json()
    VALIDATORS[what].validate(body)
    return body


def rel(body: dict[str, Any], name: str) -> dict[str, str] | None:
    return next((link for link in body["links"] if link["rel"] == name), None)


async def devices(api: LiveApi, *records: dict[str, Any]) -> None:
    async with api.client(ADMIN) as admin:
        imported = await admin.post("/api/devices/import", json=list(records))
        assert imported.status_code == 200, imported.text


async def test_qgis_finds_the_definition_the_conformance_and_the_collections(api: LiveApi) -> None:
    async with api.client(ADMIN) as http:
        landing = valid("landing", await http.get(LAYERS))
        assert landing == valid("landing", await http.get(f"{LAYERS}/"))  # with a slash too
        links = {link["rel"]: link for link in landing["links"]}
        assert links["service-desc"]["type"] == "application/vnd.oai.openapi+json;version=3.0"  # QGIS needs it
        assert links["data"]["type"] == "application/json"
        assert all(link["href"].startswith(api.url + LAYERS) for link in landing["links"])

        definition = await http.get(links["service-desc"]["href"])
        assert definition.headers["content-type"] == links["service-desc"]["type"]
        doc = definition.json()
        assert doc["openapi"].startswith("3.0")
        # what QGIS reads of it: the page size, and each collection's filters it may leave to the server
        assert doc["components"]["parameters"]["limit"]["schema"].items() >= {"default": 100, "maximum": 10_000}.items()
        kind = next(
            p for p in doc["paths"]["/collections/devices/items"]["get"]["parameters"] if p.get("name") == "kind"
        )
        assert (kind["in"], kind["style"], kind["explode"], kind["schema"]["type"]) == (
            "query",
            "form",
            False,
            "string",
        )
        assert {"/collections/alerts/items", "/collections/devices/items/{featureId}"} <= set(doc["paths"])

        conformance = valid("conformance", await http.get(links["conformance"]["href"]))
        assert {CORE, GEOJSON_CLASS} <= set(conformance["conformsTo"])

        listed = valid("collections", await http.get(links["data"]["href"]))
        assert [c["id"] for c in listed["collections"]] == ["devices", "alerts", "incidents"]
        for entry in listed["collections"]:
            assert valid("collection", await http.get(rel(entry, "self")["href"])) == entry  # type: ignore[index]
            assert rel(entry, "items")["type"] == GEOJSON  # type: ignore[index]
            assert entry["crs"] == [CRS84]
        assert (await http.get(f"{LAYERS}/collections/lava")).status_code == 404


async def test_items_are_paged_through_next_links_with_number_matched(api: LiveApi, unique: str) -> None:
    ids = [f"g{i}-{unique}" for i in range(7)]
    await devices(api, *(water_gauge(i, lon=114.0 + n / 100) for n, i in enumerate(ids)))
    seen: list[str] = []
    url: str | None = f"{api.url}{LAYERS}/collections/devices/items?limit=3"
    pages = 0
    async with api.client(ADMIN) as http:
        while url is not None:
            page = valid("items", await http.get(url), GEOJSON)
            assert (page["numberMatched"], page["numberReturned"]) == (7, len(page["features"]))
            datetime.fromisoformat(page["timeStamp"])
            assert rel(page, "self")["href"] == url  # type: ignore[index]
            assert rel(page, "collection")["href"] == f"{api.url}{LAYERS}/collections/devices"  # type: ignore[index]
            assert (rel(page, "prev") is None) == (pages == 0)
            seen += [f["id"] for f in page["features"]]
            url = (rel(page, "next") or {}).get("href")
            pages += 1
    assert pages == 3
    assert seen == sorted(ids), "every device once, in id order"

    first = seen[0]
    async with api.client(ADMIN) as http:
        one = valid("feature", await http.get(f"{LAYERS}/collections/devices/items/{first}"), GEOJSON)
        assert one["geometry"] == {"type": "Point", "coordinates": [114.0, 22.70]}
        assert one["properties"].items() >= {
            "id": first, "kind": "water", "site_id": "R02", "site_name": "龙岗河水位站",
            "departments": ["water", "emergency"], "status": "offline", "last_seen": None,
        }.items()  # fmt: skip
        assert (await http.get(f"{LAYERS}/collections/devices/items/nope-{unique}")).status_code == 404
        # a limit above the most is taken as the most (Part 1), not refused
        big = valid("items", await http.get(f"{LAYERS}/collections/devices/items", params={"limit": 20_000}), GEOJSON)
        assert (big["numberReturned"], rel(big, "next")) == (7, None)


async def test_bbox_and_the_collections_own_filters(api: LiveApi, unique: str) -> None:
    await devices(
        api,
        water_gauge(f"w-in-{unique}", lon=114.20, lat=22.70),
        water_gauge(f"w-out-{unique}", lon=113.50, lat=22.70),
        water_gauge(f"g-in-{unique}", kind="gas", lon=114.21, lat=22.71, site=f"S-{unique}", thresholds=None),
    )

    async def ids(**params: Any) -> list[str]:
        async with api.client(ADMIN) as http:
            page = valid("items", await http.get(f"{LAYERS}/collections/devices/items", params=params), GEOJSON)
        return [f["id"] for f in page["features"]]

    assert await ids(bbox="114.1,22.6,114.3,22.8") == [f"g-in-{unique}", f"w-in-{unique}"]
    assert await ids(bbox="114.1,22.6,114.3,22.8", kind="water") == [f"w-in-{unique}"]
    assert await ids(site_id=f"S-{unique}") == [f"g-in-{unique}"]
    assert await ids(bbox="179,-90,-179,90") == []  # crossing the antimeridian
    assert len(await ids(status="offline")) == 3  # never heard from
    assert await ids(status="online") == []
    assert await ids(datetime="2020-01-01T00:00:00Z/..") == []  # devices' time is last seen: none yet

    async with api.client(ADMIN) as http:
        for params, says in [
            ({"bbox": "114,22"}, "bbox: four numbers"),
            ({"bbox": "114,23,115,22"}, "bbox: south <= north"),
            ({"kind": "lava"}, "kind: one of gas, water, fire, structural"),
            ({"level": "red"}, "devices takes no level"),
            ({"limit": "0"}, "limit: a whole number, at least 1"),
            ({"datetime": "yesterday"}, "datetime: RFC 3339"),
            ({"department": "police"}, "department: one of"),
        ]:
            refused = await http.get(f"{LAYERS}/collections/devices/items", params=params)
            assert refused.status_code == 400, (params, refused.text)
            assert refused.json()["detail"].startswith(says), refused.text


async def test_open_alerts_as_features_filtered_by_level_hazard_and_time(api: LiveApi, unique: str) -> None:
    gas = await api.raise_alert(finding(f"gas-{unique}"))
    fire = await api.raise_alert(finding(f"fire-{unique}", rule="fire.temp", hazard=Hazard.FIRE))

    async def features(**params: Any) -> list[dict[str, Any]]:
        async with api.client(ADMIN) as http:
            page = valid("items", await http.get(f"{LAYERS}/collections/alerts/items", params=params), GEOJSON)
        return [f for f in page["features"] if f["id"] in (gas.id, fire.id)]

    [shown] = await features(hazard="gas")
    assert shown["geometry"] == {"type": "Point", "coordinates": [114.25, 22.7]}
    props = shown["properties"]
    assert props.items() >= {
        "id": gas.id, "key": gas.key, "level": "orange", "hazard": "gas", "rule": "gas.ch4",
        "title_zh": "可燃气体浓度超限", "title_en": "Combustible gas above limit", "departments": ["emergency"],
        "active": True, "acknowledged": False, "exercise": False,
    }.items()  # fmt: skip
    assert datetime.fromisoformat(props["opened_at"]).timestamp() * 1000 == gas.opened_at
    assert [f["id"] for f in await features(hazard="fire", level="orange")] == [fire.id]
    assert await features(exercise="true") == []
    # an open alert lasts from opened_at on: an interval ending before it leaves it out, one after it keeps it
    before = datetime.fromtimestamp(gas.opened_at / 1000 - 3600).astimezone().isoformat()
    assert await features(datetime=f"../{before}") == []
    assert len(await features(datetime=f"{before}/..")) == 2
    assert len(await features(datetime="2999-01-01")) == 2


async def test_open_incidents_as_areas(api: LiveApi, unique: str) -> None:
    gas = await api.raise_alert(finding(f"gas-{unique}", site=f"site-{unique}"))
    assert gas.incident_id is not None
    async with api.client(ADMIN) as http:
        page = valid(
            "items", await http.get(f"{LAYERS}/collections/incidents/items", params={"hazard": "gas"}), GEOJSON
        )
        [shown] = [f for f in page["features"] if f["id"] == gas.incident_id]
        one = valid("feature", await http.get(f"{LAYERS}/collections/incidents/items/{gas.incident_id}"), GEOJSON)
    assert one["id"] == shown["id"]
    ring = shown["geometry"]["coordinates"][0]
    assert shown["geometry"]["type"] == "Polygon"
    assert ring[0] == ring[-1]
    assert len(ring) == 25  # one member: a 24-sided circle around it
    assert shown["properties"].items() >= {"level": "orange", "hazard": "gas", "alerts": 1, "exercise": False}.items()
    # counter-clockwise (RFC 7946): the shoelace sum is positive
    assert sum(a[0] * b[1] - b[0] * a[1] for a, b in itertools.pairwise(ring)) > 0


async def test_an_officer_sees_their_departments_share_only(api: LiveApi, unique: str) -> None:
    await devices(
        api,
        water_gauge(f"hydrant-{unique}", kind="fire", departments=["fire"], lon=114.30, thresholds=None),
        water_gauge(f"gauge-{unique}", lon=114.00),
    )
    emergency = await api.raise_alert(finding(f"gas-{unique}"))
    fire = await api.raise_alert(finding(f"fire-{unique}", rule="fire.temp", hazard=Hazard.FIRE))
    async with api.client(FIRE_OFFICER) as officer, api.client(ADMIN) as admin:

        async def ids(http: httpx.AsyncClient, collection: str, **params: Any) -> list[str]:
            page = await http.get(f"{LAYERS}/collections/{collection}/items", params=params)
            return [f["id"] for f in valid("items", page, GEOJSON)["features"]]

        assert await ids(officer, "devices") == [f"hydrant-{unique}"]
        assert await ids(admin, "devices") == [f"gauge-{unique}", f"hydrant-{unique}"]
        assert await ids(officer, "alerts") == [fire.id]
        assert set(await ids(admin, "alerts")) >= {emergency.id, fire.id}
        assert await ids(admin, "devices", department="fire") == [f"hydrant-{unique}"]
        assert await ids(officer, "devices", department="fire") == [f"hydrant-{unique}"]

        refused = await officer.get(f"{LAYERS}/collections/devices/items", params={"department": "water"})
        assert (refused.status_code, refused.json()) == (403, {"detail": "not an officer of water"})
        hidden = await officer.get(f"{LAYERS}/collections/alerts/items/{emergency.id}")
        assert hidden.status_code == 403
        assert (await officer.get(f"{LAYERS}/collections/devices/items/gauge-{unique}")).status_code == 403
        assert (await officer.get(f"{LAYERS}/collections/alerts/items/{fire.id}")).status_code == 200

        # the extent QGIS zooms to is the officer's share's too
        mine = valid("collection", await officer.get(f"{LAYERS}/collections/devices"))
        everyone = valid("collection", await admin.get(f"{LAYERS}/collections/devices"))
        assert mine["extent"]["spatial"]["bbox"] == [[114.30, 22.70, 114.30, 22.70]]
        assert everyone["extent"]["spatial"]["bbox"] == [[114.00, 22.70, 114.30, 22.70]]


async def test_the_token_in_the_query_as_a_gis_client_without_headers_sends_it(api: LiveApi, unique: str) -> None:
    """QGIS given ``.../api/layers?token=...`` adds that query to every address it derives, ``next`` links
    included; the documents themselves never carry the token."""
    await devices(api, *(water_gauge(f"q{i}-{unique}") for i in range(3)))
    async with api.client(token=None) as anonymous:
        for path in [LAYERS, f"{LAYERS}/", f"{LAYERS}/collections", f"{LAYERS}/collections/devices/items"]:
            refused = await anonymous.get(path)
            assert refused.status_code == 401, path
            assert refused.headers["www-authenticate"] == "Bearer"
        assert (await anonymous.get(LAYERS, params={"token": "not-" + FIRE_OFFICER})).status_code == 401

        extra = f"token={ADMIN}"
        landing = valid("landing", await anonymous.get(f"{LAYERS}?{extra}"))
        collections = rel(landing, "data")["href"]  # type: ignore[index]
        items = f"{collections}/devices/items?limit=2&{extra}"
        seen = []
        while items:
            page = await anonymous.get(items)
            body = valid("items", page, GEOJSON)
            assert ADMIN not in page.text, "no document carries the token"
            seen += [f["id"] for f in body["features"]]
            following = rel(body, "next")
            items = f"{following['href']}&{extra}" if following else ""
        assert seen == [f"q{i}-{unique}" for i in range(3)]
