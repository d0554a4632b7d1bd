"""Registry benchmark: how fast devices are registered, and what the registry costs other services in memory.

- store: SQLite writes alone (``DeviceStore.put_many``), devices/s;
- accounts: per-device MQTT accounts on Mosquitto's dynamic-security plugin, devices/s as the plugin fills, and in
  Mosquitto's password file (``FileAccounts``, batches of 1,000, hashing by ``mosquitto_passwd``);
- directory: memory of the gateway's ``KafkaDirectory`` (the set of registered ids) per 100,000 devices,
  measured with tracemalloc after it followed a devices topic of that size.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from core.contracts.device import Device
from core.process import free_port
from core.settings import KafkaConnection, MqttConnection
from devices.directory import KafkaDirectory
from devices.feed import DevicePublisher
from devices.mqtt_accounts import MqttAccounts
from devices.mqtt_files import FileAccounts
from devices.store import DeviceStore
from harness.builders import device
from smartcity.stack.services import dynsec_init, mosquitto, tansu


def _fleet(n: int) -> list[Device]:
    thresholds = {"ch4_lel": {"orange": 25.0, "red": 50.0}}
    return [
        device(f"bench-{i:06d}", site=f"S{i % 500}", site_name=f"园区 {i % 500}", interval_s=60, thresholds=thresholds)
        for i in range(n)
    ]


async def _run(work: Path, devices: int, accounts_n: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    fleet = _fleet(devices)

    store = DeviceStore(work / "registry.db")
    started = time.monotonic()
    for start in range(0, devices, 1000):
        store.put_many(fleet[start : start + 1000])
    results["store_devices_per_s"] = round(devices / (time.monotonic() - started))
    store.close()

    dynsec = work / "dynsec.json"
    password = secrets.token_urlsafe(12)
    dynsec_init(dynsec, "ctl", password)
    broker = mosquitto(work / "mosquitto", "127.0.0.1", free_port(), dynsec=dynsec)
    broker.start()
    accounts = MqttAccounts(MqttConnection(mqtt_url=broker.url, mqtt_username="ctl", mqtt_password=password))
    await accounts.start()
    steps = []
    done = 0
    while done < accounts_n:
        ids = [f"acct-{i:06d}" for i in range(done, done + 250)]
        started = time.monotonic()
        await accounts.create_devices(ids)
        steps.append({"existing": done, "devices_per_s": round(250 / (time.monotonic() - started), 1)})
        done += 250
    await accounts.close()
    broker.process.stop()
    results["accounts"] = steps

    files = FileAccounts(work / "auth", work / "none.pid")
    started = time.monotonic()
    for start in range(0, devices, 1000):
        await files.create_devices([f"file-{i:06d}" for i in range(start, min(start + 1000, devices))])
    results["accounts_files_devices_per_s"] = round(devices / (time.monotonic() - started))

    kafka = tansu("127.0.0.1", free_port(), work / "tansu.log")
    kafka.start()
    conn = KafkaConnection(kafka_bootstrap=kafka.url)
    feed = DevicePublisher(conn)
    await feed.start()
    for start in range(0, devices, 5000):
        await feed.publish(fleet[start : start + 5000])
    await feed.stop()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    directory = KafkaDirectory(conn)
    await directory.start()
    await asyncio.wait_for(directory.ready.wait(), 300)
    after = tracemalloc.take_snapshot()
    held = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    await directory.stop()
    tracemalloc.stop()
    kafka.process.stop()
    results["directory_devices"] = len(directory)
    results["directory_bytes_per_100k_devices"] = round(held / devices * 100_000)
    return results


def run(devices: int, accounts: int, out: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="smartcity-bench-registry-") as tmp:
        results = {"devices": devices, **asyncio.run(_run(Path(tmp), devices, accounts))}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    return results
