"""The project's exceptions: one root, one subclass per part.

::

    SmartCityError
    ├── ConfigError             settings that cannot work (a port taken, a binary missing)
    │   └── ContactsError       (alerts.contacts) a department contacts file that cannot be used
    ├── StackError              a one-machine service failed to start or to become healthy
    ├── TransportError          a broker did not take what we sent; carries ``retry_after`` seconds
    │   ├── KafkaUnavailable
    │   ├── MqttUnavailable
    │   └── InfluxUnavailable   (core.influx.client) InfluxDB down, 5xx, 429
    ├── InfluxRefused           (core.influx.client) InfluxDB refused the lines: 400, 401/403, 404
    ├── RoutingError            (alerts.routing) a routing table that cannot be used
    ├── LifecycleError          (alerts.lifecycle) an officer's action that cannot apply (404, 409)
    ├── DeliveryError           (alerts.channels.base) a channel could not deliver; retry or permanent
    ├── TooManyPoints           (storage.query) a readings query asking for too many points
    ├── AccountError            (devices.mqtt_accounts) the broker refused an account change
    └── RulePackError           (rules.pack) a rule pack that cannot be used, naming file, rule and field

Bad input is never an exception that escapes: the ingest parser turns it into a ``Refusal`` with a reason.
"""

from __future__ import annotations


class SmartCityError(Exception):
    """Root of every error this project raises on purpose."""


class ConfigError(SmartCityError):
    """Settings or the machine cannot support what was asked; the message says how to fix it."""


class StackError(SmartCityError):
    """A service of the one-machine stack did not start or did not become healthy in time."""


class TransportError(SmartCityError):
    """A broker did not accept what we sent. The caller decides whether and when to retry."""

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class KafkaUnavailable(TransportError):
    """Kafka did not acknowledge a produce, or its topics are missing."""


class MqttUnavailable(TransportError):
    """The MQTT broker is unreachable or refused the connection."""
