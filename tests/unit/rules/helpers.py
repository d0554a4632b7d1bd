"""Small builders for rule tests: devices and readings on the rule tests' clock and site (made by
``harness.builders``), and a pack made of a few rules."""

from __future__ import annotations

from typing import Any

from core.contracts import ReadingDict
from core.contracts.device import Device
from core.contracts.finding import Finding
from harness import builders
from rules.engine import Engine
from rules.pack import RulePack, load_pack, parse_pack
from rules.state import DeviceState

T0 = 1_795_000_000_000
DEFAULT = load_pack()


def device(device_id: str = "gas-001", kind: str = "gas", site: str = "site-a", **knobs: Any) -> Device:
    """A device at the Pingdi chemical park expecting a reading every 10 s (offline after 30 s of silence)."""
    defaults: dict[str, Any] = {
        "site_name": "坪地化工园 Pingdi chemical park",
        "lat": 22.75,
        "lon": 114.3,
        "interval_s": 10,
    }
    return builders.device(device_id, kind, site=site, **(defaults | knobs))


def reading(values: dict[str, float | bool], at_s: float, device_id: str = "gas-001", **knobs: Any) -> ReadingDict:
    """A reading stamped ``at_s`` seconds after ``T0`` (and received then, unless ``received_at`` says otherwise)."""
    return builders.reading(device_id, values, ts=T0 + int(at_s * 1000), **knobs)


def pack_of(*rules: dict[str, Any], flap: dict[str, Any] | None = None) -> RulePack:
    base = {"hazard": "gas", "title": {"zh": "测试", "en": "test"}, "source": "test"}
    data: dict[str, Any] = {"version": 1, "name": "test", "rules": [{**base, **r} for r in rules]}
    if flap is not None:
        data["flap"] = flap
    return parse_pack(data, "test.yaml")


def run(
    engine: Engine, readings: list[ReadingDict], dev: Device | None, state: DeviceState | None = None
) -> list[Finding]:
    state = state if state is not None else DeviceState()
    out: list[Finding] = []
    for r in readings:
        out.extend(engine.evaluate(r, dev, state, r["received_at"]))
    return out


def summary(findings: list[Finding]) -> list[tuple[str, str, str]]:
    return [(f.rule, f.event.value, f.level.value) for f in findings]
