"""What a person reads about an alert: e-mail subjects and bodies, and the markdown group robots post.

Guarantees, because duty officers act on these words:

- Chinese first, English beside it, on every line (``红色预警 RED``, ``升级 escalated``), so an officer reads their
  own language first and a foreign engineer can still follow.
- The level always comes with its colour and its Roman grade (``红色 I级 / red (I)``): China's warning levels are
  named both ways in the field.
- A drill can never be mistaken for a real event: every subject, body and robot post of an exercise alert says
  ``演练 DRILL``. The alert's title already starts with the drill prefix when it is an exercise; the marker is added
  only when it is missing, so it is visible exactly once.
- Times are shown in Asia/Shanghai (the district's clock), never in UTC or the server's zone.
- Nothing here talks to the network: the same text goes through every channel, and tests read it directly.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo

from core.contracts.alert import DRILL_PREFIX, Alert, AlertEvent
from core.contracts.catalogue import METRICS, Level
from core.contracts.finding import Text

logger = logging.getLogger(__name__)

TZ: Final = ZoneInfo("Asia/Shanghai")

LEVELS: Final[dict[Level, Text]] = {
    Level.BLUE: Text(zh="蓝色", en="BLUE"),
    Level.YELLOW: Text(zh="黄色", en="YELLOW"),
    Level.ORANGE: Text(zh="橙色", en="ORANGE"),
    Level.RED: Text(zh="红色", en="RED"),
}
GRADES: Final[dict[Level, str]] = {Level.BLUE: "IV", Level.YELLOW: "III", Level.ORANGE: "II", Level.RED: "I"}
EVENTS: Final[dict[AlertEvent, Text]] = {
    AlertEvent.RAISED: Text(zh="新发", en="raised"),
    AlertEvent.ESCALATED: Text(zh="升级", en="escalated"),
    AlertEvent.DEESCALATED: Text(zh="降级", en="deescalated"),
    AlertEvent.REMINDER: Text(zh="提醒", en="reminder"),
    AlertEvent.ACKNOWLEDGED: Text(zh="已确认", en="acknowledged"),
    AlertEvent.CLEARED: Text(zh="已解除", en="cleared"),
    AlertEvent.CLOSED: Text(zh="已关闭", en="closed"),
}
DRILL_NOTICE: Final = Text(zh="本消息为演练，不是真实事件", en="This is a drill, not a real event")
_NOTE_MAX: Final = 200  # an acknowledgement note is free text; robots limit a post's size


def is_drill_marked(title: Text) -> bool:
    """Whether a title already names the drill in both languages (in its first few characters)."""
    return DRILL_PREFIX.zh in title.zh[:8] and DRILL_PREFIX.en.lower() in title.en[:12].lower()


def title(alert: Alert) -> Text:
    """The alert's title, with the drill prefix added only when an exercise title lacks it."""
    if alert.exercise and not is_drill_marked(alert.title):
        return Text(zh=f"【{DRILL_PREFIX.zh}】{alert.title.zh}", en=f"[{DRILL_PREFIX.en}] {alert.title.en}")
    return alert.title


def level_words(level: Level) -> str:
    """``红色 I级 / red (I)``."""
    return f"{LEVELS[level].zh} {GRADES[level]}级 / {level.value} ({GRADES[level]})"


def subject(alert: Alert) -> str:
    """One line: ``【红色预警 RED】新发 raised: 甲烷超限 / Methane high``; drills say 演练 DRILL in the title."""
    name = LEVELS[alert.level]
    event = EVENTS[alert.event]
    text = title(alert)
    return f"【{name.zh}预警 {name.en}】{event.zh} {event.en}: {text.zh} / {text.en}"


def when(epoch_ms: int) -> str:
    """``2025-11-23 20:13:20 (北京时间 UTC+8)``."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=TZ)
    return f"{moment:%Y-%m-%d %H:%M:%S} (北京时间 UTC+8)"


def _number(value: float | bool) -> str:
    if isinstance(value, bool):
        return "是 yes" if value else "否 no"
    return f"{value:g}"


def reading(alert: Alert) -> str | None:
    """``ch4_lel = 55 %LEL (阈值 threshold 50 %LEL)``, or None when the alert has no metric."""
    if alert.metric is None or alert.value is None:
        return None
    metric = METRICS.get(alert.metric)
    unit = f" {metric.unit}" if metric is not None and metric.unit else ""
    line = f"{alert.metric} = {_number(alert.value)}{unit}"
    if alert.threshold is not None:
        line += f" (阈值 threshold {_number(alert.threshold)}{unit})"
    return line


def console_link(alert: Alert, console_url: str) -> str:
    """The duty console's page of this alert (the console is served at ``/`` and opens ``?alert=<id>``)."""
    return f"{console_url.rstrip('/')}/?alert={alert.id}"


def _state(alert: Alert) -> str:
    parts = ["仍在持续 active" if alert.active else "已恢复 condition ended"]
    if alert.confirmed:
        parts.append("已证实 confirmed")
    if alert.flapping:
        parts.append("状态反复 flapping")
    if alert.closed:
        parts.append("已关闭 closed")
    return ", ".join(parts)


def _fields(alert: Alert, console_url: str | None) -> list[tuple[str, str]]:
    """(label, value) pairs shared by the plain-text and the markdown bodies, in reading order."""
    event = EVENTS[alert.event]
    rows: list[tuple[str, str]] = [
        ("级别 Level", level_words(alert.level)),
        ("事件 Event", f"{event.zh} / {event.en}"),
        ("状态 State", _state(alert)),
    ]
    if alert.site_name or alert.site_id:
        site = alert.site_name or alert.site_id or ""
        if alert.site_name and alert.site_id:
            site = f"{alert.site_name} ({alert.site_id})"
        rows.append(("地点 Site", site))
    if alert.lat is not None and alert.lon is not None:
        rows.append(("坐标 Position", f"{alert.lat:.6f}, {alert.lon:.6f}"))
    if alert.device_id:
        rows.append(("设备 Device", alert.device_id))
    value = reading(alert)
    if value:
        rows.append(("读数 Reading", value))
    rows.append(("时间 Time", when(alert.ts)))
    if alert.opened_at != alert.ts:
        rows.append(("首发 Opened", when(alert.opened_at)))
    if alert.escalations:
        rows.append(("提醒次数 Reminders", str(alert.escalations)))
    ack = alert.acknowledgement
    if ack is not None:
        note = ack.note if len(ack.note) <= _NOTE_MAX else ack.note[: _NOTE_MAX - 1] + "…"
        rows.append(("确认人 Acknowledged by", f"{ack.by} ({when(ack.at)})"))
        if note:
            rows.append(("备注 Note", note))
    elif alert.open:
        rows.append(("确认 Acknowledged", "未确认 not yet"))
    if alert.closed_by:
        rows.append(("关闭人 Closed by", alert.closed_by))
    rows.append(("编号 Alert", f"{alert.id} #{alert.seq}"))
    if console_url:
        rows.append(("查看 Console", console_link(alert, console_url)))
    return rows


def body_text(alert: Alert, console_url: str | None = None) -> str:
    """The plain-text body of an e-mail: subject line, then one ``label: value`` line per fact."""
    text = title(alert)
    lines = [subject(alert), "", text.zh, text.en, ""]
    if alert.exercise:
        lines += [f"*** {DRILL_PREFIX.zh} {DRILL_PREFIX.en}: {DRILL_NOTICE.zh} / {DRILL_NOTICE.en} ***", ""]
    lines += [f"{label}: {value}" for label, value in _fields(alert, console_url)]
    lines += ["", "-- SmartCity 城市安全预警 / hazard alerting"]
    return "\n".join(lines) + "\n"


_MD_COLOURS: Final[dict[Level, str]] = {
    # WeCom's markdown knows three font colours (info green, comment grey, warning orange-red). DingTalk documents
    # no font tag, so its posts go without; the words carry the level either way.
    Level.BLUE: "comment",
    Level.YELLOW: "warning",
    Level.ORANGE: "warning",
    Level.RED: "warning",
}


def _md_escape(value: str) -> str:
    """Keep free text (site names, notes) from opening markdown links or emphasis in a robot post."""
    for char in "\\`*_[]<>":
        value = value.replace(char, "\\" + char)
    return value


def body_markdown(alert: Alert, console_url: str | None, *, font_colour: bool = False) -> str:
    """The markdown a WeCom or DingTalk group robot posts: the subset both render (headings, bold, quotes, links).

    Paragraphs are separated by blank lines, because DingTalk's markdown joins single newlines into one line.
    ``font_colour`` wraps the heading in WeCom's ``<font color=...>`` tag (WeCom only).
    """
    name = LEVELS[alert.level]
    text = title(alert)
    head = f"{name.zh}预警 {name.en} · {EVENTS[alert.event].zh} {EVENTS[alert.event].en}"
    heading = f'<font color="{_MD_COLOURS[alert.level]}">【{head}】</font>' if font_colour else f"【{head}】"
    lines = [
        f"### {heading}",
        f"**{_md_escape(text.zh)}**",
        _md_escape(text.en),
    ]
    if alert.exercise:
        lines.append(f"> **{DRILL_PREFIX.zh} {DRILL_PREFIX.en}**: {DRILL_NOTICE.zh} / {DRILL_NOTICE.en}")
    for label, value in _fields(alert, None):
        lines.append(f"> {label}: {_md_escape(value)}")
    if console_url:
        lines.append(f"[查看详情 Open in console]({console_link(alert, console_url)})")
    return "\n\n".join(lines)
