"""Secrets in URLs never reach a log line: the webhook robots' keys (httpx) and the live stream's token (uvicorn)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from core.logs import RedactUrlSecrets, redact_url_secrets


def line(msg: str, *args: object) -> str:
    record = logging.LogRecord("httpx", logging.INFO, __file__, 1, msg, args, None)
    assert RedactUrlSecrets().filter(record)
    return record.getMessage()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7xxx",
            "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=<redacted>",
        ),
        (
            "https://oapi.dingtalk.com/robot/send?access_token=abc123&timestamp=1&sign=c2lnbg%3D%3D",
            "https://oapi.dingtalk.com/robot/send?access_token=<redacted>&timestamp=1&sign=<redacted>",
        ),
        ("/api/alerts/stream?token=fire-officer-token", "/api/alerts/stream?token=<redacted>"),
        ("/query?db=smartcity&epoch=ms", "/query?db=smartcity&epoch=ms"),
    ],
)
def test_credential_query_parameters_are_blanked(url: str, shown: str) -> None:
    # httpx's line per request (the URL an httpx.URL), and uvicorn's access line (the path a string)
    assert line('HTTP Request: %s %s "%s %d %s"', "POST", httpx.URL(url), "HTTP/1.1", 200, "OK") == (
        f'HTTP Request: POST {shown} "HTTP/1.1 200 OK"'
    )
    assert line('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", url, "1.1", 200) == (
        f'127.0.0.1:5000 - "GET {shown} HTTP/1.1" 200'
    )


def test_arguments_without_secrets_are_left_as_they_are() -> None:
    url = httpx.URL("http://influx:8086/write?db=x")
    record = logging.LogRecord("httpx", logging.INFO, __file__, 1, "%s %d", (url, 3), None)
    RedactUrlSecrets().filter(record)
    assert record.args == (url, 3)
    assert record.args[0] is url


def test_installed_once_on_the_logger_whatever_its_level() -> None:
    logger = logging.getLogger("tests.redacted")
    redact_url_secrets("tests.redacted")
    redact_url_secrets("tests.redacted")
    assert sum(isinstance(f, RedactUrlSecrets) for f in logger.filters) == 1


def test_log_lines_carry_shenzhen_time_with_its_offset() -> None:
    """Like the console, CAP and the drill reports: +08:00 whatever the machine's zone (here TZ=UTC)."""
    script = (
        "import logging, time\n"
        "from core.logs import configure\n"
        "configure()\n"
        "logging.getLogger('smartcity.test').info('at %d', time.time())\n"
    )
    env = {**os.environ, "TZ": "UTC"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True).stderr
    stamp, rest = out.split(" ", 1)
    at = int(rest.rsplit(" ", 1)[1])
    assert stamp.endswith("+08:00"), out
    assert abs(datetime.fromisoformat(stamp).timestamp() - at) < 2
    assert stamp == datetime.fromisoformat(stamp).astimezone(timezone(timedelta(hours=8))).isoformat(
        timespec="milliseconds"
    )
    assert rest.startswith("INFO    smartcity.test: at ")
