"""``SMARTCITY_HTTP_METRICS_PORT``: the API's ``/metrics`` leaves the port officers and browsers use for a listener of
its own, which compose.yaml leaves unpublished for Prometheus on the internal network.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx
import pytest

from core.process import ManagedProcess, free_port
from tests.api_util import api_process_env

pytestmark = pytest.mark.integration


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _until_ok(url: str, api: ManagedProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not _ok(url):
        assert api.alive(), f"the API exited:\n{api.log_tail()}"
        assert time.monotonic() < deadline, f"{url} never answered:\n{api.log_tail()}"
        time.sleep(0.05)


def test_metrics_move_to_their_own_listener(mqtt_url: str, kafka_bootstrap: str, tmp_path: Path, unique: str) -> None:
    api_port, metrics_port = free_port(), free_port()
    env = api_process_env(
        kafka_bootstrap,
        mqtt_url,
        tmp_path,
        unique,
        SMARTCITY_HTTP_PORT=str(api_port),
        SMARTCITY_HTTP_METRICS_PORT=str(metrics_port),
        SMARTCITY_API_TOKEN="metrics-admin-token",
    )
    api = ManagedProcess("api", [sys.executable, "-m", "smartcity", "api"], tmp_path / "api.log", env=env)
    api_url, metrics_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{metrics_port}"
    api.start()
    try:
        _until_ok(f"{api_url}/healthz", api, 30)
        _until_ok(f"{metrics_url}/healthz", api, 5)
        scraped = httpx.get(f"{metrics_url}/metrics", timeout=5)
        assert scraped.status_code == 200
        assert "smartcity_devices{" in scraped.text, scraped.text[:500]
        assert httpx.get(f"{api_url}/metrics", timeout=5).status_code == 404, "the API's port no longer serves it"
    finally:
        api.stop()
