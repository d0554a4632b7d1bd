"""Settings of the InfluxDB writer (``smartcity writer``), read from ``SMARTCITY_*``."""

from __future__ import annotations

from pydantic import Field

from core.influx.client import InfluxConnection
from core.settings import KafkaConnection


class WriterSettings(KafkaConnection, InfluxConnection):
    writer_group: str = Field("smartcity-influx-writer", description="its own consumer group: never slows alerting")
    writer_batch_points: int = Field(5000, ge=1, le=100_000, description="write when this many points are held")
    writer_batch_ms: int = Field(1000, ge=10, le=60_000, description="... or when this long has passed")
    writer_registry_wait_s: float = Field(
        10.0, gt=0, description="how long a reading of a device not in the registry waits for the registry topic"
    )
    writer_fetch_wait_ms: int = Field(
        500,
        ge=1,
        le=1000,
        description="Kafka fetch wait: the one-machine broker holds every fetch about this long (half of it from "
        "250 ms up) and lists each partition with new data once per fetch, so history fetches seldom and in bulk",
    )
    writer_session_timeout_ms: int = Field(10_000, ge=6000, description="consumer group session timeout")
    writer_retention: bool = Field(True, description="InfluxDB 1.x: create the retention policies and queries")
    writer_raw_days: int = Field(90, ge=1, description="raw readings kept this long (1.x retention policy)")
    writer_agg_days: int = Field(1095, ge=1, description="hourly aggregates (agg_1h) kept this long")
    writer_backfill: bool = Field(
        True,
        description="InfluxDB 1.x, with writer_retention: write the hourly aggregates (agg_1h) as readings are "
        "written, and aggregate again from raw what they missed",
    )
    writer_backfill_max_intervals: int = Field(
        24, ge=1, le=720, description="hours (aggregate intervals) per backfill statement at most"
    )
    writer_backfill_max_devices: int = Field(
        50, ge=1, le=1000, description="late devices a backfill filters on; more: every device in its range"
    )
    writer_http_host: str = "127.0.0.1"
    writer_http_port: int = Field(9321, ge=0, le=65535, description="/healthz and /metrics (0: none)")
