"""Per-device MQTT accounts on a real Mosquitto, with both backends: the dynamic-security plugin and the
password/ACL files."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.settings import MqttConnection
from devices.mqtt_accounts import AccountBackend, AccountError, MqttAccounts, department_acls, operator_acls
from devices.mqtt_files import FileAccounts
from smartcity.stack.services import Launch
from tests.integration.conftest import FileSecured
from tests.mqtt_util import Client
from tests.waiting import eventually

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Rig:
    url: str
    accounts: AccountBackend
    stored: Path  # where the backend keeps its accounts


@pytest.fixture(params=["dynsec", "files"])
async def rig(
    request: pytest.FixtureRequest, secured: tuple[Launch, Path], accounts: MqttAccounts, file_secured: FileSecured
) -> Rig:
    if request.param == "dynsec":
        return Rig(secured[0].url, accounts, secured[1])
    files = file_secured.accounts()
    return Rig(file_secured.launch.url, files, files.passwd)


@pytest.fixture
async def operator(rig: Rig) -> AsyncIterator[Client]:
    await rig.accounts.ensure_account("admin", "operator-pw", operator_acls())
    watcher = Client(rig.url, "admin", "operator-pw")
    subscribed = threading.Event()
    watcher.client.on_subscribe = lambda *_a: subscribed.set()
    watcher.client.subscribe("devices/#", qos=1)
    assert subscribed.wait(5)
    yield watcher
    watcher.close()


async def test_anonymous_clients_are_refused(rig: Rig) -> None:
    anonymous = await asyncio.to_thread(Client, rig.url, None, None)
    try:
        assert anonymous.connect_rc is not None
        assert anonymous.connect_rc.is_failure
    finally:
        anonymous.close()


async def test_a_new_device_publishes_at_once_and_only_under_its_own_topics(rig: Rig, operator: Client) -> None:
    accounts = rig.accounts
    a, b = f"gas-{uuid.uuid4().hex[:6]}", f"gas-{uuid.uuid4().hex[:6]}"
    creds = await accounts.create_device(a)
    await accounts.create_device(b)
    assert creds.username == a
    device = await asyncio.to_thread(Client, rig.url, creds.username, creds.password)
    try:
        assert device.connect_rc is not None
        assert not device.connect_rc.is_failure
        own = await asyncio.to_thread(device.publish, f"devices/{a}/telemetry", b'{"values": {"ch4_lel": 1}}')
        other = await asyncio.to_thread(device.publish, f"devices/{b}/telemetry", b'{"values": {"ch4_lel": 99}}')
        assert own.is_published()
        assert other.is_published()
        assert await eventually(lambda: (f"devices/{a}/telemetry", b'{"values": {"ch4_lel": 1}}') in operator.received)
        await asyncio.sleep(0.5)
        assert not [t for t, _ in operator.received if t == f"devices/{b}/telemetry"], "A published as B"
    finally:
        device.close()
    # The password is stored only as a salted hash.
    assert creds.password not in rig.stored.read_text()


async def test_a_deleted_device_is_disconnected_and_cannot_return(rig: Rig) -> None:
    accounts = rig.accounts
    device_id = f"water-{uuid.uuid4().hex[:6]}"
    creds = await accounts.create_device(device_id)
    device = await asyncio.to_thread(Client, rig.url, creds.username, creds.password)
    try:
        assert device.connect_rc is not None
        assert not device.connect_rc.is_failure
        device.client.reconnect_delay_set(30, 60)  # keep paho from reconnecting within the test
        await accounts.delete_device(device_id)
        assert await eventually(device.disconnected.is_set), "the deleted device was not disconnected"
    finally:
        device.close()
    again = await asyncio.to_thread(Client, rig.url, creds.username, creds.password)
    try:
        assert again.connect_rc is not None
        assert again.connect_rc.is_failure
    finally:
        again.close()


async def test_creating_a_device_twice_is_refused(rig: Rig) -> None:
    device_id = f"fire-{uuid.uuid4().hex[:6]}"
    await rig.accounts.create_device(device_id)
    with pytest.raises(AccountError, match=r"create(Role|Client) failed"):
        await rig.accounts.create_device(device_id)


async def test_a_device_reads_only_its_own_errors_and_commands(rig: Rig, operator: Client) -> None:
    """What reaches it, not what its SUBACK says: the ACL-file backend refuses at delivery, the plugin at both."""
    a, b = f"gas-{uuid.uuid4().hex[:6]}", f"gas-{uuid.uuid4().hex[:6]}"
    creds = await rig.accounts.create_device(a)
    await rig.accounts.create_device(b)
    topics = [f"devices/{a}/errors", f"devices/{a}/commands/reboot", f"devices/{b}/errors", "alerts/fire"]
    device = await asyncio.to_thread(Client, rig.url, creds.username, creds.password)
    try:
        acked = threading.Event()
        device.client.on_subscribe = lambda *_a: acked.set()
        device.client.subscribe([(t, 1) for t in topics])
        assert await asyncio.to_thread(acked.wait, 5)
        for topic in topics:
            await asyncio.to_thread(operator.publish, topic, b"x")
        assert await eventually(lambda: len(device.received) >= 2)
        await asyncio.sleep(0.5)
    finally:
        device.close()
    assert sorted(t for t, _ in device.received) == sorted(topics[:2])


async def test_a_service_account_can_be_ensured_again_with_new_password_and_acls(rig: Rig) -> None:
    """Re-running set-up while the account is connected must not crash the broker (Mosquitto #2660: deleting a role
    a client still holds leaves a dangling pointer in the 2.0 plugin) and must apply the new password and ACLs."""
    name = f"svc-{uuid.uuid4().hex[:6]}"
    await rig.accounts.ensure_account(name, "first-pw", operator_acls())
    first = await asyncio.to_thread(Client, rig.url, name, "first-pw")
    try:
        await rig.accounts.ensure_account(name, "second-pw", department_acls("fire"))
        await rig.accounts.ensure_account(name, "second-pw", department_acls("fire"))
    finally:
        first.close()
    old = await asyncio.to_thread(Client, rig.url, name, "first-pw")
    old.close()
    assert old.connect_rc is not None
    assert old.connect_rc.is_failure
    again = await asyncio.to_thread(Client, rig.url, name, "second-pw")
    try:
        assert again.connect_rc is not None
        assert not again.connect_rc.is_failure
        acked = threading.Event()
        granted: list[int] = []
        again.client.on_subscribe = lambda _c, _u, _m, codes, _p: (granted.extend(c.value for c in codes), acked.set())
        again.client.subscribe([("alerts/fire", 1), ("devices/#", 1)])
        assert await asyncio.to_thread(acked.wait, 5)
    finally:
        again.close()
    if isinstance(rig.accounts, MqttAccounts):  # the plugin refuses at SUBACK; the ACL file only at delivery
        assert granted[0] < 0x80
        assert granted[1] >= 0x80
    # The broker is still alive and the device commands around the account still work.
    device_id = f"gas-{uuid.uuid4().hex[:6]}"
    await rig.accounts.create_device(device_id)
    await rig.accounts.delete_device(device_id)


async def test_file_accounts_answer_only_once_the_broker_takes_the_new_logins(file_secured: FileSecured) -> None:
    """A device logs in the moment its registration answers: with ``probe``, ``create_devices`` returns only once
    the broker has re-read its files. Each round makes a batch (as an import does) while another batch is being made,
    then every device of it logs in at once."""
    probe = MqttConnection(mqtt_url=file_secured.launch.url)
    accounts = FileAccounts(file_secured.auth_dir, file_secured.pid_file, probe=probe)
    refused: list[str] = []
    for round_ in range(10):
        tag = uuid.uuid4().hex[:6]
        batches = [[f"gas-{tag}-{b}-{i}" for i in range(20)] for b in range(2)]
        made = await asyncio.gather(*(accounts.create_devices(batch) for batch in batches))
        for creds in [c for batch in made for c in batch][::5]:
            device = await asyncio.to_thread(Client, file_secured.launch.url, creds.username, creds.password)
            if device.connect_rc is None or device.connect_rc.is_failure:
                refused.append(f"{creds.username} in round {round_}: {device.connect_rc}")
            device.close()
    assert not refused, f"{len(refused)} new devices refused right after their accounts were made: {refused[:5]}"
