"""The one-machine stack: real Mosquitto, a Kafka-compatible broker (Tansu) and InfluxDB 1.6, started by us.

The same launchers serve ``smartcity up`` and the test suite's session fixtures, so what the tests start is what a
newcomer runs. Production runs the real services from compose.yaml instead.
"""
