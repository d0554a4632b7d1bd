"""Logging set-up for entry points: one line per event, with the logger name, to stderr; secrets kept out.

Each line starts with its time in Shenzhen time with the offset (``2026-11-25T10:00:00.123+08:00``), as the console,
CAP documents and drill reports give times, whatever the machine's own time zone.

Some libraries log whole URLs, query included, and some of our URLs carry a secret there: a WeCom or DingTalk
robot's key (``httpx``'s line per request), an officer's token on the console's live stream (uvicorn's access
line, ``?token=``). ``RedactUrlSecrets`` blanks those; it sits on the logger, not on a handler, so it holds at any
level and whatever handlers a later set-up adds.
"""

from __future__ import annotations

import logging
import re
from typing import Final

from core.clock import local_iso

# Query parameters that carry credentials: ours (token) and the webhook robots' (key, access_token, sign).
_SECRET_PARAMETER: Final = re.compile(r"(?i)([?&](?:token|access_token|key|sign|secret|password)=)[^&#\s\"']*")
REDACTED: Final = "<redacted>"


class ShenzhenTime(logging.Formatter):
    """``%(asctime)s`` in Shenzhen time, milliseconds and offset: ``2026-11-25T10:00:00.123+08:00``."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return local_iso(record.created, "milliseconds")


LINE_FORMAT: Final = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure(level: str = "INFO") -> None:
    handler = logging.StreamHandler()  # stderr
    handler.setFormatter(ShenzhenTime(LINE_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler])
    # aiokafka logs every reconnect attempt at ERROR, many times a second while a broker is down; our own retry
    # loops say what matters once. SMARTCITY_LOG_LEVEL=DEBUG shows them again.
    if logging.getLogger().level > logging.DEBUG:
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    redact_url_secrets("httpx", "uvicorn.access")


def quiet(*names: str) -> None:
    """Only warnings and worse from these loggers (unless the root level is higher still)."""
    for name in names:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))


class RedactUrlSecrets(logging.Filter):
    """Blanks the values of credential query parameters in a record's arguments (a URL, a path with its query)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_redacted(arg) for arg in record.args)
        return True


def redact_url_secrets(*names: str) -> None:
    """Put ``RedactUrlSecrets`` on these loggers (once each)."""
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactUrlSecrets) for f in logger.filters):
            logger.addFilter(RedactUrlSecrets())


def _redacted(arg: object) -> object:
    if arg is None or isinstance(arg, int | float):
        return arg
    text = str(arg)
    return _SECRET_PARAMETER.sub(rf"\1{REDACTED}", text) if _SECRET_PARAMETER.search(text) else arg
