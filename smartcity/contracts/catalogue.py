"""The metric catalogue: names fixed by the design, their units and the device kinds that report them.

The catalogue may grow; a name once published never changes meaning. Telemetry may carry any well-formed metric
name (firmware can report more than we know), but per-device threshold overrides must name a catalogued metric, so
a typo in a registry import cannot silently disable an alarm.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class DeviceKind(StrEnum):
    GAS = "gas"
    WATER = "water"
    FIRE = "fire"
    STRUCTURAL = "structural"


class Level(StrEnum):
    """China's four warning levels, IV (blue) to I (red)."""

    BLUE = "blue"
    YELLOW = "yellow"
    ORANGE = "orange"
    RED = "red"


class Department(StrEnum):
    EMERGENCY = "emergency"
    FIRE = "fire"
    WATER = "water"
    HOUSING = "housing"
    COMMAND = "command"  # the district command centre, where escalations go


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    unit: str
    boolean: bool = False


METRICS: Final[dict[str, Metric]] = {
    m.name: m
    for m in [
        # gas
        Metric("ch4_lel", "%LEL"),
        Metric("co_ppm", "ppm"),
        Metric("h2s_ppm", "ppm"),
        Metric("o2_pct", "%VOL"),
        # water
        Metric("level_m", "m above the gauge datum"),
        Metric("rain_mm_h", "mm/h"),
        # fire
        Metric("temp_c", "°C"),
        Metric("smoke", "", boolean=True),
        Metric("flame", "", boolean=True),
        # structural
        Metric("tilt_deg", "°"),
        Metric("crack_mm", "mm"),
        Metric("displacement_mm", "mm"),
        Metric("strain_ue", "µε"),
        Metric("vibration_mm_s", "mm/s"),
        # health
        Metric("battery_pct", "%"),
        Metric("rssi_dbm", "dBm"),
    ]
}
