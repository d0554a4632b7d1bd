"""compose.yaml's Mosquitto, run for real: the certificates its certs service makes (deploy/tls/make-certs.sh), its
mosquitto.conf (MQTT over TLS only), its init script, then ``smartcity mqtt-accounts`` with the environment compose
gives it. Only what cannot be the same outside a container is changed: the listener's port and address, the data and
certificate paths, the plugin's path (Debian's, not the image's) and the user the broker runs as.
"""

from __future__ import annotations

import getpass
import glob
import json
import os
import re
import ssl
import stat
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import certifi
import pytest
import yaml
from cryptography import x509
from paho.mqtt.reasoncodes import ReasonCode

from core.contracts.catalogue import Department
from core.process import ManagedProcess, find_binary, free_port, tcp_accepts
from core.secrets import ADMIN_USERNAME, API_USERNAME, GATEWAY_USERNAME
from core.settings import MqttConnection
from devices.mqtt_accounts import MqttAccounts
from smartcity.accounts_cli import CONTROL_USERNAME
from smartcity.api import ApiSettings
from tests.mqtt_util import Client

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SERVICES: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
REQUIRED = re.compile(r"\$\{(\w+):\?[^}]*\}")
SECRETS = {
    "SMARTCITY_MQTT_CONTROL_PASSWORD": f"control-{uuid.uuid4().hex}",
    "SMARTCITY_MQTT_ADMIN_PASSWORD": f"admin-{uuid.uuid4().hex}",
    "SMARTCITY_GATEWAY_MQTT_PASSWORD": f"gateway-{uuid.uuid4().hex}",
    "SMARTCITY_API_MQTT_PASSWORD": f"api-{uuid.uuid4().hex}",
}
DEPARTMENTS = {d.value: f"{d.value}-{uuid.uuid4().hex}" for d in Department}
SECRETS["SMARTCITY_DEPARTMENT_PASSWORDS"] = json.dumps(DEPARTMENTS)


TLS_NAMES = "smartcity.example.org,203.0.113.10"


@dataclass(frozen=True)
class Broker:
    url: str
    dynsec: Path
    certs: Path

    @property
    def ca(self) -> str:
        return str(self.certs / "ca.pem")

    def client(self, username: str | None, password: str | None) -> Client:
        return Client(self.url, username, password, tls_ca=self.ca)


def _compose_env(service: str, **overrides: str) -> dict[str, str]:
    """A service's environment from compose.yaml, with ``${VAR:?...}`` filled in as a deployment's .env would."""
    env = {}
    for key, value in SERVICES[service]["environment"].items():
        found = REQUIRED.fullmatch(str(value))
        env[key] = SECRETS[found.group(1)] if found else str(value)
    return env | overrides


def _make_certs(directory: Path) -> subprocess.CompletedProcess[str]:
    """deploy/tls/make-certs.sh as compose's certs service runs it, into ``directory``."""
    env = {"PATH": os.environ["PATH"], "TLS_DIR": str(directory), "TLS_NAMES": TLS_NAMES}
    return subprocess.run(
        ["sh", str(ROOT / "deploy/tls/make-certs.sh")], env=env, capture_output=True, text=True, timeout=120
    )


def _rewritten_conf(port: int, data: Path, certs: Path) -> str:
    plugin = sorted(glob.glob("/usr/lib/*/mosquitto_dynamic_security.so") + glob.glob("/usr/lib/mosquitto_dyn*.so"))
    assert plugin, "Mosquitto's dynamic-security plugin is missing: sudo apt-get install mosquitto"
    local = {
        "listener": f"{port} 127.0.0.1",
        "persistence_location": f"{data}/",
        "plugin": plugin[0],
        "plugin_opt_config_file": str(data / "dynamic-security.json"),
    }
    mount = next(v.split(":")[1] for v in SERVICES["mosquitto"]["volumes"] if v.startswith("./deploy/tls/certs:"))
    lines, changed = [], set()
    for line in (ROOT / "deploy/mosquitto/mosquitto.conf").read_text().splitlines():
        key = line.split(" ", 1)[0]
        if key in local:
            changed.add(key)
        elif key in ("cafile", "certfile", "keyfile"):  # the certs volume, where the test made it
            line = line.replace(f"{mount}/", f"{certs}/")
        lines.append(f"{key} {local[key]}" if key in local else line)
    assert changed == set(local), f"mosquitto.conf no longer sets {set(local) - changed}"
    # The image starts as root and drops to its `mosquitto` user, which owns the data volume; here the tmp directory
    # belongs to whoever runs the tests.
    lines.append(f"user {getpass.getuser()}")
    return "\n".join(lines) + "\n"


def _init(dynsec: Path) -> subprocess.CompletedProcess[str]:
    env = _compose_env("mosquitto-init", DYNSEC_FILE=str(dynsec)) | {"PATH": os.environ["PATH"]}
    return subprocess.run(
        ["sh", str(ROOT / "deploy/mosquitto/init.sh")], env=env, capture_output=True, text=True, timeout=30
    )


def _mqtt_accounts(broker: Broker, **overrides: str) -> subprocess.CompletedProcess[str]:
    """``smartcity mqtt-accounts`` as compose runs it: only its compose environment (and PATH) reaches it."""
    where = {"SMARTCITY_MQTT_URL": broker.url, "SMARTCITY_MQTT_TLS_CA_FILE": broker.ca}
    env = _compose_env("mqtt-accounts", **where, **overrides) | {"PATH": os.environ["PATH"]}
    return subprocess.run(
        [sys.executable, "-m", "smartcity", "mqtt-accounts"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    directory = tmp_path_factory.mktemp("compose-mosquitto")
    data = directory / "data"
    data.mkdir()
    dynsec = data / "dynamic-security.json"
    done = _init(dynsec)
    assert done.returncode == 0, done.stdout + done.stderr
    certs = directory / "certs"
    done = _make_certs(certs)
    assert done.returncode == 0, done.stdout + done.stderr
    port = free_port()
    conf = directory / "mosquitto.conf"
    conf.write_text(_rewritten_conf(port, data, certs))
    binary = find_binary("mosquitto", ["mosquitto", "/usr/sbin/mosquitto"], "mosquitto")
    process = ManagedProcess("mosquitto", [binary, "-c", str(conf)], directory / "mosquitto.log")
    process.start()
    try:
        process.wait_healthy(lambda: tcp_accepts("127.0.0.1", port), 15)
        broker = Broker(f"mqtts://127.0.0.1:{port}", dynsec, certs)
        done = _mqtt_accounts(broker)
        assert done.returncode == 0, done.stdout + done.stderr
        yield broker
    finally:
        process.stop()


def _subscribe(client: Client, topic: str) -> ReasonCode:
    """The broker's answer to one subscription (granted QoS, or a refusal such as Not authorized)."""
    answered = threading.Event()
    codes: list[ReasonCode] = []

    def on_subscribe(_c: object, _u: object, _mid: int, reasons: list[ReasonCode], _p: object) -> None:
        codes.extend(reasons)
        answered.set()

    client.client.on_subscribe = on_subscribe
    client.client.subscribe(topic, qos=1)
    assert answered.wait(5), f"no SUBACK for {topic}"
    return codes[0]


def _refused(client: Client) -> bool:
    """The broker answered the CONNECT with a refusal (a client that got no answer at all is not "refused")."""
    return client.connect_rc is not None and client.connect_rc.is_failure


def _connected(username: str | None, password: str | None, broker: Broker) -> Client:
    client = broker.client(username, password)
    assert client.connect_rc is not None, f"{username}: no CONNACK"
    assert not _refused(client), f"{username}: {client.connect_rc}"
    return client


def _wait(client: Client, count: int, timeout: float = 5) -> list[tuple[str, bytes]]:
    done = threading.Event()
    deadline = threading.Timer(timeout, done.set)
    deadline.start()
    while not done.is_set() and len(client.received) < count:
        done.wait(0.05)
    deadline.cancel()
    return list(client.received)


def test_the_init_script_makes_the_administrator_once_and_keeps_the_file(broker: Broker) -> None:
    assert stat.S_IMODE(broker.dynsec.stat().st_mode) == 0o600
    before = broker.dynsec.read_text()
    done = _init(broker.dynsec)
    assert done.returncode == 0, done.stderr
    assert "exists" in done.stdout
    assert broker.dynsec.read_text() == before
    names = {client["username"] for client in json.loads(before)["clients"]}
    assert {CONTROL_USERNAME, ADMIN_USERNAME, GATEWAY_USERNAME, API_USERNAME} <= names
    assert {f"dept-{d}" for d in DEPARTMENTS} <= names


def test_anonymous_and_wrong_passwords_are_refused(broker: Broker) -> None:
    for username, password in ((None, None), (GATEWAY_USERNAME, "not-the-password")):
        client = broker.client(username, password)
        try:
            assert _refused(client), username
        finally:
            client.close()


def test_the_gateway_account_reads_telemetry_through_a_shared_subscription(broker: Broker) -> None:
    gateway = _connected(GATEWAY_USERNAME, SECRETS["SMARTCITY_GATEWAY_MQTT_PASSWORD"], broker)
    admin = _connected(ADMIN_USERNAME, SECRETS["SMARTCITY_MQTT_ADMIN_PASSWORD"], broker)
    try:
        assert not _subscribe(gateway, "$share/ingest/devices/+/telemetry").is_failure
        assert _subscribe(gateway, "alerts/#").is_failure, "the gateway must not read alerts"
        admin.publish("devices/gas-001/telemetry", b'{"values": {"ch4_lel": 3}}')
        assert _wait(gateway, 1) == [("devices/gas-001/telemetry", b'{"values": {"ch4_lel": 3}}')]
    finally:
        gateway.close()
        admin.close()


def test_a_department_reads_its_own_alerts_only(broker: Broker) -> None:
    fire = _connected("dept-fire", DEPARTMENTS["fire"], broker)
    api = _connected(API_USERNAME, SECRETS["SMARTCITY_API_MQTT_PASSWORD"], broker)
    try:
        assert not _subscribe(fire, "alerts/fire").is_failure
        assert _subscribe(fire, "alerts/water").is_failure
        assert _subscribe(fire, "alerts/#").is_failure
        api.publish("alerts/water", b"water")
        api.publish("alerts/fire", b"fire")
        assert _wait(fire, 1) == [("alerts/fire", b"fire")]
        assert _wait(fire, 2, timeout=0.5) == [("alerts/fire", b"fire")]
        # and its incidents (issue 21), its own only
        assert not _subscribe(fire, "incidents/fire").is_failure
        assert _subscribe(fire, "incidents/water").is_failure
        api.publish("incidents/water", b"water")
        api.publish("incidents/fire", b"fire incident")
        assert ("incidents/fire", b"fire incident") in _wait(fire, 2)
        assert ("incidents/water", b"water") not in _wait(fire, 3, timeout=0.5)
    finally:
        fire.close()
        api.close()


async def test_the_api_account_issues_device_accounts(broker: Broker) -> None:
    """compose's API runs with SMARTCITY_MQTT_ACCOUNTS=dynsec as smartcity-api: that account drives the plugin."""
    conn = MqttConnection(
        mqtt_url=broker.url,
        mqtt_username=API_USERNAME,
        mqtt_password=SECRETS["SMARTCITY_API_MQTT_PASSWORD"],
        mqtt_tls_ca_file=broker.ca,
    )
    accounts = MqttAccounts(conn, timeout_s=10)
    await accounts.start()
    device = f"gas-{uuid.uuid4().hex[:8]}"
    try:
        credentials = await accounts.create_device(device)
        _connected(credentials.username, credentials.password, broker).close()
    finally:
        await accounts.delete_device(device)
        await accounts.close()


def _roles(dynsec: Path) -> dict[str, list[tuple[str, str]]]:
    roles = json.loads(dynsec.read_text())["roles"]
    return {r["rolename"]: sorted((a["acltype"], a["topic"]) for a in r.get("acls", [])) for r in roles}


def test_running_it_again_succeeds_and_changes_nothing(broker: Broker) -> None:
    before = _roles(broker.dynsec)
    done = _mqtt_accounts(broker)
    assert done.returncode == 0, done.stdout + done.stderr
    assert _roles(broker.dynsec) == before
    _connected(GATEWAY_USERNAME, SECRETS["SMARTCITY_GATEWAY_MQTT_PASSWORD"], broker).close()


def test_a_new_password_in_the_environment_replaces_the_old_one(broker: Broker) -> None:
    old, new = SECRETS["SMARTCITY_GATEWAY_MQTT_PASSWORD"], f"rotated-{uuid.uuid4().hex}"
    try:
        done = _mqtt_accounts(broker, SMARTCITY_GATEWAY_MQTT_PASSWORD=new)
        assert done.returncode == 0, done.stdout + done.stderr
        _connected(GATEWAY_USERNAME, new, broker).close()
        refused = broker.client(GATEWAY_USERNAME, old)
        assert _refused(refused)
        refused.close()
    finally:
        assert _mqtt_accounts(broker).returncode == 0


def test_a_wrong_administrator_password_fails_and_says_which_setting(broker: Broker) -> None:
    done = _mqtt_accounts(
        broker, SMARTCITY_MQTT_CONTROL_PASSWORD="not-the-control-password", SMARTCITY_MQTT_ACCOUNTS_TIMEOUT_S="3"
    )
    assert done.returncode == 2
    assert "SMARTCITY_MQTT_CONTROL_PASSWORD" in done.stderr
    assert "not-the-control-password" not in done.stderr + done.stdout


def test_mqtt_is_tls_only_and_clients_must_trust_the_ca(broker: Broker) -> None:
    """No plain MQTT on the port; a client that does not trust the certs service's CA gets no connection."""
    password = SECRETS["SMARTCITY_MQTT_ADMIN_PASSWORD"]
    plain = Client(broker.url.replace("mqtts://", "mqtt://"), ADMIN_USERNAME, password)
    try:
        assert plain.connect_rc is None, "a plain-MQTT client got a CONNACK from the TLS listener"
    finally:
        plain.close()
    with pytest.raises(ssl.SSLCertVerificationError):
        Client(broker.url, ADMIN_USERNAME, password, tls_ca=certifi.where())
    _connected(ADMIN_USERNAME, password, broker).close()


def test_the_certificates_name_every_host_clients_use_and_are_kept(broker: Broker) -> None:
    for service in ("mosquitto", "api"):
        cert = x509.load_pem_x509_certificate((broker.certs / f"{service}.crt").read_bytes())
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = set(names.get_values_for_type(x509.DNSName))
        ips = {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
        assert dns == {service, "localhost", "smartcity.example.org"}, service
        assert ips == {"127.0.0.1", "203.0.113.10"}, service
        assert stat.S_IMODE((broker.certs / f"{service}.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((broker.certs / "private" / "ca.key").stat().st_mode) == 0o600
    # The API's pair as compose's api service gives it: the settings load it as uvicorn will.
    api = SERVICES["api"]["environment"]
    mount = next(v.split(":")[1] for v in SERVICES["api"]["volumes"] if v.startswith("./deploy/tls/certs:"))
    files = {k: Path(str(api[k]).replace(mount, str(broker.certs))) for k in api if k.startswith("SMARTCITY_HTTP_TLS_")}
    settings = ApiSettings(
        http_tls_cert_file=files["SMARTCITY_HTTP_TLS_CERT_FILE"], http_tls_key_file=files["SMARTCITY_HTTP_TLS_KEY_FILE"]
    )
    assert settings.uvicorn_tls()["ssl_certfile"] == str(broker.certs / "api.crt")
    before = {f.name: f.read_bytes() for f in broker.certs.iterdir() if f.is_file()}
    done = _make_certs(broker.certs)
    assert done.returncode == 0, done.stderr
    assert "exists, kept" in done.stdout
    assert {f.name: f.read_bytes() for f in broker.certs.iterdir() if f.is_file()} == before
