"""End to end on real services: telemetry over MQTT -> gateway -> Tansu -> a stream worker process -> findings.

One scenario per rule of the default pack; each has its own devices, registered in the registry's topic before the
worker starts, and publishes what a device would (batches with event times, as concentrators send).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest

from core.contracts.device import Device
from core.contracts.finding import Finding
from core.kafka.admin import all_topics, ensure_topics
from core.process import ManagedProcess, free_port
from devices.feed import DevicePublisher
from harness.builders import device_record, telemetry, telemetry_batch, telemetry_item
from ingest.settings import GatewaySettings
from smartcity.stack.services import http_ok
from streams.app import streams_topics
from streams.settings import StreamsSettings
from tests.integration.conftest import gateway_proc, streams_process
from tests.kafka_util import Tail
from tests.mqtt_util import publish_all, publisher

pytestmark = pytest.mark.integration

H = 3600


#: A scenario's device: a reading expected every ten minutes, so offline is raised only where a scenario wants it.
dev = partial(device_record, interval_s=600)


@dataclass(frozen=True)
class Scenario:
    devices: list[dict[str, Any]]
    #: (device id, [(seconds before now, values)], drill)
    messages: list[tuple[str, list[tuple[float, dict[str, float | bool]]]]]
    expected: list[tuple[str, str, str]]  # (rule, event, level), any order
    drill: bool = False


def rising(values: list[tuple[float, float]], metric: str) -> list[tuple[float, dict[str, float | bool]]]:
    return [(ago, {metric: v}) for ago, v in values]


SCENARIOS: dict[str, Scenario] = {
    "gas.ch4": Scenario(
        [dev("g-ch4", "gas")], [("g-ch4", [(0, {"ch4_lel": 30.0})])], [("gas.ch4", "raised", "orange")]
    ),
    "gas.ch4_rise": Scenario(
        [dev("g-rise", "gas")],
        [
            (
                "g-rise",
                rising([(100, 2), (90, 2), (80, 2), (70, 2), (60, 2), (50, 2), (40, 8), (30, 14), (20, 18)], "ch4_lel"),
            )
        ],
        [("gas.ch4_rise", "raised", "yellow")],
    ),
    "gas.co": Scenario([dev("g-co", "gas")], [("g-co", [(0, {"co_ppm": 30.0})])], [("gas.co", "raised", "orange")]),
    "gas.h2s": Scenario([dev("g-h2s", "gas")], [("g-h2s", [(0, {"h2s_ppm": 15.0})])], [("gas.h2s", "raised", "red")]),
    "gas.o2_low": Scenario(
        [dev("g-o2l", "gas")], [("g-o2l", [(0, {"o2_pct": 18.0})])], [("gas.o2_low", "raised", "orange")]
    ),
    "gas.o2_high": Scenario(
        [dev("g-o2h", "gas")], [("g-o2h", [(0, {"o2_pct": 24.0})])], [("gas.o2_high", "raised", "orange")]
    ),
    "gas.site": Scenario(
        [dev("g-s1", "gas", site="chem-park"), dev("g-s2", "gas", site="chem-park")],
        [("g-s1", [(10, {"ch4_lel": 30.0})]), ("g-s2", [(0, {"ch4_lel": 28.0})])],
        [("gas.ch4", "raised", "orange"), ("gas.ch4", "raised", "orange"), ("gas.site", "raised", "red")],
    ),
    "water.level": Scenario(
        [dev("w-lvl", "water", thresholds={"level_m": {"orange": 3.0, "red": 4.0}})],
        [("w-lvl", [(0, {"level_m": 3.5})])],
        [("water.level", "raised", "orange")],
    ),
    "water.rise": Scenario(
        [dev("w-rise", "water")],
        [
            (
                "w-rise",
                rising(
                    [(7200 - i * 600, 1.0) for i in range(7)] + [(3000 - i * 300, 1.0 + i * 0.1) for i in range(6)],
                    "level_m",
                ),
            )
        ],
        [("water.rise", "raised", "yellow")],
    ),
    "fire.smoke": Scenario(
        [dev("f-smoke", "fire")], [("f-smoke", [(0, {"smoke": True})])], [("fire.smoke", "raised", "yellow")]
    ),
    "fire.heat": Scenario(
        [dev("f-heat", "fire")], [("f-heat", [(0, {"temp_c": 60.0})])], [("fire.heat", "raised", "orange")]
    ),
    "fire.heat_rise": Scenario(
        [dev("f-ror", "fire")],
        [
            (
                "f-ror",
                rising(
                    [
                        (120, 25),
                        (110, 25),
                        (100, 25),
                        (90, 25),
                        (80, 25),
                        (70, 25),
                        (60, 28),
                        (50, 31),
                        (40, 34),
                        (30, 37),
                        (20, 40),
                    ],
                    "temp_c",
                ),
            )
        ],
        [("fire.heat_rise", "raised", "orange")],
    ),
    "fire.confirmed": Scenario(
        [dev("f-conf", "fire")],
        [("f-conf", [(20, {"smoke": True}), (0, {"temp_c": 60.0})])],
        [("fire.smoke", "raised", "yellow"), ("fire.heat", "raised", "orange"), ("fire.confirmed", "raised", "red")],
    ),
    "fire.flame": Scenario(
        [dev("f-flame", "fire")], [("f-flame", [(0, {"flame": True})])], [("fire.confirmed", "raised", "red")]
    ),
    "structural.tilt": Scenario(
        [dev("s-tilt", "structural", thresholds={"tilt_deg": {"orange": 0.5}})],
        [("s-tilt", [(0, {"tilt_deg": 0.6})])],
        [("structural.tilt", "raised", "orange")],
    ),
    "structural.crack": Scenario(
        [dev("s-crack", "structural", thresholds={"crack_mm": {"red": 2.0}})],
        [("s-crack", [(0, {"crack_mm": 2.5})])],
        [("structural.crack", "raised", "red")],
    ),
    "structural.displacement": Scenario(
        [dev("s-disp", "structural", thresholds={"displacement_mm": {"orange": 20.0}})],
        [("s-disp", [(0, {"displacement_mm": 25.0})])],
        [("structural.displacement", "raised", "orange")],
    ),
    "structural.settlement_rate": Scenario(
        [dev("s-settle", "structural")],
        [("s-settle", rising([(49 * H - h * H, 0.15 * h) for h in range(49)], "displacement_mm"))],
        [("structural.settlement_rate", "raised", "yellow")],
    ),
    "device.battery": Scenario(
        [dev("d-batt", "water")], [("d-batt", [(0, {"battery_pct": 12.0})])], [("device.battery", "raised", "blue")]
    ),
    "drill": Scenario(
        [dev("g-drill", "gas")], [("g-drill", [(0, {"ch4_lel": 60.0})])], [("gas.ch4", "raised", "red")], drill=True
    ),
}


@dataclass
class Flow:
    u: str
    mqtt_url: str
    findings: Tail
    worker: ManagedProcess

    def device_id(self, name: str) -> str:
        return f"{name}-{self.u}"

    def findings_of(self, device_ids: set[str]) -> list[Finding]:
        out = [Finding.model_validate_json(r.value) for r in self.findings.records]
        return [f for f in out if f.device_id in device_ids or any(k.split(":")[-2] in device_ids for k in f.confirms)]


@pytest.fixture(scope="module")
async def flow(mqtt_url: str, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Flow]:
    u = uuid.uuid4().hex[:8]
    work = tmp_path_factory.mktemp("rules-flow")
    topics = {"topic_readings": f"readings.{u}", "topic_rejected": f"rejected.{u}", "topic_devices": f"devices.{u}",
              "topic_findings": f"findings.{u}"}  # fmt: skip
    streams = StreamsSettings(
        kafka_bootstrap=kafka_bootstrap, streams_app_id=f"streams-{u}", streams_http_port=free_port(),
        streams_data_dir=work / "streams", streams_tick_s=1, **topics,
    )  # fmt: skip
    await ensure_topics(kafka_bootstrap, [*all_topics(streams), *streams_topics(streams)])
    devices = [Device.model_validate({**d, "id": f"{d['id']}-{u}", "site_id": f"{d['site_id']}-{u}"})
               for s in SCENARIOS.values() for d in s.devices]  # fmt: skip
    devices.append(Device.model_validate(dev(f"d-quiet-{u}", "gas", interval_s=1)))
    feed = DevicePublisher(streams)
    await feed.start()
    await feed.publish(devices)
    await feed.stop()
    gateway_settings = GatewaySettings(
        mqtt_url=mqtt_url, kafka_bootstrap=kafka_bootstrap, gateway_client_id=f"gw-{u}", gateway_share_group=f"g{u}",
        gateway_http_port=0, **topics,
    )  # fmt: skip
    gateway = gateway_proc(gateway_settings, work / "gateway.log")
    worker = streams_process(streams, work / "streams.log")
    gateway.start()
    worker.start()
    health = f"http://127.0.0.1:{streams.streams_http_port}/healthz"
    await asyncio.to_thread(worker.wait_healthy, lambda: http_ok(health, (200,)), 60)
    tail = Tail(kafka_bootstrap, streams.topic_findings)
    await tail.start()
    yield Flow(u, mqtt_url, tail, worker)
    await tail.stop()
    worker.stop()
    gateway.stop()


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_each_default_rule_end_to_end(flow: Flow, name: str) -> None:
    scenario = SCENARIOS[name]
    now = int(time.time() * 1000)
    messages = [
        (
            f"devices/{flow.device_id(d)}/telemetry",
            telemetry_batch(telemetry_item(v, ts=now - int(ago * 1000), drill=scenario.drill) for ago, v in items),
        )
        for d, items in scenario.messages
    ]
    with publisher(flow.mqtt_url) as pub:
        await asyncio.to_thread(publish_all, pub, messages)
    ids = {flow.device_id(d["id"]) for d in scenario.devices}
    await flow.findings.wait_for(lambda _r: len(flow.findings_of(ids)) >= len(scenario.expected), timeout=30)
    await asyncio.sleep(0.5)  # anything unexpected would arrive with them
    found = flow.findings_of(ids)
    assert sorted((f.rule, f.event.value, f.level.value) for f in found) == sorted(scenario.expected)
    assert all(f.exercise == scenario.drill for f in found)
    assert all(f.key.startswith("drill:") == scenario.drill for f in found)


async def test_a_device_never_heard_from_goes_offline_and_a_reading_clears_it(flow: Flow) -> None:
    quiet = flow.device_id("d-quiet")
    await flow.findings.wait_for(lambda _r: any(f.rule == "device.offline" for f in flow.findings_of({quiet})), 30)
    with publisher(flow.mqtt_url) as pub:
        await asyncio.to_thread(publish_all, pub, [(f"devices/{quiet}/telemetry", telemetry({"ch4_lel": 0.5}))])
    await flow.findings.wait_for(
        lambda _r: [f.event.value for f in flow.findings_of({quiet})][:2] == ["raised", "cleared"], 30
    )
    [raised, *_] = flow.findings_of({quiet})
    assert (raised.level.value, raised.hazard.value, raised.threshold) == ("blue", "device", 3.0)


def test_the_worker_log_has_no_errors(flow: Flow) -> None:
    log = flow.worker.log_path.read_text()
    assert "Traceback" not in log
    assert "ERROR" not in log
