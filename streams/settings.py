"""The stream workers' settings (``SMARTCITY_*`` environment variables)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from core.settings import KafkaConnection
from rules.pack import DEFAULT_PACK


class StreamsSettings(KafkaConnection):
    """One stream worker. Several with the same ``streams_app_id`` split the readings partitions."""

    streams_app_id: str = Field(
        "smartcity-streams", pattern=r"^[A-Za-z0-9_.-]+$", description="Faust app id: consumer group, table topics"
    )
    streams_rule_pack: Path = Field(DEFAULT_PACK, description="the YAML rule pack (rules/packs/default.yaml)")
    streams_tick_s: float = Field(5.0, gt=0, le=300, description="how often offline checks run")
    streams_checkpoint_s: float = Field(
        30.0,
        gt=0,
        description="rule state that changed without changing an alarm (windows, last seen) reaches the changelog "
        "at most this late; a state whose alarm changed is written at once (docs/rules.md)",
    )
    streams_state_buckets: int = Field(
        256, ge=1, le=65536, description="rule-state table buckets per partition (one changelog record per bucket)"
    )
    streams_session_timeout_s: float = Field(
        10.0, gt=0, description="consumer group session timeout; Tansu's first join waits about half of it"
    )
    streams_registry_wait_s: float = Field(
        10.0, gt=0, description="how long a reading of a device not in the registry waits for the registry topic"
    )
    streams_fetch_wait_ms: int = Field(50, ge=0, le=5000, description="broker fetch wait: latency on quiet topics")
    streams_commit_interval_s: float = Field(1.0, gt=0)
    streams_health_flush_s: float = Field(
        1.0, gt=0, le=60, description="how often due device-health entries go to the health topic (devices.health)"
    )
    streams_http_host: str = "127.0.0.1"
    streams_http_port: int = Field(9311, ge=0, le=65535, description="/healthz and /metrics; 0 turns it off")
    streams_data_dir: Path = Field(Path("data/streams"), description="Faust's data directory (memory tables)")
