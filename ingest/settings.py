"""The gateway's settings (``SMARTCITY_*`` environment variables)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from core.settings import KafkaConnection, MqttConnection


class GatewaySettings(MqttConnection, KafkaConnection):
    """One gateway process. Several share the MQTT load through one shared-subscription group."""

    gateway_client_id: str = Field(
        "smartcity-gateway-1",
        description="MQTT client id; must stay the same across restarts so the persistent session is resumed",
    )
    gateway_mqtt_protocol: Literal["5", "3.1.1"] = Field(
        "5",
        description="MQTT 5 (receive-maximum flow control, session expiry) or 3.1.1, which Mosquitto and EMQX also "
        "serve shared subscriptions to and which costs paho about 20 µs less per message (docs/benchmarks.md)",
    )
    gateway_registry: Literal["kafka", "open"] = Field(
        "kafka",
        description="kafka: refuse ids not in the registry's devices topic; open: accept every well-formed id "
        "(benchmarks, or a deployment without a registry)",
    )
    gateway_share_group: str = Field(
        "ingest",
        pattern=r"^[A-Za-z0-9_-]*$",
        description="the gateways' shared subscription ($share/<group>/devices/+/telemetry); empty: a plain "
        "subscription, for a single gateway (Mosquitto 2.0 restores plain subscriptions after its own restart, "
        "not shared ones: docs/reliability.md)",
    )
    gateway_session_expiry_s: int = Field(7 * 24 * 3600, ge=0, description="how long the broker queues for us")
    gateway_receive_maximum: int = Field(
        2000, ge=1, le=65535, description="QoS 1 messages the broker may have in flight to us, unacknowledged"
    )
    gateway_max_unacked: int = Field(
        2000,
        ge=1,
        description="messages held awaiting Kafka before the gateway stops reading MQTT (back-pressure: the broker "
        "holds the rest); reading starts again at half",
    )
    gateway_device_rate: float = Field(
        20.0, gt=0, description="messages a second one device may send on average (over it: refused, rate_limited)"
    )
    gateway_device_burst: float = Field(200.0, ge=1, description="messages one device may send in a burst")
    gateway_registry_wait_s: float = Field(
        10.0,
        gt=0,
        description="how long a message of a device not in the directory waits for the registry topic before"
        " it is refused as unknown_device",
    )
    gateway_linger_ms: float = Field(5.0, ge=0, description="how long a flush waits for more readings")
    gateway_max_batch: int = Field(5000, ge=1, description="readings that trigger a flush at once")
    gateway_max_flush_bytes: int = Field(
        1024 * 1024,
        ge=1,
        description="MQTT payload bytes that trigger a flush at once; while every delivery slot is busy and this much "
        "has gathered, the gateway stops reading MQTT until a slot frees (bounds its memory under large messages)",
    )
    gateway_max_per_record: int = Field(1000, ge=1, description="readings per Kafka record at most")
    gateway_kafka_timeout_s: float = Field(
        5.0, gt=0, description="a flush not acknowledged by then is retried on a new producer (docs/ingest.md)"
    )
    gateway_max_flushes: int = Field(
        1,
        ge=1,
        description="flushes awaiting Kafka at once; while all are out, readings gather into the next one. aiokafka "
        "sends one produce request to a broker at a time, so a second flush out would only wait in its queue "
        "(docs/ingest.md)",
    )
    gateway_heartbeat_s: float = Field(
        5.0, ge=0, description="an empty record on every readings partition this often while MQTT is up; 0: off"
    )
    gateway_http_host: str = "127.0.0.1"
    gateway_http_port: int = Field(9301, ge=0, le=65535, description="/healthz and /metrics; 0 turns it off")
