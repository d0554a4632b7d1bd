"""Kafka requests a process sends, by API (Produce, Fetch, OffsetCommit, Heartbeat, ...), as a Prometheus counter.

On one machine the broker's CPU follows requests, not readings (docs/benchmarks.md, "End to end"): a fetch that
finds one record costs Tansu and its store about as much as one that finds a thousand. The benchmark reads this
counter from every service to say which client asks for what, and how often.

aiokafka has no hook for its requests: the first ``count_kafka_requests`` wraps ``AIOKafkaConnection.send``, through
which every request of the process passes (our consumers and producers, and Faust's, which are aiokafka's). The
wrapper counts and calls the original. The counter is the process's, whatever registry shows it.
"""

from __future__ import annotations

import contextlib
from typing import Any

from aiokafka.conn import AIOKafkaConnection
from prometheus_client import CollectorRegistry, Counter

METRIC = "smartcity_kafka_requests"
REQUESTS = Counter(METRIC, "Kafka requests this process sent, by API", ["api"], registry=None)
_original_send = AIOKafkaConnection.send


def api_name(request: Any) -> str:
    """``FetchRequest`` -> ``Fetch``: the request's class, as Kafka's protocol guide names the API."""
    return type(request).__name__.removesuffix("Request")


def _counted_send(conn: AIOKafkaConnection, request: Any, expect_response: bool = True) -> Any:
    REQUESTS.labels(api_name(request)).inc()
    return _original_send(conn, request, expect_response)


def count_kafka_requests(registry: CollectorRegistry) -> None:
    """Count this process's Kafka requests from now on, and show them in ``registry``."""
    AIOKafkaConnection.send = _counted_send
    with contextlib.suppress(ValueError):  # already shown there
        registry.register(REQUESTS)
