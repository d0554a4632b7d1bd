"""Settings of the alerts service (it runs inside the API process: ``smartcity api``). Read from ``SMARTCITY_*``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from core.http.limits import DEFAULT_MAX_BODY_BYTES
from core.influx.client import InfluxConnection
from core.settings import KafkaConnection, MqttConnection


class AlertsSettings(MqttConnection, KafkaConnection, InfluxConnection):
    alerts_enabled: bool = Field(True, description="run the alerts service inside the API process")
    alerts_routing_file: Path | None = Field(None, description="routing table YAML (default: alerts/routing.yaml)")
    alerts_contacts_file: Path | None = Field(None, description="department webhooks and e-mail (YAML)")
    officers_file: Path | None = Field(None, description="officers' tokens (SHA-256) and departments (YAML)")
    alerts_group: str = Field("smartcity-alerts", description="Kafka consumer group reading the findings")
    alerts_tick_s: float = Field(1.0, gt=0, le=60, description="how often reminders and silences are checked")
    alerts_stream_ping_s: float = Field(
        15.0,
        ge=0.5,
        le=300,
        description="the live stream's heartbeat: a `ping` event this often (the console "
        "takes three missed as a dead connection and reconnects)",
    )
    alerts_closed_retention_s: int = Field(7 * 24 * 3600, ge=60, description="closed alerts stay listed this long")
    alerts_closed_max: int = Field(
        10_000,
        ge=100,
        description="at most this many closed alerts stay listed, the oldest forgotten first: the alerts service's "
        "memory stays bounded in an alert storm (about 8 KiB each; every message stays in Kafka and InfluxDB)",
    )
    alerts_silence_max_s: int = Field(
        7 * 24 * 3600,
        ge=60,
        le=366 * 24 * 3600,
        description="longest silence (ends_at - starts_at): a week covers a planned maintenance; longer is a device "
        "to fix or retire, not to mute",
    )
    alerts_silences_per_department: int = Field(
        50, ge=1, le=10_000, description="silences not yet ended (in force or ahead) per department"
    )
    alerts_window_retention_s: int = Field(
        24 * 3600, ge=60, description="ended silences and drill windows are dropped (from Kafka too) this long after"
    )
    alerts_sender: str = Field("smartcity@longgang.example", description="CAP <sender>")
    alerts_public_url: str = Field("http://127.0.0.1:8080", description="where officers reach the console")
    alerts_history: bool = Field(True, description="write every alert message to InfluxDB (alert_events)")
    alerts_fetch_wait_ms: int = Field(20, ge=1, le=1000, description="low: Tansu answers a fetch only when it expires")
    alerts_session_timeout_ms: int = Field(10_000, ge=6000, description="consumer group session timeout")
    alerts_max_attempts: int = Field(8, ge=1, le=100, description="delivery attempts per channel before recording")
    http_max_body_bytes: int = Field(
        DEFAULT_MAX_BODY_BYTES,
        ge=1024,
        le=256 * 1024 * 1024,
        description="the API refuses larger request bodies with 413 (the device import takes 16 MiB)",
    )
