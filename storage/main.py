"""Running one InfluxDB writer process (``smartcity writer``): settings in, signals handled, health served."""

from __future__ import annotations

import asyncio
import logging
import signal

from prometheus_client import CollectorRegistry

from core.errors import SmartCityError
from core.gc_tuning import GcTimer, freeze_long_lived
from core.http.health import serve_health
from core.influx.client import LineWriter
from core.kafka.requests import count_kafka_requests
from devices.directory import KafkaDirectory
from storage.aggregate import EVERY_MS
from storage.backfill import LateIntervals
from storage.backfiller import Backfiller
from storage.lines import LineBuilder
from storage.metrics import WriterMetrics
from storage.settings import WriterSettings
from storage.writer import InfluxWriter

logger = logging.getLogger(__name__)


async def run_writer(
    settings: WriterSettings, stop: asyncio.Event | None = None, *, agg_every_ms: int = EVERY_MS
) -> None:
    """Run until SIGINT/SIGTERM (or ``stop``). Reads the device registry first: a reading's measurement is its
    device's kind. On InfluxDB 1.x it sets up retention at start (``storage.retention``), and writes the hourly
    aggregates as it writes the readings (``storage.aggregate``, ``storage.backfiller``). ``agg_every_ms``: their
    interval; tests shorten it (``agg_1h`` and the readings query expect an hour).
    """
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    lines: LineBuilder
    directory = KafkaDirectory(settings, keep_records=True, on_change=lambda device_id, _d: lines.forget(device_id))
    lines = LineBuilder(directory.get)
    await directory.start()
    await directory.ready.wait()
    influx = LineWriter(settings)
    await influx.start()
    if settings.influx_api == "v1" and settings.writer_retention:
        await _retention(settings)
    prometheus = CollectorRegistry()
    GcTimer(prometheus)
    count_kafka_requests(prometheus)
    metrics = WriterMetrics.create(prometheus)
    backfill = None
    if settings.influx_api == "v1" and settings.writer_retention and settings.writer_backfill:
        late = LateIntervals(
            every_ms=agg_every_ms,
            raw_days=settings.writer_raw_days,
            max_intervals=settings.writer_backfill_max_intervals,
            max_devices=settings.writer_backfill_max_devices,
        )
        backfill = Backfiller(settings, late, metrics)
        await backfill.start()
    writer = InfluxWriter(settings, lines, influx, metrics, directory, backfill)
    logger.info("writer: %d objects frozen out of the collector's walks", freeze_long_lived())
    runner = None
    if settings.writer_http_port:
        runner = await serve_health(
            settings.writer_http_host,
            settings.writer_http_port,
            prometheus,
            lambda: {"kafka": writer.ready.is_set(), "influxdb": writer.influx_up},
        )
    try:
        await writer.run(stop)
    finally:
        if runner is not None:
            await runner.cleanup()
        if backfill is not None:
            await backfill.close()
        await influx.close()
        await directory.stop()


async def _retention(settings: WriterSettings) -> None:
    """Retention policies; InfluxDB being down only delays them to the next start."""
    from storage.retention import ensure_retention

    try:
        await ensure_retention(settings, raw_days=settings.writer_raw_days, agg_days=settings.writer_agg_days)
    except SmartCityError as exc:
        logger.error("writer: retention policies not set up (%s); writing to the default policy", exc)
