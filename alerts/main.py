"""The alerts service as it runs: every channel its settings name, its archive, routing and metrics, put together.

The service runs inside the API process (``smartcity api``, beside the officers' routers that act on it), so this
module builds it and the API starts and stops it; tests build it the same way (``tests/api_util.py``).
"""

from __future__ import annotations

import uuid

from prometheus_client import CollectorRegistry

from alerts.archive import AlertArchive
from alerts.channels.base import Channel
from alerts.channels.email import EmailChannel
from alerts.channels.mqtt import MqttChannel
from alerts.channels.webhook import WebhookChannel
from alerts.contacts import load_contacts
from alerts.metrics import AlertMetrics
from alerts.routing import load_routing
from alerts.service import AlertService
from alerts.settings import AlertsSettings
from core.influx.client import LineWriter
from core.mqtt import AsyncMqttClient


def alert_service(settings: AlertsSettings, prometheus: CollectorRegistry) -> AlertService:
    """The alerts service with every channel its settings name (MQTT always; webhook and e-mail from contacts)."""
    contacts = load_contacts(settings.alerts_contacts_file)
    client = AsyncMqttClient(settings, f"smartcity-alerts-{uuid.uuid4().hex[:8]}", clean_start=True)
    console = settings.alerts_public_url
    channels: list[Channel] = [
        MqttChannel(client),
        WebhookChannel(contacts, console_url=console),
        EmailChannel(contacts, console_url=console),
    ]
    # Alert events are kept for good: on 1.x not in the readings' 90-day default policy but in ``autogen``.
    v1_default = settings.influx_api == "v1" and settings.influx_rp is None
    keep = settings.model_copy(update={"influx_rp": "autogen"}) if v1_default else settings
    archive = AlertArchive(LineWriter(keep)) if settings.alerts_history else None
    routing = load_routing(settings.alerts_routing_file)
    metrics = AlertMetrics.create(prometheus)
    metrics.mqtt_connected.set_function(lambda: float(client.connected.is_set()))
    return AlertService(settings, routing, channels, metrics, archive=archive)
