"""MQTT in, Kafka out: the ingest gateway.

``parse`` turns one MQTT message into readings and refusals (pure, no I/O); ``partitioning`` groups readings by
the Kafka partition of their device; ``acks`` releases MQTT acknowledgements in order once Kafka has the records;
``gateway`` wires these to ``core.mqtt`` (paho on the asyncio loop) and ``kafka`` (aiokafka).
"""
