"""Session fixtures: real Mosquitto and a real Kafka-compatible broker (Tansu) on free ports in a temporary
directory, started with the same launchers ``smartcity up`` uses. A missing service fails the session; nothing skips.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.process import free_port
from smartcity.stack.services import Launch, influxdb, mosquitto, tansu, victoria_metrics


def _running(launch: Launch) -> Iterator[Launch]:
    launch.start(timeout=20)
    try:
        yield launch
    finally:
        launch.process.stop()


@pytest.fixture(scope="session")
def mosquitto_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launch]:
    yield from _running(mosquitto(tmp_path_factory.mktemp("mosquitto"), "127.0.0.1", free_port()))


@pytest.fixture(scope="session")
def mqtt_url(mosquitto_service: Launch) -> str:
    return mosquitto_service.url


@pytest.fixture(scope="session")
def kafka_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launch]:
    log = tmp_path_factory.mktemp("kafka") / "tansu.log"
    yield from _running(tansu("127.0.0.1", free_port(), log))


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_service: Launch) -> str:
    return kafka_service.url


@pytest.fixture(scope="session")
def influx_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launch]:
    yield from _running(influxdb(tmp_path_factory.mktemp("influxdb"), "127.0.0.1", free_port(), free_port()))


@pytest.fixture
def unique() -> str:
    """A short id for this test's topics, client ids and device ids, so tests never see each other's data."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture(scope="session")
def victoria_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launch]:
    """VictoriaMetrics: the InfluxDB v2 write API (``/api/v2/write``) on one machine."""
    yield from _running(victoria_metrics(tmp_path_factory.mktemp("victoria"), "127.0.0.1", free_port()))
