"""The small HTTP endpoint every background service exposes: ``/healthz`` and ``/metrics``.

The officers' API (alerts) has its own application; this one is for processes that otherwise speak no HTTP (the
gateway, stream workers, the InfluxDB writer), so that Prometheus and ``smartcity up`` can watch them.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


async def serve_health(
    host: str, port: int, prometheus: CollectorRegistry, health: Callable[[], dict[str, bool]]
) -> web.AppRunner:
    """Start serving; ``/healthz`` answers 200 when every check in ``health()`` is true, else 503."""

    async def healthz(_request: web.Request) -> web.Response:
        checks = health()
        ok = all(checks.values())
        return web.Response(
            status=200 if ok else 503,
            text=json.dumps({"status": "ok" if ok else "unhealthy", "checks": checks}),
            content_type="application/json",
        )

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(prometheus), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
