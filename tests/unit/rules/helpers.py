"""Small builders for rule tests: devices, readings and a pack made of a few rules."""

from __future__ import annotations

from typing import Any

from core.contracts import ReadingDict
from core.contracts.device import Device
from core.contracts.finding import Finding
from rules.engine import Engine
from rules.pack import RulePack, load_pack, parse_pack
from rules.state import DeviceState

T0 = 1_795_000_000_000
DEFAULT = load_pack()


def device(device_id: str = "gas-001", kind: str = "gas", site: str = "site-a", **extra: Any) -> Device:
    return Device.model_validate(
        {
            "id": device_id,
            "kind": kind,
            "site_id": site,
            "site_name": "坪地化工园 Pingdi chemical park",
            "lat": 22.75,
            "lon": 114.3,
            "interval_s": 10,
            "departments": ["emergency"],
            **extra,
        }
    )


def reading(values: dict[str, float | bool], at_s: float, device_id: str = "gas-001", **extra: Any) -> ReadingDict:
    ts = T0 + int(at_s * 1000)
    r: ReadingDict = {
        "device_id": device_id,
        "ts": ts,
        "seq": None,
        "values": values,
        "drill": False,
        "received_at": ts,
    }
    r.update(extra)  # type: ignore[typeddict-item]
    return r


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
