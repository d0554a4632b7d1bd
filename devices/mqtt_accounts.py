"""MQTT accounts and ACLs, kept in Mosquitto's dynamic-security plugin and changed through its control topic.

(The other backend, ``devices.mqtt_files.FileAccounts``, keeps them in Mosquitto's password and ACL files; both
implement ``AccountBackend``.)

Each device gets its own client (username = device id, a random password returned once; the plugin stores only a
salted hash) and its own role: publish only under ``devices/{id}/``, read only its own ``errors`` and ``commands``
topics. Mosquitto 2.0's plugin does not substitute ``%u`` in ACL topics, hence one role per device rather than one
shared role. Deleting a device deletes its client, which the plugin disconnects at once.

Service accounts (gateway, departments, the operator ``admin``) are made with ``ensure_account``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import paho.mqtt.client as mqtt

from core.errors import SmartCityError
from core.mqtt import AsyncMqttClient
from core.settings import MqttConnection

logger = logging.getLogger(__name__)

CONTROL_TOPIC: Final = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC: Final = "$CONTROL/dynamic-security/v1/response"


class AccountError(SmartCityError):
    """The dynamic-security plugin refused a command (the message is the plugin's own)."""


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    password: str = field(repr=False)  # returned once, never shown in a log line or a traceback


@dataclass(frozen=True, slots=True)
class Acl:
    acltype: str  # publishClientSend, publishClientReceive, subscribePattern, ...
    topic: str
    allow: bool = True

    def as_json(self) -> dict[str, Any]:
        return {"acltype": self.acltype, "topic": self.topic, "allow": self.allow, "priority": 0}


def device_acls(device_id: str) -> list[Acl]:
    own = f"devices/{device_id}"
    return [
        Acl("publishClientSend", f"{own}/#"),
        Acl("subscribePattern", f"{own}/errors"),
        Acl("subscribePattern", f"{own}/commands/#"),
    ]


def gateway_acls() -> list[Acl]:
    # The plugin checks a shared subscription's filter with its $share/<group>/ prefix.
    return [
        Acl("subscribePattern", "$share/+/devices/+/telemetry"),
        Acl("subscribePattern", "devices/+/telemetry"),
        Acl("publishClientSend", "devices/+/errors"),
    ]


def department_acls(department: str) -> list[Acl]:
    return [Acl("subscribePattern", f"alerts/{department}"), Acl("subscribePattern", f"incidents/{department}")]


def api_acls() -> list[Acl]:
    """The API follows devices' status topics (retained last wills) for device health, and its alerts service
    publishes every department's ``alerts/{department}`` and ``incidents/{department}``."""
    return [
        Acl("subscribePattern", "devices/+/status"),
        Acl("publishClientSend", "alerts/#"),
        Acl("publishClientSend", "incidents/#"),
    ]


def operator_acls() -> list[Acl]:
    return [Acl("publishClientSend", "#"), Acl("subscribePattern", "#"), Acl("unsubscribePattern", "#")]


def _keys(acls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"acltype": a["acltype"], "topic": a["topic"]} for a in acls]


def new_password() -> str:
    return secrets.token_urlsafe(18)


class AccountBackend(Protocol):
    """Where MQTT accounts live: the dynamic-security plugin (``MqttAccounts``) or Mosquitto's password and ACL
    files (``devices.mqtt_files.FileAccounts``)."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def create_device(self, device_id: str) -> Credentials: ...

    async def create_devices(self, device_ids: list[str]) -> list[Credentials]: ...

    async def delete_device(self, device_id: str) -> None: ...

    async def ensure_account(self, username: str, password: str, acls: list[Acl]) -> None: ...


class MqttAccounts:
    """A connection as the plugin's administrator, sending commands and awaiting their responses."""

    def __init__(self, conn: MqttConnection, *, timeout_s: float = 60.0) -> None:
        self._timeout_s = timeout_s
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._mqtt = AsyncMqttClient(
            conn,
            f"smartcity-accounts-{uuid.uuid4().hex[:8]}",
            clean_start=True,
            subscriptions=[(RESPONSE_TOPIC, 1)],
            on_message=self._on_response,
        )

    async def start(self) -> None:
        await self._mqtt.start()
        await asyncio.wait_for(self._mqtt.subscribed.wait(), self._timeout_s)

    async def close(self) -> None:
        await self._mqtt.close()

    async def create_device(self, device_id: str) -> Credentials:
        """A new client and role for ``device_id``; the password is returned here and nowhere else."""
        return (await self.create_devices([device_id]))[0]

    async def create_devices(self, device_ids: list[str], *, per_message: int = 50) -> list[Credentials]:
        """Many at once, in messages of ``per_message`` devices.

        Mosquitto 2.0's plugin rewrites its whole configuration file after every command, so creating a client
        costs time proportional to the clients already there (measured: 0.8 s per 250 devices into an empty
        plugin, 6.7 s per 250 at 1,500; docs/benchmarks.md). Bulk imports of many thousands are therefore slow.
        """
        created: list[Credentials] = []
        for start in range(0, len(device_ids), per_message):
            commands: list[dict[str, Any]] = []
            chunk = [Credentials(d, new_password()) for d in device_ids[start : start + per_message]]
            for creds in chunk:
                role = f"device:{creds.username}"
                acls = [a.as_json() for a in device_acls(creds.username)]
                commands.append({"command": "createRole", "rolename": role, "acls": acls})
                commands.append(
                    {
                        "command": "createClient",
                        "username": creds.username,
                        "password": creds.password,
                        "roles": [{"rolename": role}],
                    }
                )
            await self._run(*commands)
            created.extend(chunk)
        return created

    async def delete_device(self, device_id: str) -> None:
        """Revoke at once: the client is deleted (and disconnected), then its role."""
        await self._run({"command": "deleteClient", "username": device_id}, missing_ok=True)  # idempotent
        await self._run({"command": "deleteRole", "rolename": f"device:{device_id}"}, missing_ok=True)

    async def ensure_account(self, username: str, password: str, acls: list[Acl]) -> None:
        """Create a service account, or bring an existing one to this password and these ACLs.

        An existing role is edited in place, never deleted and recreated: Mosquitto 2.0's plugin keeps a dangling
        pointer when a role is deleted while a client still holds it, and segfaults on the next command touching
        that client (eclipse-mosquitto/mosquitto#2660; seen here).
        """
        role = f"service:{username}"
        wanted = [a.as_json() for a in acls]
        found = (await self._run({"command": "getRole", "rolename": role}, missing_ok=True))[0]
        if found.get("error"):
            await self._run({"command": "createRole", "rolename": role, "acls": wanted})
        else:
            held = found.get("data", {}).get("role", {}).get("acls", [])
            stale = [a for a in held if {"acltype": a["acltype"], "topic": a["topic"]} not in _keys(wanted)]
            missing = [a for a in wanted if {"acltype": a["acltype"], "topic": a["topic"]} not in _keys(held)]
            edits = [
                {"command": "removeRoleACL", "rolename": role, "acltype": a["acltype"], "topic": a["topic"]}
                for a in stale
            ]
            edits += [{"command": "addRoleACL", "rolename": role, **a} for a in missing]
            if edits:
                await self._run(*edits)
        client = (await self._run({"command": "getClient", "username": username}, missing_ok=True))[0]
        if client.get("error"):
            await self._run(
                {"command": "createClient", "username": username, "password": password, "roles": [{"rolename": role}]}
            )
            return
        await self._run({"command": "setClientPassword", "username": username, "password": password})
        held_roles = {r.get("rolename") for r in client.get("data", {}).get("client", {}).get("roles", [])}
        if role not in held_roles:  # adding a role the client holds answers "Internal error" in 2.0
            await self._run({"command": "addClientRole", "username": username, "rolename": role})

    async def _run(self, *commands: dict[str, Any], missing_ok: bool = False) -> list[dict[str, Any]]:
        """Send ``commands`` in one message and return their responses; an error raises ``AccountError`` unless
        ``missing_ok`` and the plugin says the thing is not there."""
        futures = []
        loop = asyncio.get_running_loop()
        for command in commands:
            correlation = uuid.uuid4().hex
            command["correlationData"] = correlation
            futures.append(self._waiting.setdefault(correlation, loop.create_future()))
        self._mqtt.publish(CONTROL_TOPIC, json.dumps({"commands": list(commands)}).encode(), qos=1)
        try:
            responses = await asyncio.wait_for(asyncio.gather(*futures), self._timeout_s)
        finally:
            for command in commands:
                self._waiting.pop(command["correlationData"], None)
        for command, response in zip(commands, responses, strict=True):
            error = str(response.get("error") or "")
            if error and not (missing_ok and "not found" in error.lower()):
                raise AccountError(f"{command['command']} failed: {error}")
        return list(responses)

    def _on_response(self, msg: mqtt.MQTTMessage) -> None:
        try:
            body = json.loads(msg.payload)
        except ValueError:
            logger.warning("unreadable dynamic-security response: %r", msg.payload[:200])
            return
        for response in body.get("responses", []):
            future = self._waiting.get(str(response.get("correlationData")))
            if future is not None and not future.done():
                future.set_result(response)
