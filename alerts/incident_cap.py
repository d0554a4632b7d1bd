"""An incident as one CAP 1.2 alert (``GET /api/incidents/{id}/cap``): its area covers every member.

The same profile as ``alerts.cap`` (Shenzhen times, Chinese ``info`` first, drills ``Exercise``), with an incident's
own parts: ``identifier`` ``smartcity-{incident id}-{seq}``, ``incidents`` the incident id (each member alert's CAP
names it too, so a receiver ties them together), and one ``area`` holding the members' hull as a ``polygon`` (when
they span an area), a ``circle`` around them all, and the GB/T 2260 code of each district they are in as a
``geocode`` (``valueName`` ``GB/T 2260``, e.g. ``440307`` Longgang).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Final, Literal
from urllib.parse import quote

from alerts.cap import (
    _ID_SAFE,
    CAP_CODE,
    CAP_NAMESPACE,
    EXERCISE_NOTE,
    HAZARD_CATEGORY,
    HAZARD_EVENT,
    LANGUAGES,
    LEVEL_NAME,
    LEVEL_RESPONSE,
    LEVEL_SEVERITY,
    LEVEL_URGENCY,
    SENDER_NAME,
    _check_sender,
    _sub,
    cap_identifier,
    cap_time,
)
from core.contracts.finding import Hazard
from core.contracts.incident import Incident, IncidentEvent
from core.geo.districts import District, district_at

GEOCODE_NAME: Final = "GB/T 2260"


def _msg_type(incident: Incident) -> Literal["Alert", "Update", "Cancel"]:
    if incident.seq <= 1:  # the first message (or, seq 0, the incident before its first message)
        return "Alert"
    if incident.closed or incident.event is IncidentEvent.MERGED:
        return "Cancel"
    return "Update"


def _description(incident: Incident, lang: str) -> str:
    zh = lang == "zh"
    s = incident.summary
    lines = [
        ("预警级别：" if zh else "Level: ") + getattr(LEVEL_NAME[incident.level], lang),
        ("隐患类型：" if zh else "Hazard: ") + getattr(HAZARD_EVENT[incident.hazard], lang),
        (f"规模：{s.alerts} 条告警，{s.sites} 处，{s.devices} 台设备" if zh
         else f"Extent: {s.alerts} alerts, {s.sites} places, {s.devices} devices"),
    ]  # fmt: skip
    for m in incident.members[:10]:
        where = m.site_name or m.site_id or ""
        lines.append(f"- {getattr(LEVEL_NAME[m.level], lang)} {m.rule} {m.device_id or ''} {where}".rstrip())
    state = ("持续中" if zh else "active") if incident.active else ("已解除" if zh else "cleared")
    ack = ("已确认" if zh else "acknowledged") if incident.acknowledged else ("未确认" if zh else "not acknowledged")
    lines.append(("状态：" if zh else "Status: ") + ("，" if zh else ", ").join([state, ack]))
    return "\n".join(lines)


def _area(info: ET.Element, incident: Incident, lang: str) -> None:
    area = ET.SubElement(info, f"{{{CAP_NAMESPACE}}}area")
    places = list(dict.fromkeys(m.site_name or m.site_id or m.device_id or m.key for m in incident.members))
    sep = "、" if lang == "zh" else "; "
    _sub(area, "areaDesc", sep.join(places[:20]) or ("位置未知" if lang == "zh" else "location unknown"))
    shape = incident.area
    if shape is None:
        return
    if len(shape.polygon) >= 4:
        _sub(area, "polygon", " ".join(f"{lat:.6f},{lon:.6f}" for lat, lon in shape.polygon))
    _sub(area, "circle", f"{shape.lat:.6f},{shape.lon:.6f} {shape.radius_m / 1000:.3f}")
    codes: dict[str, District] = {}
    for m in incident.members:
        if m.lat is not None and m.lon is not None and (found := district_at(m.lat, m.lon)) is not None:
            codes[found.code] = found
    for code in sorted(codes):
        geocode = ET.SubElement(area, f"{{{CAP_NAMESPACE}}}geocode")
        _sub(geocode, "valueName", GEOCODE_NAME)
        _sub(geocode, "value", code)


def _info(root: ET.Element, incident: Incident, language: str, lang: str) -> None:
    info = ET.SubElement(root, f"{{{CAP_NAMESPACE}}}info")
    _sub(info, "language", language)
    _sub(info, "category", HAZARD_CATEGORY[incident.hazard])
    _sub(info, "event", getattr(HAZARD_EVENT[incident.hazard], lang))
    if not incident.active or incident.closed:
        response, urgency = "AllClear", "Past"
    else:
        response = "Assess" if incident.hazard is Hazard.DEVICE else LEVEL_RESPONSE[incident.level]
        urgency = LEVEL_URGENCY[incident.level]
    _sub(info, "responseType", response)
    _sub(info, "urgency", urgency)
    _sub(info, "severity", LEVEL_SEVERITY[incident.level])
    _sub(info, "certainty", "Observed" if incident.summary.alerts > 1 else "Likely")
    _sub(info, "onset", cap_time(incident.opened_at))
    _sub(info, "senderName", getattr(SENDER_NAME, lang))
    _sub(info, "headline", getattr(incident.title, lang))
    _sub(info, "description", _description(incident, lang))
    for name, value in (("incident_id", incident.id), ("level", incident.level.value), ("event", incident.event.value),
                        ("alerts", str(incident.summary.alerts)), ("family", incident.family)):  # fmt: skip
        parameter = ET.SubElement(info, f"{{{CAP_NAMESPACE}}}parameter")
        _sub(parameter, "valueName", name)
        _sub(parameter, "value", value)
    _area(info, incident, lang)


def incident_cap_document(incident: Incident, *, sender: str) -> bytes:
    """The CAP 1.2 document of the incident's latest message."""
    _check_sender(sender)
    seq = incident.seq
    root = ET.Element(f"{{{CAP_NAMESPACE}}}alert")
    _sub(root, "identifier", cap_identifier(incident.id, seq))
    _sub(root, "sender", sender)
    _sub(root, "sent", cap_time(incident.updated_at))
    _sub(root, "status", "Exercise" if incident.exercise else "Actual")
    kind = _msg_type(incident)
    _sub(root, "msgType", kind)
    _sub(root, "scope", "Restricted")
    routed = ", ".join(d.value for d in incident.departments)
    _sub(root, "restriction", f"duty officers of: {routed}" if routed else "duty officers")
    _sub(root, "code", CAP_CODE)
    if incident.exercise:
        _sub(root, "note", EXERCISE_NOTE)
    if kind != "Alert":
        _sub(root, "references", f"{sender},{cap_identifier(incident.id, 1)},{cap_time(incident.opened_at)}")
    _sub(root, "incidents", quote(incident.id, safe=_ID_SAFE))
    for language, lang in LANGUAGES:
        _info(root, incident, language, lang)
    document: bytes = ET.tostring(root, encoding="UTF-8", xml_declaration=True, default_namespace=CAP_NAMESPACE)
    return document
