"""``SMARTCITY_HOST=0.0.0.0 smartcity up``: the kernel's own table of listening sockets shows Mosquitto and the API
on every interface and everything without authentication (Tansu, InfluxDB, the services' /metrics) on 127.0.0.1.

tests/unit/smartcity/test_stack_host.py checks the plan; this checks what the processes really bound.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest

from harness.stack import StackRun

pytestmark = pytest.mark.integration

LISTEN = "0A"  # TCP state in /proc/net/tcp


def _address(hex_address: str) -> str:
    """/proc/net/tcp{,6} writes addresses as the kernel holds them: 32-bit words in host (little-endian) order."""
    words = [bytes.fromhex(hex_address[i : i + 8])[::-1] for i in range(0, len(hex_address), 8)]
    return str(ipaddress.ip_address(b"".join(words)))


def _listening(pid: int) -> set[str]:
    """The local addresses of the TCP sockets ``pid`` listens on."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == LISTEN and fields[9] in inodes:
                found.add(_address(fields[1].split(":")[0]))
    return found


def test_a_wildcard_host_exposes_only_what_authenticates(tmp_path: Path) -> None:
    with StackRun(tmp_path, {"SMARTCITY_HOST": "0.0.0.0"}) as stack:
        binds = {name: _listening(pid) for name, pid in stack.pids.items()}
    assert {"kafka (tansu)", "influxdb", "ingest gateway", "stream worker", "influx writer"} <= set(binds)
    assert binds.pop("mosquitto") == {"0.0.0.0"}, binds
    assert binds.pop("api") == {"0.0.0.0"}, binds
    assert all(binds.values()), f"a process listens on nothing: {binds}"
    exposed = {name: hosts for name, hosts in binds.items() if hosts != {"127.0.0.1"}}
    assert not exposed, f"unauthenticated listeners off the loopback: {exposed}"
