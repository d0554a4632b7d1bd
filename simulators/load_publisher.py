"""The load run's publisher: one MQTT connection as the operator account, a fleet round robin, QoS 1, at a rate the
load run changes while it runs.

It runs as its own process (``python -m simulators.load_publisher``), so its CPU is never counted as the
platform's; ``LoadPublisher`` is the load run's handle on it. It reads a pool file (device ids and, per device, a
few payload templates made by the wire contract's model from the device's healthy baseline), says ``ready``, then
obeys one command a line on stdin:

- ``rate N``: publish N readings/s from now on (0 pauses); a rate it cannot reach is as fast as it can;
- ``stat``: print ``{"sent": messages, "acked": messages}``;
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
import json
import os
import queue
import subprocess
import sys
import threading
import time
from array import array
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from core.contracts import TELEMETRY_TOPIC, TelemetryItem
from core.process import die_with_parent

# paho keys outgoing QoS 1 messages by packet id (1..65535): more outstanding than that overwrite each other.
_MAX_OUTSTANDING = 20_000
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


def _publish(client: mqtt.Client, pool: dict[str, Any], per_message: int, control: _Control, counts: list[int]) -> None:
    """Publish until stopped; ``counts`` is [sent, acked] (acked is counted by paho's thread)."""
    ids: list[str] = pool["ids"]
    rows: list[list[str]] = pool["templates"]
    topics = [TELEMETRY_TOPIC.format(device_id=d) for d in ids]
    devices, variants = len(ids), len(rows[0])
    last = array("q", [0]) * devices
    m, anchor_t, anchor_m, per_s, spacing_ms = 0, time.monotonic(), 0, 0.0, 0
    while not control.stopping.is_set():
        if control.changed.is_set():
            control.changed.clear()
            anchor_t, anchor_m, per_s = time.monotonic(), m, control.rate / per_message
            spacing_ms = min(_MAX_SPACING_MS, int(1000 * devices / control.rate)) if control.rate else 0
        if per_s <= 0:
            control.changed.wait(0.05)
            continue
        due = anchor_m + (time.monotonic() - anchor_t) * per_s
        if m >= due:
            time.sleep(min(0.005, (m + 1 - due) / per_s))
            continue
        while m - counts[1] > _MAX_OUTSTANDING and not control.stopping.is_set():
            time.sleep(0.001)
        now_ms = int(time.time() * 1000)
        for _ in range(min(int(due - m) + 1, 50)):
            d, first = m % devices, (m // devices) * per_message
            row, ts = rows[d], last[d]
            items = []
            for k in range(per_message):
                ts = max(ts + 1, now_ms - (per_message - 1 - k) * spacing_ms)
                items.append(row[(first + k) % variants] % (ts, first + k))
            last[d] = ts
            body = items[0] if per_message == 1 else "[" + ",".join(items) + "]"
            client.publish(topics[d], body.encode(), qos=1)
            m += 1
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
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="", protocol=MQTTProtocolVersion.MQTTv5)
    client.username_pw_set(args.username, os.environ.get("SMARTCITY_MQTT_PASSWORD"))
    # Under the broker's receive maximum (Mosquitto's max_inflight_messages, 1000 in our configuration): a client
    # with more QoS 1 messages in flight is disconnected, and its in-flight messages go with it.
    client.max_inflight_messages_set(500)
    client.max_queued_messages_set(0)
    counts, lock, disconnects, out_lock = [0, 0], threading.Lock(), [0], threading.Lock()

    def on_publish(*_args: object) -> None:
        with lock:
            counts[1] += 1

    def on_disconnect(*_args: object) -> None:
        disconnects[0] += 1

    def say(line: dict[str, Any]) -> None:
        with out_lock:
            print(json.dumps(line), flush=True)

    client.on_publish = on_publish
    client.on_disconnect = on_disconnect
    parts = urlsplit(args.url)
    client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
    client.loop_start()
    control = _Control()

    def commands() -> None:
        for line in sys.stdin:
            word, _, arg = line.strip().partition(" ")
            if word == "rate":
                control.rate = float(arg)
                control.changed.set()
            elif word == "stat":
                say({"sent": counts[0], "acked": counts[1]})
            elif word == "stop":
                break
        control.stopping.set()  # also when the load run went away (stdin closed)

    threading.Thread(target=commands, daemon=True).start()
    say({"ready": len(pool["ids"])})
    _publish(client, pool, args.per_message, control, counts)
    deadline = time.monotonic() + 120
    while counts[1] < counts[0] and time.monotonic() < deadline:
        time.sleep(0.01)
    drops = disconnects[0]
    client.disconnect()
    client.loop_stop()
    say({"sent": counts[0], "acked": counts[1], "disconnects": drops})
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
