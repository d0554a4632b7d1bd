"""What a person reads about an incident: its title, the e-mail subject and body, the robots' markdown.

The same guarantees as ``alerts.text`` (Chinese first, English beside; levels with colour and grade; drills marked on
every line that could be read alone; Asia/Shanghai times), and one more: a message says what the incident is now
(level, how many alerts at how many sites, which are still active) and what changed, so a person who reads only
the latest message knows the whole event.
"""

from __future__ import annotations

from typing import Final

from alerts.text import DRILL_NOTICE, LEVELS, _md_escape, level_words, when
from core.contracts.alert import DRILL_PREFIX
from core.contracts.catalogue import Level
from core.contracts.finding import Hazard, Text
from core.contracts.incident import Incident, IncidentEvent

HAZARDS: Final[dict[Hazard, Text]] = {
    Hazard.GAS: Text(zh="燃气泄漏", en="Gas leak"),
    Hazard.FIRE: Text(zh="火灾", en="Fire"),
    Hazard.WATER: Text(zh="汛情", en="Flooding"),
    Hazard.STRUCTURAL: Text(zh="结构险情", en="Structural hazard"),
    Hazard.DEVICE: Text(zh="设备故障", en="Device fault"),
}
EVENTS: Final[dict[IncidentEvent, Text]] = {
    IncidentEvent.OPENED: Text(zh="新事件", en="opened"),
    IncidentEvent.ESCALATED: Text(zh="升级", en="escalated"),
    IncidentEvent.DEESCALATED: Text(zh="降级", en="deescalated"),
    IncidentEvent.UPDATED: Text(zh="更新", en="updated"),
    IncidentEvent.REMINDER: Text(zh="提醒", en="reminder"),
    IncidentEvent.ACKNOWLEDGED: Text(zh="已确认", en="acknowledged"),
    IncidentEvent.CLEARED: Text(zh="已解除", en="cleared"),
    IncidentEvent.REACTIVATED: Text(zh="再次发生", en="active again"),
    IncidentEvent.CLOSED: Text(zh="已关闭", en="closed"),
    IncidentEvent.MERGED: Text(zh="已合并", en="merged"),
}


def incident_title(hazard: Hazard, places: list[str], exercise: bool) -> Text:
    """``燃气泄漏事件：园山化工园区储罐区1号 等2处`` / ``Gas leak incident: ... and 1 more place``."""
    name = HAZARDS[hazard]
    first = places[0] if places else "?"
    more = len(places) - 1
    zh = f"{name.zh}事件：{first}" + (f" 等{len(places)}处" if more else "")
    en = f"{name.en} incident: {first}" + (f" and {more} more place{'s' if more > 1 else ''}" if more else "")
    if exercise:
        return Text(zh=f"{DRILL_PREFIX.zh} / {DRILL_PREFIX.en}：{zh}", en=f"{DRILL_PREFIX.en}: {en}")
    return Text(zh=zh, en=en)


def incident_subject(incident: Incident) -> str:
    """``【红色事件 RED】新事件 opened: 燃气泄漏事件：… / Gas leak incident: …``."""
    name = LEVELS[incident.level]
    event = EVENTS[incident.event]
    text = incident.title
    return f"【{name.zh}事件 {name.en}】{event.zh} {event.en}: {text.zh} / {text.en}"


def console_link(incident: Incident, console_url: str) -> str:
    return f"{console_url.rstrip('/')}/#/incidents/{incident.id}"


def _state(incident: Incident) -> str:
    s = incident.summary
    parts = [f"{s.active} 条仍在持续 still active" if incident.active else "已全部恢复 all conditions ended"]
    parts.append("已确认 acknowledged" if incident.acknowledged else "待确认 awaiting acknowledgement")
    if incident.closed:
        parts.append("已关闭 closed")
    return ", ".join(parts)


def _fields(incident: Incident, console_url: str | None) -> list[tuple[str, str]]:
    s = incident.summary
    event = EVENTS[incident.event]
    rows = [
        ("级别 Level", level_words(incident.level)),
        ("事件 Event", f"{event.zh} / {event.en}"),
        ("状态 State", _state(incident)),
        ("规模 Extent", f"{s.alerts} 条告警, {s.sites} 处, {s.devices} 台设备 / {s.alerts} alerts, {s.sites} places, "
                        f"{s.devices} devices"),
    ]  # fmt: skip
    by_level = [f"{LEVELS[level].zh} {LEVELS[level].en} {n}" for level in reversed(Level) if (n := s.levels.get(level))]
    if by_level:
        rows.append(("未关闭告警 Open alerts", ", ".join(by_level)))
    for m in incident.members[:5]:
        where = m.site_name or m.site_id or ""
        state = "持续 active" if m.active else "已恢复 ended"
        rows.append(("告警 Alert", f"{LEVELS[m.level].zh} {m.rule} @ {m.device_id or where} {where} ({state})"))
    if len(incident.members) > 5:
        rows.append(("其余 More", f"另 {s.alerts - 5} 条 / {s.alerts - 5} more"))
    if incident.area is not None:
        rows.append(("范围 Area", f"{incident.area.lat:.5f}, {incident.area.lon:.5f} ± {incident.area.radius_m:.0f} m"))
    rows.append(("首发 Opened", when(incident.opened_at)))
    rows.append(("时间 Time", when(incident.updated_at)))
    if incident.escalations:
        rows.append(("提醒次数 Reminders", str(incident.escalations)))
    if incident.merged_into:
        rows.append(("并入 Merged into", incident.merged_into))
    rows.append(("编号 Incident", f"{incident.id} #{incident.seq}"))
    if console_url:
        rows.append(("查看 Console", console_link(incident, console_url)))
    return rows


def incident_body_text(incident: Incident, console_url: str | None = None) -> str:
    lines = [incident_subject(incident), "", incident.title.zh, incident.title.en, ""]
    if incident.exercise:
        lines += [f"*** {DRILL_PREFIX.zh} {DRILL_PREFIX.en}: {DRILL_NOTICE.zh} / {DRILL_NOTICE.en} ***", ""]
    lines += [f"{label}: {value}" for label, value in _fields(incident, console_url)]
    lines += ["", "-- SmartCity 城市安全预警 / hazard alerting"]
    return "\n".join(lines) + "\n"


def incident_body_markdown(incident: Incident, console_url: str | None, *, font_colour: bool = False) -> str:
    name = LEVELS[incident.level]
    event = EVENTS[incident.event]
    head = f"{name.zh}事件 {name.en} · {event.zh} {event.en}"
    colour = "comment" if incident.level == Level.BLUE else "warning"
    heading = f'<font color="{colour}">【{head}】</font>' if font_colour else f"【{head}】"
    lines = [f"### {heading}", f"**{_md_escape(incident.title.zh)}**", _md_escape(incident.title.en)]
    if incident.exercise:
        lines.append(f"> **{DRILL_PREFIX.zh} {DRILL_PREFIX.en}**: {DRILL_NOTICE.zh} / {DRILL_NOTICE.en}")
    lines += [f"> {label}: {_md_escape(value)}" for label, value in _fields(incident, None)]
    if console_url:
        lines.append(f"[查看事件 Open in console]({console_link(incident, console_url)})")
    return "\n\n".join(lines)
