"""A load generator for a running faceflow: a concurrency sweep with a chosen cache-hit ratio.

Every request uploads an image as the raw body. A *hit* request re-sends one of a small set of
images that were sent once before the step (so the server has them cached); a *miss* request sends
bytes the server has never seen: the same photo with a unique JPEG comment segment (or, for other
formats, re-encoded), which changes the content hash without changing the pixels.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import random
import ssl
import struct
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import httpx
import numpy as np
from PIL import Image

from faceflow.loadgen import rawhttp

DEFAULT_SWEEP = (1, 5, 10, 20, 50, 200)


def unique_variant(image: bytes, serial: int) -> bytes:
    """``image`` with bytes no earlier request had, decoding to the same pixels where possible.

    JPEG: a comment (COM) segment carrying the serial, right after the start-of-image marker.
    Other formats: re-encoded as JPEG with the serial in a comment.
    """
    tag = f"faceflow-bench {serial} {random.getrandbits(64):016x}".encode()
    if image[:2] == b"\xff\xd8":
        return image[:2] + b"\xff\xfe" + struct.pack(">H", len(tag) + 2) + tag + image[2:]
    with Image.open(io.BytesIO(image)) as opened:
        out = io.BytesIO()
        opened.convert("RGB").save(out, "JPEG", quality=90, comment=tag)
    return out.getvalue()


@dataclass(slots=True)
class StepResult:
    """What one concurrency step measured."""

    concurrency: int
    seconds: float
    latencies_s: list[float] = field(default_factory=list)
    rejected_latencies_s: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    error_codes: Counter[str] = field(default_factory=Counter)
    transport_errors: Counter[str] = field(default_factory=Counter)
    cache_hits: int = 0
    cache_misses: int = 0
    client_cpu_s: float = 0.0
    """CPU seconds this (load-generating) process used during the step: on the server's own
    machine, CPU the server did not get."""

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values()) + sum(self.transport_errors.values())

    @property
    def throughput(self) -> float:
        """Successful responses per second."""
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    def percentile_ms(self, q: float) -> float:
        if not self.latencies_s:
            return float("nan")
        return float(np.percentile(np.asarray(self.latencies_s), q) * 1000)

    @property
    def client_cpu_share(self) -> float:
        """The load generator's CPU during the step, as a share of one core."""
        return self.client_cpu_s / self.seconds if self.seconds > 0 else 0.0

    @property
    def hit_ratio(self) -> float:
        seen = self.cache_hits + self.cache_misses
        return self.cache_hits / seen if seen else 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "concurrency": self.concurrency,
            "seconds": round(self.seconds, 3),
            "requests": self.requests,
            "ok": self.ok,
            "throughput_rps": round(self.throughput, 1),
            "p50_ms": round(self.percentile_ms(50), 2),
            "p95_ms": round(self.percentile_ms(95), 2),
            "p99_ms": round(self.percentile_ms(99), 2),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "error_codes": dict(self.error_codes),
            "transport_errors": dict(self.transport_errors),
            "cache_hit_ratio": round(self.hit_ratio, 3),
            "client_cpu_share": round(self.client_cpu_share, 3),
        }


@dataclass(frozen=True, slots=True)
class LoadPlan:
    url: str
    """Full URL of the endpoint, query string included."""
    images: Sequence[bytes]
    hit_ratio: float = 0.0
    duration_s: float | None = 10.0
    requests_per_step: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 60.0
    hot_set: int = 8
    """How many distinct images make up the repeated (cache-hit) pool."""
    honor_retry_after: bool = True
    """Closed-loop clients wait out a 429/503's Retry-After, as well-behaved clients do, instead
    of retrying at once and measuring a storm of refusals."""


async def wait_retry_after(response: httpx.Response, deadline: float | None = None) -> None:
    """Sleep for the response's ``Retry-After`` seconds (1 if absent or not a number), but not
    past ``deadline`` (a ``time.perf_counter()`` value)."""
    try:
        wait = float(response.headers.get("retry-after", "1"))
    except ValueError:
        wait = 1.0
    if deadline is not None:
        wait = min(wait, max(0.0, deadline - time.perf_counter()))
    await asyncio.sleep(wait)


class LoadGenerator:
    """Runs :class:`LoadPlan` steps: closed-loop clients (:meth:`step`) or arrivals at a fixed
    rate (:meth:`open_loop`)."""

    def __init__(self, plan: LoadPlan) -> None:
        """Raises ValueError for a plan without images or length, or with an image that is
        neither a JPEG nor a format Pillow can re-encode (no never-seen variant can be made)."""
        if not plan.images:
            raise ValueError("at least one image is needed")
        if plan.duration_s is None and plan.requests_per_step is None:
            raise ValueError("give a duration or a request count per step")
        for index, image in enumerate(plan.images):
            try:
                unique_variant(image, -1)
            except (OSError, ValueError) as exc:
                raise ValueError(
                    f"image {index + 1} is not a JPEG and Pillow cannot read it ({exc})"
                ) from None
        self.plan = plan
        self._serial = itertools.count()
        sources = itertools.cycle(plan.images)
        self.hot = [unique_variant(next(sources), next(self._serial)) for _ in range(plan.hot_set)]
        self._sources = itertools.cycle(plan.images)

    def _next_body(self, rng: random.Random) -> bytes:
        if rng.random() < self.plan.hit_ratio:
            return rng.choice(self.hot)
        return unique_variant(next(self._sources), next(self._serial))

    async def warm(self) -> None:
        """Send the hot set once so later repeats are cache hits."""
        if self.plan.hit_ratio <= 0:
            return
        async with httpx.AsyncClient(timeout=self.plan.timeout_s) as client:
            for body in self.hot:
                await client.post(self.plan.url, content=body, headers=self._headers())

    def _headers(self) -> dict[str, str]:
        return {"Content-Type": "image/jpeg", **self.plan.headers}

    def _record(self, result: StepResult, response: httpx.Response, seconds: float) -> None:
        result.latencies_s.append(seconds)
        result.statuses[response.status_code] += 1
        if response.status_code != 200:
            result.error_codes[response.headers.get("x-error-code", "unknown")] += 1
        cache = response.headers.get("x-cache")
        if cache == "hit":
            result.cache_hits += 1
        elif cache == "miss":
            result.cache_misses += 1

    async def open_loop(self, rate_per_s: float, duration_s: float) -> StepResult:
        """Requests started at a fixed rate whatever the answers (an arrival process, as real
        traffic is), for ``duration_s``, each on its own connection with a lightweight client;
        ``concurrency`` in the result is the peak in flight. Latencies of refused (non-200)
        requests are kept apart in ``rejected_latencies_s``."""
        result = StepResult(concurrency=0, seconds=0.0)
        rng = random.Random(7)
        headers = self._headers()
        in_flight = 0

        async def one(body: bytes) -> None:
            nonlocal in_flight
            in_flight += 1
            result.concurrency = max(result.concurrency, in_flight)
            start = time.perf_counter()
            try:
                response = await asyncio.wait_for(
                    rawhttp.post(self.plan.url, body, headers), self.plan.timeout_s
                )
            except (
                OSError,
                ValueError,
                IndexError,
                TimeoutError,
                asyncio.IncompleteReadError,
            ) as exc:
                result.transport_errors[type(exc).__name__] += 1
                return
            finally:
                in_flight -= 1
            elapsed = time.perf_counter() - start
            if response.status_code == 200:
                result.latencies_s.append(elapsed)
                result.statuses[200] += 1
            else:
                result.rejected_latencies_s.append(elapsed)
                result.statuses[response.status_code] += 1
                result.error_codes[response.headers.get("x-error-code", "unknown")] += 1

        tasks: list[asyncio.Task[None]] = []
        begin, cpu_begin = time.perf_counter(), time.process_time()
        sent = 0
        while (now := time.perf_counter()) - begin < duration_s:
            due = int((now - begin) * rate_per_s) + 1
            while sent < due:
                tasks.append(asyncio.create_task(one(self._next_body(rng))))
                sent += 1
            await asyncio.sleep(min(0.005, 1 / rate_per_s))
        await asyncio.gather(*tasks)
        result.seconds = time.perf_counter() - begin
        result.client_cpu_s = time.process_time() - cpu_begin
        return result

    async def step(
        self, concurrency: int, on_progress: Callable[[int], None] | None = None
    ) -> StepResult:
        """``concurrency`` clients sending back to back until the step's duration or count.

        Each client has its own one-connection httpx client: one pool shared by all of them
        costs O(connections) CPU per request in httpcore's pool bookkeeping (measured at 200
        clients: 11 ms of client CPU per request shared, 2 ms apart), which on a machine shared
        with the server takes the CPU being measured and made the 200-client figures the
        client's, not the server's. They share one TLS context, as building one costs ~40 ms.
        """
        plan = self.plan
        result = StepResult(concurrency=concurrency, seconds=0.0)
        remaining = itertools.count()
        deadline = time.perf_counter() + plan.duration_s if plan.duration_s else None
        headers = self._headers()
        tls = ssl.create_default_context()
        one_connection = httpx.Limits(max_connections=1, max_keepalive_connections=1)

        async def client_loop(seed: int) -> None:
            rng = random.Random(seed)
            async with httpx.AsyncClient(
                timeout=plan.timeout_s, limits=one_connection, verify=tls
            ) as client:
                while True:
                    if deadline is not None and time.perf_counter() >= deadline:
                        return
                    if (
                        plan.requests_per_step is not None
                        and next(remaining) >= plan.requests_per_step
                    ):
                        return
                    body = self._next_body(rng)
                    start = time.perf_counter()
                    try:
                        response = await client.post(plan.url, content=body, headers=headers)
                    except httpx.HTTPError as exc:
                        result.transport_errors[type(exc).__name__] += 1
                        continue
                    self._record(result, response, time.perf_counter() - start)
                    if on_progress is not None:
                        on_progress(1)
                    if plan.honor_retry_after and response.status_code in (429, 503):
                        await wait_retry_after(response, deadline)

        begin, cpu_begin = time.perf_counter(), time.process_time()
        await asyncio.gather(*(client_loop(seed) for seed in range(concurrency)))
        result.seconds = time.perf_counter() - begin
        result.client_cpu_s = time.process_time() - cpu_begin
        return result
