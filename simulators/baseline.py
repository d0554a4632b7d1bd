"""What a healthy device reports: realistic baselines with noise, daily cycles, slow drift and battery drain.

Each device draws its own constants (base values, drift, battery) from a generator seeded with the fleet's seed
and its id, and its noise from a second generator stepped once per reading; so a device's readings depend only on
the seed, its id and the times it is asked for, never on how many other devices there are or in which order they
are asked.

The numbers are plausible for field sensors and quiet enough that a healthy fleet raises no alert under the default
rule pack (the alert-quality run measures exactly that): gas detectors read a little methane and CO noise around
zero, gauges sit on their base level, indoor heat detectors follow the day by a degree or two, structures breathe
with temperature by a few thousandths of a degree, batteries lose a fraction of a percent a day.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

DAY_S = 86_400.0
_UTC_OFFSET_H = 8  # Asia/Shanghai: the daily cycle follows local time


def diurnal(ts_ms: int, peak_hour: float = 15.0) -> float:
    """-1..1 over the local day, 1 at ``peak_hour``."""
    hour = (ts_ms / 3_600_000 + _UTC_OFFSET_H) % 24
    return math.cos(2 * math.pi * (hour - peak_hour) / 24)


@dataclass
class Baseline:
    """One device's healthy behaviour. ``metrics`` are the ones it reports besides battery and RSSI; a ``dry`` gauge
    (an underpass) reads the depth of water on the road, zero when dry, instead of a river's level."""

    device_id: str
    metrics: tuple[str, ...]
    seed: int
    dry: bool = False
    base: dict[str, float] = field(init=False)
    drift_per_day: dict[str, float] = field(init=False)
    battery_start: float = field(init=False)
    battery_drain_per_day: float = field(init=False)
    rssi_base: float = field(init=False)
    noise: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        draw = random.Random(f"{self.seed}:{self.device_id}:constants")
        self.noise = self.new_noise()
        self.base = {
            "ch4_lel": draw.uniform(0.2, 1.5),
            "co_ppm": draw.uniform(0.5, 3.0),
            "h2s_ppm": draw.uniform(0.0, 0.3),
            "o2_pct": draw.uniform(20.8, 20.95),
            "level_m": 0.0 if self.dry else draw.uniform(1.0, 2.5),
            "temp_c": draw.uniform(23.0, 27.0),
            "tilt_deg": draw.uniform(0.01, 0.05),
            "displacement_mm": draw.uniform(0.0, 5.0),
            "crack_mm": draw.uniform(0.1, 0.4),
            "strain_ue": draw.uniform(50.0, 150.0),
        }
        self.drift_per_day = {
            "ch4_lel": draw.uniform(0.0, 0.3),  # catalytic sensors drift up until recalibrated
            "tilt_deg": draw.uniform(0.0, 0.001),
            "displacement_mm": draw.uniform(0.0, 0.2),  # ordinary settlement, far below 3 mm/day
        }
        self.battery_start = draw.uniform(60.0, 100.0)
        self.battery_drain_per_day = draw.uniform(0.05, 0.5)
        self.rssi_base = draw.uniform(-95.0, -60.0)

    def battery(self, t_s: float) -> float:
        return max(0.0, self.battery_start - self.battery_drain_per_day * t_s / DAY_S)

    def new_noise(self) -> random.Random:
        """A fresh noise generator: the same readings again from the start."""
        return random.Random(f"{self.seed}:{self.device_id}:noise")

    def values(self, t_s: float, ts_ms: int, noise: random.Random | None = None) -> dict[str, float | bool]:
        """The reading at ``t_s`` seconds into the run (drift, drain) and event time ``ts_ms`` (the daily cycle).
        ``noise`` (from ``new_noise``) for a reproducible sequence; by default the device's own, which goes on."""
        gauss, days, day = (noise or self.noise).gauss, t_s / DAY_S, diurnal(ts_ms)
        out: dict[str, float | bool] = {}
        for metric in self.metrics:
            base = self.base.get(metric, 0.0) + self.drift_per_day.get(metric, 0.0) * days
            if metric == "ch4_lel":
                value: float | bool = max(0.0, base + gauss(0, 0.3))
            elif metric == "co_ppm":
                value = max(0.0, base + gauss(0, 0.4))
            elif metric == "h2s_ppm":
                value = max(0.0, base + gauss(0, 0.05))
            elif metric == "o2_pct":
                value = base + gauss(0, 0.05)
            elif metric == "level_m":
                value = max(0.0, base + gauss(0, 0.003 if self.dry else 0.005))
            elif metric == "rain_mm_h":
                value = max(0.0, gauss(0, 0.3))
            elif metric == "temp_c":
                value = base + 1.5 * day + gauss(0, 0.1)
            elif metric == "tilt_deg":
                value = base + 0.003 * day + gauss(0, 0.001)  # thermal breathing of the structure
            elif metric == "displacement_mm":
                value = base + gauss(0, 0.05)
            elif metric == "crack_mm":
                value = max(0.0, base + 0.01 * day + gauss(0, 0.005))
            elif metric == "strain_ue":
                value = base + 20 * day + gauss(0, 2)
            elif metric == "vibration_mm_s":
                value = abs(gauss(0.3 + 0.2 * max(0.0, day), 0.15))  # traffic by day
            elif metric in ("smoke", "flame"):
                value = False
            else:
                raise ValueError(f"no baseline for metric {metric!r}")
            out[metric] = round(value, 4) if isinstance(value, float) else value
        out["battery_pct"] = round(self.battery(t_s), 1)
        out["rssi_dbm"] = float(round(self.rssi_base + gauss(0, 2)))
        return out
