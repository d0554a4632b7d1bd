"""The autosave benchmark's machinery on a real Mosquitto: a broker told not to save does not, one told to save every
2 s does, and the state both serve is the one filled (retained statuses and a gateway's queue survive a restart)."""

from __future__ import annotations

from pathlib import Path

import pytest

from smartcity.bench.mosquitto import SAVE_EVERY_S, Scenario, measure

pytestmark = pytest.mark.integration


def test_saves_are_counted_only_on_the_broker_that_saves(tmp_path: Path) -> None:
    result = measure(tmp_path, Scenario("small", 2_000, 2_000), seconds=3 * SAVE_EVERY_S + 1)
    assert result.quiet.saves == 0
    assert result.saving.saves >= 2
    assert result.db_mib > 0.3, "2,000 retained statuses and 2,000 queued readings were persisted"
    assert result.quiet.probes > 100
    assert result.saving.probes > 100
