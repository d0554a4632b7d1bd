"""Running one stream worker: topics checked, the Faust worker started, health and metrics served."""

from __future__ import annotations

import asyncio
import logging

import faust
from prometheus_client import CollectorRegistry

from core.gc_tuning import GcTimer, freeze_long_lived
from core.http.health import serve_health
from core.kafka.admin import all_topics, ensure_topics
from core.kafka.requests import count_kafka_requests
from streams.app import build, streams_topics
from streams.metrics import StreamMetrics
from streams.settings import StreamsSettings

logger = logging.getLogger(__name__)


def run_streams(settings: StreamsSettings, log_level: str = "INFO") -> None:
    """Run until SIGINT/SIGTERM (Faust's worker handles both and commits before it stops)."""
    asyncio.run(ensure_topics(settings.kafka_bootstrap, [*all_topics(settings), *streams_topics(settings)]))
    prometheus = CollectorRegistry()
    GcTimer(prometheus)
    count_kafka_requests(prometheus)
    streams = build(settings, StreamMetrics.create(prometheus))
    app = streams.app

    async def freeze() -> None:
        await streams.directory.ready.wait()
        logger.info("stream worker: %d objects frozen out of the collector's walks", freeze_long_lived())

    app.task(freeze)

    if settings.streams_http_port:

        async def serve() -> None:
            def health() -> dict[str, bool]:
                return {"registry": streams.directory.ready.is_set(), "consumer": bool(app.consumer.assignment())}

            await serve_health(settings.streams_http_host, settings.streams_http_port, prometheus, health)

        app.task(serve)

    worker = faust.Worker(app, loglevel=log_level, quiet=True, override_logging=False, redirect_stdouts=False)
    worker.execute_from_commandline()
