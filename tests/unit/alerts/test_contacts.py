"""Contacts files: validated as a whole, errors naming the file and the field, secrets from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts.contacts import Contacts, ContactsError, WebhookFormat, load_contacts, parse_contacts
from core.contracts.alert import AlertEvent
from core.contracts.catalogue import Level
from core.contracts.incident import IncidentEvent
from tests.unit.alerts.factories import alert, incident_of

EXAMPLE = Path(__file__).parents[3] / "alerts" / "contacts.example.yaml"


def test_none_is_nobody() -> None:
    assert load_contacts(None) == Contacts()
    assert load_contacts(None).webhooks("fire") == []


def test_example_file_is_valid() -> None:
    env = {
        name: "x"
        for name in (
            "SMARTCITY_SMTP_PASSWORD",
            "WECOM_EMERGENCY_KEY",
            "SMARTCITY_WEBHOOK_SECRET",
            "DINGTALK_FIRE_TOKEN",
            "DINGTALK_FIRE_SECRET",
            "WECOM_COMMAND_KEY",
        )
    }
    contacts = load_contacts(EXAMPLE, env)
    assert [w.format for w in contacts.webhooks("emergency")] == [WebhookFormat.WECOM, WebhookFormat.JSON]
    assert contacts.smtp is not None
    assert contacts.smtp.password is not None
    assert contacts.smtp.password.get_secret_value() == "x"


def test_bad_field_names_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "contacts.yaml"
    path.write_text(
        "departments:\n"
        "  fire:\n"
        "    webhooks:\n"
        "      - url: https://hooks.example/a\n"
        "        format: wechat\n"
        "    email:\n"
        "      - to: not an address\n"
        "        min_level: purple\n"
        "  police: {}\n"
        "smtp: {host: relay, sender: a@b.example, tls: true}\n",
        encoding="utf-8",
    )
    with pytest.raises(ContactsError) as raised:
        load_contacts(path, {})
    problems = raised.value.problems
    assert (
        "contacts.yaml: field 'departments.fire.webhooks.0.format': Input should be 'json', 'wecom' or 'dingtalk'"
        in (problems)
    )
    assert any(p.startswith("contacts.yaml: field 'departments.fire.email.0.to':") for p in problems)
    assert any(p.startswith("contacts.yaml: field 'departments.fire.email.0.min_level':") for p in problems)
    assert any(p.startswith("contacts.yaml: field 'departments.police':") for p in problems)
    assert any(p.startswith("contacts.yaml: field 'smtp':") and "starttls" in p for p in problems)


def test_not_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("departments: [\n", encoding="utf-8")
    with pytest.raises(ContactsError, match=r"broken\.yaml: not YAML"):
        load_contacts(path)


def test_unset_environment_variable_names_the_field() -> None:
    data = {"departments": {"fire": {"webhooks": [{"url": "https://x.example/?key=${FIRE_KEY}", "format": "wecom"}]}}}
    with pytest.raises(ContactsError, match=r"field 'departments\.fire\.webhooks\.0\.url'.*FIRE_KEY is not set"):
        parse_contacts(data, "c.yaml", {})
    contacts = parse_contacts(data, "c.yaml", {"FIRE_KEY": "k-123"})
    assert contacts.webhooks("fire")[0].url.endswith("key=k-123")


def test_email_needs_smtp() -> None:
    with pytest.raises(ContactsError, match="no 'smtp' block"):
        parse_contacts({"departments": {"water": {"email": [{"to": "duty@water.example"}]}}}, "c.yaml", {})


def test_wecom_with_secret_is_refused() -> None:
    data = {"departments": {"fire": {"webhooks": [{"url": "https://x.example/", "format": "wecom", "secret": "s"}]}}}
    with pytest.raises(ContactsError, match="wecom robots are not signed"):
        parse_contacts(data, "c.yaml", {})


def test_target_hides_the_key_but_tells_robots_apart() -> None:
    base = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key="
    data = {"departments": {"fire": {"webhooks": [{"url": base + "SECRET1"}, {"url": base + "SECRET2"}]}}}
    first, second = (w.target for w in parse_contacts(data, "c.yaml", {}).webhooks("fire"))
    assert first.startswith("https://qyapi.weixin.qq.com/cgi-bin/webhook/send#")
    assert "SECRET" not in first + second
    assert first != second


def test_filters() -> None:
    data = {
        "departments": {
            "fire": {
                "webhooks": [
                    {"url": "https://a.example/", "per": "alert"},
                    {"url": "https://b.example/", "per": "alert", "min_level": "orange"},
                    {"url": "https://c.example/", "per": "alert", "events": ["raised", "escalated"]},
                    {"url": "https://d.example/"},
                    {"url": "https://e.example/", "incident_events": ["opened"], "min_level": "orange"},
                ]
            }
        }
    }
    hooks = parse_contacts(data, "c.yaml", {}).webhooks("fire")
    yellow_cleared = alert(level=Level.YELLOW, event=AlertEvent.CLEARED)
    red_raised = alert(level=Level.RED, event=AlertEvent.RAISED)
    assert [h.accepts(yellow_cleared) for h in hooks] == [True, False, False, False, False]
    assert [h.accepts(red_raised) for h in hooks] == [True, True, True, False, False]
    # people's contacts (the default) hear of incidents, one conversation per hazard event
    opened = incident_of(red_raised).model_copy(update={"event": IncidentEvent.OPENED})
    cleared = opened.model_copy(update={"event": IncidentEvent.CLEARED})
    assert [h.accepts(opened) for h in hooks] == [False, False, False, True, True]
    assert [h.accepts(cleared) for h in hooks] == [False, False, False, True, False]


def test_an_alert_filter_on_an_incident_contact_is_refused() -> None:
    data = {"departments": {"fire": {"email": [{"to": "duty@fire.test", "events": ["raised"]}]}}}
    with pytest.raises(ContactsError, match="events filters alert messages"):
        parse_contacts(data, "c.yaml", {})
    data = {
        "departments": {"fire": {"email": [{"to": "duty@fire.test", "per": "alert", "incident_events": ["opened"]}]}}
    }
    with pytest.raises(ContactsError, match="incident_events filters incident messages"):
        parse_contacts(data, "c.yaml", {})
