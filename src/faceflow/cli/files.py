"""Running one task over many files, in this process or in a pool of spawned processes."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from faceflow.config import Settings
from faceflow.errors import FaceflowError, InvalidParameter
from faceflow.runtime.context import WorkerContext, load_context, load_pool_context
from faceflow.runtime.pool import InferencePool

Req = TypeVar("Req")
Res = TypeVar("Res")

POOL_START_TIMEOUT_S = 180.0

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FileOutcome(Generic[Res]):
    """One file's result, or the typed error that stopped it."""

    path: Path
    result: Res | None
    error: FaceflowError | None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidParameter(f"cannot read {path}: {exc.strerror}") from None


def _outcome(
    context: WorkerContext,
    path: Path,
    make_request: Callable[[bytes], Req],
    task: Callable[[WorkerContext, Req], Res],
) -> FileOutcome[Res]:
    try:
        return FileOutcome(path, task(context, make_request(_read(path))), None)
    except FaceflowError as exc:
        return FileOutcome(path, None, exc)


def run_files(
    settings: Settings,
    paths: list[Path],
    make_request: Callable[[bytes], Req],
    task: Callable[[WorkerContext, Req], Res],
    workers: int,
    on_done: Callable[[FileOutcome[Res]], None],
) -> None:
    """``task(context, make_request(bytes))`` for every file; ``on_done`` sees each outcome once.

    One worker: the models load here once and files run in order. More: that many spawned
    processes each load the models once, and outcomes arrive as they complete; until they are
    ready this process works through the files itself, so a pool never makes a batch slower than
    one worker (a small batch is done before the pool has loaded). A file's error is its
    outcome; the others go on. Errors that stop everything (missing models) propagate.
    """
    if workers == 1:
        context = load_context(settings.model_dump_json())
        for path in paths:
            on_done(_outcome(context, path, make_request, task))
        return
    asyncio.run(_run_in_pool(settings, paths, make_request, task, workers, on_done))


async def _run_in_pool(
    settings: Settings,
    paths: list[Path],
    make_request: Callable[[bytes], Req],
    task: Callable[[WorkerContext, Req], Res],
    workers: int,
    on_done: Callable[[FileOutcome[Res]], None],
) -> None:
    pending = deque(paths)  # popleft is atomic: this thread and the local worker share it
    reported = threading.Lock()  # outcomes come from the local thread and the event loop

    def report(outcome: FileOutcome[Res]) -> None:
        with reported:
            on_done(outcome)

    pool_ready = threading.Event()

    def work_here() -> None:
        """Run files in this process until the pool is ready (or nothing is left)."""
        context = load_context(settings.model_dump_json())
        while not pool_ready.is_set():
            try:
                path = pending.popleft()
            except IndexError:
                return
            report(_outcome(context, path, make_request, task))

    pool: InferencePool[WorkerContext] = InferencePool(
        processes=workers,
        max_waiting=workers,
        deadline_s=settings.runtime.deadline_s,
        init=load_pool_context,
        init_arg=settings.model_dump_json(),
    )

    async def feed_pool() -> None:
        while True:
            try:
                path = pending.popleft()
            except IndexError:
                return
            try:
                request = make_request(_read(path))
                report(FileOutcome(path, await pool.run(task, request), None))
            except FaceflowError as exc:
                report(FileOutcome(path, None, exc))

    await pool.start()
    try:
        local = asyncio.create_task(asyncio.to_thread(work_here))
        ready = asyncio.create_task(pool.wait_ready(timeout_s=POOL_START_TIMEOUT_S))
        await asyncio.wait({local, ready}, return_when=asyncio.FIRST_COMPLETED)
        if not local.done():
            try:
                await ready
            except FaceflowError:
                log.warning("inference processes did not start; working in this process alone")
            else:
                pool_ready.set()
                # Never more in flight than the pool admits (running + waiting): nothing is shed.
                await asyncio.gather(*(feed_pool() for _ in range(2 * workers)))
        await local  # its current file, or its start-up error (missing models)
        ready.cancel()
    finally:
        await pool.close()
