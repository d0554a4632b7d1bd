"""The metric catalogue: names fixed by the design, their units and the device kinds that report them.

The catalogue may grow; a name once published never changes meaning. Telemetry may carry any well-formed metric
name (firmware can report more than we know), but per-device threshold overrides must name a catalogued metric, so
a typo in a registry import cannot silently disable an alarm.

Level order is here too: ``LEVEL_RANK``, the one ranking every part compares levels by (the rules index alarm state
by it, the alerts service escalates and routes by it), and ``misordered``, because two parts check threshold order:
the rule pack's threshold rules (``rules.threshold``) and the registry's per-device overrides
(``core.contracts.device``). Each metric says which
way its alarms go (``Metric.directions``): the registry, which does not know the streams' rule pack, checks a
device's override levels in that direction, and a pack may only let devices override a rule that goes the same way.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Literal


class DeviceKind(StrEnum):
    GAS = "gas"
    WATER = "water"
    FIRE = "fire"
    STRUCTURAL = "structural"


class Level(StrEnum):
    """China's four warning levels, IV (blue) to I (red), declared in that (rising) order."""

    BLUE = "blue"
    YELLOW = "yellow"
    ORANGE = "orange"
    RED = "red"


#: Each level's rank, blue 0 .. red 3: a higher rank is more severe. Ranks start at 0 because the rules index arrays
#: by them (``rules.alarm``: -1 is "no alarm"); compare levels by rank, never by name.
LEVEL_RANK: Final[Mapping[Level, int]] = {level: rank for rank, level in enumerate(Level)}
#: The levels by rank: ``LEVELS[LEVEL_RANK[level]] is level``.
LEVELS: Final[tuple[Level, ...]] = tuple(Level)


class Department(StrEnum):
    EMERGENCY = "emergency"
    FIRE = "fire"
    WATER = "water"
    HOUSING = "housing"
    COMMAND = "command"  # the district command centre, where escalations go


#: Which way a threshold's levels go: ``above``, a higher value is worse (red above orange); ``below``, a lower one.
Direction = Literal["above", "below"]


@dataclass(frozen=True, slots=True)
class Metric:
    """``directions``: the ways its threshold alarms go; two for a metric that is dangerous both low and high
    (oxygen: deficiency below 19.5 %VOL, enrichment above 23.5)."""

    name: str
    unit: str
    boolean: bool = False
    directions: tuple[Direction, ...] = ("above",)


METRICS: Final[dict[str, Metric]] = {
    m.name: m
    for m in [
        # gas
        Metric("ch4_lel", "%LEL"),
        Metric("co_ppm", "ppm"),
        Metric("h2s_ppm", "ppm"),
        Metric("o2_pct", "%VOL", directions=("below", "above")),
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
        Metric("battery_pct", "%", directions=("below",)),
        Metric("rssi_dbm", "dBm", directions=("below",)),
    ]
}


def misordered(levels: Mapping[Level, float], direction: Direction) -> str | None:
    """What is wrong with the order of ``levels`` (level to raise value), or None: each higher warning level must be
    strictly further in ``direction`` than every lower one (``above``: blue < yellow < orange < red), else a reading
    between two of them raises the higher level first (``{"orange": 50, "red": 25}`` raises red at 30)."""
    ordered = sorted(levels.items(), key=lambda item: LEVEL_RANK[item[0]])
    for (low, a), (high, b) in itertools.pairwise(ordered):
        if (b <= a) if direction == "above" else (b >= a):
            return f"level {high} ({b}) must be {direction} level {low} ({a})"
    return None
