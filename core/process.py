"""Child processes that die with their parent and stop in order.

Every child gets ``PR_SET_PDEATHSIG`` (Linux): if the supervisor is killed, even with -9, the kernel sends the child
SIGTERM, so no broker is left behind holding a port. Children run in their own process group, so a Ctrl-C in the
terminal reaches only the supervisor, which then stops them in reverse order of start.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import ConfigError, StackError

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
LOOPBACK = "127.0.0.1"  # where the stack's unauthenticated listeners are, whatever SMARTCITY_HOST says
#: What ``smartcity up`` prints once every service is healthy. The supervisor prints it; whoever starts the stack as
#: a child (``smartcity demo``, the test harness ``harness.stack.StackRun``) waits for it, so it lives down here
#: where both floors can import it.
READY_LINE = "SmartCity is up"


def reachable(host: str) -> str:
    """The address a client on this machine uses for a listener bound to ``host``: a wildcard's is the loopback."""
    return LOOPBACK if host in ("0.0.0.0", "::", "") else host  # noqa: S104 - compared, not bound


def die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


#: ports ``free_port`` handed out in this process: never twice, as nothing may listen on one yet
_HANDED_OUT: set[int] = set()
_LOWEST_PORT = 15_000


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now, below the kernel's ephemeral range, and not handed out before by this process.

    Not port 0's: the kernel gives that from the ephemeral range (``ip_local_port_range``), where any outgoing
    connection may take it between this call and the server's bind. That happened: a stack's stream worker could
    not bind its health port while the stack's other services connected to each other."""
    low = _ephemeral_low()
    for _ in range(200 if low - _LOWEST_PORT > 1000 else 0):
        port = random.randrange(_LOWEST_PORT, low)
        if port not in _HANDED_OUT and port_is_free(host, port, reuse_address=False):
            _HANDED_OUT.add(port)
            return port
    with socket.socket() as s:  # an unusual ephemeral range: what the kernel gives
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def port_is_free(host: str, port: int, *, reuse_address: bool = True) -> bool:
    """Nothing listens on ``port``; ``reuse_address=False``: nor does a connection linger there in TIME_WAIT."""
    with socket.socket() as s:
        if reuse_address:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def require_port(host: str, port: int, what: str, setting: str) -> None:
    """Raise ``ConfigError`` saying how to fix it when ``port`` is taken."""
    if not port_is_free(host, port):
        raise ConfigError(
            f"{what} cannot listen on {host}:{port}: the port is already in use.\n"
            f"  See who holds it:  ss -ltnp 'sport = :{port}'\n"
            f"  Then stop that program (a system service: systemctl stop <name>), or pick another port with "
            f"{setting}=<port>, or point SmartCity at an existing server with its *_URL setting."
        )


def tcp_accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class ManagedProcess:
    """A started child with its log file."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] | None = None
    cwd: Path | None = None
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        logger.info("started %s (pid %d), log %s", self.name, self.popen.pid, self.log_path)

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_healthy(self, check: Callable[[], bool], timeout: float) -> None:
        """Poll ``check`` until true; raise ``StackError`` with the log's tail if the child dies or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                code = self.popen.returncode if self.popen else None
                raise StackError(f"{self.name} exited with status {code} while starting:\n{self.log_tail()}")
            if check():
                return
            time.sleep(0.1)
        raise StackError(f"{self.name} did not become healthy within {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; also reaps anything left in the child's process group."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop within %.0f s; killing it", self.name, timeout)
                self.popen.kill()
                self.popen.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)

    def kill(self) -> None:
        """kill -9, for fault tests."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()


def find_binary(name: str, candidates: list[str], debian_package: str) -> str:
    """The first existing executable among ``candidates`` (absolute paths or names on PATH)."""
    for candidate in candidates:
        path = candidate if os.path.isabs(candidate) else shutil.which(candidate)
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise ConfigError(
        f"{name} is not installed (looked for {', '.join(candidates)}).\n"
        f"  Install it:  sudo apt-get install {debian_package}\n"
        f"  (or run `make setup`, which installs every system package the stack needs)"
    )
