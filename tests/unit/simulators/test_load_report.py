"""A load step's CPU per reading counts every platform process the stack runs, the Kafka store included."""

from __future__ import annotations

from simulators.load_report import PLATFORM, PUBLISHER, Snapshot, step_result


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
