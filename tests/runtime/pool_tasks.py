"""Module-level init, warm-up and task functions for tests/runtime/test_pool.py.

They run in spawned worker processes, so they are pickled by reference and must live here, not in
the test module. The context is a plain dict built by :func:`init`.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from faceflow.errors import ModelMissing, NoFace
from faceflow.runtime.child import checkpoint

Context = dict[str, object]

_inits = 0
"""How many times init ran in this process; the pool must call it exactly once."""


@dataclass(frozen=True)
class Config:
    gate: str | None = None
    """If set, warm-up announces itself (``<gate>.<pid>.warming``) and waits for this file."""
    fail_init: bool = False


def init(config: Config) -> Context:
    global _inits
    _inits += 1
    if config.fail_init:
        raise ModelMissing("model yunet is not in the store", {"model": "yunet"})
    return {"pid": os.getpid(), "inits": _inits, "gate": config.gate}


def warmup(context: Context) -> None:
    gate = context["gate"]
    if not isinstance(gate, str):
        return
    Path(f"{gate}.{os.getpid()}.warming").touch()
    deadline = time.monotonic() + 30.0
    while not Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(0.01)


@dataclass
class Parcel:
    """A request a test can watch with a weak reference (an upload's stand-in)."""

    data: bytes


def echo(context: Context, value: int) -> int:
    return value


_pinned: list[bytes] = []
"""Blocks a task keeps above what it freed, as the Python objects a real task leaves behind do."""


def hold_then_free(context: Context, nbytes: int) -> int:
    """Grow the heap by ``nbytes`` in blocks under glibc's mmap threshold and free them, with a
    small block kept above them, so the freed ``nbytes`` stay in the heap (as a decoded photo's
    do); return this process's pid."""
    blocks = [b"\x01" * 100_000 for _ in range(nbytes // 100_000)]
    _pinned.append(b"\x02" * 100_000)
    del blocks
    return os.getpid()


def whoami(context: Context, _: None) -> tuple[object, object, int]:
    """(pid the context was built in, its init count, pid running the task)."""
    return context["pid"], context["inits"], os.getpid()


def env(context: Context, name: str) -> str | None:
    return os.environ.get(name)


def sleep(context: Context, seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def staged(context: Context, seconds: float) -> float:
    """Slow work in short stages with a checkpoint between them, as the real tasks do."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        checkpoint()
        time.sleep(0.02)
    return seconds


def hold(context: Context, gate: str) -> str:
    """Keep the worker busy until the file ``gate`` exists (at most 30 s)."""
    deadline = time.monotonic() + 30.0
    while not Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return gate


def no_face(context: Context, _: object) -> None:
    raise NoFace("no face found in the image", {"faces": 0})


def boom(context: Context, _: None) -> None:
    raise ValueError("secret internals at /srv/faceflow/models/yunet.onnx")


def digest(context: Context, data: bytes) -> tuple[int, str]:
    return len(data), hashlib.sha256(data).hexdigest()


def crash_once(context: Context, marker: str) -> int:
    """Kill the worker the first time (marked by a file), then answer with the pid."""
    path = Path(marker)
    if not path.exists():
        path.touch()
        os._exit(1)
    return os.getpid()


def crash_always(context: Context, _: None) -> None:
    os._exit(3)
