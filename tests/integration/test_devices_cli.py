"""``smartcity devices import/export`` against a real API process, Kafka and Mosquitto with dynamic security."""

from __future__ import annotations

import csv
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from core.process import ManagedProcess, free_port
from devices.mqtt_accounts import api_acls
from ingest.settings import GatewaySettings
from smartcity.stack.services import Launch, http_ok
from tests.integration.conftest import FileSecured, settings_env
from tests.mqtt_util import CONTROL_PASSWORD, CONTROL_USER, Client

pytestmark = pytest.mark.integration

TOKEN = "cli-test-token"
HEADER = "id,kind,site_id,site_name,lat,lon,interval_s,departments,thresholds.ch4_lel.orange,meta.model\n"


@pytest.fixture
async def api_url(
    file_secured: FileSecured, gateway_settings: GatewaySettings, tmp_path: Path, unique: str
) -> AsyncIterator[str]:
    """A real ``smartcity api`` process issuing accounts in Mosquitto's password file (as ``smartcity up`` does)."""
    password = uuid.uuid4().hex
    await file_secured.accounts().ensure_account("smartcity-api", password, api_acls())
    with _api(
        gateway_settings.model_copy(
            update={
                "mqtt_url": file_secured.launch.url,
                "mqtt_username": "smartcity-api",
                "topic_devices": f"devices.{unique}",
            }
        ),
        tmp_path,
        {
            "SMARTCITY_MQTT_PASSWORD": password,
            "SMARTCITY_MQTT_ACCOUNTS": "files",
            "SMARTCITY_MQTT_AUTH_DIR": str(file_secured.auth_dir),
            "SMARTCITY_MOSQUITTO_PID_FILE": str(file_secured.pid_file),
        },
    ) as url:
        yield url


@pytest.fixture
def dynsec_api_url(
    secured: tuple[Launch, Path], gateway_settings: GatewaySettings, tmp_path: Path, unique: str
) -> Iterator[str]:
    """The same, issuing accounts through the dynamic-security plugin."""
    with _api(
        gateway_settings.model_copy(
            update={"mqtt_url": secured[0].url, "mqtt_username": CONTROL_USER, "topic_devices": f"devices.{unique}"}
        ),
        tmp_path,
        {"SMARTCITY_MQTT_PASSWORD": CONTROL_PASSWORD, "SMARTCITY_MQTT_ACCOUNTS": "dynsec"},
    ) as url:
        yield url


@contextmanager
def _api(settings: GatewaySettings, tmp_path: Path, extra: dict[str, str]) -> Iterator[str]:
    port = free_port()
    env = (
        settings_env(settings)
        | extra
        | {
            "SMARTCITY_HTTP_PORT": str(port),
            "SMARTCITY_API_TOKEN": TOKEN,
            "SMARTCITY_REGISTRY_DB": str(tmp_path / "registry.db"),
        }
    )
    api = ManagedProcess("api", [sys.executable, "-m", "smartcity", "api"], tmp_path / "api.log", env=env)
    api.start()
    url = f"http://127.0.0.1:{port}"
    try:
        api.wait_healthy(lambda: http_ok(f"{url}/healthz", (200,)), 20)
        yield url
    finally:
        api.stop()


def _cli(api_url: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SMARTCITY_API_TOKEN": TOKEN, "SMARTCITY_API_URL": api_url}
    return subprocess.run(
        [sys.executable, "-m", "smartcity", "devices", *args], capture_output=True, text=True, env=env, cwd=cwd,
        timeout=600,
    )  # fmt: skip


def _total(api_url: str) -> int:
    response = httpx.get(f"{api_url}/api/devices", params={"limit": 1}, headers={"Authorization": f"Bearer {TOKEN}"})
    return int(response.json()["total"])


FLEET = 10_000


def test_ten_thousand_devices_with_credentials_in_one_command(
    api_url: str, file_secured: FileSecured, tmp_path: Path, unique: str
) -> None:
    rows = [f"g{unique}-{i:05d},gas,S{i % 80},园区 {i % 80},22.7,114.3,60,emergency,25,GT-100\n" for i in range(FLEET)]
    source = tmp_path / "fleet.csv"
    source.write_text(HEADER + "".join(rows), encoding="utf-8")
    creds = tmp_path / "creds.csv"
    done = _cli(api_url, "import", str(source), "--credentials-out", str(creds), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"imported {FLEET} devices ({FLEET} new, 0 replaced)" in done.stderr
    print(done.stderr.splitlines()[-1])  # the import rate, for docs/benchmarks.md
    assert _total(api_url) == FLEET
    with creds.open() as f:
        issued = list(csv.DictReader(f))
    assert len(issued) == FLEET
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    # Any one of them can connect at once.
    sample = issued[4321]
    client = Client(file_secured.launch.url, sample["username"], sample["password"])
    client.close()
    assert client.connect_rc is not None
    assert not client.connect_rc.is_failure


def test_a_fleet_through_the_dynamic_security_plugin(dynsec_api_url: str, tmp_path: Path, unique: str) -> None:
    rows = [f"d{unique}-{i:03d},fire,B{i % 9},大厦 {i % 9},22.7,114.3,30,fire,,\n" for i in range(200)]
    source = tmp_path / "fleet.csv"
    source.write_text(HEADER + "".join(rows), encoding="utf-8")
    done = _cli(dynsec_api_url, "import", str(source), "--credentials-out", str(tmp_path / "c.csv"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "imported 200 devices (200 new, 0 replaced)" in done.stderr


def test_bad_rows_are_reported_and_the_rest_imported(api_url: str, tmp_path: Path, unique: str) -> None:
    source = tmp_path / "mixed.csv"
    source.write_text(
        HEADER
        + f"a{unique}-1,gas,S1,Plant,22.7,114.3,60,emergency,25,\n"
        + f"a{unique}-2,lava,S1,Plant,22.7,114.3,60,emergency,,\n"
        + f"a{unique}-3,gas,S1,Plant,22.7,214.3,60,emergency,,\n"
        + f"a{unique}-4,gas,S1,Plant,22.7,114.3,60,emergency,,\n",
        encoding="utf-8",
    )
    done = _cli(api_url, "import", str(source), "--credentials-out", str(tmp_path / "c.csv"), cwd=tmp_path)
    assert done.returncode == 1
    assert f"{source}:3 kind:" in done.stderr
    assert f"{source}:4 lon:" in done.stderr
    assert "imported 2 devices (2 new, 0 replaced)" in done.stderr
    assert _total(api_url) == 2


def test_export_then_import_replaces_without_new_credentials(api_url: str, tmp_path: Path, unique: str) -> None:
    source = tmp_path / "fleet.yaml"
    source.write_text(
        "devices:\n"
        + "".join(
            f"  - {{id: w{unique}-{i}, kind: water, site_id: R1, site_name: 龙岗河, lat: 22.7, lon: 114.2, "
            f"interval_s: 300, departments: [water], thresholds: {{level_m: {{orange: 3.2}}}}}}\n"
            for i in range(5)
        ),
        encoding="utf-8",
    )
    assert _cli(api_url, "import", str(source), "--credentials-out", str(tmp_path / "c.csv"),
                cwd=tmp_path).returncode == 0  # fmt: skip
    exported = tmp_path / "export.csv"
    done = _cli(api_url, "export", str(exported), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert exported.read_text(encoding="utf-8").count("\n") == 6
    again = _cli(api_url, "import", str(exported), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "(0 new, 5 replaced)" in again.stderr


def test_files_as_spreadsheets_save_them(api_url: str, tmp_path: Path, unique: str) -> None:
    """What Excel saves on a zh-CN desktop (GBK) is read as GB18030, saying so; a file in no encoding we read, a
    column twice, or overrides out of order are errors, not a traceback or a silent pick; an exported site name that
    a spreadsheet would run is written as text and imported back as it was."""

    def said(done: subprocess.CompletedProcess[str]) -> str:  # rich wraps its lines at 80 columns
        return " ".join(done.stderr.split())

    excel = tmp_path / "excel.csv"
    excel.write_bytes((HEADER + f"x{unique}-1,gas,S1,-1层 燃气表间,22.7,114.3,60,emergency,25,\n").encode("gbk"))
    done = _cli(api_url, "import", excel.name, "--credentials-out", str(tmp_path / "c1.csv"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"note: {excel.name} is not UTF-8: read as GB18030" in said(done)
    token = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.get(f"{api_url}/api/devices/x{unique}-1", headers=token).json()["site_name"] == "-1层 燃气表间"

    broken = tmp_path / "broken.csv"
    broken.write_bytes(HEADER.encode() + b"\x80\xff\n")
    done = _cli(api_url, "import", broken.name, "--credentials-out", str(tmp_path / "c2.csv"), cwd=tmp_path)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert f"{broken.name}:2 (file): neither UTF-8 (invalid start byte at byte {len(HEADER)}) nor GB18030" in said(done)

    twice = tmp_path / "twice.csv"
    twice.write_text(HEADER.replace("meta.model", "thresholds.ch4_lel.orange") + "y,gas,S,P,22,114,60,emergency,1,2\n")
    done = _cli(api_url, "import", twice.name, "--credentials-out", str(tmp_path / "c3.csv"), cwd=tmp_path)
    assert done.returncode == 1
    assert f"{twice.name}:1 thresholds.ch4_lel.orange: column appears more than once (columns 9 and 10)" in said(done)

    reversed_levels = tmp_path / "reversed.csv"
    reversed_levels.write_text(
        "id,kind,site_id,site_name,lat,lon,interval_s,departments,thresholds.ch4_lel.orange,thresholds.ch4_lel.red\n"
        f"z{unique},gas,S,P,22.7,114.3,60,emergency,50,25\n"
    )
    done = _cli(api_url, "import", reversed_levels.name, "--credentials-out", str(tmp_path / "c4.csv"), cwd=tmp_path)
    assert done.returncode == 1
    assert f"{reversed_levels.name}:2 thresholds.ch4_lel: ch4_lel: level red (25.0) must be above level orange" in said(
        done
    )

    exported = tmp_path / "export.csv"
    assert _cli(api_url, "export", str(exported), cwd=tmp_path).returncode == 0
    assert f"x{unique}-1,gas,S1,'-1层 燃气表间," in exported.read_text(encoding="utf-8")
    again = _cli(api_url, "import", str(exported), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert httpx.get(f"{api_url}/api/devices/x{unique}-1", headers=token).json()["site_name"] == "-1层 燃气表间"
