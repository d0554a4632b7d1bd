"""Running one gateway process: settings in, signals handled, health served."""

from __future__ import annotations

import asyncio
import logging
import signal

from prometheus_client import CollectorRegistry

from devices.directory import DeviceDirectory, OpenDirectory
from ingest.gateway import Gateway
from ingest.metrics import GatewayMetrics
from ingest.settings import GatewaySettings
from smartcity.health_http import serve_health

logger = logging.getLogger(__name__)


async def run_gateway(settings: GatewaySettings, directory: DeviceDirectory | None = None) -> None:
    """Run until SIGINT/SIGTERM, then drain: everything taken from MQTT is in Kafka before we disconnect."""
    if directory is None:
        logger.warning("no device registry configured yet: accepting every well-formed device id")
        directory = OpenDirectory()
    registry = CollectorRegistry()
    gateway = Gateway(settings, directory, GatewayMetrics.create(registry))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runner = None
    if settings.gateway_http_port:
        runner = await serve_health(
            settings.gateway_http_host,
            settings.gateway_http_port,
            registry,
            gateway.health,
        )
    try:
        await gateway.run(stop)
    finally:
        if runner is not None:
            await runner.cleanup()
