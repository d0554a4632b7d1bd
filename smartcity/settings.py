"""Settings shared by every service: how to reach the brokers, and the topic names.

One pydantic-settings model per service (``ingest.settings.GatewaySettings``, ``smartcity.stack.StackSettings``,
...) is built once at its entry point and passed down; nothing reads the environment at import time. Every field
is read from ``SMARTCITY_<FIELD NAME>``; compose.yaml uses the same names.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class _Base(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SMARTCITY_", frozen=True, extra="ignore")


class MqttConnection(_Base):
    """Where the MQTT broker is, and the account a service uses on it."""

    mqtt_url: str = Field("mqtt://127.0.0.1:1883", description="mqtt://host:port (mqtts:// for TLS)")
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None

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


class KafkaConnection(_Base):
    """Where Kafka is, and the topics of the flow."""

    kafka_bootstrap: str = Field("127.0.0.1:9092", description="comma-separated host:port list")
    topic_readings: str = "readings"
    topic_rejected: str = "readings.rejected"
    topic_devices: str = Field("devices", description="compacted; key = device id, value = device record")
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
