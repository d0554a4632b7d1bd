"""compose.yaml is right by construction: it names only real settings, real commands and ports that agree; its
monitoring scrapes what it runs; its broker refuses anonymous clients; its one-shot jobs run before what needs them.
It is what docs/reliability.md, docs/tls.md and docs/security.md say: three KRaft brokers replicating every topic three
times (min in-sync 2), MQTT over TLS only, the API over HTTPS only, /metrics reachable on compose's network only.

There is no Docker engine here, so this reads the file against the code and the other files it mounts.
tests/integration/test_compose_mosquitto.py runs the broker part of it for real.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml
from pydantic_settings import BaseSettings

from core.kafka.admin import all_topics
from core.secrets import ADMIN_USERNAME, API_USERNAME, GATEWAY_USERNAME
from core.settings import KafkaConnection
from ingest.settings import GatewaySettings
from smartcity.accounts_cli import CONTROL_USERNAME, AccountsSettings
from smartcity.api import ApiSettings
from smartcity.cli import app
from smartcity.stack.services import INFLUXD_MEMORY
from smartcity.stack.supervisor import StackSettings
from storage.settings import WriterSettings
from streams.app import streams_topics
from streams.settings import StreamsSettings

ROOT = Path(__file__).resolve().parents[3]
#: What deploy/tls/make-certs.sh makes for each service that serves TLS: the CA, the certificate, its key.
CERT_FILES = {"mosquitto": ("ca.pem", "mosquitto.crt", "mosquitto.key"), "api": ("ca.pem", "api.crt", "api.key")}
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
BROKERS = {name: svc for name, svc in SERVICES.items() if svc.get("image", "").startswith("apache/kafka:")}
CERTS_DIR = "./deploy/tls/certs"
MAKE_CERTS = ROOT / "deploy/tls/make-certs.sh"


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


def _listeners(path: Path) -> dict[str, dict[str, str]]:
    """Each ``listener`` of a mosquitto.conf with the options that follow it (up to the next listener)."""
    found: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in path.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        if key == "listener":
            current = found.setdefault(value, {})
        elif current is not None:
            current[key] = value
    return found


def _published(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(host address, host port, container port) of every port a service publishes; "" for every address."""
    out = []
    for entry in service.get("ports", []):
        *address, host, container = str(entry).split(":")
        out.append((address[0] if address else "", int(host), int(container.split("/")[0])))
    return out


def _tls_mount(service: dict[str, Any]) -> str:
    """Where a service sees the certificates directory the certs service fills."""
    mounts = [target for target, source in _binds(service).items() if source == CERTS_DIR]
    assert len(mounts) == 1, f"{CERTS_DIR} mounted {len(mounts)} times"
    return mounts[0]


def _metrics_port(name: str) -> str:
    """The port a service of ours serves /metrics on: the API's listener of its own, the others' HTTP port."""
    env = OURS[name]["environment"]
    return str(env["SMARTCITY_HTTP_METRICS_PORT"] if name == "api" else env[f"{_http_prefix(name)}_PORT"])


def test_every_part_of_the_deployment_is_a_service() -> None:
    assert {"kafka-1", "kafka-2", "kafka-3", "mosquitto", "mosquitto-init", "influxdb"} <= set(SERVICES)
    assert {"prometheus", "grafana"} <= set(SERVICES)
    assert {"api", "gateway-1", "gateway-2", "streams-1", "streams-2", "writer", "mqtt-accounts", "certs"} <= set(OURS)


def test_every_smartcity_variable_is_a_real_setting() -> None:
    known = _known_variables()
    for name, service in OURS.items():
        unknown = {k for k in service["environment"] if k.startswith("SMARTCITY_")} - known
        assert not unknown, f"{name} sets variables no settings model reads: {unknown}"


def test_every_command_exists() -> None:
    commands = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    for name, service in OURS.items():
        if "entrypoint" in service:  # not `smartcity ...`: a script of ours in the image (certs)
            continue
        assert service["command"][0] in commands, f"{name}: unknown command {service['command']}"


def test_gateways_have_distinct_stable_client_ids() -> None:
    ids = [svc["environment"]["SMARTCITY_GATEWAY_CLIENT_ID"] for name, svc in OURS.items() if "gateway" in name]
    assert len(ids) == len(set(ids)) == 2


def test_ports_agree() -> None:
    advertised = [
        svc["environment"]["KAFKA_ADVERTISED_LISTENERS"].removeprefix("PLAINTEXT://") for svc in BROKERS.values()
    ]
    (mqtt_port,) = _listeners(ROOT / "deploy/mosquitto/mosquitto.conf")
    for name, service in OURS.items():
        env = service.get("environment", {})
        if "SMARTCITY_KAFKA_BOOTSTRAP" in env:
            assert env["SMARTCITY_KAFKA_BOOTSTRAP"].split(",") == advertised, f"{name}: every broker, by its name"
        if "SMARTCITY_MQTT_URL" in env:
            assert env["SMARTCITY_MQTT_URL"] == f"mqtts://mosquitto:{mqtt_port}", name
        if name in ONE_SHOT:
            continue
        prefix = _http_prefix(name)
        port = env[f"{prefix}_PORT"]
        scheme, host = ("https", "localhost") if f"{prefix}_TLS_CERT_FILE" in env else ("http", "127.0.0.1")
        assert f"{scheme}://{host}:{port}/healthz" in " ".join(service["healthcheck"]["test"]), name
        assert env[f"{prefix}_HOST"] == "0.0.0.0"
    assert _published(SERVICES["mosquitto"]) == [("", int(mqtt_port), int(mqtt_port))]
    assert _conf(ROOT / "deploy/mosquitto/mosquitto.conf")["max_queued_messages"] == "1000000"


def test_kafka_is_three_kraft_brokers_replicating_every_topic_three_times() -> None:
    """docs/reliability.md: production runs Kafka with replication. Three nodes, each a broker and a controller;
    topics on all three (replication 3), a write acknowledged once two have it (min in-sync 2), so one broker can be
    lost or restarted; no unclean election, no topic made by a stray metadata request."""
    assert set(BROKERS) == {"kafka-1", "kafka-2", "kafka-3"}
    envs = {name: svc["environment"] for name, svc in BROKERS.items()}
    ids = {name: env["KAFKA_NODE_ID"] for name, env in envs.items()}
    assert sorted(ids.values()) == ["1", "2", "3"]
    voters = ",".join(f"{ids[name]}@{name}:9093" for name in sorted(BROKERS))
    for name, env in envs.items():
        assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}, name
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == voters, name
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{name}:9092", name
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3", name
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2", name
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3", name
        assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "3", name
        assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "2", name
        assert env["KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE"] == "false", name
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false", name
        assert f"{name}-data:{env['KAFKA_LOG_DIRS']}" in BROKERS[name]["volumes"], f"{name}: its own volume"
    assert len({env["CLUSTER_ID"] for env in envs.values()}) == 1, "one cluster"
    for name, service in SERVICES.items():
        if "SMARTCITY_KAFKA_BOOTSTRAP" in service.get("environment", {}):
            for broker in BROKERS:
                assert service["depends_on"][broker]["condition"] == "service_healthy", f"{name} -> {broker}"


def test_our_services_create_every_topic_with_replication_3(monkeypatch: pytest.MonkeyPatch) -> None:
    """Topics are made by our services (auto-creation is off): with the settings compose gives them, every topic
    of the flow and every stream worker's topic and changelog has three replicas, not the default one."""
    with_kafka = {n: s for n, s in OURS.items() if "SMARTCITY_KAFKA_BOOTSTRAP" in s.get("environment", {})}
    assert {"api", "gateway-1", "streams-1", "writer"} <= set(with_kafka)
    for name, service in with_kafka.items():
        for key in [k for k in os.environ if k.startswith("SMARTCITY_")]:
            monkeypatch.delenv(key)
        for key, value in service["environment"].items():
            if key in ("SMARTCITY_KAFKA_BOOTSTRAP", "SMARTCITY_KAFKA_REPLICATION") or key.endswith("_PARTITIONS"):
                monkeypatch.setenv(key, str(value))
        topics = [*all_topics(KafkaConnection()), *streams_topics(StreamsSettings())]
        assert {spec.replication for spec in topics} == {3}, name


def test_nothing_is_published_in_plain_text_and_no_metrics_at_all() -> None:
    """MQTT on 8883 only, behind TLS; the API on its HTTPS port only; no /metrics port on the host."""
    metrics = {int(_metrics_port(name)) for name in OURS if name not in ONE_SHOT}
    published = {name: _published(svc) for name, svc in SERVICES.items() if svc.get("ports")}
    assert set(published) == {"mosquitto", "api", "grafana", "prometheus"}
    for name, ports in published.items():
        for _address, host, container in ports:
            assert {host, container}.isdisjoint({1883, 8080}), f"{name} publishes plain MQTT or HTTP: {ports}"
            assert container not in metrics, f"{name} publishes a metrics port: {ports}"
    api = OURS["api"]["environment"]
    assert _published(OURS["api"]) == [("", int(api["SMARTCITY_HTTP_PORT"]), int(api["SMARTCITY_HTTP_PORT"]))]
    assert api["SMARTCITY_HTTP_TLS_CERT_FILE"], "the API serves HTTPS only"
    assert api["SMARTCITY_HTTP_METRICS_PORT"] != api["SMARTCITY_HTTP_PORT"], "/metrics off the published port"
    assert str(api["SMARTCITY_ALERTS_PUBLIC_URL"]).endswith(f"-https://localhost:{api['SMARTCITY_HTTP_PORT']}}}")
    assert [address for address, _, _ in published["prometheus"]] == ["127.0.0.1"], "no authentication: loopback"


def test_mqtt_is_tls_only_with_the_certificates_of_the_certs_service() -> None:
    listeners = _listeners(ROOT / "deploy/mosquitto/mosquitto.conf")
    assert list(listeners) == ["8883"], "one listener, TLS"
    tls = listeners["8883"]
    mount = _tls_mount(SERVICES["mosquitto"])
    assert f"{CERTS_DIR}:{mount}:ro" in SERVICES["mosquitto"]["volumes"]
    assert {tls["cafile"], tls["certfile"], tls["keyfile"]} == {f"{mount}/{f}" for f in CERT_FILES["mosquitto"]}
    health = " ".join(SERVICES["mosquitto"]["healthcheck"]["test"])
    assert f"--cafile {tls['cafile']} -h localhost -p 8883 " in health, "the health check goes through TLS"
    for name, service in OURS.items():
        env = service.get("environment", {})
        if "SMARTCITY_MQTT_URL" not in env:
            continue
        assert env["SMARTCITY_MQTT_URL"].startswith("mqtts://"), name
        assert env["SMARTCITY_MQTT_TLS_CA_FILE"] == f"{_tls_mount(service)}/ca.pem", name
        assert service["depends_on"]["certs"]["condition"] == "service_completed_successfully", name


def test_the_api_serves_https_with_the_certificate_of_the_certs_service() -> None:
    service = OURS["api"]
    env, mount = service["environment"], _tls_mount(service)
    assert {env["SMARTCITY_HTTP_TLS_CERT_FILE"], env["SMARTCITY_HTTP_TLS_KEY_FILE"]} == {
        f"{mount}/{f}" for f in CERT_FILES["api"][1:]
    }
    health = " ".join(service["healthcheck"]["test"])
    assert f"cafile='{mount}/ca.pem'" in health, "the health check trusts our CA and checks the name"
    assert service["depends_on"]["certs"]["condition"] == "service_completed_successfully"


def test_the_certs_service_makes_every_file_the_others_read() -> None:
    certs = OURS["certs"]
    assert "certs" in ONE_SHOT
    script = next(target for target, source in _binds(certs).items() if source == "./deploy/tls/make-certs.sh")
    assert certs["entrypoint"] == ["sh", script]
    assert f"{CERTS_DIR}:{certs['environment']['TLS_DIR']}" in certs["volumes"], "writes where the others read"
    assert certs.get("user") == "0:0", "gives each key to the user that reads it"
    text = MAKE_CERTS.read_text()
    assert "ca.pem" in text
    for service, uid in (("mosquitto", "mosquitto_uid"), ("api", "smartcity_uid")):
        assert f'issue {service} "${uid}"' in text, f"make-certs.sh does not issue {service}.crt"
    assert re.search(r"--uid 10001 smartcity", (ROOT / "Dockerfile").read_text()), "smartcity_uid is the image's"
    assert "openssl" in (ROOT / "Dockerfile").read_text(), "the image has openssl for make-certs.sh"
    for name, service in SERVICES.items():
        if name != "certs" and CERTS_DIR in _binds(service).values():
            assert f"{CERTS_DIR}:{_tls_mount(service)}:ro" in service["volumes"], f"{name}: read only"
            assert service["depends_on"]["certs"]["condition"] == "service_completed_successfully", name


def test_images_are_pinned() -> None:
    for name, service in SERVICES.items():
        image = service.get("image", "")
        assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", image), f"{name}: unpinned image {image!r}"


def test_influxdb_2_memory_is_bounded_as_on_one_machine() -> None:
    """Every setting of INFLUXD_MEMORY that InfluxDB 2 has (storage-<key>, as INFLUXD_STORAGE_<KEY>), same value;
    the index is always tsi1 there."""
    environment = SERVICES["influxdb"]["environment"]
    mirrored = {key: value for key, value in INFLUXD_MEMORY.items() if key != "index-version"}
    assert INFLUXD_MEMORY["index-version"] == "tsi1"
    assert {key: environment.get("INFLUXD_STORAGE_" + key.upper().replace("-", "_")) for key in mirrored} == {
        key: str(value) for key, value in mirrored.items()
    }


def test_influxdb_2_heap_has_the_one_machine_soft_limit() -> None:
    """The Go heap's soft limit of influxd on one machine is InfluxDB 2's too (GOMEMLIMIT; 2.7 is built with a Go
    that honours it)."""
    default = StackSettings.model_fields["influxd_memory_limit_mib"].default
    assert default > 0
    assert SERVICES["influxdb"]["environment"]["GOMEMLIMIT"] == f"{default}MiB"


def test_every_long_running_service_has_a_health_check_and_restarts() -> None:
    for name, service in LONG_RUNNING.items():
        assert service.get("healthcheck", {}).get("test"), f"{name}: no health check"
        assert service.get("restart") == "unless-stopped", name


def test_one_shot_jobs_run_to_completion_before_their_dependents() -> None:
    assert {"certs", "mosquitto-init", "mqtt-accounts"} <= ONE_SHOT
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
            assert port == _metrics_port(host), target
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
