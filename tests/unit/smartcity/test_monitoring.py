"""The monitoring shipped with compose.yaml is right by construction: Prometheus's own tool accepts the scrape config
and the alert rules and passes their unit tests, the Grafana dashboard is well formed, and every metric the rules and
the dashboard ask for is one our services register.

promtool comes from the Debian package ``prometheus`` (scripts/setup.sh installs it); without it these tests fail.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from alerts.metrics import AlertMetrics
from devices.health import Status
from devices.registry import DeviceCounts
from ingest.metrics import GatewayMetrics
from storage.metrics import WriterMetrics
from streams.metrics import StreamMetrics

ROOT = Path(__file__).resolve().parents[3]
PROMETHEUS = ROOT / "deploy/prometheus"
DASHBOARD_FILE = ROOT / "deploy/grafana/dashboards/smartcity.json"
DASHBOARD: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text())
RULES: dict[str, Any] = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
ALERTS = [rule for group in RULES["groups"] for rule in group["rules"] if "alert" in rule]
PANELS: list[dict[str, Any]] = DASHBOARD["panels"]
GRAPHS = [p for p in PANELS if p["type"] != "row"]

METRIC = re.compile(r"\bsmartcity_[a-z_]+")
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")
CJK = re.compile(r"[\u4e00-\u9fff]")


def _bilingual(chinese: str, english: str) -> bool:
    """``中文 / English``: Chinese first, then English with no Chinese in it."""
    return bool(CJK.search(chinese)) and bool(english) and not CJK.search(english)


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: install the Debian package prometheus (sudo apt-get install prometheus)")
    return found


def _run(*command: str, cwd: Path = ROOT) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{' '.join(command)}\n{done.stdout}{done.stderr}"


def test_scrape_config_is_valid_in_the_repository_and_in_the_container(promtool: str, tmp_path: Path) -> None:
    _run(promtool, "check", "config", "deploy/prometheus/prometheus.yml")
    # compose.yaml mounts deploy/prometheus at /etc/prometheus: rule_files must resolve beside the config file.
    container = tmp_path / "etc-prometheus"
    shutil.copytree(PROMETHEUS, container)
    _run(promtool, "check", "config", str(container / "prometheus.yml"), cwd=tmp_path)


def test_scrape_config_names_the_alert_rules_and_scrapes_every_15_seconds() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    assert config["global"]["scrape_interval"] == "15s"
    assert {job["job_name"] for job in config["scrape_configs"]} == {"api", "gateway", "streams", "writer"}


def test_alert_rules_are_valid(promtool: str) -> None:
    _run(promtool, "check", "rules", "deploy/prometheus/alerts.yml")


def test_alert_rules_pass_their_unit_tests(promtool: str) -> None:
    _run(promtool, "test", "rules", "deploy/prometheus/alerts.test.yml")


def test_alert_rule_tests_cover_the_essentials() -> None:
    tests = yaml.safe_load((PROMETHEUS / "alerts.test.yml").read_text())["tests"]
    fired = {case["alertname"] for test in tests for case in test.get("alert_rule_test", []) if case.get("exp_alerts")}
    assert {"SmartCityServiceDown", "SmartCityRulesLagHigh", "SmartCityConsumerLagGrowing"} <= fired
    assert {"SmartCityRefusedRateHigh", "SmartCityAlertUndelivered"} <= fired


def test_every_alert_has_a_severity_and_chinese_then_english_annotations() -> None:
    names = [rule["alert"] for rule in ALERTS]
    assert len(names) == len(set(names))
    for rule in ALERTS:
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        chinese, _, english = rule["annotations"]["summary"].partition(" / ")
        assert _bilingual(chinese, english), rule["alert"]
        description = rule["annotations"]["description"]
        assert CJK.search(description), rule["alert"]
        assert re.search(r"[A-Za-z]{4,}", description), rule["alert"]


def test_the_platform_alerts_asked_for_exist() -> None:
    exprs = " ".join(rule["expr"] for rule in ALERTS)
    for needed in (
        "up{",
        "smartcity_streams_consumer_lag_records",
        "smartcity_writer_consumer_lag_records",
        "smartcity_alerts_consumer_lag_records",
        "smartcity_streams_event_lag_seconds",
        "smartcity_ingest_refusals_total",
        "smartcity_ingest_mqtt_connected",
        "smartcity_ingest_kafka_ok",
        "smartcity_ingest_kafka_errors_total",
        "smartcity_ingest_unacked_messages",
        "smartcity_writer_retries_total",
        "smartcity_writer_influx_up",
        "smartcity_writer_refused_points_total",
        'outcome="undelivered"',
        "smartcity_alerts_mqtt_connected",
        'smartcity_devices{status="offline"}',
    ):
        assert needed in exprs, needed


def _registered() -> tuple[set[str], set[str]]:
    """(every series name our services expose, the histogram families among them), from the real collectors."""
    registry = CollectorRegistry()
    GatewayMetrics.create(registry)
    StreamMetrics.create(registry)
    AlertMetrics.create(registry)
    WriterMetrics.create(registry)
    exposed, histograms = {DeviceCounts.name}, set()  # the API's device gauge needs a registry: its name is enough
    for family in registry.collect():
        exposed.add(f"{family.name}_total" if family.type == "counter" else family.name)
        if family.type == "histogram":
            histograms.add(family.name)
    return exposed, histograms


def test_the_device_status_labels_used_are_real() -> None:
    exprs = " ".join([rule["expr"] for rule in ALERTS] + _dashboard_exprs())
    used = set(re.findall(r'smartcity_devices\{status="(\w+)"\}', exprs))
    assert used, "nothing asks for devices by status"
    assert used <= {s.value for s in Status}


def _dashboard_exprs() -> list[str]:
    return [target["expr"] for panel in GRAPHS for target in panel["targets"]]


def test_every_metric_the_rules_and_the_dashboard_use_is_registered() -> None:
    exposed, histograms = _registered()
    used = set(METRIC.findall(" ".join([rule["expr"] for rule in ALERTS] + _dashboard_exprs())))
    missing = set()
    for name in used:
        base = next((name.removesuffix(s) for s in HISTOGRAM_SERIES if name.endswith(s)), None)
        if name not in exposed and base not in histograms:
            missing.add(name)
    assert not missing, f"metrics no service registers: {sorted(missing)}"


def test_dashboard_identity() -> None:
    assert DASHBOARD["uid"] == "smartcity-pipeline"
    assert DASHBOARD["title"] == "SmartCity 管线 / pipeline"
    assert 36 <= DASHBOARD["schemaVersion"] <= 41


def test_dashboard_panels_are_well_formed() -> None:
    ids = [panel["id"] for panel in PANELS]
    assert all(isinstance(i, int) for i in ids)
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in PANELS:
        assert panel["type"], panel
        assert panel["title"], panel
        grid = panel["gridPos"]
        assert {"h", "w", "x", "y"} <= set(grid), panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        chinese, _, english = panel["title"].partition(" / ")
        assert _bilingual(chinese, english), f"title not Chinese / English: {panel['title']}"
    for panel in GRAPHS:
        assert panel["targets"], f"{panel['title']}: no queries"
        assert panel["datasource"]["uid"] == "prometheus", panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == {"type": "prometheus", "uid": "prometheus"}, panel["title"]
            assert target["expr"].strip(), panel["title"]


def test_dashboard_panels_do_not_overlap() -> None:
    taken: dict[tuple[int, int], str] = {}
    for panel in PANELS:
        g = panel["gridPos"]
        for cell in ((x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])):
            assert cell not in taken, f"{panel['title']} overlaps {taken[cell]}"
            taken[cell] = panel["title"]


def test_dashboard_has_the_rows_asked_for() -> None:
    rows = " ".join(p["title"] for p in PANELS if p["type"] == "row").lower()
    for topic in ("throughput", "lag", "alert flow", "device health", "influxdb writer", "channel deliveries"):
        assert topic in rows, topic


def test_dashboard_queries_are_promql(promtool: str, tmp_path: Path) -> None:
    """promtool has no query linter, but it parses recording rules: each panel query becomes one, with Grafana's
    own interval variables replaced as Grafana does before sending it."""
    rules = [
        {"record": f"dashboard:panel{panel['id']}:{target['refId']}", "expr": _as_promql(target["expr"])}
        for panel in GRAPHS
        for target in panel["targets"]
    ]
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, allow_unicode=True))
    _run(promtool, "check", "rules", str(path))


def _as_promql(expr: str) -> str:
    return expr.replace("$__rate_interval", "1m").replace("$__interval", "1m")


def test_grafana_datasource_and_dashboard_provider() -> None:
    provisioning = ROOT / "deploy/grafana/provisioning"
    source = yaml.safe_load((provisioning / "datasources/prometheus.yaml").read_text())["datasources"][0]
    assert (source["uid"], source["type"], source["url"]) == ("prometheus", "prometheus", "http://prometheus:9090")
    provider = yaml.safe_load((provisioning / "dashboards/smartcity.yaml").read_text())["providers"][0]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
