"""CAP 1.2 documents and Atom feeds: every document validates against the OASIS schema, and the mapping holds."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import xmlschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerts.cap import (
    CAP_MIME_TYPE,
    CAP_NAMESPACE,
    HAZARD_CATEGORY,
    HAZARD_RADIUS_KM,
    LEVEL_SEVERITY,
    atom_feed,
    cap_document,
)
from core.contracts.alert import Acknowledgement, Alert, AlertEvent
from core.contracts.catalogue import Department, Level
from core.contracts.finding import Hazard, Text
from core.errors import ConfigError
from tests.unit.alerts.factories import alert

SCHEMA_PATH = Path(__file__).resolve().parents[3] / "alerts" / "schema" / "cap-1.2.xsd"
SENDER = "smartcity@longgang.example"
BASE_URL = "https://smartcity.example"
NS = {"cap": CAP_NAMESPACE}
ATOM = "{http://www.w3.org/2005/Atom}"
OPENED = 1_795_000_000_000  # 2026-11-18T11:06:40Z
CAP_TIME = re.compile(r"^\d\d\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00$")


@cache
def schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(SCHEMA_PATH))


def make_alert(**changes: Any) -> Alert:
    """An orange methane alert of a detector routed to two departments, opened at ``OPENED``."""
    fields: dict[str, Any] = {
        "id": "01JD2Y3G7Q", "key": "gas-001:ch4_high", "level": Level.ORANGE, "rule": "ch4_high",
        "device_id": "gas-001", "site_id": "site-7", "site_name": "坂田燃气调压站", "lat": 22.6478, "lon": 114.0652,
        "value": 25.0, "threshold": 20.0, "departments": [Department.EMERGENCY, Department.FIRE], "opened_at": OPENED,
        "updated_at": OPENED, "ts": OPENED, "title": Text(zh="甲烷浓度超限", en="Methane above limit"),
    }  # fmt: skip
    return alert(**(fields | changes))


def document(alert: Alert) -> ET.Element:
    """The alert's CAP document, validated against the OASIS schema, parsed."""
    data = cap_document(alert, sender=SENDER)
    assert data.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    schema().validate(data.decode("utf-8"))
    return ET.fromstring(data)


def text(root: ET.Element, path: str) -> str | None:
    return root.findtext(path, namespaces=NS)


def parameters(info: ET.Element) -> dict[str, str]:
    return {
        p.findtext("cap:valueName", namespaces=NS) or "": p.findtext("cap:value", namespaces=NS) or ""
        for p in info.findall("cap:parameter", NS)
    }


RAISED = make_alert()
UPDATED = make_alert(seq=3, event=AlertEvent.ESCALATED, level=Level.RED, updated_at=OPENED + 60_000)
CLOSED = make_alert(
    seq=5,
    event=AlertEvent.CLOSED,
    active=False,
    acknowledged=True,
    acknowledgement=Acknowledgement(by="officer-li", at=OPENED + 90_000),
    closed=True,
    updated_at=OPENED + 120_000,
)
EXERCISE = make_alert(
    key="drill:gas-001:ch4_high", exercise=True, title=Text(zh="演练 甲烷浓度超限", en="DRILL Methane above limit")
)
NO_COORDINATES = make_alert(lat=None, lon=None)
SITE_ALERT = make_alert(
    key="site:site-7:gas_confirmed",
    rule="gas_confirmed",
    device_id=None,
    metric=None,
    value=None,
    threshold=None,
    confirmed=True,
    confirms=["gas-001:ch4_high", "gas-002:ch4_high"],
)


@pytest.mark.parametrize("alert", [RAISED, UPDATED, CLOSED, EXERCISE, NO_COORDINATES, SITE_ALERT])
def test_every_document_validates_and_has_the_header(alert: Alert) -> None:
    root = document(alert)
    assert root.tag == f"{{{CAP_NAMESPACE}}}alert"
    assert text(root, "cap:identifier") == f"smartcity-{alert.id}-{alert.seq}"
    assert text(root, "cap:sender") == SENDER
    assert CAP_TIME.match(text(root, "cap:sent") or "")
    assert text(root, "cap:scope") == "Restricted"
    assert text(root, "cap:restriction") == "duty officers of: emergency, fire"


def test_sent_is_shenzhen_time_without_z_or_fractions() -> None:
    root = document(make_alert(updated_at=OPENED + 1_999))
    assert text(root, "cap:sent") == "2026-11-18T19:06:41+08:00"


def test_status_is_exercise_for_drills_only() -> None:
    assert text(document(EXERCISE), "cap:status") == "Exercise"
    assert "DRILL" in (text(document(EXERCISE), "cap:note") or "")
    assert text(document(RAISED), "cap:status") == "Actual"
    assert text(document(RAISED), "cap:note") is None


def test_first_message_is_an_alert_without_references() -> None:
    root = document(RAISED)
    assert text(root, "cap:msgType") == "Alert"
    assert text(root, "cap:references") is None


@pytest.mark.parametrize(("alert", "kind"), [(UPDATED, "Update"), (CLOSED, "Cancel")])
def test_later_messages_reference_the_first(alert: Alert, kind: str) -> None:
    root = document(alert)
    assert text(root, "cap:msgType") == kind
    assert text(root, "cap:references") == f"{SENDER},smartcity-{alert.id}-1,2026-11-18T19:06:40+08:00"


def test_identifier_never_carries_restricted_characters() -> None:
    root = document(make_alert(id="a b,c<d&e", seq=2))
    identifier = text(root, "cap:identifier") or ""
    assert not re.search(r"[\s,<&]", identifier)
    assert identifier != text(document(make_alert(id="a b,c<d&f", seq=2)), "cap:identifier")


@pytest.mark.parametrize("level", list(Level))
def test_severity_follows_the_level(level: Level) -> None:
    root = document(make_alert(level=level))
    expected = {"red": "Extreme", "orange": "Severe", "yellow": "Moderate", "blue": "Minor"}[level.value]
    assert LEVEL_SEVERITY[level] == expected
    for info in root.findall("cap:info", NS):
        assert text(info, "cap:severity") == expected
        assert parameters(info)["level"] == level.value


def test_urgency_and_response_while_active_and_after() -> None:
    active = document(make_alert(level=Level.RED)).find("cap:info", NS)
    assert active is not None
    assert (text(active, "cap:urgency"), text(active, "cap:responseType")) == ("Immediate", "Execute")
    ended = document(CLOSED).find("cap:info", NS)
    assert ended is not None
    assert (text(ended, "cap:urgency"), text(ended, "cap:responseType")) == ("Past", "AllClear")


def test_certainty_is_observed_only_when_confirmed() -> None:
    assert text(document(SITE_ALERT), "cap:info/cap:certainty") == "Observed"
    assert text(document(RAISED), "cap:info/cap:certainty") == "Likely"


def test_chinese_info_comes_first_then_english() -> None:
    infos = document(RAISED).findall("cap:info", NS)
    assert [text(i, "cap:language") for i in infos] == ["zh-CN", "en-US"]
    assert [text(i, "cap:headline") for i in infos] == ["甲烷浓度超限", "Methane above limit"]
    assert [text(i, "cap:category") for i in infos] == [HAZARD_CATEGORY[Hazard.GAS]] * 2
    assert "25 %LEL" in (text(infos[0], "cap:description") or "")
    assert "threshold 20 %LEL" in (text(infos[1], "cap:description") or "")


def test_parameters_carry_the_alert_fields() -> None:
    info = document(RAISED).find("cap:info", NS)
    assert info is not None
    assert parameters(info) == {
        "level": "orange",
        "event": "raised",
        "key": "gas-001:ch4_high",
        "device_id": "gas-001",
        "site_id": "site-7",
        "rule": "ch4_high",
        "metric": "ch4_lel",
        "value": "25.0",
        "threshold": "20.0",
        "acknowledged": "false",
    }


def test_circle_is_lat_lon_space_radius_km() -> None:
    for info in document(RAISED).findall("cap:info", NS):
        assert text(info, "cap:area/cap:circle") == f"22.647800,114.065200 {HAZARD_RADIUS_KM[Hazard.GAS]}"
        assert text(info, "cap:area/cap:areaDesc") == "坂田燃气调压站"


def test_no_coordinates_no_circle_but_an_area() -> None:
    root = document(NO_COORDINATES)
    assert root.find("cap:info/cap:area/cap:circle", NS) is None
    assert text(root, "cap:info/cap:area/cap:areaDesc") == "坂田燃气调压站"
    bare = document(make_alert(lat=None, lon=None, site_id=None, site_name=None))
    assert text(bare, "cap:info/cap:area/cap:areaDesc") == "gas-001"


def test_site_alert_without_device() -> None:
    info = document(SITE_ALERT).find("cap:info", NS)
    assert info is not None
    assert "device_id" not in parameters(info)
    assert "设备" not in (text(info, "cap:description") or "")


def test_markup_in_a_site_name_is_escaped_and_round_trips() -> None:
    name = 'Depot <script>alert(1)</script> & "Co"'
    data = cap_document(make_alert(site_name=name), sender=SENDER)
    assert b"<script>" not in data
    assert b"&lt;script&gt;" in data
    schema().validate(data.decode("utf-8"))
    assert text(ET.fromstring(data), "cap:info/cap:area/cap:areaDesc") == name


def test_characters_xml_cannot_carry_do_not_break_the_document() -> None:
    root = document(make_alert(site_name="bad\x00\x1b\ud800name"))
    assert text(root, "cap:info/cap:area/cap:areaDesc") == "bad\ufffd\ufffd\ufffdname"


def test_a_sender_with_restricted_characters_is_refused() -> None:
    with pytest.raises(ConfigError):
        cap_document(RAISED, sender="smart city")


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("<status>Actual</status>", "<status>Bogus</status>"),
        ("+08:00</sent>", "Z</sent>"),
        ("<msgType>Alert</msgType>", ""),
        ("<category>Safety</category>", "<category>Gas</category>"),
    ],
)
def test_the_schema_rejects_a_broken_document(old: str, new: str) -> None:
    good = cap_document(RAISED, sender=SENDER).decode("utf-8")
    assert old in good
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        schema().validate(good.replace(old, new, 1))


def test_atom_feed_has_one_entry_per_alert_linking_the_cap_document() -> None:
    alerts = [RAISED, SITE_ALERT.model_copy(update={"id": "01JD2Y3G7R"}), EXERCISE.model_copy(update={"id": "x y"})]
    data = atom_feed(alerts, department="fire", base_url=BASE_URL + "/", sender=SENDER)
    feed = ET.fromstring(data)
    assert feed.tag == f"{ATOM}feed"
    assert feed.findtext(f"{ATOM}id") == f"{BASE_URL}/api/feeds/fire.atom"
    entries = feed.findall(f"{ATOM}entry")
    assert len(entries) == len(alerts)
    hrefs = set()
    for entry in entries:
        links = entry.findall(f"{ATOM}link")
        assert len(links) == 1
        assert links[0].get("rel") == "alternate"
        assert links[0].get("type") == CAP_MIME_TYPE
        hrefs.add(links[0].get("href"))
        assert " / " in (entry.findtext(f"{ATOM}title") or "")
        assert entry.findtext(f"{ATOM}updated") == "2026-11-18T19:06:40+08:00"
    assert hrefs == {
        f"{BASE_URL}/api/alerts/01JD2Y3G7Q/cap",
        f"{BASE_URL}/api/alerts/01JD2Y3G7R/cap",
        f"{BASE_URL}/api/alerts/x%20y/cap",
    }


def test_empty_atom_feed_parses() -> None:
    feed = ET.fromstring(atom_feed([], department="water", base_url=BASE_URL, sender=SENDER))
    assert feed.findall(f"{ATOM}entry") == []


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
values = st.one_of(st.none(), st.booleans(), finite)
names = st.text(max_size=40)


@st.composite
def alerts(draw: st.DrawFn) -> Alert:
    opened = draw(st.integers(946_684_800_000, 4_102_444_800_000))  # 2000..2100
    located = draw(st.booleans())
    return make_alert(
        id=draw(st.text(min_size=1, max_size=30)),
        key=draw(names),
        seq=draw(st.integers(1, 10_000)),
        event=draw(st.sampled_from(AlertEvent)),
        level=draw(st.sampled_from(Level)),
        hazard=draw(st.sampled_from(Hazard)),
        rule=draw(names),
        device_id=draw(st.none() | names),
        site_id=draw(st.none() | names),
        site_name=draw(st.none() | names),
        lat=draw(st.floats(-90, 90)) if located else None,
        lon=draw(st.floats(-180, 180)) if located else None,
        metric=draw(st.none() | st.sampled_from(["ch4_lel", "smoke", "level_m", "unknown_metric"])),
        value=draw(values),
        threshold=draw(values),
        departments=draw(st.lists(st.sampled_from(Department), unique=True)),
        active=draw(st.booleans()),
        acknowledged=draw(st.booleans()),
        closed=draw(st.booleans()),
        exercise=draw(st.booleans()),
        confirmed=draw(st.booleans()),
        opened_at=opened,
        updated_at=opened + draw(st.integers(0, 30 * 86_400_000)),
        title=Text(zh=draw(names), en=draw(names)),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(alert=alerts())
def test_any_alert_gives_a_valid_document(alert: Alert) -> None:
    root = document(alert)
    assert text(root, "cap:status") == ("Exercise" if alert.exercise else "Actual")
    assert not re.search(r"[\s,<&]", text(root, "cap:identifier") or "")
    assert [text(i, "cap:language") for i in root.findall("cap:info", NS)] == ["zh-CN", "en-US"]
    circle = text(root, "cap:info/cap:area/cap:circle")
    if alert.lat is None:
        assert circle is None
    else:
        assert re.fullmatch(r"-?\d+\.\d{6},-?\d+\.\d{6} \d+(\.\d+)?", circle or "")


@settings(max_examples=50, deadline=None)
@given(batch=st.lists(alerts(), max_size=5, unique_by=lambda a: a.id))
def test_any_alerts_give_a_parsable_feed(batch: list[Alert]) -> None:
    feed = ET.fromstring(atom_feed(batch, department="emergency", base_url=BASE_URL, sender=SENDER))
    assert len(feed.findall(f"{ATOM}entry")) == len(batch)
