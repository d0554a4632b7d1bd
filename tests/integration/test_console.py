"""The duty console in a real browser (Debian chromium, headless, driven by Playwright) against the real stack.

An officer logs in; a reading published over MQTT makes its alert appear on the board without a reload; the
officer acknowledges it with a note in the detail view, and the board and the API agree; an officer of another
department does not see it; a site name containing ``<script>`` renders as text; the devices search finds a device
beyond the first page; one gas leak's alerts are one incident row on the board, folded, with its report page.
Screenshots of the board, the map, the detail, the devices search, the incident and its report are saved under
``test-artifacts/console/``.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from playwright.sync_api import Browser, Page, expect, sync_playwright

from alerts.console import STATIC
from harness.builders import device_record, telemetry
from harness.stack import StackRun
from simulators.fleet import generate_fleet

pytestmark = pytest.mark.integration

ARTIFACTS = Path("test-artifacts/console")
CHROMIUM = "/usr/bin/chromium"
EMERGENCY, FIRE = "emergency-officer-token", "fire-officer-token"
PING_S = 1  # the live stream's heartbeat here (15 s by default): the console takes three missed as a dead link
HOSTILE_SITE = '<script>alert("pwned")</script> 龙岗化工园区'


@dataclass
class Console:
    stack: StackRun
    browser: Browser
    device: str
    password: str

    def api(self, token: str | None = None) -> httpx.Client:
        return self.stack.api_client(token, timeout=10)

    def login(self, token: str) -> Page:
        page = self.browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("dialog", lambda d: pytest.fail(f"a page script ran: dialog {d.message!r}"))
        page.goto(f"{self.stack.api}/#/login")
        page.get_by_test_id("login-token").fill(token)
        page.get_by_test_id("login-submit").click()
        expect(page.get_by_test_id("officer")).to_be_visible()
        return page

    def publish(self, values: dict[str, float], device: tuple[str, str] | None = None) -> None:
        """A reading from the fixture's device, or from ``device`` (id, password)."""
        device_id, password = device or (self.device, self.password)
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"console-test-{time.monotonic_ns()}")
        client.username_pw_set(device_id, password)
        client.connect("127.0.0.1", int(self.stack.mqtt_url.rsplit(":", 1)[1]))
        client.loop_start()
        body = telemetry({"ch4_lel": values["ch4_lel"]})
        client.publish(f"devices/{device_id}/telemetry", body, qos=1).wait_for_publish(10)
        client.disconnect()
        client.loop_stop()


def _officers(path: Path) -> Path:
    officers = [
        {"name": "李明", "departments": ["emergency"], "token_sha256": hashlib.sha256(EMERGENCY.encode()).hexdigest()},
        {"name": "王芳", "departments": ["fire"], "token_sha256": hashlib.sha256(FIRE.encode()).hexdigest()},
    ]
    path.write_text(yaml.safe_dump({"officers": officers}, allow_unicode=True))
    return path


@pytest.fixture(scope="module")
def console() -> Iterator[Console]:
    assert (STATIC / "index.html").exists(), "the console is not built: run `make setup` (scripts/build-console.sh)"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as data:
        stack = StackRun(Path(data))
        stack.env["SMARTCITY_OFFICERS_FILE"] = str(_officers(Path(data) / "officers.yaml"))
        stack.env["SMARTCITY_ALERTS_STREAM_PING_S"] = str(PING_S)
        with stack, sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                      "--no-first-run", "--disable-sync"],
            )  # fmt: skip
            device = "console-gas-001"
            with stack.api_client() as api:
                created = api.put(
                    f"/api/devices/{device}", json=device_record(device, site="console-site", site_name=HOSTILE_SITE)
                )
            created.raise_for_status()
            yield Console(stack, browser, device, created.json()["credentials"]["password"])
            browser.close()


def _row(page: Page, device: str):  # type: ignore[no-untyped-def]
    return page.locator(f'[data-testid="alert-row"]:has-text("{device}")')


def _unfolded(console: Console, page: Page, alert_id: str):  # type: ignore[no-untyped-def]
    """The alert's row on the board, its incident unfolded (an incident of several alerts is folded at first)."""
    with console.api(EMERGENCY) as api:
        incident_id = api.get(f"/api/alerts/{alert_id}").json()["alert"]["incident_id"]
    toggle = page.locator(f'[data-testid="incident-row"][data-incident-id="{incident_id}"]').get_by_test_id(
        "incident-toggle"
    )
    expect(toggle).to_be_visible(timeout=10_000)
    if toggle.get_attribute("aria-expanded") != "true":
        toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    return page.locator(f'[data-testid="alert-row"][data-alert-id="{alert_id}"]')


def test_an_alert_arrives_is_acknowledged_and_board_and_api_agree(console: Console) -> None:
    page = console.login(EMERGENCY)
    expect(page.get_by_test_id("real-section")).to_be_visible()
    # subscribed: the server's ``ready`` event on the live stream arrived, so what follows must be pushed
    expect(page.get_by_test_id("live-state")).to_have_attribute("data-state", "live")
    console.publish({"ch4_lel": 30.0})
    sent = time.monotonic()
    row = _row(page, console.device)
    expect(row).to_be_visible(timeout=2_000)  # pushed: no reload, within 2 s of the MQTT publish
    arrived = time.monotonic() - sent
    alert_id = row.get_attribute("data-alert-id")
    assert alert_id
    assert row.get_attribute("data-level") == "orange"
    expect(row).to_contain_text(HOSTILE_SITE)  # the site's name as text, script tags and all
    page.screenshot(path=ARTIFACTS / "board.png", full_page=True)

    row.click()
    expect(page.get_by_test_id("ack-submit")).to_be_visible()
    page.get_by_test_id("ack-note").fill("已通知园区巡检 / patrol sent")
    page.get_by_test_id("ack-submit").click()
    with console.api(EMERGENCY) as api:
        deadline = time.monotonic() + 10
        while not (alert := api.get(f"/api/alerts/{alert_id}").json()["alert"])["acknowledged"]:
            assert time.monotonic() < deadline, "the acknowledgement never reached the API"
            time.sleep(0.2)
        assert alert["acknowledgement"]["note"] == "已通知园区巡检 / patrol sent"
        assert alert["acknowledgement"]["by"] == "李明"
    expect(page.locator("body")).to_contain_text("已通知园区巡检 / patrol sent")
    page.screenshot(path=ARTIFACTS / "detail.png", full_page=True)

    page.get_by_test_id("nav-board").click()
    expect(_row(page, console.device)).to_have_attribute("data-acknowledged", "true")
    on_board = set(page.locator('[data-testid="alert-row"]').evaluate_all("rows => rows.map(r => r.dataset.alertId)"))
    with console.api(EMERGENCY) as api:
        in_api = {a["id"] for a in api.get("/api/alerts", params={"state": "open"}).json()}
    assert on_board == in_api
    print(f"alert on the board {arrived * 1000:.0f} ms after the MQTT publish")

    page.get_by_test_id("nav-map").click()
    expect(page.get_by_test_id("map")).to_be_visible()
    page.wait_for_timeout(1000)
    page.screenshot(path=ARTIFACTS / "map.png")
    page.close()


def test_an_officer_of_another_department_does_not_see_it(console: Console) -> None:
    with console.api(EMERGENCY) as api:
        assert any(a["device_id"] == console.device for a in api.get("/api/alerts").json())
    page = console.login(FIRE)
    expect(page.get_by_test_id("real-section")).to_be_visible()
    page.wait_for_timeout(1500)
    expect(_row(page, console.device)).to_have_count(0)
    expect(page.locator("body")).not_to_contain_text(HOSTILE_SITE)
    page.close()


def test_a_wrong_token_is_refused_with_a_message(console: Console) -> None:
    page = console.browser.new_page()
    page.goto(f"{console.stack.api}/#/login")
    page.get_by_test_id("login-token").fill("not-a-token")
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("login-error")).to_be_visible()
    page.close()


def test_a_dead_stream_is_noticed_and_the_board_comes_back_live(console: Console) -> None:
    """The API frozen with SIGSTOP: its connections stay open and silent, no error ever reaches the browser. The
    console misses three heartbeats, shows 已断开 / disconnected, and once the API runs again reconnects by itself
    and receives new alerts without a reload."""
    device = "console-gas-002"
    record = device_record(device, site="console-site-2", site_name="龙岗 坪地 储气站", lat=22.76, lon=114.31)
    with console.api() as api:
        created = api.put(f"/api/devices/{device}", json=record)
    created.raise_for_status()
    password = created.json()["credentials"]["password"]
    page = console.login(EMERGENCY)
    state = page.get_by_test_id("live-state")
    expect(state).to_have_attribute("data-state", "live")
    console.stack.read_state()
    api_pid = console.stack.pids["api"]
    os.kill(api_pid, signal.SIGSTOP)
    try:
        frozen = time.monotonic()
        expect(state).to_have_attribute("data-state", "down", timeout=(3 * PING_S + 5) * 1000)
        noticed = time.monotonic() - frozen
        page.screenshot(path=ARTIFACTS / "disconnected.png")
    finally:
        os.kill(api_pid, signal.SIGCONT)
    expect(state).to_have_attribute("data-state", "live", timeout=20_000)
    console.publish({"ch4_lel": 30.0}, (device, password))
    expect(_row(page, device)).to_be_visible(timeout=5_000)  # pushed over the new connection
    print(f"a frozen API noticed after {noticed:.1f} s (heartbeat {PING_S} s)")
    page.close()


def _register(console: Console, device: str, site: str) -> str:
    record = device_record(device, site=site, site_name="龙岗 横岗 调压站", lat=22.65, lon=114.2)
    with console.api() as api:
        created = api.put(f"/api/devices/{device}", json=record)
    created.raise_for_status()
    return str(created.json()["credentials"]["password"])


def _raise(console: Console, device: tuple[str, str], ch4_lel: float) -> str:
    """Publish until the device's alert is open (a device registered a moment ago may not have reached the
    gateway's directory yet: its first readings are refused as unknown); its id."""
    with console.api() as api:
        deadline = time.monotonic() + 30
        while True:
            console.publish({"ch4_lel": ch4_lel}, device)
            wait = time.monotonic() + 3
            while time.monotonic() < wait:
                found = [a for a in api.get("/api/alerts").json() if a["device_id"] == device[0]]
                if found:
                    return str(found[0]["id"])
                time.sleep(0.2)
            assert time.monotonic() < deadline, f"no alert for {device[0]}"


CSP_WATCH = """window.__csp = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));"""


def test_the_console_works_under_its_content_security_policy(console: Console) -> None:
    """Every view (board, detail with its trend chart, map, devices, a device's history) under the CSP the API
    sends: nothing blocked, nothing reported."""
    answer = httpx.get(f"{console.stack.api}/")
    csp = answer.headers["content-security-policy"]
    assert "script-src 'self';" in csp
    assert "frame-ancestors 'none'" in csp
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert answer.headers["x-content-type-options"] == "nosniff"
    api_answer = httpx.get(f"{console.stack.api}/api/me", headers={"Authorization": f"Bearer {console.stack.token}"})
    assert api_answer.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"

    device = "console-gas-csp"
    alert_id = _raise(console, (device, _register(console, device, "console-site-csp")), 31.0)
    page = console.browser.new_page(viewport={"width": 1400, "height": 900})
    reported: list[str] = []
    page.on("console", lambda m: reported.append(m.text) if "Content Security Policy" in m.text else None)
    page.add_init_script(CSP_WATCH)
    page.goto(f"{console.stack.api}/#/login")
    page.get_by_test_id("login-token").fill(EMERGENCY)
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("officer")).to_be_visible()
    expect(page.get_by_test_id("live-state")).to_have_attribute("data-state", "live")
    _unfolded(console, page, alert_id).click()
    expect(page.get_by_test_id("trend-chart")).to_be_visible(timeout=10_000)
    expect(page.locator("[data-testid=trend-chart] canvas").first).to_be_visible()
    page.get_by_test_id("nav-map").click()
    expect(page.get_by_test_id("map")).to_be_visible()
    page.wait_for_timeout(1000)
    page.get_by_test_id("nav-devices").click()
    page.locator(f'[data-device-id="{device}"]').first.click()
    expect(page.get_by_test_id("device-detail")).to_be_visible()
    page.wait_for_timeout(1000)
    assert page.evaluate("window.__csp") == []
    assert reported == []
    page.close()


def test_a_removed_devices_alert_shows_its_recorded_values_not_an_error(console: Console) -> None:
    """A drill removes its fleet when it ends; the alerts stay. Their trend cannot ask for the removed device's
    readings: it says so and shows the values the alert recorded."""
    device = "console-gas-removed"
    alert_id = _raise(console, (device, _register(console, device, "console-site-removed")), 33.0)
    with console.api() as api:
        assert api.delete(f"/api/devices/{device}").status_code == 204
    page = console.login(EMERGENCY)
    # As an officer opens it: from its row on the board (a goto of the detail's address could race the console's
    # own move to the board after the login, and once did in CI).
    _unfolded(console, page, alert_id).click()
    removed = page.get_by_test_id("trend-removed")
    expect(removed).to_be_visible(timeout=10_000)
    expect(removed).to_contain_text(device)
    expect(removed).to_contain_text("33 / 25 %LEL")
    expect(page.locator("body")).not_to_contain_text("出错")
    page.close()


def test_a_cleared_alert_row_shows_the_peak_that_raised_it(console: Console) -> None:
    device = "console-gas-peak"
    password = _register(console, device, "console-site-peak")
    alert_id = _raise(console, (device, password), 55.0)
    console.publish({"ch4_lel": 12.59}, (device, password))
    page = console.login(EMERGENCY)
    row = _unfolded(console, page, alert_id)
    expect(row).to_have_attribute("data-level", "red")
    value = row.get_by_test_id("alert-value")
    expect(value).to_have_text("55 / 50 %LEL", timeout=10_000)  # not 12.59 / 20 beside a red badge
    page.close()


def test_the_devices_search_finds_a_device_beyond_the_first_page(console: Console) -> None:
    """250 devices, more than the view's page of 200: what is typed in the search is asked of the server (after a
    quarter second's pause), so a device the first page does not hold is found; the sort is the server's too."""
    fleet = [
        device_record(f"zz-fleet-{i:03d}", site=f"fleet-site-{i:03d}", site_name=f"龙岗 巡检点 {i:03d}")
        for i in range(250)
    ]
    console.stack.register(fleet)
    last = "zz-fleet-249"
    page = console.login(EMERGENCY)
    page.get_by_test_id("nav-devices").click()
    rows = page.get_by_test_id("device-row")
    expect(rows).to_have_count(200)
    expect(page.locator(f'[data-device-id="{last}"]')).to_have_count(0)

    page.get_by_test_id("device-search").press_sequentially("巡检点 249", delay=30)
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-device-id", last)
    expect(page.get_by_test_id("device-total")).to_have_attribute("data-total", "1")
    page.get_by_test_id("device-search").fill("FLEET-24")  # any case; the id
    expect(rows).to_have_count(10)
    page.screenshot(path=ARTIFACTS / "devices-search.png")

    page.get_by_test_id("device-search").fill("")
    page.get_by_test_id("device-sort").select_option("-id")
    expect(rows.first).to_have_attribute("data-device-id", last)
    expect(rows).to_have_count(200)
    page.close()


def test_the_map_clusters_2000_devices_over_the_district_basemap(console: Console) -> None:
    """2,000 devices: at the map's first zoom they are counted clusters, far fewer elements than devices, grey when
    they hold offline devices (these never reported); clicking clusters zooms in until devices are drawn one by one.
    The districts' boundaries are drawn, Longgang's apart, and an open alert sits in a pane above the clusters."""
    _raise(console, ("console-gas-map", _register(console, "console-gas-map", "console-site-map")), 32.0)
    fleet = generate_fleet(2000, seed=21, prefix="map", interval_s=3600)  # ids map-*: after console-* by id
    console.stack.register([d.model_dump(mode="json") for d in fleet.records()])
    with console.api() as api:
        total = api.get("/api/devices", params={"limit": 1}).json()["total"]
    assert total >= 2000
    page = console.login(EMERGENCY)
    page.get_by_test_id("nav-map").click()
    box = page.get_by_test_id("map")
    expect(page.locator(".map-legend")).to_contain_text(f"{total} / {total}", timeout=20_000)  # every page loaded

    assert page.locator("path.district").count() == 8  # Shenzhen's districts with a shape (no Guangming: core/geo)
    assert page.locator("path.district-home").count() == 1
    expect(page.locator(".district-name.home")).to_contain_text("龙岗区")

    clusters = page.get_by_test_id("map-cluster")
    expect(box).to_have_attribute("data-clusters", re.compile(r"^[1-9]"))
    drawn = int(box.get_attribute("data-clusters") or 0) + int(box.get_attribute("data-devices") or 0)
    counts = [int(c) for c in clusters.evaluate_all("cs => cs.map(c => c.dataset.count)")]
    assert len(counts) == int(box.get_attribute("data-clusters") or 0)
    assert drawn < total / 10, f"{drawn} markers for {total} devices"
    assert sum(counts) + int(box.get_attribute("data-devices") or 0) == total  # the whole district is in view
    assert page.locator(".cluster-offline").count() > 0
    big = max(counts)
    expect(page.locator(f'[data-testid="map-cluster"][data-count="{big}"]').first).to_have_text(
        str(big) if big < 1000 else f"{big / 1000:.1f}k"
    )

    panes = page.evaluate(
        "() => Object.fromEntries(['basemap', 'labels', 'clusters', 'incidents', 'alerts'].map("
        "n => [n, +getComputedStyle(document.querySelector(`.leaflet-${n}-pane`)).zIndex]))"
    )
    assert panes["basemap"] < panes["labels"] < panes["clusters"] < panes["incidents"] < panes["alerts"]
    expect(page.locator(".leaflet-alerts-pane path.alert-marker").first).to_be_attached()  # this test's, at least
    page.screenshot(path=ARTIFACTS / "map-clusters.png")

    for _ in range(10):  # as an officer does: click a cluster, and again, until the devices stand alone
        if int(box.get_attribute("data-devices") or 0) > 0 and int(box.get_attribute("data-zoom") or 0) > 16:
            break
        zoom = box.get_attribute("data-zoom") or ""
        clusters.first.dispatch_event("click")  # clusters overlap at their edges: a click on the element itself
        expect(box).not_to_have_attribute("data-zoom", zoom)
    assert int(box.get_attribute("data-zoom") or 0) > 16
    assert int(box.get_attribute("data-devices") or 0) > 0
    page.screenshot(path=ARTIFACTS / "map-devices.png")
    page.close()


def test_one_leaks_alerts_are_one_incident_folded_on_the_board_with_its_report(console: Console) -> None:
    """Three detectors of one leak (three sites within 100 m, far from the other tests' devices) raise three alerts:
    the board shows one incident row (level, title, "3 条告警 · 3 处"), its members folded until unfolded; the
    incident's page lists them and acknowledges all at once; its report page lists them too, with their readings."""
    devices = [f"console-leak-{n}" for n in range(3)]
    ids = []
    for n, device in enumerate(devices):
        record = device_record(
            device, site=f"console-leak-site-{n}", site_name=f"龙岗 宝龙 管廊 {n}", lat=22.70 + n * 0.0004, lon=114.40
        )
        with console.api() as api:
            created = api.put(f"/api/devices/{device}", json=record)
        created.raise_for_status()
        ids.append(_raise(console, (device, str(created.json()["credentials"]["password"])), 30.0))
    with console.api(EMERGENCY) as api:
        incident_ids = {api.get(f"/api/alerts/{i}").json()["alert"]["incident_id"] for i in ids}
    assert len(incident_ids) == 1, incident_ids
    (incident_id,) = incident_ids

    page = console.login(EMERGENCY)
    incident = page.locator(f'[data-testid="incident-row"][data-incident-id="{incident_id}"]')
    expect(incident).to_have_count(1, timeout=10_000)
    expect(incident).to_contain_text("3 条告警 · 3 处")
    for alert_id in ids:  # folded: no row of its own
        expect(page.locator(f'[data-alert-id="{alert_id}"]')).to_have_count(0)
    members = page.locator(f'[data-testid="incident-members"][data-incident-id="{incident_id}"]')
    expect(members).to_have_count(0)
    incident.get_by_test_id("incident-toggle").click()
    member_rows = members.get_by_test_id("alert-row")
    expect(member_rows).to_have_count(3)
    assert set(member_rows.evaluate_all("rows => rows.map(r => r.dataset.alertId)")) == set(ids)
    page.screenshot(path=ARTIFACTS / "board-incident.png", full_page=True)

    # the map draws the incident's area, above the device clusters
    page.get_by_test_id("nav-map").click()
    expect(page.get_by_test_id("map")).to_have_attribute("data-incident-areas", re.compile(r"^[1-9]"), timeout=10_000)
    expect(page.locator(".leaflet-incidents-pane path.incident-area")).not_to_have_count(0)
    page.screenshot(path=ARTIFACTS / "map-incident.png")
    page.go_back()
    incident = page.locator(f'[data-testid="incident-row"][data-incident-id="{incident_id}"]')
    expect(incident).to_have_count(1, timeout=10_000)

    incident.locator(".c-title").click()
    detail = page.get_by_test_id("incident-detail")
    expect(detail).to_have_attribute("data-incident-id", incident_id)
    expect(page.get_by_test_id("incident-member-table").get_by_test_id("alert-row")).to_have_count(3)
    page.get_by_test_id("incident-note").fill("已关阀 / valve shut")
    page.get_by_test_id("incident-ack").click()
    expect(detail).to_have_attribute("data-acknowledged", "true", timeout=10_000)
    with console.api(EMERGENCY) as api:
        answer = api.get(f"/api/incidents/{incident_id}").json()
    assert answer["incident"]["acknowledged"]
    assert all(m["alert"]["acknowledgement"]["note"] == "已关阀 / valve shut" for m in answer["alerts"])
    page.screenshot(path=ARTIFACTS / "incident.png", full_page=True)

    page.get_by_test_id("incident-report-link").click()
    report = page.get_by_test_id("incident-report")
    expect(report).to_be_visible(timeout=15_000)
    expect(report.get_by_test_id("incident-member-table").get_by_test_id("alert-row")).to_have_count(3)
    for device in devices:
        expect(report.get_by_test_id("incident-member-table")).to_contain_text(device)
    expect(report.get_by_test_id("report-series")).to_have_count(3)
    expect(report.get_by_test_id("report-departments")).to_contain_text("李明")
    page.screenshot(path=ARTIFACTS / "incident-report.png", full_page=True)
    page.close()
