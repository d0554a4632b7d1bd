"""What officers read: Chinese first, English beside, levels with colour and grade, drills unmistakable."""

from __future__ import annotations

import pytest

from alerts.text import body_markdown, body_text, is_drill_marked, subject, title, when
from core.contracts.alert import Acknowledgement, AlertEvent
from core.contracts.catalogue import Level
from core.contracts.finding import Hazard, Text
from tests.unit.alerts.factories import alert

T0 = 1_763_900_000_000  # 2025-11-23 12:13:20 UTC = 20:13:20 in Shanghai


def test_subject_is_chinese_first_with_english_beside() -> None:
    line = subject(alert())
    assert line == "【红色预警 RED】新发 raised: 甲烷浓度超过二级报警值 / Methane above the level-2 alarm"
    assert line.index("红色") < line.index("RED")
    assert line.index("甲烷") < line.index("Methane")


@pytest.mark.parametrize(
    ("event", "words"),
    [
        (AlertEvent.RAISED, "新发 raised"),
        (AlertEvent.ESCALATED, "升级 escalated"),
        (AlertEvent.DEESCALATED, "降级 deescalated"),
        (AlertEvent.REMINDER, "提醒 reminder"),
        (AlertEvent.ACKNOWLEDGED, "已确认 acknowledged"),
        (AlertEvent.CLEARED, "已解除 cleared"),
        (AlertEvent.CLOSED, "已关闭 closed"),
    ],
)
def test_every_event_in_words(event: AlertEvent, words: str) -> None:
    assert words in subject(alert(event=event))


@pytest.mark.parametrize(
    ("level", "words"),
    [
        (Level.BLUE, "蓝色 IV级 / blue (IV)"),
        (Level.YELLOW, "黄色 III级"),
        (Level.ORANGE, "橙色 II级"),
        (Level.RED, "红色 I级"),
    ],
)
def test_levels_have_colour_and_grade(level: Level, words: str) -> None:
    assert words in body_text(alert(level=level))


def test_exercise_title_from_the_lifecycle_is_marked_once() -> None:
    drill = alert(
        exercise=True,
        key="drill:gas-1:gas.ch4",
        title=Text(zh="演练 / DRILL：甲烷浓度超过二级报警值", en="DRILL: Methane above the level-2 alarm"),
    )
    assert is_drill_marked(drill.title)
    line = subject(drill)
    assert line.count("演练") == 1
    assert line.count("DRILL") == 2
    assert "演练" in body_text(drill)
    assert "This is a drill" in body_text(drill)
    assert "演练 DRILL" in body_markdown(drill, None)


def test_exercise_without_prefix_gets_one() -> None:
    drill = alert(exercise=True)
    assert title(drill).zh.startswith("【演练】")
    assert title(drill).en.startswith("[DRILL]")
    assert "演练" in subject(drill)
    assert "DRILL" in subject(drill)


def test_real_alert_never_says_drill() -> None:
    real = alert()
    for text in (subject(real), body_text(real), body_markdown(real, "http://console")):
        assert "演练" not in text
        assert "DRILL" not in text


def test_body_has_the_facts_in_shanghai_time() -> None:
    text = body_text(alert(), console_url="https://console.example/")
    assert "地点 Site: 坪山燃气站 (site-1)" in text
    assert "设备 Device: gas-1" in text
    assert "读数 Reading: ch4_lel = 55 %LEL (阈值 threshold 50 %LEL)" in text
    assert "时间 Time: 2025-11-23 20:13:20 (北京时间 UTC+8)" in text
    assert "https://console.example/?alert=a-1" in text
    assert "未确认 not yet" in text


def test_acknowledgement_in_body() -> None:
    acked = alert(
        event=AlertEvent.ACKNOWLEDGED,
        acknowledged=True,
        acknowledgement=Acknowledgement(by="王值班", note="已派员到场 team on site", at=T0 + 60_000),
    )
    text = body_text(acked)
    assert "确认人 Acknowledged by: 王值班 (2025-11-23 20:14:20" in text
    assert "备注 Note: 已派员到场 team on site" in text


def test_boolean_reading() -> None:
    smoke = alert(hazard=Hazard.FIRE, metric="smoke", value=True, threshold=None)
    assert "读数 Reading: smoke = 是 yes" in body_text(smoke)


def test_markdown_escapes_free_text_and_links_console() -> None:
    md = body_markdown(alert(site_name="站[1](http://evil)"), "http://console:8080")
    assert "\\[1\\](http://evil)" in md
    assert "[查看详情 Open in console](http://console:8080/?alert=a-1)" in md
    assert "<font" not in md
    assert '<font color="warning">' in body_markdown(alert(), None, font_colour=True)


def test_when_is_asia_shanghai() -> None:
    assert when(0) == "1970-01-01 08:00:00 (北京时间 UTC+8)"
