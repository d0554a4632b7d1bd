"""Fault injection (issue 10): every part of the one-machine stack killed with SIGKILL in turn, under steady load.

The stack is `smartcity up`, whose supervisor restarts what dies. A publisher sends readings at a steady rate the
whole time; during each fault a hazard device crosses the methane alarm level. After the faults:

- every reading the gateway accepted (it is in Kafka) is in InfluxDB exactly once, and every reading published is
  in Kafka, except what Mosquitto itself held when it was killed: it had acknowledged them to the publisher and had
  not saved them yet. Its persistence is a snapshot every ``autosave_interval`` (4 s, read from the stack's
  mosquitto.conf; docs/reliability.md), so only readings published in the interval before the kill may be lost,
  and at most as many as the load published in it (600 at 150/s); none published after the kill;
- every hazard's alert reached the department's MQTT topic at least once, under one alert id, and the API shows it
  once; an acknowledgement made before the alerts service was killed is still there;
- the system was healthy again within ``RECOVERY_S`` of each kill.

The Kafka-compatible broker (Tansu) is killed in a test of its own, on disk (the default: it comes back as it was)
and on its memory engine (it comes back empty); a power cut (every process killed at once) has the last test. The
readings topic is read by an auditor's consumer group from the start (``tests.kafka_util.Audit``): the Kafka store
trims readings every group has passed, so a read after the fact would find only the tail.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from core.contracts.alert import Alert
from core.contracts.telemetry import ReadingBatch
from core.process import tcp_accepts
from harness.builders import device_record, telemetry
from harness.measure import ACCEPTED, metric
from harness.stack import StackRun, until_online
from smartcity.stack.supervisor import TANSU
from tests.influx_util import gas_points, wait_gas_count
from tests.kafka_util import Audit, consume, distinct_seqs, readings_of

pytestmark = pytest.mark.integration

NORMAL = [f"flt-n-{i}" for i in range(160)]  # each under one reading a second, as real devices
#: Half the load comes from devices without a clock (no ``ts``: stamped on arrival), where a reading stored twice is
#: two points; a device with a clock rewrites its one point, which would hide a double.
CLOCKLESS = frozenset(NORMAL[1::2])
FAULTS = ("ingest gateway", "stream worker", "influx writer", "api", "influxdb", "mosquitto")
HAZARD = {name: f"flt-h-{i}" for i, name in enumerate(FAULTS)}
RATE = 150  # readings per second, one per message
RECOVERY_S = 60.0  # the stated bound: every part healthy again this long after a kill
SLACK_S = 0.5  # a load reading's send time may trail its acknowledgement by a thread switch (see the Mosquitto check)
DEPARTMENT = "emergency"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


class Mqtt:
    """A paho client that subscribes again whenever it connects (a broker killed with -9 may forget sessions)."""

    def __init__(self, url: str, username: str, password: str, name: str, topic: str | None = None) -> None:
        self.received: list[bytes] = []
        self.connected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name, protocol=MQTTProtocolVersion.MQTTv5)
        self.client.username_pw_set(username, password)
        self.client.max_inflight_messages_set(500)
        self.client.reconnect_delay_set(1, 2)

        def on_connect(*_a: object) -> None:
            if topic is not None:
                self.client.subscribe(topic, qos=1)
            self.connected.set()

        self.disconnects = 0

        def on_disconnect(*_a: object) -> None:
            self.disconnects += 1
            self.connected.clear()

        self.client.on_connect = on_connect
        self.client.on_disconnect = on_disconnect
        self.client.on_message = lambda _c, _u, m: self.received.append(bytes(m.payload))
        self.client.connect("127.0.0.1", int(url.rsplit(":", 1)[1]))
        self.client.loop_start()
        assert self.connected.wait(10), f"{name} could not connect"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Load(threading.Thread):
    """Steady readings from the normal devices, each with its own (device, seq) and timestamp."""

    def __init__(
        self, client: Mqtt, t0: int, clockless: frozenset[str] = CLOCKLESS, devices: list[str] = NORMAL
    ) -> None:
        super().__init__(daemon=True)
        self.client, self.t0, self.clockless, self.devices = client, t0, clockless, devices
        self.stop = threading.Event()
        self.sent: list[tuple[str, int, float]] = []  # device, seq, monotonic time of the publish
        self.infos: list[mqtt.MQTTMessageInfo] = []

    def run(self) -> None:
        start, k = time.monotonic(), 0
        while not self.stop.is_set():
            if (pause := start + k / RATE - time.monotonic()) > 0:
                time.sleep(pause)
            devices = self.devices
            device_id, seq = devices[k % len(devices)], k // len(devices) + 1  # seq: one more per reading
            # A clock's ts tells a stored point's reading: seq = (ts - t0) // len(devices) + 1.
            ts = None if device_id in self.clockless else self.t0 + k
            body = telemetry({"ch4_lel": 2.0}, ts=ts, seq=seq)
            self.infos.append(self.client.client.publish(f"devices/{device_id}/telemetry", body, qos=1))
            self.sent.append((device_id, seq, time.monotonic()))
            k += 1


@pytest.fixture
def stack(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[StackRun]:
    """``smartcity up`` with the fleet registered; the Kafka storage ``disk`` (the default) unless parametrized."""
    storage = getattr(request, "param", "disk")
    with StackRun(tmp_path, {"SMARTCITY_KAFKA_STORAGE": storage}) as run:
        run.register([device_record(d, site_name="龙岗 故障测试") for d in [*NORMAL, *HAZARD.values()]])
        yield run


@pytest.fixture
def audit(stack: StackRun) -> Iterator[Audit]:
    """Every record of the readings topic, read as it comes (the Kafka store trims what every group has passed)."""
    with Audit(stack.kafka, "readings") as reader:
        yield reader


def _healthy(stack: StackRun) -> bool:
    """Every part of the stack answers: our services' /healthz, the brokers' ports, InfluxDB's /ping."""
    stack.read_state()
    for name, url in stack.urls.items():
        try:
            if name == "influxdb":
                ok = httpx.get(f"{url}/ping", timeout=2).status_code == 204
            elif url.startswith("http://"):
                ok = httpx.get(f"{url}/healthz", timeout=2).status_code == 200
            else:
                host, port = url.split("://", 1)[-1].rsplit(":", 1)
                ok = tcp_accepts(host, int(port))
        except httpx.HTTPError:
            ok = False
        if not ok:
            return False
    return True


def _kill(stack: StackRun, name: str) -> tuple[int, float]:
    stack.read_state()
    old = stack.pids[name]
    os.kill(old, signal.SIGKILL)
    return old, time.monotonic()


def _recover(stack: StackRun, name: str, old: int, killed: float, bound_s: float = RECOVERY_S) -> float:
    """Seconds from the kill until the supervisor restarted ``name`` and every part is healthy."""
    time.sleep(0.5)
    while not (_healthy(stack) and stack.pids.get(name, old) != old):  # _healthy reads stack.json anew
        assert time.monotonic() - killed < bound_s, f"{name} not healthy again within {bound_s:.0f} s"
        time.sleep(0.25)
    return time.monotonic() - killed


def _autosave_s(stack: StackRun) -> float:
    """The stack's Mosquitto saves its state to disk this often (``autosave_interval``); persistence must be on."""
    conf = dict(
        line.split(None, 1) for line in (stack.data_dir / "mosquitto" / "mosquitto.conf").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )  # fmt: skip
    assert conf.get("persistence") == "true", "the stack's Mosquitto keeps no persistence"
    return float(conf["autosave_interval"])


def _lost_to_mosquitto(lost: list[float], sent: list[float], killed: float, stack: StackRun) -> int:
    """Check that what was lost (the send times of the readings not in Kafka) is what Mosquitto's kill may lose, and
    return how many readings that is at most.

    Mosquitto's kill loses what it had acknowledged, not handed to the gateway, and not saved in its last snapshot,
    which is at most ``autosave_interval`` old. So every lost reading was published in that interval before the kill
    (a reading published after it was never acknowledged by the dead broker: the publisher sends it again), and they
    are at most as many as the load published in it. A send time is taken just after paho queued the message, so a
    reading acknowledged just before the kill may carry one a thread switch later: SLACK_S covers that.
    """
    autosave_s = _autosave_s(stack)
    first, last = killed - autosave_s - SLACK_S, killed + SLACK_S
    allowed = sum(first <= at <= last for at in sent)
    outside = sorted(round(at - killed, 2) for at in lost if not first <= at <= last)
    assert not outside, f"{len(outside)} readings lost that Mosquitto's autosave cannot explain, at {outside[:10]} s"
    assert len(lost) <= allowed, f"{len(lost)} readings lost; the {autosave_s:.0f} s autosave allows {allowed}"
    return allowed


def _alerts(stack: StackRun) -> list[Alert]:
    with stack.api_client() as http:
        return [Alert.model_validate(a) for a in http.get("/api/alerts", params={"state": "all"}).json()]


def _wait_alerts(stack: StackRun, keys: set[str], timeout: float = 60) -> list[Alert]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            shown = [a for a in _alerts(stack) if a.key in keys]
        except httpx.HTTPError:
            shown = []
        if {a.key for a in shown} >= keys or time.monotonic() > deadline:
            return shown
        time.sleep(0.5)


def _on_mqtt(officer: Mqtt, keys: set[str], timeout: float = 30) -> dict[str, set[str]]:
    """The alert ids the officer received on MQTT per hazard key, once every key has one (or at the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        on_mqtt: dict[str, set[str]] = {}
        for payload in list(officer.received):
            message = Alert.model_validate_json(payload)
            if message.key in keys:
                on_mqtt.setdefault(message.key, set()).add(message.id)
        if set(on_mqtt) == keys or time.monotonic() > deadline:
            return on_mqtt
        time.sleep(0.5)


def _raised_once(officer: Mqtt, keys: set[str]) -> None:
    """Every alert message the officer received for ``keys`` as a list, not a dict by key, which would hide a repeat.
    A message may arrive twice (at least once: the same ``id`` and ``seq``, the same change), but one ``(id, seq)`` is
    one change, and each hazard's alert is raised by one message."""
    ours = [m for m in (Alert.model_validate_json(p) for p in list(officer.received)) if m.key in keys]
    changes: dict[tuple[str, int], set[str]] = {}
    for m in ours:
        changes.setdefault((m.id, m.seq), set()).add(m.event.value)
    assert all(len(events) == 1 for events in changes.values()), f"one (id, seq), two changes: {changes}"
    raised = Counter(m.key for m in {(m.id, m.seq): m for m in ours if m.event.value == "raised"}.values())
    assert raised == dict.fromkeys(keys, 1), f"raised more than once, or never: {raised}"


def _hazard(client: Mqtt, device_id: str, ts: int) -> None:
    client.client.publish(f"devices/{device_id}/telemetry", telemetry({"ch4_lel": 30.0}, ts=ts, seq=1), qos=1)


def test_each_part_killed_in_turn_loses_no_accepted_reading_and_no_alert(stack: StackRun, audit: Audit) -> None:
    secrets = json.loads((stack.data_dir / "secrets.json").read_text())
    publisher = Mqtt(stack.mqtt_url, "admin", stack.admin_password, "flt-publisher")
    officer = Mqtt(
        stack.mqtt_url, f"dept-{DEPARTMENT}", secrets["departments"][DEPARTMENT], "flt-officer", f"alerts/{DEPARTMENT}"
    )
    t0 = int(time.time() * 1000) - 300_000
    until_online(stack, publisher.client, [*NORMAL, *HAZARD.values()], t0 - 1000)
    load = Load(publisher, t0)
    load.start()
    recovery: dict[str, float] = {}
    windows: dict[str, tuple[float, float]] = {}
    kills: dict[str, float] = {}
    disconnects: dict[str, int] = {}
    acknowledged: str | None = None
    try:
        for i, name in enumerate(FAULTS):
            time.sleep(3)
            if name == "api":  # an acknowledgement made before the alerts service dies must outlive it
                first = _wait_alerts(stack, {f"{HAZARD[FAULTS[0]]}:gas.ch4"})
                assert first, "the first hazard's alert never arrived"
                with stack.api_client() as http:
                    answer = http.post(f"/api/alerts/{first[0].id}/ack", json={"note": "故障测试 / fault test"})
                assert answer.status_code == 200, answer.text
                acknowledged = first[0].id
            before = publisher.disconnects
            old, killed = _kill(stack, name)
            _hazard(publisher, HAZARD[name], t0 + 100_000 + i)  # sent while the part is down
            recovery[name] = _recover(stack, name, old, killed)
            windows[name] = (killed - 1, time.monotonic())
            kills[name], disconnects[name] = killed, publisher.disconnects - before
    finally:
        load.stop.set()
        load.join(10)
    for info in load.infos:  # sent, or queued by paho while Mosquitto was down and sent after it came back
        with contextlib.suppress(RuntimeError, ValueError):
            info.wait_for_publish(30)

    # Alerts: each hazard once in the API, under one id on MQTT; the acknowledgement kept.
    keys = {f"{device_id}:gas.ch4" for device_id in HAZARD.values()}
    shown = _wait_alerts(stack, keys)
    if {a.key for a in shown} != keys:  # where did it stop: the reading, the finding?
        absent = keys - {a.key for a in shown}
        readings = audit.records(lambda rs: False, timeout=0)
        findings = asyncio.run(consume(stack.kafka, "findings", lambda rs: False, timeout=5))
        committed = asyncio.run(_committed(stack.kafka, "smartcity-streams", "readings"))
        where, seen = [], dict.fromkeys(range(4), 0)  # (partition, offset): records are read from offset 0
        for r in readings:
            if any(f"{x.device_id}:gas.ch4" in absent for x in ReadingBatch.model_validate_json(r.value).readings):
                where.append((r.partition, seen[r.partition]))
            seen[r.partition] += 1
        raise AssertionError(
            f"committed {committed}; records holding the absent hazards (partition, index in the dump): {where}; "
            f"no alert for {sorted(absent)}; their readings in Kafka: "
            f"{sorted(str(k) for k in distinct_seqs(readings) if f'{k[0]}:gas.ch4' in absent)}; findings in Kafka: "
            f"{[r.value for r in findings if (r.key or b'').decode() in absent]}"
        )
    assert sorted(a.key for a in shown) == sorted(keys), "each hazard's alert shown exactly once"
    on_mqtt = _on_mqtt(officer, keys)
    assert set(on_mqtt) == keys, f"never on alerts/{DEPARTMENT}: {sorted(keys - set(on_mqtt))}"
    assert on_mqtt == {a.key: {a.id} for a in shown}, "one alert id per hazard on MQTT, the one the API shows"
    _raised_once(officer, keys)
    kept = next(a for a in _alerts(stack) if a.id == acknowledged)
    assert kept.acknowledged, "the acknowledgement made before the alerts service was killed is gone"
    assert kept.acknowledgement is not None
    assert kept.acknowledgement.note == "故障测试 / fault test"

    # Readings: published -> Kafka (bar what Mosquitto held when killed) -> InfluxDB exactly once.
    published = {(d, s) for d, s, _ in load.sent}
    records = audit.records(lambda rs: published <= distinct_seqs(rs), timeout=90)
    in_kafka = published & distinct_seqs(records)  # the load's readings (the warm-up's have no seq)
    lost = {(d, s, at) for d, s, at in load.sent if (d, s) not in in_kafka}
    # No other fault may lose a reading: the only other one on the way into Kafka, the gateway's, is over long before.
    assert disconnects["mosquitto"] >= 1, "the publisher never lost its broker: the Mosquitto kill did not happen"
    assert windows["ingest gateway"][1] < kills["mosquitto"] - _autosave_s(stack) - SLACK_S
    allowed = _lost_to_mosquitto([at for _, _, at in lost], [at for _, _, at in load.sent], kills["mosquitto"], stack)
    stored = wait_gas_count(stack.influx, "flt-n-", t0, len(in_kafka))
    points = gas_points(stack.influx, "flt-n-", t0)
    # Doubles show where they would: a clock-less device's reading stored twice is a second point.
    per_device = {d: sum(1 for dd, _ in in_kafka if dd == d) for d in CLOCKLESS}
    stored_per_device = {d: sum(1 for r in points if r["device_id"] == d) for d in CLOCKLESS}
    assert stored_per_device == per_device, "clock-less devices: points in InfluxDB != their readings in Kafka"
    with_seq = [(r.device_id, r.seq) for _, _, b in readings_of(records) for r in b.readings if r.seq is not None]
    repeated = len(with_seq) - len(set(with_seq))  # reached Kafka twice (redelivered): dropped by rules and writer
    if stored != len(in_kafka):  # which ones, and during which fault
        have = {
            (r["device_id"], (r["time"] - t0) // len(NORMAL) + 1) for r in points if r["device_id"] not in CLOCKLESS
        }
        missing = sorted(
            (at, d, s) for d, s, at in load.sent if (d, s) in in_kafka and (d, s) not in have and d not in CLOCKLESS
        )
        phases = [next((n for n, (a, b) in windows.items() if a <= at <= b), "between faults") for at, _, _ in missing]
        began = load.sent[0][2]
        raise AssertionError(
            f"InfluxDB holds {stored} of the {len(in_kafka)} readings Kafka accepted; missing "
            f"{[(round(at - began, 1), d, s) for at, d, s in missing[:8]]}... during {sorted(set(phases))}; "
            f"fault windows (s into the load): {_relative(windows, began)}"
        )

    ARTIFACTS.mkdir(exist_ok=True)
    figures = {
        "published": len(published),
        "accepted": len(in_kafka),
        "lost_in_mosquitto": len(lost),
        "lost_in_mosquitto_allowed": allowed,
        "stored": stored,
        "in_kafka_twice": repeated,
        "recovery_s": {k: round(v, 1) for k, v in recovery.items()},
    }
    (ARTIFACTS / "faults.json").write_text(json.dumps(figures, indent=2, ensure_ascii=False))
    print(json.dumps(figures, ensure_ascii=False))
    publisher.close()
    officer.close()


async def _committed(bootstrap: str, group: str, topic: str) -> dict[int, int | None]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return {p: await consumer.committed(TopicPartition(topic, p)) for p in range(4)}
    finally:
        await consumer.stop()


def _relative(windows: dict[str, tuple[float, float]], first: float) -> dict[str, tuple[float, float]]:
    return {n: (round(a - first, 1), round(b - first, 1)) for n, (a, b) in windows.items()}


KAFKA_RECOVERY_S = 90.0  # memory: our services are stopped, the broker restarted, the topics made, the services started


@pytest.mark.parametrize("stack", ["disk", "memory"], indirect=True)
def test_a_kafka_kill_loses_nothing_on_disk_and_only_what_the_memory_broker_held(stack: StackRun, audit: Audit) -> None:
    """Tansu killed under load (SIGKILL), and started again by the supervisor.

    On disk (the default) it comes back as it was: every reading published is stored, the alert raised before the
    kill is still open. On its memory engine what it held is gone (docs/reliability.md), and nothing else is:
    readings published from the kill on wait unacknowledged in Mosquitto while the gateway cannot hand them to Kafka,
    and reach the new broker and InfluxDB after it. Either way a hazard sent while Kafka is down still becomes an
    alert, once.
    """
    storage = stack.env["SMARTCITY_KAFKA_STORAGE"]
    secrets = json.loads((stack.data_dir / "secrets.json").read_text())
    publisher = Mqtt(stack.mqtt_url, "admin", stack.admin_password, "flk-publisher")
    officer = Mqtt(
        stack.mqtt_url, f"dept-{DEPARTMENT}", secrets["departments"][DEPARTMENT], "flk-officer", f"alerts/{DEPARTMENT}"
    )
    before, during, after = (HAZARD[name] for name in FAULTS[:3])
    t0 = int(time.time() * 1000) - 300_000
    until_online(stack, publisher.client, [*NORMAL, *HAZARD.values()], t0 - 1000)
    load = Load(publisher, t0, clockless=frozenset())  # every point tells its reading (see below)
    load.start()
    try:
        _hazard(publisher, before, t0 + 100_000)
        assert _wait_alerts(stack, {f"{before}:gas.ch4"}), "no alert before the fault"
        old, killed = _kill(stack, TANSU)
        _hazard(publisher, during, t0 + 100_001)
        recovery = _recover(stack, TANSU, old, killed, KAFKA_RECOVERY_S)
        time.sleep(2)
        _hazard(publisher, after, t0 + 100_002)
        time.sleep(3)
    finally:
        load.stop.set()
        load.join(10)
    for info in load.infos:
        with contextlib.suppress(RuntimeError, ValueError):
            info.wait_for_publish(30)

    keys = {f"{during}:gas.ch4", f"{after}:gas.ch4"}
    shown = [a for a in _wait_alerts(stack, keys, timeout=90) if a.key in keys]
    assert sorted(a.key for a in shown) == sorted(keys), "the hazards during and after the outage alerted, once each"
    assert _on_mqtt(officer, keys) == {a.key: {a.id} for a in shown}, "one alert id per hazard on MQTT"
    _raised_once(officer, keys)

    # On disk every reading published reaches InfluxDB. On the memory engine, from the kill on; before it, what the
    # broker held and the writer had not stored yet is lost with the broker's memory (a figure, not a failure).
    published = {(d, s) for d, s, _ in load.sent}
    expected = published if storage == "disk" else {(d, s) for d, s, at in load.sent if at >= killed}
    if storage == "disk":
        records = audit.records(lambda rs: expected <= distinct_seqs(rs), timeout=90)
    else:  # the new broker started from offset 0 again, under the audit's old positions: read it from its start
        records = asyncio.run(consume(stack.kafka, "readings", lambda rs: expected <= distinct_seqs(rs), timeout=90))
    assert expected <= distinct_seqs(records), f"{len(expected - distinct_seqs(records))} readings not in Kafka"
    deadline = time.monotonic() + 120
    while True:  # what a lost broker held never comes: wait for the readings expected, not for a count
        points = gas_points(stack.influx, "flt-n-", t0)
        stored = {(r["device_id"], (r["time"] - t0) // len(NORMAL) + 1) for r in points}
        if expected <= stored or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert expected <= stored, f"{len(expected - stored)} of {len(expected)} readings expected not stored"
    assert stored <= published
    still_open = any(a.key == f"{before}:gas.ch4" and a.active and not a.closed for a in _alerts(stack))
    if storage == "disk":
        assert still_open, "the alert raised before the kill is gone: the broker forgot the alerts service's book"

    ARTIFACTS.mkdir(exist_ok=True)
    figures = {
        "kafka_storage": storage,
        "published": len(published),
        "stored": len(stored),
        "lost_with_the_broker": len(published - stored),
        "recovery_s": round(recovery, 1),
        "alert_before_still_open": still_open,
    }
    (ARTIFACTS / f"faults-kafka-{storage}.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures))
    publisher.close()
    officer.close()


CUT = [f"cut-n-{i}" for i in range(20)]
CUT_CLOCKLESS = frozenset(CUT[1::2])  # stamped on arrival: a reading stored twice is two points
CUT_HAZARDS = ("cut-h-acked", "cut-h-open", "cut-h-after")


def _acknowledged(info: mqtt.MQTTMessageInfo) -> bool:
    """Whether the broker acknowledged a QoS 1 publish (paho raises for one it never sent)."""
    try:
        return info.is_published()
    except (RuntimeError, ValueError):
        return False


def _power_cut(stack: StackRun) -> None:
    """Every process of the stack stopped (SIGSTOP) and then killed (SIGKILL), the supervisor with them: none runs
    a line of cleanup, as in a power cut (a killed supervisor would otherwise send its children SIGTERM)."""
    assert stack.proc is not None
    stack.read_state()
    pids = [stack.proc.pid, *stack.pids.values()]
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
    stack.proc.wait(10)


def test_a_power_cut_storage_storage_loses_no_acknowledged_reading_alert_acknowledgement_or_window(
    tmp_path: Path,
) -> None:
    """`smartcity up` with the Kafka store (SMARTCITY_KAFKA_STORAGE=disk): an acknowledged alert, an open one, a
    silence and a drill window; 8 s of readings (150/s) that Kafka acknowledged while the writer was held, so they
    are in Kafka only; every process SIGKILLed at once; `smartcity up` again on the same data directory. Every one
    of those readings is stored once, the alerts are back as they were (not raised again) and the rule's alarm with
    them (a clearing reading clears), the windows and the registry too, and a new hazard alerts once."""
    env = {"SMARTCITY_KAFKA_STORAGE": "disk"}
    acked, still_open, after = CUT_HAZARDS
    with StackRun(tmp_path, env) as stack:
        stack.register([device_record(d, site_name="龙岗 断电测试") for d in [*CUT, *CUT_HAZARDS]])
        publisher = Mqtt(stack.mqtt_url, "admin", stack.admin_password, "cut-publisher")
        t0 = int(time.time() * 1000) - 300_000
        until_online(stack, publisher.client, [*CUT, *CUT_HAZARDS], t0 - 1000)
        _hazard(publisher, acked, t0 + 1)
        _hazard(publisher, still_open, t0 + 2)
        shown = {a.key: a for a in _wait_alerts(stack, {f"{acked}:gas.ch4", f"{still_open}:gas.ch4"})}
        assert len(shown) == 2, f"the hazards before the cut did not both alert: {sorted(shown)}"
        now = int(time.time() * 1000)
        with stack.api_client() as http:
            ack = http.post(f"/api/alerts/{shown[f'{acked}:gas.ch4'].id}/ack", json={"note": "断电前 / before the cut"})
            assert ack.status_code == 200, ack.text
            silence = {"matchers": {"department": "fire"}, "reason": "检修 maintenance", "ends_at": now + 3_600_000}
            assert http.post("/api/silences", json=silence).status_code == 201
            drill = {"name": "断电演练 power-cut drill", "site_ids": ["site-drill"], "ends_at": now + 3_600_000}
            assert http.post("/api/drills", json=drill).status_code == 201
            before = {
                "silences": http.get("/api/silences").json(),
                "drills": http.get("/api/drills").json(),
                "devices": http.get("/api/devices", params={"limit": 1000}).json()["devices"],
            }
        alerts_before = {a.key: a for a in _alerts(stack)}
        # The writer is held (SIGSTOP), so the readings are in Kafka and nowhere else when the power goes.
        os.kill(stack.pids["influx writer"], signal.SIGSTOP)
        accepted = metric(stack.gateway_metrics, ACCEPTED)
        load = Load(publisher, t0 + 10, clockless=CUT_CLOCKLESS, devices=CUT)
        load.start()
        time.sleep(8)
        load.stop.set()
        load.join(10)
        delivered = [(d, s) for (d, s, _), info in zip(load.sent, load.infos, strict=False) if _acknowledged(info)]
        deadline = time.monotonic() + 30  # Kafka acknowledged every one (Mosquitto's own loss is another test's)
        while metric(stack.gateway_metrics, ACCEPTED) - accepted < len(delivered):
            assert time.monotonic() < deadline, "the gateway did not hand every reading to Kafka"
            time.sleep(0.2)
        _power_cut(stack)
        publisher.close()

    with StackRun(tmp_path, env) as stack:
        alerts = {a.key: a for a in _alerts(stack)}
        with stack.api_client() as http:
            assert http.get("/api/silences").json() == before["silences"]
            assert http.get("/api/drills").json() == before["drills"]
            assert http.get("/api/devices", params={"limit": 1000}).json()["devices"] == before["devices"]
        for key in (f"{acked}:gas.ch4", f"{still_open}:gas.ch4"):
            assert alerts[key].id == alerts_before[key].id, f"{key}: a new alert after the restart"
            assert alerts[key].seq == alerts_before[key].seq, f"{key}: changed by the restart"
        assert alerts[f"{acked}:gas.ch4"].acknowledged, "the acknowledgement made before the cut is gone"
        assert not alerts[f"{still_open}:gas.ch4"].acknowledged

        secrets = json.loads((stack.data_dir / "secrets.json").read_text())
        officer = Mqtt(
            stack.mqtt_url, f"dept-{DEPARTMENT}", secrets["departments"][DEPARTMENT], "cut-officer",
            f"alerts/{DEPARTMENT}",
        )  # fmt: skip
        publisher = Mqtt(stack.mqtt_url, "admin", stack.admin_password, "cut-publisher-2")
        # The rule's alarm came back with its state: a reading under the clearing level clears the open alert (a rule
        # that forgot its alarm would see nothing to clear).
        body = telemetry({"ch4_lel": 5.0}, ts=t0 + 50, seq=2)
        publisher.client.publish(f"devices/{still_open}/telemetry", body, qos=1)
        deadline = time.monotonic() + 90
        while {a.key: a for a in _alerts(stack)}[f"{still_open}:gas.ch4"].active:
            assert time.monotonic() < deadline, "the rule forgot its alarm across the power cut: nothing cleared"
            time.sleep(0.5)
        _hazard(publisher, after, t0 + 100)
        assert _wait_alerts(stack, {f"{after}:gas.ch4"}), "a hazard after the restart did not alert"
        time.sleep(3)
        raised = [
            m.key for m in (Alert.model_validate_json(p) for p in list(officer.received)) if m.event.value == "raised"
        ]
        assert raised == [f"{after}:gas.ch4"], f"raised after the restart: {raised}"

        # Every reading acknowledged to the publisher reaches InfluxDB. A device with a clock: its point's ts tells
        # the reading (ts -> seq). A clockless one's point is stamped on arrival, so a reading stored twice (say,
        # redelivered by Mosquitto after the restart, past writers that forgot what they had seen) is a second point:
        # its points may not outnumber the readings it published.
        clocked = Counter((d, s) for d, s in delivered if d not in CUT_CLOCKLESS)
        clockless_sent = Counter(d for d, _s, _at in load.sent if d in CUT_CLOCKLESS)
        clockless_acked = Counter(d for d, _s in delivered if d in CUT_CLOCKLESS)
        deadline = time.monotonic() + 120
        while True:
            points = gas_points(stack.influx, "cut-n-", t0)
            stored = Counter(
                (r["device_id"], (r["time"] - t0 - 10) // len(CUT) + 1)
                for r in points
                if r["device_id"] not in CUT_CLOCKLESS
            )
            per_device = Counter(r["device_id"] for r in points if r["device_id"] in CUT_CLOCKLESS)
            done = all(stored[k] for k in clocked) and all(per_device[d] >= n for d, n in clockless_acked.items())
            if done or time.monotonic() > deadline:
                break
            time.sleep(1)
        missing = [k for k in clocked if not stored[k]]
        assert not missing, f"{len(missing)} of {len(clocked)} acknowledged readings not stored, e.g. {missing[:5]}"
        short = {d: (per_device[d], n) for d, n in clockless_acked.items() if per_device[d] < n}
        assert not short, f"clockless devices with fewer points than acknowledged readings (points, acked): {short}"
        doubled = {d: (per_device[d], n) for d, n in clockless_sent.items() if per_device[d] > n}
        assert not doubled, f"clockless devices with more points than readings sent (points, sent): {doubled}"
        officer.close()
        publisher.close()
