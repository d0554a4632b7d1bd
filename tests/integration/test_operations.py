"""Operations (issue 9) on the real one-machine stack, run with two ingest gateways and two stream workers.

- Every service's metrics move while readings flow, with bounded labels.
- Scale-out: the two gateways split the MQTT load through the shared subscription, the two workers split the
  partitions; one gateway and one worker are killed with SIGKILL mid-stream and the supervisor restarts them. Every
  reading published reaches Kafka and is stored once in InfluxDB; every alert the stream should raise is raised once,
  shown once by the API and sent with one alert id on MQTT.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from core.contracts.alert import Alert
from harness.builders import device_record, telemetry
from harness.measure import ACCEPTED, EVALUATED, STORED, sample_sum
from harness.stack import StackRun, until_online
from tests.influx_util import gas_points, wait_gas_count
from tests.kafka_util import Audit, distinct_seqs, readings_of
from tests.mqtt_util import Client

pytestmark = pytest.mark.integration

NORMAL = [f"ops-n-{i}" for i in range(100)]
HAZARD = [f"ops-h-{i}" for i in range(24)]
RATE = 300  # messages per second, one reading each
SECONDS = 30
KILL_AT_S = 10.0
DEPARTMENT = "emergency"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackRun]:
    env = {"SMARTCITY_GATEWAYS": "2", "SMARTCITY_STREAM_WORKERS": "2"}
    with StackRun(tmp_path_factory.mktemp("operations"), env) as run:
        run.register([device_record(d, site_name="龙岗 运维测试") for d in NORMAL + HAZARD])
        yield run


def _publisher(stack: StackRun) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="ops-publisher", protocol=MQTTProtocolVersion.MQTTv5)
    client.username_pw_set("admin", stack.admin_password)
    client.max_inflight_messages_set(1000)
    connected = threading.Event()
    client.on_connect = lambda *_a: connected.set()
    port = int(stack.mqtt_url.rsplit(":", 1)[1])
    client.connect("127.0.0.1", port)
    client.loop_start()
    assert connected.wait(10), "the publisher could not connect"
    return client


def _metrics(url: str) -> str:
    return httpx.get(f"{url}/metrics", timeout=5).text


def _ours(stack: StackRun) -> dict[str, str]:
    return {name: url for name, url in stack.urls.items() if url.startswith("http://") and name != "influxdb"}


def test_two_gateways_and_two_workers_are_running(stack: StackRun) -> None:
    services = _ours(stack)
    assert {"ingest gateway", "ingest gateway 2", "stream worker", "stream worker 2", "influx writer", "api"} <= set(
        services
    )
    for name, url in services.items():
        assert _healthy(url), name
    assert len(set(services.values())) == len(services), "each replica serves on a port of its own"


def test_metrics_move_when_readings_flow(stack: StackRun) -> None:
    urls = _ours(stack)
    before = {name: _metrics(url) for name, url in urls.items()}
    client = _publisher(stack)
    try:
        ts = int(time.time() * 1000) - 600_000
        until_online(stack, client, NORMAL + HAZARD, ts)
        body = telemetry({"ch4_lel": 1.0}, ts=ts + 1, seq=0)
        infos = [client.publish(f"devices/{d}/telemetry", body, qos=1) for d in NORMAL]
        infos.append(client.publish("devices/ops-n-0/telemetry", b"{not json", qos=1))
        for info in infos:
            info.wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()

    def moved() -> dict[str, str]:
        return {name: _metrics(url) for name, url in urls.items()}

    deadline = time.monotonic() + 30
    while True:
        after = moved()
        gateways = [n for n in urls if n.startswith("ingest gateway")]
        received = sum(sample_sum(after[n], "smartcity_ingest_readings_received_total") for n in gateways)
        evaluated = sum(sample_sum(after[n], EVALUATED) for n in urls if "stream" in n)
        written = sample_sum(after["influx writer"], STORED)
        online = sample_sum(after["api"], 'smartcity_devices{status="online"}')  # counted every few seconds
        if received >= 2 * len(NORMAL) and evaluated >= len(NORMAL) and written >= len(NORMAL) and online:
            break
        assert time.monotonic() < deadline, f"metrics did not move: {received=} {evaluated=} {written=} {online=}"
        time.sleep(1)

    for name in gateways:  # the shared subscription split the load: both gateways took readings
        assert sample_sum(after[name], ACCEPTED) > sample_sum(before[name], ACCEPTED), name
        assert sample_sum(after[name], "smartcity_ingest_mqtt_connected") == 1
    refused = sum(sample_sum(after[n], 'smartcity_ingest_refusals_total{reason="invalid_json"}') for n in gateways)
    assert refused == 1
    for name in (n for n in urls if "stream" in n):
        assert "smartcity_streams_evaluation_seconds_bucket" in after[name]
        assert re.search(r'^smartcity_streams_consumer_lag_records\{topic="readings"\} \d', after[name], re.M), name
    # the workers told the API of the devices they heard from (devices.health), as the API's online count shows
    assert sum(sample_sum(after[n], "smartcity_streams_health_entries_total") for n in urls if "stream" in n) > 0
    writer = after["influx writer"]
    assert sample_sum(writer, "smartcity_writer_batch_points_count") > 0
    assert sample_sum(writer, "smartcity_writer_influx_up") == 1
    assert re.search(r'^smartcity_writer_consumer_lag_records\{topic="readings"\} \d', writer, re.M)
    api = after["api"]
    assert sample_sum(api, "smartcity_alerts_mqtt_connected") == 1
    assert re.search(r'^smartcity_alerts_consumer_lag_records\{topic="findings"\} \d', api, re.M)
    assert online >= len(NORMAL) + len(HAZARD)
    python_services = [n for n in urls if n.startswith(("ingest gateway", "stream worker", "influx writer", "api"))]
    for name in python_services:  # the collector's time is exported, and what each held once started is frozen
        assert sample_sum(after[name], "smartcity_gc_collections_total") > 0, name
        assert sample_sum(after[name], "smartcity_gc_frozen_objects") > 0, name
        # and the Kafka requests it sent, by API: each of them fetched while the readings flowed
        fetches = 'smartcity_kafka_requests_total{api="Fetch"}'
        assert sample_sum(after[name], fetches) > sample_sum(before[name], fetches), name
    produces = 'smartcity_kafka_requests_total{api="Produce"}'
    for name in gateways:  # and the gateways produced them
        assert sample_sum(after[name], produces) > sample_sum(before[name], produces), name
    for name, text in after.items():  # bounded labels: never a device id
        assert "ops-" not in text, name


def test_the_gateways_speak_mqtt_3_1_1_to_the_stacks_own_broker(stack: StackRun) -> None:
    """``smartcity up`` runs Mosquitto itself here, so its gateways skip MQTT 5's properties (docs/ingest.md)."""
    for name, url in _ours(stack).items():
        if name.startswith("ingest gateway"):
            text = _metrics(url)
            assert sample_sum(text, 'smartcity_ingest_mqtt_protocol{version="3.1.1"}') == 1, name
            assert sample_sum(text, 'smartcity_ingest_mqtt_protocol{version="5"}') == 0, name


def test_status_shows_every_service_healthy_with_its_role(stack: StackRun) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "smartcity", "status", "--json", "--interval", "0.5", "--data-dir", str(stack.data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env=stack.env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["healthy"] is True
    roles = {s["name"]: s["role"] for s in report["services"]}
    assert roles["ingest gateway"] == roles["ingest gateway 2"] == "gateway"
    assert roles["stream worker"] == roles["stream worker 2"] == "stream worker"
    assert roles["influx writer"] == "writer"
    assert roles["api"] == "api"
    assert {"mosquitto", "kafka (tansu)", "influxdb"} <= set(roles)
    api = next(s for s in report["services"] if s["name"] == "api")
    assert api["figures"]["devices_online"] >= len(NORMAL) + len(HAZARD)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=5).status_code == 200
    except httpx.HTTPError:  # a restarted service not listening yet
        return False


def _kill(stack: StackRun, name: str) -> int:
    stack.read_state()
    pid = stack.pids[name]
    os.kill(pid, signal.SIGKILL)
    return pid


@pytest.fixture
def audit(stack: StackRun) -> Iterator[Audit]:
    """Every record of the readings topic, read as it comes (the Kafka store trims what every group has passed)."""
    with Audit(stack.kafka, "readings") as reader:
        yield reader


def test_killing_a_gateway_and_a_worker_mid_stream_loses_nothing_and_doubles_no_alert(
    stack: StackRun, audit: Audit
) -> None:
    password = json.loads((stack.data_dir / "secrets.json").read_text())["departments"][DEPARTMENT]
    officer = Client(stack.mqtt_url, f"dept-{DEPARTMENT}", password)
    officer.client.subscribe(f"alerts/{DEPARTMENT}", qos=1)
    client = _publisher(stack)
    t0 = int(time.time() * 1000) - 120_000
    published: set[tuple[str, int | None]] = set()
    hazard_at = {d: 3 + i * (SECONDS - 6) / len(HAZARD) for i, d in enumerate(HAZARD)}  # seconds into the stream
    killed: list[int] = []
    try:
        until_online(stack, client, NORMAL + HAZARD, t0 - 1000)
        infos = []
        devices = NORMAL + HAZARD
        start = time.monotonic()
        for k in range(RATE * SECONDS):
            due = start + k / RATE
            if (pause := due - time.monotonic()) > 0:
                time.sleep(pause)
            elapsed = time.monotonic() - start
            if not killed and elapsed >= KILL_AT_S:
                killed = [_kill(stack, "ingest gateway 2"), _kill(stack, "stream worker 2")]
            device_id = devices[k % len(devices)]
            ch4 = 30.0 if device_id in hazard_at and elapsed >= hazard_at[device_id] else 2.0
            seq = k + 1
            body = telemetry({"ch4_lel": ch4}, ts=t0 + k, seq=seq)
            infos.append(client.publish(f"devices/{device_id}/telemetry", body, qos=1))
            published.add((device_id, seq))
        for info in infos:
            info.wait_for_publish(30)
            assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()

    # The supervisor restarted both (its state file names new pids), and they are healthy again.
    deadline = time.monotonic() + 60
    while True:
        stack.read_state()
        fresh = {stack.pids["ingest gateway 2"], stack.pids["stream worker 2"]}
        healthy = all(_healthy(url) for url in _ours(stack).values())
        if not fresh & set(killed) and healthy:
            break
        assert time.monotonic() < deadline, "the killed services were not restarted healthy"
        time.sleep(1)

    # Kafka has every reading (duplicates allowed there: the gateway is at-least-once).
    records = audit.records(lambda rs: published <= distinct_seqs(rs), timeout=120)
    missing = published - distinct_seqs(records)
    assert not missing, f"{len(missing)} readings never reached Kafka, e.g. {sorted(missing)[:5]}"

    # InfluxDB holds each exactly once (a point is its series and timestamp: a redelivery overwrites itself).
    stored = wait_gas_count(stack.influx, "ops-", t0, len(published))
    if stored != len(published):  # say which, and where they sit in Kafka
        have = {(r["device_id"], r["time"] - t0 + 1) for r in gas_points(stack.influx, "ops-", t0)}
        lost = published - have
        where = [(p, key, r) for p, key, b in readings_of(records) for r in b.readings if (r.device_id, r.seq) in lost]
        writer = httpx.get(f"{stack.urls['influx writer']}/metrics", timeout=5).text
        raise AssertionError(
            f"InfluxDB holds {stored} of {len(published)} readings; lost {sorted(lost)[:5]}; in Kafka: {where[:10]}; "
            f"writer: {[line for line in writer.splitlines() if line.startswith('smartcity_writer')]}"
        )

    # Every hazard raised one alert: one in the API, one alert id on MQTT; nothing else for these devices.
    expected = {f"{d}:gas.ch4" for d in HAZARD}
    deadline = time.monotonic() + 60
    with stack.api_client() as http:
        while True:
            shown = [Alert.model_validate(a) for a in http.get("/api/alerts", params={"state": "all"}).json()]
            ours = [a for a in shown if (a.device_id or "").startswith("ops-")]
            if {a.key for a in ours} >= expected or time.monotonic() > deadline:
                break
            time.sleep(1)
    assert sorted(a.key for a in ours) == sorted(expected), "each hazard shown once, and nothing else"
    assert all(a.level == "orange" and a.active and not a.exercise for a in ours)
    ids_on_mqtt: dict[str, set[str]] = {}
    for _topic, payload in list(officer.received):
        message = Alert.model_validate_json(payload)
        if (message.device_id or "").startswith("ops-"):
            ids_on_mqtt.setdefault(message.key, set()).add(message.id)
    officer.client.disconnect()
    assert set(ids_on_mqtt) == expected
    assert all(len(ids) == 1 for ids in ids_on_mqtt.values()), ids_on_mqtt
    assert {a.key: {a.id} for a in ours} == ids_on_mqtt


def test_state_file_lists_each_replica(stack: StackRun) -> None:
    state = json.loads(Path(stack.data_dir / "stack.json").read_text())
    gateways = [n for n in state if n.startswith("ingest gateway")]
    workers = [n for n in state if n.startswith("stream worker")]
    assert len(gateways) == len(workers) == 2


def _niceness(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[16])  # the 19th field of /proc/<pid>/stat; the first two are before the ")"


def test_every_process_of_the_stack_runs_at_the_same_priority(stack: StackRun) -> None:
    """`smartcity up` no longer runs influxd under nice (SMARTCITY_INFLUXD_NICE, 0 by default): at 10 on a busy
    machine its cache snapshots lagged, and its WAL and heap grew through the soak (docs/benchmarks.md)."""
    stack.read_state()
    assert {name: _niceness(pid) for name, pid in stack.pids.items()} == dict.fromkeys(stack.pids, 0)
