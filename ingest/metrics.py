"""The gateway's Prometheus collectors, created on the Prometheus registry it is given. No device ids in labels."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass(frozen=True, slots=True)
class GatewayMetrics:
    messages: Counter
    readings_received: Counter
    readings_accepted: Counter
    refusals: Counter
    records_produced: Counter
    produce_errors: Counter
    flush_seconds: Histogram
    flush_readings: Histogram
    flush_bytes: Histogram
    mqtt_connected: Gauge
    mqtt_protocol: Gauge
    kafka_ok: Gauge
    unacked: Gauge
    reading_paused: Gauge
    reading_pauses: Counter
    registry_waits: Counter

    @classmethod
    def create(cls, prometheus: CollectorRegistry) -> GatewayMetrics:
        ns = "smartcity_ingest"
        return cls(
            messages=Counter(f"{ns}_messages", "MQTT telemetry messages received", registry=prometheus),
            readings_received=Counter(
                f"{ns}_readings_received",
                "Readings received, accepted or refused (a refused message counts one)",
                registry=prometheus,
            ),
            readings_accepted=Counter(f"{ns}_readings_accepted", "Readings accepted into Kafka", registry=prometheus),
            refusals=Counter(
                f"{ns}_refusals", "Refused messages or batch items, by reason", ["reason"], registry=prometheus
            ),
            records_produced=Counter(
                f"{ns}_kafka_records", "Kafka records acknowledged, by kind", ["kind"], registry=prometheus
            ),
            produce_errors=Counter(f"{ns}_kafka_errors", "Failed Kafka flushes (retried)", registry=prometheus),
            flush_seconds=Histogram(
                f"{ns}_flush_seconds",
                "Time from a flush's start to Kafka's acknowledgement",
                buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
                registry=prometheus,
            ),
            flush_readings=Histogram(
                f"{ns}_flush_readings",
                "Readings per flush",
                buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
                registry=prometheus,
            ),
            flush_bytes=Histogram(
                f"{ns}_flush_bytes",
                "MQTT payload bytes per flush, accepted and refused",
                buckets=(1e3, 1e4, 1e5, 2.5e5, 5e5, 1e6, 2e6, 4e6, 8e6, 16e6),
                registry=prometheus,
            ),
            mqtt_connected=Gauge(f"{ns}_mqtt_connected", "1 while connected to the MQTT broker", registry=prometheus),
            mqtt_protocol=Gauge(
                f"{ns}_mqtt_protocol", "1 for the MQTT version the gateway speaks", ["version"], registry=prometheus
            ),
            kafka_ok=Gauge(f"{ns}_kafka_ok", "1 while the last Kafka flush succeeded", registry=prometheus),
            unacked=Gauge(f"{ns}_unacked_messages", "QoS 1 messages awaiting Kafka", registry=prometheus),
            reading_paused=Gauge(
                f"{ns}_mqtt_reading_paused",
                "1 while MQTT reading is paused for back-pressure: gateway_max_unacked messages await Kafka, or every "
                "delivery slot is busy and gateway_max_flush_bytes have gathered",
                registry=prometheus,
            ),
            reading_pauses=Counter(
                f"{ns}_mqtt_reading_pauses", "Times MQTT reading was paused for back-pressure", registry=prometheus
            ),
            registry_waits=Counter(
                f"{ns}_registry_waits",
                "Messages of a device not in the directory that waited for the registry topic, by outcome (found: "
                "registered a moment before; unknown: refused)",
                ["outcome"],
                registry=prometheus,
            ),
        )
