"""``smartcity up``: start the one-machine stack, watch it, stop it in order.

Order: Mosquitto, the Kafka-compatible broker, InfluxDB, topic creation, then the services of the flow (the ingest
gateway, the stream worker, the API). A service whose URL is set in the environment (``SMARTCITY_MQTT_URL``,
``SMARTCITY_KAFKA_BOOTSTRAP``, ``SMARTCITY_INFLUX_URL``) is used as it is and not started. A child that dies is
restarted with backoff. SIGINT or SIGTERM stops the flow's services first (the gateway drains into Kafka), then the
brokers; exit status 0.

``SMARTCITY_HOST`` is where the stack is reached from: Mosquitto (every client logs in) and the API (every ``/api/``
call carries a token) listen there. Whatever it says, everything without authentication listens on 127.0.0.1 only:
Tansu and InfluxDB (neither has any) and the gateways', stream workers' and writer's ``/healthz`` and ``/metrics``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from rich.console import Console
from rich.table import Table

from core.errors import ConfigError, StackError
from core.kafka.admin import all_topics, ensure_topics
from core.process import LOOPBACK, READY_LINE, ManagedProcess, reachable, require_port
from core.secrets import API_USERNAME, GATEWAY_USERNAME, StackSecrets
from core.settings import ApiToken
from devices.mqtt_files import FileAccounts
from ingest.settings import GatewaySettings
from smartcity.stack.accounts import ensure_service_accounts
from smartcity.stack.services import Launch, http_ok, influxdb, kafka_store, mosquitto, tansu
from streams.app import streams_topics
from streams.settings import StreamsSettings

logger = logging.getLogger(__name__)

TANSU = "kafka (tansu)"  # the one-machine Kafka; on "memory" storage a restart of it comes back empty
KAFKA_STORE = "kafka store"  # its disk (kafka_storage "disk")
SERVICES = ("ingest gateway", "stream worker", "influx writer", "api")  # our own processes


class StackSettings(BaseSettings):
    """What ``smartcity up`` starts, and where."""

    model_config = SettingsConfigDict(env_prefix="SMARTCITY_", frozen=True, extra="ignore", hide_input_in_errors=True)

    data_dir: Path = Path(".smartcity")
    host: str = Field(
        LOOPBACK,
        description="address of Mosquitto and the API (0.0.0.0: every interface); Tansu, InfluxDB and the "
        "services' /metrics stay on 127.0.0.1",
    )
    mqtt_port: int = Field(1883, ge=1, le=65535)
    kafka_port: int = Field(9092, ge=1, le=65535)
    kafka_storage: Literal["disk", "memory"] = Field(
        "disk",
        description="where the one-machine Kafka keeps records: disk (data_dir/kafka/store, survives restarts and "
        "power cuts) or memory (forgotten when it stops: tests that need a blank broker)",
    )
    kafka_store_port: int = Field(9094, ge=1, le=65535, description="the Kafka store's port (loopback)")
    kafka_store_sync: Literal["write", "interval", "off"] = Field(
        "interval",
        description="when the Kafka store syncs to disk: interval (every second; a power cut loses at most the last "
        "second, SIGKILL nothing), write (before answering each write; slow), off",
    )
    kafka_store_grace_s: float = Field(
        5.0,
        ge=0,
        description="how long the Kafka store keeps readings batches every consumer group has passed (the "
        "broker lists a partition's batches on each fetch, so fewer is cheaper)",
    )
    influx_port: int = Field(8086, ge=1, le=65535)
    influx_rpc_port: int = Field(8088, ge=1, le=65535)
    gateway_http_port: int = Field(9301, ge=1, le=65535)
    streams_http_port: int = Field(9311, ge=1, le=65535)
    writer_http_port: int = Field(9321, ge=1, le=65535, description="the InfluxDB writer's /healthz and /metrics")
    http_port: int = Field(8080, ge=1, le=65535, description="the HTTP API and the duty console")
    api_token: ApiToken | None = Field(None, description="admin token (12+ characters); generated if unset")
    mqtt_admin_password: SecretStr | None = Field(
        None, description="password of the MQTT operator account admin; generated into secrets.json if unset"
    )
    mqtt_url: str | None = Field(None, description="use this MQTT broker instead of starting Mosquitto")
    kafka_bootstrap: str | None = Field(None, description="use this Kafka instead of starting Tansu")
    influx_url: str | None = Field(None, description="use this InfluxDB instead of starting influxd")
    mosquitto_bin: str | None = Field(None, description="path of the mosquitto binary, if not the Debian one")
    influxd_bin: str | None = Field(None, description="path of the influxd binary, if not the Debian one")
    influxd_nice: int = Field(
        0,
        ge=0,
        le=19,
        description="niceness of influxd (0: as every other process; 10 made its cache snapshots lag on a busy "
        "machine, its WAL and heap grew: docs/benchmarks.md)",
    )
    influxd_memory_limit_mib: int = Field(
        768,
        ge=0,
        description="influxd's Go heap soft limit (GOMEMLIMIT), MiB; 0: none. Its garbage collector works harder "
        "near it rather than let compactions' buffers swing the heap by a GiB (docs/storage.md)",
    )
    gateways: int = Field(
        1,
        ge=1,
        le=8,
        description="ingest gateways in the shared subscription; the n-th serves on gateway_http_port+n-1",
    )
    stream_workers: int = Field(
        1, ge=1, le=8, description="stream workers in one consumer group; the n-th serves on streams_http_port+n-1"
    )
    start_timeout_s: float = 15.0


def trimmed_topics(kafka_bootstrap: str = "127.0.0.1:9092") -> tuple[str, ...]:
    """The topics the Kafka store trims once consumed: readings and the stream worker's internal streams."""
    streams = StreamsSettings(kafka_bootstrap=kafka_bootstrap)
    app = streams.streams_app_id
    return (streams.topic_readings, f"{app}-ticks", f"{app}-site-findings")


def _ours(name: str) -> bool:
    """One of our own processes (any replica: "stream worker 2"), not a broker."""
    return name.rsplit(" ", 1)[0] in SERVICES or name in SERVICES


@dataclass
class _Child:
    launch: Launch
    restarts: int = 0
    next_restart: float = 0.0


class Stack:
    """The running stack: its children in start order, and the URLs everything is reached at."""

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        s = settings
        self.data_dir = s.data_dir.resolve()
        self.mqtt_url = s.mqtt_url or f"mqtt://{reachable(s.host)}:{s.mqtt_port}"
        self.kafka_bootstrap = s.kafka_bootstrap or f"{LOOPBACK}:{s.kafka_port}"
        self.influx_url = s.influx_url or f"http://{LOOPBACK}:{s.influx_port}"
        self.children: list[_Child] = []
        self.accounts = FileAccounts(
            self.data_dir / "mosquitto" / "auth", self.data_dir / "mosquitto" / "mosquitto.pid"
        )
        self.secrets = StackSecrets.load(
            self.data_dir / "secrets.json",
            admin_password=s.mqtt_admin_password.get_secret_value() if s.mqtt_admin_password else None,
            api_token=s.api_token.get_secret_value() if s.api_token else None,
        )

    def plan(self) -> list[Launch]:
        """Every launch, checked before anything starts: binaries installed, ports free. Only Mosquitto and the API
        listen on ``SMARTCITY_HOST``; the rest, which has no authentication, on the loopback."""
        s, d = self.settings, self.data_dir
        launches: list[Launch] = []
        accounts = self.accounts
        if s.mqtt_url is None:
            require_port(s.host, s.mqtt_port, "Mosquitto", "SMARTCITY_MQTT_PORT")
            broker = mosquitto(
                d / "mosquitto", s.host, s.mqtt_port, s.mosquitto_bin, auth_files=(accounts.passwd, accounts.acl)
            )
            asyncio.run(ensure_service_accounts(accounts, self.secrets))  # the files exist before the broker reads them
            launches.append(broker)
        if s.kafka_bootstrap is None:
            require_port(LOOPBACK, s.kafka_port, "The Kafka-compatible broker", "SMARTCITY_KAFKA_PORT")
            store_url = None
            if s.kafka_storage == "disk":
                require_port(LOOPBACK, s.kafka_store_port, "The Kafka store", "SMARTCITY_KAFKA_STORE_PORT")
                store = kafka_store(
                    d / "kafka" / "store",
                    LOOPBACK,
                    s.kafka_store_port,
                    d / "kafka" / "store.log",
                    sync=s.kafka_store_sync,
                    trim_consumed=trimmed_topics(self.kafka_bootstrap),
                    grace_s=s.kafka_store_grace_s,
                )
                launches.append(store)
                store_url = store.url
            launches.append(tansu(LOOPBACK, s.kafka_port, d / "kafka" / "tansu.log", store_url))
        if s.influx_url is None:
            require_port(LOOPBACK, s.influx_port, "InfluxDB", "SMARTCITY_INFLUX_PORT")
            require_port(LOOPBACK, s.influx_rpc_port, "InfluxDB (backup RPC)", "SMARTCITY_INFLUX_RPC_PORT")
            launches.append(
                influxdb(
                    d / "influxdb",
                    LOOPBACK,
                    s.influx_port,
                    s.influx_rpc_port,
                    s.influxd_bin,
                    niceness=s.influxd_nice,
                    memory_limit_mib=s.influxd_memory_limit_mib,
                )
            )
        self._ports_distinct()
        for n in range(s.gateways):
            require_port(LOOPBACK, s.gateway_http_port + n, "The ingest gateway", "SMARTCITY_GATEWAY_HTTP_PORT")
        for n in range(s.stream_workers):
            require_port(LOOPBACK, s.streams_http_port + n, "The stream worker", "SMARTCITY_STREAMS_HTTP_PORT")
        require_port(LOOPBACK, s.writer_http_port, "The InfluxDB writer", "SMARTCITY_WRITER_HTTP_PORT")
        require_port(s.host, s.http_port, "The HTTP API", "SMARTCITY_HTTP_PORT")
        launches += [self._gateway(n) for n in range(s.gateways)]
        launches += [self._streams(n) for n in range(s.stream_workers)]
        launches.append(self._writer())
        launches.append(self._api())
        return launches

    def _ports_distinct(self) -> None:
        """No two listeners of the stack on one port (replicas take the ports after their first's)."""
        s = self.settings
        ports: dict[int, str] = {}
        wanted = [
            *([("SMARTCITY_MQTT_PORT", s.mqtt_port)] if s.mqtt_url is None else []),
            *([("SMARTCITY_KAFKA_PORT", s.kafka_port)] if s.kafka_bootstrap is None else []),
            *(
                [("SMARTCITY_KAFKA_STORE_PORT", s.kafka_store_port)]
                if s.kafka_bootstrap is None and s.kafka_storage == "disk"
                else []
            ),
            *(
                [("SMARTCITY_INFLUX_PORT", s.influx_port), ("SMARTCITY_INFLUX_RPC_PORT", s.influx_rpc_port)]
                if s.influx_url is None
                else []
            ),
            *[(f"SMARTCITY_GATEWAY_HTTP_PORT+{n}", s.gateway_http_port + n) for n in range(s.gateways)],
            *[(f"SMARTCITY_STREAMS_HTTP_PORT+{n}", s.streams_http_port + n) for n in range(s.stream_workers)],
            ("SMARTCITY_WRITER_HTTP_PORT", s.writer_http_port),
            ("SMARTCITY_HTTP_PORT", s.http_port),
        ]
        for name, port in wanted:
            if port in ports:
                raise ConfigError(
                    f"{name} and {ports[port]} are both port {port}: give one of them another port "
                    "(replicas of the gateway and the stream worker use the ports right after their first's)"
                )
            ports[port] = name.removesuffix("+0")

    def _service_env(self, username: str, password: str) -> dict[str, str]:
        env = {**os.environ, "SMARTCITY_MQTT_URL": self.mqtt_url, "SMARTCITY_KAFKA_BOOTSTRAP": self.kafka_bootstrap}
        if self.settings.mqtt_url is None:  # our own broker: our own accounts
            env |= {"SMARTCITY_MQTT_USERNAME": username, "SMARTCITY_MQTT_PASSWORD": password}
        return env

    def _service(self, name: str, command: str, host: str, port: int, env: dict[str, str], n: int = 0) -> Launch:
        """``smartcity <command>`` as a child, healthy when ``/healthz`` on ``host:port`` answers 200. The ``n``-th
        replica (from 0) of a command is named and logged with ``n + 1`` after the first."""
        if n:
            name, log = f"{name} {n + 1}", f"{command}-{n + 1}.log"
        else:
            log = f"{command}.log"
        process = ManagedProcess(
            name, [sys.executable, "-m", "smartcity", command], self.data_dir / "logs" / log, env=env
        )
        url = f"http://{reachable(host)}:{port}"
        return Launch(process, lambda: http_ok(f"{url}/healthz", (200,)), url)

    def _api(self) -> Launch:
        s = self.settings
        env = self._service_env(API_USERNAME, self.secrets.api_mqtt_password) | {
            "SMARTCITY_HTTP_HOST": s.host,
            "SMARTCITY_HTTP_PORT": str(s.http_port),
            "SMARTCITY_API_TOKEN": self.secrets.api_token,
            "SMARTCITY_INFLUX_URL": self.influx_url,
            "SMARTCITY_ALERTS_PUBLIC_URL": f"http://{reachable(s.host)}:{s.http_port}",
            "SMARTCITY_REGISTRY_DB": str(self.data_dir / "registry.db"),
            "SMARTCITY_MQTT_ACCOUNTS": "files" if s.mqtt_url is None else "off",
            "SMARTCITY_MQTT_AUTH_DIR": str(self.data_dir / "mosquitto" / "auth"),
            "SMARTCITY_MOSQUITTO_PID_FILE": str(self.data_dir / "mosquitto" / "mosquitto.pid"),
        }
        return self._service("api", "api", s.host, s.http_port, env)

    def _gateway(self, n: int = 0) -> Launch:
        """The ``n``-th gateway: a client id of its own (its persistent session), the shared group of all."""
        s = self.settings
        port = s.gateway_http_port + n
        env = self._service_env(GATEWAY_USERNAME, self.secrets.gateway_password) | {
            "SMARTCITY_GATEWAY_HTTP_HOST": LOOPBACK,
            "SMARTCITY_GATEWAY_HTTP_PORT": str(port),
        }
        if s.gateways == 1 and "SMARTCITY_GATEWAY_SHARE_GROUP" not in env:
            env["SMARTCITY_GATEWAY_SHARE_GROUP"] = ""  # a plain subscription, which survives a Mosquitto restart
        if s.mqtt_url is None and "SMARTCITY_GATEWAY_MQTT_PROTOCOL" not in env:
            # Our own Mosquitto: MQTT 3.1.1 saves paho's decoding of v5 properties, 18-25 µs a message (the gateway
            # is the stack's largest consumer); its flow control is the gateway's own pause at its unacked limit
            # and our broker's max_inflight_messages (docs/ingest.md). A broker of the user's keeps the default,
            # MQTT 5, whose receive maximum the gateway sets itself.
            env["SMARTCITY_GATEWAY_MQTT_PROTOCOL"] = "3.1.1"
        if n:
            first = env.get("SMARTCITY_GATEWAY_CLIENT_ID") or GatewaySettings.model_fields["gateway_client_id"].default
            env["SMARTCITY_GATEWAY_CLIENT_ID"] = f"{first.removesuffix('-1')}-{n + 1}"
        return self._service("ingest gateway", "gateway", LOOPBACK, port, env, n)

    def _streams(self, n: int = 0) -> Launch:
        """The ``n``-th stream worker: one consumer group, a data directory of its own."""
        s = self.settings
        port = s.streams_http_port + n
        env = {
            **os.environ,
            "SMARTCITY_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "SMARTCITY_STREAMS_HTTP_HOST": LOOPBACK,
            "SMARTCITY_STREAMS_HTTP_PORT": str(port),
            "SMARTCITY_STREAMS_DATA_DIR": str(self.data_dir / ("streams" if n == 0 else f"streams-{n + 1}")),
        }
        return self._service("stream worker", "streams", LOOPBACK, port, env, n)

    def _writer(self) -> Launch:
        s = self.settings
        env = {
            **os.environ,
            "SMARTCITY_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "SMARTCITY_INFLUX_URL": self.influx_url,
            "SMARTCITY_WRITER_HTTP_HOST": LOOPBACK,
            "SMARTCITY_WRITER_HTTP_PORT": str(s.writer_http_port),
        }
        return self._service("influx writer", "writer", LOOPBACK, s.writer_http_port, env)

    def _topics(self) -> None:
        """Every topic, before any client of them exists (Tansu's memory store breaks on a creation racing a
        client's metadata request for the same topic)."""
        streams = StreamsSettings(kafka_bootstrap=self.kafka_bootstrap)
        asyncio.run(ensure_topics(streams.kafka_bootstrap, [*all_topics(streams), *streams_topics(streams)]))

    def start(self) -> None:
        """The brokers one after the other, then the topics, then our services all at once (each needs only the
        brokers), each waited for until healthy."""
        launches = self.plan()
        timeout = self.settings.start_timeout_s
        services = [launch for launch in launches if _ours(launch.process.name)]
        for launch in launches:
            if launch not in services:
                launch.start(timeout)
                self.children.append(_Child(launch))
        self._topics()
        for launch in services:
            launch.process.start()
            self.children.append(_Child(launch))
        for launch in services:
            launch.process.wait_healthy(launch.check, timeout)
        self._write_state()

    def _write_state(self) -> None:
        """``stack.json``, replaced whole (written aside, then renamed): a reader never sees it half written (the
        fault suite's health checks read it while the supervisor restarts children, and once read it empty)."""
        state = {c.launch.process.name: {"pid": c.launch.process.pid, "url": c.launch.url} for c in self.children}
        aside = self.data_dir / "stack.json.tmp"
        aside.write_text(json.dumps(state, indent=2))
        os.replace(aside, self.data_dir / "stack.json")

    def watch(self) -> None:
        """Restart any child that died, with backoff (1 s doubling to 30 s)."""
        now = time.monotonic()
        for child in self.children:
            process = child.launch.process
            if process.alive() or now < child.next_restart:
                continue
            code = process.popen.returncode if process.popen else None
            logger.error(
                "%s exited (status %s); restarting. Last log lines:\n%s",
                process.name,
                code,
                process.log_tail(5),
            )
            child.restarts += 1
            child.next_restart = now + min(2**child.restarts, 30)
            if process.name == TANSU and self.settings.kafka_storage == "memory":
                try:
                    self._restart_kafka(child.launch)
                except StackError as exc:  # Tansu died again: the next round restarts it and tries again
                    logger.error("after the Kafka restart: %s", exc)
            else:
                process.start()
            self._write_state()

    def _restart_kafka(self, tansu: Launch) -> None:
        """The memory broker comes back empty (on disk it comes back as it was, and is only started again). Stop our
        services *before* it starts again: a client that reconnects
        to the new broker produces to or asks for topics that do not exist yet, and Tansu's memory store breaks when
        a topic is made while clients ask for it (measured: every produce then failed with ``AlreadyExists`` for
        minutes). Then start it, recreate the topics and start the services again, the API first and alone until it
        serves, for it republishes the registry (until then a gateway would refuse, as unknown, every device whose
        readings Mosquitto held for it during the outage), stream workers start with empty rule state (their
        changelogs are gone: docs/rules.md), the writer reads the new topic from its start. Gateways stopped with
        SIGTERM cannot hand what they hold to a dead Kafka: it stays unacknowledged in Mosquitto, which redelivers
        it to the gateway when it is back."""
        ours = [c.launch for c in self.children if _ours(c.launch.process.name)]
        for launch in reversed(ours):
            launch.process.stop()
        timeout = self.settings.start_timeout_s
        tansu.process.start()
        tansu.process.wait_healthy(tansu.check, timeout)
        self._topics()
        ours.sort(key=lambda launch: launch.process.name != "api")  # the registry is republished before it serves
        for i, launch in enumerate(ours):
            logger.warning("restarting %s after the Kafka restart", launch.process.name)
            launch.process.start()
            if i == 0 and launch.process.name == "api":
                launch.process.wait_healthy(launch.check, timeout)
        self._write_state()

    def stop(self) -> None:
        for child in reversed(self.children):
            child.launch.process.stop()
        self.children.clear()

    def table(self) -> Table:
        table = Table(title="SmartCity one-machine stack", title_justify="left")
        for column in ("service", "pid", "address"):
            table.add_column(column, no_wrap=True)
        table.add_column("log", overflow="fold")
        for child in self.children:
            p = child.launch.process
            table.add_row(p.name, str(p.pid), child.launch.url, str(p.log_path))
        external = [
            ("MQTT", self.settings.mqtt_url),
            ("Kafka", self.settings.kafka_bootstrap),
            ("InfluxDB", self.settings.influx_url),
        ]
        for name, url in external:
            if url:
                table.add_row(f"{name} (external)", "-", url, "-")
        return table


def run_stack(settings: StackSettings) -> int:
    """Start, print where everything is, run until SIGINT/SIGTERM, stop. Returns the exit status."""
    console = Console()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stack = Stack(settings)
    started = time.monotonic()
    try:
        stack.start()
    except BaseException:
        stack.stop()
        raise
    console.print(stack.table())
    secrets_file = stack.data_dir / "secrets.json"
    console.print(
        f"[bold green]{READY_LINE}[/] in {time.monotonic() - started:.1f} s. Ctrl-C stops everything.\n"
        f"API: http://{reachable(settings.host)}:{settings.http_port} (OpenAPI at /docs); its admin token and the MQTT "
        f"operator password (user admin) are in {secrets_file}.\n"
        f"Register a device with PUT /api/devices/<id>; it publishes to {stack.mqtt_url} on "
        "devices/<id>/telemetry with the credentials that call returns."
    )
    sys.stdout.flush()
    try:
        while not stop.wait(0.5):
            stack.watch()
    finally:
        console.print("stopping ...")
        stack.stop()
        console.print("stopped")
    return 0
