"""Site correlation: two detectors of one site over their orange level within 60 s confirm a leak."""

from __future__ import annotations

import itertools

from core.contracts.finding import Finding
from rules.engine import Engine
from rules.site import Site, SiteState, correlate
from rules.state import DeviceState
from tests.unit.rules.helpers import DEFAULT, device, reading

ENGINE = Engine(DEFAULT)
[GAS_SITE] = ENGINE.sites


def device_findings(device_id: str, points: list[tuple[float, float]], site: str = "site-a") -> list[Finding]:
    dev, state, out = device(device_id, site=site), DeviceState(), []
    for at, value in points:
        out += ENGINE.evaluate(reading({"ch4_lel": value}, at, device_id), dev, state, 0)
    return [f for f in out if f.rule in GAS_SITE.rules]


def site_run(rule: Site, findings: list[Finding]) -> list[Finding]:
    state, out = SiteState(), []
    for f in findings:
        got = correlate(rule, state, f, 0)
        if got is not None:
            out.append(got)
    return out


def test_two_detectors_within_60_s_confirm_red_and_clear_when_both_are_clean() -> None:
    a = device_findings("gas-a", [(0, 30), (200, 5)])
    b = device_findings("gas-b", [(45, 28), (230, 5)])
    out = site_run(GAS_SITE, sorted(a + b, key=lambda f: f.ts))
    assert [(f.event.value, f.level.value, f.confirmed) for f in out] == [
        ("raised", "red", True),
        ("cleared", "red", True),
    ]
    raised = out[0]
    assert raised.key == "site:site-a:gas.site"
    assert raised.confirms == ["gas-a:gas.ch4", "gas-b:gas.ch4"]
    assert raised.ts == b[0].ts  # the moment the second detector came in
    assert (raised.device_id, raised.site_id, raised.value, raised.threshold) == (None, "site-a", 2.0, 2.0)


def test_one_detector_alone_or_two_far_apart_is_no_site_alarm() -> None:
    a = device_findings("gas-a", [(0, 30), (20, 5)])
    b = device_findings("gas-b", [(200, 30), (220, 5)])
    assert site_run(GAS_SITE, sorted(a + b, key=lambda f: f.ts)) == []
    assert site_run(GAS_SITE, device_findings("gas-c", [(0, 60)])) == []


def test_the_arrival_order_across_devices_does_not_change_the_outcome() -> None:
    """One confirmed alarm whatever the order; its time is when the site condition became known (the second
    device's start in event time), so it may differ by the order of arrival, never by more than the window."""
    a = device_findings("gas-a", [(0, 30), (100, 5)])
    b = device_findings("gas-b", [(50, 30), (120, 5)])
    c = device_findings("gas-c", [(55, 30), (130, 5)])
    for order in itertools.permutations([a, b, c]):
        out = site_run(GAS_SITE, [f for fs in order for f in fs])
        assert [(f.event.value, f.level.value) for f in out] == [("raised", "red"), ("cleared", "red")]
        assert a[0].ts < out[0].ts <= c[0].ts


def test_drill_findings_make_a_drill_site_alarm() -> None:
    dev, state, found = device("gas-a"), DeviceState(), []
    for name in ("gas-a", "gas-b"):
        state = DeviceState()
        found += ENGINE.evaluate(reading({"ch4_lel": 40}, 0, name, drill=True), device(name), state, 0)
    [site] = site_run(GAS_SITE, found)
    assert (site.exercise, site.key) == (True, "drill:site:site-a:gas.site")
    assert dev.id == "gas-a"
