"""The judge: what passes a drill and what fails it."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from core.contracts.catalogue import Department, Level
from core.contracts.refusal import RefusalReason
from simulators.hazards import Expected, Truth
from simulators.render import html, text
from simulators.report import Arrival, Refused, judge

LEAK = Truth(
    label="<script>alert(1)</script> leak",
    type="gas_leak",
    at_s=10,
    sites=("site-1",),
    devices=("gas-1", "gas-2"),
    expected=(
        Expected("<script>alert(1)</script> leak", 20, rule="gas.ch4", level=Level.RED,
                 departments=frozenset({Department.EMERGENCY}), devices=("gas-1",)),
        Expected("<script>alert(1)</script> leak", 30, rule="gas.site", level=Level.RED,
                 departments=frozenset({Department.EMERGENCY}), site="site-1"),
    ),
)  # fmt: skip
FAULT = Truth(
    label="garbage",
    type="device_fault",
    at_s=5,
    sites=("site-2",),
    devices=("gas-9",),
    expected=(Expected("garbage", 10, devices=("gas-9",), refusal=RefusalReason.INVALID_JSON),),
)
STARTS = {LEAK.label: 10.0, FAULT.label: 5.0}
HEADER = {"scenario": "t", "title": {"zh": "测", "en": "t"}, "mode": "drill", "seed": 1, "speed": 1, "devices": 3,
          "started_at": "now", "run_s": 60, "messages_sent": 100}  # fmt: skip


def _a(at: float, dept: str, alert: str, event: str, level: str, rule: str, device: str | None = "gas-1",
       site: str = "site-1", exercise: bool = True) -> Arrival:  # fmt: skip
    return Arrival(at, dept, alert, event, Level(level), rule, "gas", device, site, exercise)


GOOD = [
    _a(12, "emergency", "a1", "raised", "orange", "gas.ch4"),
    _a(15, "emergency", "a1", "escalated", "red", "gas.ch4"),
    _a(16, "emergency", "a2", "raised", "orange", "gas.ch4", device="gas-2"),  # related: a neighbour
    _a(18, "emergency", "s1", "raised", "red", "gas.site", device=None),
    _a(140, "command", "a1", "reminder", "red", "gas.ch4"),  # escalation reminders add the command centre
]
REFUSED = [Refused(7, "gas-9", "invalid_json")]


def test_a_drill_where_everything_came_in_time_to_the_right_department_passes() -> None:
    report = judge((LEAK, FAULT), STARTS, GOOD, REFUSED, **HEADER)
    assert report.passed
    first = report.expectations[0]
    assert (first.got_level, first.got_departments, first.late_s) == (Level.RED, ["emergency"], 5.0)
    assert [a.id for a in report.related] == ["a2"]
    assert report.unexpected == []
    assert report.expectations[2].late_s == 2.0


def test_each_way_of_failing() -> None:
    late = [a if a.alert_id != "s1" else _a(45, "emergency", "s1", "raised", "red", "gas.site", None) for a in GOOD]
    report = judge((LEAK,), STARTS, late, [], **HEADER)
    assert not report.passed
    assert report.expectations[1].problem == "came 35.0 s after the hazard began; allowed 30 s"

    wrong = [_a(a.at_s, "water", a.alert_id, a.event, a.level, a.rule, a.device_id) for a in GOOD]
    report = judge((LEAK,), STARTS, wrong, [], **HEADER)
    assert report.expectations[0].problem == "went to water; expected emergency"

    low = [a for a in GOOD if a.event != "escalated"]
    assert judge((LEAK,), STARTS, low, [], **HEADER).expectations[0].problem == "reached orange, not red"
    assert judge((LEAK,), STARTS, [], [], **HEADER).expectations[0].problem == "never arrived"

    stray = [*GOOD, _a(20, "emergency", "x9", "raised", "orange", "gas.ch4", device="gas-77", site="far")]
    report = judge((LEAK,), STARTS, stray, [], **HEADER)
    assert not report.passed
    assert [a.id for a in report.unexpected] == ["x9"]

    real = [*GOOD[:1], _a(15, "emergency", "a1", "escalated", "red", "gas.ch4", exercise=False), *GOOD[2:]]
    report = judge((LEAK,), STARTS, real, [], **HEADER)
    assert report.unexpected[0].problem == "not marked as a drill (exercise=false)"

    report = judge((LEAK, FAULT), STARTS, GOOD, [*REFUSED, Refused(9, "gas-55", "unknown_device")], **HEADER)
    assert not report.passed
    assert report.unexpected_refusals == [(9, "gas-55", "unknown_device")]
    assert not judge((LEAK, FAULT), STARTS, GOOD, [], **HEADER).passed


@given(st.randoms())
@settings(max_examples=50)
def test_the_verdict_does_not_depend_on_the_order_messages_are_noted_in(rnd: random.Random) -> None:
    arrivals = [*GOOD, _a(20, "emergency", "x9", "raised", "orange", "gas.ch4", device="gas-77", site="far")]
    reference = judge((LEAK, FAULT), STARTS, arrivals, REFUSED, **HEADER)
    rnd.shuffle(arrivals)
    assert judge((LEAK, FAULT), STARTS, arrivals, REFUSED, **HEADER) == reference


def test_the_reports_read_in_chinese_and_english_and_escape_what_they_did_not_write() -> None:
    report = judge((LEAK, FAULT), STARTS, GOOD, REFUSED, **HEADER)
    assert "通过 PASS" in text(report)
    page = html(report)
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)" in page
    assert "<svg" in page
    assert "演练 DRILL" in page
    failed = judge((LEAK,), STARTS, [], [], **HEADER)
    assert "未通过 FAIL" in text(failed)
    assert "never arrived" in html(failed)


def test_an_alert_that_went_straight_to_a_higher_level_may_reach_more_departments_never_fewer() -> None:
    orange = Expected("x", 60, rule="water.level", level=Level.ORANGE, departments=frozenset({Department.WATER}),
                      devices=("w-1",))  # fmt: skip
    truth = Truth("x", "typhoon_rain", 0, ("s",), ("w-1",), (orange,))
    red = [Arrival(5, d, "w", "raised", Level.RED, "water.level", "water", "w-1", "s") for d in ("water", "emergency")]
    assert judge((truth,), {"x": 0.0}, red, [], **HEADER).passed
    only_emergency = red[1:]
    report = judge((truth,), {"x": 0.0}, only_emergency, [], **HEADER)
    assert report.expectations[0].problem == "went to emergency; expected water"
