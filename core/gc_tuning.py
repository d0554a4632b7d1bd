"""The cyclic garbage collector in our long-running services: its time as a metric, and what is long-lived kept out
of its walks.

CPython's cyclic collector runs when allocations outnumber deallocations by 700 (generation 0), and every tenth
and hundredth of those it walks the older generations too: every container object the process holds. A service
that holds a big directory (the gateway's and the stream worker's registered devices, the API's registry) walks it
again and again while doing nothing with it. ``freeze_long_lived`` moves everything alive after start-up into the
permanent generation (``gc.freeze``), never walked again; what is allocated later is collected as before.

``GcTimer`` counts the seconds each generation's collections take (``smartcity_gc_seconds_total``) and how many
ran (``smartcity_gc_collections_total``), from ``gc.callbacks``: what ``freeze_long_lived`` saves is measured, not
assumed (docs/benchmarks.md).
"""

from __future__ import annotations

import gc
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import Field

from core.settings import _Base


class GcSettings(_Base):
    gc_freeze: bool = Field(
        True,
        description="move what a service holds once started (its directory, modules) out of the cyclic collector's "
        "walks (gc.freeze); off to measure the difference",
    )


class GcTimer:
    """The collector's time and runs per generation, counted into ``registry``. One per process."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.seconds = Counter(
            "smartcity_gc_seconds", "time spent in the cyclic garbage collector", ["generation"], registry=registry
        )
        self.collections = Counter(
            "smartcity_gc_collections", "runs of the cyclic garbage collector", ["generation"], registry=registry
        )
        frozen = Gauge("smartcity_gc_frozen_objects", "objects moved out of the collector's walks", registry=registry)
        frozen.set_function(gc.get_freeze_count)
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        generation = str(info["generation"])
        self.seconds.labels(generation).inc(time.perf_counter() - self._started)
        self.collections.labels(generation).inc()

    def close(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)


def freeze_long_lived(settings: GcSettings | None = None) -> int:
    """Collect once, then freeze what is left; the number of objects frozen (0 when the setting is off)."""
    if not (settings or GcSettings()).gc_freeze:
        return 0
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
