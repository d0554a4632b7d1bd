"""The InfluxDB writer's Prometheus collectors, on the Prometheus registry they are given. No device ids in labels."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from core.kafka.lag import ConsumerMetrics


@dataclass(frozen=True, slots=True)
class WriterMetrics:
    readings: Counter
    duplicates: Counter
    undecodable: Counter
    refused: Counter
    retries: Counter
    batch_points: Histogram
    batch_seconds: Histogram
    influx_up: Gauge
    backfilled_intervals: Counter
    aggregate_points: Counter
    late_device_intervals: Counter
    consumer: ConsumerMetrics

    @classmethod
    def create(cls, prometheus: CollectorRegistry) -> WriterMetrics:
        ns = "smartcity_writer"
        return cls(
            readings=Counter(f"{ns}_readings", "Readings written to InfluxDB", registry=prometheus),
            duplicates=Counter(
                f"{ns}_duplicate_readings",
                "Readings not written: a repeat of a (device, seq) this writer already wrote (a redelivery)",
                registry=prometheus,
            ),
            undecodable=Counter(
                f"{ns}_undecodable_records", "Kafka records skipped as unreadable", registry=prometheus
            ),
            refused=Counter(
                f"{ns}_refused_points", "Points InfluxDB refused (sent to the refused topic)", registry=prometheus
            ),
            retries=Counter(f"{ns}_retries", "Batch writes retried, by error", ["error"], registry=prometheus),
            batch_points=Histogram(
                f"{ns}_batch_points",
                "Points per InfluxDB write",
                buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10_000, 50_000),
                registry=prometheus,
            ),
            batch_seconds=Histogram(
                f"{ns}_batch_write_seconds",
                "InfluxDB write latency per batch (with retries)",
                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
                registry=prometheus,
            ),
            backfilled_intervals=Counter(
                f"{ns}_backfilled_intervals",
                "Hours of agg_1h the writer aggregated again from raw (readings written after it closed their "
                "hour, hours a previous writer left open, aggregates InfluxDB did not take), counted per statement",
                registry=prometheus,
            ),
            aggregate_points=Counter(
                f"{ns}_aggregate_points",
                "Hourly aggregate points the writer computed as it wrote and InfluxDB took (agg_1h)",
                registry=prometheus,
            ),
            late_device_intervals=Counter(
                f"{ns}_late_device_intervals",
                "(hour, device) pairs with readings acknowledged after the writer closed their hour (each one "
                "aggregated again from raw)",
                registry=prometheus,
            ),
            consumer=ConsumerMetrics.create(ns, prometheus),
            influx_up=Gauge(f"{ns}_influx_up", "1 while InfluxDB takes writes", registry=prometheus),
        )
