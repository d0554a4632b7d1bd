"""The registry's HTTP API against real Kafka and a real Mosquitto with dynamic security."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from core.process import free_port
from core.settings import KafkaConnection
from devices.directory import KafkaDirectory
from devices.feed import DevicePublisher
from devices.mqtt_accounts import MqttAccounts
from devices.registry import Registry
from devices.store import DeviceStore
from ingest.settings import GatewaySettings
from smartcity.api import ApiSettings, create_app
from smartcity.stack.services import Launch, tansu
from tests.api_util import water_gauge as record
from tests.mqtt_util import Client
from tests.waiting import eventually

pytestmark = pytest.mark.integration

TOKEN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Api:
    def __init__(self, client: httpx.AsyncClient, directory: KafkaDirectory) -> None:
        self.http, self.directory = client, directory


@pytest.fixture
async def api(
    tmp_path: Path, gateway_settings: GatewaySettings, accounts: MqttAccounts, unique: str
) -> AsyncIterator[Api]:
    conn = gateway_settings.model_copy(update={"topic_devices": f"devices.{unique}"})
    feed = DevicePublisher(conn)
    await feed.start()
    directory = KafkaDirectory(conn)
    await directory.start()
    store = DeviceStore(tmp_path / "registry.db")
    app = create_app(ApiSettings(api_token=TOKEN), Registry(store, feed, accounts), CollectorRegistry())
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://smartcity") as client:
            await asyncio.wait_for(directory.ready.wait(), 20)
            yield Api(client, directory)
    finally:
        await directory.stop()
        await feed.stop()
        store.close()


async def test_every_api_call_needs_the_token(api: Api) -> None:
    assert (await api.http.get("/api/devices")).status_code == 401
    wrong = await api.http.get("/api/devices", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert (await api.http.get("/api/devices", headers=AUTH)).status_code == 200


async def test_create_read_replace_delete(api: Api, secured: tuple[Launch, Path], unique: str) -> None:
    device_id = f"water-{unique}"
    created = await api.http.put(f"/api/devices/{device_id}", json=record(device_id), headers=AUTH)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["device"]["site_name"] == "龙岗河水位站"
    creds = body["credentials"]
    assert creds["username"] == device_id
    assert len(creds["password"]) >= 20

    # The credentials work at once, and the gateway's directory knows the device within seconds.
    device = await asyncio.to_thread(Client, secured[0].url, creds["username"], creds["password"])
    try:
        assert device.connect_rc is not None
        assert not device.connect_rc.is_failure
    finally:
        device.close()
    assert await eventually(lambda: api.directory.is_registered(device_id))

    replaced = await api.http.put(f"/api/devices/{device_id}", json=record(device_id, interval_s=60), headers=AUTH)
    assert replaced.status_code == 200
    assert "credentials" not in replaced.json(), "credentials are returned once, on creation"
    assert (await api.http.get(f"/api/devices/{device_id}", headers=AUTH)).json()["interval_s"] == 60

    assert (await api.http.delete(f"/api/devices/{device_id}", headers=AUTH)).status_code == 204
    assert (await api.http.get(f"/api/devices/{device_id}", headers=AUTH)).status_code == 404
    assert (await api.http.delete(f"/api/devices/{device_id}", headers=AUTH)).status_code == 404
    assert await eventually(lambda: not api.directory.is_registered(device_id))
    again = await asyncio.to_thread(Client, secured[0].url, creds["username"], creds["password"])
    try:
        assert again.connect_rc is not None
        assert again.connect_rc.is_failure
    finally:
        again.close()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"kind": "volcano"}, "kind"),
        ({"lat": 95}, "lat"),
        ({"lon": -181}, "lon"),
        ({"thresholds": {"level": {"red": 1}}}, "thresholds"),
        ({"departments": []}, "departments"),
    ],
)
async def test_bad_records_are_refused_with_the_field(
    api: Api, unique: str, changes: dict[str, Any], field: str
) -> None:
    device_id = f"bad-{unique}"
    response = await api.http.put(f"/api/devices/{device_id}", json=record(device_id, **changes), headers=AUTH)
    assert response.status_code == 422
    assert field in [part for err in response.json()["detail"] for part in err["loc"]]
    assert (await api.http.get(f"/api/devices/{device_id}", headers=AUTH)).status_code == 404


async def test_threshold_overrides_out_of_order_are_refused_naming_metric_and_levels(api: Api, unique: str) -> None:
    device_id = f"gas-{unique}"
    reversed_ch4 = {"ch4_lel": {"orange": 50, "red": 25}}  # a reading of 30 would raise red
    body = record(device_id, kind="gas", departments=["emergency"], thresholds=reversed_ch4)
    response = await api.http.put(f"/api/devices/{device_id}", json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "thresholds", "ch4_lel"]
    assert error["msg"] == "ch4_lel: level red (25.0) must be above level orange (50.0)"
    assert (await api.http.get(f"/api/devices/{device_id}", headers=AUTH)).status_code == 404

    # the import says which record, and takes none of them
    good, bad = record(f"a-{unique}"), record(f"b-{unique}", thresholds={"level_m": {"orange": 4.1, "red": 3.2}})
    response = await api.http.post("/api/devices/import", json=[good, bad], headers=AUTH)
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", 1, "thresholds", "level_m"]
    assert error["msg"] == "level_m: level red (3.2) must be above level orange (4.1)"
    assert (await api.http.get(f"/api/devices/a-{unique}", headers=AUTH)).status_code == 404


async def test_body_id_must_match_the_path(api: Api, unique: str) -> None:
    response = await api.http.put(f"/api/devices/a-{unique}", json=record(f"b-{unique}"), headers=AUTH)
    assert response.status_code == 400


async def test_list_filters_and_pages(api: Api, unique: str) -> None:
    for i in range(12):
        kind = "gas" if i % 3 == 0 else "water"
        departments = ["emergency"] if kind == "gas" else ["water"]
        body = record(f"{kind}-{unique}-{i:02d}", kind=kind, site_id=f"S{i % 2}", departments=departments,
                      thresholds={})  # fmt: skip
        assert (await api.http.put(f"/api/devices/{body['id']}", json=body, headers=AUTH)).status_code == 201
    page = (await api.http.get("/api/devices", params={"kind": "water", "limit": 3}, headers=AUTH)).json()
    assert page["total"] == 8
    assert len(page["devices"]) == 3
    second = (
        await api.http.get("/api/devices", params={"kind": "water", "limit": 3, "offset": 3}, headers=AUTH)
    ).json()
    assert {d["id"] for d in page["devices"]}.isdisjoint({d["id"] for d in second["devices"]})
    assert (await api.http.get("/api/devices", params={"department": "emergency"}, headers=AUTH)).json()["total"] == 4
    assert (await api.http.get("/api/devices", params={"site": "S1"}, headers=AUTH)).json()["total"] == 6
    assert (await api.http.get("/api/devices", params={"kind": "lava"}, headers=AUTH)).status_code == 422
    # the page carries its devices' health (the console's devices view shows status, last seen, battery)
    assert set(page["health"]) == {d["id"] for d in page["devices"]}
    assert all(h["status"] == "offline" and h["last_seen"] is None for h in page["health"].values())


async def _ids(api: Api, **params: Any) -> tuple[list[str], int]:
    page = await api.http.get("/api/devices", params=params, headers=AUTH)
    assert page.status_code == 200, page.text
    return [d["id"] for d in page.json()["devices"]], page.json()["total"]


async def test_search_and_sort_over_the_whole_registry_not_a_page(api: Api, unique: str) -> None:
    """``q`` and ``sort`` are the store's: a match beyond the first page is found, ``total`` counts the matches, and
    ``%`` and ``_`` are characters, not wildcards."""
    records = [
        record(f"g{i:02d}-{unique}", kind="gas" if i % 2 else "water", site=f"S{i % 3}-{unique}",
               site_name=f"坪地 泵站 {i:02d}", departments=["emergency"], thresholds={})
        for i in range(12)
    ]  # fmt: skip
    records[11] |= {"site_name": "Heng_Gang 100% Depot"}
    assert (await api.http.post("/api/devices/import", json=records, headers=AUTH)).status_code == 200
    first, total = await _ids(api, q=unique, limit=5)
    assert (len(first), total) == (5, 12)
    assert f"g11-{unique}" not in first
    assert await _ids(api, q="HENG_GANG", limit=5) == ([f"g11-{unique}"], 1)  # beyond the first page, any case
    assert await _ids(api, q="100%", limit=5) == ([f"g11-{unique}"], 1)
    assert await _ids(api, q="泵站 0", limit=5, sort="-id") == ([f"g{i:02d}-{unique}" for i in range(9, 4, -1)], 10)
    assert await _ids(api, q="g_1") == ([], 0)  # as a wildcard: g01, g10, g11
    assert await _ids(api, q="%") == ([f"g11-{unique}"], 1)
    # with the filters: kind, site, status (every device here is offline: never heard from)
    assert (await _ids(api, q=unique, kind="gas", sort="-site"))[0] == [
        f"g{i:02d}-{unique}" for i in (11, 5, 7, 1, 9, 3)
    ]  # S2, S2, S1, S1, S0, S0: by site descending, then id descending
    assert (await _ids(api, q=f"s1-{unique}", status="offline"))[1] == 4
    assert (await _ids(api, q=unique, status="online"))[1] == 0
    assert (await _ids(api, q=unique, sort="site", offset=10))[0] == [f"g08-{unique}", f"g11-{unique}"]
    assert (await _ids(api, q=unique, sort="kind", limit=6))[0] == [f"g{i:02d}-{unique}" for i in (1, 3, 5, 7, 9, 11)]


async def test_a_bad_sort_is_refused_naming_the_sorts(api: Api) -> None:
    response = await api.http.get("/api/devices", params={"sort": "name"}, headers=AUTH)
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["query", "sort"]
    for allowed in ("'id'", "'-id'", "'site'", "'-site'", "'kind'", "'-kind'", "'updated'", "'-updated'"):
        assert allowed in error["msg"]


async def test_me_says_who_the_token_belongs_to(api: Api) -> None:
    me = (await api.http.get("/api/me", headers=AUTH)).json()
    assert me["admin"] is True
    assert set(me["departments"]) >= {"emergency", "fire", "water", "housing"}
    assert (await api.http.get("/api/me")).status_code == 401


async def test_a_change_kafka_does_not_take_is_answered_503_with_retry_after(tmp_path: Path, unique: str) -> None:
    """The store has the change, the broker is gone: the officer is told at once that Kafka did not take it (503,
    Retry-After), not a bare 500, and not after waiting for Kafka to come back."""
    kafka = tansu("127.0.0.1", free_port(), tmp_path / "tansu.log")
    kafka.start()
    conn = KafkaConnection(kafka_bootstrap=kafka.url, topic_devices=f"devices.{unique}")
    feed = DevicePublisher(conn)
    store = DeviceStore(tmp_path / "registry.db")
    try:
        await feed.start()
        app = create_app(ApiSettings(api_token=TOKEN), Registry(store, feed, None), CollectorRegistry())
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://smartcity") as http:
            first = await http.put(f"/api/devices/water-{unique}-1", json=record(f"water-{unique}-1"), headers=AUTH)
            assert first.status_code == 201, first.text
            kafka.process.kill()
            started = time.monotonic()
            refused = await http.put(f"/api/devices/water-{unique}-2", json=record(f"water-{unique}-2"), headers=AUTH)
            assert refused.status_code == 503, refused.text
            assert "Kafka did not acknowledge" in refused.json()["detail"]
            assert int(refused.headers["Retry-After"]) >= 1
            assert time.monotonic() - started < 15  # the producer's deadline (10 s), not Kafka's return
    finally:
        await feed.stop()
        store.close()
        kafka.process.stop()
