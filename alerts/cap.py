"""CAP 1.2 documents and Atom feeds of alerts, for systems outside ours (docs/cap.md has the tables).

Guarantees, checked by ``tests/unit/alerts/test_cap.py`` against the OASIS schema in ``alerts/schema/cap-1.2.xsd``:

- ``cap_document`` returns one UTF-8 CAP 1.2 ``<alert>`` (namespace ``urn:oasis:names:tc:emergency:cap:1.2``) that
  validates for any ``Alert``: elements in the schema's order, times as ``2026-11-25T10:00:00+08:00`` (whole seconds,
  explicit offset, never ``Z``), text built by ElementTree so ``<``, ``&`` and quotes are escaped, and characters
  XML 1.0 cannot carry (control characters, lone surrogates) replaced by U+FFFD rather than breaking the document.
- Each message has its own ``identifier`` (``smartcity-{id}-{seq}``, the id percent-encoded so it never holds a
  space, a comma, ``<`` or ``&``); every later message of an alert ``references`` the first one.
- Drills are ``status`` ``Exercise`` with a ``note`` saying so, whatever else the alert says.
- Chinese first: the ``zh-CN`` ``info`` block precedes the ``en-US`` one.

Times are given in Shenzhen time (+08:00): China keeps no daylight saving, so a fixed offset is exact and officers
read the same clock time as on the console. The mapping constants below are the whole policy; change them, not the
builder, and update docs/cap.md.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from typing import Any, Final, Literal
from urllib.parse import quote

from feedgen.feed import FeedGenerator

from core.contracts.alert import Alert, AlertEvent
from core.contracts.catalogue import METRICS, Level
from core.contracts.finding import Hazard, Text
from core.errors import ConfigError

CAP_NAMESPACE: Final = "urn:oasis:names:tc:emergency:cap:1.2"
CAP_MIME_TYPE: Final = "application/cap+xml"
CAP_CODE: Final = "SmartCity-1"  # our CAP profile, version 1 (follows the alert contract's schema version)
SHENZHEN: Final = timezone(timedelta(hours=8), "Asia/Shanghai")
SENDER_NAME: Final = Text(zh="智慧城市隐患监测预警平台", en="SmartCity hazard monitoring and warning platform")
EXERCISE_NOTE: Final = "演练，非真实事件 / DRILL: exercise only, not a real event"
LANGUAGES: Final = (("zh-CN", "zh"), ("en-US", "en"))

LEVEL_SEVERITY: Final[dict[Level, str]] = {
    Level.RED: "Extreme",
    Level.ORANGE: "Severe",
    Level.YELLOW: "Moderate",
    Level.BLUE: "Minor",
}
"""China's level I..IV to CAP severity; kept after the condition ends (severity of the event that was)."""

LEVEL_URGENCY: Final[dict[Level, str]] = {
    Level.RED: "Immediate",
    Level.ORANGE: "Expected",
    Level.YELLOW: "Expected",
    Level.BLUE: "Future",
}
"""Urgency while the condition holds; ``Past`` once it no longer does (cleared or closed)."""

LEVEL_RESPONSE: Final[dict[Level, str]] = {
    Level.RED: "Execute",  # levels I and II start the department's pre-planned emergency response
    Level.ORANGE: "Execute",
    Level.YELLOW: "Prepare",
    Level.BLUE: "Monitor",
}
"""responseType while active; device alerts are ``Assess`` (check the device) and inactive ones ``AllClear``."""

LEVEL_NAME: Final[dict[Level, Text]] = {
    Level.RED: Text(zh="红色（I级）", en="red (level I)"),
    Level.ORANGE: Text(zh="橙色（II级）", en="orange (level II)"),
    Level.YELLOW: Text(zh="黄色（III级）", en="yellow (level III)"),
    Level.BLUE: Text(zh="蓝色（IV级）", en="blue (level IV)"),
}

HAZARD_CATEGORY: Final[dict[Hazard, str]] = {
    Hazard.GAS: "Safety",  # CAP keeps CBRNE for a "threat or attack"; a leak is a public-safety hazard
    Hazard.WATER: "Met",  # CAP: "Meteorological (inc. flood)"
    Hazard.FIRE: "Fire",
    Hazard.STRUCTURAL: "Infra",  # buildings, bridges, excavations
    Hazard.DEVICE: "Infra",  # our monitoring infrastructure failing
}

HAZARD_EVENT: Final[dict[Hazard, Text]] = {
    Hazard.GAS: Text(zh="可燃或有毒气体泄漏", en="Gas leak"),
    Hazard.WATER: Text(zh="积水内涝", en="Flooding"),
    Hazard.FIRE: Text(zh="火情", en="Fire"),
    Hazard.STRUCTURAL: Text(zh="结构安全隐患", en="Structural hazard"),
    Hazard.DEVICE: Text(zh="监测设备故障", en="Monitoring device fault"),
}

HAZARD_RADIUS_KM: Final[dict[Hazard, float]] = {
    Hazard.GAS: 0.5,  # gas disperses: the initial isolation distance of a leak, not the detector's spot
    Hazard.FIRE: 0.3,
    Hazard.WATER: 0.2,
    Hazard.STRUCTURAL: 0.2,
    Hazard.DEVICE: 0.2,
}
"""Radius of the CAP ``circle`` around the device or site, in km (CAP's unit)."""

_NOT_XML: Final = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ID_SAFE: Final = "-._~:"


def _clean(text: str) -> str:
    """Text XML 1.0 can carry: anything else becomes U+FFFD instead of an ill-formed document."""
    return _NOT_XML.sub("\ufffd", text)


def cap_time(epoch_ms: int) -> str:
    """CAP's dateTime: whole seconds, Shenzhen offset, e.g. ``2026-11-25T10:00:00+08:00``."""
    return datetime.fromtimestamp(epoch_ms // 1000, SHENZHEN).isoformat()


def cap_identifier(alert_id: str, seq: int) -> str:
    """The message's identifier; percent-encoding keeps spaces, commas, ``<`` and ``&`` out and stays unique."""
    return f"smartcity-{quote(alert_id, safe=_ID_SAFE)}-{seq}"


def msg_type(alert: Alert) -> Literal["Alert", "Update", "Cancel"]:
    if alert.seq == 1:
        return "Alert"
    if alert.event is AlertEvent.CLOSED or alert.closed:
        return "Cancel"
    return "Update"


def _sub(parent: ET.Element, tag: str, text: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{CAP_NAMESPACE}}}{tag}")
    element.text = _clean(text)
    return element


def _number(value: float | bool, lang: str) -> str:
    if isinstance(value, bool):
        return ("是" if value else "否") if lang == "zh" else ("yes" if value else "no")
    return format(value, "g")


def _description(alert: Alert, lang: str) -> str:
    zh = lang == "zh"
    lines = [("预警级别：" if zh else "Level: ") + getattr(LEVEL_NAME[alert.level], lang)]
    lines.append(("隐患类型：" if zh else "Hazard: ") + getattr(HAZARD_EVENT[alert.hazard], lang))
    if alert.metric is not None:
        known = METRICS.get(alert.metric)
        unit = f" {known.unit}" if known is not None and known.unit else ""
        reading = alert.metric
        if alert.value is not None:
            reading += f" = {_number(alert.value, lang)}{unit}"
        if alert.threshold is not None:
            limit = f"{_number(alert.threshold, lang)}{unit}"
            reading += f"（阈值 {limit}）" if zh else f" (threshold {limit})"
        lines.append(("监测指标：" if zh else "Reading: ") + reading)
    if alert.site_id is not None or alert.site_name is not None:
        site = alert.site_name or alert.site_id or ""
        if alert.site_name and alert.site_id:
            site += f" ({alert.site_id})"
        lines.append(("地点：" if zh else "Site: ") + site)
    if alert.device_id is not None:
        lines.append(("设备：" if zh else "Device: ") + alert.device_id)
    state = ("持续中" if zh else "active") if alert.active else ("已解除" if zh else "cleared")
    if alert.acknowledgement is not None:
        by = alert.acknowledgement.by
        ack = f"已由 {by} 确认" if zh else f"acknowledged by {by}"
    else:
        ack = ("已确认" if zh else "acknowledged") if alert.acknowledged else ("未确认" if zh else "not acknowledged")
    lines.append(("状态：" if zh else "Status: ") + ("，" if zh else ", ").join([state, ack]))
    return "\n".join(lines)


def _parameters(alert: Alert) -> list[tuple[str, str]]:
    raw: list[tuple[str, object]] = [
        ("level", alert.level.value),
        ("event", alert.event.value),
        ("key", alert.key),
        ("device_id", alert.device_id),
        ("site_id", alert.site_id),
        ("rule", alert.rule),
        ("metric", alert.metric),
        ("value", alert.value),
        ("threshold", alert.threshold),
        ("acknowledged", alert.acknowledged),
    ]
    out: list[tuple[str, str]] = []
    for name, value in raw:
        if value is None:
            continue
        out.append((name, str(value).lower() if isinstance(value, bool) else str(value)))
    return out


def _circle(alert: Alert) -> str | None:
    """``lat,lon radius`` (WGS 84, km), only for coordinates that exist and are in range."""
    lat, lon = alert.lat, alert.lon
    if lat is None or lon is None or not (math.isfinite(lat) and math.isfinite(lon)):
        return None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return f"{lat:.6f},{lon:.6f} {HAZARD_RADIUS_KM[alert.hazard]}"


def _info(root: ET.Element, alert: Alert, language: str, lang: str) -> None:
    info = ET.SubElement(root, f"{{{CAP_NAMESPACE}}}info")
    _sub(info, "language", language)
    _sub(info, "category", HAZARD_CATEGORY[alert.hazard])
    _sub(info, "event", getattr(HAZARD_EVENT[alert.hazard], lang))
    if not alert.active or alert.closed:
        response, urgency = "AllClear", "Past"
    else:
        response = "Assess" if alert.hazard is Hazard.DEVICE else LEVEL_RESPONSE[alert.level]
        urgency = LEVEL_URGENCY[alert.level]
    _sub(info, "responseType", response)
    _sub(info, "urgency", urgency)
    _sub(info, "severity", LEVEL_SEVERITY[alert.level])
    _sub(info, "certainty", "Observed" if alert.confirmed else "Likely")
    _sub(info, "onset", cap_time(alert.opened_at))
    _sub(info, "senderName", getattr(SENDER_NAME, lang))
    _sub(info, "headline", getattr(alert.title, lang))
    _sub(info, "description", _description(alert, lang))
    for name, value in _parameters(alert):
        parameter = ET.SubElement(info, f"{{{CAP_NAMESPACE}}}parameter")
        _sub(parameter, "valueName", name)
        _sub(parameter, "value", value)
    area = ET.SubElement(info, f"{{{CAP_NAMESPACE}}}area")
    place = alert.site_name or alert.site_id or alert.device_id
    _sub(area, "areaDesc", place or ("位置未知" if lang == "zh" else "location unknown"))
    circle = _circle(alert)
    if circle is not None:
        _sub(area, "circle", circle)


def _check_sender(sender: str) -> None:
    if not sender or re.search(r"[\s,<&]", sender):
        raise ConfigError(f"CAP sender {sender!r} must be non-empty without spaces, commas, '<' or '&'")


def cap_document(alert: Alert, *, sender: str) -> bytes:
    """The CAP 1.2 document of this alert message; ``sender`` is our CAP sender id (e.g. an address)."""
    _check_sender(sender)
    root = ET.Element(f"{{{CAP_NAMESPACE}}}alert")
    _sub(root, "identifier", cap_identifier(alert.id, alert.seq))
    _sub(root, "sender", sender)
    _sub(root, "sent", cap_time(alert.updated_at))
    _sub(root, "status", "Exercise" if alert.exercise else "Actual")
    kind = msg_type(alert)
    _sub(root, "msgType", kind)
    _sub(root, "scope", "Restricted")
    routed = ", ".join(d.value for d in alert.departments)
    _sub(root, "restriction", f"duty officers of: {routed}" if routed else "duty officers")
    _sub(root, "code", CAP_CODE)
    if alert.exercise:
        _sub(root, "note", EXERCISE_NOTE)
    if kind != "Alert":
        _sub(root, "references", f"{sender},{cap_identifier(alert.id, 1)},{cap_time(alert.opened_at)}")
    # the alert's messages, and its incident's (issue 21): a receiver ties an incident's alerts together
    related = [alert.id, *([alert.incident_id] if alert.incident_id else [])]
    _sub(root, "incidents", " ".join(quote(i, safe=_ID_SAFE) for i in related))
    for language, lang in LANGUAGES:
        _info(root, alert, language, lang)
    document: bytes = ET.tostring(root, encoding="UTF-8", xml_declaration=True, default_namespace=CAP_NAMESPACE)
    return document


def cap_url(base_url: str, alert_id: str) -> str:
    """Where ``GET /api/alerts/{id}/cap`` serves an alert's latest CAP document."""
    return f"{base_url.rstrip('/')}/api/alerts/{quote(alert_id, safe='-._~')}/cap"


class _CapLinkType:
    """feedgen entry extension: feedgen 1.0.0 drops an entry link's ``rel`` and ``type`` (it reads them from the
    element it has just created), so the CAP link would lose ``type="application/cap+xml"``; this puts them back."""

    href = ""

    def extend_ns(self) -> dict[str, str]:
        return {}

    def extend_rss(self, item: Any) -> Any:
        return item

    def extend_atom(self, entry: Any) -> Any:
        for element in entry.iter():
            if str(element.tag).rsplit("}", 1)[-1] == "link" and element.get("href") == self.href:
                element.set("rel", "alternate")
                element.set("type", CAP_MIME_TYPE)
        return entry


def atom_feed(alerts: list[Alert], *, department: str, base_url: str, sender: str) -> bytes:
    """An Atom feed with one entry per alert (its latest message) linking to the CAP document, as CAP feeds do.

    The caller chooses the alerts (those routed to ``department``). An entry's id names the alert, not the message,
    so a feed reader replaces the entry as the alert changes; ``updated`` tells the versions apart.
    """
    _check_sender(sender)
    base = base_url.rstrip("/")
    feed_url = f"{base}/api/feeds/{quote(department, safe='-._~')}.atom"
    fg = FeedGenerator()
    fg.id(feed_url)
    fg.title(_clean(f"SmartCity 预警 alerts: {department}"))
    author = {"name": f"{SENDER_NAME.zh} / {SENDER_NAME.en}"}
    if "@" in sender:
        author["email"] = sender
    fg.author(author)
    fg.link(href=feed_url, rel="self", type="application/atom+xml")
    fg.language("zh-CN")
    newest = max((a.updated_at for a in alerts), default=None)
    fg.updated(datetime.fromtimestamp(newest // 1000, SHENZHEN) if newest is not None else datetime.now(SHENZHEN))
    for alert in sorted(alerts, key=lambda a: a.updated_at, reverse=True):
        entry = fg.add_entry(order="append")
        entry.id(cap_url(base, alert.id).removesuffix("/cap"))
        entry.title(_clean(f"{alert.title.zh} / {alert.title.en}"))
        entry.updated(datetime.fromtimestamp(alert.updated_at // 1000, SHENZHEN))
        entry.published(datetime.fromtimestamp(alert.opened_at // 1000, SHENZHEN))
        entry.link(href=cap_url(base, alert.id), rel="alternate", type=CAP_MIME_TYPE)
        entry.register_extension("cap_link", _CapLinkType, atom=True, rss=False)
        entry.cap_link.href = cap_url(base, alert.id)
        level, event = LEVEL_NAME[alert.level], HAZARD_EVENT[alert.hazard]
        place = alert.site_name or alert.site_id or alert.device_id or "-"
        entry.summary(_clean(f"{level.zh} {event.zh}：{place} / {level.en} {event.en}: {place}"))
    result: bytes = fg.atom_str(pretty=True)
    return result
