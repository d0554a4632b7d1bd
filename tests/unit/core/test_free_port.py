"""``free_port`` hands out ports no outgoing connection can take before the server binds them."""

from __future__ import annotations

import random
import socket
from pathlib import Path

import pytest

from core import process
from core.process import free_port


def test_free_ports_are_below_the_ephemeral_range_bindable_and_never_handed_out_twice() -> None:
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    assert all(p < low for p in ports), "a port from the ephemeral range may go to an outgoing connection"
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports[-1]))


def test_a_port_someone_listens_on_is_not_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))  # the kernel's choice: free_port never handed it out
        listener.listen()
        held = listener.getsockname()[1]
        other = free_port()
        tries = iter([held, held, other + 1 if other + 1 != held else other + 2])
        monkeypatch.setattr(random, "randrange", lambda *_: next(tries))
        monkeypatch.setattr(process, "_ephemeral_low", lambda: 65_536)
        assert free_port() not in (held, other)
