"""The ``alert_events`` line of one alert message (schema in docs/influxdb.md): what the alert archive writes."""

from __future__ import annotations

import re

from alerts.archive import alert_line
from core.contracts.alert import Acknowledgement, Alert, AlertEvent
from core.contracts.catalogue import Department, Level
from core.contracts.finding import Hazard, Text

TS = 1_763_900_000_123


def _alert(**changes: object) -> Alert:
    base: dict[str, object] = dict(
        id="a-1", key="gas-1:gas.ch4", seq=3, event=AlertEvent.ACKNOWLEDGED, level=Level.ORANGE, hazard=Hazard.GAS,
        rule="gas.ch4", device_id="gas-1", site_id="S 1", site_name="坪山燃气站", metric="ch4_lel", value=30,
        threshold=25.0, departments=[Department.EMERGENCY, Department.FIRE], active=True, acknowledged=True,
        acknowledgement=Acknowledgement(by="王警官", note="on site, 2 min", at=TS), exercise=False,
        opened_at=TS - 60_000, updated_at=TS, ts=TS - 5, title=Text(zh="可燃气体浓度超限", en="Gas above limit"),
    )  # fmt: skip
    base.update(changes)
    return Alert.model_validate(base)


def test_alert_line_schema() -> None:
    line = alert_line(_alert())
    assert line == (
        "alert_events,device_id=gas-1,event=acknowledged,"
        "exercise=false,hazard=gas,key=gas-1:gas.ch4,level=orange,rule=gas.ch4,seq=3,site_id=S\\ 1 "
        'acknowledged=true,acknowledged_by="王警官",active=true,alert_id="a-1",closed=false,departments="emergency,fire",'
        'metric="ch4_lel",note="on site, 2 min",threshold=25,title_en="Gas above limit",'
        f'title_zh="可燃气体浓度超限",value=30 {TS}'
    )


def test_alert_line_value_is_always_a_float_and_booleans_are_left_out() -> None:
    assert " value=30," not in alert_line(_alert(value=30))  # never 30i: one type per field, always float
    assert ",value=30 " in alert_line(_alert(value=30))
    smoke = alert_line(_alert(value=True, threshold=True, device_id=None, acknowledgement=None, exercise=True))
    assert "value=" not in smoke
    assert "threshold=" not in smoke
    assert "acknowledged_by" not in smoke
    assert "device_id" not in smoke
    assert ",exercise=true," in smoke


def test_alerts_of_one_key_share_their_series_so_the_series_stay_bounded() -> None:
    """A series per alert message (``alert_id`` as a tag) grew the day's index in influxd's memory; the series of a
    message is now its key, number and state, so the next alert of a key writes into the series of the one before."""

    def series(line: str) -> str:  # measurement and tags: up to the first space not escaped
        return re.split(r"(?<!\\) ", line, maxsplit=1)[0]

    first, second = alert_line(_alert(id="a-1")), alert_line(_alert(id="a-2", updated_at=TS + 600_000))
    assert series(first) == series(second)
    assert series(first).endswith(",site_id=S\\ 1")
    assert 'alert_id="a-1"' in first
    assert 'alert_id="a-2"' in second
    assert series(alert_line(_alert(seq=4))) != series(first)  # one alert's messages stay apart
