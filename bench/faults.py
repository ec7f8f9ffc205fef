"""The faults a running faceflow survives, measured against a real ``faceflow serve``.

    .venv/bin/python bench/faults.py [--image PATH] [--seconds 8]

Starts its own ``faceflow serve`` (2 inference processes) and ``redis-server`` on free loopback
ports, stops them by PID, and prints one markdown table ("Faults survived" in docs/reliability.md):

* inference process killed: a never-seen upload is sent, the inference process whose CPU time
  starts moving (the one running it) is SIGKILLed mid-request; what the client gets, how long until
  ``faceflow_pool_ready_workers`` is back to 2, and when the next upload is answered 200;
* cache Redis hung, then killed: closed-loop clients send half repeats (memory-cache hits) and half
  never-seen uploads (local compute) while the cache Redis is up, SIGSTOPped, then SIGKILLed;
  per phase: statuses, p50/p99 of hits and of misses, Redis errors and the breaker gauge;
* overload: far more concurrent never-seen uploads than the pool admits (clients wait out
  ``Retry-After`` and come back): the share answered 503 and whether each 503 had
  ``Retry-After``, how fast, the admitted requests' p50/p99, and no other 5xx.

Needs ``redis-server`` on PATH and the models pulled (``faceflow models pull``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from faceflow.loadgen.load import unique_variant
from faceflow.loadgen.procs import (
    ServiceProcess,
    cpu_seconds,
    free_port,
    load_average,
    process_tree,
)

TESTDATA = Path(__file__).resolve().parents[2] / "shared" / "testdata"
DEFAULT_IMAGE = TESTDATA / "obama_small.jpg"
# The kill trials need a request that runs long enough to be caught by its process's CPU time
# (10 ms ticks) twice over: the 280 KB photo (~0.3 s of analyze here).
DEFAULT_KILL_IMAGE = TESTDATA / "obama.jpg"
PROCESSES = 2
KILL_TRIALS = 3
OVERLOAD_CLIENTS = 48
MIXED_CLIENTS = 3


# --- pure helpers (tests/bench/test_faults.py) ---------------------------------------------


def metric_value(exposition: str, name: str, *labels: str) -> float:
    """The sum of every sample of ``name`` whose labels include each of ``labels`` (``k="v"``
    strings) in a Prometheus text exposition; NaN if there is none."""
    total, found = 0.0, False
    for line in exposition.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        head, _, value = line.rpartition(" ")
        metric, _, label_part = head.partition("{")
        if metric.strip() == name and all(label in label_part for label in labels):
            total += float(value)
            found = True
    return total if found else float("nan")


def percentile_ms(seconds: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(seconds), q) * 1000) if seconds else float("nan")


def fmt_ms(value: float) -> str:
    if value != value:  # NaN
        return "–"
    return f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


def fmt_counts(counts: Counter[str]) -> str:
    return ", ".join(f"{n} × {key}" for key, n in sorted(counts.items(), key=lambda kv: -kv[1]))


@dataclass(frozen=True, slots=True)
class FaultRow:
    fault: str
    client_got: str
    recovery: str


def faults_table(rows: Sequence[FaultRow]) -> str:
    """The rows as a markdown table (``|`` inside a cell escaped)."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| fault | what clients got | recovery, figures |", "|---|---|---|"]
    lines += [f"| {cell(r.fault)} | {cell(r.client_got)} | {cell(r.recovery)} |" for r in rows]
    return "\n".join(lines)


# --- processes -------------------------------------------------------------------------------


class RedisServer:
    """A throwaway ``redis-server`` (no persistence) on a free loopback port."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock,
            ):
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.05)
        raise SystemExit("redis-server did not start")

    def signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, sig)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.signal(signal.SIGCONT)
            self.proc.kill()
        self.proc.wait(timeout=10)


def inference_pids(server: ServiceProcess) -> list[int]:
    """The pool's processes: multiprocessing children of the server, not its resource tracker."""
    found = []
    for pid in process_tree(server.pid)[1:]:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"multiprocessing" in command and b"resource_tracker" not in command:
            if b"forkserver" in command and b"spawn_main" not in command:
                continue
            found.append(pid)
    return found


def metrics(client: httpx.Client, url: str, name: str) -> float:
    return metric_value(client.get(f"{url}/metrics").text, name)


@contextlib.contextmanager
def serve(env: dict[str, str], log: Path) -> Iterator[ServiceProcess]:
    base = {"FACEFLOW_RUNTIME__PROCESSES": str(PROCESSES)}
    with ServiceProcess({**base, **env}, log) as server:
        yield server


# --- (a) an inference process SIGKILLed mid-request ------------------------------------------


@dataclass
class KillTrial:
    kills: int
    status: int
    code: str
    retry_after: str
    answered_after_kill_ms: float
    pool_full_after_s: float
    next_served_after_s: float


def _busy(pids: list[int], timeout_s: float, sender: threading.Thread) -> int | None:
    """The first of ``pids`` whose CPU time moves (the one that picked the task up)."""
    before = {pid: cpu_seconds([pid]) for pid in pids}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and sender.is_alive():
        for pid in pids:
            if cpu_seconds([pid]) > before[pid]:
                return pid
        time.sleep(0.002)
    return None


def kill_trial(server: ServiceProcess, body: bytes, serial: int, kills: int) -> KillTrial:
    """SIGKILL the inference process running a request; with ``kills`` 2, also the one the pool
    retries it on."""
    url = f"{server.url}/v1/analyze"
    headers = {"Content-Type": "image/jpeg"}
    with httpx.Client(timeout=60) as client:
        pids = inference_pids(server)
        outcome: dict[str, object] = {}

        def send() -> None:
            response = httpx.post(
                url, content=unique_variant(body, serial), headers=headers, timeout=60
            )
            outcome["response"] = response
            outcome["at"] = time.perf_counter()

        sender = threading.Thread(target=send)
        sender.start()
        killed_at = 0.0
        for _ in range(kills):
            victim = _busy(pids, 10, sender)
            if victim is None:
                sender.join()
                raise RuntimeError("no inference process picked the request up before it ended")
            os.kill(victim, signal.SIGKILL)
            killed_at = killed_at or time.perf_counter()
            pids = [pid for pid in pids if pid != victim]
        sender.join()
        response = outcome["response"]
        answered_at = outcome["at"]
        assert isinstance(response, httpx.Response)
        assert isinstance(answered_at, float)
        while metrics(client, server.url, "faceflow_pool_ready_workers") < PROCESSES:
            if time.perf_counter() - killed_at > 120:
                raise RuntimeError("the pool did not come back to full strength in 120 s")
            time.sleep(0.02)
        full = time.perf_counter() - killed_at
        following = client.post(url, content=unique_variant(body, serial + 1), headers=headers)
        served = time.perf_counter() - killed_at
        if following.status_code != 200:
            raise RuntimeError(f"the next request got {following.status_code}")
    return KillTrial(
        kills=kills,
        status=response.status_code,
        code=response.headers.get("x-error-code", ""),
        retry_after=response.headers.get("retry-after", ""),
        answered_after_kill_ms=(answered_at - killed_at) * 1000,
        pool_full_after_s=full,
        next_served_after_s=served,
    )


def killed_row(trials: list[KillTrial], died_while_running: int) -> FaultRow:
    def got(group: list[KillTrial]) -> str:
        answers = Counter(
            f"{t.status}"
            + (f" `{t.code}`" if t.code else "")
            + (f" (Retry-After {t.retry_after} s)" if t.retry_after else "")
            for t in group
        )
        slowest = max(t.answered_after_kill_ms for t in group)
        return f"{fmt_counts(answers)}, answered ≤ {fmt_ms(slowest)} after the kill"

    once = [t for t in trials if t.kills == 1]
    twice = [t for t in trials if t.kills == 2]
    full = [t.pool_full_after_s for t in trials]
    nxt = [t.next_served_after_s for t in trials]
    return FaultRow(
        f"an inference process SIGKILLed mid-request ({len(once)} times; {len(twice)} more "
        f"times also the process the request was retried on), {PROCESSES} processes",
        f"killed once: {got(once)} (retried once on the other process); killed twice: "
        f"{got(twice)}. Server log: {died_while_running} × `died with exit code -9 while "
        "running analyze`",
        f"the pool back to {PROCESSES} ready processes {min(full):.1f}–{max(full):.1f} s after "
        f"the kill (replacement spawned, models loaded and warmed; the survivor serves "
        f"meanwhile); the next upload answered 200 {min(nxt):.1f}–{max(nxt):.1f} s after the "
        "kill; no 500",
    )


# --- (b) the cache Redis hung, then killed --------------------------------------------------


@dataclass
class Phase:
    name: str
    seconds: float
    statuses: Counter[int] = field(default_factory=Counter)
    hits_s: list[float] = field(default_factory=list)
    misses_s: list[float] = field(default_factory=list)
    codes: Counter[str] = field(default_factory=Counter)
    transport_errors: int = 0
    redis_errors: float = 0.0
    breaker_open: float = 0.0


async def mixed_phase(name: str, url: str, body: bytes, hot: list[bytes], seconds: float) -> Phase:
    phase = Phase(name, seconds)
    endpoint = f"{url}/v1/analyze"
    deadline = time.perf_counter() + seconds
    serial = iter(range(10**6 * (1 + abs(hash(name)) % 1000), 10**9))
    headers = {"Content-Type": "image/jpeg"}

    async def client_loop(seed: int) -> None:
        rng = random.Random(seed)
        async with httpx.AsyncClient(timeout=60) as client:
            while time.perf_counter() < deadline:
                repeat = rng.random() < 0.5
                upload = rng.choice(hot) if repeat else unique_variant(body, next(serial))
                start = time.perf_counter()
                try:
                    response = await client.post(endpoint, content=upload, headers=headers)
                except httpx.HTTPError:
                    phase.transport_errors += 1
                    continue
                took = time.perf_counter() - start
                phase.statuses[response.status_code] += 1
                if response.status_code == 200:
                    (phase.hits_s if repeat else phase.misses_s).append(took)
                    continue
                phase.codes[f"{response.status_code} {response.headers.get('x-error-code')}"] += 1
                if response.status_code == 503:
                    await asyncio.sleep(float(response.headers.get("retry-after", "1")))

    await asyncio.gather(*(client_loop(seed) for seed in range(MIXED_CLIENTS)))
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(f"{url}/metrics")).text
    # A labelled counter has no sample before its first increment: absent is 0.
    phase.redis_errors = np.nan_to_num(metric_value(text, "faceflow_redis_errors_total"))
    phase.breaker_open = np.nan_to_num(metric_value(text, "faceflow_redis_breaker_open"))
    return phase


def redis_phases(body: bytes, seconds: float, work: Path) -> list[Phase]:
    redis = RedisServer()
    try:
        env = {"FACEFLOW_CACHE__REDIS_URL": redis.url}
        with serve(env, work / "serve-redis.log") as server:
            hot = [unique_variant(body, 900_000 + i) for i in range(8)]
            with httpx.Client(timeout=60) as client:
                for upload in hot:
                    client.post(
                        f"{server.url}/v1/analyze",
                        content=upload,
                        headers={"Content-Type": "image/jpeg"},
                    )
            phases = [asyncio.run(mixed_phase("up", server.url, body, hot, seconds))]
            redis.signal(signal.SIGSTOP)
            phases.append(asyncio.run(mixed_phase("hung", server.url, body, hot, seconds)))
            redis.signal(signal.SIGKILL)
            redis.proc.wait(timeout=10)
            phases.append(asyncio.run(mixed_phase("killed", server.url, body, hot, seconds)))
    finally:
        redis.stop()
    return phases


def redis_row(phases: list[Phase]) -> FaultRow:
    def describe(phase: Phase) -> str:
        served = sum(phase.statuses.values())
        refused = f" ({fmt_counts(phase.codes)})" if phase.codes else ""
        return (
            f"**Redis {phase.name}**: {phase.statuses.get(200, 0)}/{served} answered 200"
            f"{refused}; repeats p50 {fmt_ms(percentile_ms(phase.hits_s, 50))} / p99 "
            f"{fmt_ms(percentile_ms(phase.hits_s, 99))}, never-seen p50 "
            f"{fmt_ms(percentile_ms(phase.misses_s, 50))} / p99 "
            f"{fmt_ms(percentile_ms(phase.misses_s, 99))}"
        )

    previous = 0.0
    errors = []
    for phase in phases:
        errors.append(f"{phase.name} {phase.redis_errors - previous:.0f}")
        previous = phase.redis_errors
    breaker = ", ".join(f"{p.name} {p.breaker_open:.0f}" for p in phases)
    return FaultRow(
        f"the cache Redis SIGSTOPped (hung), then SIGKILLed, {MIXED_CLIENTS} clients sending "
        "half repeats, half never-seen uploads, each phase "
        f"{phases[0].seconds:.0f} s"
        if phases
        else "the cache Redis hung, then killed",
        "; ".join(describe(p) for p in phases) + "; transport errors: "
        f"{sum(p.transport_errors for p in phases)}",
        "fail open: repeats from the memory cache, the rest computed locally. "
        f"`faceflow_redis_breaker_open` at the end of each phase: {breaker}; "
        f"`faceflow_redis_errors_total` per phase: {', '.join(errors)} (each call waits at "
        "most `cache.redis_timeout_ms`, 50 ms; the open breaker skips Redis for "
        "`cache.breaker_reset_s`, 2 s)",
    )


# --- (c) overload -----------------------------------------------------------------------------


@dataclass
class Overload:
    seconds: float
    statuses: Counter[int] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)
    ok_s: list[float] = field(default_factory=list)
    refused_s: list[float] = field(default_factory=list)
    refused_with_retry_after: int = 0
    transport_errors: int = 0
    server_within: dict[str, float] = field(default_factory=dict)
    """The server's own view (``faceflow_http_request_seconds``, /v1/analyze, this phase): the
    share of answers it gave within each bucket bound."""


SERVER_BOUNDS = ("0.1", "0.25", "1.0")


def analyze_buckets(url: str) -> dict[str, float]:
    with httpx.Client(timeout=5) as client:
        text = client.get(f"{url}/metrics").text
    name = "faceflow_http_request_seconds_bucket"
    route = 'route="/v1/analyze"'
    counts = {b: metric_value(text, name, route, f'le="{b}"') for b in SERVER_BOUNDS}
    counts["+Inf"] = metric_value(text, name, route, 'le="+Inf"')
    return counts


async def overload(url: str, body: bytes, seconds: float) -> Overload:
    result = Overload(seconds)
    endpoint = f"{url}/v1/analyze"
    deadline = time.perf_counter() + seconds
    serial = iter(range(5_000_000, 10**9))
    headers = {"Content-Type": "image/jpeg"}

    async def client_loop() -> None:
        async with httpx.AsyncClient(timeout=60) as client:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                try:
                    upload = unique_variant(body, next(serial))
                    response = await client.post(endpoint, content=upload, headers=headers)
                except httpx.HTTPError:
                    result.transport_errors += 1
                    continue
                took = time.perf_counter() - start
                result.statuses[response.status_code] += 1
                if response.status_code == 200:
                    result.ok_s.append(took)
                    continue
                result.codes[response.headers.get("x-error-code", "?")] += 1
                if response.status_code == 503:
                    result.refused_s.append(took)
                    retry_after = response.headers.get("retry-after")
                    if retry_after is not None:
                        result.refused_with_retry_after += 1
                    await asyncio.sleep(min(float(retry_after or 1), 5.0))

    await asyncio.gather(*(client_loop() for _ in range(OVERLOAD_CLIENTS)))
    return result


def overload_row(result: Overload, calm_p50_ms: float) -> FaultRow:
    total = sum(result.statuses.values())
    refused = result.statuses.get(503, 0)
    other_5xx = sum(n for s, n in result.statuses.items() if s >= 500 and s != 503)
    return FaultRow(
        f"overload: {OVERLOAD_CLIENTS} clients sending never-seen uploads for "
        f"{result.seconds:.0f} s to 2 processes (admits 2 running + 1 waiting), each waiting "
        "out Retry-After",
        f"{refused}/{total} ({refused / total:.0%}) answered 503 {fmt_counts(result.codes)}, "
        f"{result.refused_with_retry_after}/{refused} with `Retry-After`, in p50 "
        f"{fmt_ms(percentile_ms(result.refused_s, 50))} / p99 "
        f"{fmt_ms(percentile_ms(result.refused_s, 99))}; {result.statuses.get(200, 0)} "
        f"answered 200; other 5xx: {other_5xx}; transport errors: {result.transport_errors}",
        f"admitted: p50 {fmt_ms(percentile_ms(result.ok_s, 50))}, p99 "
        f"{fmt_ms(percentile_ms(result.ok_s, 99))} (one request alone: p50 {fmt_ms(calm_p50_ms)}); "
        "ready throughout. The server's own timing (`faceflow_http_request_seconds`, "
        "request headers in to answer sent, 200s and 503s): "
        + ", ".join(
            f"{share:.0%} within {float(b) * 1000:.0f} ms"
            for b, share in result.server_within.items()
        )
        + " (the clients' time also holds connecting and waiting for CPU on this 2-core "
        "machine, which the load generator shares)",
    )


def calm_latency_ms(url: str, body: bytes, count: int = 10) -> float:
    took = []
    with httpx.Client(timeout=60) as client:
        for i in range(count):
            start = time.perf_counter()
            client.post(
                f"{url}/v1/analyze",
                content=unique_variant(body, 7_000_000 + i),
                headers={"Content-Type": "image/jpeg"},
            ).raise_for_status()
            took.append(time.perf_counter() - start)
    return percentile_ms(took, 50)


def run(image: Path, kill_image: Path, seconds: float) -> str:
    body = image.read_bytes()
    big = kill_image.read_bytes()
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="faceflow-faults-") as tmp:
        work = Path(tmp)
        with serve({}, work / "serve.log") as server:
            calm = calm_latency_ms(server.url, body)
            trials = [kill_trial(server, big, 100 * i, 1) for i in range(KILL_TRIALS)]
            trials += [kill_trial(server, big, 1000 + 100 * i, 2) for i in range(2)]
            died = (work / "serve.log").read_text().count("while running")
            before = analyze_buckets(server.url)
            loaded = asyncio.run(overload(server.url, body, seconds * 2))
            after = analyze_buckets(server.url)
            total = after["+Inf"] - before["+Inf"]
            loaded.server_within = {
                b: (after[b] - before[b]) / total for b in SERVER_BOUNDS if total > 0
            }
            with httpx.Client(timeout=5) as client:
                if client.get(f"{server.url}/readyz").status_code != 200:
                    raise RuntimeError("not ready after the overload")
        phases = redis_phases(body, seconds, work)
    rows = [killed_row(trials, died), redis_row(phases), overload_row(loaded, calm)]
    cores = Path("/proc/cpuinfo").read_text().count("processor")
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"{faults_table(rows)}\n\n{stamp}, {cores} cores, {image.name} "
        f"({len(body):,} bytes; kills: {kill_image.name}, "
        f"{len(big):,} bytes), "
        f"load average before {load_before}, after {load_average()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--image",
        type=Path,
        default=DEFAULT_IMAGE,
        help="the photo uploaded in the Redis and overload phases (default: %(default)s)",
    )
    parser.add_argument(
        "--kill-image",
        type=Path,
        default=DEFAULT_KILL_IMAGE,
        help="the photo uploaded in the kill trials, one slow enough to be caught running "
        "(default: %(default)s)",
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each load phase")
    args = parser.parse_args()
    print(run(args.image, args.kill_image, args.seconds))


if __name__ == "__main__":
    main()
