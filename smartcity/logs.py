"""Logging set-up for entry points: one line per event, with the logger name, to stderr."""

from __future__ import annotations

import logging


def configure(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
    )
    # aiokafka logs every reconnect attempt at ERROR, many times a second while a broker is down; our own retry
    # loops say what matters once. SMARTCITY_LOG_LEVEL=DEBUG shows them again.
    if logging.getLogger().level > logging.DEBUG:
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def quiet(*names: str) -> None:
    """Only warnings and worse from these loggers (unless the root level is higher still)."""
    for name in names:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))
