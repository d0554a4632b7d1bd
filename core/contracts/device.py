"""The device record: who a device is, where, which departments it concerns, and its threshold overrides.

``thresholds`` overrides the rule pack's defaults per device (a water gauge's warning and guaranteed levels, a
structure's tilt limit): ``{metric: {level: value}}`` with catalogued metrics and the four warning levels.

The order of a device's override levels is checked where records come in (``override_problems``: the registry's
PUT and import, and the CSV/YAML reader), not by the model itself: a record stored or published before that check
must still be read (a device whose record could not be read would be unknown, and its readings refused).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from core.contracts.catalogue import METRICS, Department, DeviceKind, Level, misordered
from core.contracts.telemetry import DEVICE_ID_PATTERN, SCHEMA_VERSION

DeviceId = Annotated[str, StringConstraints(pattern=f"^{DEVICE_ID_PATTERN}$")]
SiteId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class Device(BaseModel):
    """One registered device. Coordinates are WGS84 degrees."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = SCHEMA_VERSION
    id: DeviceId
    kind: DeviceKind
    site_id: SiteId
    site_name: Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
    lat: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
    lon: Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]
    interval_s: Annotated[int, Field(ge=1, le=7 * 24 * 3600)] = Field(
        description="expected seconds between readings; silence for 3 x this is an offline alert"
    )
    departments: Annotated[list[Department], Field(min_length=1)]
    thresholds: dict[str, dict[Level, FiniteFloat]] = Field(default_factory=dict)
    meta: dict[str, str] = Field(default_factory=dict, description="free metadata: model, install date, ...")

    @field_validator("thresholds")
    @classmethod
    def _catalogued_metrics(cls, value: dict[str, dict[Level, float]]) -> dict[str, dict[Level, float]]:
        unknown = sorted(set(value) - set(METRICS))
        if unknown:
            raise ValueError(f"unknown metric {', '.join(map(repr, unknown))}; known: {', '.join(sorted(METRICS))}")
        boolean = sorted(name for name in value if METRICS[name].boolean)
        if boolean:
            raise ValueError(f"{', '.join(boolean)} is a boolean metric and takes no threshold")
        return value

    @field_validator("departments")
    @classmethod
    def _no_repeats(cls, value: list[Department]) -> list[Department]:
        return list(dict.fromkeys(value))


def override_problems(thresholds: dict[str, dict[Level, float]]) -> dict[str, str]:
    """Per metric, what is wrong with a device's override levels (none: an empty dict). The levels must be in order
    in the direction the metric's alarms go (``misordered``, the check the rule pack's threshold rules pass). A
    metric whose alarms go both ways (``o2_pct``) takes no override: the streams apply a device's levels to every
    threshold rule of the metric, and against one value for both ways every reading would raise one of them."""
    problems: dict[str, str] = {}
    for metric, levels in thresholds.items():
        directions = METRICS[metric].directions if metric in METRICS else ("above",)
        if len(directions) > 1:
            problems[metric] = (
                f"{metric} alarms both {' and '.join(directions)} (one rule each way); one set of per-device levels "
                "would apply to both, and every reading would raise one of them: it takes no per-device override"
            )
        elif problem := misordered(levels, directions[0]):
            problems[metric] = f"{metric}: {problem}"
    return problems
