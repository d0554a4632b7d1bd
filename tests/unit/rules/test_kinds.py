"""The rule kinds' table: the pack's names are the classes' tags, and the engine runs a kind it was never told of."""

from __future__ import annotations

from typing import ClassVar, Literal

import pytest

from core.contracts import ReadingDict
from core.contracts.catalogue import LEVEL_RANK, Level
from core.contracts.device import Device
from core.contracts.finding import Finding
from rules.alarm import NONE
from rules.engine import Engine
from rules.kinds import RULE_KINDS
from rules.pack import FlapSettings, RulePack
from rules.rule import Context, ValueRule
from rules.state import DeviceState
from tests.unit.rules.helpers import device, reading, run, summary


@pytest.mark.parametrize(("name", "kind"), RULE_KINDS.items())
def test_each_kind_is_tagged_with_its_name_in_the_table(name: str, kind: type) -> None:
    assert kind.model_fields["kind"].default == name
    assert not getattr(kind, "__abstractmethods__", None)


class Negative(ValueRule):
    """A kind made here, outside the table: a value below zero is a blue alarm."""

    sees_late: ClassVar[bool] = True

    kind: Literal["negative"] = "negative"
    metric: str

    @property
    def metrics(self) -> frozenset[str]:
        return frozenset((self.metric,))

    def evaluate(
        self,
        ctx: Context,
        device: Device | None,
        reading: ReadingDict,
        st: DeviceState,
        value: float,
        in_order: bool,
        now: int,
        out: list[Finding],
    ) -> bool:
        if not in_order:
            return False
        change = ctx.step(st, self, LEVEL_RANK[Level.BLUE] if value < 0 else NONE, reading["ts"])
        if change is not None:
            out.append(self.finding(change, device, reading, now, metric=self.metric, value=value))
        return True


def test_the_engine_runs_a_kind_by_its_stage_contract_alone() -> None:
    rule = Negative(id="gas.negative", hazard="gas", title={"zh": "负", "en": "negative"}, source="t", metric="co_ppm")
    engine = Engine(RulePack.model_construct(version=1, name="t", flap=FlapSettings(), rules=[rule]))
    values: list[dict[str, float | bool]] = [{"co_ppm": 1.0}, {"co_ppm": -1.0}, {"co_ppm": -2.0}, {"co_ppm": 0.0}]
    findings = run(engine, [reading(v, i) for i, v in enumerate(values)], device())
    assert summary(findings) == [("gas.negative", "raised", "blue"), ("gas.negative", "cleared", "blue")]
    assert findings[0].key == "gas-001:gas.negative"
