"""Faust's aiokafka transport with a configurable fetch wait.

Faust 0.15 builds its consumer with ``fetch_max_wait_ms=1500`` and no setting to change it. A broker answers a
fetch when data arrives or when that wait ends; Tansu answers only when the wait ends, so on the one-machine stack
every quiet-topic hop (a finding to the site agent, a clock tick) would cost 1.5 s. This transport sets the wait
from ``streams_fetch_wait_ms`` before the consumer starts. It is selected by the broker URL scheme ``smartcity+kafka``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import aiokafka
from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as driver

SCHEME = "smartcity+kafka"


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    fetch_wait_ms: ClassVar[int] = 50

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.fetch_wait_ms  # read by the fetcher when the consumer starts
        return consumer


class _Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(driver.Transport):
    Consumer = _Consumer


def install(fetch_wait_ms: int) -> None:
    """Register the scheme (idempotent) and set the fetch wait for consumers created from now on."""
    _ConsumerThread.fetch_wait_ms = fetch_wait_ms
    TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"
