"""Processes for benchmarks: `faceflow serve` on a free port, its memory and CPU, the load."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import httpx

_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (from /proc), for memory and CPU totals."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def rss_bytes(pids: list[int]) -> int:
    """Total resident memory of ``pids`` (shared pages counted once per process)."""
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE_BYTES
        except OSError:
            continue
    return total


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by ``pids``."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / _TICKS_PER_S


FACEFLOW_SERVE = ("-m", "faceflow", "serve")


class ServiceProcess:
    """``faceflow serve`` in a subprocess on a free loopback port, stopped by PID on exit.

    ``args`` (after ``python``; ``--port`` is appended) runs another server instead, e.g. uvicorn
    with a benchmark's own app; it counts as ready once ``GET /readyz`` answers 200.
    """

    def __init__(
        self,
        env: Mapping[str, str],
        log: Path,
        *,
        args: Sequence[str] = FACEFLOW_SERVE,
        ready_timeout_s: float = 120,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._env = {**os.environ, **env, "FACEFLOW_SERVER__LOG_LEVEL": "warning"}
        self._args = tuple(args)
        self._log = log
        self._ready_timeout_s = ready_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.ready_after_s = float("nan")

    def __enter__(self) -> ServiceProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def start(self) -> None:
        """Start and wait for /readyz; ``ready_after_s`` is the time from spawn to ready."""
        command = [sys.executable, *self._args, "--port", str(self.port)]
        with self._log.open("wb") as log:
            self.started_at = time.perf_counter()
            self._process = subprocess.Popen(  # noqa: S603 - our own CLI, fixed argv
                command, env=self._env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = self.started_at + self._ready_timeout_s
        with httpx.Client(timeout=2.0) as client:
            while time.perf_counter() < deadline:
                if self._process.poll() is not None:
                    raise RuntimeError(f"{' '.join(self._args)} exited; see {self._log}")
                try:
                    if client.get(f"{self.url}/readyz").status_code == 200:
                        self.ready_after_s = time.perf_counter() - self.started_at
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{' '.join(self._args)} not ready after {self._ready_timeout_s} s")

    def pids(self) -> list[int]:
        return process_tree(self.pid)

    def stop(self) -> None:
        """SIGTERM the server and wait for its whole tree to exit (the inference processes and
        multiprocessing's resource tracker outlive it by a few ms); SIGKILL what is left."""
        if self._process is None or self._process.poll() is not None:
            return
        tree = self.pids()
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            _kill(tree)
            self._process.wait(timeout=10)
        if not _wait_gone(tree, timeout_s=5):
            _kill(tree)
            _wait_gone(tree, timeout_s=5)


def _alive(pid: int) -> bool:
    """Running (a zombie, exited but not yet reaped, counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_gone(pids: list[int], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while any(_alive(pid) for pid in pids):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def _kill(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
