"""Running one task over many files, in this process or in a pool of spawned processes."""

from __future__ import annotations

import asyncio
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


def run_files(
    settings: Settings,
    paths: list[Path],
    make_request: Callable[[bytes], Req],
    task: Callable[[WorkerContext, Req], Res],
    workers: int,
    on_done: Callable[[FileOutcome[Res]], None],
) -> None:
    """``task(context, make_request(bytes))`` for every file; ``on_done`` sees each outcome.

    One worker: the models load here once and files run in order. More: that many spawned
    processes each load the models once, and outcomes arrive as they complete. A file's error is
    its outcome; the others go on. Errors that stop everything (missing models) propagate.
    """
    if workers == 1:
        context = load_context(settings.model_dump_json())
        for path in paths:
            try:
                on_done(FileOutcome(path, task(context, make_request(_read(path))), None))
            except FaceflowError as exc:
                on_done(FileOutcome(path, None, exc))
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
    pool: InferencePool[WorkerContext] = InferencePool(
        processes=workers,
        max_waiting=workers,
        deadline_s=settings.runtime.deadline_s,
        init=load_pool_context,
        init_arg=settings.model_dump_json(),
    )
    # Never more in flight than the pool admits (running + waiting), so nothing is shed.
    slots = asyncio.Semaphore(2 * workers)

    async def one(path: Path) -> None:
        async with slots:
            try:
                request = make_request(_read(path))
                on_done(FileOutcome(path, await pool.run(task, request), None))
            except FaceflowError as exc:
                on_done(FileOutcome(path, None, exc))

    await pool.start()
    try:
        await pool.wait_ready(timeout_s=POOL_START_TIMEOUT_S)
        await asyncio.gather(*(one(path) for path in paths))
    finally:
        await pool.close()
