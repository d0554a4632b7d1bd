"""``smartcity up``: starts everything, reports healthy, carries a reading into Kafka, stops with nothing left."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.contracts.finding import Finding
from core.process import READY_LINE, free_port
from harness.builders import device_record, telemetry
from tests.kafka_util import Consumed, consume, readings_of
from tests.mqtt_util import Client

pytestmark = pytest.mark.integration

NOW = int(time.time() * 1000) - 60_000  # readings' event time: recent, so inside InfluxDB's raw retention policy


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTCITY_")}
    env.update(
        SMARTCITY_MQTT_PORT=str(free_port()),
        SMARTCITY_KAFKA_PORT=str(free_port()),
        SMARTCITY_INFLUX_PORT=str(free_port()),
        SMARTCITY_INFLUX_RPC_PORT=str(free_port()),
        SMARTCITY_GATEWAY_HTTP_PORT=str(free_port()),
        SMARTCITY_STREAMS_HTTP_PORT=str(free_port()),
        SMARTCITY_WRITER_HTTP_PORT=str(free_port()),
        SMARTCITY_HTTP_PORT=str(free_port()),
        COLUMNS="200",
    )
    env.update(extra)
    return env


def _up(data_dir: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "smartcity", "up", "--data-dir", str(data_dir)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes but still answers kill(0).
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] != "Z"


def _record(device_id: str, kind: str, interval_s: int, department: str) -> dict[str, Any]:
    """At the Pingdi chemical park, the site the assertions name."""
    return device_record(
        device_id, kind, site="S01", site_name="坪地化工园", lat=22.76, lon=114.31, interval_s=interval_s,
        departments=[department],
    )  # fmt: skip


def _where(env: dict[str, str]) -> tuple[str, str, str, dict[str, str]]:
    """API URL, MQTT URL, Kafka bootstrap and auth header of the stack that ``env`` describes."""
    return (
        f"http://127.0.0.1:{env['SMARTCITY_HTTP_PORT']}",
        f"mqtt://127.0.0.1:{env['SMARTCITY_MQTT_PORT']}",
        f"127.0.0.1:{env['SMARTCITY_KAFKA_PORT']}",
        {"Authorization": f"Bearer {env['SMARTCITY_API_TOKEN']}"},
    )


def _start(data_dir: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], list[str], float]:
    started = time.monotonic()
    proc = _up(data_dir, env)
    assert proc.stdout is not None
    output: list[str] = []
    for line in proc.stdout:
        output.append(line)
        if READY_LINE in line:
            break
    assert any(READY_LINE in line for line in output), "".join(output)
    return proc, output, time.monotonic() - started


def _stop(proc: subprocess.Popen[str], output: list[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, "".join(output) + rest
    return rest


async def _publish_as(mqtt_url: str, username: str, password: str, device: str, seq: int, ch4: float = 7.5) -> None:
    body = telemetry({"ch4_lel": ch4}, ts=NOW + seq, seq=seq)
    client = await asyncio.to_thread(Client, mqtt_url, username, password)
    try:
        assert client.connect_rc is not None
        assert not client.connect_rc.is_failure, client.connect_rc
        info = await asyncio.to_thread(client.publish, f"devices/{device}/telemetry", body)
        assert info.is_published()
    finally:
        client.close()


def _until_known(mqtt_url: str, username: str, password: str, device: str, timeout: float = 20) -> None:
    """Until the gateway knows ``device`` from the devices topic. The device sends an empty batch (``[]``), which the
    gateway refuses as ``unknown_device`` before it has the device's record and as ``empty_batch`` after; the
    refusal comes back on the device's errors topic. No reading is made: what a test counts on the readings topic
    stays exact."""
    client = Client(mqtt_url, username, password)
    try:
        client.client.subscribe(f"devices/{device}/errors", qos=1)
        deadline = time.monotonic() + timeout
        reasons: list[str] = []
        while "empty_batch" not in reasons:
            assert time.monotonic() < deadline, (
                f"the gateway never learnt of {device}: refused as {sorted(set(reasons))}"
            )
            heard = len(client.received)
            client.publish(f"devices/{device}/telemetry", b"[]")
            answer = time.monotonic() + 2
            while len(client.received) == heard and time.monotonic() < answer:
                time.sleep(0.02)
            reasons = [json.loads(payload)["reason"] for _, payload in client.received]
    finally:
        client.close()


async def _alert_message(officer: Client, count: int, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while len(officer.received) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert len(officer.received) >= count, officer.received
    topic, payload = officer.received[count - 1]
    assert topic == "alerts/emergency"
    return dict(json.loads(payload))


async def test_up_starts_healthy_registers_a_device_carries_its_reading_and_stops_cleanly(tmp_path: Path) -> None:
    env = _env(SMARTCITY_API_TOKEN="stack-test-token")
    api, mqtt_url, bootstrap, auth = _where(env)
    device = _record("gas-stack-1", "gas", 60, "emergency")

    proc, output, healthy_after = _start(tmp_path, env)
    try:
        assert healthy_after <= 15, f"healthy after {healthy_after:.1f} s"
        state = json.loads((tmp_path / "stack.json").read_text())
        assert set(state) == {
            "mosquitto",
            "kafka store",
            "kafka (tansu)",
            "influxdb",
            "ingest gateway",
            "stream worker",
            "influx writer",
            "api",
        }
        pids = [entry["pid"] for entry in state.values()]
        assert all(_alive(pid) for pid in pids)

        async with httpx.AsyncClient(base_url=api, headers=auth) as http:
            created = await http.put("/api/devices/gas-stack-1", json=device)
        assert created.status_code == 201, created.text
        creds = created.json()["credentials"]
        await asyncio.to_thread(_until_known, mqtt_url, creds["username"], creds["password"], "gas-stack-1")
        secrets = json.loads((tmp_path / "secrets.json").read_text())
        officer = await asyncio.to_thread(Client, mqtt_url, "dept-emergency", secrets["departments"]["emergency"])
        officer.client.subscribe("alerts/emergency", qos=1)
        await _publish_as(mqtt_url, creds["username"], creds["password"], "gas-stack-1", 1, ch4=30.0)
        anonymous = await asyncio.to_thread(Client, mqtt_url, None, None)
        anonymous.close()
        assert anonymous.connect_rc is not None
        assert anonymous.connect_rc.is_failure, "anonymous clients must be refused"
        records = await consume(bootstrap, "readings", lambda r: len(readings_of(r)) >= 1, timeout=20)
        [(_, key, batch)] = readings_of(records)
        assert key == b"gas-stack-1"
        assert batch.readings[0].values == {"ch4_lel": 30.0}
        # ... and the stream worker found it over the methane alarm level, with the registry's context.
        found = await consume(bootstrap, "findings", lambda r: len(r) >= 1, timeout=20)
        [finding] = [Finding.model_validate_json(r.value) for r in found]
        assert (finding.key, finding.event.value, finding.level.value) == ("gas-stack-1:gas.ch4", "raised", "orange")
        assert finding.site_name == "坪地化工园"
        # ... the alerts service told the emergency department's duty officers over MQTT; one acknowledges it.
        raised = await _alert_message(officer, 1)
        assert (raised["event"], raised["level"], raised["departments"]) == ("raised", "orange", ["emergency"])
        async with httpx.AsyncClient(base_url=api, headers=auth) as http:
            acked = await http.post(f"/api/alerts/{raised['id']}/ack", json={"by": "值班员", "note": "已通知燃气公司"})
            assert acked.status_code == 200, acked.text
            listed = (await http.get("/api/alerts", params={"department": "emergency"})).json()
        assert [(a["id"], a["acknowledged"]) for a in listed] == [(raised["id"], True)]
        acknowledged = await _alert_message(officer, 2)
        assert (acknowledged["event"], acknowledged["acknowledgement"]["by"]) == ("acknowledged", "值班员")
        officer.close()
        # ... and the InfluxDB writer stored the reading, which the readings API returns.
        params = {"metric": "ch4_lel", "from": NOW - 60_000, "to": NOW + 60_000}
        async with httpx.AsyncClient(base_url=api, headers=auth) as http:
            for _ in range(100):
                history = (await http.get("/api/devices/gas-stack-1/readings", params=params)).json()
                if history.get("points"):
                    break
                await asyncio.sleep(0.1)
        assert history["points"] == [{"ts": NOW + 1, "value": 30.0}], history
    finally:
        rest = _stop(proc, output)
    assert "stopped" in rest
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert not [pid for pid in pids if _alive(pid)], "processes left behind"

    # The registry, and the device's credentials, survive a restart of the stack.
    proc, output, _ = _start(tmp_path, env)
    try:
        async with httpx.AsyncClient(base_url=api, headers=auth) as http:
            again = await http.get("/api/devices/gas-stack-1")
        assert again.status_code == 200
        assert again.json()["site_name"] == "坪地化工园"
        await _publish_as(mqtt_url, creds["username"], creds["password"], "gas-stack-1", 2)
        records = await consume(bootstrap, "readings", lambda r: 2 in _seqs(r), timeout=20)
        # On disk the first reading may still be there, unless the Kafka store trimmed it once it was consumed.
        assert _seqs(records)[-1:] == [2]
        assert set(_seqs(records)) <= {1, 2}
    finally:
        _stop(proc, output)


def _seqs(records: list[Consumed]) -> list[int | None]:
    return [r.seq for _, _, b in readings_of(records) for r in b.readings]


async def test_health_follows_readings_the_last_will_and_silence(tmp_path: Path) -> None:
    env = _env(SMARTCITY_API_TOKEN="stack-test-token")
    api, mqtt_url, _, auth = _where(env)
    device = _record("fire-h1", "fire", 1, "fire")
    proc, output, _ = _start(tmp_path, env)
    try:
        async with httpx.AsyncClient(base_url=api, headers=auth) as http:
            creds = (await http.put("/api/devices/fire-h1", json=device)).json()["credentials"]
            assert (await http.get("/api/devices/fire-h1/health")).json()["status"] == "offline"  # never heard from
            await asyncio.to_thread(_until_known, mqtt_url, creds["username"], creds["password"], "fire-h1")
            client = await asyncio.to_thread(
                Client, mqtt_url, creds["username"], creds["password"], ("devices/fire-h1/status", b"offline")
            )
            await asyncio.to_thread(client.publish, "devices/fire-h1/status", b"online")
            body = telemetry({"temp_c": 24.5, "battery_pct": 77, "rssi_dbm": -68}, seq=1)
            await asyncio.to_thread(client.publish, "devices/fire-h1/telemetry", body)

            async def health() -> dict[str, Any]:
                return dict((await http.get("/api/devices/fire-h1/health")).json())

            for _ in range(100):  # through the stream worker's health topic: seconds, not milliseconds
                now = await health()
                if now["status"] == "online":
                    break
                await asyncio.sleep(0.1)
            assert now["status"] == "online", now
            assert (now["battery_pct"], now["rssi_dbm"]) == (77.0, -68.0)
            assert now["last_values"]["temp_c"] == 24.5
            online = (await http.get("/api/devices", params={"status": "online"})).json()
            assert [d["id"] for d in online["devices"]] == ["fire-h1"]

            await asyncio.sleep(3.5)  # three reporting intervals of silence
            silent = await health()
            assert silent["status"] == "offline", silent
            assert silent["status_topic"] == "online"
            assert "silent" in silent["reason"]

            await asyncio.to_thread(client.drop)  # the broker publishes the last will
            for _ in range(40):
                now = await health()
                if now["status_topic"] == "offline":
                    break
                await asyncio.sleep(0.1)
            assert now["status"] == "offline", now
            assert "last will" in now["reason"]
            offline = (await http.get("/api/devices", params={"status": "offline"})).json()
            assert [d["id"] for d in offline["devices"]] == ["fire-h1"]
    finally:
        _stop(proc, output)


def test_up_says_how_to_fix_a_port_that_is_taken(tmp_path: Path) -> None:
    env = _env()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", int(env["SMARTCITY_MQTT_PORT"])))
        holder.listen()
        proc = _up(tmp_path, env)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2, out
    assert f"127.0.0.1:{env['SMARTCITY_MQTT_PORT']}: the port is already in use" in out
    assert "SMARTCITY_MQTT_PORT" in out
    assert not (tmp_path / "stack.json").exists(), "nothing may start when the plan cannot work"


def test_up_refuses_a_replica_port_that_is_another_services(tmp_path: Path) -> None:
    env = _env(SMARTCITY_STREAM_WORKERS="2")
    env["SMARTCITY_WRITER_HTTP_PORT"] = str(int(env["SMARTCITY_STREAMS_HTTP_PORT"]) + 1)
    proc = _up(tmp_path, env)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2, out
    assert "SMARTCITY_WRITER_HTTP_PORT and SMARTCITY_STREAMS_HTTP_PORT+1 are both port" in out
    assert not (tmp_path / "stack.json").exists(), "nothing may start when the plan cannot work"


def test_up_says_which_package_to_install_when_a_binary_is_missing(tmp_path: Path) -> None:
    proc = _up(tmp_path, _env(SMARTCITY_MOSQUITTO_BIN=str(tmp_path / "no-such-mosquitto")))
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2, out
    assert "mosquitto is not installed" in out
    assert "apt-get install mosquitto" in out
