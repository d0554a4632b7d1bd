"""The load run's publisher: one MQTT connection as the operator account, a fleet round robin, QoS 1, at a rate the
load run changes while it runs.

It runs as its own process (``python -m simulators.load_publisher``), so its CPU is never counted as the
platform's; ``LoadPublisher`` is the load run's handle on it. It reads a pool file (device ids and, per device, a
few payload templates made by the wire contract's model from the device's healthy baseline), says ``ready``, then
obeys one command a line on stdin:

- ``rate N``: publish N readings/s from now on (0 pauses); a rate it cannot reach is as fast as it can;
- ``stat``: print ``{"sent": messages, "acked": messages}`` (acked: PUBACKs with a success reason);
- ``stop``: stop, wait for the broker's acknowledgements (up to 120 s), print the final JSON line and exit.

What the load run's accounting relies on:

- message m goes to device m mod D and its P readings carry seq (m div D) x P + k, so device d's seqs are exactly
  ``0 .. n_d - 1`` with n_d given by ``published_per_device``: every reading is identified without a list of them;
- timestamps strictly increase per device, at least 1 ms apart, so InfluxDB (one point per series and timestamp)
  keeps every reading. They trail the wall clock by the device's reading interval at the current rate (a device
  that sends P readings at once took them over the P intervals before) and lead it only by the milliseconds that
  uniqueness needs if one device is sent more than 1,000 readings a second: never refused as from the future,
  always recent, inside InfluxDB's raw retention policy.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from array import array
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from core.contracts import TELEMETRY_TOPIC, TelemetryItem
from core.process import die_with_parent
from simulators import mqtt_wire

KEEPALIVE_S = 60
_MAX_IN_FLIGHT = 500  # QoS 1 messages unacknowledged at once; the broker's Receive Maximum if lower
_PER_WRITE = 50  # messages in one sendall at most
# What is due is sent every tick, in one write: per message, a sleep, a send and the reader's wake-up were most of
# the publisher's cost (52 µs a message when it woke for each; docs/benchmarks.md).
_TICK_S = 0.005
_READ_PAUSE_S = 0.005  # the reader lets PUBACKs gather between reads, for the same reason
_TS_MARK, _SEQ_MARK = 1_999_999_999_999, 987_654_321_987
_MAX_SPACING_MS = 60_000


def template(values: dict[str, float | bool]) -> str:
    """A ``%``-template of one telemetry item with these values, ts and seq to fill in; made by the contract's
    model, so the load cannot drift from the wire format."""
    item = TelemetryItem.model_construct(ts=_TS_MARK, seq=_SEQ_MARK, values=values)
    body = item.model_dump_json(exclude_defaults=True).replace("%", "%%")
    return body.replace(str(_TS_MARK), "%d", 1).replace(str(_SEQ_MARK), "%d", 1)


def published_per_device(device: int, devices: int, messages: int, per_message: int) -> int:
    """How many readings device number ``device`` was sent when ``messages`` messages were published."""
    return per_message * (messages // devices + (1 if device < messages % devices else 0))


class _Control:
    def __init__(self) -> None:
        self.rate = 0.0
        self.changed = threading.Event()
        self.stopping = threading.Event()


class _Session:
    """One MQTT 5 connection: the publishing thread writes, a reader thread counts PUBACKs.

    ``answered`` counts every PUBACK, ``refused`` those with a failure reason (>= 0x80: not authorised, quota,
    ...); ``acked`` is the rest, the messages the broker took. A dropped connection ends the run: its in-flight
    messages are the publisher's loss, not the platform's, and the final line says so (``disconnects``)."""

    def __init__(self, sock: socket.socket, in_flight: int) -> None:
        self.sock, self.in_flight = sock, in_flight
        self.answered = self.refused = 0
        self.dropped = threading.Event()
        self.reason: str | None = None
        self.last_send = time.monotonic()
        self.packet_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        buffer = bytearray()
        try:
            while chunk := self.sock.recv(262_144):
                buffer += chunk
                time.sleep(_READ_PAUSE_S)
                for packet in mqtt_wire.packets(buffer):
                    if packet.kind == mqtt_wire.PUBACK:
                        if mqtt_wire.puback_reason(packet.body) >= 0x80:
                            self.refused += 1
                        self.answered += 1
                    elif packet.kind == mqtt_wire.DISCONNECT:
                        reason = mqtt_wire.disconnect_reason(packet.body)
                        self.reason = f"the broker disconnected us: reason 0x{reason:02x}"
            self.reason = self.reason or "the broker closed the connection"
        except (OSError, mqtt_wire.MqttError) as exc:
            self.reason = self.reason or f"the connection failed: {exc}"
        self.dropped.set()

    @property
    def acked(self) -> int:
        return self.answered - self.refused

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            self.reason = self.reason or f"the connection failed: {exc}"
            self.dropped.set()
        self.last_send = time.monotonic()

    def next_id(self) -> int:
        self.packet_id = self.packet_id % 65_535 + 1
        return self.packet_id

    def keep_alive(self, every_s: float = KEEPALIVE_S / 2) -> None:
        if time.monotonic() - self.last_send > every_s:
            self.send(mqtt_wire.PINGREQ_PACKET)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(mqtt_wire.DISCONNECT_PACKET)
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


def _publish(session: _Session, pool: dict[str, Any], per_message: int, control: _Control, counts: list[int]) -> None:
    """Publish until stopped or the connection drops; ``counts[0]`` is the messages sent."""
    ids: list[str] = pool["ids"]
    rows: list[list[str]] = pool["templates"]
    prefixes = [mqtt_wire.topic_prefix(TELEMETRY_TOPIC.format(device_id=d)) for d in ids]
    devices, variants = len(ids), len(rows[0])
    last = array("q", [0]) * devices
    m, anchor_t, anchor_m, per_s, spacing_ms = 0, time.monotonic(), 0, 0.0, 0
    while not control.stopping.is_set() and not session.dropped.is_set():
        if control.changed.is_set():
            control.changed.clear()
            anchor_t, anchor_m, per_s = time.monotonic(), m, control.rate / per_message
            spacing_ms = min(_MAX_SPACING_MS, int(1000 * devices / control.rate)) if control.rate else 0
        if per_s <= 0:
            session.keep_alive()
            control.changed.wait(0.05)
            continue
        due = anchor_m + (time.monotonic() - anchor_t) * per_s
        if m >= due:
            time.sleep(_TICK_S)
            continue
        room = session.in_flight - (m - session.answered)
        if room <= 0:
            time.sleep(0.0005)
            continue
        now_ms = int(time.time() * 1000)
        out = []
        for _ in range(min(int(due - m) + 1, _PER_WRITE, room)):
            d, first = m % devices, (m // devices) * per_message
            row, ts = rows[d], last[d]
            items = []
            for k in range(per_message):
                ts = max(ts + 1, now_ms - (per_message - 1 - k) * spacing_ms)
                items.append(row[(first + k) % variants] % (ts, first + k))
            last[d] = ts
            body = items[0] if per_message == 1 else "[" + ",".join(items) + "]"
            out.append(mqtt_wire.publish_qos1(prefixes[d], session.next_id(), body.encode()))
            m += 1
        session.send(b"".join(out))
        counts[0] = m


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--pool", type=Path, required=True, help="JSON: {ids: [...], templates: [[...], ...]}")
    parser.add_argument("--per-message", type=int, default=1)
    parser.add_argument("--username", default="admin", help="MQTT account; its password from $SMARTCITY_MQTT_PASSWORD")
    args = parser.parse_args(argv)
    pool = json.loads(args.pool.read_text())
    TelemetryItem.model_validate_json(pool["templates"][0][0] % (_TS_MARK, 0))  # the contract is the check
    parts = urlsplit(args.url)
    sock, accepted = mqtt_wire.open_connection(
        parts.hostname or "127.0.0.1", parts.port or 1883, args.username,
        os.environ.get("SMARTCITY_MQTT_PASSWORD"), KEEPALIVE_S,
    )  # fmt: skip
    # Under the broker's Receive Maximum (Mosquitto's max_inflight_messages, 1000 in our configuration): a client
    # with more QoS 1 messages in flight is disconnected, and its in-flight messages go with it.
    session = _Session(sock, min(_MAX_IN_FLIGHT, accepted.receive_maximum))
    counts, out_lock = [0], threading.Lock()

    def say(line: dict[str, Any]) -> None:
        with out_lock:
            print(json.dumps(line), flush=True)

    control = _Control()

    def commands() -> None:
        for line in sys.stdin:
            word, _, arg = line.strip().partition(" ")
            if word == "rate":
                control.rate = float(arg)
                control.changed.set()
            elif word == "stat":
                say({"sent": counts[0], "acked": session.acked})
            elif word == "stop":
                break
        control.stopping.set()  # also when the load run went away (stdin closed)

    threading.Thread(target=commands, daemon=True).start()
    say({"ready": len(pool["ids"])})
    _publish(session, pool, args.per_message, control, counts)
    deadline = time.monotonic() + 120
    while session.answered < counts[0] and time.monotonic() < deadline and not session.dropped.is_set():
        session.keep_alive()
        time.sleep(0.01)
    drops = int(session.dropped.is_set())
    if session.reason and drops:
        print(f"load publisher: {session.reason}", file=sys.stderr, flush=True)
    session.close()
    control.stopping.wait()  # the final line answers "stop", also after a drop
    say({"sent": counts[0], "acked": session.acked, "refused": session.refused, "disconnects": drops})
    return 0


class LoadPublisher:
    """The load run's handle on the publisher process. Every answer is one JSON line on its stdout."""

    def __init__(self, url: str, pool: Path, per_message: int, env: dict[str, str]) -> None:
        argv = [sys.executable, "-m", "simulators.load_publisher", "--url", url, "--pool", str(pool),
                "--per-message", str(per_message)]  # fmt: skip
        self.proc = subprocess.Popen(
            argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, preexec_fn=die_with_parent
        )
        self.pid = self.proc.pid
        self._lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self._lock = threading.Lock()  # the rate schedule and the snapshots write from different threads
        threading.Thread(target=self._read, daemon=True).start()
        self._answer(120)  # ready: pool read, connected

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(json.loads(line))

    def _send(self, command: str) -> None:
        assert self.proc.stdin is not None
        with self._lock:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()

    def _answer(self, timeout: float) -> dict[str, Any]:
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"the load publisher did not answer in {timeout:.0f} s") from None

    def rate(self, readings_per_s: float) -> None:
        self._send(f"rate {readings_per_s}")

    def stat(self) -> tuple[int, int]:
        """Messages sent and acknowledged so far (one caller at a time: the answers are not matched)."""
        self._send("stat")
        answer = self._answer(30)
        return int(answer["sent"]), int(answer["acked"])

    def stop(self) -> dict[str, int]:
        """Stop publishing; the final counts once every message is acknowledged (or 120 s have passed)."""
        self._send("stop")
        answer = self._answer(180)
        self.proc.wait(30)
        return {k: int(v) for k, v in answer.items()}

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


if __name__ == "__main__":
    sys.exit(main())
