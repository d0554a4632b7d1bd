"""The collector's time is counted per generation, and what a service holds once started is frozen out of its walks."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from core.gc_tuning import GcSettings, GcTimer, freeze_long_lived


@pytest.fixture
def timer() -> Iterator[tuple[GcTimer, CollectorRegistry]]:
    registry = CollectorRegistry()
    made = GcTimer(registry)
    yield made, registry
    made.close()
    gc.unfreeze()


def test_each_collection_is_counted_with_its_time(timer: tuple[GcTimer, CollectorRegistry]) -> None:
    _, registry = timer
    for generation in (0, 2, 2):
        gc.collect(generation)
    runs = {g: registry.get_sample_value("smartcity_gc_collections_total", {"generation": g}) for g in "02"}
    assert runs["0"] is not None
    assert runs["0"] >= 1
    assert runs["2"] is not None
    assert runs["2"] >= 2
    assert (registry.get_sample_value("smartcity_gc_seconds_total", {"generation": "2"}) or 0) > 0


def test_what_is_alive_once_started_is_frozen_and_the_count_is_exported(
    timer: tuple[GcTimer, CollectorRegistry],
) -> None:
    _, registry = timer
    held = [{"device": n} for n in range(10_000)]  # a directory
    frozen = freeze_long_lived(GcSettings(gc_freeze=True))
    assert frozen >= len(held)
    # a frozen object freed by its reference count leaves the count: the exported gauge reads it as it is now
    assert len(held) <= (registry.get_sample_value("smartcity_gc_frozen_objects") or 0) <= frozen
    walked = {id(o) for generation in range(3) for o in gc.get_objects(generation=generation)}
    assert id(held) not in walked
    assert id(held[0]) not in walked


def test_the_freeze_can_be_turned_off_to_measure_it(timer: tuple[GcTimer, CollectorRegistry]) -> None:
    gc.unfreeze()
    assert freeze_long_lived(GcSettings(gc_freeze=False)) == 0
    assert gc.get_freeze_count() == 0


def test_a_closed_timer_stops_counting() -> None:
    registry = CollectorRegistry()
    made = GcTimer(registry)
    made.close()
    gc.collect(0)
    assert registry.get_sample_value("smartcity_gc_collections_total", {"generation": "0"}) is None
