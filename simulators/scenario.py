"""Scenario files: a fleet, hazards placed on it, and the ground truth each hazard must produce.

A scenario is YAML (``simulators/scenarios/*.yaml`` are the bundled ones; docs/simulators.md describes every
field). ``load_scenario`` validates it completely before anything runs and raises ``ScenarioError`` naming the file
and the field of each problem, e.g. ``gas-leak.yaml: hazards[0] (gas_leak) field 'wind.from_deg': Input should be
less than or equal to 360``.

Times: ``at_s``, ``duration_s`` and the hazards' own durations are *scenario* seconds, which a drill plays at
``speed`` scenario seconds per wall second (event times in the readings follow the scenario clock, ending at the
wall clock). An expectation's ``within_s`` is *wall* seconds after its hazard began: how long an officer waits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.contracts.catalogue import Department, DeviceKind, Level
from core.contracts.finding import Text
from core.contracts.refusal import RefusalReason
from core.errors import SmartCityError
from core.yamlfile import read_yaml
from simulators.fleet import SiteType

SCENARIOS_DIR = Path(__file__).with_name("scenarios")

Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class ScenarioError(SmartCityError):
    """A scenario file that cannot be run; the message names the file and each bad field."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ExpectAlert(_Model):
    """An alert officers must get: its rule, at least this level, at exactly these departments, in time."""

    rule: str
    level: Level
    departments: Annotated[list[Department], Field(min_length=1)]
    where: Literal["source", "site", "any", "each"] = Field(
        "any",
        description="source: the hazard's first device; site: a site alert; any: one of the devices the hazard "
        "drives (a typhoon's target gauges, a leak's site); each: every one of them",
    )
    within_s: Positive


class ExpectRefusal(_Model):
    """A refusal the faulty device must be told about on ``devices/{id}/errors``."""

    refusal: RefusalReason
    within_s: Positive


Expectation = ExpectAlert | ExpectRefusal


class _Hazard(_Model):
    label: str | None = Field(None, description="a name for the report; default: type and position in the file")
    at_s: Seconds
    expect: list[Expectation] = Field(default_factory=list)


class Wind(_Model):
    from_deg: Annotated[float, Field(ge=0, le=360)] = Field(description="where the wind blows from, as on a compass")
    speed_m_s: Positive


class GasLeak(_Hazard):
    """A leak at one detector of a gas site, spreading downwind to its neighbours."""

    type: Literal["gas_leak"]
    site_type: Literal[SiteType.CHEMICAL_PARK, SiteType.GAS_STATION, SiteType.GAS_VALVE] = SiteType.CHEMICAL_PARK
    site: Annotated[int, Field(ge=0)] = 0
    source: Annotated[int, Field(ge=0)] | None = Field(
        None, description="which detector of the site leaks; default: the one with a neighbour best downwind"
    )
    peak_lel: Annotated[float, Field(gt=0, le=100)] = 70.0
    ramp_s: Positive = 30.0
    lasts_s: Positive | None = Field(None, description="then the leak is stopped and the gas disperses")
    spread_m: Positive = Field(40.0, description="distance over which the plume halves")
    wind: Wind = Wind(from_deg=135, speed_m_s=2.0)


class GaugeTarget(_Model):
    site_type: Literal[SiteType.RIVER_GAUGE, SiteType.UNDERPASS] = SiteType.RIVER_GAUGE
    reach: Literal["warning", "guaranteed"] = Field(description="warning (警戒) or guaranteed (保证) level")


class TyphoonRain(_Hazard):
    """Typhoon rainfall: rain over the district, and the named gauges rising past their levels."""

    type: Literal["typhoon_rain"]
    peak_rain_mm_h: Positive = 80.0
    rise_s: Positive = Field(600.0, description="scenario seconds for a gauge to reach its target")
    gauges: Annotated[list[GaugeTarget], Field(min_length=1)]


class HighRiseFire(_Hazard):
    """A fire on one floor of a high-rise: smoke at one detector, then heat rising there."""

    type: Literal["high_rise_fire"]
    site: Annotated[int, Field(ge=0)] = 0
    detector: Annotated[int, Field(ge=0)] = 0
    heat_after_s: Seconds = 20.0
    heat_rise_c_per_min: Positive = 12.0
    peak_c: Positive = 90.0


class StructureTilt(_Hazard):
    """A structure tilting slowly (a pit wall yielding, a foundation settling) until it passes its limits."""

    type: Literal["structure_tilt"]
    site_type: Literal[SiteType.BRIDGE, SiteType.EXCAVATION, SiteType.OLD_BUILDING] = SiteType.OLD_BUILDING
    site: Annotated[int, Field(ge=0)] = 0
    device: Annotated[int, Field(ge=0)] = 0
    rate_deg_per_h: Positive = 2.0
    peak_deg: Positive = 1.0


class DeviceFault(_Hazard):
    """A device misbehaving: it goes offline, its battery goes flat, it sticks, spikes, sends malformed messages,
    or its clock runs ahead."""

    type: Literal["device_fault"]
    fault: Literal["offline", "flat_battery", "stuck", "spikes", "malformed", "clock_skew"]
    kind: DeviceKind
    device: Annotated[int, Field(ge=0)] = Field(0, description="which device of that kind, in fleet order")
    battery_pct: Annotated[float, Field(ge=0, le=100)] = Field(12.0, description="flat_battery: the level it drops to")
    spike: dict[str, float] = Field(default_factory=dict, description="spikes: metric -> value of each spike")
    every_s: Positive = Field(30.0, description="spikes, malformed: one every so many scenario seconds")
    skew_s: float = Field(600.0, description="clock_skew: how far ahead the device's clock runs")

    @model_validator(mode="after")
    def _needs(self) -> DeviceFault:
        if self.fault == "spikes" and not self.spike:
            raise ValueError("a spikes fault needs `spike`: the metrics and values of the spikes")
        return self


Hazard = Annotated[GasLeak | TyphoonRain | HighRiseFire | StructureTilt | DeviceFault, Field(discriminator="type")]


class FleetSpec(_Model):
    devices: Annotated[int, Field(ge=9, le=200_000)] = Field(60, description="at least one site of each type")
    interval_s: Annotated[int, Field(ge=1, le=3600)] = 5
    seed: int | None = Field(None, description="default: the scenario's seed")


class Scenario(_Model):
    version: Literal[1]
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,40}$")]
    title: Text
    description: str = ""
    seed: int = 1
    fleet: FleetSpec = FleetSpec()
    duration_s: Positive
    speed: Annotated[float, Field(ge=1, le=3600)] = 1.0
    settle_s: Seconds = Field(10.0, description="wall seconds to keep listening after the last reading")
    hazards: list[Hazard] = Field(default_factory=list)

    @model_validator(mode="after")
    def _inside(self) -> Scenario:
        for i, hazard in enumerate(self.hazards):
            if hazard.at_s >= self.duration_s:
                raise ValueError(
                    f"hazards[{i}] starts at {hazard.at_s} s, after the scenario ends ({self.duration_s} s)"
                )
        return self

    def label(self, index: int) -> str:
        hazard = self.hazards[index]
        return hazard.label or f"{hazard.type}#{index}"


def parse_scenario(data: Any, source: str, known_rules: set[str] | None = None) -> Scenario:
    """Validate; with ``known_rules``, every expected rule id must be one of them."""
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError("\n".join(_problems(exc, data, source))) from None
    if known_rules is not None:
        unknown = [
            f"{source}: {scenario.label(i)} field 'expect[{k}].rule': unknown rule {e.rule!r}"
            for i, h in enumerate(scenario.hazards)
            for k, e in enumerate(h.expect)
            if isinstance(e, ExpectAlert) and e.rule not in known_rules
        ]
        if unknown:
            raise ScenarioError("\n".join(unknown))
    return scenario


def load_scenario(path: Path, known_rules: set[str] | None = None) -> Scenario:
    """A scenario by path, or by the name of a bundled one (``gas-leak``)."""
    if not path.suffix and not path.exists():
        bundled = SCENARIOS_DIR / f"{path.name}.yaml"
        if not bundled.exists():
            names = ", ".join(sorted(p.stem for p in SCENARIOS_DIR.glob("*.yaml")))
            raise ScenarioError(f"{path}: no such file, and no bundled scenario of that name (bundled: {names})")
        path = bundled
    return parse_scenario(read_yaml(path, ScenarioError), path.name, known_rules)


def bundled() -> list[Path]:
    return sorted(SCENARIOS_DIR.glob("*.yaml"))


def _problems(exc: ValidationError, data: Any, source: str) -> list[str]:
    out = []
    for error in exc.errors(include_url=False):
        loc = list(error["loc"])
        where = ""
        if len(loc) >= 2 and loc[0] == "hazards" and isinstance(loc[1], int):
            hazards = data.get("hazards") if isinstance(data, dict) else None
            item = hazards[loc[1]] if isinstance(hazards, list) and loc[1] < len(hazards) else None
            tag = item.get("type") if isinstance(item, dict) else None
            where = f" hazards[{loc[1]}]" + (f" ({tag})" if isinstance(tag, str) else "")
            loc = loc[2:]
            if loc and loc[0] == tag:
                loc = loc[1:]  # the discriminator's tag, not a field
        field = ".".join(str(p) for p in loc if p not in ("ExpectAlert", "ExpectRefusal"))
        if not field and error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            field = "type"
        msg = error["msg"].removeprefix("Value error, ")
        out.append(f"{source}:{where} field {field!r}: {msg}" if field else f"{source}:{where} {msg}")
    return out
