"""The device record: who a device is, where, which departments it concerns, and its threshold overrides.

``thresholds`` overrides the rule pack's defaults per device (a water gauge's warning and guaranteed levels, a
structure's tilt limit): ``{metric: {level: value}}`` with catalogued metrics and the four warning levels.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from smartcity.contracts.catalogue import METRICS, Department, DeviceKind, Level
from smartcity.contracts.telemetry import DEVICE_ID_PATTERN, SCHEMA_VERSION

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
