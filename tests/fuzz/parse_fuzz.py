"""Coverage-guided fuzzing of the telemetry parser with atheris (libFuzzer): any topic and payload bytes.

Run directly, with libFuzzer's flags: ``python -m tests.fuzz.parse_fuzz -runs=200000`` (the bounded form in
tests/unit/ingest/test_parse_fuzz.py), ``make fuzz`` for the long form. A crash is an exception that escapes
``parse_message`` or an outcome that breaks the parser's promise: every message gives accepted readings, a refusal
with at least one reason, or both, and readings only for the device the topic names.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from devices.directory import OpenDirectory, StaticDirectory
    from ingest.parse import parse_message

NOW = 1_795_000_000_000
DIRECTORIES = (OpenDirectory(), StaticDirectory(["gas-001"]))  # anyone; one registered device


def one_input(data: bytes) -> None:
    """The first byte picks the topic (the known device, another, or one made of the next line) and the directory;
    the rest is the payload, so the seeds in tests/fuzz/corpus are one byte and then JSON."""
    choice, rest = (data[0], data[1:]) if data else (0, b"")
    topic = ("devices/gas-001/telemetry", "devices/gas-002/telemetry")[choice % 2]
    if choice % 3 == 2:
        line, _, rest = rest.partition(b"\n")
        topic = line.decode("utf-8", "replace")
    parsed = parse_message(topic, rest, NOW, DIRECTORIES[(choice >> 2) % 2])
    if not parsed.readings and parsed.refusal is None:
        raise AssertionError(f"neither readings nor a refusal for {topic!r} {rest[:80]!r}")
    if parsed.refusal is not None and not parsed.refusal.errors:
        raise AssertionError(f"a refusal without a reason for {rest[:80]!r}")
    if any(r["device_id"] != parsed.device_id for r in parsed.readings):
        raise AssertionError(f"a reading for another device than {parsed.device_id!r}")


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
