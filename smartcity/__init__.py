"""SmartCity: streaming IoT sensing and hazard alerting for a smart district.

This package is the composition layer: settings, wire contracts, the CLI and the one-machine stack. The parts of
the flow live in their own top-level packages, left to right: ``devices``, ``ingest``, ``streams``, ``rules``,
``alerts``, ``simulators``.
"""

from __future__ import annotations

__version__ = "0.1.0"
