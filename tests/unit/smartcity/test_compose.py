"""compose.yaml is right by construction: it names only real settings, real commands and ports that agree; its
monitoring scrapes what it runs; its broker refuses anonymous clients; its one-shot jobs run before what needs them.

There is no Docker engine here, so this reads the file against the code and the other files it mounts.
tests/integration/test_compose_mosquitto.py runs the broker part of it for real.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer.main
import yaml
from pydantic_settings import BaseSettings

from ingest.settings import GatewaySettings
from smartcity.accounts_cli import CONTROL_USERNAME, AccountsSettings
from smartcity.api import ApiSettings
from smartcity.cli import app
from smartcity.stack.secrets import ADMIN_USERNAME, API_USERNAME, GATEWAY_USERNAME
from smartcity.stack.supervisor import StackSettings
from smartcity.storage.settings import WriterSettings
from streams.settings import StreamsSettings

ROOT = Path(__file__).resolve().parents[3]
COMPOSE_TEXT = (ROOT / "compose.yaml").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
SERVICES: dict[str, Any] = COMPOSE["services"]
OURS = {name: svc for name, svc in SERVICES.items() if svc.get("image", "").startswith("smartcity:")}
ONE_SHOT = {name for name, svc in SERVICES.items() if svc.get("restart") == "no"}
LONG_RUNNING = {name: svc for name, svc in SERVICES.items() if name not in ONE_SHOT}
SETTINGS: list[type[BaseSettings]] = [
    GatewaySettings,
    StackSettings,
    ApiSettings,
    StreamsSettings,
    WriterSettings,
    AccountsSettings,
]
REQUIRED = re.compile(r"\$\{(\w+):\?[^}]*\}")


def _known_variables() -> set[str]:
    names = {f"SMARTCITY_{field.upper()}" for model in SETTINGS for field in model.model_fields}
    command = typer.main.get_command(app)
    names |= {p.envvar for p in command.params if isinstance(p.envvar, str)}
    return names


def _http_prefix(name: str) -> str:
    """The settings prefix of a service's own HTTP server: SMARTCITY_GATEWAY_HTTP for gateway-1, ..."""
    part = next((p for p in ("gateway", "streams", "writer") if name.startswith(p)), None)
    return f"SMARTCITY_{part.upper()}_HTTP" if part else "SMARTCITY_HTTP"


def _required_variable(value: str) -> str:
    """The compose variable a value comes from; a secret must be ``${NAME:?message}``, never a literal."""
    found = REQUIRED.fullmatch(value)
    assert found, f"expected ${{VARIABLE:?message}}, got {value!r}"
    return found.group(1)


def _binds(service: dict[str, Any]) -> dict[str, str]:
    """Bind mounts of a service, container path -> repository path."""
    mounts = [v.split(":") for v in service.get("volumes", [])]
    return {target: source for source, target, *_ in mounts if source.startswith("./")}


def _conf(path: Path) -> dict[str, str]:
    lines = (line.split(None, 1) for line in path.read_text().splitlines() if line and not line.startswith("#"))
    return {words[0]: words[1] if len(words) > 1 else "" for words in lines}


def test_every_part_of_the_deployment_is_a_service() -> None:
    assert {"kafka", "mosquitto", "mosquitto-init", "influxdb", "prometheus", "grafana"} <= set(SERVICES)
    assert {"api", "gateway-1", "gateway-2", "streams-1", "streams-2", "writer", "mqtt-accounts"} <= set(OURS)


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
        if "SMARTCITY_KAFKA_BOOTSTRAP" in env:
            assert f"PLAINTEXT://{env['SMARTCITY_KAFKA_BOOTSTRAP']}" == kafka_env["KAFKA_ADVERTISED_LISTENERS"], name
        if "SMARTCITY_MQTT_URL" in env:
            assert env["SMARTCITY_MQTT_URL"] == "mqtt://mosquitto:1883", name
        if name in ONE_SHOT:
            continue
        prefix = _http_prefix(name)
        port = env[f"{prefix}_PORT"]
        assert f"127.0.0.1:{port}/healthz" in " ".join(service["healthcheck"]["test"]), name
        assert env[f"{prefix}_HOST"] == "0.0.0.0"
    conf = _conf(ROOT / "deploy/mosquitto/mosquitto.conf")
    assert conf["listener"] == "1883"
    assert "1883:1883" in SERVICES["mosquitto"]["ports"]
    assert conf["max_queued_messages"] == "1000000"
    assert kafka_env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_images_are_pinned() -> None:
    for name, service in SERVICES.items():
        image = service.get("image", "")
        assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", image), f"{name}: unpinned image {image!r}"


def test_every_long_running_service_has_a_health_check_and_restarts() -> None:
    for name, service in LONG_RUNNING.items():
        assert service.get("healthcheck", {}).get("test"), f"{name}: no health check"
        assert service.get("restart") == "unless-stopped", name


def test_one_shot_jobs_run_to_completion_before_their_dependents() -> None:
    assert {"mosquitto-init", "mqtt-accounts"} <= ONE_SHOT
    assert SERVICES["mosquitto"]["depends_on"]["mosquitto-init"]["condition"] == "service_completed_successfully"
    for name in ("api", "gateway-1", "gateway-2"):
        assert SERVICES[name]["depends_on"]["mqtt-accounts"]["condition"] == "service_completed_successfully", name
    for name, service in SERVICES.items():
        for needed, how in service.get("depends_on", {}).items():
            assert needed in SERVICES, f"{name} depends on a service that does not exist: {needed}"
            wanted = "service_completed_successfully" if needed in ONE_SHOT else "service_healthy"
            assert how["condition"] == wanted, f"{name} -> {needed}"


def test_every_mounted_file_and_named_volume_exists() -> None:
    declared = set(COMPOSE["volumes"])
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which is not in the repository"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"


def test_secrets_come_from_the_environment_and_the_header_lists_them() -> None:
    header = COMPOSE_TEXT.split("\nname:", 1)[0]
    for service in SERVICES.values():
        for key, value in service.get("environment", {}).items():
            if re.search("PASSWORD|TOKEN", key):
                _required_variable(str(value))
    for variable in set(REQUIRED.findall(COMPOSE_TEXT)):
        assert variable in header, f"{variable} is required but the header comment does not explain it"


def test_prometheus_scrapes_every_service_at_its_configured_port() -> None:
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    scraped: set[str] = set()
    for job in config["scrape_configs"]:
        assert job.get("metrics_path", "/metrics") == "/metrics", job["job_name"]
        for target in (t for group in job["static_configs"] for t in group["targets"]):
            host, port = target.split(":")
            assert host in OURS, f"{job['job_name']} scrapes {host}, not a service of ours"
            assert port == OURS[host]["environment"][f"{_http_prefix(host)}_PORT"], target
            scraped.add(host)
    assert scraped == {name for name in OURS if name not in ONE_SHOT}


def test_prometheus_and_grafana_get_their_configuration() -> None:
    prometheus = SERVICES["prometheus"]
    binds = _binds(prometheus)
    config = next(a.split("=", 1)[1] for a in prometheus["command"] if a.startswith("--config.file="))
    directory, file = config.rsplit("/", 1)
    assert (ROOT / binds[directory] / file).is_file()
    assert "/-/healthy" in " ".join(prometheus["healthcheck"]["test"])

    grafana = SERVICES["grafana"]
    binds = _binds(grafana)
    assert binds["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    provider = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/smartcity.yaml").read_text())
    dashboards = provider["providers"][0]["options"]["path"]
    assert (ROOT / binds[dashboards] / "smartcity.json").is_file()
    env = grafana["environment"]
    assert _required_variable(env["GF_SECURITY_ADMIN_PASSWORD"]) == "GRAFANA_ADMIN_PASSWORD"
    assert env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"] == f"{dashboards}/smartcity.json"
    assert "/api/health" in " ".join(grafana["healthcheck"]["test"])


def test_mosquitto_refuses_anonymous_clients_and_keeps_accounts_in_the_plugin() -> None:
    conf = _conf(ROOT / "deploy/mosquitto/mosquitto.conf")
    assert conf["allow_anonymous"] == "false"
    assert conf["plugin"].endswith("/mosquitto_dynamic_security.so")
    assert conf["persistence"] == "true"
    data = conf["persistence_location"].rstrip("/")
    assert f"mosquitto-data:{data}" in SERVICES["mosquitto"]["volumes"]
    dynsec = conf["plugin_opt_config_file"]
    assert dynsec.startswith(f"{data}/"), "the accounts must live in the data volume"
    init = SERVICES["mosquitto-init"]
    assert init["image"] == SERVICES["mosquitto"]["image"]
    assert init["environment"]["DYNSEC_FILE"] == dynsec
    assert f"mosquitto-data:{data}" in init["volumes"]
    script = next(target for target, source in _binds(init).items() if source == "./deploy/mosquitto/init.sh")
    assert script in init["command"]
    assert f'dynsec init "$file" {CONTROL_USERNAME} ' in (ROOT / "deploy/mosquitto/init.sh").read_text()
    health = " ".join(SERVICES["mosquitto"]["healthcheck"]["test"])
    assert f"-u {CONTROL_USERNAME} " in health, "anonymous clients are refused: the health check logs in"


def test_each_service_uses_the_mqtt_account_mqtt_accounts_makes_for_it() -> None:
    made = {k: _required_variable(v) for k, v in OURS["mqtt-accounts"]["environment"].items() if "PASSWORD" in k}
    control = _required_variable(SERVICES["mosquitto-init"]["environment"]["MQTT_CONTROL_PASSWORD"])
    assert made["SMARTCITY_MQTT_CONTROL_PASSWORD"] == control
    assert _required_variable(SERVICES["mosquitto"]["environment"]["MQTT_CONTROL_PASSWORD"]) == control
    assert made["SMARTCITY_MQTT_ADMIN_PASSWORD"] != control, f"{ADMIN_USERNAME} is not the plugin's administrator"
    for name, username, password in (
        ("gateway-1", GATEWAY_USERNAME, "SMARTCITY_GATEWAY_MQTT_PASSWORD"),
        ("gateway-2", GATEWAY_USERNAME, "SMARTCITY_GATEWAY_MQTT_PASSWORD"),
        ("api", API_USERNAME, "SMARTCITY_API_MQTT_PASSWORD"),
    ):
        env = OURS[name]["environment"]
        assert env["SMARTCITY_MQTT_USERNAME"] == username, name
        assert _required_variable(env["SMARTCITY_MQTT_PASSWORD"]) == made[password], name
    assert "SMARTCITY_DEPARTMENT_PASSWORDS" in made
    assert OURS["api"]["environment"]["SMARTCITY_MQTT_ACCOUNTS"] == "dynsec"


def test_the_api_image_serves_the_console() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "AS console" in dockerfile
    assert "COPY --from=console" in dockerfile
    assert OURS["api"].get("build") == "."


def test_our_volumes_are_writable_by_the_image_user() -> None:
    """A named volume takes its owner from the image's directory: each one our services mount must exist in the
    image, owned by the service user."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    user = re.search(r"^USER (\S+)", dockerfile, re.M)
    assert user, "the image runs as a user of its own"
    for name, service in OURS.items():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith((".", "/")):
                continue  # a bind mount of the repository's files, read only
            assert f"mkdir -p {target}" in dockerfile, f"{name}: {target} is not made in the image"
            assert f"chown {user.group(1)} {target}" in dockerfile, f"{name}: {target} is not owned by the service user"
