"""The load publisher's own CPU per message against a bare Mosquitto (no platform behind it).

    .venv/bin/python scripts/bench-load-publisher.py [RATE ...]      (default: 1 300 3000 12000 messages/s)

A 10,000-device pool of two-value gas readings, one reading per message, QoS 1; each rate for 15 s after 3 s of
warm-up. Prints messages/s, the publisher's CPU (% of a core) and µs per message. Figures: docs/benchmarks.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from core.process import free_port
from harness.measure import cpu_seconds
from simulators.load_publisher import template
from smartcity.stack.services import mosquitto


def _ask(proc: subprocess.Popen[str], command: str) -> dict[str, int]:
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdin.write(command + "\n")
    proc.stdin.flush()
    return dict(json.loads(proc.stdout.readline()))


def main(rates: list[int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        broker = mosquitto(Path(tmp) / "mosquitto", "127.0.0.1", free_port())
        broker.start()
        ids = [f"bench{i:05d}" for i in range(10_000)]
        rows = [[template({"ch4_lel": 1.0 + i % 7, "o2_pct": 20.9}), template({"ch4_lel": 2.0, "o2_pct": 20.8})]
                for i in range(len(ids))]  # fmt: skip
        pool = Path(tmp) / "pool.json"
        pool.write_text(json.dumps({"ids": ids, "templates": rows}))
        try:
            for rate in rates:
                argv = [sys.executable, "-m", "simulators.load_publisher", "--url", broker.url, "--pool", str(pool)]
                proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                assert proc.stdout is not None
                proc.stdout.readline()  # ready
                assert proc.stdin is not None
                proc.stdin.write(f"rate {rate}\n")
                proc.stdin.flush()
                time.sleep(3)
                c0, t0, s0 = cpu_seconds(proc.pid), time.monotonic(), _ask(proc, "stat")
                time.sleep(15)
                c1, t1, s1 = cpu_seconds(proc.pid), time.monotonic(), _ask(proc, "stat")
                final = _ask(proc, "stop")
                proc.wait(30)
                sent = s1["sent"] - s0["sent"]
                print(f"{rate:>6} asked: {sent / (t1 - t0):>7.0f} msgs/s, CPU {100 * (c1 - c0) / (t1 - t0):5.1f} % "
                      f"of a core, {1e6 * (c1 - c0) / max(sent, 1):6.1f} µs/msg; final {final}")  # fmt: skip
        finally:
            broker.process.stop()


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1, 300, 3000, 12000])
