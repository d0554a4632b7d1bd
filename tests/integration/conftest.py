from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from pydantic_settings import BaseSettings

from alerts.officers import token_hash
from alerts.settings import AlertsSettings
from core.process import ManagedProcess, free_port
from devices.directory import DeviceDirectory, OpenDirectory
from devices.mqtt_accounts import MqttAccounts
from devices.mqtt_files import FileAccounts
from ingest.gateway import Gateway
from ingest.metrics import GatewayMetrics
from ingest.settings import GatewaySettings
from smartcity.stack.services import Launch, dynsec_init, mosquitto
from streams.settings import StreamsSettings
from tests.alerts_util import FIRE_OFFICER, RigFactory, rig_factory
from tests.api_util import LiveApi, accounts_conn, api_settings, live_api
from tests.mqtt_util import CONTROL_PASSWORD, CONTROL_USER

pytestmark = pytest.mark.integration


@pytest.fixture
def gateway_settings(mqtt_url: str, kafka_bootstrap: str, unique: str) -> GatewaySettings:
    return GatewaySettings(
        mqtt_url=mqtt_url,
        kafka_bootstrap=kafka_bootstrap,
        topic_readings=f"readings.{unique}",
        topic_rejected=f"rejected.{unique}",
        gateway_client_id=f"gw-{unique}",
        gateway_share_group=f"g{unique}",
        gateway_session_expiry_s=300,
        gateway_registry="open",
        gateway_http_port=0,
    )


GatewayFactory = Callable[..., AbstractAsyncContextManager[Gateway]]


@pytest.fixture
def run_gateway() -> GatewayFactory:
    """``async with run_gateway(settings, directory) as gw``: an in-process gateway on the test's event loop."""

    @asynccontextmanager
    async def _run(settings: GatewaySettings, directory: DeviceDirectory | None = None) -> AsyncIterator[Gateway]:
        gateway = Gateway(
            settings,
            directory if directory is not None else OpenDirectory(),
            GatewayMetrics.create(CollectorRegistry()),
        )
        stop = asyncio.Event()
        task = asyncio.create_task(gateway.run(stop))
        try:
            while not gateway.mqtt.subscribed.is_set():
                if task.done():
                    task.result()
                await asyncio.sleep(0.02)
            yield gateway
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)

    return _run


@pytest.fixture
def gateway_process(gateway_settings: GatewaySettings, tmp_path: Path) -> Callable[[GatewaySettings], ManagedProcess]:
    """A gateway as its own process (``python -m smartcity gateway``), for tests that kill it."""
    started: list[ManagedProcess] = []

    def _make(settings: GatewaySettings = gateway_settings) -> ManagedProcess:
        process = gateway_proc(settings, tmp_path / "gateway.log")
        started.append(process)
        return process

    yield _make  # type: ignore[misc]
    for process in started:
        process.stop()


@pytest.fixture(scope="session")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Launch, Path]]:
    """Mosquitto with the dynamic-security plugin: anonymous refused, accounts made through MqttAccounts."""
    directory = tmp_path_factory.mktemp("mosquitto-dynsec")
    dynsec = directory / "dynamic-security.json"
    dynsec_init(dynsec, CONTROL_USER, CONTROL_PASSWORD)
    launch = mosquitto(directory, "127.0.0.1", free_port(), dynsec=dynsec)
    launch.start()
    yield launch, dynsec
    launch.process.stop()


@pytest.fixture
async def accounts(secured: tuple[Launch, Path]) -> AsyncIterator[MqttAccounts]:
    admin = MqttAccounts(accounts_conn(secured))
    await admin.start()
    yield admin
    await admin.close()


@dataclass(frozen=True)
class FileSecured:
    """Mosquitto reading its accounts from password and ACL files that ``FileAccounts`` keeps."""

    launch: Launch
    auth_dir: Path
    pid_file: Path

    def accounts(self) -> FileAccounts:
        return FileAccounts(self.auth_dir, self.pid_file)


@pytest.fixture(scope="session")
def file_secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FileSecured]:
    directory = tmp_path_factory.mktemp("mosquitto-files")
    accounts = FileAccounts(directory / "auth", directory / "mosquitto.pid")
    launch = mosquitto(directory, "127.0.0.1", free_port(), auth_files=(accounts.passwd, accounts.acl))
    rig = FileSecured(launch, directory / "auth", directory / "mosquitto.pid")
    launch.start()
    yield rig
    launch.process.stop()


def settings_env(settings: BaseSettings) -> dict[str, str]:
    """The environment that makes a service process build exactly ``settings``."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        if value is not None:
            env[f"SMARTCITY_{name.upper()}"] = str(value)
    return env


def gateway_proc(settings: GatewaySettings, log: Path) -> ManagedProcess:
    """A gateway as its own process (``python -m smartcity gateway``)."""
    return ManagedProcess("gateway", [sys.executable, "-m", "smartcity", "gateway"], log, env=settings_env(settings))


def streams_process(settings: StreamsSettings, log: Path) -> ManagedProcess:
    """A stream worker as its own process (``python -m smartcity streams``), for tests that run several or kill one."""
    return ManagedProcess("streams", [sys.executable, "-m", "smartcity", "streams"], log, env=settings_env(settings))


@pytest.fixture
def alerts_settings(mqtt_url: str, kafka_bootstrap: str, influx_service: Launch, unique: str) -> AlertsSettings:
    return AlertsSettings(
        mqtt_url=mqtt_url,
        kafka_bootstrap=kafka_bootstrap,
        influx_url=influx_service.url,
        influx_db=f"alerts_{unique}",
        topic_findings=f"findings.{unique}",
        topic_alerts=f"alerts.{unique}",
        topic_alert_state=f"alerts.state.{unique}",
        topic_alert_control=f"alerts.control.{unique}",
        topic_undelivered=f"alerts.undelivered.{unique}",
        alerts_group=f"alerts-{unique}",
        alerts_tick_s=0.2,
        alerts_max_attempts=2,
    )


@pytest.fixture
def rig(alerts_settings: AlertsSettings, tmp_path: Path) -> RigFactory:
    officers_file = tmp_path / "officers.yaml"
    officers_file.write_text(
        f"officers:\n  - name: 火警值班员\n    departments: [fire]\n    token_sha256: {token_hash(FIRE_OFFICER)}\n"
    )
    return rig_factory(alerts_settings, officers_file)


@pytest.fixture
async def api(
    alerts_settings: AlertsSettings, secured: tuple[Launch, Path], tmp_path: Path, unique: str
) -> AsyncIterator[LiveApi]:
    """The whole API (``smartcity api``'s app) on real HTTP with the dynamic-security Mosquitto (tests/api_util.py).
    test_devices_api.py has an ``api`` of its own."""
    async with live_api(api_settings(alerts_settings, tmp_path, unique), accounts_conn(secured)) as running:
        yield running
