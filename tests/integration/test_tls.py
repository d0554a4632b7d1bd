"""TLS with a self-signed CA made by ``trustme``, against a real Mosquitto and the real API process (docs/tls.md).

One Mosquitto serves three TLS listeners: server authentication only, mutual TLS (``require_certificate``), and one
whose certificate names another host. Every MQTT client here is ``core.mqtt.AsyncMqttClient``, built from
``MqttConnection`` as the services build theirs.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import os
import ssl
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from pydantic import ValidationError

from core.mqtt import AsyncMqttClient
from core.process import ManagedProcess, find_binary, free_port, tcp_accepts
from core.settings import HttpTls, MqttConnection
from harness.builders import telemetry
from ingest.settings import GatewaySettings
from smartcity.api import ApiSettings
from tests.api_util import api_process_env
from tests.integration.conftest import GatewayFactory
from tests.kafka_util import consume, readings_of
from tests.waiting import eventually

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Pki:
    """The files of a test CA: a broker/server certificate for 127.0.0.1, a client's, and one of a stranger CA."""

    ca: Path
    server_cert: Path
    server_key: Path
    elsewhere_cert: Path  # signed by our CA, but for broker.example, not 127.0.0.1
    elsewhere_key: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path  # a client certificate signed by another CA
    stranger_key: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca, stranger_ca = trustme.CA(), trustme.CA()
    files: dict[str, Path] = {"ca": directory / "ca.pem"}
    ca.cert_pem.write_to_path(str(files["ca"]))
    issued = {
        "server": ca.issue_cert(HOST, "localhost"),
        "elsewhere": ca.issue_cert("broker.example"),
        "client": ca.issue_cert("gateway-1"),
        "stranger": stranger_ca.issue_cert("gateway-1"),
    }
    for name, cert in issued.items():
        files[f"{name}_cert"], files[f"{name}_key"] = directory / f"{name}.crt", directory / f"{name}.key"
        cert.cert_chain_pems[0].write_to_path(str(files[f"{name}_cert"]))
        cert.private_key_pem.write_to_path(str(files[f"{name}_key"]))
    return Pki(**files)


@dataclass(frozen=True)
class TlsBroker:
    tls: str  # mqtts:// URL of the listener that authenticates the broker only
    mutual: str  # ... of the listener that also requires a client certificate signed by our CA
    misnamed: str  # ... of the listener whose certificate names broker.example


@pytest.fixture(scope="module")
def tls_broker(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    directory = tmp_path_factory.mktemp("mosquitto-tls")
    ports = {"tls": free_port(), "mutual": free_port(), "misnamed": free_port()}

    def listener(port: int, cert: Path, key: Path, *extra: str) -> list[str]:
        return [f"listener {port} {HOST}", f"cafile {pki.ca}", f"certfile {cert}", f"keyfile {key}", *extra]

    conf = directory / "mosquitto.conf"
    conf.write_text(
        "\n".join(
            [
                f"user {getpass.getuser()}",
                "allow_anonymous true",
                "log_dest stdout",
                *listener(ports["tls"], pki.server_cert, pki.server_key),
                *listener(ports["mutual"], pki.server_cert, pki.server_key, "require_certificate true"),
                *listener(ports["misnamed"], pki.elsewhere_cert, pki.elsewhere_key),
                "",
            ]
        )
    )
    binary = find_binary("mosquitto", ["mosquitto", "/usr/sbin/mosquitto"], "mosquitto")
    process = ManagedProcess("mosquitto-tls", [binary, "-c", str(conf)], directory / "mosquitto.log")
    process.start()
    try:
        process.wait_healthy(lambda: all(tcp_accepts(HOST, port) for port in ports.values()), 15)
        yield TlsBroker(**{name: f"mqtts://{HOST}:{port}" for name, port in ports.items()})
    finally:
        process.stop()


@asynccontextmanager
async def client(
    conn: MqttConnection, subscriptions: list[tuple[str, int]] | None = None
) -> AsyncIterator[tuple[AsyncMqttClient, list[mqtt.MQTTMessage]]]:
    received: list[mqtt.MQTTMessage] = []
    mqttc = AsyncMqttClient(
        conn, f"tls-{uuid.uuid4().hex[:8]}", clean_start=True, subscriptions=subscriptions, on_message=received.append
    )
    await mqttc.start()
    try:
        yield mqttc, received
    finally:
        await mqttc.close()


async def round_trip(conn: MqttConnection, topic: str) -> None:
    """A subscriber and a publisher built from ``conn``: a QoS 1 message gets from one to the other, over TLS."""
    async with client(conn, [(topic, 1)]) as (sub, received), client(conn) as (pub, _):
        await asyncio.wait_for(sub.subscribed.wait(), 10)
        await asyncio.wait_for(pub.connected.wait(), 10)
        for side in (sub, pub):
            sock = side.client.socket()
            assert isinstance(sock, ssl.SSLSocket)
            assert sock.version() in ("TLSv1.2", "TLSv1.3")
        await asyncio.wait_for(pub.publish_acked(topic, b"over tls"), 10)
        assert await eventually(lambda: len(received) == 1)
        assert received[0].payload == b"over tls"


async def refused(conn: MqttConnection, caplog: pytest.LogCaptureFixture, watch_s: float = 0.0) -> str:
    """Try to connect with ``conn``; return the errors logged once the first attempt failed (it never connects),
    after watching the retries for ``watch_s`` more seconds."""
    caplog.clear()
    async with client(conn) as (mqttc, _):
        assert await eventually(lambda: errors(caplog) != "", 10), "no error logged"
        await asyncio.sleep(watch_s)
        assert not mqttc.connected.is_set()
    return errors(caplog)


def errors(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.name == "core.mqtt" and r.levelno >= logging.ERROR)


# -- settings ----------------------------------------------------------------------------------------------------


def test_settings_name_the_setting_that_cannot_work(pki: Pki, tmp_path: Path) -> None:
    tls = "mqtts://broker.example:8883"
    cases: list[tuple[dict[str, object], str]] = [
        ({"mqtt_url": tls, "mqtt_tls_ca_file": tmp_path / "missing.pem"}, "SMARTCITY_MQTT_TLS_CA_FILE="),
        ({"mqtt_url": tls, "mqtt_tls_ca_file": tmp_path}, "is not a file"),
        ({"mqtt_url": "mqtt://broker.example", "mqtt_tls_ca_file": pki.ca}, "SMARTCITY_MQTT_URL=mqtt://"),
        ({"mqtt_url": tls, "mqtt_tls_key_file": pki.client_key}, "without SMARTCITY_MQTT_TLS_CERT_FILE"),
        ({"mqtt_url": tls, "mqtt_tls_ca_file": pki.client_key}, "not a PEM file of CA certificates"),
        (
            {"mqtt_url": tls, "mqtt_tls_cert_file": pki.client_cert, "mqtt_tls_key_file": pki.server_key},
            "the key must belong to the certificate",
        ),
    ]
    for values, expected in cases:
        with pytest.raises(ValidationError, match=expected):
            MqttConnection(**values)  # type: ignore[arg-type]
    # no TLS file: mqtts:// alone still means "trust the system's store", as before these settings existed
    assert MqttConnection(mqtt_url=tls).mqtt_tls_context().verify_mode == ssl.CERT_REQUIRED

    with pytest.raises(ValidationError, match="SMARTCITY_HTTP_TLS_CERT_FILE="):
        HttpTls(http_tls_cert_file=tmp_path / "missing.crt")
    with pytest.raises(ValidationError, match="without SMARTCITY_HTTP_TLS_CERT_FILE"):
        HttpTls(http_tls_key_file=pki.server_key)
    assert HttpTls().uvicorn_tls() == {"ssl_certfile": None, "ssl_keyfile": None, "ssl_keyfile_password": None}


def test_an_encrypted_key_needs_its_passphrase_and_never_prompts(pki: Pki, tmp_path: Path) -> None:
    key = serialization.load_pem_private_key(pki.client_key.read_bytes(), password=None)
    encrypted = tmp_path / "client-encrypted.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"s3cret"),
        )
    )
    values = {"mqtt_url": "mqtts://127.0.0.1", "mqtt_tls_cert_file": pki.client_cert, "mqtt_tls_key_file": encrypted}
    with pytest.raises(ValidationError, match="SMARTCITY_MQTT_TLS_KEY_PASSWORD"):
        MqttConnection(**values)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="SMARTCITY_MQTT_TLS_KEY_PASSWORD"):
        MqttConnection(**values, mqtt_tls_key_password="wrong")  # type: ignore[arg-type]
    MqttConnection(**values, mqtt_tls_key_password="s3cret")  # type: ignore[arg-type]

    http = {"http_tls_cert_file": pki.client_cert, "http_tls_key_file": encrypted}
    with pytest.raises(ValidationError, match="SMARTCITY_HTTP_TLS_KEY_PASSWORD"):
        HttpTls(**http)  # type: ignore[arg-type]
    served = HttpTls(**http, http_tls_key_password="s3cret").uvicorn_tls()  # type: ignore[arg-type]
    assert served["ssl_keyfile_password"] == "s3cret"


# -- MQTT --------------------------------------------------------------------------------------------------------


async def test_round_trip_trusting_the_private_ca(tls_broker: TlsBroker, pki: Pki, unique: str) -> None:
    await round_trip(MqttConnection(mqtt_url=tls_broker.tls, mqtt_tls_ca_file=pki.ca), f"tls/{unique}")


async def test_without_the_ca_the_broker_certificate_is_refused(
    tls_broker: TlsBroker, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    logged = await refused(MqttConnection(mqtt_url=tls_broker.tls), caplog)  # the system's trust store only
    assert "TLS certificate is not trusted (self-signed certificate in certificate chain)" in logged
    assert "set SMARTCITY_MQTT_TLS_CA_FILE" in logged


async def test_the_broker_name_is_checked(tls_broker: TlsBroker, pki: Pki, caplog: pytest.LogCaptureFixture) -> None:
    """Our CA signed it, but for broker.example: a certificate for another host is refused all the same."""
    logged = await refused(MqttConnection(mqtt_url=tls_broker.misnamed, mqtt_tls_ca_file=pki.ca), caplog)
    assert "IP address mismatch, certificate is not valid for '127.0.0.1'" in logged


async def test_mutual_tls_needs_a_client_certificate_signed_by_the_ca(
    tls_broker: TlsBroker, pki: Pki, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    logged = await refused(MqttConnection(mqtt_url=tls_broker.mutual, mqtt_tls_ca_file=pki.ca), caplog, 2.0)
    assert "closed the TLS connection before accepting it" in logged
    assert "SMARTCITY_MQTT_TLS_CERT_FILE=None" in logged
    # one line per attempt, and the attempts back off (1 s, 2 s, ...) rather than hammering the broker
    assert 1 <= len(logged.splitlines()) <= 3

    stranger = MqttConnection(
        mqtt_url=tls_broker.mutual,
        mqtt_tls_ca_file=pki.ca,
        mqtt_tls_cert_file=pki.stranger_cert,
        mqtt_tls_key_file=pki.stranger_key,
    )
    logged = await refused(stranger, caplog)
    assert f"SMARTCITY_MQTT_TLS_CERT_FILE={pki.stranger_cert}" in logged

    caplog.clear()
    mutual = stranger.model_copy(update={"mqtt_tls_cert_file": pki.client_cert, "mqtt_tls_key_file": pki.client_key})
    await round_trip(mutual, f"mtls/{unique}")
    assert errors(caplog) == ""


async def test_a_reading_goes_through_the_gateway_over_mutual_tls(
    tls_broker: TlsBroker, pki: Pki, kafka_bootstrap: str, run_gateway: GatewayFactory, unique: str
) -> None:
    """A device and the gateway both on the mutual-TLS listener; the reading lands in Kafka."""
    settings = GatewaySettings(
        mqtt_url=tls_broker.mutual,
        mqtt_tls_ca_file=pki.ca,
        mqtt_tls_cert_file=pki.client_cert,
        mqtt_tls_key_file=pki.client_key,
        kafka_bootstrap=kafka_bootstrap,
        topic_readings=f"readings.{unique}",
        topic_rejected=f"rejected.{unique}",
        gateway_client_id=f"gw-{unique}",
        gateway_share_group=f"g{unique}",
        gateway_registry="open",
        gateway_http_port=0,
    )
    device = f"gas-{unique}"
    reading = telemetry({"ch4_lel": 12.5}, ts=1763900000000, seq=1)
    async with run_gateway(settings), client(settings) as (firmware, _):
        await asyncio.wait_for(firmware.connected.wait(), 10)
        await asyncio.wait_for(firmware.publish_acked(f"devices/{device}/telemetry", reading), 10)
        records = await consume(kafka_bootstrap, settings.topic_readings, lambda r: len(readings_of(r)) >= 1)
    [(_, key, batch)] = readings_of(records)
    assert key == device.encode()
    assert [(r.device_id, r.seq, r.values) for r in batch.readings] == [(device, 1, {"ch4_lel": 12.5})]


# -- HTTP --------------------------------------------------------------------------------------------------------


async def test_the_api_serves_https_with_the_configured_certificate(
    tls_broker: TlsBroker, pki: Pki, kafka_bootstrap: str, tmp_path: Path, unique: str
) -> None:
    """``smartcity api`` as its own process, configured only through SMARTCITY_* variables: HTTPS with our
    certificate, and its own MQTT client on the TLS listener."""
    port = free_port()
    env = api_process_env(
        kafka_bootstrap,
        tls_broker.tls,
        tmp_path,
        unique,
        SMARTCITY_HTTP_PORT=str(port),
        SMARTCITY_HTTP_TLS_CERT_FILE=str(pki.server_cert),
        SMARTCITY_HTTP_TLS_KEY_FILE=str(pki.server_key),
        SMARTCITY_MQTT_TLS_CA_FILE=str(pki.ca),
        SMARTCITY_API_TOKEN="tls-admin-token",
    )
    api = ManagedProcess("api", [sys.executable, "-m", "smartcity", "api"], tmp_path / "api.log", env=env)
    url = f"https://{HOST}:{port}"
    trusted = ssl.create_default_context(cafile=pki.ca)
    api.start()
    try:
        async with httpx.AsyncClient(base_url=url, verify=trusted) as https:

            async def healthy() -> bool:
                try:
                    return (await https.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    assert api.alive(), api.log_tail()
                    return False

            for _ in range(300):
                if await healthy():
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"the API did not answer over HTTPS:\n{api.log_tail()}")
            me = await https.get("/api/me", headers={"Authorization": "Bearer tls-admin-token"})
            assert me.status_code == 200, me.text
            assert me.json()["admin"] is True

        async with httpx.AsyncClient(base_url=url) as default_trust:  # certifi's CAs: ours is not among them
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await default_trust.get("/healthz")
        async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}") as plain:  # nothing is served in clear
            with pytest.raises(httpx.RemoteProtocolError):
                await plain.get("/healthz")
        assert await eventually(lambda: f"connected to MQTT {tls_broker.tls}" in api.log_tail(200), 10)
    finally:
        api.stop()


def test_the_api_refuses_to_start_with_a_missing_certificate(tmp_path: Path) -> None:
    env = {**_base_env(), "SMARTCITY_HTTP_TLS_CERT_FILE": str(tmp_path / "missing.crt")}
    done = subprocess.run(
        [sys.executable, "-m", "smartcity", "api"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert f"SMARTCITY_HTTP_TLS_CERT_FILE={tmp_path / 'missing.crt'}: does not exist" in done.stderr


def _base_env() -> dict[str, str]:
    """This process's environment without any SMARTCITY_* setting that could leak into the child's."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SMARTCITY_")}


def test_the_api_settings_check_both_mqtt_and_http_tls(pki: Pki) -> None:
    """``ApiSettings`` composes ``MqttConnection`` and ``HttpTls``: the validators of both must run."""
    with pytest.raises(ValidationError, match="without SMARTCITY_HTTP_TLS_CERT_FILE"):
        ApiSettings(http_tls_key_file=pki.server_key)
    with pytest.raises(ValidationError, match="SMARTCITY_MQTT_URL=mqtt://"):
        ApiSettings(mqtt_tls_ca_file=pki.ca)
    settings = ApiSettings(http_tls_cert_file=pki.server_cert, http_tls_key_file=pki.server_key)
    assert settings.uvicorn_tls()["ssl_certfile"] == str(pki.server_cert)
