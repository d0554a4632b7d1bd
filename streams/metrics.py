"""The stream workers' Prometheus collectors, on the Prometheus registry they are given. No device ids in labels."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from core.kafka.lag import ConsumerMetrics


@dataclass(frozen=True, slots=True)
class StreamMetrics:
    records: Counter
    readings: Counter
    undecodable: Counter
    findings: Counter
    evaluation_seconds: Histogram
    states_saved: Counter
    bucket_writes: Counter
    devices_in_memory: Gauge
    lag_seconds: Gauge
    consumer: ConsumerMetrics
    registry_waits: Counter
    duplicates: Counter
    health_entries: Counter

    @classmethod
    def create(cls, prometheus: CollectorRegistry) -> StreamMetrics:
        ns = "smartcity_streams"
        return cls(
            records=Counter(f"{ns}_records", "Reading records consumed", registry=prometheus),
            readings=Counter(f"{ns}_readings", "Readings evaluated", registry=prometheus),
            undecodable=Counter(f"{ns}_undecodable_records", "Records skipped as unreadable", registry=prometheus),
            findings=Counter(f"{ns}_findings", "Findings emitted", ["hazard", "level", "event"], registry=prometheus),
            evaluation_seconds=Histogram(
                f"{ns}_evaluation_seconds",
                "Rule evaluation time per reading record",
                buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
                registry=prometheus,
            ),
            states_saved=Counter(
                f"{ns}_states_saved", "Rule states written to the changelog, by cause", ["cause"], registry=prometheus
            ),
            bucket_writes=Counter(f"{ns}_state_bucket_writes", "Changelog records of rule state", registry=prometheus),
            registry_waits=Counter(
                f"{ns}_registry_waits",
                "Reading records with a device not in the registry, that waited for the registry topic, by outcome",
                ["outcome"],
                registry=prometheus,
            ),
            duplicates=Counter(
                f"{ns}_duplicate_readings",
                "Readings not evaluated: a repeat of a (device, seq) already evaluated (a redelivery)",
                registry=prometheus,
            ),
            health_entries=Counter(
                f"{ns}_health_entries", "Device-health entries sent to the health topic", registry=prometheus
            ),
            devices_in_memory=Gauge(f"{ns}_devices_in_memory", "Device states held in memory", registry=prometheus),
            consumer=ConsumerMetrics.create(ns, prometheus),
            lag_seconds=Gauge(
                f"{ns}_event_lag_seconds", "Wall clock minus the newest receive time evaluated", registry=prometheus
            ),
        )
