"""compose.yaml is right by construction: it names only real settings, real commands and ports that agree."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer.main
import yaml
from pydantic_settings import BaseSettings

from ingest.settings import GatewaySettings
from smartcity.api import ApiSettings
from smartcity.cli import app
from smartcity.stack.supervisor import StackSettings
from smartcity.storage.settings import WriterSettings
from streams.settings import StreamsSettings

ROOT = Path(__file__).resolve().parents[3]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
OURS = {name: svc for name, svc in SERVICES.items() if svc.get("image", "").startswith("smartcity:")}
SETTINGS: list[type[BaseSettings]] = [GatewaySettings, StackSettings, ApiSettings, StreamsSettings, WriterSettings]


def _known_variables() -> set[str]:
    names = {f"SMARTCITY_{field.upper()}" for model in SETTINGS for field in model.model_fields}
    command = typer.main.get_command(app)
    names |= {p.envvar for p in command.params if isinstance(p.envvar, str)}
    return names


def test_our_services_exist() -> None:
    assert {"api", "gateway-1", "gateway-2", "streams-1", "streams-2", "writer"} <= set(OURS)


def test_every_smartcity_variable_is_a_real_setting() -> None:
    known = _known_variables()
    for name, service in OURS.items():
        unknown = {k for k in service["environment"] if k.startswith("SMARTCITY_")} - known
        assert not unknown, f"{name} sets variables no settings model reads: {unknown}"


def test_every_command_exists() -> None:
    commands = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    for name, service in OURS.items():
        assert service["command"][0] in commands, f"{name}: unknown command {service['command']}"


def test_gateways_have_distinct_stable_client_ids() -> None:
    ids = [svc["environment"]["SMARTCITY_GATEWAY_CLIENT_ID"] for name, svc in OURS.items() if "gateway" in name]
    assert len(ids) == len(set(ids)) == 2


def test_ports_agree() -> None:
    kafka_env = SERVICES["kafka"]["environment"]
    for name, service in OURS.items():
        env = service["environment"]
        assert f"PLAINTEXT://{env['SMARTCITY_KAFKA_BOOTSTRAP']}" == kafka_env["KAFKA_ADVERTISED_LISTENERS"], name
        assert env["SMARTCITY_MQTT_URL"] == "mqtt://mosquitto:1883"
        prefix = next(
            (f"SMARTCITY_{part.upper()}_HTTP" for part in ("gateway", "streams", "writer") if name.startswith(part)),
            "SMARTCITY_HTTP",
        )
        port = env[f"{prefix}_PORT"]
        assert f"127.0.0.1:{port}/healthz" in " ".join(service["healthcheck"]["test"]), name
        assert env[f"{prefix}_HOST"] == "0.0.0.0"
    conf = (ROOT / "deploy/mosquitto/mosquitto.conf").read_text()
    assert "listener 1883" in conf
    assert "max_queued_messages 1000000" in conf
    assert kafka_env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_images_are_pinned() -> None:
    for name, service in SERVICES.items():
        image = service.get("image", "")
        assert ":" in image, f"{name}: unpinned image {image!r}"
        assert not image.endswith(":latest"), f"{name}: unpinned image {image!r}"
