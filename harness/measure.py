"""The figures a run reads off the processes it measures: Prometheus counters, CPU time, quantiles.

Every figure is read from the process's own accounting (its ``/metrics``, the kernel's ``/proc``), never estimated
from outside, so a benchmark and a test that read the same counter agree. The flow's counters that runs read most
are named here, spelled once.
"""

from __future__ import annotations

import math
import os
import re
import ssl
from typing import Any

import httpx

#: Readings the ingest gateway accepted and put on Kafka (every gateway replica counts its own).
ACCEPTED = "smartcity_ingest_readings_accepted_total"
#: Readings the ingest gateway refused (unknown device, bad payload, ...), by reason.
REFUSED = "smartcity_ingest_refusals_total"
#: Readings the stream worker evaluated against the rules.
EVALUATED = "smartcity_streams_readings_total"
#: Readings the InfluxDB writer stored.
STORED = "smartcity_writer_readings_total"
#: Readings the stream worker and the writer dropped as repeats of a (device, seq) they had (a message delivered
#: twice, accepted twice by the gateway): handled, not lost.
EVALUATED_REPEATS = "smartcity_streams_duplicate_readings_total"
STORED_REPEATS = "smartcity_writer_duplicate_readings_total"

_TICKS = os.sysconf("SC_CLK_TCK")
#: One TLS context for every request a run makes: ``httpx.get`` otherwise builds one per call, loading the CA
#: certificates, about 30 ms of CPU each; a load run's metric polls took 15-20 % of a core of the machine it measured.
_TLS = ssl.create_default_context()


def get(url: str, **kwargs: Any) -> httpx.Response:
    """``httpx.get`` without building a TLS context per call (``_TLS``)."""
    return httpx.get(url, verify=_TLS, **kwargs)


def sample_sum(text: str, name: str) -> float:
    """The sum of the samples of ``name`` over all its label sets in Prometheus exposition ``text``; 0 when there is
    none (a labelled counter not yet incremented is absent, and means none yet). ``name`` may carry labels
    (``smartcity_devices{status="online"}``) to pick one series."""
    pattern = rf"^{re.escape(name)}(?:\{{[^}}]*\}})? (\S+)$"
    return sum(float(v) for v in re.findall(pattern, text, re.M))


def metric(url: str, name: str, timeout: float = 5) -> float:
    """``sample_sum`` of ``name`` at the ``/metrics`` ``url``; ``httpx.HTTPError`` if the service does not answer
    within ``timeout`` seconds (a service busy with a backlog can be slow: the caller decides whether to ask again)."""
    return sample_sum(get(url, timeout=timeout).text, name)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds ``pid`` has used so far (``/proc/<pid>/stat``, Linux); ``FileNotFoundError`` once
    the process is gone. Two readings over a window give its CPU share, whatever else the machine ran."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces and ")"
    return (int(fields[11]) + int(fields[12])) / _TICKS


def memory_mib(pid: int) -> dict[str, float]:
    """Resident memory of ``pid`` in MiB (``/proc/<pid>/status``, Linux): ``rss`` in all, ``anon`` its anonymous part
    (heap, stacks: what the process itself holds) and ``file`` its file-backed part (mapped files, which the kernel
    may drop under pressure). ``FileNotFoundError`` once the process is gone."""
    with open(f"/proc/{pid}/status") as f:
        status = f.read()
    found = dict(re.findall(r"^(VmRSS|RssAnon|RssFile):\s+(\d+) kB", status, re.M))
    names = {"rss": "VmRSS", "anon": "RssAnon", "file": "RssFile"}
    return {key: round(int(found.get(name, 0)) / 1024, 1) for key, name in names.items()}


def quantile(values: list[float], q: float) -> float:
    """The nearest-rank ``q`` quantile (0 < q <= 1) of ``values``, rounded to 0.1; NaN when there is nothing to rank.
    Nearest rank, not interpolation: the figure reported is one that was measured."""
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(len(ordered) * q) - 1)], 1) if ordered else float("nan")
