"""Running one gateway process: settings in, signals handled, health served."""

from __future__ import annotations

import asyncio
import logging
import signal

from prometheus_client import CollectorRegistry

from core.gc_tuning import GcTimer, freeze_long_lived
from core.http.health import serve_health
from core.kafka.requests import count_kafka_requests
from devices.directory import DeviceDirectory, KafkaDirectory, OpenDirectory
from ingest.gateway import Gateway
from ingest.metrics import GatewayMetrics
from ingest.settings import GatewaySettings

logger = logging.getLogger(__name__)


async def run_gateway(settings: GatewaySettings) -> None:
    """Run until SIGINT/SIGTERM, then drain: everything taken from MQTT is in Kafka before we disconnect.

    With the registry on (the default), MQTT is not read before the directory has caught up with the devices
    topic: otherwise registered devices would be refused as unknown in the first seconds after a start.
    """
    directory: DeviceDirectory
    follower: KafkaDirectory | None = None
    if settings.gateway_registry == "open":
        logger.warning("registry off (SMARTCITY_GATEWAY_REGISTRY=open): accepting every well-formed device id")
        directory = OpenDirectory()
    else:
        follower = KafkaDirectory(settings)
        await follower.start()
        await follower.ready.wait()
        directory = follower
    prometheus = CollectorRegistry()
    GcTimer(prometheus)
    count_kafka_requests(prometheus)
    gateway = Gateway(settings, directory, GatewayMetrics.create(prometheus))
    logger.info("gateway: %d objects frozen out of the collector's walks", freeze_long_lived())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runner = None
    if settings.gateway_http_port:
        runner = await serve_health(
            settings.gateway_http_host,
            settings.gateway_http_port,
            prometheus,
            gateway.health,
        )
    try:
        await gateway.run(stop)
    finally:
        if runner is not None:
            await runner.cleanup()
        if follower is not None:
            await follower.stop()
