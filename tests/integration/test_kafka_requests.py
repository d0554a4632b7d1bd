"""Each service counts the Kafka requests it sends, by API: the benchmark's table of requests per client."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import CollectorRegistry, generate_latest

from core.kafka.requests import count_kafka_requests
from simulators.load_report import kafka_requests


async def test_produce_and_fetch_requests_are_counted_by_api(kafka_bootstrap: str, unique: str) -> None:
    registry = CollectorRegistry()
    count_kafka_requests(registry)
    count_kafka_requests(registry)  # a second call in the same process: one counter, shown once
    before = kafka_requests(generate_latest(registry).decode())
    topic = f"requests-{unique}"
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for n in range(3):
            await producer.send_and_wait(topic, f"{n}".encode(), partition=0)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False, fetch_max_wait_ms=20)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        got = 0
        while got < 3:
            got += sum(len(v) for v in (await consumer.getmany(timeout_ms=1000)).values())
    finally:
        await consumer.stop()
    after = kafka_requests(generate_latest(registry).decode())
    assert after["Produce"] - before.get("Produce", 0) == 3  # one request per send_and_wait
    assert after["Fetch"] - before.get("Fetch", 0) >= 1
    assert after["Metadata"] > before.get("Metadata", 0)
