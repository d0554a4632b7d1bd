"""The alerts service's Prometheus collectors, on the Prometheus registry they are given. Labels are bounded: no ids."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from core.kafka.lag import ConsumerMetrics


@dataclass(frozen=True, slots=True)
class AlertMetrics:
    findings: Counter
    messages: Counter
    open_alerts: Gauge
    open_incidents: Gauge
    deliveries: Counter
    delivery_seconds: Histogram
    finding_to_alert_seconds: Histogram
    save_retries: Counter
    routed: Counter
    mqtt_connected: Gauge
    consumer: ConsumerMetrics

    @classmethod
    def create(cls, prometheus: CollectorRegistry) -> AlertMetrics:
        ns = "smartcity_alerts"
        return cls(
            findings=Counter(f"{ns}_findings", "Findings consumed", ["outcome"], registry=prometheus),
            messages=Counter(
                f"{ns}_messages",
                "Alert messages, by event, level, hazard, drill",
                ["event", "level", "hazard", "exercise"],
                registry=prometheus,
            ),
            open_alerts=Gauge(f"{ns}_open", "Open alerts", ["exercise"], registry=prometheus),
            open_incidents=Gauge(f"{ns}_open_incidents", "Open incidents", ["exercise"], registry=prometheus),
            deliveries=Counter(
                f"{ns}_deliveries",
                "Channel deliveries by outcome",
                ["channel", "department", "outcome"],
                registry=prometheus,
            ),
            delivery_seconds=Histogram(
                f"{ns}_delivery_seconds",
                "From alert message to the channel's acknowledgement",
                ["channel"],
                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
                registry=prometheus,
            ),
            finding_to_alert_seconds=Histogram(
                f"{ns}_finding_to_message_seconds",
                "From the rules engine's decision to the alert message",
                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
                registry=prometheus,
            ),
            routed=Counter(
                f"{ns}_routed",
                "Alert messages addressed to a department, by department, level and hazard",
                ["department", "level", "hazard"],
                registry=prometheus,
            ),
            mqtt_connected=Gauge(f"{ns}_mqtt_connected", "1 while the MQTT channel is connected", registry=prometheus),
            consumer=ConsumerMetrics.create(ns, prometheus),
            save_retries=Counter(f"{ns}_state_save_retries", "Kafka state saves retried", registry=prometheus),
        )
