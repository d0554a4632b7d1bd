"""The routing table: which departments an alert goes to, when it escalates, and what inhibits what.

A YAML file (``alerts/routing.yaml`` is the default, from design.md), validated with pydantic: a bad file is a
``RoutingError`` that names the file and the field. Every route that matches adds its departments (Alertmanager's
``continue: true``): a red fire goes to fire *and* emergency. ``own_departments`` routes to the departments the device
was registered with (device health alerts). An alert no route matches still goes to the device's own departments,
so nothing is ever routed nowhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.contracts.catalogue import LEVEL_RANK, Department, Level
from core.contracts.finding import Hazard
from core.errors import SmartCityError
from core.yamlfile import read_yaml

DEFAULT_ROUTING = Path(__file__).with_name("routing.yaml")


class RoutingError(SmartCityError):
    """The routing file cannot be used; the message names the file and the field."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Route(_Frozen):
    hazard: Hazard | None = Field(None, description="None: every hazard")
    min_level: Level = Level.BLUE
    rule: str | None = Field(None, description="only this rule")
    departments: list[Department] = Field(default_factory=list)
    own_departments: bool = Field(False, description="also the departments the device is registered with")

    def matches(self, hazard: Hazard, level: Level, rule: str) -> bool:
        return (
            (self.hazard is None or self.hazard == hazard)
            and LEVEL_RANK[level] >= LEVEL_RANK[self.min_level]
            and (self.rule is None or self.rule == rule)
        )


class Escalation(_Frozen):
    after_s: Annotated[float, Field(gt=0)] = Field(description="first reminder this long after raised, if unacked")
    repeat_s: Annotated[float, Field(gt=0)] = Field(description="then again at this interval")
    add: list[Department] = Field(default_factory=lambda: [Department.COMMAND])


class Family(_Frozen):
    """Alerts of these hazards may be one event: at one site, within ``radius_m`` of each other, or (``per_device``)
    of one device only."""

    hazards: Annotated[list[Hazard], Field(min_length=1)]
    radius_m: Annotated[float, Field(ge=0, le=100_000)] = 500.0
    per_device: bool = Field(False, description="only alerts of one device are one event (device faults)")


def _default_families() -> dict[str, Family]:
    return {
        "gas": Family(hazards=[Hazard.GAS], radius_m=500),
        "fire": Family(hazards=[Hazard.FIRE], radius_m=300),
        "water": Family(hazards=[Hazard.WATER], radius_m=30_000),
        "structural": Family(hazards=[Hazard.STRUCTURAL], radius_m=300),
        "device": Family(hazards=[Hazard.DEVICE], per_device=True),
    }


class IncidentRules(_Frozen):
    """How alerts become incidents, and how often an incident speaks (docs/alerts.md, "Incidents")."""

    window_s: Annotated[float, Field(ge=0, le=7 * 86400)] = Field(
        1800, description="an alert joins an incident one of whose linked members was active this long before"
    )
    group_wait_s: Annotated[float, Field(ge=0, le=3600)] = Field(
        10, description="the first message waits this long for more members (never for a red member)"
    )
    group_interval_s: Annotated[float, Field(ge=0, le=86400)] = Field(
        60, description="changes of level below red and of membership: at most one message this often"
    )
    max_members: Annotated[int, Field(ge=2, le=5000)] = Field(
        500,
        description="an incident holds at most this many alerts; beyond, a linked alert starts a new one (the whole "
        "incident is one saved record and its members one message's worth of summary)",
    )
    families: dict[str, Family] = Field(default_factory=_default_families)

    @model_validator(mode="after")
    def _each_hazard_once(self) -> Self:
        seen: dict[Hazard, str] = {}
        for name, family in self.families.items():
            for hazard in family.hazards:
                if hazard in seen:
                    raise ValueError(f"hazard {hazard.value} is in families {seen[hazard]!r} and {name!r}")
                seen[hazard] = name
        missing = [h.value for h in Hazard if h not in seen]
        if missing:
            raise ValueError(f"every hazard needs a family; missing: {', '.join(missing)}")
        return self

    def family_of(self, hazard: Hazard) -> tuple[str, Family]:
        return next((name, f) for name, f in self.families.items() if hazard in f.hazards)


class Inhibit(_Frozen):
    offline_rules: list[str] = Field(default_factory=lambda: ["device.offline"])
    site_absorbs: bool = True


def _default_escalation() -> dict[Level, Escalation]:
    return {
        level: Escalation(after_s=120 if level == Level.RED else 600, repeat_s=120 if level == Level.RED else 600)
        for level in Level
    }


class RoutingTable(_Frozen):
    version: Literal[1] = 1
    routes: list[Route]
    escalation: dict[Level, Escalation] = Field(default_factory=_default_escalation)
    inhibit: Inhibit = Field(default_factory=Inhibit)
    incidents: IncidentRules = Field(default_factory=IncidentRules)

    def departments(
        self, hazard: Hazard, level: Level, rule: str, own: list[Department], escalations: int = 0
    ) -> list[Department]:
        """The departments for an alert now, in a stable order (escalation adds the policy's departments)."""
        chosen: list[Department] = []
        for route in self.routes:
            if route.matches(hazard, level, rule):
                chosen.extend(route.departments)
                if route.own_departments:
                    chosen.extend(own)
        if not chosen:
            chosen.extend(own)
        if escalations > 0:
            chosen.extend(self.policy(level).add)
        return list(dict.fromkeys(chosen))

    def policy(self, level: Level) -> Escalation:
        return self.escalation.get(level) or _default_escalation()[level]


def load_routing(path: Path | None = None) -> RoutingTable:
    source = path or DEFAULT_ROUTING
    data = read_yaml(source, RoutingError)
    try:
        return RoutingTable.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}" for err in exc.errors())
        raise RoutingError(f"{source}: {problems}") from exc
