"""The inference process pool: models loaded once per process, bounded admission, deadlines.

The pool knows nothing about models. Each of ``processes`` workers is a ``spawn``-ed process that
builds its context once with ``init(init_arg)`` (the loaded models), optionally runs
``warmup(context)``, reports ready, then runs tasks one at a time: ``fn(context, request)``, where
``fn`` is a module-level function (pickled by reference) and ``request`` is picklable.

Lifecycle, from a service's lifespan or from ``asyncio.run`` in a script::

    pool = InferencePool(processes=2, max_waiting=4, deadline_s=30.0,
                         init=load_pool_context, init_arg=settings.model_dump_json(),
                         warmup=warm_up)
    await pool.start()            # returns at once; workers load in the background
    await pool.wait_ready(60.0)   # or poll ``pool.ready`` from /readyz
    result = await pool.run(run_face_request, request)
    await pool.close()

(``load_pool_context`` and ``warm_up`` from :mod:`faceflow.runtime.context`,
``run_face_request`` from :mod:`faceflow.runtime.tasks`.)

Why spawn and never fork: an onnxruntime session must not be created before a fork and used after
it, and a forked child would inherit the parent's event loop, threads and locks.

Communication: one duplex pipe per worker and one reader thread per worker in the parent. The
thread blocks in ``multiprocessing.connection.wait`` on the pipe *and* the process sentinel, so it
notices a death at once, whether the worker was busy or idle; it also unpickles results, which
may be megabytes (encoded images), off the event loop, and hands each message to the loop with
``call_soon_threadsafe``. ``loop.add_reader`` would have to ``recv`` on the loop, which blocks
until a whole large message has arrived. Requests are pickled on the loop (a copy; measured
≈ 0.1 ms for 100 KB, ≈ 8 ms for 10 MB, and holding the GIL wherever it runs) and sent from the
loop when small; a 10 MB send measured ≈ 12 ms of blocking pipe writes, so payloads above
``_INLINE_SEND_BYTES`` are written by a sender thread instead (pipe writes release the GIL).

Memory: workers are spawned with glibc malloc tunables (see :data:`CHILD_GLIBC_TUNABLES`).

Start-up: a worker does not re-run the parent's ``__main__`` (see :func:`_parent_main_hidden`),
and a :class:`HeadStart` lets workers be spawned before the pool that adopts them exists.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import enum
import logging
import math
import multiprocessing
import multiprocessing.connection
import multiprocessing.context
import os
import pickle
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from faceflow.errors import (
    DeadlineExceeded,
    FaceflowError,
    NotReady,
    Overloaded,
    WorkerCrashed,
    error_from_code,
)
from faceflow.runtime.child import (
    STOP,
    CancelCell,
    InitFailed,
    Message,
    Ready,
    TaskFailed,
    TaskOk,
    child_main,
    task_name,
)

if TYPE_CHECKING:
    from faceflow.config import RuntimeSettings

__all__ = [
    "DEADLINE_AT",
    "PLACE_OWNER",
    "Admission",
    "HeadStart",
    "InferencePool",
    "OwnersAbout",
    "PoolStats",
    "TaskObserver",
    "WorkerInfo",
    "WorkerState",
]

C = TypeVar("C")
A = TypeVar("A")
Req = TypeVar("Req")
Res = TypeVar("Res")

TaskObserver = Callable[[str, float, bool], None]
"""``on_task_done(fn_name, seconds, ok)``: called on the event loop once per task attempt that
ended in a worker (a result, a task error, or the worker dying under it), with the seconds from
dispatch to that end. It must be quick; its exceptions are logged and ignored."""

PLACE_OWNER: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "faceflow_place_owner", default=None
)
"""Who the tasks and admissions asked for in this context are for: the service sets it to the
client of each HTTP request (its rate-limit identity), and a pool built with
``keep_last_place`` gives its last free place only to an owner with nothing in it while another
owner is about. None (jobs, the CLI, tests) is nobody's: such tasks are neither counted nor
refused for an owner."""

DEADLINE_AT: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "faceflow_deadline_at", default=None
)
"""The event-loop time by which the tasks run in this context must have ended, for a caller that
spent part of its request's deadline before asking (waiting for another node's computation of
the same result, :class:`~faceflow.cache.singleflight.RedisFlight`): :meth:`InferencePool.run`
gives a task what is left of it when that is less than its own deadline, and refuses one with
nothing left (503 ``deadline_exceeded``) without starting it. None: the pool's deadline alone."""

OTHERS_ABOUT_S = 10.0
"""With ``keep_last_place``, how recently another owner must have asked for a place for the last
one to be kept from an owner that holds one already. With nobody else about, one client (a single
backend, a benchmark from one address) keeps every place, waiting ones included, which keep the
processes fed between its requests; a client refused for want of room is about for this long,
longer than the Retry-After it was given, so its retry finds the last place kept."""


class OwnersAbout:
    """Which owners (:data:`PLACE_OWNER`) asked for something lately: the latest two, and when.
    Another owner is about when it asked within :data:`OTHERS_ABOUT_S`."""

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen: collections.OrderedDict[str, float] = collections.OrderedDict()

    def others_about(self, owner: str) -> bool:
        """Note that ``owner`` asks now; True if another owner asked within the last
        :data:`OTHERS_ABOUT_S`."""
        now = time.monotonic()
        seen = self._seen
        seen[owner] = now
        seen.move_to_end(owner)
        if len(seen) > 2:  # the latest two owners tell whether another was about
            seen.popitem(last=False)
        return any(other != owner and now - at < OTHERS_ABOUT_S for other, at in seen.items())


_log = logging.getLogger(__name__)

_PROTOCOL = pickle.HIGHEST_PROTOCOL
# Below this a send to an idle worker costs ≤ ≈ 0.15 ms on the loop (measured: 100 KB 0.02 ms,
# 1 MB 0.6 ms, 10 MB 12 ms), less than handing it to a thread would.
_INLINE_SEND_BYTES = 256 * 1024
_RECENT_DURATIONS = 64
# After a kill (SIGKILL), how long close() and the head start wait for the exit.
_SIGNAL_GRACE_S = 2.0

CHILD_GLIBC_TUNABLES = ("glibc.malloc.hugetlb=1",)
"""Put in each worker's ``GLIBC_TUNABLES`` (measured with bench/rss.py):

* ``hugetlb=1``: malloc asks for transparent huge pages (``madvise``) for the blocks it maps. A
  model run without an arena (u2netp, see :func:`faceflow.models.session.create_session`) maps
  and touches ≈ 290 MB afresh each run; in 4 KB pages that measured ≈ 30 % more CPU than
  keeping an arena, in 2 MB pages ≈ 20 %. It also made ``analyze`` over the 76 test and dev-set
  photos cheaper (33 against 38 CPU ms a photo).
* Not a fixed ``mmap_threshold``: 256 KB (so freed photos went back to the system at once) cost
  ``analyze`` 18 % more CPU (39 against 33 ms: every decoded image mapped and faulted in
  afresh), and bench/rss.py measured no lasting gain from it: 650–700 MB for server + 2
  processes from request 200 to 2,000 without it, 652–668 MB with it.

glibc reads tunables once, when a process starts, so they must be in the environment it is
spawned with, not set from inside it. Other C libraries ignore the variable."""


class WorkerState(enum.StrEnum):
    STARTING = "starting"
    """Spawned; building its context or warming up."""
    IDLE = "idle"
    BUSY = "busy"
    FAILED = "failed"
    """Start-up failed (init or warm-up raised, or the process died before it was ready). A
    failed slot is not restarted: the same models would fail the same way, in a loop."""
    DEAD = "dead"
    """Died after it was ready; a replacement is already starting in its slot."""
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    slot: int
    generation: int
    """0 for the first process in this slot, +1 for each replacement."""
    pid: int | None
    state: WorkerState
    tasks_done: int


@dataclass(frozen=True, slots=True)
class PoolStats:
    """A snapshot for metrics. Counters are totals since the pool was created."""

    processes: int
    ready_workers: int
    """Workers that are idle or busy."""
    in_flight: int
    """Busy workers, including ones finishing a task whose caller already gave up."""
    waiting: int
    """Tasks waiting for a worker, plus admitted requests between two trips (they will want one
    next: see :meth:`InferencePool.admit`)."""
    completed: int
    """Tasks a worker answered (a result or a task error), delivered or discarded."""
    crashed: int
    """Workers that died after they were ready."""
    replaced: int
    """Replacement workers started."""
    rejected: int
    """Requests refused with Overloaded."""
    timed_out: int
    """Requests that raised DeadlineExceeded."""
    killed: int = 0
    """Workers killed because their task ran on past its caller's deadline plus the grace period
    (also counted in ``replaced``, not in ``crashed``)."""


class Admission:
    """One request's admission to the pool, good for several trips (see
    :meth:`InferencePool.admit`). Close it (or leave its ``with`` block) when the request is done
    with the pool."""

    __slots__ = ("_in_run", "_open", "_owner", "_pool")

    def __init__(self, pool: InferencePool[object], owner: str | None) -> None:
        self._pool = pool
        self._owner = owner
        self._open = True
        self._in_run = False

    def close(self) -> None:
        if self._open:
            self._open = False
            if not self._in_run:
                self._pool._held -= 1
            self._pool._owned_less(self._owner)

    def __enter__(self) -> Admission:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@dataclass(eq=False, slots=True)
class _Job:
    name: str
    seq: int
    """Unique in the pool; what a worker's cancel cell is set to to stop this job."""
    payload: bytes = field(repr=False)
    future: asyncio.Future[object]
    attempts: int = 0
    """Workers that died running this job."""
    dispatched_at: float = 0.0


@dataclass(eq=False, slots=True)
class _Worker:
    slot: int
    generation: int
    process: BaseProcess
    conn: Connection
    cancel: CancelCell
    state: WorkerState = WorkerState.STARTING
    job: _Job | None = None
    tasks_done: int = 0
    init_error: FaceflowError | None = None
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    # Serializes writes on the pipe: a large request sent by a thread and close()'s STOP.
    send_lock: threading.Lock = field(default_factory=threading.Lock)
    reader: threading.Thread | None = None
    kill_timer: asyncio.TimerHandle | None = None
    """Armed when the running job's caller gave up: kills the process if the job is still
    running when it fires."""
    overdue: bool = False
    """Killed by the pool for running past its deadline plus the grace period."""


@dataclass(frozen=True, slots=True)
class _Spawned:
    """A started worker process, before any pool reads from it."""

    process: BaseProcess
    conn: Connection
    """The parent's end of the duplex pipe."""
    cancel: CancelCell


class HeadStart:
    """Worker processes spawned before the pool that runs them exists, for that pool to adopt.

    ``faceflow serve`` spawns them as soon as it has its settings, so the workers import numpy
    and onnxruntime and load their models while the API process imports its web stack, instead
    of after it. The pool given this head start (``InferencePool(..., head_start=...)``) adopts
    them if its setup (``init``, ``init_arg``, ``warmup``) is byte for byte the one they were
    started with, and otherwise stops them and spawns its own: a head start never changes what a
    worker runs. Processes no pool adopts are daemonic, so multiprocessing ends them when this
    process exits.
    """

    def __init__(
        self,
        *,
        processes: int,
        init: Callable[[Any], object],
        init_arg: object,
        warmup: Callable[[Any], object] | None = None,
    ) -> None:
        """Spawn ``processes`` workers now, with the setup an :class:`InferencePool` of the same
        arguments would give them."""
        if processes < 1:
            raise ValueError("processes must be at least 1")
        self._setup = _setup_bytes(init, init_arg, warmup)
        context = multiprocessing.get_context("spawn")
        self._spawned: list[_Spawned] | None = [
            _start_worker(context, slot, self._setup, _defined_in_main(init, warmup))
            for slot in range(processes)
        ]

    @classmethod
    def from_settings(
        cls,
        settings: RuntimeSettings,
        *,
        init: Callable[[Any], object],
        init_arg: object,
        warmup: Callable[[Any], object] | None = None,
    ) -> HeadStart:
        """The workers :meth:`InferencePool.from_settings` with the same arguments would spawn."""
        return cls(
            processes=settings.processes,
            init=init,
            init_arg=init_arg,
            warmup=warmup if settings.warmup else None,
        )

    def take(self, setup: bytes, processes: int) -> list[_Spawned]:
        """The workers for a pool of ``processes`` with ``setup``, once (then ``[]``); any it
        cannot use are stopped."""
        spawned, self._spawned = self._spawned or [], None
        usable = spawned[:processes] if setup == self._setup else []
        if spawned and not usable:
            _log.warning("head-started workers were started with another setup: replacing them")
        for unused in spawned[len(usable) :]:
            unused.conn.close()  # a worker reads the close as its stop
            unused.process.join(_SIGNAL_GRACE_S)
            if unused.process.is_alive():  # still loading its models: it ignores SIGTERM
                unused.process.kill()
                unused.process.join(_SIGNAL_GRACE_S)
        return usable


class InferencePool(Generic[C]):
    """A fixed set of worker processes, each holding a context ``C``, running tasks on it.

    Admission is bounded: at most ``processes`` tasks run (one per worker) and at most
    ``max_waiting`` wait; beyond that :meth:`run` raises :class:`Overloaded` at once. Every task
    has a deadline covering its wait and its run. When a caller gives up on a running task (its
    deadline passed, or it was cancelled) the worker is told to stop it at the task's next
    :func:`~faceflow.runtime.child.checkpoint`; a worker still on that task ``cancel_grace_s``
    later is killed and replaced. A worker that dies is replaced; the task it was running is
    retried once on another worker.

    All methods must be called from the event loop that called :meth:`start`; the pool is not
    thread-safe.
    """

    def __init__(
        self,
        *,
        processes: int,
        max_waiting: int,
        deadline_s: float,
        init: Callable[[A], C],
        init_arg: A,
        warmup: Callable[[C], object] | None = None,
        on_task_done: TaskObserver | None = None,
        stop_timeout_s: float = 10.0,
        cancel_grace_s: float = 5.0,
        head_start: HeadStart | None = None,
        keep_last_place: bool = False,
    ) -> None:
        """Describe the pool; nothing starts until :meth:`start`.

        ``init``, ``warmup`` and task functions must be module-level functions and ``init_arg``
        picklable (checked here: a lambda fails now, not in a child). ``stop_timeout_s`` bounds
        how long
        :meth:`close` lets busy workers finish before terminating them; ``cancel_grace_s`` how
        long a task given up on may run on before its worker is killed. :meth:`start` adopts the
        workers of ``head_start`` if they were started with this setup (see :class:`HeadStart`).
        With ``keep_last_place`` the last free place (an idle worker or a waiting place) is
        refused to an owner (:data:`PLACE_OWNER`) that already has a task or admission in the
        pool while another owner is about (:data:`OTHERS_ABOUT_S`), so that one owner's
        concurrent requests cannot take every place from others.
        """
        if processes < 1:
            raise ValueError("processes must be at least 1")
        if max_waiting < 0:
            raise ValueError("max_waiting must not be negative")
        if not deadline_s > 0:
            raise ValueError("deadline_s must be positive")
        if not cancel_grace_s > 0:
            raise ValueError("cancel_grace_s must be positive")
        self._processes = processes
        self._max_waiting = max_waiting
        self._deadline_s = deadline_s
        self._setup = _setup_bytes(init, init_arg, warmup)
        self._main_needed = _defined_in_main(init, warmup)
        self._head_start = head_start
        self._on_task_done = on_task_done
        self._stop_timeout_s = stop_timeout_s
        self._cancel_grace_s = cancel_grace_s
        self._mp = multiprocessing.get_context("spawn")

        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: list[_Worker] = []
        self._waiting: collections.deque[_Job] = collections.deque()
        self._ready_future: asyncio.Future[None] | None = None
        self._sender: ThreadPoolExecutor | None = None
        self._closing = False
        self._recent: collections.deque[float] = collections.deque(maxlen=_RECENT_DURATIONS)
        self._completed = 0
        self._crashed = 0
        self._replaced = 0
        self._rejected = 0
        self._timed_out = 0
        self._killed = 0
        self._seq = 0
        self._held = 0
        """Open admissions with no task in the pool right now: each will want a worker."""
        self._keep_last_place = keep_last_place
        self._owned: collections.Counter[str] = collections.Counter()
        """Per owner: its tasks (outside an admission) and open admissions in the pool."""
        self._about = OwnersAbout()
        """The latest owners to ask for a place."""

    @classmethod
    def from_settings(
        cls,
        settings: RuntimeSettings,
        *,
        init: Callable[[A], C],
        init_arg: A,
        warmup: Callable[[C], object] | None = None,
        on_task_done: TaskObserver | None = None,
        head_start: HeadStart | None = None,
    ) -> InferencePool[C]:
        """A pool sized by the ``runtime`` settings group; ``warmup`` is skipped when it says so."""
        return InferencePool(
            processes=settings.processes,
            max_waiting=settings.waiting_limit,
            deadline_s=settings.deadline_s,
            cancel_grace_s=settings.cancel_grace_s,
            init=init,
            init_arg=init_arg,
            warmup=warmup if settings.warmup else None,
            on_task_done=on_task_done,
            head_start=head_start,
            keep_last_place=settings.keep_last_place,
        )

    async def __aenter__(self) -> InferencePool[C]:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Spawn every worker and return without waiting for them to load. Call once."""
        if self._loop is not None:
            raise RuntimeError("the pool was already started")
        self._loop = asyncio.get_running_loop()
        self._ready_future = self._loop.create_future()
        # Nobody may ever await it (a service that only polls ``ready``): mark its error retrieved.
        self._ready_future.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._sender = ThreadPoolExecutor(
            max_workers=self._processes, thread_name_prefix="faceflow-pool-send"
        )
        adopted = self._head_start.take(self._setup, self._processes) if self._head_start else []
        self._head_start = None
        for slot in range(self._processes):
            spawned = adopted[slot] if slot < len(adopted) else None
            self._slots.append(self._spawn(slot, generation=0, spawned=spawned))

    async def wait_ready(self, timeout_s: float) -> None:
        """Return once every worker has built its context and warmed up.

        Raises the start-up error of a worker whose ``init`` or ``warmup`` failed (rebuilt from
        its code, e.g. :class:`~faceflow.errors.ModelMissing`), or :class:`NotReady` on timeout
        or if the pool is not started or is closed.
        """
        if self._ready_future is None or self._closing:
            raise NotReady("the inference pool is not running")
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.shield(self._ready_future)
        except TimeoutError:
            raise NotReady(f"inference workers not ready after {timeout_s:g} s") from None

    @property
    def ready(self) -> bool:
        """True once every worker has finished start-up, and afterwards while at least one worker
        is alive and ready (idle or busy), so a crash being repaired does not flap readiness.
        False before :meth:`start`, after a start-up failure, and from :meth:`close` on."""
        future = self._ready_future
        if self._closing or future is None or not future.done() or future.exception():
            return False
        return any(w.state in (WorkerState.IDLE, WorkerState.BUSY) for w in self._slots)

    def stats(self) -> PoolStats:
        return PoolStats(
            processes=self._processes,
            ready_workers=sum(w.state in (WorkerState.IDLE, WorkerState.BUSY) for w in self._slots),
            in_flight=sum(w.state is WorkerState.BUSY for w in self._slots),
            waiting=len(self._waiting) + self._held,
            completed=self._completed,
            crashed=self._crashed,
            replaced=self._replaced,
            rejected=self._rejected,
            timed_out=self._timed_out,
            killed=self._killed,
        )

    def workers(self) -> tuple[WorkerInfo, ...]:
        """The current process of each slot."""
        return tuple(
            WorkerInfo(w.slot, w.generation, w.process.pid, w.state, w.tasks_done)
            for w in self._slots
        )

    def check_admission(self) -> None:
        """Raise :class:`Overloaded` (counted as rejected) if :meth:`run` would refuse a task now.

        Lets a caller shed a request before doing any work for it; :meth:`run` checks again.
        Room is idle workers plus free waiting places; what is claimed is the waiting tasks plus
        the open :class:`Admission` s between two trips. With ``keep_last_place``, the last of
        it is refused to an owner that already holds a place while another is about (see
        :meth:`__init__`).
        """
        idle = sum(w.state is WorkerState.IDLE for w in self._slots)
        free = idle + self._max_waiting - len(self._waiting) - self._held
        owner = PLACE_OWNER.get()
        # Seen before any refusal: a client refused for want of room is about, and waiting.
        keep_from = owner if self._keep_last_place and owner is not None else None
        others_about = keep_from is not None and self._about.others_about(keep_from)
        if free <= 0:
            self._rejected += 1
            raise Overloaded(
                "all inference workers are busy and the wait queue is full",
                retry_after_s=self.retry_after_s(),
            )
        if free == 1 and others_about and keep_from is not None and self._owned[keep_from]:
            self._rejected += 1
            raise Overloaded(
                "your other requests hold the inference workers, and the last free place is "
                "kept for other clients: send this one when one of yours has been answered",
                retry_after_s=self.retry_after_s(),
            )

    def admit(self) -> Admission:
        """Admit a request that needs several trips (e.g. a matte, then a render) once, now.

        Raises :class:`Overloaded` as :meth:`run` would. A :meth:`run` with the admission is
        never refused for load: the request keeps the place it was given, even when other
        requests filled the queue while it was between trips (while it is, it counts as
        waiting, so new requests are refused rather than it). Use it as a context manager.
        """
        self._running_loop()
        self.check_admission()
        self._held += 1
        owner = PLACE_OWNER.get()
        self._owned_more(owner)
        return Admission(cast("InferencePool[object]", self), owner)

    async def run(
        self,
        fn: Callable[[C, Req], Res],
        request: Req,
        *,
        deadline_s: float | None = None,
        admission: Admission | None = None,
    ) -> Res:
        """Run ``fn(context, request)`` in a worker and return its result.

        Raises at once :class:`Overloaded` (with ``retry_after_s`` estimated from recent task
        durations) when every worker is busy and ``max_waiting`` requests already wait (never
        with an ``admission`` from :meth:`admit`, whose request was admitted already), or
        :class:`NotReady` if the pool is not started, is closing, or no worker could start.
        Raises :class:`DeadlineExceeded` when the task is still waiting or running after
        ``deadline_s`` (default: the pool's; less when :data:`DEADLINE_AT` leaves less, at once
        when it leaves nothing): a waiting task is dropped, a running one is stopped
        at its next checkpoint (or its worker killed after the grace period) and its result, if
        any, discarded. :class:`WorkerCrashed` when the task's worker
        died twice in a row. A :class:`FaceflowError` raised by ``fn`` is re-raised here with its
        type, message and details; any other exception becomes a 500 :class:`FaceflowError`
        (its traceback is logged by the worker). Cancelling the caller drops a waiting task and
        stops a running one the same way. Pickling errors for ``fn`` or ``request`` propagate.
        """
        loop = self._running_loop()
        deadline = self._deadline_s if deadline_s is None else deadline_s
        deadline_at = DEADLINE_AT.get()
        if deadline_at is not None:
            deadline = min(deadline, deadline_at - loop.time())
            if deadline <= 0:
                self._timed_out += 1
                raise DeadlineExceeded(
                    f"no time left for task {task_name(fn)} within its request's deadline",
                    retry_after_s=self.retry_after_s(),
                )
        owner = None
        if admission is None:
            self.check_admission()
            owner = PLACE_OWNER.get()  # with an admission, the admission holds the place
        elif not admission._open or admission._in_run or admission._pool is not self:
            raise RuntimeError("an admission is for one trip at a time, in its own pool")
        # Nothing awaits between the check above and the admission below, so it still holds.
        self._seq += 1
        payload = pickle.dumps((self._seq, fn, request), protocol=_PROTOCOL)
        job = _Job(name=task_name(fn), seq=self._seq, payload=payload, future=loop.create_future())
        idle = self._idle_worker()
        if idle is not None and not self._waiting:
            self._dispatch(idle, job)
        else:
            self._waiting.append(job)
        if admission is not None:
            admission._in_run = True
            self._held -= 1
        self._owned_more(owner)
        try:
            async with asyncio.timeout(deadline):
                return cast(Res, await job.future)
        except TimeoutError:
            self._timed_out += 1
            raise DeadlineExceeded(
                f"task {job.name} did not finish within its {deadline:g} s deadline",
                retry_after_s=self.retry_after_s(),
            ) from None
        finally:
            self._forget(job)
            self._owned_less(owner)
            if admission is not None:
                admission._in_run = False
                if admission._open:
                    self._held += 1
            # A task's error is raised with this frame in its traceback, and the frame held the
            # job, whose future holds the error: a cycle that kept the upload (request, payload)
            # until the next full collection (tests/runtime/test_pool.py).
            del job, payload

    def _owned_more(self, owner: str | None) -> None:
        if owner is not None and self._keep_last_place:
            self._owned[owner] += 1

    def _owned_less(self, owner: str | None) -> None:
        if owner is not None and self._keep_last_place:
            self._owned[owner] -= 1
            if self._owned[owner] <= 0:
                del self._owned[owner]  # the counter holds only owners with a place

    async def close(self) -> None:
        """Stop every worker and release the pool's threads; safe to call more than once.

        Waiting requests fail with :class:`NotReady`. Busy workers get ``stop_timeout_s`` to
        finish their current task (its caller still gets the result); then survivors are sent
        SIGKILL, by PID (they ignore SIGTERM: see :func:`~faceflow.runtime.child.child_main`),
        and their callers get :class:`NotReady`.
        """
        if self._closing:
            return
        self._closing = True
        if self._loop is None:
            return
        assert self._ready_future is not None
        if not self._ready_future.done():
            self._ready_future.set_exception(NotReady("the inference pool was closed"))
        while self._waiting:
            job = self._waiting.popleft()
            _fail(job, NotReady("the inference pool is shutting down"))

        alive = [w for w in self._slots if not w.exited.is_set()]
        for w in alive:
            self._send(w, STOP, force_thread=True)
        if not await _wait_exited(alive, self._stop_timeout_s):
            survivors = [w for w in alive if not w.exited.is_set()]
            for w in survivors:
                _log.warning("worker %d (pid %s) did not stop in time: kill", w.slot, w.process.pid)
                with contextlib.suppress(OSError, ValueError):
                    w.process.kill()
            await _wait_exited(survivors, _SIGNAL_GRACE_S)
        for w in self._slots:
            await self._reap(w)
        if self._sender is not None:
            self._sender.shutdown(wait=False, cancel_futures=True)

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is None or self._closing:
            raise NotReady("the inference pool is not running")
        if loop is not self._loop:
            raise RuntimeError("the pool is bound to the event loop that started it")
        if self._slots and all(w.state is WorkerState.FAILED for w in self._slots):
            raise NotReady("no inference worker could start; see the service log")
        return loop

    def _forget(self, job: _Job) -> None:
        """The caller is done with ``job``: drop it if it still waits, stop it if it runs."""
        if not job.future.done():
            job.future.cancel()
        # Not remove() under suppress(ValueError): its error message holds repr(job) (ms to build).
        if job in self._waiting:
            self._waiting.remove(job)
            return
        for worker in self._slots:
            if worker.job is job:
                self._stop(worker, job)
                return

    def _stop(self, worker: _Worker, job: _Job) -> None:
        """Ask ``worker`` to stop ``job`` at its next checkpoint; kill it if it has not after the
        grace period. Nobody waits for the answer: the result is discarded when it comes."""
        assert self._loop is not None
        worker.cancel.value = job.seq
        if worker.kill_timer is None:
            worker.kill_timer = self._loop.call_later(
                self._cancel_grace_s, self._kill_overdue, worker, job
            )

    def _kill_overdue(self, worker: _Worker, job: _Job) -> None:
        worker.kill_timer = None
        if self._closing or self._slots[worker.slot] is not worker or worker.job is not job:
            return
        _log.warning(
            "worker %d.%d (pid %s) still ran %s %g s after its caller gave up: killing it",
            worker.slot,
            worker.generation,
            worker.process.pid,
            job.name,
            self._cancel_grace_s,
        )
        worker.overdue = True
        with contextlib.suppress(OSError, ValueError):
            worker.process.kill()

    def retry_after_s(self) -> int:
        """Seconds until a slot is likely free: the queue ahead drained at the recent pace."""
        mean_s = sum(self._recent) / len(self._recent) if self._recent else 1.0
        ready = sum(w.state in (WorkerState.IDLE, WorkerState.BUSY) for w in self._slots)
        ahead = len(self._waiting) + self._processes
        estimate = math.ceil(mean_s * ahead / max(1, ready))
        return max(1, min(estimate, math.ceil(self._deadline_s)))

    def _idle_worker(self) -> _Worker | None:
        for w in self._slots:
            if w.state is WorkerState.IDLE:
                return w
        return None

    def _pump(self) -> None:
        """Give waiting jobs to idle workers, oldest first."""
        while self._waiting and not self._closing:
            worker = self._idle_worker()
            if worker is None:
                return
            job = self._waiting.popleft()
            if not job.future.done():
                self._dispatch(worker, job)

    def _dispatch(self, worker: _Worker, job: _Job) -> None:
        assert self._loop is not None
        worker.state = WorkerState.BUSY
        worker.job = job
        job.dispatched_at = self._loop.time()
        self._send(worker, job.payload)

    def _send(self, worker: _Worker, payload: bytes, *, force_thread: bool = False) -> None:
        """Write one message to a worker without blocking the loop for long.

        A failed write means the worker died; its reader thread reports that, so it is ignored.
        """
        inline = not force_thread and len(payload) <= _INLINE_SEND_BYTES
        # The lock is only ever held by a sender thread finishing a previous write.
        if inline and worker.send_lock.acquire(blocking=False):
            try:
                with contextlib.suppress(OSError):
                    worker.conn.send_bytes(payload)
            finally:
                worker.send_lock.release()
            return
        assert self._loop is not None
        assert self._sender is not None
        self._loop.run_in_executor(self._sender, _send_locked, worker, payload)

    def _spawn(self, slot: int, generation: int, spawned: _Spawned | None = None) -> _Worker:
        """Start a worker in ``slot`` (or adopt ``spawned``, already started) and its reader."""
        adopted = spawned is not None
        if spawned is None:
            spawned = _start_worker(self._mp, slot, self._setup, self._main_needed)
        process = spawned.process
        worker = _Worker(slot, generation, process, spawned.conn, spawned.cancel)
        worker.reader = threading.Thread(
            target=self._read,
            args=(worker,),
            name=f"faceflow-pool-read-{slot}.{generation}",
            daemon=True,
        )
        worker.reader.start()
        _log.info(
            "worker %d.%d %s (pid %s)",
            slot,
            generation,
            "adopted from the head start" if adopted else "started",
            process.pid,
        )
        return worker

    def _read(self, worker: _Worker) -> None:
        """Reader thread: forward each message, then the worker's exit, to the loop."""
        conn, sentinel = worker.conn, worker.process.sentinel
        while True:
            try:
                ready = multiprocessing.connection.wait([conn, sentinel])
                if conn not in ready:
                    break  # exited; a final reply would have made conn readable first
                raw = conn.recv_bytes()
            except (EOFError, OSError):
                break
            try:
                message = cast(Message, pickle.loads(raw))  # noqa: S301 - from our own child
            except Exception as exc:
                _log.exception("worker %d: undecodable reply", worker.slot)
                message = TaskFailed("internal", f"result could not be decoded ({exc})", {})
            if not self._post(self._on_message, worker, message):
                return
            # Not held while waiting for the next reply: the last one can be an ID photo's or an
            # annotated image's MB, kept alive per inference process for as long as it is idle.
            del raw, message
        # EOF can come a moment before the exit; reap so no zombie is left.
        worker.process.join(timeout=5.0)
        self._post(self._on_exit, worker, None)

    def _post(
        self,
        handler: Callable[[_Worker, Message | None], None],
        worker: _Worker,
        message: Message | None,
    ) -> bool:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(handler, worker, message)
        except RuntimeError:
            return False  # the loop is closed: the process is shutting down
        return True

    def _on_message(self, worker: _Worker, message: Message | None) -> None:
        if self._slots[worker.slot] is not worker:
            return
        if isinstance(message, Ready):
            worker.state = WorkerState.IDLE
            _log.info("worker %d.%d ready (pid %d)", worker.slot, worker.generation, message.pid)
            self._check_ready()
            self._pump()
        elif isinstance(message, InitFailed):
            worker.state = WorkerState.FAILED
            worker.init_error = error_from_code(message.code, message.message, message.details)
        elif isinstance(message, TaskOk | TaskFailed):
            self._finish(worker, message)

    def _finish(self, worker: _Worker, message: TaskOk | TaskFailed) -> None:
        assert self._loop is not None
        _disarm(worker)
        job, worker.job = worker.job, None
        worker.tasks_done += 1
        if worker.state is WorkerState.BUSY:
            worker.state = WorkerState.IDLE
        self._completed += 1
        if job is not None:
            seconds = self._loop.time() - job.dispatched_at
            self._recent.append(seconds)
            self._notify(job.name, seconds, ok=isinstance(message, TaskOk))
            if not job.future.done():
                if isinstance(message, TaskOk):
                    job.future.set_result(message.value)
                else:
                    job.future.set_exception(
                        error_from_code(message.code, message.message, message.details)
                    )
        self._pump()

    def _on_exit(self, worker: _Worker, _: Message | None) -> None:
        assert self._loop is not None
        _disarm(worker)
        worker.exited.set()
        # The reader thread is done with the pipe; the lock waits out a sender thread's write,
        # which fails at once now that the process is gone, so the fd is never reused under it.
        with worker.send_lock:
            worker.conn.close()
        if self._slots[worker.slot] is not worker:
            return
        before = worker.state
        job, worker.job = worker.job, None
        if job is not None:
            self._notify(job.name, self._loop.time() - job.dispatched_at, ok=False)
        if self._closing:
            worker.state = WorkerState.STOPPED
            if job is not None:
                _fail(job, NotReady("the inference pool shut down while the task ran"))
            return
        code = worker.process.exitcode
        if before in (WorkerState.STARTING, WorkerState.FAILED):
            worker.state = WorkerState.FAILED
            self._start_failed(worker, code)
            return
        worker.state = WorkerState.DEAD
        if worker.overdue:
            self._killed += 1
        else:
            self._crashed += 1
        _log.warning(
            "worker %d.%d (pid %s) died with exit code %s%s",
            worker.slot,
            worker.generation,
            worker.process.pid,
            code,
            f" while running {job.name}" if job is not None else "",
        )
        if job is not None and not job.future.done():
            job.attempts += 1
            if job.attempts == 1:
                self._waiting.appendleft(job)  # admitted already: it keeps its place, ahead
            else:
                job.future.set_exception(
                    WorkerCrashed(
                        f"the worker running {job.name} died twice",
                        retry_after_s=self.retry_after_s(),
                    )
                )
        self._replaced += 1
        self._slots[worker.slot] = self._spawn(worker.slot, worker.generation + 1)
        self._pump()

    def _start_failed(self, worker: _Worker, exitcode: int | None) -> None:
        error = worker.init_error or FaceflowError(
            f"inference worker {worker.slot} exited with code {exitcode} during start-up"
        )
        _log.error("worker %d.%d failed to start: %s", worker.slot, worker.generation, error)
        assert self._ready_future is not None
        if not self._ready_future.done():
            self._ready_future.set_exception(error)
        if all(w.state is WorkerState.FAILED for w in self._slots):
            while self._waiting:
                _fail(
                    self._waiting.popleft(), NotReady(f"no inference worker could start: {error}")
                )

    def _check_ready(self) -> None:
        assert self._ready_future is not None
        if self._ready_future.done():
            return
        if all(w.state in (WorkerState.IDLE, WorkerState.BUSY) for w in self._slots):
            self._ready_future.set_result(None)

    def _notify(self, name: str, seconds: float, *, ok: bool) -> None:
        if self._on_task_done is None:
            return
        try:
            self._on_task_done(name, seconds, ok)
        except Exception:
            _log.exception("on_task_done observer failed")

    async def _reap(self, worker: _Worker) -> None:
        """Wait for a stopped worker's reader thread (it reaps the process and reports the exit)."""
        reader = worker.reader
        if reader is not None and reader.is_alive():
            await asyncio.to_thread(reader.join, _SIGNAL_GRACE_S)
        if worker.process.exitcode is None:
            _log.error("worker %d (pid %s) could not be stopped", worker.slot, worker.process.pid)


def _setup_bytes(
    init: Callable[[Any], object], init_arg: object, warmup: Callable[[Any], object] | None
) -> bytes:
    return pickle.dumps((init, init_arg, warmup), protocol=_PROTOCOL)


def _defined_in_main(*functions: Callable[..., object] | None) -> bool:
    return any(getattr(fn, "__module__", None) == "__main__" for fn in functions if fn)


def _start_worker(
    context: multiprocessing.context.SpawnContext, slot: int, setup: bytes, main_needed: bool
) -> _Spawned:
    """Spawn one worker process running :func:`~faceflow.runtime.child.child_main`."""
    parent_conn, child_conn = context.Pipe(duplex=True)
    # Lock-free: one writer (the pool's loop), one reader; an aligned 8-byte write is atomic.
    cancel = cast(CancelCell, context.RawValue("q", 0))
    process = context.Process(
        target=child_main,
        args=(child_conn, slot, setup, cancel),
        name=f"faceflow-worker-{slot}",
        # Daemonic: if the parent exits without close(), multiprocessing's exit hook ends them.
        daemon=True,
    )
    with child_glibc_tunables(), contextlib.nullcontext() if main_needed else _parent_main_hidden():
        process.start()
    # Keep only the parent's end, so the pipe reports EOF when the child dies.
    child_conn.close()
    return _Spawned(process, parent_conn, cancel)


@contextlib.contextmanager
def _parent_main_hidden() -> Iterator[None]:
    """Spawn without running this process's ``__main__`` again in the child.

    multiprocessing's spawn runs the parent's main module in each child (as ``__mp_main__``) so
    that functions defined there can be unpickled. A worker needs nothing from it: ``init``,
    ``warmup`` and task functions are module-level functions of importable modules (when
    ``init`` or ``warmup`` comes from ``__main__``, a script's own pool, the pool keeps the
    default). The main module of ``faceflow serve`` is the console script, which imports the
    whole CLI (typer and every command module) for nothing: measured ≈ 70 ms of CPU per worker
    on this VM. spawn finds the main module by ``__spec__`` and then ``__file__``; both are
    hidden while the child is started (on the loop's thread, before it returns), then put back.
    """
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    names = ("__spec__", "__file__")
    saved = {name: main.__dict__[name] for name in names if name in main.__dict__}
    main.__spec__ = None
    main.__dict__.pop("__file__", None)
    try:
        yield
    finally:
        main.__dict__.update(saved)


@contextlib.contextmanager
def child_glibc_tunables() -> Iterator[None]:
    """Add :data:`CHILD_GLIBC_TUNABLES` to ``GLIBC_TUNABLES`` while a model-running process is
    spawned (it inherits this process's environment): this pool's workers, and ``faceflow
    worker``'s job processes. A tunable the operator already set keeps its value."""
    before = os.environ.get("GLIBC_TUNABLES")
    own = before.split(":") if before else []
    names = {item.split("=", 1)[0] for item in own}
    added = [item for item in CHILD_GLIBC_TUNABLES if item.split("=", 1)[0] not in names]
    os.environ["GLIBC_TUNABLES"] = ":".join([*own, *added])
    try:
        yield
    finally:
        if before is None:
            del os.environ["GLIBC_TUNABLES"]
        else:
            os.environ["GLIBC_TUNABLES"] = before


def _send_locked(worker: _Worker, payload: bytes) -> None:
    # An OSError means the worker died; its reader thread reports that.
    with worker.send_lock, contextlib.suppress(OSError):
        worker.conn.send_bytes(payload)


def _disarm(worker: _Worker) -> None:
    if worker.kill_timer is not None:
        worker.kill_timer.cancel()
        worker.kill_timer = None


def _fail(job: _Job, error: FaceflowError) -> None:
    if not job.future.done():
        job.future.set_exception(error)


async def _wait_exited(workers: list[_Worker], timeout_s: float) -> bool:
    """True when every worker's exit was seen within ``timeout_s``."""
    try:
        async with asyncio.timeout(timeout_s):
            for w in workers:
                await w.exited.wait()
    except TimeoutError:
        return False
    return True
