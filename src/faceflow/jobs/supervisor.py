"""``faceflow worker``: N RQ worker processes on one machine, kept alive, stopped cleanly.

The supervisor loads no model. It spawns (never forks) ``processes`` children, with the inference
pool's malloc tunables (:data:`faceflow.runtime.pool.CHILD_GLIBC_TUNABLES`); each loads the
models itself, warms up, then works the queue (:mod:`faceflow.jobs.worker`). The supervisor:

* starts no child until the queue's Redis answers (a machine or a compose file may start it
  later): it waits, saying so with a growing delay (1 s … 30 s), rather than start processes
  that load models and die on their first call;
* replaces a child that dies: at once if it had been ready (a crash mid-job, e.g. SIGKILL or the
  OOM killer), with a growing delay (1 s … 30 s) if it died while starting (e.g. a missing model),
  so a broken install does not spin;
* runs the queue's maintenance every ``maintenance_interval_s`` (abandoned jobs → retried or
  parked, expired registry entries) and RQ's scheduler, which enqueues retries when their
  backoff is over; it does so in this model-free process, so recovery needs no idle worker;
* feeds the hang check every quarter lease, on a thread of its own (a pass or a Redis call
  waiting out its timeout in the loop does not delay it), whatever the maintenance interval:
  a queue Redis that hangs long enough to let a live worker's lease lapse is seen by the first
  call after it, and no pass judges leases until workers could renew theirs
  (:data:`faceflow.jobs.worker._HANG_CHECK_LUA`);
* says once that the queue's Redis stopped answering, then every 30 s while it does not, and
  when it answers again (not a line per tick); the same when it is out of memory (at
  ``maxmemory``, ``noeviction``), which refuses the maintenance's and the scheduler's writes:
  workers then wait for room without stopping (see :class:`faceflow.jobs.worker.FaceflowWorker`);
* on SIGTERM or SIGINT passes SIGTERM to every child (RQ's warm shutdown: finish the current job,
  then exit), waits up to ``job_timeout_s`` + 10 s, kills what is left, and exits 0.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event
from types import FrameType

from redis import Redis
from redis.exceptions import OutOfMemoryError, RedisError
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer
from rq.worker_registration import clean_worker_registry

from faceflow.config import Settings
from faceflow.jobs.records import JobPayload
from faceflow.jobs.redis_store import connect, disk_warning, eviction_warning
from faceflow.jobs.worker import (
    HANG_TICKS_PER_LEASE,
    FaceflowQueue,
    FaceflowWorker,
    build_worker,
    open_queue,
)
from faceflow.logs import configure_logging
from faceflow.runtime.context import WorkerContext, load_context, warm_up
from faceflow.runtime.orphan import stop_when_parent_is_gone
from faceflow.runtime.pool import child_glibc_tunables

log = logging.getLogger(__name__)

_TICK_S = 0.2
_RESTART_DELAY_MAX_S = 30.0
_STOP_GRACE_S = 10.0
_QUEUE_WAIT_MAX_S = 30.0
_OUTAGE_LOG_EVERY_S = 30.0
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


ProcessMain = Callable[[str, int, Event, str], None]
"""A worker process's entry point: (settings JSON, slot, ready event, log level). Spawned, so it
must be importable by name (a module-level function)."""


class _StoppedWhileStarting(BaseException):
    """Raised by :func:`_stop_while_starting`; a BaseException, so that no ``except Exception``
    in the code loading the models takes it for a failure of its own."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stop_while_starting(signum: int, frame: FrameType | None) -> None:
    """A worker process's SIGTERM/SIGINT handler while it loads and warms up its models: stop
    now. There is no job to finish, and the models take seconds (over a minute under load) to
    load: SIGTERM killed the process by its default action, unsaid and with a signal for its
    status, and Ctrl+C printed a KeyboardInterrupt traceback from the middle of onnxruntime.

    Once: the stop usually comes twice (to the process group, then from the supervisor passing
    it on), and a second raise landed in the exit's own clean-up (an ``atexit`` callback's
    traceback on the log)."""
    for stop_signal in _STOP_SIGNALS:
        signal.signal(stop_signal, signal.SIG_IGN)
    raise _StoppedWhileStarting(signum)


def worker_process_main(
    settings_json: str,
    slot: int,
    ready: Event,
    log_level: str,
    before_job: Callable[[JobPayload], None] | None = None,
    load: Callable[[str], WorkerContext] = load_context,
) -> None:
    """Entry point of one spawned worker process: load the models here, then work the queue.

    SIGTERM or SIGINT while it starts ends it at once, with status 0 and a line saying so; from
    when it is ready, it stops as RQ's warm shutdown does (after the current job).

    ``before_job`` and ``load`` (the models' loading) are for code that embeds a worker (see
    :func:`build_worker`); the supervisor passes neither."""
    settings = Settings.model_validate_json(settings_json)
    # As the supervisor logs (JSON lines when asked for), each line naming its worker.
    configure_logging(log_level, settings.server.log_json, process=f"worker-{slot}")
    worker: FaceflowWorker | None = None
    try:
        worker = _start(settings, settings_json, slot, before_job, load)
        # Killed outright, the supervisor stops nothing: then this stops after its current job.
        stop_when_parent_is_gone(f"worker {slot}", lambda: worker.stop_requested)
        ready.set()
        log.info("worker %d ready (pid %d), queue %r", slot, os.getpid(), settings.jobs.queue_name)
        worker.work(logging_level=log_level.upper(), with_scheduler=False)
    except RedisError as exc:  # one line for the operator, not a traceback per restart
        if worker is not None and worker.stop_requested:  # asked to stop as its calls failed
            raise SystemExit(0) from None
        log.error("worker %d: the queue's Redis failed: %s; exiting", slot, exc)
        raise SystemExit(EXIT_QUEUE_LOST) from None
    code = exit_code(worker)
    if code:
        log.error(
            "worker %d stopped working without being asked to (queue Redis unreachable or "
            "timing out?); exiting with %d",
            slot,
            code,
        )
    raise SystemExit(code)


def _start(
    settings: Settings,
    settings_json: str,
    slot: int,
    before_job: Callable[[JobPayload], None] | None,
    load: Callable[[str], WorkerContext],
) -> FaceflowWorker:
    """Load and warm up the models, build the worker; exits (status 0, a line) on SIGTERM or
    SIGINT meanwhile. Returns with the signals marking a stop the worker's loop reads first
    (:meth:`FaceflowWorker.stop_before_work`) until RQ's ``work()`` installs its own."""
    for stop_signal in _STOP_SIGNALS:
        signal.signal(stop_signal, _stop_while_starting)
    try:
        context = load(settings_json)
        if settings.runtime.warmup:
            warm_up(context)
        worker = build_worker(settings, context, before_job)
        for stop_signal in _STOP_SIGNALS:
            signal.signal(stop_signal, worker.stop_before_work)
    except _StoppedWhileStarting as stopped:
        log.info(
            "worker %d: %s received while starting; exiting",
            slot,
            signal.Signals(stopped.signum).name,
        )
        raise SystemExit(0) from None
    return worker


EXIT_QUEUE_LOST = 3
"""A worker process's exit status when it stopped on its own (RQ returns from ``work()`` on a
Redis timeout or an unhandled error): non-zero, so supervisors and operators see a failure."""


def exit_code(worker: FaceflowWorker) -> int:
    """0 if ``worker`` stopped because it was asked to (SIGTERM/SIGINT), else
    :data:`EXIT_QUEUE_LOST`."""
    return 0 if worker.stop_requested else EXIT_QUEUE_LOST


def _where(connection: Redis) -> str:
    """Where ``connection`` goes, for a log line: host, port and database, never a password."""
    kwargs = connection.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix:{kwargs['path']}"
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"


@dataclass
class _QueueHealth:
    """Whether the queue's Redis answered the supervisor's last call. An outage is logged when it
    begins, then every :data:`_OUTAGE_LOG_EVERY_S` while it lasts, and its end once: the loop
    calls Redis every second, and a line per call buried everything else. A Redis out of memory
    answers, refusing writes: said as such, not as a Redis that does not answer."""

    clock: Callable[[], float] = time.monotonic
    down_since: float | None = None
    logged_at: float = 0.0
    out_of_memory: bool = False
    """The last failure was a write refused for want of room (``maxmemory``)."""

    def failed(self, what: str, exc: RedisError) -> None:
        now = self.clock()
        self.out_of_memory = isinstance(exc, OutOfMemoryError)
        if self.down_since is None:
            self.down_since = now
        elif now - self.logged_at < _OUTAGE_LOG_EVERY_S:
            return
        self.logged_at = now
        log.warning(
            "supervisor: %s failed (%s); the queue's Redis has %s for %.0f s",
            what,
            exc,
            "been out of memory (maxmemory)" if self.out_of_memory else "not answered",
            now - self.down_since,
        )

    def answered(self, wrote: bool = True) -> None:
        """A call went through; ``wrote``: it wrote (only that ends an out-of-memory spell: a
        pass that found the lock taken, or a scheduler holding no lock, wrote nothing)."""
        if self.out_of_memory and not wrote:
            return
        if self.down_since is not None:
            log.info(
                "supervisor: the queue's Redis %s, after %.0f s",
                "has room again" if self.out_of_memory else "answers again",
                self.clock() - self.down_since,
            )
            self.down_since = None


@dataclass(eq=False)
class _Child:
    slot: int
    process: BaseProcess
    ready: Event
    started_at: float
    failures: int = 0
    """Consecutive deaths before becoming ready."""


@dataclass
class Supervisor:
    settings: Settings
    processes: int
    log_level: str = "info"
    process_main: ProcessMain = worker_process_main
    """What each spawned worker process runs (replaceable by code embedding a supervisor)."""
    _children: list[_Child] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _restart_at: dict[int, tuple[float, int]] = field(default_factory=dict)
    _queue_health: _QueueHealth = field(default_factory=lambda: _QueueHealth())
    _signal_pipe: tuple[int, int] | None = None
    """(read, write) ends of the pipe :meth:`request_stop` writes signals into, while
    :meth:`run` runs."""

    def __post_init__(self) -> None:
        if self.settings.jobs.redis_url is None:
            raise ValueError("faceflow worker needs jobs.redis_url (or --queue-url)")
        self._mp = multiprocessing.get_context("spawn")
        self._settings_json = self.settings.model_dump_json()

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        """The SIGTERM/SIGINT handler: it hands the signal to :meth:`_relay_signals`'s thread
        and does nothing else, nothing that takes a lock.

        Python runs a handler again inside itself when a second signal comes while it runs
        (``timeout`` sends SIGTERM to its command and then to the command's group; Ctrl+C and
        a service manager's stop may both reach it). The handler that logged and set the stop
        event itself, caught inside ``Event.set`` by the second signal, waited for the event's
        lock that its outer call held: "SIGTERM received" twice, then nothing, workers and all
        left running until killed (docs/scale-out.md, round three)."""
        if self._signal_pipe is not None:
            with contextlib.suppress(OSError):  # full of unread signals: one more adds nothing
                os.write(self._signal_pipe[1], bytes([signum]))

    @contextlib.contextmanager
    def _handling_signals(self) -> Iterator[None]:
        """SIGTERM and SIGINT stop this supervisor while in the block (main thread only): the
        handler writes the signal into a pipe that a thread reads, logs and sets the stop
        from. The previous handlers are back once the block ends."""
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        self._signal_pipe = (read_fd, write_fd)
        relay = threading.Thread(
            target=self._relay_signals, args=(read_fd,), name="faceflow-signals", daemon=True
        )
        relay.start()
        before = {sig: signal.signal(sig, self.request_stop) for sig in _STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in before.items():
                signal.signal(sig, handler)
            self._signal_pipe = None
            os.close(write_fd)  # the relay reads the end of the pipe, and ends
            relay.join(timeout=_STOP_GRACE_S)
            os.close(read_fd)

    def _relay_signals(self, read_fd: int) -> None:
        """Say each signal :meth:`request_stop` received and stop, outside any handler."""
        while data := os.read(read_fd, 64):
            for signum in data:
                log.info(
                    "supervisor: %s received; stopping after current jobs",
                    signal.Signals(signum).name,
                )
                self._stop.set()

    @property
    def pids(self) -> list[int]:
        return [c.process.pid for c in self._children if c.process.pid is not None]

    def run(self) -> int:
        with self._handling_signals():
            return self._run()

    def _run(self) -> int:
        jobs = self.settings.jobs
        assert jobs.redis_url is not None
        connection = connect(jobs.redis_url, max(1.0, jobs.redis_timeout_ms / 1000))
        queue = open_queue(self.settings, connection)
        scheduler = RQScheduler(
            [jobs.queue_name], connection=connection, interval=1, serializer=JSONSerializer
        )
        if not self._wait_for_queue(connection):
            connection.close()
            log.info("supervisor: stopped")
            return 0
        self._warn_if_evicting(connection)
        self._warn_if_on_disk(connection)
        # Ticked once before the first pass, which would take ticks left by an earlier run for
        # a hang.
        ticked = self._tick(queue, first=True)
        ticker = threading.Thread(
            target=self._tick_hang_check,
            args=(queue, ticked),
            name="faceflow-hang-check",
            daemon=True,
        )
        ticker.start()
        self._children = [self._spawn(slot, failures=0) for slot in range(self.processes)]
        log.info(
            "supervisor (pid %d): %d worker processes on queue %r",
            os.getpid(),
            self.processes,
            jobs.queue_name,
        )
        next_maintenance = 0.0
        next_schedule = 0.0
        try:
            while not self._stop.is_set():
                self._replace_dead()
                now = time.monotonic()
                if now >= next_schedule:
                    next_schedule = now + 1.0
                    self._schedule(scheduler)
                if now >= next_maintenance:
                    next_maintenance = now + jobs.maintenance_interval_s
                    self._maintain(queue)
                sentinels = [c.process.sentinel for c in self._children if c.process.is_alive()]
                if sentinels:
                    multiprocessing.connection.wait(sentinels, timeout=_TICK_S)
                else:
                    self._stop.wait(_TICK_S)
        finally:
            self._stop.set()
            self._shutdown()
            ticker.join(timeout=_STOP_GRACE_S)
            with contextlib.suppress(RedisError):
                scheduler.stop()  # type: ignore[no-untyped-call]
            connection.close()
        log.info("supervisor: stopped")
        return 0

    def _warn_if_evicting(self, connection: Redis) -> None:
        """Said once at start. The workers run all the same: standing still would save none
        of the jobs that Redis deletes, only stop those it keeps."""
        try:
            evicts = eviction_warning(connection)
        except RedisError as exc:  # it answered a ping a moment ago: the maintenance says more
            log.debug("supervisor: could not read the queue Redis's eviction policy: %r", exc)
            return
        if evicts is not None:
            log.warning("supervisor: %s", evicts)

    def _warn_if_on_disk(self, connection: Redis) -> None:
        """Said once at start, as the API nodes say it: the workers write each result there."""
        if self.settings.jobs.payload_key_file is not None:
            return  # what reaches its disk is sealed (faceflow.jobs.sealing)
        if (on_disk := disk_warning(connection)) is not None:
            log.warning("supervisor: %s", on_disk)

    def _wait_for_queue(self, connection: Redis) -> bool:
        """Until the queue's Redis answers (True) or a stop is asked for (False)."""
        delay = 1.0
        while not self._stop.is_set():
            try:
                connection.ping()
            except RedisError as exc:
                log.warning(
                    "supervisor: the queue's Redis (%s) does not answer (%s); no worker starts "
                    "until it does; next try in %.0f s",
                    _where(connection),
                    exc,
                    delay,
                )
            else:
                return True
            self._stop.wait(delay)
            delay = min(_QUEUE_WAIT_MAX_S, delay * 2)
        return False

    def _spawn(self, slot: int, failures: int) -> _Child:
        ready = self._mp.Event()
        process = self._mp.Process(
            target=self.process_main,
            args=(self._settings_json, slot, ready, self.log_level),
            name=f"faceflow-worker-{slot}",
            daemon=False,
        )
        # The same malloc tunables as the inference pool's processes: they run the same models.
        with child_glibc_tunables():
            process.start()
        return _Child(slot, process, ready, time.monotonic(), failures)

    def _replace_dead(self) -> None:
        now = time.monotonic()
        for index, child in enumerate(self._children):
            if child.process.is_alive() or self._stop.is_set():
                continue
            pending = self._restart_at.get(child.slot)
            if pending is None:
                child.process.join(timeout=1.0)
                was_ready = child.ready.is_set()
                failures = 0 if was_ready else child.failures + 1
                delay = 0.0 if was_ready else min(_RESTART_DELAY_MAX_S, 2.0 ** (failures - 1))
                log.warning(
                    "worker %d (pid %s) exited with %s%s; restarting in %.0f s",
                    child.slot,
                    child.process.pid,
                    child.process.exitcode,
                    "" if was_ready else " before it was ready",
                    delay,
                )
                self._restart_at[child.slot] = (now + delay, failures)
                pending = self._restart_at[child.slot]
            if now >= pending[0]:
                del self._restart_at[child.slot]
                self._children[index] = self._spawn(child.slot, pending[1])

    def _schedule(self, scheduler: RQScheduler) -> None:
        """Enqueue retries whose backoff is over (RQ's scheduler, one tick, with its locks)."""
        if not scheduler.should_reacquire_locks and not scheduler.acquired_locks:
            # Another supervisor holds the lock, and RQ asks for it again only every 10 min:
            # this tick asks Redis nothing, so it says nothing of it. Taken as an answer, it
            # logged "answers again" every other second while the queue Redis was hung.
            return
        try:
            if scheduler.should_reacquire_locks:
                scheduler.acquire_locks()  # type: ignore[no-untyped-call]
            wrote = bool(scheduler.acquired_locks)
            if wrote:
                scheduler.heartbeat()  # type: ignore[no-untyped-call]
                scheduler.enqueue_scheduled_jobs()  # type: ignore[no-untyped-call]
        except RedisError as exc:
            self._queue_health.failed("scheduler tick", exc)
        else:
            self._queue_health.answered(wrote)

    def _tick_hang_check(self, queue: FaceflowQueue, ticked: bool) -> None:
        """The hang check's ticks (:meth:`FaceflowQueue.tick`), every quarter lease until the
        supervisor stops; ``ticked``: the first went through."""
        every_s = self.settings.jobs.lease_s / HANG_TICKS_PER_LEASE
        while not self._stop.wait(every_s):
            ticked = self._tick(queue, first=not ticked) or ticked

    def _tick(self, queue: FaceflowQueue, *, first: bool) -> bool:
        """One tick of the hang check; whether it went through (the loop's calls say when the
        queue Redis does not answer, once, not a line per tick)."""
        try:
            queue.tick(first=first)
        except RedisError as exc:
            log.debug("supervisor: hang check tick failed: %s", exc)
            return False
        return True

    def _maintain(self, queue: FaceflowQueue) -> None:
        """Retry or park abandoned jobs; drop expired registry entries (under RQ's lock)."""
        try:
            wrote = queue.acquire_maintenance_lock()
            if wrote:
                try:
                    queue.clean_registries()
                    clean_worker_registry(queue)
                finally:
                    queue.release_maintenance_lock()  # type: ignore[no-untyped-call]
        except RedisError as exc:
            self._queue_health.failed("maintenance", exc)
        else:
            self._queue_health.answered(wrote)

    def _shutdown(self) -> None:
        for child in self._children:
            if child.process.is_alive() and child.process.pid is not None:
                os.kill(child.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.settings.jobs.job_timeout_s + _STOP_GRACE_S
        for child in self._children:
            child.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if child.process.is_alive():
                log.error(
                    "worker %d (pid %s) did not stop; killing it", child.slot, child.process.pid
                )
                child.process.kill()
                child.process.join(timeout=5.0)
