"""``smartcity up`` as a child process: the whole one-machine stack for a test, a simulator run or a benchmark.

``StackRun`` guarantees a stack of its own: every port is free when it is chosen (a replica's block of ports
included), the data directory is the caller's (a temporary one: nothing outlives the run), and the stack is stopped
when the ``with`` block ends, however it ends; a process that dies without its cleanup takes the stack with it
(``PR_SET_PDEATHSIG``). Entering returns only once the supervisor printed ``READY_LINE`` (every service healthy), with
the secrets it generated and the pid and address of every process read from ``stack.json``.

A test uses it as a fixture::

    @pytest.fixture(scope="module")
    def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackRun]:
        with StackRun(tmp_path_factory.mktemp("mine")) as run:
            run.register([device_record("gas-1")])
            yield run

    def test_it(stack: StackRun) -> None:
        with stack.api_client() as http:
            assert http.get("/api/devices/gas-1").status_code == 200
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt

from core.contracts import TELEMETRY_TOPIC
from core.process import READY_LINE, die_with_parent, free_port, port_is_free
from core.secrets import saved_secrets
from harness.builders import telemetry
from harness.measure import ACCEPTED, EVALUATED, metric

#: The department whose MQTT password ``StackRun.dept_password`` is: the one the default routing sends gas alerts to.
DEPARTMENT = "emergency"
UP_TIMEOUT_S = 180.0  # a cold start on a busy 2-core machine takes about a minute
_PORTS = ("MQTT", "KAFKA", "KAFKA_STORE", "INFLUX", "INFLUX_RPC", "GATEWAY_HTTP", "STREAMS_HTTP", "WRITER_HTTP", "HTTP")


class StackRun:
    """``python -m smartcity up`` on free ports in ``data_dir``; stopped with SIGTERM, which stops its children.

    After ``__enter__``: ``mqtt_url``, ``kafka`` (bootstrap), ``api``, ``influx`` and each service's ``*_metrics`` URL;
    ``admin_password`` (the MQTT operator account ``admin``), ``dept_password`` (``dept-emergency``), ``token`` (the
    API's admin token); ``pids`` and ``urls`` by process name as ``stack.json`` has them (``read_state`` again after
    the supervisor restarted one). ``env`` is the environment ``smartcity up`` runs with: change it before entering
    to configure the stack, and pass it to other children of the run so they find it.
    """

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        """``env``: more settings for ``smartcity up`` (``SMARTCITY_GATEWAYS``: replicas on the next ports)."""
        self.data_dir = data_dir
        self.env = {"SMARTCITY_LOG_LEVEL": "WARNING", **os.environ, **(env or {})}
        replicas = {
            "GATEWAY_HTTP": int(self.env.get("SMARTCITY_GATEWAYS", "1")),
            "STREAMS_HTTP": int(self.env.get("SMARTCITY_STREAM_WORKERS", "1")),
        }
        ports: dict[str, int] = {}
        for name in _PORTS:
            while True:  # the OS hands out ports in sequence: a replica's port+n may be another's
                port = free_port()
                block = range(port, port + replicas.get(name, 1))
                taken = {p for other, first in ports.items() for p in range(first, first + replicas.get(other, 1))}
                if not taken.intersection(block) and all(port_is_free("127.0.0.1", p) for p in block):
                    ports[name] = port
                    break
        self.env |= {f"SMARTCITY_{name}_PORT": str(port) for name, port in ports.items()}
        self.mqtt_url, self.kafka = f"mqtt://127.0.0.1:{ports['MQTT']}", f"127.0.0.1:{ports['KAFKA']}"
        self.api = f"http://127.0.0.1:{ports['HTTP']}"
        self.influx = f"http://127.0.0.1:{ports['INFLUX']}"
        self.gateway_metrics = f"http://127.0.0.1:{ports['GATEWAY_HTTP']}/metrics"
        self.streams_metrics = f"http://127.0.0.1:{ports['STREAMS_HTTP']}/metrics"
        self.writer_metrics = f"http://127.0.0.1:{ports['WRITER_HTTP']}/metrics"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> StackRun:
        log = self.data_dir / "up.log"
        with log.open("wb") as out:  # a file, not a pipe: nobody would drain a pipe once the stack is up
            argv = [sys.executable, "-m", "smartcity", "up", "--data-dir", str(self.data_dir)]
            # A benchmark killed without its cleanup (SIGTERM, SIGKILL) takes its stack with it.
            self.proc = subprocess.Popen(
                argv, env=self.env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=die_with_parent
            )
        deadline = time.monotonic() + UP_TIMEOUT_S
        while READY_LINE not in log.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"smartcity up did not come up:\n{log.read_text(errors='replace')}")
            time.sleep(0.2)
        secrets = saved_secrets(self.data_dir)
        self.admin_password: str = secrets["admin_password"]
        self.dept_password: str = secrets["departments"][DEPARTMENT]
        self.token: str = secrets["api_token"]
        self.read_state()
        return self

    def read_state(self) -> None:
        """Pids and addresses from ``stack.json`` (the supervisor rewrites it when it restarts a child)."""
        state = json.loads((self.data_dir / "stack.json").read_text())
        self.pids = {k: int(v["pid"]) for k, v in state.items()}
        self.urls: dict[str, str] = {k: str(v["url"]) for k, v in state.items()}

    def __exit__(self, *exc: object) -> None:
        if exc and exc[0] is not None:  # the data directory is about to go: show what the services said
            for log in sorted((self.data_dir / "logs").glob("*.log")):
                print(
                    f"--- {log.name}:", *log.read_text(errors="replace").splitlines()[-15:], sep="\n", file=sys.stderr
                )
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def api_client(self, token: str | None = None, timeout: float = 30) -> httpx.Client:
        """The stack's HTTP API, signed in with ``token`` (default: the admin token)."""
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return httpx.Client(base_url=self.api, headers=headers, timeout=timeout)

    def register(self, devices: list[dict[str, Any]]) -> None:
        """Import device records (``harness.builders.device_record``) through ``POST /api/devices/import``, 5,000 a
        request; raises ``httpx.HTTPStatusError`` if the API refuses one. The services learn of them from the
        devices topic a moment later: a first reading sent at once may be refused as unknown."""
        with self.api_client(timeout=300) as http:
            for start in range(0, len(devices), 5000):
                http.post("/api/devices/import", json=devices[start : start + 5000]).raise_for_status()

    def wait_drained(self, timeout: float = 120) -> None:
        """Until neither the gateway nor the stream worker has counted a reading for a second, or ``timeout``."""
        last, deadline = (-1.0, -1.0), time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = (metric(self.gateway_metrics, ACCEPTED), metric(self.streams_metrics, EVALUATED))
            if now == last:
                return
            last = now
            time.sleep(1)


def until_online(stack: StackRun, client: mqtt.Client, devices: list[str], ts: int, timeout: float = 60) -> None:
    """One health reading per device (``battery_pct``: not a hazard measurement, so counts of hazard readings stay
    exact) from ``client`` (an operator's, allowed to publish for any device) until the API has seen every device:
    the gateways then know them all from the registry topic. ``AssertionError`` naming how many never did."""
    pending = set(devices)
    deadline = time.monotonic() + timeout
    with stack.api_client() as http:
        while pending:
            assert time.monotonic() < deadline, f"{len(pending)} devices never became known"
            for device_id in pending:
                body = telemetry({"battery_pct": 90.0}, ts=ts)
                client.publish(TELEMETRY_TOPIC.format(device_id=device_id), body, qos=1)
            time.sleep(1.5)
            pending = {d for d in pending if http.get(f"/api/devices/{d}/health").json().get("last_seen") is None}
