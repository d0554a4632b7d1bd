"""The whole-stack test harness: run the real one-machine stack, feed it, and read off what it did.

Tests, simulators and benchmarks share it, the way bytewax ships ``bytewax.testing``: public names, stable to
import, each saying what it guarantees.

- ``harness.stack``: ``StackRun``, ``smartcity up`` as a child process on free ports in a data directory of its own,
  with its addresses, secrets and pids; ``until_online``.
- ``harness.probes``: alert-latency probes: a reading that crosses the methane alarm level, timed from just before
  its MQTT publish to its ``raised`` message on ``alerts/emergency``.
- ``harness.measure``: the figures a run reads off the processes: Prometheus counters (and the names of the flow's
  own), CPU seconds from ``/proc``, nearest-rank quantiles.
- ``harness.kafka``: every record of a topic, from its beginning to its end now.
- ``harness.builders``: device records and readings (registry JSON, ``Device``, MQTT telemetry, ``ReadingDict``).

Its floor: ``harness`` imports only ``core`` and third-party libraries, so every floor above the ground (flow tests,
``simulators``, ``smartcity.bench``) may import it. It starts ``python -m smartcity up`` by its module name and talks
to it over HTTP, MQTT and Kafka; it never imports ``smartcity``. This module imports nothing itself, so a pure unit
test that wants only the builders does not load paho, aiokafka and httpx.
"""
