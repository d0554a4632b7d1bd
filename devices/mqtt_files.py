"""MQTT accounts in Mosquitto's password and ACL files, reloaded by SIGHUP: the one-machine backend.

Mosquitto's classic ``acl_file`` can say "every user may publish under ``devices/<its username>/``" in one
``pattern`` line, which its 2.0 dynamic-security plugin cannot; so here a device is only a line in the password
file, hashed by Mosquitto's own ``mosquitto_passwd``, and creating ten thousand costs one reload, not ten thousand
configuration rewrites (docs/benchmarks.md). A reload disconnects a client whose account is gone at once.

The price: whoever changes accounts must be able to signal the broker (same machine, its pid file). The
dynamic-security backend (``devices.mqtt_accounts``) works over MQTT and suits a broker elsewhere.

A reload is asynchronous: the broker re-reads the files some time after the signal, and a device that logs in the
moment its registration answered could be refused (the demo's drill fleet once was, every device of it). With
``probe`` (the broker's address), ``create_devices`` returns only once the broker accepts a login with the newest
credentials it made, signalling again if it does not (at most ``PROBE_TIMEOUT_S``, then it says so in the log).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from core.process import find_binary
from core.settings import MqttConnection
from devices.mqtt_accounts import AccountError, Acl, Credentials, new_password

logger = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 10.0

_DEVICE_PATTERNS = """# Every device: its own topics only. (Service accounts' sections follow.)
pattern write devices/%u/#
pattern read devices/%u/errors
pattern read devices/%u/commands/#
"""

_ACCESS = {
    "publishClientSend": "write",
    "subscribePattern": "read",
    "subscribeLiteral": "read",
    "publishClientReceive": "read",
}


class FileAccounts:
    """Same interface as ``MqttAccounts``; ``directory`` holds ``passwd``, ``acl`` and the broker's pid file."""

    def __init__(self, directory: Path, pid_file: Path, probe: MqttConnection | None = None) -> None:
        self._probe = probe
        self._passwd = directory / "passwd"
        self._acl = directory / "acl"
        self._services = directory / "acl.services"
        self._pid_file = pid_file
        self._lock = asyncio.Lock()
        directory.mkdir(parents=True, exist_ok=True)
        for path in (self._passwd, self._services):
            if not path.exists():
                path.touch(mode=0o600)
        if not self._acl.exists():
            self._write_acl()

    @property
    def passwd(self) -> Path:
        return self._passwd

    @property
    def acl(self) -> Path:
        return self._acl

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def create_device(self, device_id: str) -> Credentials:
        return (await self.create_devices([device_id]))[0]

    async def create_devices(self, device_ids: list[str]) -> list[Credentials]:
        async with self._lock:
            users = self._users()
            taken = sorted(set(device_ids) & set(users))
            if taken:
                raise AccountError(f"createClient failed: accounts already exist: {', '.join(taken[:5])}")
            created = [Credentials(d, new_password()) for d in device_ids]
            users.update(await asyncio.to_thread(self._hash, created))
            self._write_users(users)
            self.reload()
            if created and self._probe is not None:
                await asyncio.to_thread(self._until_accepted, self._probe, created[-1])
            return created

    async def delete_device(self, device_id: str) -> None:
        async with self._lock:
            users = self._users()
            if users.pop(device_id, None) is None:
                return  # already gone (or made while accounts were off): deleting is idempotent
            self._write_users(users)
            self.reload()

    async def ensure_account(self, username: str, password: str, acls: list[Acl]) -> None:
        async with self._lock:
            users = self._users()
            users.update(await asyncio.to_thread(self._hash, [Credentials(username, password)]))
            self._write_users(users)
            sections = self._service_sections()
            # Unsubscribing is always allowed in the ACL file's model, so those rules have no line there.
            sections[username] = [
                f"topic {_ACCESS[a.acltype]} {a.topic}" for a in acls if a.allow and a.acltype in _ACCESS
            ]
            self._write_service_sections(sections)
            self._write_acl()
            self.reload()

    def reload(self) -> None:
        """Ask the broker to re-read both files (SIGHUP); a no-op before it has started."""
        try:
            pid = int(self._pid_file.read_text().strip())
            if b"mosquitto" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                return  # a stale pid file naming some other process
            os.kill(pid, signal.SIGHUP)
        except (OSError, ValueError):
            return

    def _until_accepted(self, conn: MqttConnection, credentials: Credentials) -> None:
        """Log in as ``credentials`` until the broker accepts them, signalling it again every half second."""
        deadline = time.monotonic() + PROBE_TIMEOUT_S
        signalled = time.monotonic()
        while time.monotonic() < deadline:
            verdict = _login(conn, credentials)
            if verdict is None or not verdict.is_failure:  # accepted, or the broker unreachable: nothing to wait for
                return
            time.sleep(0.02)
            if time.monotonic() - signalled > 0.5:
                self.reload()
                signalled = time.monotonic()
        logger.warning("MQTT accounts: the broker still refuses new accounts %.0f s after a reload", PROBE_TIMEOUT_S)

    # -- files -----------------------------------------------------------------------------------------------

    def _users(self) -> dict[str, str]:
        users: dict[str, str] = {}
        for line in self._passwd.read_text().splitlines():
            name, _, hashed = line.partition(":")
            if name and hashed:
                users[name] = hashed
        return users

    def _write_users(self, users: dict[str, str]) -> None:
        _replace(self._passwd, "".join(f"{name}:{hashed}\n" for name, hashed in sorted(users.items())))

    def _hash(self, accounts: list[Credentials]) -> dict[str, str]:
        """Mosquitto's own hashing (``mosquitto_passwd -U``), in one process for the whole batch."""
        tool = find_binary("mosquitto_passwd", ["mosquitto_passwd", "/usr/bin/mosquitto_passwd"], "mosquitto")
        fd, name = tempfile.mkstemp(dir=self._passwd.parent, prefix=".new-", text=True)
        try:
            with os.fdopen(fd, "w") as f:
                f.writelines(f"{a.username}:{a.password}\n" for a in accounts)
            done = subprocess.run([tool, "-U", name], capture_output=True, text=True)
            if done.returncode != 0:
                raise AccountError(f"mosquitto_passwd failed: {done.stderr.strip()}")
            hashed = Path(name).read_text().splitlines()
        finally:
            Path(name).unlink(missing_ok=True)
        return dict(line.split(":", 1) for line in hashed if ":" in line)

    def _service_sections(self) -> dict[str, list[str]]:
        sections: dict[str, list[str]] = {}
        current: list[str] | None = None
        for line in self._services.read_text().splitlines():
            if line.startswith("user "):
                current = sections.setdefault(line.removeprefix("user ").strip(), [])
            elif line.strip() and current is not None:
                current.append(line.strip())
        return sections

    def _write_service_sections(self, sections: dict[str, list[str]]) -> None:
        body = "".join(
            f"user {user}\n" + "".join(f"{rule}\n" for rule in rules) for user, rules in sorted(sections.items())
        )
        _replace(self._services, body)

    def _write_acl(self) -> None:
        _replace(
            self._acl,
            "# generated by smartcity; edits are overwritten\n" + _DEVICE_PATTERNS + self._services.read_text(),
        )


def _replace(path: Path, text: str) -> None:
    """Write atomically, owner-only: the broker never reads a half-written file."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(name, path)


def _login(conn: MqttConnection, credentials: Credentials) -> ReasonCode | None:
    """The broker's answer to a login (CONNACK reason), or ``None`` if it could not be reached."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"smartcity-probe-{uuid.uuid4().hex[:8]}",
        protocol=MQTTProtocolVersion.MQTTv5,
    )  # fmt: skip
    client.username_pw_set(credentials.username, credentials.password)
    if conn.mqtt_tls:
        client.tls_set_context(conn.mqtt_tls_context())
    answer: list[ReasonCode] = []
    client.on_connect = lambda _c, _u, _f, reason, _p: answer.append(reason)
    try:
        client.connect(conn.mqtt_host, conn.mqtt_port, keepalive=10)
        deadline = time.monotonic() + 2
        while not answer and time.monotonic() < deadline:
            client.loop(0.02)
        client.disconnect()
    except OSError:
        return None
    return answer[0] if answer else None
