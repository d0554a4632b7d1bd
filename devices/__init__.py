"""Who is out there: device records, their store and Kafka feed, MQTT accounts, health, and the HTTP API."""
