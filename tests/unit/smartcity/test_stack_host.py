"""``SMARTCITY_HOST`` moves only what authenticates its clients: Mosquitto and the API. Tansu, its store and
InfluxDB (no authentication at all) and the services' ``/healthz`` and ``/metrics`` stay on 127.0.0.1, whatever it says.

This reads the plan ``smartcity up`` would start (command lines, generated configurations, environments) without
starting it; tests/integration/test_stack_host.py looks at the sockets of a running stack.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from core.process import ManagedProcess, free_port, port_is_free
from smartcity.stack.services import Launch
from smartcity.stack.supervisor import Stack, StackSettings

WILDCARD = "0.0.0.0"


def _settings(data_dir: Path, host: str) -> StackSettings:
    """Free ports, all distinct; the gateway's and stream worker's next ones too (their second replicas')."""
    taken: set[int] = set()
    ports: dict[str, int] = {}
    names = (
        "mqtt",
        "kafka",
        "kafka_store",
        "influx",
        "influx_rpc",
        "gateway_http",
        "streams_http",
        "writer_http",
        "http",
    )
    for name in names:
        block = 2 if name in ("gateway_http", "streams_http") else 1
        while True:
            port = free_port(host if name in ("mqtt", "http") else "127.0.0.1")
            wanted = set(range(port, port + block))
            if not wanted & taken and all(port_is_free("127.0.0.1", p) for p in wanted):
                break
        taken |= wanted
        ports[f"{name}_port"] = port
    return StackSettings(
        data_dir=data_dir, host=host, gateways=2, stream_workers=2, kafka_storage="disk", **ports
    )  # fmt: skip


@pytest.fixture
def planned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[StackSettings, dict[str, Launch]]:
    for name in ("SMARTCITY_MQTT_URL", "SMARTCITY_KAFKA_BOOTSTRAP", "SMARTCITY_INFLUX_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = _settings(tmp_path, WILDCARD)
    return settings, {launch.process.name: launch for launch in Stack(settings).plan()}


def _listener(launch: Launch, settings: StackSettings) -> list[str]:
    """Every address a planned process will listen on, read from what it is started with."""
    process, d = launch.process, settings.data_dir.resolve()
    argv = " ".join(process.argv)
    if process.name == "mosquitto":
        return re.findall(r"^listener \d+ (\S+)$", (d / "mosquitto" / "mosquitto.conf").read_text(), re.M)
    if process.name == "kafka (tansu)":
        return re.findall(r"--(?:advertised-)?listener-url tcp://([^:]+):", argv)
    if process.name == "kafka store":
        return re.findall(r"--host (\S+)", argv)
    if process.name == "influxdb":
        return re.findall(r'bind-address = "([^:"]+):', (d / "influxdb" / "influxdb.conf").read_text())
    env = process.env or {}
    return [value for key, value in env.items() if re.fullmatch(r"SMARTCITY_(\w+_)?HTTP_HOST", key)]


def test_only_mosquitto_and_the_api_follow_a_wildcard_host(planned: tuple[StackSettings, dict[str, Launch]]) -> None:
    settings, launches = planned
    assert set(launches) == {
        "mosquitto",
        "kafka store",
        "kafka (tansu)",
        "influxdb",
        "ingest gateway",
        "ingest gateway 2",
        "stream worker",
        "stream worker 2",
        "influx writer",
        "api",
    }
    binds = {name: _listener(launch, settings) for name, launch in launches.items()}
    assert all(binds.values()), f"a listener address was not found: {binds}"
    assert binds.pop("mosquitto") == [WILDCARD]
    assert binds.pop("api") == [WILDCARD]
    exposed = {name: hosts for name, hosts in binds.items() if set(hosts) != {"127.0.0.1"}}
    assert not exposed, f"unauthenticated listeners off the loopback: {exposed}"
    assert len(binds["influxdb"]) == 2, "the HTTP API and the backup RPC"


def test_services_reach_the_stores_on_the_loopback(planned: tuple[StackSettings, dict[str, Launch]]) -> None:
    settings, launches = planned
    for name in ("ingest gateway", "stream worker", "influx writer", "api"):
        env = launches[name].process.env or {}
        assert env["SMARTCITY_KAFKA_BOOTSTRAP"] == f"127.0.0.1:{settings.kafka_port}", name
        if "SMARTCITY_INFLUX_URL" in env:
            assert env["SMARTCITY_INFLUX_URL"] == f"http://127.0.0.1:{settings.influx_port}", name
        if "SMARTCITY_MQTT_URL" in env:  # a wildcard is not an address to connect to
            assert env["SMARTCITY_MQTT_URL"] == f"mqtt://127.0.0.1:{settings.mqtt_port}", name
        assert launches[name].url.startswith("http://127.0.0.1:"), name
    assert launches["api"].process.env
    assert launches["api"].process.env["SMARTCITY_ALERTS_PUBLIC_URL"] == f"http://127.0.0.1:{settings.http_port}"


def test_a_loopback_host_keeps_everything_on_the_loopback(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "127.0.0.1")
    for launch in Stack(settings).plan():
        assert set(_listener(launch, settings)) == {"127.0.0.1"}, launch.process.name


def test_influxd_runs_under_nice_only_when_asked(tmp_path: Path) -> None:
    """``SMARTCITY_INFLUXD_NICE`` (0 by default: at 10 its cache snapshots lagged on a busy machine)."""
    default = {launch.process.name: launch for launch in Stack(_settings(tmp_path, "127.0.0.1")).plan()}
    assert default["influxdb"].process.argv[0] != "nice"
    niced = _settings(tmp_path, "127.0.0.1").model_copy(update={"influxd_nice": 10})
    (influxd,) = [launch for launch in Stack(niced).plan() if launch.process.name == "influxdb"]
    assert influxd.process.argv[:3] == ["nice", "-n", "10"]


def test_influxd_gets_a_go_heap_limit_unless_told_not_to(tmp_path: Path) -> None:
    """``SMARTCITY_INFLUXD_MEMORY_LIMIT_MIB`` becomes influxd's ``GOMEMLIMIT``; 0 leaves the Go runtime's default."""

    def influxd(**update: int) -> ManagedProcess:
        settings = _settings(tmp_path, "127.0.0.1").model_copy(update=update)
        (launch,) = [launch for launch in Stack(settings).plan() if launch.process.name == "influxdb"]
        return launch.process

    limited = influxd()
    assert limited.env is not None
    assert limited.env["GOMEMLIMIT"] == "768MiB"
    assert limited.env["PATH"] == os.environ["PATH"], "the rest of the environment is kept"
    assert influxd(influxd_memory_limit_mib=512).env["GOMEMLIMIT"] == "512MiB"  # type: ignore[index]
    assert influxd(influxd_memory_limit_mib=0).env is None
