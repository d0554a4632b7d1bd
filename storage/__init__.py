"""Readings storage in InfluxDB: the writer (Kafka readings -> InfluxDB), the schema, retention, the readings query."""
