"""A load step's CPU per reading counts every platform process the stack runs, the Kafka store included."""

from __future__ import annotations

from simulators.load_report import PLATFORM, PUBLISHER, Snapshot, kafka_requests, step_result


def _snapshot(t: float, accepted: float, cpu: dict[str, float]) -> Snapshot:
    return Snapshot(t, (accepted, accepted, accepted, 0), cpu, int(accepted), 0.1)


def test_the_kafka_store_is_part_of_the_platform_when_the_stack_runs_it() -> None:
    names = [*PLATFORM, PUBLISHER]
    step = step_result(
        0, "hold", 1_000, _snapshot(0, 0, dict.fromkeys(names, 0.0)), _snapshot(10, 10_000, dict.fromkeys(names, 0.5)),
        None, 1,
    )  # fmt: skip
    assert "kafka store" in PLATFORM
    assert step.cpu_us_per_reading["kafka store"] == 50.0
    assert step.platform_cpu_us_per_reading == 50.0 * len(PLATFORM)


def test_a_stack_without_the_store_counts_the_others() -> None:
    names = [n for n in PLATFORM if n != "kafka store"] + [PUBLISHER]
    step = step_result(
        0, "hold", 1_000, _snapshot(0, 0, dict.fromkeys(names, 0.0)), _snapshot(10, 10_000, dict.fromkeys(names, 0.5)),
        None, 1,
    )  # fmt: skip
    assert "kafka store" not in step.cpu_us_per_reading
    assert step.platform_cpu_us_per_reading == 50.0 * (len(PLATFORM) - 1)


def test_kafka_requests_a_second_by_client_from_their_metrics() -> None:
    requests = 'smartcity_kafka_requests_total{{api="Produce"}} {}\nsmartcity_kafka_requests_total{{api="Fetch"}} {}\n'
    gateway_before, gateway_after = requests.format(100.0, 7.0), requests.format(300.0, 27.0)
    store_after = (
        'smartcity_kafka_store_requests_total{kind="batch",method="PUT"} 400.0\n'
        'smartcity_kafka_store_requests_created{kind="batch",method="PUT"} 1.7e9\n'
    )
    names = [*PLATFORM, PUBLISHER]
    a = _snapshot(0, 0, dict.fromkeys(names, 0.0))
    b = _snapshot(10, 10_000, dict.fromkeys(names, 0.5))
    a.requests = {"ingest gateway": kafka_requests(gateway_before), "kafka store": {}}
    b.requests = {"ingest gateway": kafka_requests(gateway_after), "kafka store": kafka_requests(store_after),
                  "api": kafka_requests(gateway_after)}  # fmt: skip
    step = step_result(0, "hold", 1_000, a, b, None, 1)
    # "api" appeared between the snapshots: no window to divide by, left out
    assert step.kafka_requests_per_s == {
        "ingest gateway": {"Fetch": 2.0, "Produce": 20.0},
        "kafka store": {"PUT batch": 40.0},
    }
