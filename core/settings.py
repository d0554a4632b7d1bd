"""Settings shared by every service: how to reach the brokers, and the topic names.

One pydantic-settings model per service (``ingest.settings.GatewaySettings``,
``smartcity.stack.supervisor.StackSettings``, ...) is built once at its entry point and passed down; nothing reads
the environment at import time. Every field is read from ``SMARTCITY_<FIELD NAME>``; compose.yaml uses the same
names.

TLS (docs/tls.md): certificate and key files are checked when the settings are built, by loading them as the
connection will, so a missing file, a key that does not match its certificate or a wrong passphrase stops the service
at its start with the name of the setting, not at its first connection.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Annotated, Self, TypedDict
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigError


class _Base(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SMARTCITY_", frozen=True, extra="ignore")


def _env(field: str) -> str:
    return f"SMARTCITY_{field.upper()}"


API_TOKEN_MIN_LENGTH = 12


def _long_enough(token: SecretStr) -> SecretStr:
    if len(token.get_secret_value()) < API_TOKEN_MIN_LENGTH:
        raise ValueError(
            f"SMARTCITY_API_TOKEN must be at least {API_TOKEN_MIN_LENGTH} characters (it is the all-departments "
            "administrator's bearer token); make one with `openssl rand -base64 18`"
        )
    return token


#: The administrator's API token: at least 12 characters, as compose.yaml asks (its value never shown in errors).
ApiToken = Annotated[SecretStr, AfterValidator(_long_enough)]


def _existing_file(value: Path | None, info: ValidationInfo) -> Path | None:
    if value is not None and not value.is_file():
        what = "does not exist" if not value.exists() else "is not a file"
        raise ValueError(f"{_env(info.field_name or '?')}={value}: {what}")
    return value


def _load_key_pair(
    context: ssl.SSLContext, cert: Path, key: Path | None, password: SecretStr | None, prefix: str
) -> None:
    """Load our certificate and key into ``context``; ``ConfigError`` naming the settings when they cannot be used.

    Without a passphrase we hand OpenSSL an empty one rather than none: with none it would prompt on the terminal for
    an encrypted key, hanging a service instead of failing it.
    """
    secret = password.get_secret_value() if password is not None else ""
    try:
        context.load_cert_chain(cert, key, password=lambda: secret)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            f"{_env(prefix + '_cert_file')}={cert}, {_env(prefix + '_key_file')}={key or '(in the certificate file)'}: "
            f"cannot load the certificate and its key ({exc}); both must be PEM, the key must belong to the "
            f"certificate, and an encrypted key needs {_env(prefix + '_key_password')}"
        ) from exc


class MqttConnection(_Base):
    """Where the MQTT broker is, the account a service uses on it, and how a TLS (``mqtts://``) connection is made.

    Over TLS the broker's certificate is always verified and its name checked against the host of ``mqtt_url``: there
    is deliberately no switch to turn that off. A private or self-signed CA is trusted through ``mqtt_tls_ca_file``
    (then only that file's CAs are trusted); a name mismatch is fixed in the certificate (its subjectAltName), not
    by skipping the check.
    """

    mqtt_url: str = Field("mqtt://127.0.0.1:1883", description="mqtt://host:port (mqtts:// for TLS)")
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    mqtt_tls_ca_file: Path | None = Field(
        None, description="PEM file of the CA(s) to trust for the broker's certificate (default: the system's store)"
    )
    mqtt_tls_cert_file: Path | None = Field(
        None, description="our client certificate (PEM), for a broker that requires one (mutual TLS)"
    )
    mqtt_tls_key_file: Path | None = Field(
        None, description="the client certificate's private key (PEM); unset: it is in mqtt_tls_cert_file"
    )
    mqtt_tls_key_password: SecretStr | None = Field(None, description="passphrase of an encrypted mqtt_tls_key_file")

    _mqtt_tls_files = field_validator("mqtt_tls_ca_file", "mqtt_tls_cert_file", "mqtt_tls_key_file")(_existing_file)

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"expected mqtt://host:port or mqtts://host:port, got {value!r}")
        return value

    @property
    def mqtt_host(self) -> str:
        return urlsplit(self.mqtt_url).hostname or "127.0.0.1"

    @property
    def mqtt_port(self) -> int:
        parts = urlsplit(self.mqtt_url)
        return parts.port or (8883 if parts.scheme == "mqtts" else 1883)

    @property
    def mqtt_tls(self) -> bool:
        return urlsplit(self.mqtt_url).scheme == "mqtts"

    @model_validator(mode="after")
    def _mqtt_tls_settings(self) -> Self:
        given = [name for name in _MQTT_TLS_FIELDS if getattr(self, name) is not None]
        if given and not self.mqtt_tls:
            raise ValueError(
                f"{', '.join(_env(name) for name in given)} set, but SMARTCITY_MQTT_URL={self.mqtt_url} is not TLS: "
                "use mqtts://host:port (8883 by default), or unset them"
            )
        if self.mqtt_tls_cert_file is None and (self.mqtt_tls_key_file or self.mqtt_tls_key_password):
            raise ValueError(
                "SMARTCITY_MQTT_TLS_KEY_FILE or SMARTCITY_MQTT_TLS_KEY_PASSWORD set without "
                "SMARTCITY_MQTT_TLS_CERT_FILE"
            )
        if given:
            try:
                self.mqtt_tls_context()
            except ConfigError as exc:
                raise ValueError(str(exc)) from exc
        return self

    def mqtt_tls_context(self) -> ssl.SSLContext:
        """The client side of an ``mqtts://`` connection: the broker verified against ``mqtt_tls_ca_file`` (or the
        system's trust store) with its host name checked, and our own certificate if one is set (mutual TLS)."""
        try:
            context = ssl.create_default_context(cafile=self.mqtt_tls_ca_file)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                f"SMARTCITY_MQTT_TLS_CA_FILE={self.mqtt_tls_ca_file}: not a PEM file of CA certificates ({exc})"
            ) from exc
        if self.mqtt_tls_cert_file is not None:
            _load_key_pair(
                context, self.mqtt_tls_cert_file, self.mqtt_tls_key_file, self.mqtt_tls_key_password, "mqtt_tls"
            )
        return context


_MQTT_TLS_FIELDS = ("mqtt_tls_ca_file", "mqtt_tls_cert_file", "mqtt_tls_key_file", "mqtt_tls_key_password")


class UvicornTls(TypedDict):
    """The keyword arguments of ``uvicorn.Config`` that make it serve HTTPS (all ``None``: plain HTTP)."""

    ssl_certfile: str | None
    ssl_keyfile: str | None
    ssl_keyfile_password: str | None


class HttpTls(_Base):
    """HTTPS for a service's own HTTP server (the API and console): its certificate and key.

    Unset, the server speaks plain HTTP, which is right behind a TLS-terminating reverse proxy (docs/tls.md).
    """

    http_tls_cert_file: Path | None = Field(
        None, description="the server's certificate (PEM, with any intermediate CAs after it); set: serve HTTPS"
    )
    http_tls_key_file: Path | None = Field(
        None, description="the certificate's private key (PEM); unset: it is in http_tls_cert_file"
    )
    http_tls_key_password: SecretStr | None = Field(None, description="passphrase of an encrypted http_tls_key_file")

    _http_tls_files = field_validator("http_tls_cert_file", "http_tls_key_file")(_existing_file)

    @model_validator(mode="after")
    def _http_tls_settings(self) -> Self:
        if self.http_tls_cert_file is None:
            if self.http_tls_key_file or self.http_tls_key_password:
                raise ValueError(
                    "SMARTCITY_HTTP_TLS_KEY_FILE or SMARTCITY_HTTP_TLS_KEY_PASSWORD set without "
                    "SMARTCITY_HTTP_TLS_CERT_FILE"
                )
            return self
        try:
            _load_key_pair(
                ssl.create_default_context(ssl.Purpose.CLIENT_AUTH),
                self.http_tls_cert_file,
                self.http_tls_key_file,
                self.http_tls_key_password,
                "http_tls",
            )
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc
        return self

    def uvicorn_tls(self) -> UvicornTls:
        cert, key, password = self.http_tls_cert_file, self.http_tls_key_file, self.http_tls_key_password
        return UvicornTls(
            ssl_certfile=str(cert) if cert is not None else None,
            ssl_keyfile=str(key) if key is not None else None,
            ssl_keyfile_password=password.get_secret_value() if password is not None else None,
        )


class KafkaConnection(_Base):
    """Where Kafka is, and the topics of the flow."""

    kafka_bootstrap: str = Field("127.0.0.1:9092", description="comma-separated host:port list")
    topic_readings: str = "readings"
    topic_rejected: str = "readings.rejected"
    topic_devices: str = Field("devices", description="compacted; key = device id, value = device record")
    topic_health: str = Field(
        "devices.health", description="device last seen and values, from the stream workers to the API (HealthBatch)"
    )
    topic_findings: str = Field("findings", description="rule findings (key = alert key), read by the alerts service")
    topic_alerts: str = Field("alerts", description="alert messages (the contract), key = alert key")
    topic_alert_state: str = Field("alerts.state", description="compacted; the alerts service's state, by alert id")
    topic_alert_control: str = Field("alerts.control", description="compacted; silences and drill windows")
    topic_undelivered: str = Field("alerts.undelivered", description="deliveries every retry failed, with reason")
    # Four on one machine: Tansu auto-creates a topic with 4 partitions whenever a client asks for its metadata, so
    # after a broker restart a topic recreated by any client has the same layout. Production sets more (compose).
    readings_partitions: int = Field(4, ge=1, le=1024)
    rejected_partitions: int = Field(4, ge=1, le=1024)
    findings_partitions: int = Field(4, ge=1, le=1024)
    kafka_replication: int = Field(1, ge=1, le=16)
    kafka_compression: str = Field("lz4", pattern="^(none|gzip|lz4|zstd|snappy)$")
