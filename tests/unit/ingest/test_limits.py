"""The per-device rate limit: never more than the burst plus the rate over any stretch of time; a device within its
rate is never refused; one device's flood costs another nothing."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ingest.limits import DeviceRateLimit


@given(
    rate=st.floats(0.5, 100),
    burst=st.integers(1, 300),
    gaps=st.lists(st.floats(0, 0.5), min_size=1, max_size=500),
)
def test_a_flood_gets_at_most_the_burst_plus_the_rate(rate: float, burst: int, gaps: list[float]) -> None:
    limit = DeviceRateLimit(rate, burst)
    now, allowed = 0.0, 0
    for gap in gaps:
        now += gap
        allowed += limit.allow("chatty", now)
    assert allowed <= burst + rate * now + 1


@given(rate=st.floats(1, 50), burst=st.integers(1, 50), count=st.integers(1, 300))
def test_a_device_within_its_rate_is_never_refused(rate: float, burst: int, count: int) -> None:
    limit = DeviceRateLimit(rate, burst)
    assert all(limit.allow("steady", i / rate) for i in range(count))


def test_one_devices_flood_does_not_touch_another() -> None:
    limit = DeviceRateLimit(rate=5, burst=10)
    assert sum(limit.allow("chatty", 0.0) for _ in range(1_000)) == 10
    assert all(limit.allow("quiet", t / 5) for t in range(50))


def test_the_device_is_told_at_most_once_a_second() -> None:
    limit = DeviceRateLimit(rate=1, burst=1)
    told = 0
    for i in range(300):  # 3 s of a flood at 100 messages/s
        now = i / 100
        if not limit.allow("chatty", now):
            told += limit.tell("chatty", now)
    assert told == 3


def test_the_table_is_bounded() -> None:
    limit = DeviceRateLimit(rate=1, burst=1, max_devices=100)
    for i in range(10_000):
        limit.allow(f"made-up-{i}", 0.0)
    assert len(limit) <= 100
