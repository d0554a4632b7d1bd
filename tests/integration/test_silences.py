"""Silences have bounds (docs/alerts.md): a longest duration, a most per department, ended ones forgotten (in Kafka
too, so a restart does not bring them back), and ending one is for its creator by officer id, not display name."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from alerts.officers import token_hash
from alerts.settings import AlertsSettings
from core.kafka.reading import read_table
from tests.alerts_util import RigFactory, rig_factory
from tests.waiting import eventually

pytestmark = pytest.mark.integration

DAY_MS = 86_400_000
# Two officers of one department who share a display name (two 李明 on the same duty roster).
FIRST, SECOND = "first-li-ming-token", "second-li-ming-token"


@pytest.fixture
def rig(alerts_settings: AlertsSettings, tmp_path: Path) -> RigFactory:
    officers = tmp_path / "officers.yaml"
    officers.write_text(
        "officers:\n"
        f"  - {{name: 李明, departments: [emergency], token_sha256: {token_hash(FIRST)}}}\n"
        f"  - {{name: 李明, departments: [emergency], id: E1002, token_sha256: {token_hash(SECOND)}}}\n"
    )
    return rig_factory(alerts_settings, officers)


def _as(url: str, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"})


def _silence(ends_at: int, **matchers: str) -> dict[str, object]:
    return {"matchers": matchers or {"department": "emergency"}, "reason": "检修 maintenance", "ends_at": ends_at}


async def test_a_silence_lasts_at_most_the_longest_duration(rig: RigFactory) -> None:
    async with rig() as r:
        now = int(time.time() * 1000)
        too_long = await r.http.post("/api/silences", json=_silence(now + 8 * DAY_MS))
        assert too_long.status_code == 422, too_long.text
        [error] = too_long.json()["detail"]
        assert error["loc"] == ["body", "ends_at"]
        assert "at most 7 days" in error["msg"]
        assert "SMARTCITY_ALERTS_SILENCE_MAX_S" in error["msg"]
        ahead = {**_silence(now + 9 * DAY_MS), "starts_at": now + 3 * DAY_MS}  # a maintenance window of 6 days
        assert (await r.http.post("/api/silences", json=ahead)).status_code == 201
        past = {**_silence(now - 1000), "starts_at": now - 60_000}
        assert (await r.http.post("/api/silences", json=past)).status_code == 422
    async with rig(alerts_silence_max_s=3600) as r:
        refused = await r.http.post("/api/silences", json=_silence(int(time.time() * 1000) + 2 * 3600_000))
        assert refused.status_code == 422
        assert "at most 1 h" in refused.json()["detail"][0]["msg"]


async def test_a_department_has_at_most_so_many_silences(rig: RigFactory) -> None:
    async with rig(alerts_silences_per_department=2) as r, _as(r.url, FIRST) as officer:
        ends = int(time.time() * 1000) + 600_000
        made = [await officer.post("/api/silences", json=_silence(ends)) for _ in range(2)]
        assert [m.status_code for m in made] == [201, 201]
        third = await officer.post("/api/silences", json=_silence(ends))
        assert third.status_code == 409, third.text
        assert "department emergency has 2 silences" in third.json()["detail"]
        fire = await r.http.post("/api/silences", json=_silence(ends, department="fire"))
        assert fire.status_code == 201, "another department's count is its own"
        assert (await officer.delete(f"/api/silences/{made[0].json()['id']}")).status_code == 200
        assert (await officer.post("/api/silences", json=_silence(ends))).status_code == 201, "an ended one frees"


async def test_only_its_creator_by_id_or_an_administrator_ends_a_silence(rig: RigFactory) -> None:
    async with rig() as r, _as(r.url, FIRST) as first, _as(r.url, SECOND) as second:
        ends = int(time.time() * 1000) + 600_000
        made = await first.post("/api/silences", json=_silence(ends))
        assert made.status_code == 201, made.text
        silence = made.json()
        assert silence["created_by"] == "李明"
        assert "created_by_id" not in silence, "the creator's id is the service's, not shown"
        refused = await second.delete(f"/api/silences/{silence['id']}")
        assert refused.status_code == 403, "the same display name is not the same officer"
        assert "only its creator or an administrator" in refused.json()["detail"]
        assert (await first.delete(f"/api/silences/{silence['id']}")).status_code == 200
        theirs = (await second.post("/api/silences", json=_silence(ends))).json()
        assert (await first.delete(f"/api/silences/{theirs['id']}")).status_code == 403
        assert (await r.http.delete(f"/api/silences/{theirs['id']}")).status_code == 200, "an administrator may"
        assert (await r.http.delete("/api/silences/nope")).status_code == 404


async def test_ended_silences_are_forgotten_and_stay_forgotten_after_a_restart(rig: RigFactory) -> None:
    async with rig(alerts_window_retention_s=1) as r:
        now = int(time.time() * 1000)
        ended = (await r.http.post("/api/silences", json=_silence(now + 600_000))).json()
        kept = (await r.http.post("/api/silences", json=_silence(now + 600_000))).json()
        drill = await r.http.post("/api/drills", json={"name": "演练", "site_ids": ["s"], "ends_at": now + 600_000})
        assert (await r.http.delete(f"/api/silences/{ended['id']}")).status_code == 200
        assert (await r.http.delete(f"/api/drills/{drill.json()['id']}")).status_code == 200
        assert await eventually(lambda: ended["id"] not in r.service.windows.silences), "never forgotten"
        assert not r.service.windows.drills
        assert set(r.service.windows.silences) == {kept["id"]}
        control = await read_table(r.settings.kafka_bootstrap, r.settings.topic_alert_control)
        assert control[f"silence:{ended['id']}"] is None, "a tombstone in Kafka"
    async with rig(alerts_window_retention_s=1) as again:
        assert set(again.service.windows.silences) == {kept["id"]}
        assert [s["id"] for s in (await again.http.get("/api/silences")).json()] == [kept["id"]]
